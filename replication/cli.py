"""The command line shared by figure1 ... figure4: options, the missing-input check, and
the run from files to results table to figure and statistics report."""

import argparse
import re
import sys
import time
from pathlib import Path

from replication import __version__
from replication.figures import FIGURES, FigureSpec, plot_figure, save_figure
from replication.files import atomic_output, file_digest
from replication.paths import DEFAULT_MEAN_FILE, WEIGHTS_DIR
from replication.report import figure_report

# The built-in models and the Caffe Model Zoo file each was trained as.
ZOO_NAMES = {"alexnet": "bvlc_alexnet", "caffenet": "bvlc_reference_caffenet"}
BUILTIN_MODELS = tuple(ZOO_NAMES)
ZOO_URL = "http://dl.caffe.berkeleyvision.org/{}.caffemodel"
MEAN_URL = "https://github.com/BVLC/caffe/raw/master/python/caffe/imagenet/ilsvrc_2012_mean.npy"


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _levels(text: str) -> list[float]:
    try:
        return [float(part) for part in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels must be comma-separated numbers, got {text!r}") from None


def build_parser(spec: FigureSpec) -> argparse.ArgumentParser:
    what = {"top5": "top-5", "top1": "top-1"}[spec.metric]
    parser = argparse.ArgumentParser(
        prog=f"python -m replication.figure{spec.number}",
        description=f"Figure {spec.number}: {what} accuracy under {spec.kind} perturbation of one layer at a time. "
        "Runs the missing trials into the results table (resuming it if it exists), then writes the "
        "figure (PNG and PDF) and a statistics report.",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="alexnet",
                       help="alexnet, caffenet, or a Caffe deploy .prototxt (default: alexnet)")
    model.add_argument("--weights", type=Path,
                       help="HDF5 weights written by python -m replication.convert "
                       "(default: caffe_weights/bvlc_alexnet.h5, or bvlc_reference_caffenet.h5 for caffenet)")
    data = parser.add_argument_group("images")
    data.add_argument("--data", type=Path, help="folder of ILSVRC2012 validation images")
    data.add_argument("--labels", type=Path, help="label file (FILENAME LABEL lines), when not found in --data")
    data.add_argument("--limit", type=int, help="use only the first N images")
    data.add_argument("--resize", type=int, default=256, help="resize images to this square size first (default 256)")
    data.add_argument("--crop", type=int, default=227, help="then take the central crop of this size (default 227)")
    data.add_argument("--mean", choices=("image", "pixel"), default="image",
                      help="subtract the ImageNet mean image or the mean pixel BGR 104/117/123 (default image)")
    data.add_argument("--mean-file", type=Path,
                      help=f"ilsvrc_2012_mean.npy for --mean image (default: {DEFAULT_MEAN_FILE})")
    data.add_argument("--skip-bad", action="store_true", help="skip unreadable images instead of stopping")
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--layers", type=_comma_list,
                       help="comma-separated layers in any order (default: every layer with weights; "
                       "paper names conv_1..dense_3 for alexnet/caffenet, Caffe layer names for a prototxt)")
    sweep.add_argument("--levels", type=_levels, default=list(spec.levels),
                       help="comma-separated levels (default: " + ",".join(f"{v:g}" for v in spec.levels) + ")")
    sweep.add_argument("--repeats", type=int, default=5, help="random draws per layer and level (default 5)")
    sweep.add_argument("--semantics", choices=("paper", "authors_code"), default="paper",  # perturb.SEMANTICS
                       help="perturbations as the paper describes them, or as the authors' code did them")
    sweep.add_argument("--shard", help="run share i of n (0-based) of the trials, e.g. 3/8, into a table of its own")
    out = parser.add_argument_group("outputs and resources")
    out.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default figures/)")
    out.add_argument("--results", type=Path,
                     help="results table; resumed when it exists (default: OUT/results-MODEL-KIND.csv; "
                     "figure3 and figure4 share it)")
    out.add_argument("--batch-size", type=int, default=64)
    out.add_argument("--memory-gb", type=float, default=4.0,
                     help="bound on the decoded images (up to half of it; more go to --cache-dir) and "
                     "the cached activations together (default 4)")
    out.add_argument("--cache-dir", type=Path, help="folder for the decoded-image cache when images exceed --memory-gb")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def missing_inputs(args) -> list[str]:
    """What the run needs but cannot find, each with how to get it."""
    missing = []
    builtin = args.model in BUILTIN_MODELS
    if not builtin and not Path(args.model).is_file():
        missing.append(f"model {args.model}: no such file. Give alexnet, caffenet or a Caffe deploy .prototxt.")
    if args.weights is None:
        missing.append(
            f"weights: none given for {args.model}. Convert the model's .caffemodel and pass the result:\n"
            f"      python -m replication.convert MODEL.caffemodel --prototxt {args.model} -o MODEL.h5\n"
            "      ... --weights MODEL.h5"
        )
    elif not args.weights.is_file():
        if builtin:
            zoo = ZOO_NAMES[args.model]
            url = ZOO_URL.format(zoo)
            missing.append(
                f"weights {args.weights}: not found. Download {zoo} from the Caffe Model Zoo ({url}, 233 MB) "
                "and convert it:\n"
                f"      mkdir -p caffe_weights\n"
                f"      curl -L -o caffe_weights/{zoo}.caffemodel {url}\n"
                f"      python -m replication.convert caffe_weights/{zoo}.caffemodel -o {args.weights}"
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


def model_label(model_arg: str) -> str:
    """The model column: the built-in name, or a prototxt's net name plus a short hash of the
    file, so that tables of two different prototxts with one name never resume each other."""
    if model_arg in BUILTIN_MODELS:
        return model_arg
    from replication.caffe import read_prototxt

    path = Path(model_arg)
    name = read_prototxt(path).name or path.stem
    return f"{name}-{file_digest(path, 'sha256')[:8]}"


def display_name(label: str) -> str:
    """The model's name for people: AlexNet, CaffeNet, or the prototxt's net name."""
    return {"alexnet": "AlexNet", "caffenet": "CaffeNet"}.get(label, label.rsplit("-", 1)[0])


def file_slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", display_name(label).lower()).strip("-") or "model"


def output_name(label: str, semantics: str) -> str:
    # The authors' semantics are another experiment: their own table and figures.
    return file_slug(label) + ("" if semantics == "paper" else f"-{semantics.replace('_', '-')}")


def default_results(args, kind: str, label: str | None = None) -> Path:
    """OUT/results-MODEL-KIND.csv: the table a figure command fills unless --results names one."""
    return args.out / f"results-{output_name(label or model_label(args.model), args.semantics)}-{kind}.csv"


def parse_figure_args(number: int, argv=None):
    """The figure command's options, with the defaults that depend on other options filled in."""
    args = build_parser(FIGURES[number]).parse_args(argv)
    if args.weights is None and args.model in ZOO_NAMES:
        args.weights = WEIGHTS_DIR / f"{ZOO_NAMES[args.model]}.h5"
    if args.mean == "image" and args.mean_file is None:
        args.mean_file = DEFAULT_MEAN_FILE
    return args


def figure_main(number: int, argv=None) -> int:
    spec = FIGURES[number]
    args = parse_figure_args(number, argv)
    missing = missing_inputs(args)
    if missing:
        print(f"Figure {spec.number} cannot run; missing:", file=sys.stderr)
        for item in missing:
            print(f"  - {item}", file=sys.stderr)
        return 2
    return run_figure(spec, args)


def run_figure(spec: FigureSpec, args) -> int:
    """Files -> model and images -> the missing trials -> results table -> figure and report."""
    # Imported here, not at the top: TensorFlow takes seconds to load, and a user who
    # lacks a file should hear so at once.
    from replication import data
    from replication.models import weight_groups
    from replication.models.load import load_model
    from replication.results import ResultsLog, RunInfo
    from replication.sweep import (
        Grid, Shard, check_layers, grid_table, key, layer_costs, run_trials, shard_path, shard_share, write_manifest,
    )

    started = time.perf_counter()
    shard = Shard.parse(args.shard) if args.shard else None
    prep = data.Preprocessing(resize=args.resize, crop=args.crop, mean=args.mean, mean_file=args.mean_file)
    dataset = data.find_dataset(args.data, labels=args.labels, limit=args.limit)
    label = model_label(args.model)
    builtin = args.model in BUILTIN_MODELS
    model = load_model(args.model, args.weights, input_shape=None if builtin else (args.crop, args.crop, 3))
    groups = weight_groups(model)
    layers = check_layers(groups, args.layers or list(groups), label)
    grid = Grid(layers, spec.kind, tuple(args.levels), args.repeats)

    def decode():
        # At most half the memory bound for the decoded images (beyond it they are
        # memory-mapped from --cache-dir); the engine's cached activations get the rest.
        return data.load_arrays(dataset, prep, cache_dir=args.cache_dir, memory_gb=args.memory_gb / 2,
                                skip_bad=args.skip_bad)

    arrays = decode() if args.skip_bad else None  # then the number of images is known only after decoding
    run = RunInfo(
        model=label,
        weights_sha256=file_digest(args.weights, "sha256"),
        dataset_id=data.dataset_id(dataset, prep),
        images=len(arrays[1]) if arrays else len(dataset.files),
        version=__version__,
        semantics=args.semantics,
    )
    name = output_name(label, args.semantics)
    results = args.results or default_results(args, spec.kind, label)
    table, trials = results, grid.trials()
    if shard:
        table = shard_path(results, shard)
        trials = shard_share(trials, layer_costs(model, groups), shard)
        write_manifest(table, run, grid, shard)

    with ResultsLog(table, run) as log:
        pending = [t for t in trials if key(t) not in log.done]
        print(f"{table}: {len(trials) - len(pending)} of {len(trials)} trials already done, {len(pending)} to run")
        if pending:
            images, labels = arrays or decode()
            run_trials(model, groups, pending, images, labels, log, semantics=args.semantics,
                       batch_size=args.batch_size, memory_gb=args.memory_gb, progress=not args.no_progress)

    if shard:
        pattern = shard_path(results, shard).name.replace(f"shard-{shard.index}-", "shard-*-")
        print(f"shard {shard} done in {time.perf_counter() - started:.0f} s. Once every shard is done:\n"
              f"  python -m replication.merge {results} {results.with_name(pattern)}\n"
              f"then run this command with --results {results} and without --shard to draw the figure.")
        return 0

    finished = grid_table(results, grid)
    stem = args.out / f"figure{spec.number}-{name}"
    title = display_name(label) + ("" if args.semantics == "paper" else f", {args.semantics} semantics")
    pictures = save_figure(plot_figure(finished, spec, layers, title), stem)
    report = Path(f"{stem}-stats.md")
    with atomic_output(report) as tmp:
        tmp.write_text(figure_report(finished, spec, layers, results), encoding="utf-8")
    print(report.read_text(encoding="utf-8"))
    for path in (*pictures, report, results):
        print(f"wrote {path}")
    print(f"Figure {spec.number} took {time.perf_counter() - started:.0f} s")
    return 0

