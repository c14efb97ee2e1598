"""What the commands share: the error wrapper, option types that refuse bad values when
parsed, the model and image options, and the report of missing inputs."""

import argparse
import math
import sys
from pathlib import Path

from replication.errors import ReplicationError
from replication.paths import DEFAULT_MEAN_FILE


def run_cli(main, argv=None) -> int:
    """Run a command's `main(argv)`; bad input becomes one line on stderr and exit 2."""
    try:
        return main(argv) or 0
    except ReplicationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry_point(module_name: str, main):
    """Run `main` as a command (`run_cli`) when the calling module is run with python -m;
    otherwise return it, so that the module's `main` can be called from Python."""
    if module_name == "__main__":
        sys.exit(run_cli(main))
    return main


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser that takes no abbreviations (`--result` is not `--results`)."""
    return argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def comma_list(text: str) -> list[str]:
    """'a,b,c' -> ['a', 'b', 'c']; an empty item (',' or 'a,,b') is refused."""
    items = [part.strip() for part in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated names without empty items, got {text!r}")
    return items


def level_list(text: str) -> list[float]:
    """'0,0.5,1' -> [0.0, 0.5, 1.0]; every level a finite number."""
    try:
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
    group.add_argument("--resize", type=positive_int, default=256,
                       help="resize images to this square size first (default 256)")
    group.add_argument("--crop", type=positive_int, default=227,
                       help="then take the central crop of this size (default 227)")
    group.add_argument("--mean", choices=("image", "pixel"), default="image",
                       help="subtract the ImageNet mean image (--mean-file) or the mean pixel BGR 104/117/123 "
                       "(default image)")
    group.add_argument("--mean-file", type=Path,
                       help=f"ilsvrc_2012_mean.npy (3x256x256 BGR) for --mean image (default {DEFAULT_MEAN_FILE})")
    group.add_argument("--skip-bad", action="store_true", help="leave out unreadable images and list them at the end")


def fill_image_defaults(args) -> None:
    """The defaults that depend on other options."""
    if args.mean == "image" and args.mean_file is None:
        args.mean_file = DEFAULT_MEAN_FILE


def preprocessing(args):
    from replication.data.preprocessing import Preprocessing

    return Preprocessing(resize=args.resize, crop=args.crop, mean=args.mean, mean_file=args.mean_file)


def open_model(model: str, weights, crop: int):
    """The model with its weights: a registered model at its own input size, a prototxt
    model at the crop size."""
    from replication.models.registry import create_model, get_model_spec

    input_shape = None if get_model_spec(model) is not None else (crop, crop, 3)
    return create_model(model, weights, input_shape=input_shape)


def print_missing(what: str, missing: list[str]) -> int:
    """List what a run lacks, each with how to get it, on stderr; returns exit status 2."""
    print(f"{what} cannot run; missing:", file=sys.stderr)
    for item in missing:
        print(f"  - {item}", file=sys.stderr)
    return 2
