"""The paper's three perturbations of one layer's weights, and the seeding that makes
every trial reproducible on its own.

A *layer* here is a `WeightGroup`: one Caffe layer, which may be several Keras layers
(AlexNet's conv_2 is conv_2_1 + conv_2_2, the two halves of a grouped convolution).
The perturbations act on the group as a whole. Kernels W and biases b are treated
separately, in Keras layout (Conv2D W is HWIO, Dense W is (in, out); a layer's
units, i.e. its filters or output neurons, are the last axis of W and the entries of b):

- synapse knockout(p): zero floor(p·n) entries of W, chosen uniformly without
  replacement among all n entries of the group's kernels, then likewise floor(p·n_b)
  entries of b;
- node knockout(p): zero all incoming weights and the bias of floor(p·u) units, chosen
  uniformly among all u units of the group (all 256 filters of conv_2, both halves);
- gaussian(k): add N(0, (k·σ_W)²) to every entry of W and N(0, (k·σ_b)²) to every
  entry of b, where σ_W and σ_b are the (population) standard deviations of the
  unperturbed group's W and b, taken over all its members together.

semantics="authors_code" reproduces the two places where the authors' published code
differs from the paper's description (everything else is identical):

- node knockout in a split layer draws floor(p·u_half) filter indices once and zeroes
  those same indices in every half (so the halves lose the same filters);
- node knockout in a dense layer also zeroes the input rows with the knocked-out
  indices (W[idx, :] as well as W[:, idx]) where such a row exists.

Random draws. Each trial gets its own `numpy.random.Generator`, seeded by
`trial_seed` from (model, layer, kind, level, repeat) and nothing else, so a trial run
alone equals the same trial run in the middle of a sweep. Within a trial the draws
happen in a fixed order: first everything for the kernels W (the whole group at once,
members in order), then everything for the biases b; node knockout makes one draw,
the units, which decides both. The seed does not include the
semantics, so the two semantics see the same random stream (paired comparisons).
NumPy only promises identical Generator streams within a NumPy version, so exact
reproduction of a trial needs the same NumPy release.
"""

import contextlib
import hashlib
import math
from dataclasses import dataclass

import numpy as np

from replication.errors import ReplicationError
from replication.models import WeightGroup, group_layers

KINDS = ("synapse", "node", "gaussian")
SEMANTICS = ("paper", "authors_code")


@dataclass(frozen=True)
class Trial:
    layer: str  # WeightGroup.name
    kind: str  # one of KINDS
    level: float  # proportion p for knockouts, k (multiples of σ) for gaussian
    repeat: int


def canonical_level(level: float) -> str:
    """The text of a level that seeds and result tables agree on.

    Levels usually come from arithmetic (0.1 * 3 == 0.30000000000000004); rounding to
    9 decimals first makes 0.3 and 0.1 * 3 the same trial.
    """
    return repr(round(float(level), 9) + 0.0)  # + 0.0 turns -0.0 into 0.0


def trial_seed(model_id: str, trial: Trial) -> int:
    """A 64-bit seed derived from the trial's identity, identical in every process.

    sha256 rather than Python's hash(), which is salted per process for strings.
    """
    key = "|".join((model_id, trial.layer, trial.kind, canonical_level(trial.level), str(int(trial.repeat))))
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def trial_rng(model_id: str, trial: Trial) -> np.random.Generator:
    return np.random.default_rng(trial_seed(model_id, trial))


def knockout_count(level: float, n: int) -> int:
    """floor(level · n), robust to levels such as 0.57 whose float product is 56.999…"""
    return math.floor(round(level * n, 6))


