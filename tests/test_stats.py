"""Statistics of a results table, checked on a small hand-made table."""

import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from replication.analysis import stats
from replication.errors import ReplicationError
from replication.run.table import COLUMNS, read_table


def row(layer, kind, level, repeat, top5, top1=None, **extra):
    values = {
        "model": "alexnet", "weights_sha256": "0" * 64, "dataset_id": "d1", "images": 100, "layer": layer,
        "perturbation": kind, "level": level, "repeat": repeat, "seed": 1, "top1": top5 / 2 if top1 is None else top1,
        "top5": top5, "seconds": 1.0, "finished_at": "2024-01-01T00:00:00", "version": "0.1.0", "semantics": "paper",
        "precision": "float32",
    }  # fmt: skip
    values.update(extra)
    return values


@pytest.fixture
def table():
    rows = [row("-", "none", 0.0, 0, 0.8)]
    rows += [row("conv_1", "synapse", 0.5, r, v) for r, v in enumerate([0.5, 0.6, 0.7])]
    rows += [row("conv_1", "synapse", 0.1 * 3, r, v) for r, v in enumerate([0.7, 0.72])]  # level 0.30000000000000004
    rows += [row("conv_1", "node", 0.5, 0, 0.2)]  # one repeat: std undefined
    rows += [row("conv_2", "synapse", 0.5, r, v) for r, v in enumerate([0.75, 0.76, 0.74])]
    return stats.tidy(pd.DataFrame(rows))


def test_summary_means_sample_std_and_counts(table):
    s = stats.summary(table)
    assert list(s.columns) == ["layer", "perturbation", "level", "n", "top1_mean", "top1_std", "top5_mean", "top5_std"]
    first = s.iloc[0]
    assert (first["layer"], first["perturbation"], first["level"], first["n"]) == ("-", "none", 0.0, 1)
    got = s.set_index(["layer", "perturbation", "level"])
    cell = got.loc[("conv_1", "synapse", 0.5)]
    assert cell["n"] == 3
    assert cell["top5_mean"] == pytest.approx(statistics.mean([0.5, 0.6, 0.7]))
    assert cell["top5_std"] == pytest.approx(statistics.stdev([0.5, 0.6, 0.7]))  # ddof=1: 0.1, not 0.0816
    assert cell["top1_std"] == pytest.approx(statistics.stdev([0.25, 0.3, 0.35]))
    assert got.loc[("conv_1", "synapse", 0.3), "n"] == 2  # 0.1 * 3 and 0.3 are one level
    assert np.isnan(got.loc[("conv_1", "node", 0.5), "top5_std"])
    assert list(s["layer"]) == ["-", "conv_1", "conv_1", "conv_1", "conv_2"]


def test_curve_starts_at_the_shared_baseline(table):
    c = stats.curve(table, "conv_1", "synapse")
    assert list(c["level"]) == [0.0, 0.3, 0.5]
    assert list(c["mean"].round(6)) == [0.8, 0.71, 0.6]
    assert list(c["n"]) == [1, 2, 3]
    assert list(stats.curve(table, "conv_2", "synapse")["level"]) == [0.0, 0.5]


def test_trial_values_and_relative_loss(table):
    np.testing.assert_allclose(stats.trial_values(table, "conv_2", "synapse", 0.5), [0.75, 0.76, 0.74])
    np.testing.assert_allclose(stats.trial_values(table, "conv_2", "synapse", 0.0), [0.8])
    assert stats.trial_values(table, "conv_2", "node", 0.5).size == 0
    assert stats.relative_loss(0.6, 0.8) == pytest.approx(0.25)


def test_rank_sum_is_scipys_two_sided_test():
    a, b = [0.5, 0.6, 0.7, 0.65], [0.75, 0.76, 0.74, 0.9, 0.8]
    expected = sps.ranksums(a, b)
    got = stats.rank_sum(a, b)
    assert got.statistic == pytest.approx(expected.statistic) and got.pvalue == pytest.approx(expected.pvalue)
    assert np.isnan(stats.rank_sum([], b).pvalue)


