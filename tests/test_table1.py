"""Table 1: figures against numpy/scipy, the packaged table against the published one, the
matching rule and the verdict (a known mismatch, a synthetic match, the printed slip), the
command line."""

import keras
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from replication.analysis import table1 as table1_module
from replication.analysis.table1 import (
    DIFFERS,
    MATCH,
    NOT_COMPARABLE,
    PROBABLE_SLIPS,
    SLIP_ONLY,
    STATISTICS,
    compare_with_paper,
    format_report,
    matches_printed,
    paper_table1,
    table1,
    verdict,
    weight_rows,
    weight_statistics,
)
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
    # Only what is printed is compared: size matches, the doubled mean does not, the
    # statistics the stand-in table lacks are NA, and rows it lacks are not comparable.
    assert table.at["conv_a_1_W", "size_match"] and not table.at["conv_a_1_W", "mean_match"]
    assert table["median_match"].isna().all()
    assert table.at["conv_a_1_W", "row_match"] == DIFFERS
    assert (table.drop(index="conv_a_1_W")["row_match"] == NOT_COMPARABLE).all()


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
    # Ours, the paper's and the difference, row by row.
    assert "conv_1_W   ours     34848" in printed and "paper    34848" in printed and "-100%*" in printed
    slip_note = (
        "note: the paper prints conv_2_2_b σ = 0.0294, the same as conv_2_2_W's; probably a slip in the printed table"
    )
    assert slip_note in printed
    # The synthetic weights have the paper's architecture and none of its figures; the
    # verdict is the last paragraph.
    last = printed.strip().split("\n\n")[-1].splitlines()
    assert last[0] == "verdict: these weights do not match the paper's Table 1: 0 of 22 rows match at 3 significant figures"
    assert "every row has the paper's size" in last[1]
    assert last[2].startswith("rows that differ most") and last[-1] == "  and 17 more rows differ"
    written = pd.read_csv(csv, comment="#", index_col="row")
    assert written.at["dense_1_W", "size"] == 37748736
    assert written.at["conv_1_b", "max"] <= 0.2  # synthetic biases are drawn from [0, 0.2)
    assert written.at["conv_1_W", "size_match"] and not written.at["conv_1_W", "sigma_match"]
    assert (written["row_match"] == "no").all()
    comments = [line for line in csv.read_text().splitlines() if line.startswith("#")]
    assert f"# {slip_note}" in comments
    assert "# verdict: these weights do not match the paper's Table 1: 0 of 22 rows match at 3 significant figures" in comments
    text = markdown.read_text()
    assert "| conv_5_2_W |" in text
    assert "**Verdict:** these weights do not match the paper's Table 1: 0 of 22 rows match" in text
    assert "Note: the paper prints conv_2_2_b σ = 0.0294" in text
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


def published_statistics() -> pd.DataFrame:
    """The paper's figures themselves as "our" statistics: a table that matches by construction."""
    return paper_table1()[list(STATISTICS)].copy()


def test_packaged_table_is_the_published_one(shared_data):
    published = pd.read_csv(shared_data / "paper" / "table1_published.csv", comment="#", index_col="layer")
    packaged = paper_table1()
    assert list(packaged.index) == list(published.index)
    assert len(packaged) == 22 and packaged.index[0] == "conv_1_W" and packaged.index[-1] == "dense_3_b"
    assert list(published.columns) == list(STATISTICS)
    for stat in STATISTICS:
        for row in published.index:
            assert packaged.at[row, stat] == published.at[row, stat], (row, stat)
    # Excess kurtosis: two printed rows are negative.
    assert (packaged["kurtosis"] < 0).sum() == 2


def test_probable_slip_is_flagged_in_the_data_and_the_code():
    paper = paper_table1()
    flagged = {(row, stat) for row, stat in paper["probable_slip"].items() if stat}
    assert flagged == set(PROBABLE_SLIPS) == {("conv_2_2_b", "sigma")}
    # What makes it a probable slip: the bias row prints the weight row's sigma.
    assert paper.at["conv_2_2_b", "sigma"] == paper.at["conv_2_2_W", "sigma"] == 0.0294


@pytest.mark.parametrize(
    ("stat", "ours", "printed", "expected"),
    [
        ("size", 34848, 34848, True),
        ("size", 34849, 34848, False),
        # Exponent-form figures are 3 significant figures too: 2.84e-06 is [2.835e-06, 2.845e-06).
        ("mean", 2.8449e-06, 2.84e-06, True),
        ("mean", 2.8351e-06, 2.84e-06, True),
        ("mean", 2.8451e-06, 2.84e-06, False),
        ("mean", 2.84e-07, 2.84e-06, False),
        ("mean", -2.84e-06, 2.84e-06, False),
        # 0.45 is printed without its trailing zero: it is 0.450.
        ("max", 0.4504, 0.45, True),
        ("max", 0.4496, 0.45, True),
        ("max", 0.4494, 0.45, False),
        ("max", 0.4506, 0.45, False),
        # Across a power of ten: 0.09996 rounds to 0.100; 0.0999 would have been printed as such.
        ("sigma", 0.09996, 0.1, True),
        ("sigma", 0.0999, 0.1, False),
        ("kurtosis", -0.3904, -0.39, True),
        ("kurtosis", float("nan"), -0.39, False),
    ],
)
def test_a_figure_matches_at_three_significant_figures(stat, ours, printed, expected):
    assert matches_printed(stat, ours, printed) is expected


