"""Perturbations: exact counts, whole units, σ over the group, seeding, bit-exact restore."""

import hashlib
import math

import keras
import numpy as np
import pytest

from replication.arrays import ALIGNMENT
from replication.errors import ReplicationError
from replication.models.groups import WeightGroup, set_weight_groups, weight_groups
from replication.perturb import (
    Perturbation,
    Trial,
    knocked_out_units,
    knockout_count,
    perturb_arrays,
    perturbation_names,
    perturbed,
    random_subset_mask,
    trial_rng,
    trial_seed,
)
from replication.perturb.edits import Zero, check_edit, materialize
from replication.perturb.gaussian import population_std
from replication.perturb.knockout import chw_rows_in_hwc

LEVELS = (0.0, 0.1, 0.25, 0.5, 0.57, 0.9, 1.0)


def nonzero(rng, shape, scale=1.0):
    """Weights with no zeros, so every zero after a knockout was put there by it."""
    return (scale * rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    """conv_1, a split conv_2 (two halves of 4 filters, like AlexNet's conv_2), dense_1, dense_2."""
    inputs = keras.Input((7, 7, 3))
    x = keras.layers.Conv2D(4, 3, name="conv_1")(inputs)
    halves = [keras.layers.Conv2D(4, 2, name=f"conv_2_{i}")(x) for i in (1, 2)]
    x = keras.layers.Flatten()(keras.layers.Concatenate()(halves))
    x = keras.layers.Dense(6, name="dense_1")(x)
    outputs = keras.layers.Dense(5, name="dense_2")(x)
    net = keras.Model(inputs, outputs)
    rng = np.random.default_rng(7)
    for layer in net.layers:
        if layer.weights:
            layer.set_weights([nonzero(rng, w.shape) for w in layer.get_weights()])
    set_weight_groups(
        net,
        [
            WeightGroup("conv_1", ("conv_1",), "conv1"),
            WeightGroup("conv_2", ("conv_2_1", "conv_2_2"), "conv2"),
            WeightGroup("dense_1", ("dense_1",), "fc6", flatten_hwc=(4, 4, 8)),
            WeightGroup("dense_2", ("dense_2",), "fc7"),
        ],
    )
    return net


def originals(model, name):
    group = weight_groups(model)[name]
    return [model.get_layer(m).get_weights() for m in group.members]


def weights_hash(model) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def newly_zero(before, after) -> int:
    assert before.shape == after.shape and after.dtype == before.dtype
    return int(np.count_nonzero((before != 0) & (after == 0)))


def kernels(arrays):
    return [a[0] for a in arrays]


def biases(arrays):
    return [a[1] for a in arrays]


# --- seeds and counting ------------------------------------------------------------


def test_trial_seed_is_a_sha256_of_the_trial_and_ignores_float_noise():
    trial = Trial("conv_2", "synapse", 0.3, 4)
    expected = int.from_bytes(hashlib.sha256(b"alexnet|conv_2|synapse|0.3|4").digest()[:8], "big")
    assert trial_seed("alexnet", trial) == expected
    assert trial_seed("alexnet", Trial("conv_2", "synapse", 0.1 * 3, 4)) == expected
    assert trial_seed("alexnet", Trial("conv_2", "gaussian", 1, 0)) == trial_seed("alexnet", Trial("conv_2", "gaussian", 1.0, 0))
    others = [
        Trial("conv_3", "synapse", 0.3, 4),
        Trial("conv_2", "node", 0.3, 4),
        Trial("conv_2", "synapse", 0.4, 4),
        Trial("conv_2", "synapse", 0.3, 5),
    ]
    seeds = {trial_seed("alexnet", t) for t in others} | {trial_seed("caffenet", trial), expected}
    assert len(seeds) == 6


def test_knockout_count_is_floor_without_float_artefacts():
    assert knockout_count(0.57, 100) == 57  # 0.57 * 100 == 56.99999999999999
    assert knockout_count(0.5, 7) == 3
    assert knockout_count(1.0, 37_748_736) == 37_748_736
    assert knockout_count(0.0, 10) == 0


@pytest.mark.parametrize("n,k", [(0, 0), (1, 1), (10, 0), (10, 3), (10, 10), (100_003, 50_001), (100_003, 1)])
def test_random_subset_mask_has_exactly_k(n, k):
    mask = random_subset_mask(n, k, np.random.default_rng(n + k))
    assert mask.shape == (n,) and mask.dtype == bool and int(mask.sum()) == k
    assert n == 0 or mask.ctypes.data % ALIGNMENT == 0  # so that the engine hands it to TensorFlow as it is


def _subset_mask_in_one_piece(n, k, rng):
    """random_subset_mask's numbers drawn all at once, as the method states them."""
    mask = rng.random(n, dtype=np.float32) < np.float32(k / n)
    chosen = int(mask.sum())
    if chosen > k:
        mask[np.flatnonzero(mask)[rng.choice(chosen, chosen - k, replace=False)]] = False
    elif chosen < k:
        mask[np.flatnonzero(~mask)[rng.choice(n - chosen, k - chosen, replace=False)]] = True
    return mask


@pytest.mark.parametrize("block", [7, 1000, 2**20])
@pytest.mark.parametrize("n,k", [(1, 0), (13, 6), (10_007, 5_003), (10_007, 9_999), (2**20 + 4_097, 300_001)])
def test_random_subset_mask_in_blocks_is_the_one_piece_draw(monkeypatch, block, n, k):
    # Drawing in blocks must not change a single trial's mask, nor what the generator
    # draws next (the biases' draw follows the kernels' on the same generator).
    monkeypatch.setattr("replication.perturb.knockout._BLOCK", block)
    for seed in range(3):
        ours, reference = np.random.default_rng(seed), np.random.default_rng(seed)
        np.testing.assert_array_equal(random_subset_mask(n, k, ours), _subset_mask_in_one_piece(n, k, reference))
        assert ours.random() == reference.random()


def test_random_subset_mask_is_uniform():
    rng = np.random.default_rng(0)
    draws = 20_000
    hits = sum(random_subset_mask(10, 3, rng).astype(int) for _ in range(draws))
    # every position is chosen with probability 3/10; binomial sd is ~65 hits
    np.testing.assert_allclose(hits / draws, 0.3, atol=0.015)
    pairs = sum(np.outer(m, m) for m in (random_subset_mask(6, 2, rng) for _ in range(draws)))
    off_diagonal = pairs[~np.eye(6, dtype=bool)] / draws  # each of the 15 pairs: 1/15
    np.testing.assert_allclose(off_diagonal, 1 / 15, atol=0.012)


# --- synapse knockout --------------------------------------------------------------


@pytest.mark.parametrize("name", ["conv_1", "conv_2", "dense_1"])
@pytest.mark.parametrize("level", LEVELS)
def test_synapse_knockout_zeroes_exactly_floor_pn_weights_and_biases(model, name, level):
    before = originals(model, name)
    after = perturb_arrays(before, "synapse", level, np.random.default_rng(1))
    n_w = sum(w.size for w in kernels(before))
    n_b = sum(b.size for b in biases(before))
    assert sum(newly_zero(b, a) for b, a in zip(kernels(before), kernels(after))) == math.floor(level * n_w + 1e-9)
    assert sum(newly_zero(b, a) for b, a in zip(biases(before), biases(after))) == math.floor(level * n_b + 1e-9)
    for b, a in zip(sum(before, []), sum(after, [])):
        kept = a != 0
        np.testing.assert_array_equal(a[kept], b[kept])  # nothing else changes


def test_synapse_knockout_draws_over_the_whole_split_layer(model):
    before = originals(model, "conv_2")
    per_half = before[0][0].size
    counts = []
    for seed in range(60):
        after = perturb_arrays(before, "synapse", 0.5, np.random.default_rng(seed))
        counts.append(newly_zero(before[0][0], after[0][0]))
    # one draw over both halves: the first half's share varies around n/2 (hypergeometric),
    # which drawing floor(p·n/2) per half would never do
    assert len(set(counts)) > 3
    assert abs(np.mean(counts) - per_half / 2) < 0.1 * per_half


# --- node knockout -----------------------------------------------------------------


def dead_units(arrays):
    """Units whose incoming weights and bias are all zero."""
    w, b = arrays
    incoming = w.reshape(-1, w.shape[-1])
    return set(np.flatnonzero((incoming == 0).all(axis=0) & (b == 0)))


@pytest.mark.parametrize("name", ["conv_1", "conv_2", "dense_1", "dense_2"])
@pytest.mark.parametrize("level", LEVELS)
def test_node_knockout_zeroes_whole_units_and_nothing_else(model, name, level):
    before = originals(model, name)
    after = perturb_arrays(before, "node", level, np.random.default_rng(2))
    units = sum(w.shape[-1] for w in kernels(before))
    dead = [dead_units(a) for a in after]
    assert sum(len(d) for d in dead) == math.floor(level * units + 1e-9)
    for (w0, b0), (w1, b1), d in zip(before, after, dead):
        alive = sorted(set(range(w0.shape[-1])) - d)
        np.testing.assert_array_equal(w1[..., alive], w0[..., alive])
        np.testing.assert_array_equal(b1[alive], b0[alive])


def test_node_knockout_counts_units_across_both_halves(model):
    before = originals(model, "conv_2")  # 2 halves x 4 filters
    splits = set()
    for seed in range(40):
        after = perturb_arrays(before, "node", 0.5, np.random.default_rng(seed))
        dead = [dead_units(a) for a in after]
        assert len(dead[0]) + len(dead[1]) == 4  # floor(0.5 * 8), not floor(0.5 * 4) per half
        splits.add((len(dead[0]), len(dead[1])))
    assert len(splits) > 1  # which half loses how many varies: one draw over 8 filters


def test_authors_code_node_knockout_hits_the_same_filters_in_both_halves(model):
    before = originals(model, "conv_2")
    for seed in range(20):
        after = perturb_arrays(before, "node", 0.5, np.random.default_rng(seed), semantics="authors_code")
        first, second = (dead_units(a) for a in after)
        assert first == second and len(first) == 2  # floor(0.5 * 4) per half
    after = perturb_arrays(before, "node", 0.75, np.random.default_rng(0), semantics="authors_code")
    assert [len(dead_units(a)) for a in after] == [3, 3]


def test_authors_code_node_knockout_also_zeroes_dense_input_rows(model):
    w0, b0 = originals(model, "dense_1")[0]  # (128, 6)
    paper = perturb_arrays([[w0, b0]], "node", 0.5, np.random.default_rng(11))[0]
    authors = perturb_arrays([[w0, b0]], "node", 0.5, np.random.default_rng(11), semantics="authors_code")[0]
    idx = sorted(dead_units(paper))
    assert sorted(dead_units(authors)) == idx and len(idx) == 3  # same draw, same units
    assert (paper[0][idx, :] != 0).any()  # the paper leaves the rows alone...
    expected = paper[0].copy()
    expected[idx, :] = 0  # ...the published code also zeroes them, and nothing more
    np.testing.assert_array_equal(authors[0], expected)
    np.testing.assert_array_equal(authors[1], paper[1])


def test_authors_code_rows_only_where_the_index_exists():
    rng = np.random.default_rng(3)
    w, b = nonzero(rng, (3, 8)), nonzero(rng, (8,))  # 8 output units, only 3 input rows
    after = perturb_arrays([[w, b]], "node", 1.0, np.random.default_rng(0), semantics="authors_code")[0]
    assert (after[0] == 0).all() and (after[1] == 0).all()
    after = perturb_arrays([[w, b]], "node", 0.5, np.random.default_rng(0), semantics="authors_code")[0]
    idx = sorted(dead_units(after))
    assert len(idx) == 4
    rows = [i for i in idx if i < 3]
    assert (after[0][rows, :] == 0).all()
    untouched_rows = [i for i in range(3) if i not in rows]
    alive = [j for j in range(8) if j not in idx]
    np.testing.assert_array_equal(after[0][np.ix_(untouched_rows, alive)], w[np.ix_(untouched_rows, alive)])


def test_chw_rows_in_hwc_maps_the_authors_flatten_onto_ours():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))  # (H, W, C), e.g. pool5
    ours, authors = x.reshape(-1), x.transpose(2, 0, 1).reshape(-1)  # Keras flattens HWC, Theano CHW
    order = chw_rows_in_hwc((2, 3, 4))
    np.testing.assert_array_equal(ours[order], authors)
    assert order[1] == 4 and order[6] == 1  # authors' (c0, h0, w1) is our row 1·4; their (c1, h0, w0) our row 1