def random_subset_mask(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of length n with exactly k True entries, a uniformly random k-subset.

    rng.choice(n, k, replace=False) costs more than a second for AlexNet's 37.7M
    dense_1 weights. Instead: mark each entry with probability k/n, then add or remove
    the few entries needed to reach exactly k, choosing them uniformly. Given its
    count, a Bernoulli mask is a uniform subset of that size, and uniformly removing
    from (or adding to) a uniform subset leaves a uniform subset: the result is exact.
    """
    if not 0 <= k <= n:
        raise ValueError(f"cannot choose {k} of {n}")
    mask = (rng.random(n, dtype=np.float32) < np.float32(k / n)) if n else np.zeros(0, bool)
    chosen = int(np.count_nonzero(mask))
    if chosen > k:
        on = np.flatnonzero(mask)
        mask[on[rng.choice(chosen, chosen - k, replace=False)]] = False
    elif chosen < k:
        off = np.flatnonzero(~mask)
        mask[off[rng.choice(n - chosen, k - chosen, replace=False)]] = True
    return mask


def knocked_out_units(unit_counts: list[int], level: float, rng: np.random.Generator, semantics="paper") -> list[np.ndarray]:
    """The units (last-axis indices, sorted) that node knockout removes, one array per member.

    This is the only draw node knockout makes, so an engine that handles node knockout
    without set_weights (e.g. by masking the output layer's logits) gets exactly the
    units `perturb_arrays` would zero from a generator in the same state. Under
    "authors_code" a Dense member also loses its input rows with these indices.
    """
    _check_semantics(semantics)
    if semantics == "authors_code" and len(unit_counts) > 1:
        if len(set(unit_counts)) != 1:
            raise ValueError(f"split layer with unequal halves {unit_counts}")
        per_half = unit_counts[0]
        idx = np.sort(rng.choice(per_half, knockout_count(level, per_half), replace=False))
        return [idx.copy() for _ in unit_counts]
    total = sum(unit_counts)
    idx = np.sort(rng.choice(total, knockout_count(level, total), replace=False))
    bounds = np.cumsum([0, *unit_counts])
    return [idx[(idx >= lo) & (idx < hi)] - lo for lo, hi in zip(bounds[:-1], bounds[1:])]


def perturb_arrays(originals: list[list[np.ndarray]], kind: str, level: float, rng: np.random.Generator, semantics="paper") -> list[list[np.ndarray]]:
    """Perturbed copies of one layer's weights; `originals` is left untouched.

    originals: one `layer.get_weights()` list per member Keras layer, [W] or [W, b].
    Returns lists of the same shapes and dtypes, ready for `layer.set_weights`.
    """
    _check_semantics(semantics)
    for arrays in originals:
        if len(arrays) not in (1, 2) or (len(arrays) == 2 and arrays[1].shape != arrays[0].shape[-1:]):
            raise ValueError(f"expected [kernel] or [kernel, bias(units)], got shapes {[a.shape for a in arrays]}")
    if kind == "synapse":
        _check_proportion(level)
        return _synapse_knockout(originals, level, rng)
    if kind == "node":
        _check_proportion(level)
        return _node_knockout(originals, level, rng, semantics)
    if kind == "gaussian":
        if not level >= 0:
            raise ValueError(f"gaussian level must be a non-negative multiple of sigma, got {level}")
        return _gaussian_noise(originals, level, rng)
    raise ValueError(f"unknown perturbation {kind!r}; expected one of {KINDS}")


@contextlib.contextmanager
def perturbed(model, group: WeightGroup, trial: Trial, model_id: str, semantics="paper"):
    """Run the block with `trial`'s perturbation applied to `group` of `model`.

    The original weights are put back bit-exactly afterwards, also when the block (or
    setting the perturbed weights) raises.
    """
    if trial.layer != group.name:
        raise ValueError(f"trial is for layer {trial.layer!r}, group is {group.name!r}")
    try:
        layers = group_layers(model, group)
    except ValueError as err:
        raise ReplicationError(None, f"layer {group.name!r}: {err}") from None
    # Explicit copies: the arrays Keras returns may share memory with the variables.
    originals = [[np.array(w, copy=True) for w in layer.get_weights()] for layer in layers]
    changed = perturb_arrays(originals, trial.kind, trial.level, trial_rng(model_id, trial), semantics)
    try:
        for layer in layers:
            layer.set_weights(changed.pop(0))  # pop: AlexNet's dense_1 is 150 MB, hold no spare copy
        yield
    finally:
        for layer, arrays in zip(layers, originals):
            layer.set_weights(arrays)


# --- the three perturbations -------------------------------------------------------


def _synapse_knockout(originals, level, rng):
    kernels = _knock_out_entries([arrays[0] for arrays in originals], level, rng)  # draws for W first
    biases = _knock_out_entries([arrays[1] for arrays in originals if len(arrays) == 2], level, rng)
    return _reassemble(originals, kernels, biases)


def _knock_out_entries(arrays, level, rng):
    """Zero floor(level · n) entries chosen over all arrays together (one group)."""
    sizes = [a.size for a in arrays]
    n = sum(sizes)
    mask = random_subset_mask(n, knockout_count(level, n), rng)
    out, start = [], 0
    for a, size in zip(arrays, sizes):
        part = mask[start : start + size].reshape(a.shape)
        out.append(np.where(part, np.zeros((), a.dtype), a))
        start += size
    return out


def _node_knockout(originals, level, rng, semantics):
    units = knocked_out_units([arrays[0].shape[-1] for arrays in originals], level, rng, semantics)
    kernels, biases = [], []
    for arrays, idx in zip(originals, units):
        w = arrays[0].copy()
        w[..., idx] = 0
        if semantics == "authors_code" and w.ndim == 2:
            w[idx[idx < w.shape[0]], :] = 0  # the published code's extra step for dense layers
        kernels.append(w)
        if len(arrays) == 2:
            b = arrays[1].copy()
            b[idx] = 0
            biases.append(b)
    return _reassemble(originals, kernels, biases)


def _gaussian_noise(originals, level, rng):
    kernels = _add_noise([arrays[0] for arrays in originals], level, rng)  # draws for W first
    biases = _add_noise([arrays[1] for arrays in originals if len(arrays) == 2], level, rng)
    return _reassemble(originals, kernels, biases)


def _add_noise(arrays, level, rng):
    if level == 0 or not arrays:
        # x + 0.0 is not bit-identical for x = -0.0; level 0 must be the unperturbed net.
        return [a.copy() for a in arrays]
    noise = rng.standard_normal(sum(a.size for a in arrays), dtype=np.float32)
    noise *= np.float32(level * _std(arrays))
    out, start = [], 0
    for a in arrays:
        part = noise[start : start + a.size].reshape(a.shape)
        # the noise buffer becomes the result: no second 150 MB array for dense_1
        out.append(np.add(part, a, out=part) if a.dtype == np.float32 else (part + a).astype(a.dtype))
        start += a.size
    return out


def _std(arrays) -> float:
    """Population standard deviation over all entries of all arrays (the whole group).

    Sums accumulate in float64 without float64 copies of the weights (np.std with
    dtype=float64 makes two, 300 MB each for dense_1).
    """
    n = sum(a.size for a in arrays)
    mean = sum(float(np.sum(a, dtype=np.float64)) for a in arrays) / n
    squares = 0.0
    for a in arrays:
        deviation = a.astype(np.float32) - np.float32(mean)
        squares += float(np.sum(np.square(deviation, out=deviation), dtype=np.float64))
    return math.sqrt(squares / n)


def _reassemble(originals, kernels, biases):
    out, b = [], iter(biases)
    for arrays, w in zip(originals, kernels):
        out.append([w, next(b)] if len(arrays) == 2 else [w])
    return out


def _check_proportion(level):
    if not 0 <= level <= 1:
        raise ValueError(f"a knockout proportion must lie in [0, 1], got {level}")


def _check_semantics(semantics):
    if semantics not in SEMANTICS:
        raise ValueError(f"unknown semantics {semantics!r}; expected one of {SEMANTICS}")
