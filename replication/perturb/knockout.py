"""Synapse and node knockout (the paper's sections 4.1 and 4.2).

- synapse knockout(p): zero floor(p·n) entries of W, chosen uniformly without
  replacement among all n entries of the group's kernels, then likewise floor(p·n_b)
  entries of b;
- node knockout(p): zero all incoming weights and the bias of floor(p·u) units, chosen
  uniformly among all u units of the group (all 256 filters of conv_2, both halves).

semantics="authors_code" reproduces where the authors' published code differs from the
paper's description of node knockout:
- in a split layer it draws floor(p·u_half) filter indices once and zeroes those same
  indices in every half (so the halves lose the same filters);
- in a dense layer it also zeroes the input rows with the knocked-out indices
  (W[idx, :] as well as W[:, idx]) where such a row exists. Those indices are row
  numbers of the authors' model. Where a dense layer reads a flattened spatial tensor
  (AlexNet's dense_1 reads pool5), their Theano model flattened it (C, H, W) and ours
  (H, W, C), so node knockout reads the group's `flatten_hwc` to find the same rows
  (`chw_rows_in_hwc`).

Both return `edits.Zero`s, the entries they zero, rather than perturbed copies.

Draw order: first everything for the kernels W (the whole group at once, members in
order), then everything for the biases b; node knockout makes one draw, the units,
which decides both.
"""

import numpy as np

from replication.arrays import aligned_empty
from replication.perturb.edits import Zero
from replication.perturb.registry import check_semantics, register_perturbation
from replication.perturb.trials import knockout_count