def test_smallest_attainable_p_depends_on_the_repeats():
    assert stats.smallest_rank_sum_p(2, 2) > 0.05  # 2 repeats can never show p < 0.05
    assert stats.smallest_rank_sum_p(5, 5) < 0.05
    assert stats.smallest_rank_sum_p(3, 3) == pytest.approx(sps.ranksums([1, 2, 3], [4, 5, 6]).pvalue)


def linear_table(slopes: dict[str, float], noise: dict[str, list[float]] | None = None):
    rows = [row("-", "none", 0.0, 0, 0.8)]
    for layer, slope in slopes.items():
        for i, level in enumerate([0.2, 0.4, 0.6, 0.8]):
            jitter = (noise or {}).get(layer, [0, 0, 0, 0])[i]
            rows += [row(layer, "node", level, r, 0.8 + slope * level + jitter + d) for r, d in enumerate([-0.01, 0.01])]
    return stats.tidy(pd.DataFrame(rows))


def test_linear_fit_through_means_with_the_baseline():
    df = linear_table({"conv_1": -0.5})
    fit = stats.linear_fit(df, ["conv_1"], "node")
    assert fit.r2 == pytest.approx(1.0) and fit.slope == pytest.approx(-0.5) and fit.intercept == pytest.approx(0.8)
    assert (fit.points, fit.levels) == (5, 5)


def test_pooled_linear_fit_matches_linregress_on_all_layers_points():
    df = linear_table({"conv_2": -0.5, "conv_3": -0.3}, noise={"conv_2": [0.02, -0.03, 0.0, 0.04], "conv_3": [-0.02, 0.0, 0.05, 0.0]})
    fit = stats.linear_fit(df, ["conv_2", "conv_3"], "node")
    x = [0, 0.2, 0.4, 0.6, 0.8] * 2
    y = [0.8] + [0.8 - 0.5 * lv + j for lv, j in zip([0.2, 0.4, 0.6, 0.8], [0.02, -0.03, 0.0, 0.04])]
    y += [0.8] + [0.8 - 0.3 * lv + j for lv, j in zip([0.2, 0.4, 0.6, 0.8], [-0.02, 0.0, 0.05, 0.0])]
    expected = sps.linregress(x, y)
    assert fit.r2 == pytest.approx(expected.rvalue**2) and fit.slope == pytest.approx(expected.slope)
    assert fit.points == 10 and fit.r2 < 0.99


def test_linear_fits_table_and_too_few_levels():
    df = linear_table({"conv_1": -0.9, "conv_2": -0.5, "conv_3": -0.5})
    fits = stats.linear_fits(df, perturbations=("node",))
    assert list(fits["layers"]) == ["conv_1", "conv_2–conv_5"]
    assert fits["r2"].tolist() == pytest.approx([1.0, 1.0])
    assert list(fits["points"]) == [5, 10]  # conv_4 and conv_5 were not run: they add nothing
    nothing = stats.linear_fit(df, ["conv_9"], "node")
    assert np.isnan(nothing.r2) and nothing.points == 0


def test_read_table_round_trip_and_bad_files(tmp_path, table):
    path = tmp_path / "results.csv"
    table[list(COLUMNS)].to_csv(path, index=False)
    back = stats.tidy(read_table(path), path)
    numeric = [c for c in COLUMNS if c != "seed"]  # an empty seed reads back as text
    pd.testing.assert_frame_equal(back[numeric].reset_index(drop=True), table[numeric].reset_index(drop=True),
                                  check_dtype=False)

    with pytest.raises(ReplicationError, match="cannot read"):
        read_table(tmp_path / "absent.csv")
    table[list(COLUMNS)].drop(columns=["top5"]).to_csv(path, index=False)
    with pytest.raises(ReplicationError, match="not a results table"):
        read_table(path)
    pd.concat([table, table.iloc[[1]]])[list(COLUMNS)].to_csv(path, index=False)
    with pytest.raises(ReplicationError, match="more than once"):
        stats.tidy(read_table(path), path)
    table.assign(top5=table["top5"] * 100)[list(COLUMNS)].to_csv(path, index=False)
    with pytest.raises(ReplicationError, match="out of range"):
        read_table(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReplicationError):
        read_table(path)


