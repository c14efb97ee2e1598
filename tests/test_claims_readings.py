"""How each claim is read: for every reading the text leaves open, and for every qualitative
claim, a small invented results table on which it holds and one on which it fails.

The tables come from test_compare.py (AlexNet's layer names, 5 repeats a point) and
test_figure5.py (VGG-16's); the numbers are invented to exercise the logic, not measured.
"""

import numpy as np
import pytest
from test_compare import BASELINE, LEVELS, OFFSETS, results, with_values
from test_figure5 import papers_losses
from test_figure5 import results as vgg_results

from replication.analysis import claims, stats


def verdict(df, claim_id, **options):
    row = claims.claims_table(df, **options).set_index("id").loc[claim_id]
    return row["holds"], row["detail"]


def spread(df, layer, perturbation, level, top5, offsets):
    """`df` with one point's repeats set to top5 + `offsets` (top1 = top5 / 2)."""
    df = df.copy()
    rows = (df["layer"] == layer) & (df["perturbation"] == perturbation) & np.isclose(df["level"], level)
    values = top5 + np.asarray(offsets[: rows.sum()], float)
    df.loc[rows, "top5"], df.loc[rows, "top1"] = values, values / 2
    return df


# --- the interval policy --------------------------------------------------------------------


def test_bootstrap_interval_is_seeded_and_covers_the_mean():
    values = np.array([0.1, 0.2, 0.25, 0.3, 0.5])
    low, high = claims.bootstrap_interval(values)
    assert low < values.mean() < high and (low, high) == claims.bootstrap_interval(values)
    assert claims.bootstrap_interval([0.4]) == (0.4, 0.4)  # one repeat: no spread to resample


def test_a_measurement_holds_inside_our_interval_and_fails_outside():
    # conv_2 at 50% synapse knockout: the paper's 0.607 = 0.767 × baseline
    wide = spread(results(), "conv_2", "synapse", 0.5, BASELINE * 0.78, [-0.06, -0.03, 0.0, 0.03, 0.06])
    holds, detail = verdict(wide, "synapse50_conv2")
    assert holds == "yes" and "inside our bootstrap 95% interval" in detail
    narrow = spread(results(), "conv_2", "synapse", 0.5, BASELINE * 0.78, [-0.001, 0, 0, 0, 0.001])
    assert verdict(narrow, "synapse50_conv2")[0] == "no"  # 0.780 ± 0.001 × baseline misses 0.767


def test_the_baseline_is_judged_on_its_binomial_interval_over_images():
    df = results()
    for accuracy, images, expected in ((0.80, 500, "yes"), (0.85, 500, "no"), (0.80, 50000, "no")):
        table = df.copy()
        table.loc[table["level"] == 0, "top5"] = accuracy
        table["images"] = images
        holds, detail = verdict(table, "baseline")
        assert holds == expected, (accuracy, images)
        assert f"over {images} images" in detail


def test_an_observed_bound_fails_only_when_our_whole_interval_is_beyond_it():
    # dense_1 at 80% synapse knockout loses 5% on average: beyond the paper's 4.759%
    wide = spread(results(), "dense_1", "synapse", 0.8, BASELINE * 0.95, [-0.02, -0.01, 0.0, 0.01, 0.02])
    holds, detail = verdict(wide, "dense_synapse_to80")
    assert holds == "yes" and "a bound the paper observed" in detail
    narrow = spread(results(), "dense_1", "synapse", 0.8, BASELINE * 0.94, [-0.001, 0, 0, 0, 0.001])
    holds, detail = verdict(narrow, "dense_synapse_to80")
    assert holds == "no" and "beyond it: dense_1@0.8" in detail


def test_up_to_50_percent_means_every_level_run_up_to_it():
    holds, detail = verdict(results(), "synapse50_conv3_5")
    assert holds == "yes" and "every level ≤ 0.5 run (15 points)" in detail
    # fine at 0.5, but conv_4 dips below 0.708 / 0.791 of the baseline at 0.3
    dip = with_values(results(), "conv_4", "synapse", 0.3, BASELINE * 0.85)
    holds, detail = verdict(dip, "synapse50_conv3_5")
    assert holds == "no" and "conv_4 at 0.3" in detail


# --- Gaussian ordering, synapse steps, r² --------------------------------------------------


