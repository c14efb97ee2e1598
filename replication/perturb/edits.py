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

