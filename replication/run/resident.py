"""A weight group's original weights held where the model runs, and trials applied there.

`perturb.perturbed` copies a layer's weights out of the model, perturbs the copies on the
host, writes them in and writes the originals back: for AlexNet's dense_1 that is three
transfers of 150 MB per trial, more than the network's own time on 50,000 images on a
GPU. A `ResidentGroup` instead holds the originals once where the model runs (a snapshot,
without a copy on the variable's own device) and on the host (what the draws read: shapes,
and the weights themselves for Gaussian noise's σ), and per trial

- draws the trial's edits on the host (`draw`, NumPy, the trial's own generator: the same
  draws and so the same bits as `perturbed`); the knockouts' edits are masks
  (`perturb.edits.Zero`), one byte per entry or one flag per unit;
- applies them on the device (`applied`): a mask selects between the resident original and
  0.0, so only the mask crosses to the device; new values (Gaussian noise) are copied in.
  On a host without GPUs the layer-sized ones are not copied either: the draws allocate
  them aligned, and TensorFlow takes them as they are (`host.to_tensor`);
- puts the originals back from the snapshot, bit-exactly, also after a raise.

`draw` touches no TensorFlow state, so the engine runs it for the next trial on a host
thread while the device runs the current one.
"""

import contextlib

import numpy as np
import tensorflow as tf

from replication.models.groups import group_layers
from replication.perturb.apply import trial_edits
from replication.perturb.edits import Zero, zeroed_units
from replication.perturb.gaussian import unchanging
from replication.perturb.trials import Trial
from replication.run.host import to_tensor


class ResidentGroup:
    """One weight group of one model, ready for many trials.

    Args:
        model: the Keras model; its variables are changed in place inside `applied`.
        group: the WeightGroup.
        seed_scope, semantics: as `perturb.perturbed`.

    Enter `held()` under the `tf.device` scope of the stream that uses it: the resident
    originals are made there.
    """

    def __init__(self, model, group, seed_scope: str, semantics: str = "paper"):
        self.group, self.seed_scope, self.semantics = group, seed_scope, semantics
        self.layers = group_layers(model, group)
        self.variables = [v for layer in self.layers for v in layer.weights]
        self.originals = self.resident = None

    @property
    def nbytes(self) -> int:
        """Bytes of the group's weights: what one trial's new values take."""
        return sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in self.variables)

    @contextlib.contextmanager
    def held(self):
        """Within the block the originals are held on the host and on the current device
        (`draw` and `applied` work); afterwards they are dropped, so a sweep holds the copies
        of one group at a time."""
        # A read of a variable shares its buffer, and TensorFlow never writes into a buffer
        # that a read still holds: `assign` then gives the variable a new one. So a read is
        # a snapshot of the originals that no trial can change, without a copy where the
        # variable already lives on this device (a copy to it where it does not). On a CPU
        # the host's arrays are views of the same memory; from a GPU they are copied back.
        self.resident = [tf.identity(v) for v in self.variables]
        host = [np.asarray(t) for t in self.resident]
        for a in host:
            a.setflags(write=False)  # no trial may change them
        unchanging(host)  # and nothing else does: draws may remember their σ
        it = iter(host)
        self.originals = [[next(it) for _ in layer.weights] for layer in self.layers]  # as get_weights()
        try:
            yield self
        finally:
            self.originals = self.resident = None

    def draw(self, trial: Trial) -> list:
        """The trial's edits, flat in the order of `self.variables`; host work only."""
        if trial.layer != self.group.name:
            raise ValueError(f"trial is for layer {trial.layer!r}, group is {self.group.name!r}")
        return [e for member in trial_edits(self.originals, self.group, trial, self.seed_scope, self.semantics)
                for e in member]

    def zeroed_units(self, edits: list) -> np.ndarray | None:
        """The units `edits` (from `draw`) zero entirely, when that is all they change and the
        group is one layer (`perturb.edits.zeroed_units`); None otherwise. Inside `held()`."""
        if len(self.layers) != 1:
            return None
        return zeroed_units(self.originals[0], edits)

    @contextlib.contextmanager
    def applied(self, edits: list):
        """Run the block with `edits` (from `draw`) in the model's variables; the originals
        are put back from the resident copies afterwards, also when the block raises.

        On a host without GPUs new values (Gaussian noise) are shared, not copied
        (`host.to_tensor`): within the block they are the variables' contents, so they
        must not be changed until it ends."""
        try:
            for variable, original, edit in zip(self.variables, self.resident, edits):
                if isinstance(edit, Zero):
                    variable.assign(tf.where(to_tensor(edit.where), tf.zeros((), original.dtype), original))
                else:
                    variable.assign(to_tensor(edit))
            yield
        finally:
            for variable, original in zip(self.variables, self.resident):
                variable.assign(original)