def test_gaussian_ordering_is_not_claimed_among_conv3_to_conv5():
    # conv_3 above conv_5 at k = 2: an excepted pair, so the claim still holds
    reordered = with_values(results(), "conv_3", "gaussian", 2.0, BASELINE * 0.95)
    holds, detail = verdict(reordered, "gaussian_lower_conv_worse")
    assert holds == "yes" and "no ordering claimed among conv_3, conv_4, conv_5" in detail
    # conv_1 above conv_4 is a pair that must hold
    broken = with_values(results(), "conv_1", "gaussian", 2.0, BASELINE * 0.85)
    holds, detail = verdict(broken, "gaussian_lower_conv_worse")
    assert holds == "no" and "conv_1<conv_4" in detail


def test_synapse_steps_are_judged_at_the_printed_bound():
    holds, detail = verdict(results(), "synapse_steps_significant")  # 5 against 5 repeats: p 0.0122
    assert holds == "yes" and "p ≤ 0.0167 (not 0.05)" in detail
    # 4 against 4 fully separated repeats give p 0.0209: below 0.05, above the bound the paper prints
    assert 0.0167 < stats.smallest_rank_sum_p(4, 4) < 0.05
    holds, detail = verdict(results(repeats=4), "synapse_steps_significant")
    assert holds == "no" and "cannot go below 0.021" in detail


def r2_outcome(df, paper_r2, group="conv_1", perturbation="node"):
    ev = claims.Evidence(stats.select(stats.tidy(df)), "top5", {name: name for name in claims.PAPER_LAYERS}, True)
    return claims._r2_claim(ev, group, perturbation, paper_r2)


def test_r2_claims_use_the_authors_fit_and_print_ours_beside():
    df = results()
    tidy = stats.select(stats.tidy(df))
    authors = stats.linear_fit(tidy, ["conv_1"], "node", points="trials").r2
    ours = stats.linear_fit(tidy, ["conv_1"], "node", points="means").r2
    assert abs(authors - ours) > 0.02  # the two statistics differ on this table
    held = r2_outcome(df, round(authors, 4))
    assert held.holds and held.ours.startswith(f"r² {authors:.3f}; per-level means {ours:.3f} [")
    assert not r2_outcome(df, round(ours, 4)).holds  # our statistic's value is not the authors'


def test_r2_interval_widens_with_the_spread_of_repeats():
    df = results()
    narrow = stats.r2_interval(stats.tidy(df), ["conv_1"], "node", points="trials")
    noisy = df.copy()
    for level in LEVELS:
        noisy = spread(noisy, "conv_1", "node", level, BASELINE * (1 - 0.9 * level) + 0.05, [-0.1, -0.05, 0, 0.05, 0.1])
    wide = stats.r2_interval(stats.tidy(noisy), ["conv_1"], "node", points="trials")
    assert wide[1] - wide[0] > narrow[1] - narrow[0]


# --- which network's claims apply ---------------------------------------------------------


def test_a_vgg16_table_gets_only_figure5s_claims_unless_layers_are_mapped():
    table = claims.claims_table(vgg_results(papers_losses())).set_index("id")
    alexnet = table[table["network"] == "AlexNet"]
    assert (alexnet["holds"] == "n.a.").all() and alexnet["detail"].str.contains("a claim about AlexNet").all()
    assert (table.loc[table["network"] == "VGG-16", "holds"] == "yes").all()
    mapped = claims.claims_table(vgg_results(papers_losses()), layer_map={"conv_1": "block1_conv1"}).set_index("id")
    assert mapped.loc["baseline", "holds"] != "n.a."  # judged once the user maps layers
    assert claims.network_of(stats.tidy(results())) is None  # an AlexNet table gets every claim
    assert (claims.claims_table(results()).set_index("id").loc["baseline", "holds"]) == "yes"


def test_after_block3_conv1_reading_is_printed_and_chosen():
    losses = papers_losses() | {("fc1", 1.0): 0.10}  # fc1 breaks the 5.03% bound at k = 1
    holds, detail = verdict(vgg_results(losses), "vgg16_gaussian1_after_block3_conv1")
    assert holds == "no" and "fc1, fc2 and predictions included" in detail and "beyond it: fc1" in detail
    holds, detail = verdict(vgg_results(losses), "vgg16_gaussian1_after_block3_conv1", after_block3_conv1="conv")
    assert holds == "yes" and "convolutional layers only" in detail and "8 of 8 layers" in detail
    with pytest.raises(ValueError, match="after_block3_conv1"):
        claims.claims_table(results(), after_block3_conv1="dense")