def test_select_refuses_to_pool_experiments(table):
    other = table.assign(model="caffenet")
    both = pd.concat([table, other])
    with pytest.raises(ReplicationError, match="--model"):
        stats.select(both)
    assert len(stats.select(both, model="caffenet")) == len(other)
    authors = table[table["level"] != 0].assign(semantics="authors_code", repeat=lambda d: d["repeat"] + 10)
    mixed = pd.concat([table, authors])
    with pytest.raises(ReplicationError, match="--semantics"):
        stats.select(mixed)
    chosen = stats.select(mixed, semantics="authors_code")
    assert (chosen["level"] == 0).sum() == 1  # the shared baseline stays
    assert set(chosen.loc[chosen["level"] != 0, "semantics"]) == {"authors_code"}


def test_population_std_is_the_authors_error_bar(table):
    ours = stats.summary(table).set_index(["layer", "perturbation", "level"])
    authors = stats.summary(table, ddof=0).set_index(["layer", "perturbation", "level"])
    assert authors.loc[("conv_1", "synapse", 0.5), "top5_std"] == pytest.approx(np.std([0.5, 0.6, 0.7]))  # 0.0816
    assert ours.loc[("conv_1", "synapse", 0.5), "top5_std"] == pytest.approx(0.1)
    assert authors.loc[("conv_1", "node", 0.5), "top5_std"] == 0.0  # one repeat: 0 their way, NaN ours
    c = stats.curve(table, "conv_1", "synapse", ddof=0)
    assert c["std"].tolist() == pytest.approx([0.0, np.std([0.7, 0.72]), np.std([0.5, 0.6, 0.7])])
    assert stats.get_conventions("authors").ddof == 0 and stats.get_conventions("ours").ddof == stats.DDOF
    with pytest.raises(ValueError, match="conventions"):
        stats.get_conventions("theirs")


def test_authors_fit_uses_every_trial_and_one_baseline_per_layer():
    df = linear_table({"conv_2": -0.5, "conv_3": -0.3}, noise={"conv_2": [0.02, -0.03, 0.0, 0.04], "conv_3": [-0.02, 0.0, 0.05, 0.0]})
    fit = stats.linear_fit(df, ["conv_2", "conv_3"], "node", points="trials")
    x, y = [], []
    for slope, jitter in ((-0.5, [0.02, -0.03, 0.0, 0.04]), (-0.3, [-0.02, 0.0, 0.05, 0.0])):
        x.append(0.0)
        y.append(0.8)
        for level, j in zip([0.2, 0.4, 0.6, 0.8], jitter):
            for d in (-0.01, 0.01):  # both repeats, not their mean
                x.append(level)
                y.append(0.8 + slope * level + j + d)
    expected = sps.linregress(x, y)
    assert fit.r2 == pytest.approx(expected.rvalue**2) and fit.slope == pytest.approx(expected.slope)
    assert fit.points == 2 * (1 + 4 * 2)
    means = stats.linear_fit(df, ["conv_2", "conv_3"], "node")
    assert fit.r2 < means.r2  # the spread between repeats is unexplained variance of their fit
    with pytest.raises(ValueError, match="points"):
        stats.linear_fit(df, ["conv_2"], "node", points="medians")


def test_authors_fits_pool_every_layer_but_conv_1():
    df = linear_table({"conv_1": -0.9, "conv_2": -0.5, "conv_3": -0.5, "dense_1": -0.1})
    ours = stats.linear_fits(df, perturbations=("node",))
    authors = stats.linear_fits(df, perturbations=("node",), conventions="authors")
    assert list(authors["layers"]) == ["conv_1", "all but conv_1"]
    assert list(ours["points"]) == [5, 10] and list(authors["points"]) == [9, 27]  # dense_1 pooled too
    rest = stats.linear_fit(df, ["conv_2", "conv_3", "dense_1"], "node", points="trials")
    assert authors["r2"].iloc[1] == pytest.approx(rest.r2)
    assert authors["r2"].iloc[1] < ours["r2"].iloc[1] == pytest.approx(1.0)
