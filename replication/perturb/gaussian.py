"""Gaussian weight noise (the paper's section 5): add N(0, (k·σ_W)²) to every entry of W and
N(0, (k·σ_b)²) to every entry of b, where σ_W and σ_b are the population standard
deviations of the unperturbed group's W and b, taken over all its members together.
The draws for W come first, then those for b."""

import math
import threading
import weakref

import numpy as np

from replication.arrays import aligned_empty
from replication.perturb.knockout import kernels_and_biases, reassemble
from replication.perturb.registry import register_perturbation


@register_perturbation("gaussian", title="Gaussian weight noise",
                       level_label="noise standard deviation k (multiples of the layer's weight σ)")
def gaussian_noise(originals, level, rng, semantics="paper"):
    """Add noise of standard deviation level·σ to W and to b, each with its own σ."""
    kernels, biases = kernels_and_biases(originals)
    kernels = _add_noise(kernels, level, rng)  # draws for W first
    return reassemble(originals, kernels, _add_noise(biases, level, rng))


def _add_noise(arrays, level, rng):
    if level == 0 or not arrays:
        # x + 0.0 is not bit-identical for x = -0.0; level 0 must be the unperturbed net.
        return [a.copy() for a in arrays]
    # Aligned, so that the engine can hand the noisy weights to TensorFlow as they are;
    # the generator fills `out` with the numbers it would return.
    noise = rng.standard_normal(dtype=np.float32, out=aligned_empty(sum(a.size for a in arrays), np.float32))
    noise *= np.float32(level * population_std(arrays))
    out, start = [], 0
    for a in arrays:
        part = noise[start : start + a.size].reshape(a.shape)
        # the noise buffer becomes the result: no second 150 MB array for dense_1
        out.append(np.add(part, a, out=part) if a.dtype == np.float32 else (part + a).astype(a.dtype))
        start += a.size
    return out


# σ of groups whose arrays cannot change: id()s -> (weak references to the arrays, σ).
_FROZEN_SIGMAS: dict[tuple[int, ...], tuple[list, float]] = {}
# Read-only views vouched for by their holder (`unchanging`): id() -> weak reference.
_UNCHANGING: dict[int, weakref.ref] = {}
_LOCK = threading.Lock()


def unchanging(arrays) -> None:
    """Vouch that these read-only arrays, which need not own their memory, hold values that
    nothing changes while they live, so that `population_std` may remember their σ.

    `run.resident` holds a layer's originals as views of a snapshot of the model's
    variables, memory that TensorFlow never writes; a view's memory could otherwise
    change through its base, so views are not remembered unless vouched for.
    """
    with _LOCK:
        for stale in [k for k, ref in _UNCHANGING.items() if ref() is None]:
            del _UNCHANGING[stale]
        for a in arrays:
            if a.flags.writeable:
                raise ValueError("only a read-only array can be vouched unchanging")
            _UNCHANGING[id(a)] = weakref.ref(a)


def _frozen(a: np.ndarray) -> bool:
    if a.flags.writeable:
        return False
    if a.flags.owndata:
        return True
    ref = _UNCHANGING.get(id(a))
    return ref is not None and ref() is a


def population_std(arrays) -> float:
    """Population standard deviation over all entries of all arrays (the whole group).

    Sums accumulate in float64 without float64 copies of the weights (np.std with
    dtype=float64 makes two, 300 MB each for dense_1). Arrays that cannot change (read-only
    and owning their data, or vouched for with `unchanging`, as `run.resident` does for a
    layer's originals while its trials run) are remembered while they live: their σ is
    computed once for all those trials.
    """
    if not all(_frozen(a) for a in arrays):
        return _population_std(arrays)
    key = tuple(id(a) for a in arrays)
    # One lock for computing and remembering: the engine draws several trials of a layer at
    # once, and they should wait for one σ rather than each compute it.
    with _LOCK:
        refs, sigma = _FROZEN_SIGMAS.get(key, ((), None))
        if sigma is None or any(ref() is not a for ref, a in zip(refs, arrays)):
            sigma = _population_std(arrays)
            for stale in [k for k, (refs, _) in _FROZEN_SIGMAS.items() if any(ref() is None for ref in refs)]:
                del _FROZEN_SIGMAS[stale]
            _FROZEN_SIGMAS[key] = ([weakref.ref(a) for a in arrays], sigma)
    return sigma


def _population_std(arrays) -> float:
    n = sum(a.size for a in arrays)
    mean = sum(float(np.sum(a, dtype=np.float64)) for a in arrays) / n
    squares = 0.0
    for a in arrays:
        deviation = a.astype(np.float32) - np.float32(mean)
        squares += float(np.sum(np.square(deviation, out=deviation), dtype=np.float64))
    return math.sqrt(squares / n)
