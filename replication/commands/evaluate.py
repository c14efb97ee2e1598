"""python -m replication.evaluate --model M --weights W.h5 --data DIR [...] [--json F]

Top-1 and top-5 accuracy (Caffe's rule, on the logits) of a model on the validation
images, the number of images and images/s end to end.
"""

import sys

from replication.commands.common import (
    add_image_options,
    add_model_options,
    add_precision_option,
    fill_image_defaults,
    load_tensorflow,
    new_parser,
    output_file,
    positive_int,
    preprocessing,
    run_cli,
)
from replication.models.registry import list_models


def build_parser():
    parser = new_parser("python -m replication.evaluate",
                        "Top-1 and top-5 accuracy of a classifier on ILSVRC2012 validation images.")
    add_model_options(parser, f"{', '.join(list_models())}, or a Caffe deploy .prototxt",
                      "HDF5 weights from python -m replication.convert", required=True)
    add_image_options(parser, required=True)
    out = parser.add_argument_group("outputs and resources")
    add_precision_option(out)
    out.add_argument("--batch-size", type=positive_int, default=64)
    out.add_argument("--json", type=output_file, help="also write top1, top5, images, images_per_s to this JSON file")
    out.add_argument("--predictions", type=output_file,
                     help="also write one CSV row per image: file, label, the five top classes in order, "
                     "and the true class's rank among the logits")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    fill_image_defaults(args)
    load_tensorflow(args.verbose)
    from replication import data
    from replication.experiment import run_evaluation

    result = run_evaluation(args.model, args.weights, args.data, labels=args.labels, limit=args.limit,
                            preprocessing=preprocessing(args), batch_size=args.batch_size,
                            precision=args.precision, skip_bad=args.skip_bad, json=args.json,
                            predictions=args.predictions, progress=not args.no_progress)
    print(f"top-1     {result.top1:.4f}")
    print(f"top-5     {result.top5:.4f}")
    print(f"images    {result.images}")
    print(f"images/s  {result.images_per_s:.1f}")
    if result.note:
        print(f"note: {result.note}")
    data.report_skipped(list(result.skipped))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