def test_authors_code_dense_rows_follow_the_authors_flatten_of_the_group():
    """dense_1 knocked out the authors' way on our HWC rows computes what their CHW model computes:
    node knockout finds the rows through the group's flatten_hwc, which the mechanism passes."""
    rng = np.random.default_rng(4)
    hwc = (2, 3, 4)
    order = chw_rows_in_hwc(hwc)
    group = WeightGroup("dense_1", ("dense_1",), "fc6", flatten_hwc=hwc)
    w_ours, b = nonzero(rng, (24, 16)), nonzero(rng, (16,))  # 16 units < 24 rows: every index is a row
    w_authors = w_ours[order]  # their row r is our row order[r]
    level = 0.5
    theirs = perturb_arrays([[w_authors, b]], "node", level, np.random.default_rng(9), "authors_code")[0]
    ours = perturb_arrays([[w_ours, b]], "node", level, np.random.default_rng(9), "authors_code", group=group)[0]
    unmapped = perturb_arrays([[w_ours, b]], "node", level, np.random.default_rng(9), "authors_code")[0]
    x = rng.normal(size=(5, *hwc))
    x_ours, x_authors = x.reshape(5, -1), x.transpose(0, 3, 1, 2).reshape(5, -1)
    np.testing.assert_allclose(x_ours @ ours[0] + ours[1], x_authors @ theirs[0] + theirs[1], rtol=1e-6)
    assert not np.allclose(x_ours @ unmapped[0], x_authors @ theirs[0])  # without the map: other rows
    np.testing.assert_array_equal(ours[1], theirs[1])
    paper = perturb_arrays([[w_ours, b]], "node", level, np.random.default_rng(9), "paper", group=group)[0]
    assert len(dead_units(paper)) == 8 and (paper[0] != 0).sum() == 24 * 8  # the paper's reading: rows untouched
    wrong = WeightGroup("dense_1", ("dense_1",), "fc6", flatten_hwc=(1, 2, 5))
    with pytest.raises(ValueError, match="row_order"):
        perturb_arrays([[w_ours, b]], "node", level, np.random.default_rng(9), "authors_code", group=wrong)


