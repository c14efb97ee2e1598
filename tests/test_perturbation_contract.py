"""Every registered perturbation keeps the contract of `perturb.registry`.

For each name in `perturbation_names()` (read at collection time), on a tiny model with a
split convolution (two members) and a dense layer: level 0 is bit-for-bit the identity
(a -0.0 weight catches x + 0.0); levels in range keep shapes and dtypes and leave the
originals untouched; draws come only from the generator passed in; `perturbed` restores
the weights bit-exactly, also when its block raises; and the split layer is perturbed as
one layer (exact knockout counts over both halves, noise σ taken over both halves).
Out-of-range and non-finite levels are refused with ValueError.
"""

import hashlib
import math

import keras
import numpy as np
import pytest

from replication.models.groups import WeightGroup, set_weight_groups, weight_groups
from replication.models.layers import grouped_conv2d
from replication.perturb import (
    SEMANTICS,
    Trial,
    get_perturbation,
    perturb_arrays,
    perturbation_names,
    perturbed,
    trial_rng,
)

NAMES = perturbation_names()
SCOPE = "contract:0"
SPLIT_LEVEL = 0.3  # 0.3·n is x.5 for every count of the split layer: per-half floors would lose one


@pytest.fixture(scope="module")
def model():
    """conv: a split convolution, halves (3, 3, 15, 65) with σ 1 and 3; dense: 4680 -> 32."""
    inputs = keras.Input((8, 8, 30))
    x = grouped_conv2d(inputs, 130, 3, groups=2, name="conv")
    x = keras.layers.Dense(32, name="dense")(keras.layers.Flatten()(x))
    net = keras.Model(inputs, x)
    rng = np.random.default_rng(0)
    for scale, member in ((1.0, "conv_1"), (3.0, "conv_2"), (1.0, "dense")):
        layer = net.get_layer(member)
        layer.set_weights([(scale * rng.uniform(0.5, 1.5, w.shape) * rng.choice([-1.0, 1.0], w.shape)).astype(np.float32)
                           for w in layer.get_weights()])  # no zeros: every zero below was put there
    w, b = net.get_layer("dense").get_weights()
    w[0, 0], b[0] = -0.0, -0.0  # x + 0.0 turns these into +0.0
    net.get_layer("dense").set_weights([w, b])
    set_weight_groups(net, [WeightGroup("conv", ("conv_1", "conv_2"), "conv"), WeightGroup("dense", ("dense",), "fc")])
    return net


def group_weights(model, name):
    return [[np.array(a, copy=True) for a in model.get_layer(m).get_weights()] for m in weight_groups(model)[name].members]


def flat(arrays):
    return [a for member in arrays for a in member]


def same_bits(xs, ys) -> bool:
    xs, ys = flat(xs), flat(ys)
    return len(xs) == len(ys) and all(x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
                                      for x, y in zip(xs, ys))


def model_hash(model) -> str:
    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", NAMES)
def test_contract(model, name):
    spec = get_perturbation(name)
    levels = (SPLIT_LEVEL, spec.max_level if math.isfinite(spec.max_level) else 2.0)
    clean = model_hash(model)
    for group in weight_groups(model).values():
        originals = group_weights(model, group.name)
        copies = [[a.copy() for a in member] for member in originals]
        for semantics in SEMANTICS:
            # (a) level 0 is the unperturbed layer, bit for bit (-0.0 included)
            assert same_bits(perturb_arrays(originals, name, 0.0, np.random.default_rng(5), semantics), originals)
            for level in levels:
                # (b) same shapes and dtypes, originals untouched
                out = perturb_arrays(originals, name, level, np.random.default_rng(1), semantics)
                assert [[(a.shape, a.dtype) for a in m] for m in out] == [[(a.shape, a.dtype) for a in m] for m in originals]
                assert same_bits(originals, copies)
            # (c) the generator passed in is the only source of randomness
            first = perturb_arrays(originals, name, SPLIT_LEVEL, np.random.default_rng(1), semantics)
            again = perturb_arrays(originals, name, SPLIT_LEVEL, np.random.default_rng(1), semantics)
            other = perturb_arrays(originals, name, SPLIT_LEVEL, np.random.default_rng(2), semantics)
            assert same_bits(first, again) and not same_bits(first, other)
        # (d) perturbed(): the trial's arrays inside, bit-exact restore after, also after a raise
        with perturbed(model, group, Trial(group.name, name, 0.0, 0), SCOPE):
            assert model_hash(model) == clean
        trial = Trial(group.name, name, SPLIT_LEVEL, 0)
        expected = perturb_arrays(originals, name, SPLIT_LEVEL, trial_rng(SCOPE, trial))
        with perturbed(model, group, trial, SCOPE):
            assert same_bits(group_weights(model, group.name), expected) and model_hash(model) != clean
        assert model_hash(model) == clean
        with pytest.raises(RuntimeError, match="block failed"):
            with perturbed(model, group, trial, SCOPE):
                assert model_hash(model) != clean
                raise RuntimeError("block failed")
        assert model_hash(model) == clean
    # (e) the split layer is one layer
    check_split_layer = SPLIT_CHECKS.get(name)
    if check_split_layer is not None:
        before = group_weights(model, "conv")
        check_split_layer(before, perturb_arrays(before, name, SPLIT_LEVEL, np.random.default_rng(3)))