def random_subset_mask(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of length n with exactly k True entries, a uniformly random k-subset.

    rng.choice(n, k, replace=False) costs more than a second for AlexNet's 37.7M
    dense_1 weights. Instead: mark each entry with probability k/n, then add or remove
    the few entries needed to reach exactly k, choosing them uniformly. Given its
    count, a Bernoulli mask is a uniform subset of that size, and uniformly removing
    from (or adding to) a uniform subset leaves a uniform subset: the result is exact.

    The uniforms are drawn in blocks into one reused buffer, and the entries to flip are
    found block by block: the same numbers, in the same order, as drawing all n at once
    and indexing np.flatnonzero of the mask, without their two layer-sized temporaries
    (which, freshly allocated for every trial, cost more than the arithmetic).
    """
    if not 0 <= k <= n:
        raise ValueError(f"cannot choose {k} of {n}")
    mask = aligned_empty(n, bool)  # the engine can then hand it to TensorFlow as it is
    if n == 0:
        return mask
    threshold = np.float32(k / n)
    uniforms = np.empty(min(n, _BLOCK), dtype=np.float32)
    for lo in range(0, n, _BLOCK):
        block = uniforms[: min(_BLOCK, n - lo)]
        rng.random(out=block, dtype=np.float32)  # a Generator's stream does not depend on how it is cut
        np.less(block, threshold, out=mask[lo : lo + len(block)])
    chosen = int(np.count_nonzero(mask))
    if chosen > k:
        mask[_nth_where(mask, True, rng.choice(chosen, chosen - k, replace=False))] = False
    elif chosen < k:
        mask[_nth_where(mask, False, rng.choice(n - chosen, k - chosen, replace=False))] = True
    return mask


_BLOCK = 2**20


def _nth_where(mask: np.ndarray, value: bool, ranks: np.ndarray) -> np.ndarray:
    """Positions of the entries of `mask` equal to `value` with the given ranks (0 = the
    first such entry): np.flatnonzero(mask == value)[ranks], found one block at a time."""
    starts = np.arange(0, len(mask), _BLOCK)
    found = np.array([np.count_nonzero(mask[lo : lo + _BLOCK]) for lo in starts], dtype=np.int64)
    if not value:
        found = np.minimum(_BLOCK, len(mask) - starts) - found
    before = np.cumsum(found) - found  # entries equal to `value` before each block
    block_of = np.searchsorted(before, ranks, side="right") - 1
    positions = np.empty(len(ranks), dtype=np.int64)
    for b in np.unique(block_of):
        lo = int(starts[b])
        here = block_of == b
        inside = np.flatnonzero(mask[lo : lo + _BLOCK] == value)
        positions[here] = lo + inside[ranks[here] - before[b]]
    return positions


def knocked_out_units(unit_counts: list[int], level: float, rng: np.random.Generator, semantics="paper") -> list[np.ndarray]:
    """The units (last-axis indices, sorted) that node knockout removes, one array per member.

    This is the only draw node knockout makes. Under "authors_code" a Dense member also
    loses its input rows with these indices.
    """
    check_semantics(semantics)
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


def kernels_and_biases(originals) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The group's kernels W, one per member, and the biases b of the members that have one."""
    return [arrays[0] for arrays in originals], [arrays[1] for arrays in originals if len(arrays) == 2]


def reassemble(originals, kernels, biases) -> list[list[np.ndarray]]:
    """Per-member [W] or [W, b] lists again, in the layout of `originals`."""
    out, b = [], iter(biases)
    for arrays, w in zip(originals, kernels):
        out.append([w, next(b)] if len(arrays) == 2 else [w])
    return out


@register_perturbation("synapse", title="Synapse knockout", level_label="proportion of synapses knocked out",
                       max_level=1.0)
def synapse_knockout(originals, level, rng, semantics="paper"):
    """Zero floor(level·n) entries of the group's W, then floor(level·n_b) of its b."""
    kernels, biases = kernels_and_biases(originals)
    kernels = _knock_out_entries(kernels, level, rng)  # draws for W first
    return reassemble(originals, kernels, _knock_out_entries(biases, level, rng))


def _knock_out_entries(arrays, level, rng) -> list[Zero]:
    """Zero floor(level · n) entries chosen over all arrays together (one group)."""
    sizes = [a.size for a in arrays]
    n = sum(sizes)
    mask = random_subset_mask(n, knockout_count(level, n), rng)
    bounds = np.cumsum([0, *sizes])
    return [Zero(mask[lo:hi].reshape(a.shape)) for a, lo, hi in zip(arrays, bounds[:-1], bounds[1:])]


def chw_rows_in_hwc(flatten_hwc: tuple[int, int, int]) -> np.ndarray:
    """Where each row of a (C, H, W)-flattened input lies in the (H, W, C)-flattened one.

    Args:
        flatten_hwc: the flattened tensor's (H, W, C) (`WeightGroup.flatten_hwc`).

    Returns:
        order with order[r] = our row of the authors' row r = c·H·W + h·W + w, i.e.
        (h·W + w)·C + c.
    """
    h, w, c = flatten_hwc
    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


@register_perturbation("node", title="Node knockout", level_label="proportion of nodes knocked out", max_level=1.0)
def node_knockout(originals, level, rng, semantics="paper", group=None):
    """Zero the incoming weights and bias of floor(level·units) of the group's units.

    Args:
        originals, level, rng, semantics: as every perturbation (`perturb.registry`).
        group: the layer's `WeightGroup`. Read only under "authors_code", for a dense
            layer that reads a flattened spatial tensor (`flatten_hwc` set): the input
            rows the authors' code zeroes are row numbers of their channel-first
            flatten, found in ours through `chw_rows_in_hwc`. None, or no flatten_hwc:
            rows are numbered alike in both models (a dense layer after a dense layer).

    Returns:
        One `Zero` per array of `originals`.
    """
    units = knocked_out_units([arrays[0].shape[-1] for arrays in originals], level, rng, semantics)
    flatten = getattr(group, "flatten_hwc", None)
    row_order = chw_rows_in_hwc(flatten) if semantics == "authors_code" and flatten is not None else None
    kernels, biases = [], []
    for arrays, idx in zip(originals, units):
        w = arrays[0]
        unit_mask = np.zeros(w.shape[-1], dtype=bool)
        unit_mask[idx] = True
        where = unit_mask  # broadcasts over the kernel's other axes
        if semantics == "authors_code" and w.ndim == 2:
            rows = idx[idx < w.shape[0]]  # the published code's extra step for dense layers
            if row_order is not None:
                if len(row_order) != w.shape[0]:
                    raise ValueError(f"row_order has {len(row_order)} rows, the layer {w.shape[0]}")
                rows = np.asarray(row_order)[rows]
            row_mask = np.zeros(w.shape[0], dtype=bool)
            row_mask[rows] = True
            where = np.logical_or(row_mask[:, None], unit_mask[None, :], out=aligned_empty(w.shape, bool))
        kernels.append(Zero(where))
        if len(arrays) == 2:
            biases.append(Zero(unit_mask.copy()))
    return reassemble(originals, kernels, biases)