def test_authors_code_equals_paper_for_a_single_conv(model):
    before = originals(model, "conv_1")
    paper = perturb_arrays(before, "node", 0.5, np.random.default_rng(5))
    authors = perturb_arrays(before, "node", 0.5, np.random.default_rng(5), semantics="authors_code")
    for p, a in zip(sum(paper, []), sum(authors, [])):
        np.testing.assert_array_equal(p, a)


def test_knocked_out_units_are_what_node_knockout_zeroes(model):
    before = originals(model, "conv_2")
    for semantics in ("paper", "authors_code"):
        units = knocked_out_units([4, 4], 0.75, np.random.default_rng(9), semantics)
        after = perturb_arrays(before, "node", 0.75, np.random.default_rng(9), semantics)
        assert [set(u) for u in units] == [dead_units(a) for a in after]


# --- gaussian noise ----------------------------------------------------------------


def test_gaussian_noise_has_mean_zero_and_sd_k_sigma_of_the_whole_group():
    rng = np.random.default_rng(4)
    # two halves on different scales: σ must come from both together, not from each half
    halves = [[nonzero(rng, (3, 3, 40, 64), 1.0), nonzero(rng, (64,), 1.0)], [nonzero(rng, (3, 3, 40, 64), 3.0), nonzero(rng, (64,), 3.0)]]
    sigma_w = np.concatenate([h[0].ravel() for h in halves]).std()
    sigma_b = np.concatenate([h[1] for h in halves]).std()
    for k in (0.5, 2.0):
        after = perturb_arrays(halves, "gaussian", k, np.random.default_rng(10))
        for (w0, _b0), (w1, b1) in zip(halves, after):
            assert w1.dtype == np.float32 and b1.dtype == np.float32
            noise = (w1.astype(np.float64) - w0).ravel()  # 23,040 draws per half
            assert abs(noise.std() / (k * sigma_w) - 1) < 0.03
            assert abs(noise.mean()) < 4 * k * sigma_w / math.sqrt(noise.size)
        bias_noise = np.concatenate([b1.astype(np.float64) - b0 for (_, b0), (_, b1) in zip(halves, after)])
        assert abs(bias_noise.std() / (k * sigma_b) - 1) < 0.2  # only 128 draws
        assert abs(bias_noise.mean()) < 4 * k * sigma_b / math.sqrt(bias_noise.size)


