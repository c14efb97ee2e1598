"""A recovery study: every run fine-tuned in turn, scored on the held-out images at the
training's evaluation steps, each score appended to the recovery table as it is made.

Order within a run, at each evaluation step s: train up to s, write the checkpoint, score,
append the row. A run killed anywhere resumes from its last checkpoint: the rows written
stay, a row whose checkpoint was written but not its row is scored from that checkpoint,
and the steps after it are trained again from the checkpoint's exact state, so the table
ends as an uninterrupted run's would and no step appears twice. A checkpoint is removed
when its run's last row is written; one that does not belong to this study and table
state is set aside with a warning, never used.
"""

import hashlib
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from replication.models.groups import group_layers, weight_groups
from replication.perturb.apply import perturbed
from replication.perturb.trials import trial_seed
from replication.recovery.table import RecoveryLog, RecoveryRun
from replication.recovery.train import Lesion, Trainer, Training, read_checkpoint_meta, trained_groups
from replication.run import engine


def checkpoint_path(table: Path, run: RecoveryRun) -> Path:
    """Where `run`'s checkpoint lives: TABLE.checkpoints/<hash of the run>.npz."""
    name = hashlib.sha256(repr(run.key).encode()).hexdigest()[:16]
    return Path(f"{table}.checkpoints") / f"{name}.npz"


def run_study(model, runs: list[RecoveryRun], train_dataset, prep, heldout_images, heldout_labels,
              log: RecoveryLog, training: Training, seed_scope: str, *, semantics="paper", eval_batch_size=64,
              progress=True, on_lesion=None) -> None:
    """Run every recovery run not finished in `log`.

    Args:
        model: the Keras model with the study's weights; they are the same afterwards.
        runs: what to run (`RecoveryRun`s; controls among them).
        train_dataset, prep: the training images and their preprocessing (`data.training`).
        heldout_images, heldout_labels: the decoded held-out images (`data.load_arrays`).
        log: the open recovery table.
        training: the study's settings.
        seed_scope: seeds the damage as in the sweeps ("<model>:<weights sha256>").
        semantics: one of `perturb.SEMANTICS`.
        eval_batch_size: images per batch when scoring.
        progress: a progress bar of training steps on stderr.
        on_lesion: called as on_lesion(run, lesion) after each held run's last step, with
            the `Lesion` (its `digest()` then still equals `damaged_digest()`).
    """
    groups = weight_groups(model)
    pending = [run for run in runs if training.steps not in log.steps_done(run)]
    snapshot = [np.array(v.numpy(), copy=True) for v in model.variables]
    trainable = {layer.name: layer.trainable for layer in model.layers}
    score = engine.counter(model, eval_batch_size)
    total = sum(training.steps for _ in pending)
    with tqdm(total=total, unit="step", disable=not progress, desc=log.path.name, file=sys.stderr) as bar:
        for run in pending:
            try:
                _run_one(model, groups, run, train_dataset, prep, heldout_images, heldout_labels, log, training,
                         seed_scope, semantics, score, bar, on_lesion)
            finally:
                for variable, value in zip(model.variables, snapshot):
                    variable.assign(value)
                for layer in model.layers:
                    layer.trainable = trainable[layer.name]


def _usable_checkpoint(path: Path, log: RecoveryLog, run: RecoveryRun, training: Training) -> dict | None:
    """The meta of `run`'s checkpoint when it belongs to this study and every evaluation
    before it is in the table; otherwise None (and an unusable file is set aside)."""
    if not path.exists():
        return None
    meta = read_checkpoint_meta(path)
    done = log.steps_done(run)
    usable = (
        meta is not None
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
    return meta


def _run_one(model, groups, run, train_dataset, prep, images, labels, log, training, scope, semantics, score, bar,
             on_lesion):
    from replication.data.training import training_stream

    trial = run.trial
    group = groups[trial.layer]
    layers = group_layers(model, group)
    before = [[np.array(w, copy=True) for w in layer.get_weights()] for layer in layers]
    path = checkpoint_path(log.path, run)
    with perturbed(model, group, trial, scope, semantics):
        after = [layer.get_weights() for layer in layers]
        lesion = Lesion.between(layers, before, after) if run.lesion == "held" else None
        trainer = Trainer(model, trained_groups(groups, trial.layer, run.train_layers), lesion, training)
        meta = _usable_checkpoint(path, log, run, training)
        if meta is None:
            trainer.seed_dropout(training.seed)
            meta = {"step": 0, "loss": None, "seconds": 0.0}
        else:
            trainer.load(path)
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
                losses.append(float(trainer.step(batch, batch_labels)))
                bar.update()
            seconds = time.perf_counter() - start
            meta = {"study": log.study.as_row(), "run": list(map(str, run.key)), "step": target,
                    "loss": float(np.mean(losses)), "seconds": seconds}
            trainer.save(path, meta)
            step = target
            record(step, meta["loss"], seconds)
        if lesion is not None and on_lesion is not None:
            on_lesion(run, lesion)
    path.unlink(missing_ok=True)
