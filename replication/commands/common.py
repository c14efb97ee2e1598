"""What the commands share: the error wrapper, option types that refuse bad values when
parsed, the model and image options, and the report of missing inputs."""

import argparse
import contextlib
import math
import os
import sys
import tempfile
from pathlib import Path

from replication.errors import ReplicationError
from replication.interrupt import EXIT_TERMINATED, Terminated, exit_status, handle_termination, termination_received
from replication.paths import DEFAULT_MEAN_FILE


def one_line(message: str, argv=None) -> str:
    """An error message as one line: a message that spans several lines (a library's
    report of every way it tried) keeps its first line, and the rest is shown with
    --verbose."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return message.strip()
    if "--verbose" in (sys.argv[1:] if argv is None else argv):
        return " | ".join(lines)
    return f"{lines[0].rstrip(':')} … (the details with --verbose)"


def run_cli(main, argv=None) -> int:
    """Run a command's `main(argv)`: bad input, and any fault of the operating system (a
    full disk, a read-only folder, a folder where a file is expected), becomes one line
    `error: FILE: what happened` on stderr and exit 2, without a traceback. Ctrl-C ends it
    with status 130, SIGTERM likewise with 143 (`interrupt.handle_termination`)."""
    try:
        with handle_termination():
            return main(argv) or 0
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (`interrupt.Terminated`)
        print("terminated" if isinstance(interrupt, Terminated) else "interrupted", file=sys.stderr)
        return exit_status(interrupt)
    except SystemExit as exit_:  # argparse: --help (0), or an option refused when parsed (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    except Exception as err:
        if termination_received():  # `Terminated`, turned into another exception on its way out
            print("terminated", file=sys.stderr)
            return EXIT_TERMINATED
        if isinstance(err, ReplicationError):
            print(f"error: {one_line(str(err), argv)}", file=sys.stderr)
            return 2
        if isinstance(err, OSError):
            where = f"{err.filename}: " if err.filename else ""
            print(f"error: {where}{err.strerror or err}", file=sys.stderr)
            return 2
        raise


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null: TensorFlow's C++ start-up lines are written
    there before its log level can take effect."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow quietly (no CUDA probing or oneDNN lines on a CPU machine), or with
    all its start-up messages when `verbose`. Call it before anything imports TensorFlow."""
    if "tensorflow" in sys.modules:
        return
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow  # noqa: F401


def _probe_folder(folder: Path, what: Path) -> None:
    """Create and remove a file in `folder` (the nearest existing one): the only test of
    writability that holds for root and on read-only mounts alike."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".replication-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise argparse.ArgumentTypeError(f"{what}: cannot write in {folder} ({err.strerror})") from None


def _existing_ancestor(path: Path) -> Path:
    folder = path.parent if path.parent != Path("") else Path(".")
    while not folder.exists():
        folder = folder.parent
    return folder


def output_file(text: str) -> Path:
    """An output file that can be written: not a folder, in a folder that can be written
    (created later if missing). Checked when the options are parsed, before any work."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: is a folder; give a file name")
    folder = _existing_ancestor(path)
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {folder} is a file, not a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise argparse.ArgumentTypeError(f"{path}: exists and cannot be written")
    _probe_folder(folder, path)
    return path


def output_folder(text: str) -> Path:
    """An output folder that exists and can be written, or can be created."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: is a file, not a folder")
    folder = path if path.is_dir() else _existing_ancestor(path / "x")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {folder} is a file, not a folder")
    _probe_folder(folder, path)
    return path


def entry_point(module_name: str, main):
    """Run `main` as a command (`run_cli`) when the calling module is run with python -m;
    otherwise return it, so that the module's `main` can be called from Python."""
    if module_name == "__main__":
        sys.exit(run_cli(main))
    return main


def new_parser(prog: str, description: str, tensorflow: bool = True) -> argparse.ArgumentParser:
    """An argument parser that takes no abbreviations (`--result` is not `--results`), with
    --verbose (an error's every detail). The commands that run TensorFlow load it now,
    quietly unless --verbose is on the command line: their options list the registered
    models, whose modules import Keras."""
    parser = argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)
    if tensorflow:
        load_tensorflow(verbose="--verbose" in sys.argv[1:])
        parser.add_argument("--verbose", action="store_true",
                            help="show TensorFlow's start-up messages, and an error's every detail")
    else:
        parser.add_argument("--verbose", action="store_true", help="show an error's every detail")
    return parser


