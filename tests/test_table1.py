"""Table 1: figures against numpy/scipy, sizes against the paper, the command line."""

import keras
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.analysis import table1 as table1_module
from replication.analysis.table1 import STATISTICS, paper_table1, table1
from replication.caffe.convert import convert_caffemodel
from replication.commands.common import run_cli
from replication.commands.table1 import main
from replication.models.alexnet import build_alexnet
from replication.models.groups import WeightGroup, set_weight_groups
from replication.models.layers import grouped_conv2d
from replication.models.synthetic import write_synthetic_alexnet


def small_model() -> keras.Model:
    rng = np.random.default_rng(0)
    image = keras.Input((8, 8, 4))
    x = grouped_conv2d(image, 6, 3, groups=2, name="conv_a")
    out = keras.layers.Dense(7, name="dense_a")(keras.layers.Flatten()(x))
    model = keras.Model(image, out)
    for layer in model.layers:
        # Skewed, heavy-tailed values so kurtosis and skew are far from 0.
        layer.set_weights([rng.lognormal(size=w.shape).astype(np.float32) - 1 for w in layer.get_weights()])
    groups = [WeightGroup("conv_a", ("conv_a_1", "conv_a_2"), "c"), WeightGroup("dense_a", ("dense_a",), "d")]
    set_weight_groups(model, groups)
    return model


def test_figures_equal_numpy_and_scipy():
    model = small_model()
    table = table1(model)
    assert list(table.index) == [f"{n}_{s}" for n in ("conv_a_1", "conv_a_2", "dense_a") for s in ("W", "b")]
    for row in table.index:
        layer, suffix = row.rsplit("_", 1)
        values = model.get_layer(layer).get_weights()[0 if suffix == "W" else 1].ravel()
        expected = {
            "size": values.size,
            "mean": np.mean(values, dtype=np.float64),
            "median": np.median(values),
            "sigma": np.std(values, dtype=np.float64),
            "min": values.min(),
            "max": values.max(),
            "kurtosis": stats.kurtosis(values.astype(np.float64)),
            "skew": stats.skew(values.astype(np.float64)),
        }
        for stat, value in expected.items():
            assert table.at[row, stat] == pytest.approx(value, rel=1e-9, abs=1e-12), (row, stat)
    assert table.loc["dense_a_W", "kurtosis"] > 1 and table.loc["dense_a_W", "skew"] > 1


def test_relative_difference_to_published_values(monkeypatch):
    model = small_model()
    ours = table1(model)
    published = pd.DataFrame(
        {"size": [ours.at["conv_a_1_W", "size"]], "mean": [2 * ours.at["conv_a_1_W", "mean"]]},
        index=pd.Index(["conv_a_1_W"], name="row"),
    )
    monkeypatch.setattr(table1_module, "paper_table1", lambda: published)
    table = table1(model)
    assert table.at["conv_a_1_W", "size_rel_diff"] == 0
    assert table.at["conv_a_1_W", "mean_rel_diff"] == pytest.approx(-0.5 * np.sign(ours.at["conv_a_1_W", "mean"]))
    assert table[["median_paper", "median_rel_diff"]].isna().all().all()
    assert table.loc["dense_a_W", ["size_paper", "size_rel_diff"]].isna().all()


def test_alexnet_rows_and_sizes_are_the_papers():
    table = table1(build_alexnet())
    paper = paper_table1()
    assert list(table.index) == list(paper.index)
    assert (table["size"] == paper["size"]).all()
    # The sizes the issue quotes from the paper.
    assert table.at["conv_1_W", "size"] == 34848
    assert table.at["conv_2_1_W", "size"] == 153600
    assert table.at["conv_3_W", "size"] == 884736
    assert table.at["dense_1_W", "size"] == 37748736
    assert table["size"].sum() == 60_965_224
    assert list(table.columns[:3]) == ["size", "size_paper", "size_rel_diff"]
    assert [c for c in table.columns if "_" not in c] == list(STATISTICS)


@pytest.fixture(scope="module")
def synthetic_h5(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_synthetic_alexnet(folder / "alexnet.caffemodel", seed=1)
    convert_caffemodel(folder / "alexnet.caffemodel", folder / "alexnet.h5", progress=False)
    (folder / "alexnet.caffemodel").unlink()
    return folder / "alexnet.h5"


def test_cli_prints_and_writes_csv_and_markdown(synthetic_h5, tmp_path, capsys):
    csv, markdown = tmp_path / "out" / "table1.csv", tmp_path / "out" / "table1.md"
    assert run_cli(main, ["--weights", str(synthetic_h5), "--csv", str(csv), "--markdown", str(markdown)]) == 0
    printed = capsys.readouterr().out
    assert "conv_2_1_W" in printed and "dense_3_b" in printed
    written = pd.read_csv(csv, index_col="row")
    assert written.at["dense_1_W", "size"] == 37748736
    assert written.at["conv_1_b", "max"] <= 0.2  # synthetic biases are drawn from [0, 0.2)
    assert "| conv_5_2_W |" in markdown.read_text()
    assert sorted(p.name for p in csv.parent.iterdir()) == ["table1.csv", "table1.md"]


def test_cli_error_is_one_line_and_leaves_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all" * 100)
    out = tmp_path / "out"
    code = run_cli(main, ["--weights", str(bad), "--csv", str(out / "t.csv"), "--markdown", str(out / "t.md")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err
    assert not out.exists() or not any(out.iterdir())
