"""A recovery study from files to figure, in one call: what `recover` runs.

    import replication as rp
    result = rp.run_recovery("alexnet", "caffe_weights/bvlc_alexnet.h5", "ILSVRC2012_val",
                             train="ILSVRC2012_train", layers=["conv_2"], levels=[0.5])
    result.table, result.figures, result.report_text

The damage is a sweep trial's (same layer, perturbation, level and repeat give the same
seeded draw); each damaged network and its control are fine-tuned identically on the
training images and scored on the held-out images at fixed steps (`recovery.study`); the
recovery table resumes after a kill with no step repeated (docs/recovery.md).
"""

import time
from dataclasses import dataclass
from pathlib import Path

from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.inputs import MissingInputs, default_weights, missing_inputs
from replication.paths import DEFAULT_MEAN_FILE


@dataclass(frozen=True)
class RecoveryResult:
    """What `run_recovery` did and wrote."""

    results: Path  # the recovery table
    runs: int  # runs of the study, controls among them
    ran: int  # of those, how many were (re)started now
    seconds: float
    table: object  # pandas.DataFrame: the recovery table
    figures: tuple[Path, ...]
    report: Path
    report_text: str
    train_images: int
    heldout_images: int
    note: str | None = None  # the sentence every output of synthetic weights carries
    outputs: tuple[Path, ...] = ()


