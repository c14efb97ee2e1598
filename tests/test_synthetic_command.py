"""The offline route: `python -m replication.synthetic` writes a model every command can use,
and everything made from its random weights says that accuracies are at chance by design."""

import pytest

from replication.caffe import read_caffemodel
from replication.commands import evaluate, figure, synthetic
from replication.commands.common import run_cli
from replication.models.synthetic import ALEXNET_BLOB_SHAPES, SYNTHETIC_MARK, is_synthetic

CHANCE_NOTE = "holds synthetic random weights: its accuracies are at chance by design"


@pytest.fixture(scope="module")
def synthetic_h5(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "synthetic_alexnet.h5"
    assert run_cli(synthetic.main, ["--model", "alexnet", "-o", str(out)]) == 0
    return out


def test_both_formats_are_written_with_the_real_shapes(tmp_path, synthetic_h5, capsys):
    caffemodel = tmp_path / "caffenet.caffemodel"
    assert run_cli(synthetic.main, ["--model", "caffenet", "-o", str(caffemodel), "--seed", "3"]) == 0
    assert "chance by design" in capsys.readouterr().out
    net = read_caffemodel(caffemodel)
    assert SYNTHETIC_MARK in net.name
    assert {layer.name: layer.blobs[0].shape for layer in net.layers if layer.blobs} == ALEXNET_BLOB_SHAPES
    assert is_synthetic(synthetic_h5) and not is_synthetic(tmp_path / "absent.h5")
    assert run_cli(synthetic.main, ["-o", str(tmp_path / "model.bin")]) == 2
    assert "name it .caffemodel or .h5" in capsys.readouterr().err


def test_evaluate_and_a_figure_say_the_weights_are_synthetic(val_subset, synthetic_h5, tmp_path, capsys):
    common = ["--weights", str(synthetic_h5), "--data", str(val_subset), "--resize", "227", "--crop", "227",
              "--mean", "pixel", "--limit", "24", "--no-progress"]
    assert run_cli(evaluate.main, ["--model", "alexnet", *common]) == 0
    assert CHANCE_NOTE in capsys.readouterr().out
    out = tmp_path / "figures"
    argv = [*common, "--out", str(out), "--layers", "dense_3", "--levels", "0,1", "--repeats", "1"]
    assert run_cli(lambda a: figure.figure_main(2, a), argv) == 0
    assert CHANCE_NOTE in capsys.readouterr().out
    assert CHANCE_NOTE in (out / "figure2-alexnet-stats.md").read_text()
