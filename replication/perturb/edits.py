"""What a perturbation returns for each weight array: its new values, or a `Zero`.

A perturbation function returns, for every array of the group, either

- an ndarray: the array's new values (same shape and dtype), or
- `Zero(where)`: the entries where the boolean `where` is True become +0.0 and every other
  entry keeps its bits. `where` broadcasts against the array (node knockout passes one
  flag per unit, shape (units,)), so it is small or at most one byte per entry.

The knockouts return `Zero`s. A `Zero` costs little to draw on the host, and it can be
applied where the weights live: `run.resident` keeps a layer's original weights on the
device and applies a `Zero` there, so only the mask crosses to the device, never the
layer's weights. `materialize` gives the same bits on the host; `perturb_arrays` calls
it, so callers that want plain arrays never see a `Zero`.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Zero:
    """Set to +0.0 the entries of one weight array where `where` is True."""

    where: np.ndarray  # bool, broadcastable to the array's shape without enlarging it

    def check(self, array: np.ndarray) -> None:
        """ValueError unless `where` is a boolean mask that broadcasts to `array`'s shape."""
        if not isinstance(self.where, np.ndarray) or self.where.dtype != np.bool_:
            found = self.where.dtype if isinstance(self.where, np.ndarray) else type(self.where).__name__
            raise ValueError(f"a Zero's mask must be a boolean array, not {found}")
        try:
            shape = np.broadcast_shapes(self.where.shape, array.shape)
        except ValueError:
            shape = None
        if shape != array.shape:
            raise ValueError(f"a Zero's mask of shape {self.where.shape} does not broadcast to {array.shape}")


def check_edit(array: np.ndarray, edit) -> None:
    """ValueError unless `edit` is a valid edit of `array`: a Zero that fits it, or new
    values of its shape and dtype."""
    if isinstance(edit, Zero):
        edit.check(array)
    elif not isinstance(edit, np.ndarray) or edit.shape != array.shape or edit.dtype != array.dtype:
        found = (edit.shape, edit.dtype) if isinstance(edit, np.ndarray) else type(edit).__name__
        raise ValueError(f"a perturbation must return arrays of shape and dtype {(array.shape, array.dtype)} "
                         f"or a Zero, not {found}")


def materialize(array: np.ndarray, edit) -> np.ndarray:
    """The array's perturbed values: a Zero applied to a copy, or the new values as given."""
    if isinstance(edit, Zero):
        return np.where(edit.where, np.zeros((), array.dtype), array)
    return edit



def zeroed_units(arrays: list[np.ndarray], edits: list) -> np.ndarray | None:
    """The units (indices along the last axis) that `edits` set entirely to 0.0 in every
    array, when that is all they change; None when they change anything else.

    Read from the edits themselves, without materializing a Zero over a copy of the
    weights and without drawing the trial again: a unit is changed when an entry of it
    differs from the original after the edit, and zeroed when all its entries are 0.0
    after it.

    Args:
        arrays: one layer's original weights, [kernel] or [kernel, bias(units)].
        edits: what a perturbation returned for each of them (new values or a Zero).

    Returns:
        The zeroed units' indices (empty when nothing changes), or None.
    """
    units = arrays[0].shape[-1]
    changed = np.zeros(units, dtype=bool)
    nonzero = np.zeros(units, dtype=bool)
    for array, edit in zip(arrays, edits):
        if array.shape[-1:] != (units,):
            return None
        old = array.reshape(-1, units)
        if isinstance(edit, Zero):
            where = np.broadcast_to(edit.where, array.shape).reshape(-1, units)
            was = old != 0  # a NaN too: it becomes 0.0, so it changes
            changed |= np.any(where & was, axis=0)
            nonzero |= np.any(~where & was, axis=0)
        else:
            new = edit.reshape(-1, units)
            changed |= np.any(old != new, axis=0)
            nonzero |= np.any(new != 0, axis=0)
    return np.flatnonzero(changed) if not np.any(changed & nonzero) else None