def check_synapse(before, after):
    for i in (0, 1):  # kernels, then biases: floor(p·n) over both halves together
        n = sum(m[i].size for m in before)
        zeroed = sum(int(np.count_nonzero((b[i] != 0) & (a[i] == 0))) for b, a in zip(before, after))
        assert zeroed == math.floor(SPLIT_LEVEL * n) != sum(math.floor(SPLIT_LEVEL * m[i].size) for m in before)
        for b, a in zip(before, after):
            np.testing.assert_array_equal(a[i][a[i] != 0], b[i][a[i] != 0])


def check_node(before, after):
    units = sum(w.shape[-1] for w, _ in before)
    dead_total = 0
    for (w0, b0), (w1, b1) in zip(before, after):
        changed = (w1 != w0).reshape(-1, w0.shape[-1]).any(axis=0) | (b1 != b0)
        dead = (w1 == 0).reshape(-1, w0.shape[-1]).all(axis=0) & (b1 == 0)
        np.testing.assert_array_equal(changed, dead)  # whole units, incoming weights and bias, nothing else
        dead_total += int(dead.sum())
    assert dead_total == math.floor(SPLIT_LEVEL * units) != sum(math.floor(SPLIT_LEVEL * w.shape[-1]) for w, _ in before)


def check_gaussian(before, after):
    for i, tolerance in ((0, 0.05), (1, 0.25)):  # 8775 kernel draws per half, 65 bias draws
        sigma = np.concatenate([m[i].ravel() for m in before]).astype(np.float64).std()
        for b, a in zip(before, after):  # halves of σ 1 and 3 get the same noise, k·σ of both
            noise = a[i].astype(np.float64) - b[i]
            assert abs(noise.std() / (SPLIT_LEVEL * sigma) - 1) < tolerance


SPLIT_CHECKS = {"synapse": check_synapse, "node": check_node, "gaussian": check_gaussian}


@pytest.mark.parametrize("name", NAMES)
def test_levels_out_of_range_are_refused(name):
    spec = get_perturbation(name)
    arrays = [[np.ones((2, 3), np.float32), np.ones(3, np.float32)]]
    bad = [-0.1, -math.inf, math.inf, math.nan] + ([spec.max_level + 0.5] if math.isfinite(spec.max_level) else [])
    for level in bad:
        with pytest.raises(ValueError, match="levels must lie in"):
            perturb_arrays(arrays, name, level, np.random.default_rng(0))


def test_a_perturbation_that_asks_for_its_group_gets_it(model):
    """The registry's `group` contract: a perturbation declaring `group` receives the trial's
    WeightGroup from the mechanism (`perturbed`, `trial_edits`, hence the engine's resident
    path), and None on bare arrays; one without the parameter is called without it."""
    from replication.perturb import register_perturbation, trial_edits

    seen = []

    @register_perturbation("contract_group_probe", title="Group probe", level_label="level", max_level=1.0)
    def probe(originals, level, rng, semantics, group=None):
        seen.append(group)
        return [[np.array(a, copy=True) for a in arrays] for arrays in originals]

    group = weight_groups(model)["dense"]
    trial = Trial("dense", "contract_group_probe", 0.5, 0)
    with perturbed(model, group, trial, SCOPE):
        pass
    trial_edits(group_weights(model, "dense"), group, trial, SCOPE)
    perturb_arrays(group_weights(model, "dense"), "contract_group_probe", 0.5, np.random.default_rng(0))
    assert seen == [group, group, None]
    assert get_perturbation("contract_group_probe").takes_group and not get_perturbation("synapse").takes_group


def test_the_mechanism_names_no_perturbation():
    """apply.py passes every perturbation the same context; none is singled out by name."""
    from pathlib import Path

    import replication.perturb.apply as apply

    source = Path(apply.__file__).read_text()
    named = [name for name in ("synapse", "node", "gaussian") if f'"{name}"' in source or f"'{name}'" in source]
    assert named == []
