"""python -m replication.recover: damage a trained network as a sweep trial does, fine-tune
it, and measure how fast and how far it comes back (the question of the paper's section 7).

From files to the recovery table, its figure and its statistics report: the damage is the
sweeps' (same layer, perturbation, level and repeat give the same seeded draw), then each
damaged network and its control are fine-tuned identically on the training images and
scored on the held-out images at fixed steps (docs/recovery.md).
"""

import sys
from pathlib import Path

from replication.commands.common import (
    add_image_options,
    add_model_options,
    add_precision_option,
    choice_list,
    comma_list,
    fill_image_defaults,
    fraction,
    level_list,
    new_parser,
    non_negative_float,
    output_file,
    output_folder,
    positive_float,
    positive_int,
    print_missing,
    run_cli,
)
from replication.models.registry import get_model_spec, list_models
from replication.paths import WEIGHTS_DIR
from replication.perturb.registry import SEMANTICS, perturbation_names
from replication.recovery.table import LESIONS, TRAIN_LAYERS


def build_parser():
    parser = new_parser(
        "python -m replication.recover",
        "Recovery after damage: damage one layer as a sweep trial does (same seeded draw), fine-tune the network "
        "with SGD + momentum, and score the held-out images at fixed steps, against the undamaged network "
        "fine-tuned identically. Writes the recovery table (resumable), a figure of recovery curves and a "
        "statistics report.",
    )
    add_model_options(parser, f"{', '.join(list_models())}, or a Caffe deploy .prototxt (default alexnet)",
                      "the model's weights, as for the figure commands")
    add_image_options(parser)
    data = parser.add_argument_group("training images (--data holds the held-out images)")
    where = data.add_mutually_exclusive_group()
    where.add_argument("--train", type=Path,
                       help="the training images, in any of the three layouts (ImageNet's train set: one folder "
                       "per class)")
    where.add_argument("--split", type=fraction,
                       help="instead: hold out this class-stratified, seeded share of --data and train on the rest "
                       "(a demonstration split, not ImageNet's train set)")
    data.add_argument("--train-labels", type=Path, help="labels of --train, when not in its folder")
    data.add_argument("--train-limit", type=positive_int,
                      help="train on a seeded random sample of N of the training images (all classes, not the first N files)")
    damage = parser.add_argument_group("damage (as in the sweeps)")
    damage.add_argument("--layers", type=comma_list, required=True, help="comma-separated layers to damage, one at a time")
    damage.add_argument("--perturbation", choices=perturbation_names(), default="node")
    damage.add_argument("--levels", type=level_list, default=[0.5], help="comma-separated levels (default 0.5)")
    damage.add_argument("--repeats", type=positive_int, default=3, help="damage draws per layer and level (default 3)")
    damage.add_argument("--semantics", choices=SEMANTICS, default="paper")
    train = parser.add_argument_group("fine-tuning")
    train.add_argument("--lesion", type=choice_list(LESIONS), default=["held"],
                       help="held: the damaged weights stay at their damaged values (zero for knockouts) and the "
                       "rest of the network must compensate; free: they may regrow; or held,free (default held)")
    train.add_argument("--train-layers", type=choice_list(TRAIN_LAYERS), default=["all"],
                       help="which layers train: all, damaged (only the damaged one), above (those after it), "
                       "below (those before it); comma-separated for several (default all)")
    train.add_argument("--no-control", action="store_true",
                       help="skip the control (the undamaged network fine-tuned identically)")
    train.add_argument("--steps", type=positive_int, default=1000, help="SGD steps per run (default 1000)")
    train.add_argument("--eval-every", type=positive_int, help="score the held-out images every N steps "
                       "(default steps/10), and at step 0 and the last step")
    train.add_argument("--batch-size", type=positive_int, default=64, help="training images per step (default 64)")
    train.add_argument("--learning-rate", type=positive_float, default=0.001, help="default 0.001")
    train.add_argument("--momentum", type=non_negative_float, default=0.9, help="default 0.9")
    train.add_argument("--weight-decay", type=non_negative_float, default=0.0005,
                       help="Caffe's L2 weight decay on the trained kernels (default 0.0005)")
    train.add_argument("--no-augment", action="store_true",
                       help="centre crops only (default: Caffe's training-time random crop and mirror)")
    train.add_argument("--seed", type=int, default=0,
                       help="seed of the training stream, the dropout masks and --split (default 0)")
    out = parser.add_argument_group("outputs and resources")
    out.add_argument("--out", type=output_folder, default="figures", help="output folder (default figures/)")
    out.add_argument("--results", type=output_file,
                     help="recovery table; resumed when it exists (default OUT/recovery-MODEL-PERTURBATION.csv)")
    out.add_argument("--metric", choices=("top5", "top1"), default="top5", help="what the figure shows, and the report first (it shows both)")
    out.add_argument("--at-images", type=positive_int,
                     help="the report's figures after this many training images (default: the last evaluation)")
    out.add_argument("--eval-batch-size", type=positive_int, default=64)
    out.add_argument("--memory-gb", type=positive_float, default=4.0,
                     help="bound on the decoded held-out images in RAM (beyond it they go to --cache-dir)")
    out.add_argument("--cache-dir", type=Path, help="folder for the decoded held-out images when they exceed --memory-gb")
    add_precision_option(out)
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    spec = get_model_spec(args.model)
    if args.weights is None and spec is not None and spec.zoo_file:
        args.weights = WEIGHTS_DIR / f"{spec.zoo_file}.h5"
    if args.train is None and args.split is None:
        parser.error("give the training images (--train DIR) or a demonstration split of --data (--split F)")
    if args.precision == "float16":
        parser.error("--precision float16 needs loss scaling in training, which recover does not do; "
                     "use float32 or bfloat16")
    if args.eval_every is None:
        args.eval_every = max(1, args.steps // 10)
    fill_image_defaults(args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from replication.commands.figure import image_options
    from replication.inputs import MissingInputs
    from replication.recovery.experiment import run_recovery
    from replication.recovery.train import Training

    training = Training(args.steps, args.eval_every, args.batch_size, args.learning_rate, args.momentum,
                        args.weight_decay, not args.no_augment, args.seed)
    images = image_options(args)
    images.pop("skip_bad")  # every training image is checked before any work; the held-out ones are read whole
    try:
        result = run_recovery(
            args.model, args.weights, args.data, **images, layers=args.layers, train=args.train,
            split=args.split, train_labels=args.train_labels, train_limit=args.train_limit,
            perturbation=args.perturbation, levels=args.levels, repeats=args.repeats, semantics=args.semantics,
            lesion=args.lesion, train_layers=args.train_layers, control=not args.no_control, training=training,
            out=args.out, results=args.results, metric=args.metric, at_images=args.at_images,
            eval_batch_size=args.eval_batch_size, memory_gb=args.memory_gb, cache_dir=args.cache_dir,
            precision=args.precision, progress=not args.no_progress)
    except MissingInputs as missing:
        return print_missing(missing.what, missing.missing)
    print(result.report_text)
    for path in result.outputs:
        print(f"wrote {path}")
    print(f"recover took {result.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