def test_gaussian_noise_is_the_one_piece_draw_in_an_aligned_array():
    """The noise is drawn into an aligned buffer (for the engine to share with TensorFlow):
    the same numbers, bit for bit, as drawing them all at once, and the generator goes on
    as it would."""
    rng = np.random.default_rng(5)
    group = [[nonzero(rng, (3, 3, 4, 8)), nonzero(rng, (8,))], [nonzero(rng, (3, 3, 4, 8)), nonzero(rng, (8,))]]
    ours, reference = np.random.default_rng(11), np.random.default_rng(11)
    after = perturb_arrays(group, "gaussian", 0.7, ours)
    for part in (0, 1):  # W of both members first, then b
        arrays = [member[part] for member in group]
        sigma = population_std(arrays)
        noise = reference.standard_normal(sum(a.size for a in arrays), dtype=np.float32) * np.float32(0.7 * sigma)
        expected = np.concatenate([a.ravel() for a in arrays]) + noise
        np.testing.assert_array_equal(np.concatenate([member[part].ravel() for member in after]), expected)
    assert ours.random() == reference.random()
    # Aligned for the engine to share with TensorFlow; NumPy alone aligns one array in four.
    for seed, shape in enumerate([(5, 16), (3, 3, 4, 16), (1000, 16), (4096, 1000)]):
        noisy = perturb_arrays([[nonzero(rng, shape)]], "gaussian", 0.5, np.random.default_rng(seed))[0][0]
        assert noisy.ctypes.data % ALIGNMENT == 0, shape