def run_recovery(model="alexnet", weights=None, data=None, *, layers, train=None, split=None, train_labels=None,
                 train_limit=None, labels=None, limit=None, preprocessing=None, perturbation="node", levels=(0.5,),
                 repeats=3, semantics="paper", lesion=("held",), train_layers=("all",), control=True, training=None,
                 out="figures", results=None, metric="top5", at_images=None, eval_batch_size=64, memory_gb=4.0,
                 cache_dir=None, precision="float32", progress=True, say=print) -> RecoveryResult:
    """Damage a trained network as a sweep trial does, fine-tune it, and measure its recovery.

    Args:
        model, weights: as for `run_experiment` (weights default: caffe_weights/<zoo>.h5).
        data: the held-out images (or, with `split`, the images to split).
        layers: the layers to damage, one at a time.
        train: the training images (ImageNet's train set), or None with `split`.
        split: instead of `train`: hold out this class-stratified, seeded share of `data`
            and train on the rest (a demonstration split).
        train_labels, train_limit: labels of `train` when not in its folder; train on a
            seeded random sample of N training images.
        labels, limit, preprocessing: of the held-out images, as for `run_experiment`.
        perturbation, levels, repeats, semantics: the damage, as in the sweeps.
        lesion: modes among "held" and "free" (`recovery.table.LESIONS`).
        train_layers: choices among `recovery.table.TRAIN_LAYERS`.
        control: fine-tune the undamaged network alike, as the control.
        training: a `recovery.Training` (steps, eval_every, batch_size, optimiser, seed).
        out, results: the output folder; the recovery table (default
            OUT/recovery-MODEL-PERTURBATION.csv), resumed when it exists.
        metric, at_images: what the figure shows; the report's point (default: the last
            evaluation).
        eval_batch_size, memory_gb, cache_dir, precision, progress, say: resources and output.

    Returns:
        A `RecoveryResult`. Raises `inputs.MissingInputs` before anything heavy loads.
    """
    from replication.experiment import model_preprocessing

    started = time.perf_counter()
    model = str(model)
    weights = default_weights(model) if weights is None else Path(weights)
    if preprocessing is None or isinstance(preprocessing, dict):
        preprocessing = model_preprocessing(model, **(preprocessing or {}))
    if (train is None) == (split is None):
        raise ReplicationError(None, "give the training images (train) or a demonstration split of the data (split), "
                               "not both")
    missing = missing_inputs(model, weights, data, labels, preprocessing.mean,
                             preprocessing.mean_file or DEFAULT_MEAN_FILE)
    if train is not None and not Path(train).is_dir():
        missing.append(f"training images {train}: no such folder.")
    if train_labels is not None and not Path(train_labels).is_file():
        missing.append(f"training labels {train_labels}: no such file.")
    if missing:
        raise MissingInputs("recover", missing)

    from replication.run.precision import set_precision

    set_precision(precision)
    from replication import __version__
    from replication import data as images_data
    from replication.analysis.figures import save_figure
    from replication.analysis.recovery import plot_recovery, recovery_report
    from replication.data.training import random_sample, stratified_split
    from replication.files import file_digest
    from replication.models.groups import weight_groups
    from replication.models.registry import describe_model, open_model
    from replication.models.synthetic import synthetic_note
    from replication.perturb.registry import get_perturbation
    from replication.recovery.study import pending_runs, run_study, study_info, study_runs
    from replication.recovery.table import RecoveryLog, read_recovery
    from replication.recovery.train import Training, trained_groups
    from replication.run.grid import check_layers
    from replication.run.sweep import seed_scope_of

    training = training or Training(steps=1000, eval_every=100)
    spec = get_perturbation(perturbation)
    for level in levels:
        try:
            spec.check_level(level)
        except ValueError as err:
            raise ReplicationError(None, f"levels: {err}") from None
    given = images_data.find_dataset(data, labels=labels, limit=limit)
    if split is not None:
        train_set, heldout = stratified_split(given, split, training.seed)
    else:
        train_set = images_data.find_dataset(train, labels=train_labels)
        if train_limit is not None:
            train_set = random_sample(train_set, train_limit, training.seed)
        heldout = given
    train_set = images_data.check_images(train_set)  # once: every bad training image named before any work
    info = describe_model(model)
    net = open_model(model, weights, preprocessing.crop)
    classes = net.output_shape[-1]
    for name, ds in (("training", train_set), ("held-out", heldout)):
        if len(ds) and int(ds.labels.max()) >= classes:
            raise ReplicationError(ds.root, f"{name} labels go up to {int(ds.labels.max())}, but the model has "
                                   f"{classes} classes")
    groups = weight_groups(net)
    chosen = check_layers(groups, layers, info.name)
    for layer in chosen:  # an impossible choice is refused before anything runs
        for choice in train_layers:
            trained_groups(groups, layer, choice)
    if "free" in lesion and perturbation == "node":
        say("note: a knocked-out node outputs exactly 0 before its ReLU, where the gradient is 0, so a free "
            "node lesion cannot regrow by training and equals a held one, except in a layer without a ReLU "
            "after it (an output layer)")
    weights_sha256 = file_digest(weights, "sha256")
    study = study_info(info.name, weights_sha256, images_data.dataset_id(train_set, preprocessing), len(train_set),
                       images_data.dataset_id(heldout, preprocessing), len(heldout), training, precision, semantics,
                       __version__)
    runs = study_runs(chosen, perturbation, levels, repeats, lesion, train_layers, control=control)
    results = Path(results) if results is not None else Path(out) / f"recovery-{info.slug}-{perturbation}.csv"
    say(f"{len(train_set)} training images, {len(heldout)} held-out images"
        + (" (a demonstration split of the data, not ImageNet's train set)" if split is not None else ""))
    with RecoveryLog(results, study) as log:
        pending = pending_runs(log, runs, training)
        say(f"{results}: {len(runs) - len(pending)} of {len(runs)} runs already done, {len(pending)} to run")
        if pending:
            images, labels_ = images_data.load_arrays(heldout, preprocessing, cache_dir=cache_dir, memory_gb=memory_gb)

            def report_lesion(run, damage):
                say(f"{run.label}: held lesion of {damage.size} entries intact after training "
                    f"(sha256 of the entries {damage.digest()[:16]}, as damaged)")

            run_study(net, runs, train_set, preprocessing, images, labels_, log, training,
                      seed_scope_of(info.name, weights_sha256), semantics=semantics,
                      eval_batch_size=eval_batch_size, progress=progress, on_lesion=report_lesion)

    table = read_recovery(results)
    note = synthetic_note(weights)
    title = info.title + (", synthetic weights: chance by design" if note else "")
    stem = Path(out) / f"recovery-{info.slug}-{perturbation}"
    figures = tuple(save_figure(plot_recovery(table, metric, title), stem))
    report = Path(f"{stem}-stats.md")
    # Both metrics in the report, the figure's first: a damage can cost top-1 far more than top-5.
    metrics = [metric] + [m for m in ("top5", "top1") if m != metric]
    text = "\n".join(recovery_report(table, results, m, at_images, note) for m in metrics)
    with atomic_output(report) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return RecoveryResult(results, len(runs), len(pending), time.perf_counter() - started, table, figures, report,
                          text, len(train_set), len(heldout), note, (*figures, report, results))