# --- the qualitative claims -----------------------------------------------------------------


def by_layer(df, perturbation, kept):
    """`df` with every level of `perturbation` set, per layer, to baseline × kept(layer, level)."""
    for layer in claims.PAPER_LAYERS:
        for level in sorted(df.loc[(df["layer"] == layer) & (df["perturbation"] == perturbation), "level"].unique()):
            df = with_values(df, layer, perturbation, level, BASELINE * kept(layer, level))
    return df


def test_node_knockout_more_damaging_in_earlier_layers():
    holds, detail = verdict(results(), "node_earlier_more_damaging")
    assert holds == "yes" and "Spearman ρ of layer order" in detail
    depth = {name: i for i, name in enumerate(claims.PAPER_LAYERS)}
    reversed_ = by_layer(results(), "node", lambda layer, level: 0.9 - 0.1 * depth[layer] * level)
    assert verdict(reversed_, "node_earlier_more_damaging")[0] == "no"


def test_top1_shows_the_same_trends_as_top5():
    holds, detail = verdict(results(), "top1_same_trends")
    assert holds == "yes" and "Spearman ρ between the layers' top-1 and top-5 means" in detail
    df = results()
    gaussian = df["perturbation"] == "gaussian"
    df.loc[gaussian, "top1"] = 0.5 - df.loc[gaussian, "top5"] / 2  # top-1 ordered the other way
    assert verdict(df, "top1_same_trends")[0] == "no"


def test_conv1_node_knockout_first_nodes_cost_most():
    holds, detail = verdict(results(), "conv1_node_first_cost_most")
    assert holds == "yes" and "below the line at every interior level" in detail
    late = by_layer(results(), "node", lambda layer, level: 1 - 0.9 * level**2 if layer == "conv_1" else 0.5)
    holds, detail = verdict(late, "conv1_node_first_cost_most")
    assert holds == "no" and "on or above at" in detail


def test_synapse_knockout_of_conv2_to_conv5_drops_late():
    holds, detail = verdict(results(), "synapse_conv2_5_late_drop")
    assert holds == "yes" and "above the line at every interior level" in detail
    early = with_values(results(), "conv_3", "synapse", 0.5, BASELINE * 0.3)
    holds, detail = verdict(early, "synapse_conv2_5_late_drop")
    assert holds == "no" and "conv_3@0.5" in detail


def test_decreases_stagnate_in_conv3_to_conv5():
    holds, detail = verdict(results(), "conv3_5_stagnate")
    assert holds == "yes" and "our reading: < 0.5" in detail
    spread_out = with_values(results(), "conv_3", "gaussian", 2.0, BASELINE * 0.3)
    assert verdict(spread_out, "conv3_5_stagnate")[0] == "no"


def test_vgg16_later_layers_more_resilient_except_block1_conv2():
    holds, detail = verdict(vgg_results(papers_losses()), "vgg16_later_more_resilient")
    assert holds == "yes" and "block1_conv2 left out" in detail
    reversed_ = {(layer, k): 0.5 - loss for (layer, k), loss in papers_losses().items()}
    assert verdict(vgg_results(reversed_), "vgg16_later_more_resilient")[0] == "no"


def test_claims_are_counted_by_kind():
    table = claims.claims_table(results())
    kinds = table["kind"].value_counts()
    assert kinds["qualitative"] == 6 and kinds["quantitative"] == len(table) - 6
    assert set(OFFSETS) and set(table["network"]) == {"AlexNet", "VGG-16"}


def test_the_picture_has_one_row_per_claim_with_the_papers_value_and_ours():
    import replication as rp

    table = rp.claims_table(results())
    judged = table[table["holds"] != "n.a."]
    assert judged[["paper_value", "our_value"]].notna().all().all()
    assert (judged["low"] <= judged["our_value"] + 1e-12).all() and (judged["our_value"] <= judged["high"] + 1e-12).all()
    ax = rp.plot_claims(table).axes[0]
    assert [t.get_text().split(" ")[0] for t in ax.get_yticklabels()] == list(table["id"])