def test_gaussian_level_zero_leaves_every_bit_unchanged():
    rng = np.random.default_rng(6)
    w, b = nonzero(rng, (4, 5)), nonzero(rng, (5,))
    w[0, 0] = -0.0  # -0.0 + 0.0 would become +0.0
    after = perturb_arrays([[w, b]], "gaussian", 0.0, np.random.default_rng(0))[0]
    assert after[0].tobytes() == w.tobytes() and after[1].tobytes() == b.tobytes()


# --- reproducibility and restore ---------------------------------------------------


@pytest.mark.parametrize("kind", perturbation_names())
def test_same_seed_same_arrays_and_inputs_untouched(model, kind):
    before = originals(model, "conv_2")
    copies = [[a.copy() for a in arrays] for arrays in before]
    first = perturb_arrays(before, kind, 0.5, np.random.default_rng(123))
    second = perturb_arrays(before, kind, 0.5, np.random.default_rng(123))
    other = perturb_arrays(before, kind, 0.5, np.random.default_rng(124))
    for x, y in zip(sum(first, []), sum(second, [])):
        assert x.tobytes() == y.tobytes()
    assert any(x.tobytes() != z.tobytes() for x, z in zip(sum(first, []), sum(other, [])))
    for x, y in zip(sum(before, []), sum(copies, [])):
        assert x.tobytes() == y.tobytes()  # perturb_arrays is pure


