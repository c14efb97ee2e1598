"""A recovery study: every run fine-tuned in turn, scored on the held-out images at the
training's evaluation steps, each score appended to the recovery table as it is made.

Order within a run, at each evaluation step s: train up to s, write the checkpoint, score,
append the row. A run killed anywhere resumes from its last checkpoint: the rows written
stay, a row whose checkpoint was written but not its row is scored from that checkpoint,
and the steps after it are trained again from the checkpoint's exact state, so the table
ends as an uninterrupted run's would and no step appears twice. A checkpoint is removed
once its run's last row is written; one that does not belong to this study and table
state, or whose contents do not match the sha256 it carries (damaged), is set aside with
a warning, never used, and its run starts again from step 0.
"""

import hashlib
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from replication.data.training import training_stream
from replication.errors import ReplicationError
from replication.models.groups import group_layers, weight_groups
from replication.perturb.apply import perturbed, touched_entries
from replication.perturb.trials import Trial, trial_seed
from replication.recovery.table import RecoveryLog, RecoveryRun, StudyInfo, control_of
from replication.recovery.train import (
    DamagedCheckpoint,
    Lesion,
    Trainer,
    Training,
    deterministic,
    read_checkpoint,
    trained_groups,
)
from replication.run import engine


def study_info(model: str, weights_sha256: str, train_id: str, train_images: int, heldout_id: str,
               heldout_images: int, training: Training, precision: str, semantics: str, version: str) -> StudyInfo:
    """The identity every row of a study's table carries, the training settings among it."""
    settings = {k: v for k, v in asdict(training).items() if k != "steps"}  # more steps extend a study
    return StudyInfo(model=model, weights_sha256=weights_sha256, train_id=train_id, train_images=train_images,
                     heldout_id=heldout_id, heldout_images=heldout_images, precision=precision,
                     semantics=semantics, version=version, **settings)


def study_runs(layers, perturbation: str, levels, repeats: int, lesions, train_layers, control: bool = True):
    """The runs of a study, each damaged layer's control first, with no run twice.

    Args:
        layers: damaged layers (group names), in network order.
        perturbation, levels, repeats: the sweep trials whose damage is fine-tuned.
        lesions: modes among `table.LESIONS`.
        train_layers: choices among `table.TRAIN_LAYERS`.
        control: include each layer's control (the undamaged network, trained alike).
    """
    runs = []
    for layer in layers:
        for trains in train_layers:
            damaged = [RecoveryRun(Trial(layer, perturbation, level, repeat), lesion, trains)
                       for level in levels for repeat in range(repeats) for lesion in lesions]
            runs += ([control_of(damaged[0])] if control else []) + damaged
    return list({run.key: run for run in runs}.values())


def pending_runs(log: RecoveryLog, runs, training: Training) -> list[RecoveryRun]:
    """The runs whose last evaluation is not in the table yet."""
    return [run for run in runs if training.steps not in log.steps_done(run)]


def checkpoint_path(table: Path, run: RecoveryRun) -> Path:
    """Where `run`'s checkpoint lives: TABLE.checkpoints/<hash of the run>.npz."""
    name = hashlib.sha256(repr(run.key).encode()).hexdigest()[:16]
    return Path(f"{table}.checkpoints") / f"{name}.npz"


def run_study(model, runs: list[RecoveryRun], train_dataset, prep, heldout_images, heldout_labels,
              log: RecoveryLog, training: Training, seed_scope: str, *, semantics="paper", eval_batch_size=64,
              progress=True, on_lesion=None) -> None:
    """Run every recovery run not finished in `log`, deterministically (`train.deterministic`).

    Args:
        model: the Keras model with the study's weights; they are the same afterwards.
        runs: what to run (`study_runs`); a run already finished in `log` is skipped.
        train_dataset, prep: the training images, checked (`data.check_images`), and their
            preprocessing (`data.training`).
        heldout_images, heldout_labels: the decoded held-out images (`data.load_arrays`).
        log: the open recovery table.
        training: the study's settings.
        seed_scope: the sweeps' "<model>:<weights sha256>" (`run.sweep.seed_scope_of`), so
            that a trial damages the network as the sweeps' row of that trial did.
        semantics: one of `perturb.SEMANTICS`.
        eval_batch_size: images per batch when scoring.
        progress: a progress bar of training steps on stderr.
        on_lesion: called as on_lesion(run, lesion) after each held run's last step.

    Raises:
        ReplicationError: training diverged (a non-finite loss), or a held lesion moved.
    """
    deterministic()
    runs = list({run.key: run for run in runs}.values())
    for run in runs:  # a kill between a run's last row and its clean-up leaves its checkpoint
        if training.steps in log.steps_done(run):
            checkpoint_path(log.path, run).unlink(missing_ok=True)
    pending = pending_runs(log, runs, training)
    groups = weight_groups(model)
    snapshot = [np.array(v.numpy(), copy=True) for v in model.variables]
    trainable = {layer.name: layer.trainable for layer in model.layers}
    score = engine.counter(model, eval_batch_size)
    with tqdm(total=len(pending) * training.steps, unit="step", disable=not progress, desc=log.path.name,
              file=sys.stderr) as bar:
        for run in pending:
            try:
                _run_one(model, groups, run, train_dataset, prep, heldout_images, heldout_labels, log, training,
                         seed_scope, semantics, score, bar, on_lesion)
            finally:
                for variable, value in zip(model.variables, snapshot):
                    variable.assign(value)
                for layer in model.layers:
                    layer.trainable = trainable[layer.name]