def positive_int(text: str) -> int:
    try:
        if not text.strip().isascii():
            raise ValueError(text)
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        if not text.strip().isascii():
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, not {text}")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1."""
    value = _finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def choice_list(allowed):
    """A parser of comma-separated names, each one of `allowed`; repeats dropped."""

    def parse(text: str) -> list[str]:
        items = comma_list(text)
        wrong = [item for item in items if item not in allowed]
        if wrong:
            raise argparse.ArgumentTypeError(f"{', '.join(wrong)}: choose from {', '.join(allowed)}")
        return list(dict.fromkeys(items))

    return parse


def comma_list(text: str) -> list[str]:
    """'a,b,c' -> ['a', 'b', 'c']; an empty item (',' or 'a,,b') is refused."""
    items = [part.strip() for part in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated names without empty items, got {text!r}")
    return items


def level_list(text: str) -> list[float]:
    """'0,0.5,1' -> [0.0, 0.5, 1.0]; every level a finite number."""
    try:
        if not text.isascii():
            raise ValueError(text)
        levels = [float(part) for part in comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels must be comma-separated numbers, got {text!r}") from None
    if not all(math.isfinite(level) for level in levels):
        raise argparse.ArgumentTypeError(f"levels must be finite numbers, got {text!r}")
    return levels


def add_model_options(parser, models_help: str, weights_help: str, required: bool = False) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=required, default=None if required else "alexnet", help=models_help)
    group.add_argument("--weights", type=Path, required=required, help=weights_help)


def add_precision_option(parser) -> None:
    from replication.run.table import PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                        help="what the model computes in: float32 (default; exact float32 on every device, TF32 "
                        "off), or for fast exploratory runs tf32 (GPUs), bfloat16 or float16")


def add_image_options(parser, required: bool = False) -> None:
    """--data, --labels, --limit and Caffe's preprocessing options."""
    group = parser.add_argument_group("images")
    group.add_argument("--data", type=Path, required=required,
                       help="the ILSVRC2012 validation images: with val.txt, in one folder per class (WordNet "
                       "ids), or with the devkit's ground truth")
    group.add_argument("--labels", type=Path,
                       help="Caffe val.txt (FILENAME LABEL) or the devkit's ILSVRC2012_validation_ground_truth.txt, "
                       "when not in --data")
    group.add_argument("--limit", type=positive_int, help="use only the first N images (by file name)")
    group.add_argument("--resize", type=positive_int,
                       help="resize images to this square size first (default 256)")
    group.add_argument("--crop", type=positive_int,
                       help="then take the central crop of this size (default 227)")
    from replication.data.preprocessing import MEANS, RESIZE_FILTERS

    group.add_argument("--mean", choices=MEANS,
                       help="subtract the ImageNet mean image (--mean-file) or the mean pixel BGR 104/117/123 "
                       "from BGR images (Caffe's); rgb_pixel: the mean pixel RGB 123.68/116.779/103.939 from RGB "
                       "images (convnets-keras's); keras_caffe / keras_tf: Keras Applications' preprocess_input "
                       "modes (default: the model's own, docs/data.md)")
    group.add_argument("--resize-filter", choices=RESIZE_FILTERS,
                       help="TensorFlow's bilinear resize, like Caffe's OpenCV; PIL's bilinear filter on uint8 "
                       "(scipy.misc.imresize, convnets-keras's); or PIL's nearest (Keras' load_img, the VGG "
                       "recipe) (default: the model's own)")
    group.add_argument("--mean-file", type=Path,
                       help=f"ilsvrc_2012_mean.npy (3x256x256 BGR) for --mean image (default {DEFAULT_MEAN_FILE})")
    group.add_argument("--skip-bad", action="store_true", help="leave out unreadable images and list them at the end")


def fill_image_defaults(args) -> None:
    """The defaults that depend on other options: each of --resize, --crop, --mean,
    --resize-filter and --mean-file not given is the model's own
    (`experiment.model_preprocessing`)."""
    from replication.experiment import model_preprocessing

    prep = model_preprocessing(args.model, args.resize, args.crop, args.mean, args.resize_filter, args.mean_file)
    for key in ("resize", "crop", "mean", "resize_filter", "mean_file"):
        setattr(args, key, getattr(prep, key))


def preprocessing(args):
    """The `data.Preprocessing` of the parsed image options (after `fill_image_defaults`)."""
    from replication.experiment import model_preprocessing

    return model_preprocessing(args.model, args.resize, args.crop, args.mean, args.resize_filter, args.mean_file)


def print_missing(what: str, missing: list[str]) -> int:
    """List what a run lacks, each with how to get it, on stderr; returns exit status 2."""
    print(f"{what} cannot run; missing:", file=sys.stderr)
    for item in missing:
        print(f"  - {item}", file=sys.stderr)
    return 2