def snapshot(model, group):
    return [[w.copy() for w in model.get_layer(m).get_weights()] for m in group.members]


@pytest.mark.parametrize("kind", perturbation_names())
def test_a_trial_alone_equals_the_same_trial_inside_a_sweep(model, kind):
    groups = weight_groups(model)
    target = Trial("conv_2", kind, 0.5, 1)
    sweep = [Trial("conv_1", kind, 0.5, 0), Trial("conv_2", kind, 0.5, 0), target, Trial("dense_1", kind, 0.25, 2)]
    seen = {}
    for trial in sweep:
        with perturbed(model, groups[trial.layer], trial, "tiny"):
            seen[trial] = snapshot(model, groups[trial.layer])
    with perturbed(model, groups["conv_2"], target, "tiny"):
        alone = snapshot(model, groups["conv_2"])
    expected = perturb_arrays(originals(model, "conv_2"), kind, 0.5, trial_rng("tiny", target))
    for a, b, c in zip(sum(alone, []), sum(seen[target], []), sum(expected, [])):
        assert a.tobytes() == b.tobytes() == c.tobytes()
    assert any(a.tobytes() != b.tobytes() for a, b in zip(sum(alone, []), sum(seen[sweep[1]], [])))


@pytest.mark.parametrize("kind", perturbation_names())
@pytest.mark.parametrize("semantics", ["paper", "authors_code"])
def test_weights_come_back_bit_exactly(model, kind, semantics):
    groups = weight_groups(model)
    x = np.random.default_rng(0).standard_normal((2, 7, 7, 3)).astype(np.float32)
    clean_hash, clean_out = weights_hash(model), model(x).numpy()
    for name in groups:
        trial = Trial(name, kind, 0.5, 0)
        with perturbed(model, groups[name], trial, "tiny", semantics=semantics):
            assert weights_hash(model) != clean_hash
            assert not np.array_equal(model(x).numpy(), clean_out)
        assert weights_hash(model) == clean_hash
    np.testing.assert_array_equal(model(x).numpy(), clean_out)


def test_weights_come_back_after_an_exception_inside_the_block(model):
    groups = weight_groups(model)
    clean = weights_hash(model)
    with pytest.raises(RuntimeError, match="evaluation failed"):
        with perturbed(model, groups["dense_1"], Trial("dense_1", "gaussian", 2.0, 0), "tiny"):
            assert weights_hash(model) != clean
            raise RuntimeError("evaluation failed")
    assert weights_hash(model) == clean


def test_knockout_extremes_on_the_model(model):
    groups = weight_groups(model)
    clean = weights_hash(model)
    for kind in ("synapse", "node"):
        with perturbed(model, groups["conv_2"], Trial("conv_2", kind, 0.0, 0), "tiny"):
            assert weights_hash(model) == clean
        with perturbed(model, groups["conv_2"], Trial("conv_2", kind, 1.0, 0), "tiny"):
            for m in groups["conv_2"].members:
                assert all((w == 0).all() for w in model.get_layer(m).get_weights())
            assert any((w != 0).any() for w in model.get_layer("conv_1").get_weights())  # other layers untouched
    assert weights_hash(model) == clean


