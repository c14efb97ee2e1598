"""Applying a trial's perturbation to a model, and putting the weights back bit-exactly.

A *layer* here is a weight group (`models.groups.WeightGroup`): one logical layer, which
may be several Keras layers, its members (AlexNet's conv_2 is conv_2_1 + conv_2_2, the two
halves of a grouped convolution). The perturbation acts on the group as a whole. Nothing
here imports Keras: the layers' own get_weights / set_weights do the work.
"""

import contextlib

import numpy as np

from replication.models.groups import group_layers
from replication.perturb.edits import check_edit, materialize
from replication.perturb.registry import check_semantics, get_perturbation
from replication.perturb.trials import Trial, trial_rng


def perturb_arrays(originals: list[list[np.ndarray]], perturbation: str, level: float, rng: np.random.Generator,
                   semantics="paper", group=None) -> list[list[np.ndarray]]:
    """Perturbed copies of one layer's weights; `originals` is left untouched.

    Args:
        originals: one `layer.get_weights()` list per member Keras layer, [W] or [W, b].
        perturbation: a registered perturbation's name.
        level: its level, checked against the perturbation's range.
        rng: the trial's generator; the only source of randomness.
        semantics: one of `registry.SEMANTICS`.
        group: the `models.groups.WeightGroup` the arrays belong to, for perturbations
            that declare a `group` parameter (`registry`); None for bare arrays.

    Returns:
        Lists of the same shapes and dtypes, ready for `layer.set_weights`.
    """
    return materialize_all(originals, perturb_edits(originals, perturbation, level, rng, semantics, group))


def materialize_all(originals, edits) -> list[list[np.ndarray]]:
    """Every array's perturbed values (`edits.materialize`), in the layout of `originals`."""
    return [[materialize(a, e) for a, e in zip(arrays, member)] for arrays, member in zip(originals, edits)]


def perturb_edits(originals: list[list[np.ndarray]], perturbation: str, level: float, rng: np.random.Generator,
                  semantics="paper", group=None) -> list:
    """What the perturbation does to each array, as it returned it: new values or an
    `edits.Zero`, checked against `originals`; arguments as `perturb_arrays`. The same
    draws as `perturb_arrays`, without materializing the Zeros."""
    check_semantics(semantics)
    spec = get_perturbation(perturbation)
    level = spec.check_level(level)
    for arrays in originals:
        if len(arrays) not in (1, 2) or (len(arrays) == 2 and arrays[1].shape != arrays[0].shape[-1:]):
            raise ValueError(f"expected [kernel] or [kernel, bias(units)], got shapes {[a.shape for a in arrays]}")
    edits = spec.edits(originals, level, rng, semantics, group)
    if [len(m) for m in edits] != [len(m) for m in originals]:
        raise ValueError(f"{perturbation} returned {[len(m) for m in edits]} arrays per member, "
                         f"expected {[len(m) for m in originals]}")
    for arrays, member in zip(originals, edits):
        for a, e in zip(arrays, member):
            check_edit(a, e)
    return edits


@contextlib.contextmanager
def perturbed(model, group, trial: Trial, seed_scope: str, semantics="paper"):
    """Run the block with `trial`'s perturbation applied to `group` of `model`.

    Args:
        model: the Keras model whose weights are changed in place.
        group: the WeightGroup named by `trial.layer`.
        trial: what to apply; its draws are seeded by (`seed_scope`, trial).
        seed_scope: "<model>:<weights sha256>", so other weights get other draws.
        semantics: one of `registry.SEMANTICS`.

    The original weights are put back bit-exactly afterwards, also when the block (or
    setting the perturbed weights) raises.
    """
    if trial.layer != group.name:
        raise ValueError(f"trial is for layer {trial.layer!r}, group is {group.name!r}")
    layers = group_layers(model, group)
    # Explicit copies: the arrays Keras returns may share memory with the variables.
    originals = [[np.array(w, copy=True) for w in layer.get_weights()] for layer in layers]
    changed = _perturb_trial(originals, group, trial, seed_scope, semantics)
    try:
        for layer in layers:
            layer.set_weights(changed.pop(0))  # pop: AlexNet's dense_1 is 150 MB, hold no spare copy
        yield
    finally:
        for layer, arrays in zip(layers, originals):
            layer.set_weights(arrays)


def _perturb_trial(originals, group, trial: Trial, seed_scope: str, semantics: str):
    return materialize_all(originals, trial_edits(originals, group, trial, seed_scope, semantics))


def trial_edits(originals, group, trial: Trial, seed_scope: str, semantics="paper") -> list:
    """`perturb_edits` for `trial` on `group`, whose weights are `originals`, with the
    trial's own generator: what `perturbed` applies, unmaterialized. Every perturbation
    that asks for it gets `group` (`registry`)."""
    return perturb_edits(originals, trial.perturbation, trial.level, trial_rng(seed_scope, trial), semantics, group)


def _bits_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Where two float arrays differ bit for bit (-0.0 and 0.0 differ, a NaN equals itself)."""
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    width = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return a.view(width) != b.view(width)


def touched_entries(originals: list[list[np.ndarray]], group, trial: Trial, seed_scope: str,
                    semantics="paper") -> list[list[np.ndarray]]:
    """Which entries of the group's weights `trial` touches: one boolean array per weight
    array of `originals` (the members' get_weights()).

    An entry is touched when the trial changes it, bit for bit, on the real weights or on
    weights of all ones drawn with the same generator. The second catches what the first
    cannot see: a knockout that zeroes an entry which was already 0.0. The knockouts choose
    their entries from the shapes and the generator alone, so on ones every chosen entry
    shows; Gaussian noise touches every entry it moves.
    """
    real = _perturb_trial(originals, group, trial, seed_scope, semantics)
    ones = [[np.ones_like(a) for a in arrays] for arrays in originals]
    probe = _perturb_trial(ones, group, trial, seed_scope, semantics)
    return [[_bits_differ(o, r) | _bits_differ(u, p) for o, r, u, p in zip(*four)]
            for four in zip(originals, real, ones, probe)]
