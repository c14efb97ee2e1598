"""Fine-tuning a damaged network in Keras: SGD with momentum in a plain tf.function step,
the lesion held or free, some layers trained and the rest frozen, and a checkpoint that
makes a resumed run equal an uninterrupted one.

What a step does. The model runs in training mode (its Dropout layers active, BatchNorm
frozen: only the chosen groups' Dense and Conv2D layers train), the loss is the mean
softmax cross-entropy of the logits plus Caffe's weight decay ½·λ·Σ‖W‖² over the trained
kernels (not the biases, whose decay_mult is 0 in BVLC's solvers), and Keras's SGD takes one
step with momentum (v ← μv − η∇, w ← w + v: Caffe's update with the sign moved).

A *held* lesion keeps every entry the perturbation changed at its damaged value (exactly
zero for the knockouts, the noisy value for Gaussian noise): its gradient is zeroed, so
its momentum stays zero, and after every step the entry is written back, which makes it
exact whatever the optimizer does. A *free* lesion trains like any other weight.

Determinism: the data stream is a function of (seed, step) (`data.training`), the Dropout
layers' generators are seeded from the study seed at step 0 and their states are saved
with the weights, and TensorFlow's op determinism is switched on (`deterministic`). A
checkpoint holds every model variable, the optimizer's, and the caller's meta (the step,
and the last segment's loss and seconds).

A note on node knockout with a free lesion: a unit whose incoming weights and bias are all
zero puts out exactly 0 before its ReLU, where the ReLU's gradient is 0, so no gradient ever
reaches those weights (and weight decay of 0 is 0). Such a lesion stays at zero free or
held; only units not followed by a ReLU (an output layer's) can regrow.
"""

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from replication.data.training import derived_seed
from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.models.groups import WeightGroup, group_layers
from replication.recovery.table import TRAIN_LAYERS
from replication.run.scoring import scores_model


@dataclass(frozen=True)
class Training:
    """How every run of a study is fine-tuned and when it is scored."""

    steps: int  # SGD steps per run
    eval_every: int  # score the held-out images every this many steps (and at 0 and at `steps`)
    batch_size: int = 64
    learning_rate: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0005
    augment: bool = True  # Caffe's random crop and mirror (data.training)
    seed: int = 0  # the data stream's and the Dropout layers' seed

    def __post_init__(self):
        if self.steps < 1 or self.eval_every < 1 or self.batch_size < 1:
            raise ReplicationError(None, "steps, eval_every and batch_size must be at least 1")
        if not (self.learning_rate > 0 and 0 <= self.momentum < 1 and self.weight_decay >= 0):
            raise ReplicationError(None, "the learning rate must be > 0, momentum in [0, 1) and weight decay >= 0")

    @property
    def eval_steps(self) -> list[int]:
        """0, eval_every, 2·eval_every, …, and the last step."""
        return sorted({*range(0, self.steps, self.eval_every), self.steps})


def deterministic() -> None:
    """Make TensorFlow's ops deterministic for the rest of the process (the same command
    twice gives the same table). Some ops have no deterministic kernel on GPUs; TensorFlow
    then raises an error naming the op rather than computing something else."""
    tf.config.experimental.enable_op_determinism()


def trained_groups(groups: dict[str, WeightGroup], damaged: str, train_layers: str) -> list[WeightGroup]:
    """The groups a run trains: every one, the damaged one, those after it or those before
    it in network order.

    Args:
        groups: the model's groups in network order (`groups.weight_groups`).
        damaged: the damaged group's name.
        train_layers: one of TRAIN_LAYERS.
    """
    if train_layers not in TRAIN_LAYERS:
        raise ReplicationError(None, f"train layers must be one of {', '.join(TRAIN_LAYERS)}, not {train_layers!r}")
    names = list(groups)
    at = names.index(damaged)
    chosen = {"all": names, "damaged": [damaged], "above": names[at + 1 :], "below": names[:at]}[train_layers]
    if not chosen:
        where = "after" if train_layers == "above" else "before"
        raise ReplicationError(None, f"--train-layers {train_layers}: no layer with weights comes {where} {damaged}")
    return [groups[name] for name in chosen]


@dataclass
class Lesion:
    """The entries a perturbation changed in each weight variable of the damaged group:
    (variable, changed mask, their damaged values), for the variables with any change."""

    entries: list

    @classmethod
    def of(cls, layers, touched: list[list[np.ndarray]], damaged: list[list[np.ndarray]]) -> "Lesion":
        """The lesion of `layers` (a group's members): the entries `touched` marks
        (`perturb.apply.touched_entries`), held at their `damaged` values (get_weights()
        of the damaged layers)."""
        entries = []
        for layer, masks, arrays in zip(layers, touched, damaged):
            for variable, changed, values in zip(layer.weights, masks, arrays):
                if changed.any():
                    entries.append((variable, changed, np.array(values, copy=True)))
        return cls(entries)

    def digest(self) -> str:
        """sha256 of the current values of every lesioned entry, in order: it stays the
        damaged values' digest exactly while the lesion is held."""
        return _sha256(np.asarray(variable.numpy())[changed] for variable, changed, _ in self.entries)

    def damaged_digest(self) -> str:
        """sha256 of the damaged values of every lesioned entry, as `digest` reads them."""
        return _sha256(values[changed] for _, changed, values in self.entries)

    @property
    def size(self) -> int:
        return int(sum(changed.sum() for _, changed, _ in self.entries))


