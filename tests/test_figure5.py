"""Figure 5: VGG-16 under Gaussian weight noise. The command's defaults, a reduced run on real
images with synthetic weights of VGG-16's real shapes, the figure with all 16 layers in
network order, the caption's four claims, and what `reproduce` does about Figure 5.

The claims module registers its claims in the shared registry when imported; the tests
import it inside the test functions, so that test modules collected before these run
with the registry as it was.
"""

import importlib

import numpy as np
import pytest

from replication.analysis.experiments import EXPERIMENTS
from replication.analysis.figures import plot_figure
from replication.commands.figure import parse_figure_args
from replication.run.table import COLUMNS, as_frame

VGG16_LAYERS = (
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1", "block3_conv2",
    "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3", "block5_conv1", "block5_conv2",
    "block5_conv3", "fc1", "fc2", "predictions",
)  # fmt: skip
CLAIM_IDS = ("vgg16_gaussian1_after_block3_conv1", "vgg16_gaussian2_after_block3_conv1",
             "vgg16_gaussian1_block1_conv2", "vgg16_gaussian2_block1_conv2")
BASELINE = 0.9
RUN = {"weights_sha256": "ab" * 32, "dataset_id": "d1", "images": "50000", "version": "0.1.0",
       "semantics": "paper", "seed": "", "seconds": "1.0", "finished_at": "2017-03-23T00:00:00+00:00",
       "precision": "float32"}


def claims_vgg():
    return importlib.import_module("replication.analysis.claims_vgg")


def results(losses, model="vgg16", names=None, repeats=5):
    """A Figure 5 results table: {(layer, k): relative loss} -> top-5 = baseline x (1 - loss),
    each repeat off by a little (the mean is exact)."""
    names = names or {}
    offsets = np.linspace(-0.01, 0.01, repeats)
    rows = [{**RUN, "model": model, "layer": "-", "perturbation": "none", "level": "0.0", "repeat": "0",
             "top1": "0.7", "top5": str(BASELINE)}]
    for (layer, level), loss in losses.items():
        for repeat, offset in enumerate(offsets):
            top5 = BASELINE * (1 - loss) + offset
            rows.append({**RUN, "model": model, "layer": names.get(layer, layer), "perturbation": "gaussian",
                         "level": str(level), "repeat": str(repeat), "top1": str(top5 * 0.7), "top5": str(top5)})
    return as_frame([{name: row[name] for name in COLUMNS} for row in rows])


def papers_losses():
    """Every layer at k = 1 and 2, with the caption's values (block1_conv2 at them, the
    layers after block3_conv1 just inside the bounds, the rest anywhere)."""
    losses = {}
    for i, layer in enumerate(VGG16_LAYERS):
        after = i > VGG16_LAYERS.index("block3_conv1")
        losses[(layer, 1.0)] = 0.04 if after else 0.10
        losses[(layer, 2.0)] = 0.20 if after else 0.50
    losses[("block1_conv2", 1.0)], losses[("block1_conv2", 2.0)] = 0.0356, 0.153
    return losses


def vgg_rows(table, metric="top5"):
    from replication.analysis.claims import claims_table

    claims_vgg()
    rows = claims_table(table, metric).set_index("id")
    return rows.loc[list(CLAIM_IDS)]


# --- the command -------------------------------------------------------------------------


def test_figure5_is_figure3s_experiment_on_vgg16(tmp_path):
    five, three = EXPERIMENTS[5], EXPERIMENTS[3]
    assert (five.perturbation, five.metric, five.levels, five.repeats) == (
        three.perturbation, three.metric, three.levels, three.repeats)
    assert five.model == "vgg16" and three.model == "alexnet"
    args = parse_figure_args(5, ["--data", str(tmp_path)])
    assert args.model == "vgg16"
    assert str(args.weights) == "caffe_weights/vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    assert (args.resize, args.crop, args.mean, args.resize_filter) == (224, 224, "keras_caffe", "pil_nearest")
    assert args.levels == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0] and args.repeats == 5
    assert parse_figure_args(3, ["--data", str(tmp_path)]).model == "alexnet"


def test_missing_weights_say_where_to_get_them(tmp_path, capsys):
    from replication import figure5
    from replication.commands.common import run_cli

    status = run_cli(figure5.main, ["--data", str(tmp_path), "--weights", str(tmp_path / "vgg16.h5")])
    err = capsys.readouterr().err
    assert status == 2 and "Figure 5 cannot run" in err
    assert "python -m replication.download vgg16" in err and "64373286793e3c8b2b4e3219cbf3544b" in err


def test_reduced_figure5_on_real_images(val_subset, tmp_path, capsys):
    """Synthetic weights (accuracy at chance by design): the pipeline from real images to the
    figure, its report and the caption's claims, on 8 images and three layers."""
    from replication import figure5
    from replication.models.keras_apps import write_synthetic_keras_weights
    from replication.run.table import read_table

    weights = tmp_path / "synthetic_vgg16.h5"
    write_synthetic_keras_weights(weights, "vgg16", seed=0)
    out = tmp_path / "figures"
    status = figure5.main(["--data", str(val_subset), "--limit", "8", "--weights", str(weights), "--out", str(out),
                           "--layers", "predictions,block1_conv2,fc2", "--levels", "0,1,2", "--repeats", "1",
                           "--batch-size", "8", "--memory-gb", "1", "--no-progress"])
    printed = capsys.readouterr().out
    assert status == 0
    table = read_table(out / "results-vgg16-gaussian.csv")
    assert set(table["model"]) == {"vgg16"} and set(table["images"].astype(int)) == {8}
    assert sorted(set(table["layer"]) - {"-"}) == ["block1_conv2", "fc2", "predictions"]
    assert len(table) == 1 + 3 * 2
    png = out / "figure5-vgg16.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and (out / "figure5-vgg16.pdf").is_file()
    report = (out / "figure5-vgg16-stats.md").read_text()
    assert "synthetic random weights" in report
    for layer in ("block1_conv2", "fc2", "predictions"):  # network order in the report
        assert layer in report
    assert report.index("block1_conv2") < report.index("fc2") < report.index("| predictions")
    assert "VGG-16, Gaussian noise k = 1: block1_conv2 loses 3.56%" in report
    assert "chance by design" in printed