def _usable_checkpoint(path: Path, log: RecoveryLog, run: RecoveryRun, training: Training):
    """(meta, arrays) of `run`'s checkpoint when it reads back as written (its sha256),
    belongs to this study and every evaluation before it is in the table; otherwise None,
    and a file that is there is set aside, named, so the run starts clean."""
    if not path.exists():
        return None
    try:
        arrays, meta = read_checkpoint(path)
    except DamagedCheckpoint as err:
        aside = path.with_suffix(".damaged")
        path.replace(aside)
        print(f"warning: {err.message}: {path}; moved to {aside.name}, the run starts again from step 0 "
              "(rows already in the table are kept)", file=sys.stderr)
        return None
    done = log.steps_done(run)
    usable = (
        isinstance(meta, dict)
        and meta.get("study") == log.study.as_row()
        and meta.get("run") == list(map(str, run.key))
        and meta.get("step") in training.eval_steps
        and all(s in done for s in training.eval_steps if s < meta["step"])
    )
    if not usable:
        aside = path.with_suffix(".unused")
        path.replace(aside)
        print(f"warning: {path}: a checkpoint of another study or table state; moved to {aside.name}", file=sys.stderr)
        return None
    return meta, arrays


def _run_one(model, groups, run, train_dataset, prep, images, labels, log, training, scope, semantics, score, bar,
             on_lesion):
    trial = run.trial
    group = groups[trial.layer]
    layers = group_layers(model, group)
    path = checkpoint_path(log.path, run)
    lesion = None
    if run.lesion == "held":
        originals = [[np.array(w, copy=True) for w in layer.get_weights()] for layer in layers]
        touched = touched_entries(originals, group, trial, scope, semantics)
    with perturbed(model, group, trial, scope, semantics):
        if run.lesion == "held":
            lesion = Lesion.of(layers, touched, [layer.get_weights() for layer in layers])
        trainer = Trainer(model, trained_groups(groups, trial.layer, run.train_layers), lesion, training)
        checkpoint = _usable_checkpoint(path, log, run, training)
        if checkpoint is None:
            trainer.seed_dropout(training.seed)
            meta = {"step": 0, "loss": None, "seconds": 0.0}
        else:
            meta, arrays = checkpoint
            trainer.load(path, arrays)
            del arrays
        step = meta["step"]
        bar.update(step)
        seed = trial_seed(scope, trial)

        def record(step, loss, seconds):
            if step not in log.steps_done(run):
                top1, top5 = score(images, labels)
                count = len(labels)
                log.append(run, seed, step, step * training.batch_size, top1 / count, top5 / count, loss, seconds)
                bar.set_postfix_str(f"{run.label} step {step} top5={top5 / count:.3f}")

        record(step, meta["loss"], meta["seconds"])
        for target in [s for s in training.eval_steps if s > step]:
            start, losses = time.perf_counter(), []
            stream = training_stream(train_dataset, prep, training.batch_size, training.seed, step, target,
                                     training.augment)
            for batch, batch_labels in stream:
                losses.append(trainer.step(batch, batch_labels))  # kept on the device: no sync per step
                bar.update()
            loss = float(tf.reduce_mean(tf.stack(losses)))
            seconds = time.perf_counter() - start
            if not math.isfinite(loss):
                raise ReplicationError(log.path, f"{run.label}: training diverged before step {target} "
                                       f"(mean loss {loss}); lower --learning-rate")
            meta = {"study": log.study.as_row(), "run": list(map(str, run.key)), "step": target, "loss": loss,
                    "seconds": seconds}
            trainer.save(path, meta)
            step = target
            record(step, loss, seconds)
        if lesion is not None:
            if lesion.digest() != lesion.damaged_digest():
                raise ReplicationError(log.path, f"{run.label}: the held lesion moved in training (a bug)")
            if on_lesion is not None:
                on_lesion(run, lesion)
    path.unlink(missing_ok=True)