def _sha256(arrays) -> str:
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


class Trainer:
    """The fine-tuning of one run: `step` trains on one batch; `save`/`load` checkpoint it.

    Args:
        model: the Keras model, already damaged; its weights change in place.
        groups: the groups to train (`trained_groups`); every other layer is frozen.
        lesion: the entries to hold (`Lesion`), or None for a free lesion or a control.
        training: the study's settings.
    """

    def __init__(self, model, groups: list[WeightGroup], lesion: Lesion | None, training: Training):
        self.model, self.training = model, training
        train_names = {name for group in groups for name in group.members}
        for layer in model.layers:
            if layer.weights:
                layer.trainable = layer.name in train_names  # BatchNorm frozen: inference mode
        layers = [layer for group in groups for layer in group_layers(model, group)]
        self.variables = [v for layer in layers for v in layer.trainable_weights]
        kernels = [layer.kernel for layer in layers if getattr(layer, "kernel", None) is not None]
        trained = {id(v) for v in self.variables}
        held = [(v, changed, values) for v, changed, values in (lesion.entries if lesion else []) if id(v) in trained]
        keep = {id(v): tf.constant(~changed) for v, changed, _ in held}
        self._held = [(v, keep[id(v)], tf.constant(values)) for v, _, values in held]
        self.optimizer = keras.optimizers.SGD(learning_rate=training.learning_rate, momentum=training.momentum)
        self.optimizer.build(self.variables)
        logits = scores_model(model)
        decay = training.weight_decay

        @tf.function
        def step(images, labels):
            with tf.GradientTape() as tape:
                scores = tf.cast(logits(images, training=True), tf.float32)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=scores))
                objective = loss
                if decay:
                    objective += 0.5 * decay * tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
            grads = tape.gradient(objective, self.variables)
            grads = [tf.where(keep[id(v)], g, tf.zeros_like(g)) if id(v) in keep else g
                     for v, g in zip(self.variables, grads)]
            self.optimizer.apply_gradients(zip(grads, self.variables))
            for variable, kept, values in self._held:
                variable.assign(tf.where(kept, variable.value, values))
            return loss

        self.step = step

    def seed_dropout(self, seed: int) -> None:
        """Give every Dropout layer its own generator state derived from `seed` (step 0)."""
        dropouts = [layer for layer in self.model.layers if getattr(layer, "seed_generator", None) is not None]
        for i, layer in enumerate(dropouts):  # a Dropout of rate 0 has no generator
            layer.seed_generator.state.assign(np.array([derived_seed(seed, f"dropout|{i}"), 0], dtype=np.int64))

    def _all_variables(self) -> list:
        return list(self.model.variables) + list(self.optimizer.variables)

    def save(self, path: Path, meta: dict) -> None:
        """Write every model and optimizer variable and `meta` to `path`, atomically and
        durably: a kill leaves the previous checkpoint or this one, never half of one. The
        file carries the sha256 of its contents, checked by `read_checkpoint`."""
        arrays = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(self._all_variables())}
        arrays["meta"] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        arrays[CHECKSUM] = np.frombuffer(_checkpoint_digest(arrays).encode(), dtype=np.uint8)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())

    def load(self, path: Path, arrays: dict | None = None) -> dict:
        """Put back what `save` wrote (`arrays`, when already read by `read_checkpoint`);
        returns its meta."""
        if arrays is None:
            arrays, _ = read_checkpoint(path)
        variables = self._all_variables()
        if len(arrays) != len(variables) + 2:
            raise ReplicationError(path, "checkpoint does not fit this model and optimizer")
        for i, v in enumerate(variables):
            value = arrays[f"v{i}"]
            if tuple(value.shape) != tuple(v.shape):
                raise ReplicationError(path, f"checkpoint variable {i} has shape {value.shape}, expected {v.shape}")
            v.assign(value)
        return json.loads(bytes(arrays["meta"]).decode())


CHECKSUM = "sha256"  # the checkpoint's entry that holds the digest of all the others


class DamagedCheckpoint(ReplicationError):
    """A checkpoint that cannot be read back as written: truncated, a flipped bit, not a
    checkpoint at all."""


def _checkpoint_digest(arrays: dict) -> str:
    """sha256 of every entry but the checksum: name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == CHECKSUM:
            continue
        value = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """Every array of a checkpoint, verified against the sha256 it carries, and its meta.

    Returns:
        (name -> array, meta).

    Raises:
        DamagedCheckpoint: the file is unreadable, incomplete, or its contents differ from
            what was written (the checksum does not match, or there is none).
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        meta = json.loads(bytes(arrays["meta"]).decode())
    except KeyError:
        raise DamagedCheckpoint(path, "damaged checkpoint (no meta entry)") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise DamagedCheckpoint(path, f"damaged checkpoint ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    if CHECKSUM not in arrays:
        raise DamagedCheckpoint(path, "checkpoint without a checksum (damaged, or from an older version)")
    if bytes(arrays[CHECKSUM]).decode(errors="replace") != _checkpoint_digest(arrays):
        raise DamagedCheckpoint(path, "damaged checkpoint (its contents do not match their sha256)")
    return arrays, meta