def test_the_published_statistics_match_22_of_22():
    ours = published_statistics()
    table = compare_with_paper(ours)
    assert (table["row_match"] == MATCH).all()
    outcome = verdict(table)
    assert outcome.matches and len(outcome.matching) == 22 and not outcome.slip_only and not outcome.differing
    assert outcome.headline() == "these weights match the paper's Table 1: 22 of 22 rows match at 3 significant figures"
    # Within half a unit of the third figure every row still matches; at 1% off, not.
    nudged = ours.copy()
    nudged[list(STATISTICS[1:])] *= 1 + 1e-4
    assert verdict(compare_with_paper(nudged)).headline().endswith(": 22 of 22 rows match at 3 significant figures")
    nudged.at["conv_3_b", "skew"] *= 1.01
    assert verdict(compare_with_paper(nudged)).headline() == (
        "these weights do not match the paper's Table 1: 21 of 22 rows match at 3 significant figures"
    )


def test_a_row_that_differs_only_in_the_slip_is_reported_as_such():
    ours = published_statistics()
    ours.at["conv_2_2_b", "sigma"] = 0.0312
    table = compare_with_paper(ours)
    assert table.at["conv_2_2_b", "row_match"] == SLIP_ONLY
    outcome = verdict(table)
    # Neither hidden nor counted as a match: 21 match, and the verdict names the slip.
    assert outcome.matches and len(outcome.matching) == 21 and list(outcome.slip_only) == ["conv_2_2_b"]
    assert outcome.headline() == "these weights match the paper's Table 1: 21 of 22 rows match at 3 significant figures"
    assert "conv_2_2_b differs only where the paper probably misprinted: sigma 0.0312 (paper 0.0294)" in outcome.text()
    report = format_report(table)
    assert "diff" in report and "!" in report
    # A row that also differs elsewhere differs; its slip cell is still marked.
    ours.at["conv_2_2_b", "mean"] = 0.2
    outcome = verdict(compare_with_paper(ours))
    assert not outcome.matches and list(outcome.differing) == ["conv_2_2_b"] and not outcome.slip_only
    stats = {d.stat: d for d in outcome.differing["conv_2_2_b"]}
    assert set(stats) == {"mean", "sigma"} and stats["sigma"].probable_slip and not stats["mean"].probable_slip
    assert "sigma 0.0312 (paper 0.0294, probably a slip)" in outcome.text()


def test_bvlc_fc8_biases_are_not_the_papers_dense_3_b(shared_data):
    biases = np.load(shared_data / "paper" / "bvlc_alexnet_fc8_bias.npy")
    # Through the model, as the command computes it: dense_3_b is the dense_3 layer's bias.
    model = build_alexnet()
    dense_3 = model.get_layer("dense_3")
    dense_3.set_weights([dense_3.get_weights()[0], biases])
    array = dict(weight_rows(model))["dense_3_b"]
    np.testing.assert_array_equal(array, biases)
    ours = published_statistics()
    ours.loc["dense_3_b"] = pd.Series(weight_statistics(array))
    assert ours.at["dense_3_b", "sigma"] == pytest.approx(0.1306, abs=1e-4)
    table = compare_with_paper(ours)
    assert table.at["dense_3_b", "row_match"] == DIFFERS and not table.at["dense_3_b", "sigma_match"]
    assert table.at["dense_3_b", "size_match"]
    outcome = verdict(table)
    assert not outcome.matches and list(outcome.differing) == ["dense_3_b"]
    assert "sigma" in {d.stat for d in outcome.differing["dense_3_b"]}
    assert outcome.headline() == (
        "these weights do not match the paper's Table 1: 21 of 22 rows match at 3 significant figures"
    )
    text = outcome.text()
    assert "dense_3_b: " in text and "sigma 0.131 (paper 0.0749)" in text


def test_other_models_are_not_comparable():
    table = table1(small_model())
    assert (table["row_match"] == NOT_COMPARABLE).all()
    outcome = verdict(table)
    assert not outcome.comparable and not outcome.matches
    report = format_report(table)
    assert "of 22 rows match" not in report and "note:" not in report
    assert report.splitlines()[-1] == (
        "verdict: these weights cannot be compared with the paper's Table 1: this model's 6 rows "
        "(conv_a_1_W, conv_a_1_b, conv_a_2_W, …) do not correspond to the paper's 22 AlexNet rows "
        "(conv_1_W … dense_3_b)"
    )


def test_rows_the_model_lacks_are_named():
    ours = published_statistics().drop(index=["dense_3_W", "dense_3_b"])
    outcome = verdict(compare_with_paper(ours))
    assert not outcome.matches and outcome.missing == ("dense_3_W", "dense_3_b")
    assert "20 of 22 rows match" in outcome.headline()
    assert "not in this model: dense_3_W, dense_3_b" in outcome.text()
