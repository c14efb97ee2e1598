"""The figure commands (figure1 … figure4) and the options `reproduce` shares with them:
from files to the missing trials, the results table, the figure and its report.

Each figure is a row of `analysis.experiments.EXPERIMENTS`; `figure_main(number)` is the
whole command.
"""

import time
from pathlib import Path

from replication.analysis.experiments import EXPERIMENTS, METRICS, Experiment
from replication.commands.common import (
    add_image_options,
    add_model_options,
    add_precision_option,
    comma_list,
    entry_point,
    fill_image_defaults,
    level_list,
    load_tensorflow,
    new_parser,
    open_model,
    output_file,
    output_folder,
    positive_float,
    positive_int,
    preprocessing,
    print_missing,
)
from replication.files import atomic_output
from replication.models.registry import describe_model, get_model_spec, list_models
from replication.paths import DEFAULT_MEAN_FILE, WEIGHTS_DIR
from replication.perturb.registry import SEMANTICS

ZOO_URL = "http://dl.caffe.berkeleyvision.org/{}.caffemodel"
MEAN_URL = "https://github.com/BVLC/caffe/raw/master/python/caffe/imagenet/ilsvrc_2012_mean.npy"


def build_parser(experiment: Experiment):
    parser = new_parser(
        f"python -m replication.{experiment.name}",
        f"{experiment.label}: {METRICS[experiment.metric]} under {experiment.perturbation} perturbation of one "
        "layer at a time. Runs the missing trials into the results table (resuming it if it exists), then "
        "writes the figure (PNG and PDF) and a statistics report.",
    )
    add_model_options(
        parser, f"{', '.join(list_models())}, or a Caffe deploy .prototxt (default: {experiment.model})",
        "HDF5 weights written by python -m replication.convert (default: caffe_weights/<Model Zoo name>.h5 "
        "for a registered model, e.g. bvlc_alexnet.h5; Keras's file for a Keras Applications model, e.g. "
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5)",
    )
    parser.set_defaults(model=experiment.model)
    add_image_options(parser)
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--layers", type=comma_list,
                       help="comma-separated layers in any order (default: every layer with weights; "
                       "paper names conv_1..dense_3 for alexnet/caffenet, Caffe layer names for a prototxt)")
    sweep.add_argument("--levels", type=level_list, default=list(experiment.levels),
                       help="comma-separated levels (default: " + ",".join(f"{v:g}" for v in experiment.levels) + ")")
    sweep.add_argument("--repeats", type=positive_int, default=experiment.repeats,
                       help=f"random draws per layer and level (default {experiment.repeats})")
    sweep.add_argument("--semantics", choices=SEMANTICS, default="paper",
                       help="perturbations as the paper describes them, or as the authors' code did them")
    sweep.add_argument("--conventions", choices=("ours", "authors"), default="ours",
                       help="error bars and the report's statistics as this project computes them (sample SD, "
                       "ddof 1) or as the authors' scripts did (ddof 0); docs/method.md")
    sweep.add_argument("--shard", help="run share i of n (0-based) of the trials, e.g. 3/8, into a table of its own")
    out = parser.add_argument_group("outputs and resources")
    out.add_argument("--out", type=output_folder, default="figures", help="output folder (default figures/)")
    out.add_argument("--results", type=output_file,
                     help="results table; resumed when it exists (default: OUT/results-MODEL-PERTURBATION.csv; "
                     "figure3 and figure4 share it)")
    out.add_argument("--batch-size", type=positive_int, default=64)
    out.add_argument("--memory-gb", type=positive_float, default=4.0,
                     help="bound on the decoded images (up to half of it; more go to --cache-dir) and "
                     "the cached activations together (default 4)")
    out.add_argument("--cache-dir", type=Path, help="folder for the decoded-image cache when images exceed --memory-gb")
    add_precision_option(out)
    out.add_argument("--devices", type=comma_list,
                     help="devices for the trial streams, one stream each: e.g. /GPU:0,/GPU:1, or cpu:N for N "
                     "logical CPU devices (default: every GPU when there are several)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_figure_args(number: int, argv=None):
    """The figure command's options, with the defaults that depend on other options filled in."""
    args = build_parser(EXPERIMENTS[number]).parse_args(argv)
    spec = get_model_spec(args.model)
    if args.weights is None and spec is not None and spec.zoo_file:
        args.weights = WEIGHTS_DIR / f"{spec.zoo_file}.h5"
    fill_image_defaults(args)
    return args


def missing_inputs(args) -> list[str]:
    """What the run needs but cannot find, each with how to get it."""
    missing = []
    spec = get_model_spec(args.model)
    if spec is None and not Path(args.model).is_file():
        missing.append(f"model {args.model}: no such file. Give {', '.join(list_models())} or a Caffe deploy .prototxt.")
    if spec is not None and spec.weights_format == "keras_applications" and (
        args.weights is None or not args.weights.is_file()
    ):
        from replication.commands.download import ITEMS
        from replication.models.keras_apps import APPLICATIONS

        app = APPLICATIONS[spec.name]
        where = "none given" if args.weights is None else f"{args.weights}: not found"
        fetch = (f"      python -m replication.download {app.name}\n" if app.name in ITEMS else
                 f"      mkdir -p caffe_weights\n      curl -L -o caffe_weights/{app.weights_file} {app.url}\n")
        missing.append(
            f"weights: {where}. Get Keras's {spec.title} weights ({app.url}, md5 {app.md5}):\n{fetch}"
            f"      ... --weights caffe_weights/{app.weights_file} (the default)"
        )
    elif args.weights is None and spec is not None and spec.weights_format == "keras1":
        missing.append(
            f"weights: none given for {args.model}. Get the authors' Keras 1 weights (docs/authors_alexnet.md):\n"
            "      python -m replication.download convnets_keras\n"
            "      ... --weights caffe_weights/alexnet_weights.h5"
        )
    elif args.weights is None:
        missing.append(
            f"weights: none given for {args.model}. Convert the model's .caffemodel and pass the result:\n"
            f"      python -m replication.convert MODEL.caffemodel --prototxt {args.model} -o MODEL.h5\n"
            "      ... --weights MODEL.h5"
        )
    elif not args.weights.is_file():
        if spec is not None and spec.zoo_file:
            url = ZOO_URL.format(spec.zoo_file)
            missing.append(
                f"weights {args.weights}: not found. Download {spec.zoo_file} from the Caffe Model Zoo ({url}, "
                "233 MB) and convert it:\n"
                f"      mkdir -p caffe_weights\n"
                f"      curl -L -o caffe_weights/{spec.zoo_file}.caffemodel {url}\n"
                f"      python -m replication.convert caffe_weights/{spec.zoo_file}.caffemodel -o {args.weights}"
            )
        else:
            missing.append(
                f"weights {args.weights}: not found. Convert the model's .caffemodel:\n"
                f"      python -m replication.convert MODEL.caffemodel --prototxt {args.model} -o {args.weights}"
            )
    if args.data is None or not args.data.is_dir():
        where = "no --data given" if args.data is None else f"{args.data}: no such folder"
        missing.append(
            f"images: {where}. Download the ILSVRC2012 validation images (ILSVRC2012_img_val.tar, 6.3 GB; "
            "free registration at https://image-net.org/download-images), unpack them into a folder, and pass "
            "--data FOLDER (with --labels val.txt, Caffe's FILENAME LABEL list, unless the folder holds one)."
        )
    if args.labels is not None and not args.labels.is_file():
        missing.append(f"labels {args.labels}: no such file.")
    if args.mean == "image" and not args.mean_file.is_file():
        missing.append(
            f"mean image {args.mean_file}: not found. It ships with Caffe as "
            f"python/caffe/imagenet/ilsvrc_2012_mean.npy ({MEAN_URL}); save it as {DEFAULT_MEAN_FILE} "
            "or pass --mean-file, or use --mean pixel."
        )
    return missing


def output_stem(slug: str, semantics: str) -> str:
    """The model's part of every output file name; the authors' semantics are another
    experiment, with their own tables and figures."""
    return slug + ("" if semantics == "paper" else f"-{semantics.replace('_', '-')}")


def default_results(args, perturbation: str, slug: str | None = None) -> Path:
    """OUT/results-MODEL-PERTURBATION.csv: the table a figure command fills unless --results names one."""
    slug = slug or describe_model(args.model).slug
    return args.out / f"results-{output_stem(slug, args.semantics)}-{perturbation}.csv"


def figure_command(number: int, module_name: str):
    """`main(argv)` of the command for Figure `number`, run at once under python -m."""

    def main(argv=None) -> int:
        return figure_main(number, argv)

    return entry_point(module_name, main)


def figure_main(number: int, argv=None) -> int:
    args = parse_figure_args(number, argv)
    missing = missing_inputs(args)
    if missing:
        return print_missing(EXPERIMENTS[number].label, missing)
    return run_figure(EXPERIMENTS[number], args)


def run_figure(experiment: Experiment, args) -> int:
    """Files -> model and images -> the missing trials -> results table -> figure and report."""
    # Imported here, not at the top: TensorFlow takes seconds to load, and a user who
    # lacks a file should hear so at once.
    load_tensorflow(args.verbose)
    from replication.run.devices import configure_devices

    devices = configure_devices(args.devices)
    from replication.run.precision import set_precision

    set_precision(args.precision)
    from replication import data
    from replication.analysis.figures import plot_figure, save_figure
    from replication.analysis.reports import figure_report
    from replication.analysis.stats import get_conventions
    from replication.models.groups import weight_groups
    from replication.models.synthetic import synthetic_note
    from replication.run.costs import model_macs, suffix_macs
    from replication.run.grid import BASELINE, Grid, check_layers, grid_table
    from replication.run.shards import Shard, shard_path, shard_share, write_manifest
    from replication.run.sweep import run_info, run_trials
    from replication.run.table import ResultsLog

    started = time.perf_counter()
    shard = Shard.parse(args.shard) if args.shard else None
    prep = preprocessing(args)
    dataset = data.find_dataset(args.data, labels=args.labels, limit=args.limit)
    info = describe_model(args.model)
    model = open_model(args.model, args.weights, args.crop)
    groups = weight_groups(model)
    layers = check_layers(groups, args.layers or list(groups), info.name)
    grid = Grid(layers, experiment.perturbation, tuple(args.levels), args.repeats)

    def decode():
        # At most half the memory bound for the decoded images (beyond it they are
        # memory-mapped from --cache-dir); the engine's cached activations get the rest.
        return data.load_arrays(dataset, prep, cache_dir=args.cache_dir, memory_gb=args.memory_gb / 2,
                                skip_bad=args.skip_bad)

    arrays = decode() if args.skip_bad else None  # then the number of images is known only after decoding
    run = run_info(info.name, args.weights, dataset, prep, args.semantics,
                   images=len(arrays[1]) if arrays else None, precision=args.precision)
    stem = output_stem(info.slug, args.semantics)
    results = args.results or default_results(args, experiment.perturbation, info.slug)
    table, trials = results, grid.trials()
    if shard:
        table = shard_path(results, shard)
        costs = {**suffix_macs(model, groups), BASELINE.layer: model_macs(model)}
        trials = shard_share(trials, costs, shard)
        write_manifest(table, run, grid, shard)

    with ResultsLog(table, run) as log:
        pending = [t for t in trials if t.key not in log.done]
        print(f"{table}: {len(trials) - len(pending)} of {len(trials)} trials already done, {len(pending)} to run")
        if pending:
            images, labels = arrays or decode()
            run_trials(model, pending, images, labels, log, batch_size=args.batch_size,
                       memory_gb=args.memory_gb, progress=not args.no_progress, devices=devices)

    if shard:
        pattern = shard_path(results, shard).name.replace(f"shard-{shard.index}-", "shard-*-")
        print(f"shard {shard} done in {time.perf_counter() - started:.0f} s. Once every shard is done:\n"
              f"  python -m replication.merge {results} {results.with_name(pattern)}\n"
              f"then run this command with --results {results} and without --shard to draw the figure.")
        return 0

    finished = grid_table(results, grid)
    figure_stem = args.out / f"{experiment.name}-{stem}"
    title = info.title + ("" if args.semantics == "paper" else f", {args.semantics} semantics")
    note = synthetic_note(args.weights)
    if note:
        title += ", synthetic weights: chance by design"
    ddof = get_conventions(args.conventions).ddof
    pictures = save_figure(plot_figure(finished, experiment, layers, title, ddof), figure_stem)
    report = Path(f"{figure_stem}-stats.md")
    with atomic_output(report) as tmp:
        text = figure_report(finished, experiment, layers, results, conventions=args.conventions)
        tmp.write_text((f"> **Note:** {note}.\n\n" if note else "") + text, encoding="utf-8")
    print(report.read_text(encoding="utf-8"))
    for path in (*pictures, report, results):
        print(f"wrote {path}")
    if note:
        print(f"note: {note}")
    print(f"{experiment.label} took {time.perf_counter() - started:.0f} s")
    return 0