def test_bad_requests_are_refused(model):
    before = originals(model, "conv_1")
    rng = np.random.default_rng(0)
    with pytest.raises(ReplicationError, match="unknown perturbation 'dropout'; registered: synapse, node, gaussian"):
        perturb_arrays(before, "dropout", 0.5, rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        perturb_arrays(before, "synapse", 1.5, rng)
    with pytest.raises(ValueError, match=r"gaussian levels must lie in \[0, ∞\)"):
        perturb_arrays(before, "gaussian", -1.0, rng)
    with pytest.raises(ValueError, match="semantics"):
        perturb_arrays(before, "node", 0.5, rng, semantics="caffe")
    with pytest.raises(ValueError, match="trial is for layer"):
        with perturbed(model, weight_groups(model)["conv_1"], Trial("conv_2", "node", 0.5, 0), "tiny"):
            pass
    ghost = WeightGroup("conv_9", ("conv_9",), "conv9")
    with pytest.raises(ReplicationError, match="conv_9"):
        with perturbed(model, ghost, Trial("conv_9", "node", 0.5, 0), "tiny"):
            pass


# --- what a perturbation returns ---------------------------------------------------------------


def test_a_zero_sets_positive_zero_where_masked_and_keeps_every_other_bit():
    a = np.array([[-0.0, 1.5, -2.0], [3.0, -0.0, 4.0]], dtype=np.float32)
    out = materialize(a, Zero(np.array([True, False, False])))  # one flag per unit broadcasts
    assert out.tobytes() == np.array([[0.0, 1.5, -2.0], [0.0, -0.0, 4.0]], dtype=np.float32).tobytes()
    assert a[0, 0].tobytes() == np.float32(-0.0).tobytes(), "the original is untouched"


@pytest.mark.parametrize("edit, message", [
    (Zero(np.array([1, 0, 0])), "must be a boolean array"),
    (Zero(np.ones((2, 2), bool)), "does not broadcast"),
    (Zero(np.ones((3, 2, 3), bool)), "does not broadcast"),  # would enlarge the array
    (np.zeros((2, 3), np.float64), "shape and dtype"),
    ([0.0], "not list"),
])
def test_a_malformed_edit_is_refused(edit, message):
    with pytest.raises(ValueError, match=message):
        check_edit(np.zeros((2, 3), np.float32), edit)


def test_a_perturbation_returning_a_wrong_edit_is_refused(monkeypatch):
    from replication.perturb import apply

    def wrong(originals, level, rng, semantics="paper"):
        return [[Zero(np.ones(3, bool)) for _ in arrays] for arrays in originals]

    # Not registered: the registry is global, and other tests sweep every registered name.
    monkeypatch.setattr(apply, "get_perturbation", lambda name: Perturbation(name, wrong, "Wrong", "level", 1.0))
    w, b = np.ones((4, 2), np.float32), np.ones(2, np.float32)
    with pytest.raises(ValueError, match=r"does not broadcast to \(4, 2\)"):
        perturb_arrays([[w, b]], "wrong", 0.5, np.random.default_rng(0))


def test_sigma_is_remembered_only_for_arrays_that_cannot_change():
    from replication.perturb.gaussian import population_std

    a = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    first = population_std([a])
    a *= 2  # writable: never remembered
    assert population_std([a]) == pytest.approx(2 * first)
    a.setflags(write=False)
    frozen = population_std([a])
    assert population_std([a]) == frozen == pytest.approx(2 * first)
    b = a.copy()  # equal values, another array: computed afresh, equal
    b.setflags(write=False)
    assert population_std([b]) == frozen
    base = np.ones(1000, np.float32)
    view = base[:]
    view.setflags(write=False)  # a read-only view's base can still change: not remembered
    assert population_std([view]) == 0.0
    base[:500] = 3.0
    assert population_std([view]) == 1.0


def test_sigma_of_a_view_is_remembered_once_its_holder_vouches_it_unchanging(monkeypatch):
    from replication.perturb import gaussian

    computed = []
    real = gaussian._population_std
    monkeypatch.setattr(gaussian, "_population_std", lambda arrays: computed.append(1) or real(arrays))
    base = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    view = base[:]
    view.setflags(write=False)
    assert gaussian.population_std([view]) == gaussian.population_std([view])
    assert len(computed) == 2  # a view, not vouched for: computed every time
    gaussian.unchanging([view])
    assert gaussian.population_std([view]) == gaussian.population_std([view]) == pytest.approx(float(np.std(base)))
    assert len(computed) == 3
    with pytest.raises(ValueError, match="read-only"):
        gaussian.unchanging([base])


def test_a_zero_of_a_list_is_refused_as_a_value_error():
    with pytest.raises(ValueError, match="must be a boolean array, not list"):
        check_edit(np.zeros(3, np.float32), Zero([True, False, True]))
