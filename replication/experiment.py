"""An experiment from files to figure, in one call: what `figure1` … `figure5` and
`reproduce` run, and what a Python user calls to do the same.

    import replication as rp
    result = rp.run_experiment(1, "alexnet", "caffe_weights/bvlc_alexnet.h5", "ILSVRC2012_val",
                               labels="ILSVRC2012_val/val.txt")
    result.table, result.figures, result.report

The steps, in the order data flows: the model and its weights; the images, decoded
once; the grid of trials (optionally one shard of it); the missing trials, appended to
the resumable results table as each finishes; then the figure (PNG and PDF) and its
statistics report, drawn from the table. Re-running resumes: finished trials are read
back, never recomputed.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

from replication.analysis.experiments import EXPERIMENTS, METRICS, Experiment
from replication.files import atomic_output
from replication.inputs import MissingInputs, default_weights, missing_inputs
from replication.models.registry import describe_model, get_model_spec
from replication.paths import DEFAULT_MEAN_FILE

# Caffe's preprocessing: what a model registered without its own is scored with.
CAFFE_PREPROCESSING = {"resize": 256, "crop": 227, "mean": "image", "resize_filter": "bilinear"}


@dataclass(frozen=True)
class ExperimentResult:
    """What `run_experiment` did and wrote."""

    experiment: Experiment
    results: Path  # the results table this run filled (a shard's own table for a shard)
    trials: int  # trials of this run's share of the grid, the baseline among them
    ran: int  # of those, how many were computed now (the rest were in the table)
    seconds: float
    table: object = None  # pandas.DataFrame of the grid's rows; None for a shard
    figures: tuple[Path, ...] = ()  # the figure as PNG and PDF; none for a shard
    report: Path | None = None  # the statistics report (markdown); None for a shard
    report_text: str = ""
    note: str | None = None  # the sentence every output of synthetic weights carries
    shard: object = None  # run.shards.Shard, or None for the whole grid
    outputs: tuple[Path, ...] = field(default=())  # every file written, figures and report first


def get_experiment(experiment) -> Experiment:
    """An `Experiment` from itself, a figure number (1) or a command name ("figure1")."""
    if isinstance(experiment, Experiment):
        return experiment
    if isinstance(experiment, str) and experiment.startswith("figure") and experiment[6:].isdigit():
        experiment = int(experiment[6:])
    if isinstance(experiment, int) and experiment in EXPERIMENTS:
        return EXPERIMENTS[experiment]
    from replication.errors import ReplicationError

    raise ReplicationError(None, f"unknown experiment {experiment!r}; the paper's are figures "
                           f"{', '.join(str(n) for n in EXPERIMENTS)}, or pass an Experiment")


def model_preprocessing(model, resize=None, crop=None, mean=None, resize_filter=None, mean_file=None):
    """The preprocessing `model` is scored with: each field not given is the model's own
    (its registered preprocessing, Caffe's otherwise); the mean image defaults to
    caffe_weights/ilsvrc_2012_mean.npy when the mean is "image".

    Returns:
        A `data.Preprocessing`.
    """
    from replication.data.preprocessing import Preprocessing

    return Preprocessing(**_preprocessing_fields(model, resize, crop, mean, resize_filter, mean_file))


def _preprocessing_fields(model, resize=None, crop=None, mean=None, resize_filter=None, mean_file=None) -> dict:
    """The fields of `model_preprocessing`, without importing data (and so TensorFlow)."""
    fields = dict(CAFFE_PREPROCESSING)
    spec = get_model_spec(model)
    fields.update(spec.preprocessing if spec is not None and spec.preprocessing else {})
    given = {"resize": resize, "crop": crop, "mean": mean, "resize_filter": resize_filter}
    fields.update({key: value for key, value in given.items() if value is not None})
    if fields["mean"] == "image" and mean_file is None:
        mean_file = DEFAULT_MEAN_FILE
    return {**fields, "mean_file": mean_file}


def experiment_missing(model, weights, data, labels=None, preprocessing=None) -> list[str]:
    """What a run of `model` on `data` lacks (`inputs.missing_inputs`), with the model's
    default weights and own preprocessing filled in; loads nothing heavy, so a command can
    say what is missing before TensorFlow starts.

    Args:
        model: a registered model's name or a deploy .prototxt path.
        weights: its weight file; None for the model's default.
        data: the folder of validation images, or None.
        labels: the label file, when given apart from `data`.
        preprocessing: a `data.Preprocessing`, or a dict of its fields (None: the model's own).

    Returns:
        One message per missing input, each with how to get it; empty when all is in place.
    """
    weights = default_weights(model) if weights is None else Path(weights)
    if preprocessing is None or isinstance(preprocessing, dict):
        fields = _preprocessing_fields(model, **(preprocessing or {}))
        mean, mean_file = fields["mean"], fields["mean_file"]
    else:
        mean, mean_file = preprocessing.mean, preprocessing.mean_file
    return missing_inputs(model, weights, data, labels, mean, mean_file or DEFAULT_MEAN_FILE)


def output_stem(slug: str, semantics: str) -> str:
    """The model's part of every output file name; the authors' semantics are another
    experiment, with their own tables and figures."""
    return slug + ("" if semantics == "paper" else f"-{semantics.replace('_', '-')}")


def default_results(out, model, perturbation: str, semantics: str = "paper") -> Path:
    """OUT/results-MODEL-PERTURBATION.csv: the table an experiment fills unless told another.
    Figures 3 and 4 share theirs (same perturbation and grid)."""
    return Path(out) / f"results-{output_stem(describe_model(model).slug, semantics)}-{perturbation}.csv"


def run_experiment(experiment, model=None, weights=None, data=None, *, labels=None, limit=None, layers=None,
                   levels=None, repeats=None, semantics="paper", conventions="ours", preprocessing=None,
                   skip_bad=False, shard=None, out="figures", results=None, batch_size=64, memory_gb=4.0,
                   cache_dir=None, precision="float32", devices=None, progress=True, say=print) -> ExperimentResult:
    """Run one of the paper's experiments (or one of one's own) from files to figure.

    Args:
        experiment: an `Experiment`, a figure number (1 … 5) or "figure1" … "figure5".
        model: a registered model's name or a Caffe deploy .prototxt (default: the
            network the paper ran the experiment on).
        weights: its weight file (default: caffe_weights/<Model Zoo name>.h5).
        data: the folder of validation images (any layout `data.find_dataset` reads).
        labels: their label file, when not in `data`.
        limit: use only the first N images (by file name).
        layers: the layers to perturb, in any order (default: every layer with weights).
        levels, repeats: the grid (default: the experiment's).
        semantics: "paper" or "authors_code" (`perturb.SEMANTICS`).
        conventions: "ours" or "authors": the error bars' and report's statistics.
        preprocessing: a `data.Preprocessing`, or a dict of the fields to change from the
            model's own (`model_preprocessing`); None for the model's own.
        skip_bad: leave out unreadable images (listed) instead of stopping at the first.
        shard: "i/n" or a `run.shards.Shard`: run share i of n of the trials into a table
            of its own (merged by `run.shards.merge_shards`); no figure is drawn.
        out: the folder for the table, the figure and the report.
        results: the results table (default `default_results`); resumed when it exists.
        batch_size, memory_gb, cache_dir: resources (`run.sweep.run_trials`); at most half
            of `memory_gb` holds decoded images, the rest goes to --cache-dir.
        precision: "float32" (exact) or an opt-in faster one (`run.precision`).
        devices: device names for the trial streams (`run.devices.configure_devices`).
        progress: a progress bar on stderr.
        say: where progress lines go (`print`; a no-op to stay quiet).

    Returns:
        An `ExperimentResult`. Raises `inputs.MissingInputs` (a ReplicationError listing
        each missing file with how to get it) before anything heavy loads.
    """
    started = time.perf_counter()
    experiment = get_experiment(experiment)
    model = experiment.model if model is None else str(model)
    weights = default_weights(model) if weights is None else Path(weights)
    if preprocessing is None or isinstance(preprocessing, dict):
        preprocessing = model_preprocessing(model, **(preprocessing or {}))
    missing = experiment_missing(model, weights, data, labels, preprocessing)
    if missing:
        raise MissingInputs(experiment.label, missing)

    from replication.run.devices import configure_devices
    from replication.run.precision import set_precision

    devices = configure_devices(devices)
    set_precision(precision)
    from replication import data as images_data
    from replication.models.groups import weight_groups
    from replication.models.registry import open_model
    from replication.run.costs import model_macs, suffix_macs
    from replication.run.grid import BASELINE, Grid, check_layers, grid_table
    from replication.run.shards import Shard, shard_path, shard_share, write_manifest
    from replication.run.sweep import run_info, run_trials
    from replication.run.table import ResultsLog

    if isinstance(shard, str):
        shard = Shard.parse(shard)
    dataset = images_data.find_dataset(data, labels=labels, limit=limit)
    info = describe_model(model)
    net = open_model(model, weights, preprocessing.crop)
    groups = weight_groups(net)
    chosen = check_layers(groups, layers or list(groups), info.name)
    grid = Grid(chosen, experiment.perturbation, tuple(experiment.levels if levels is None else levels),
                experiment.repeats if repeats is None else repeats)

    def decode():
        return images_data.load_arrays(dataset, preprocessing, cache_dir=cache_dir, memory_gb=memory_gb / 2,
                                       skip_bad=skip_bad)

    arrays = decode() if skip_bad else None  # then the number of images is known only after decoding
    run = run_info(info.name, weights, dataset, preprocessing, semantics,
                   images=len(arrays[1]) if arrays else None, precision=precision)
    results = Path(results) if results is not None else default_results(out, model, experiment.perturbation,
                                                                          semantics)
    table, trials = results, grid.trials()
    if shard is not None:
        table = shard_path(results, shard)
        costs = {**suffix_macs(net, groups), BASELINE.layer: model_macs(net)}
        trials = shard_share(trials, costs, shard)
        write_manifest(table, run, grid, shard, trials)

    with ResultsLog(table, run) as log:
        pending = [t for t in trials if t.key not in log.done]
        say(f"{table}: {len(trials) - len(pending)} of {len(trials)} trials already done, {len(pending)} to run")
        if pending:
            images, labels_ = arrays or decode()
            run_trials(net, pending, images, labels_, log, batch_size=batch_size, memory_gb=memory_gb,
                       progress=progress, devices=devices)
    if shard is not None:
        return ExperimentResult(experiment, table, len(trials), len(pending), time.perf_counter() - started,
                                shard=shard, outputs=(table,))

    finished = grid_table(results, grid)
    figures, report, text, note = draw_experiment(finished, experiment, chosen, model, weights, results, out,
                                                  semantics, conventions)
    return ExperimentResult(experiment, results, len(trials), len(pending), time.perf_counter() - started,
                            table=finished, figures=figures, report=report, report_text=text, note=note,
                            outputs=(*figures, report, results))


def draw_experiment(table, experiment: Experiment, layers, model, weights, results, out, semantics="paper",
                    conventions="ours"):
    """The figure (PNG and PDF) and the statistics report of a finished table.

    Returns:
        (figure paths, report path, report text, synthetic-weights note or None).
    """
    from replication.analysis.figures import plot_figure, save_figure
    from replication.analysis.reports import figure_report
    from replication.analysis.stats import get_conventions
    from replication.models.synthetic import synthetic_note

    info = describe_model(model)
    stem = Path(out) / f"{experiment.name}-{output_stem(info.slug, semantics)}"
    title = info.title + ("" if semantics == "paper" else f", {semantics} semantics")
    note = synthetic_note(weights)
    if note:
        title += ", synthetic weights: chance by design"
    figures = tuple(save_figure(plot_figure(table, experiment, layers, title, get_conventions(conventions).ddof), stem))
    report = Path(f"{stem}-stats.md")
    text = (f"> **Note:** {note}.\n\n" if note else "") + figure_report(table, experiment, layers, results,
                                                                      conventions=conventions)
    with atomic_output(report) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return figures, report, text, note


# What Figure 5 takes from a reproduce run: the options that do not belong to one model.
FIGURE5_OPTIONS = ("data", "labels", "limit", "repeats", "semantics", "conventions", "out", "batch_size", "memory_gb",
                   "cache_dir", "skip_bad", "precision", "devices", "progress", "say")


@dataclass(frozen=True)
class Evaluation:
    """What `run_evaluation` measured and wrote."""

    top1: float
    top5: float
    images: int
    images_per_s: float
    skipped: tuple = ()  # (path, reason) of each image left out with skip_bad
    note: str | None = None  # the sentence every output of synthetic weights carries
    outputs: tuple[Path, ...] = ()  # the JSON and predictions files written


def run_evaluation(model, weights, data, *, labels=None, limit=None, preprocessing=None, batch_size=64,
                   precision="float32", skip_bad=False, json=None, predictions=None,
                   progress=True) -> Evaluation:
    """Top-1 and top-5 accuracy of a model on validation images, from files: what
    `python -m replication.evaluate` runs.

    Args:
        model: a registered model's name or a Caffe deploy .prototxt.
        weights: its weight file.
        data, labels, limit: the images (`data.find_dataset`).
        preprocessing: a `data.Preprocessing`, a dict of fields to change from the model's
            own (`model_preprocessing`), or None for the model's own.
        batch_size, precision: as `run_experiment`.
        skip_bad: leave out unreadable images (listed in the result) instead of stopping.
        json: also write top1, top5, images and images_per_s to this JSON file.
        predictions: also write one CSV row per image: file, label, the five top classes in
            order and the true class's rank among the logits.
        progress: a progress bar on stderr.

    Returns:
        An `Evaluation`; each file is written atomically, after every image was scored.
    """
    import csv
    import json as json_format

    if preprocessing is None or isinstance(preprocessing, dict):
        preprocessing = model_preprocessing(model, **(preprocessing or {}))
    from replication import data as images_data
    from replication.models.registry import open_model
    from replication.models.synthetic import synthetic_note
    from replication.run.precision import set_precision
    from replication.run.scoring import evaluate_model

    set_precision(precision)
    images_data.mean_bgr(preprocessing)  # a missing mean file is reported before the model is built
    dataset = images_data.find_dataset(data, labels=labels, limit=limit)
    net = open_model(model, weights, preprocessing.crop)
    rows = [] if predictions else None
    result = evaluate_model(net, dataset, preprocessing, batch_size, progress=progress, skip_bad=skip_bad,
                            predictions=rows)
    outputs = []
    if json:
        record = {key: result[key] for key in ("top1", "top5", "images", "images_per_s")}
        if result["skipped"]:
            record["skipped"] = [str(path) for path, _ in result["skipped"]]
        with atomic_output(json) as tmp:
            tmp.write_text(json_format.dumps(record, indent=2) + "\n")
        outputs.append(Path(json))
    if predictions:
        with atomic_output(predictions) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        outputs.append(Path(predictions))
    return Evaluation(result["top1"], result["top5"], result["images"], result["images_per_s"],
                      tuple(result["skipped"]), synthetic_note(weights), tuple(outputs))


def figure5_options(options: dict) -> tuple[dict | None, str]:
    """Whether `reproduce` runs Figure 5, and with which `run_experiment` keywords.

    Figure 5 is VGG-16's whatever model the other figures ran: it takes only the options
    that do not belong to one model (images, repeats, semantics, outputs, resources), not
    the layers or the preprocessing, and runs only when Keras's VGG-16 weights are in
    caffe_weights/.

    Returns:
        (keywords for `run_experiment(5, **keywords)`, or None when it is skipped; a line
        saying which and why).
    """
    vgg = EXPERIMENTS[5].model
    weights = default_weights(vgg)
    title = describe_model(vgg).title
    if not weights.is_file():
        return None, (f"Figure 5 ({title}) skipped: Keras's {vgg} weights are not at {weights}; "
                      f"python -m replication.download {vgg} fetches them (528 MB)")
    shared = {key: value for key, value in options.items() if key in FIGURE5_OPTIONS}
    return {"model": vgg, "weights": weights, **shared}, f"Figure 5 ({title}) runs on {weights}"


@dataclass(frozen=True)
class Replication:
    """What `reproduce` ran and wrote."""

    experiments: dict  # figure number -> ExperimentResult
    table1: Path  # Table 1 of the weights, as markdown (beside it the CSV)
    claims: dict  # (model slug, metric) -> analysis.comparison.Comparison
    figure5: str  # whether Figure 5 ran, and why not when it did not
    outputs: tuple[Path, ...]


def reproduce(data, model=None, weights=None, *, out="figures", say=print, **options) -> Replication:
    """Everything the paper reports: Figures 1-4 of `model`, its Table 1, the claims on
    the three results tables together (top-5 and top-1), then Figure 5 on VGG-16 and its
    caption's claims when Keras's VGG-16 weights are in caffe_weights/.

    Args:
        data, model, weights, out: as for `run_experiment` (model default: AlexNet).
        say: where progress lines go.
        options: any other option of `run_experiment` except those that name one
            figure's grid or table (levels, results, shard).

    Returns:
        A `Replication`. Each figure resumes its table, so an interrupted run picks up
        where it stopped, and Figure 4 reuses Figure 3's trials.
    """
    from replication.analysis.comparison import compare_claims, write_comparison
    from replication.analysis.table1 import write_table1
    from replication.errors import ReplicationError

    clash = sorted({"levels", "results", "shard"} & set(options))
    if clash:
        raise ReplicationError(None, f"{', '.join(clash)} name(s) one figure's grid or table; run that figure instead")
    model = EXPERIMENTS[1].model if model is None else str(model)
    weights = default_weights(model) if weights is None else Path(weights)
    numbers = [n for n, e in EXPERIMENTS.items() if e.model == EXPERIMENTS[1].model]
    # Every input checked before the first figure runs, not after hours of Figure 1.
    first = dict(options)
    prep = first.pop("preprocessing", None)
    prep = prep if prep is not None and not isinstance(prep, dict) else model_preprocessing(model, **(prep or {}))
    missing = experiment_missing(model, weights, data, first.get("labels"), prep)
    if missing:
        raise MissingInputs("The replication", missing)

    done = {n: run_experiment(n, model, weights, data, out=out, say=say, **options) for n in numbers}
    slug = output_stem(describe_model(model).slug, options.get("semantics", "paper"))
    outputs = [path for result in done.values() for path in result.outputs]
    table1_md = Path(out) / f"table1-{slug}.md"
    text, written = write_table1(model, weights, Path(out) / f"table1-{slug}.csv", table1_md)
    say(text)
    outputs += written
    tables = sorted({str(done[n].results) for n in numbers})
    claims = {}
    for metric in METRICS:
        comparison = compare_claims(tables, metric, conventions=options.get("conventions", "ours"))
        say(f"\nThe paper's claims, {metric}:\n{comparison.text}")
        outputs += write_comparison(comparison, Path(out) / f"claims-{slug}-{metric}.csv",
                                    Path(out) / f"claims-{slug}-{metric}.md")
        claims[slug, metric] = comparison

    figure5, line = figure5_options({**options, "data": data, "out": out, "say": say})
    say(f"\n{line}")
    if figure5 is None:
        return Replication(done, table1_md, claims, line, tuple(outputs))
    done[5] = run_experiment(5, **figure5)
    outputs += done[5].outputs
    vgg = EXPERIMENTS[5].model
    vgg_slug = output_stem(describe_model(vgg).slug, options.get("semantics", "paper"))
    comparison = compare_claims(str(done[5].results), "top5", conventions=options.get("conventions", "ours"))
    say(f"\nThe paper's claims on Figure 5's table, top5:\n{comparison.text}")
    outputs += write_comparison(comparison, Path(out) / f"claims-{vgg_slug}-top5.csv",
                                Path(out) / f"claims-{vgg_slug}-top5.md")
    claims[vgg_slug, "top5"] = comparison
    return Replication(done, table1_md, claims, line, tuple(outputs))


__all__ = ["Replication", "reproduce", "figure5_options", "ExperimentResult", "METRICS", "default_results", "get_experiment", "model_preprocessing", "output_stem",
           "run_experiment", "draw_experiment"]