# --- the figure --------------------------------------------------------------------------


def test_the_figure_has_every_vgg16_layer_in_network_order():
    losses = papers_losses()
    table = results(dict(reversed(losses.items())))  # the table's order is not the figure's
    order = list(VGG16_LAYERS)
    fig = plot_figure(table, EXPERIMENTS[5], order, "VGG-16")
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.containers] == order
    assert "Figure 5" in ax.get_title() and "VGG-16" in ax.get_title()
    legend = [text.get_text() for text in fig.legends[0].get_texts()]  # 16 lines: the legend goes beside
    assert legend[:16] == order
    styles = {(c.lines[0].get_color(), c.lines[0].get_linestyle(), c.lines[0].get_marker()) for c in ax.containers}
    assert len(styles) == 16  # every line told apart


# --- the caption's claims ----------------------------------------------------------------


def test_the_claims_hold_on_the_papers_values():
    rows = vgg_rows(results(papers_losses()))
    assert list(rows["holds"]) == ["yes"] * 4
    assert rows.loc["vgg16_gaussian1_after_block3_conv1", "ours"] == "max loss 4.00%"
    assert rows.loc["vgg16_gaussian2_block1_conv2", "paper"] == "loss 15.30%"
    assert "11 of 11 layers" in rows.loc["vgg16_gaussian2_after_block3_conv1", "detail"]


def test_the_claims_fail_when_the_values_do():
    rows = vgg_rows(results(papers_losses() | {("fc1", 1.0): 0.06, ("block1_conv2", 2.0): 0.25}))
    assert rows.loc["vgg16_gaussian1_after_block3_conv1", "holds"] == "no"
    assert "worst: fc1" in rows.loc["vgg16_gaussian1_after_block3_conv1", "detail"]
    assert rows.loc["vgg16_gaussian2_block1_conv2", "holds"] == "no"
    assert list(rows["holds"][["vgg16_gaussian2_after_block3_conv1", "vgg16_gaussian1_block1_conv2"]]) == ["yes", "yes"]
    # block3_conv1 itself is not "after" it: a large loss there changes nothing.
    rows = vgg_rows(results(papers_losses() | {("block3_conv1", 1.0): 0.5}))
    assert rows.loc["vgg16_gaussian1_after_block3_conv1", "holds"] == "yes"


def test_the_claims_read_the_caffe_vgg16_names():
    names = claims_vgg().CAFFE_NAMES
    rows = vgg_rows(results(papers_losses(), model="VGG_ILSVRC_16_layers-2d082288", names=names))
    assert list(rows["holds"]) == ["yes"] * 4


def test_the_claims_are_not_applicable_to_other_models_metrics_or_missing_runs():
    assert set(vgg_rows(results(papers_losses(), model="alexnet"))["holds"]) == {"n.a."}
    assert set(vgg_rows(results(papers_losses()), metric="top1")["holds"]) == {"n.a."}
    only_k1 = {key: loss for key, loss in papers_losses().items() if key[1] == 1.0}
    rows = vgg_rows(results(only_k1))
    assert list(rows["holds"]) == ["yes", "n.a.", "yes", "n.a."]
    partial = {key: loss for key, loss in papers_losses().items() if key[0] not in ("fc1", "fc2")}
    detail = vgg_rows(results(partial)).loc["vgg16_gaussian1_after_block3_conv1", "detail"]
    assert "9 of 11 layers" in detail and "not run: fc1, fc2" in detail


# --- reproduce ---------------------------------------------------------------------------


def test_reproduce_runs_figure5_only_with_the_vgg16_weights(tmp_path, monkeypatch):
    from replication.commands.figure import experiment_options
    from replication.experiment import figure5_options

    monkeypatch.chdir(tmp_path)
    args = parse_figure_args(1, ["--data", str(tmp_path), "--limit", "100", "--layers", "conv_1", "--mean", "pixel",
                                 "--devices", "cpu:2", "--no-progress", "--out", "out"])
    options = {**experiment_options(args), "data": args.data}
    keywords, line = figure5_options(options)
    assert keywords is None and "Figure 5 (VGG-16) skipped" in line and "download vgg16" in line
    (tmp_path / "caffe_weights").mkdir()
    (tmp_path / "caffe_weights" / "vgg16_weights_tf_dim_ordering_tf_kernels.h5").write_bytes(b"")
    keywords, line = figure5_options(options)
    assert "runs on caffe_weights/vgg16_weights_tf_dim_ordering_tf_kernels.h5" in line
    assert keywords["model"] == "vgg16"
    assert str(keywords["weights"]) == "caffe_weights/vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    assert {"data", "limit", "out", "devices", "progress"} <= set(keywords)
    assert not {"layers", "preprocessing"} & set(keywords)  # AlexNet's, not VGG-16's
    assert (keywords["devices"], keywords["limit"], keywords["progress"]) == (["cpu:2"], 100, False)


@pytest.mark.parametrize("number", [1, 3, 5])
def test_every_figure_command_has_its_entry_module(number):
    module = importlib.import_module(f"replication.figure{number}")
    assert callable(module.main)
