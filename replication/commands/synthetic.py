"""python -m replication.synthetic --model alexnet -o caffe_weights/synthetic_alexnet.h5

Writes a synthetic model: the real layers and weight shapes with random weights of
realistic scale, as a Caffe .caffemodel or as the project's HDF5 weight file. It is the
offline route to every command (no download needed); every output made from it says
that its accuracies are at chance by design.
"""

import sys

from replication.commands.common import new_parser, output_file, run_cli

SYNTHETIC_MODELS = ("alexnet", "caffenet")


def main(argv=None) -> int:
    parser = new_parser("python -m replication.synthetic",
                        "Write a synthetic model (real shapes, random weights) for offline use.", tensorflow=False)
    parser.add_argument("--model", choices=SYNTHETIC_MODELS, default="alexnet",
                        help="which network's layers and shapes (default alexnet)")
    parser.add_argument("-o", "--output", type=output_file, required=True,
                        help="FILE.caffemodel (Caffe's binary format) or FILE.h5 (ready for --weights)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.output.suffix not in (".caffemodel", ".h5"):
        parser.error(f"argument -o/--output: {args.output}: name it .caffemodel or .h5")

    from replication.caffe.convert import convert_caffemodel
    from replication.files import temporary_folder
    from replication.models.synthetic import write_synthetic_alexnet

    if args.output.suffix == ".caffemodel":
        write_synthetic_alexnet(args.output, seed=args.seed, flavour=args.model)
    else:
        with temporary_folder(args.output) as tmp:  # errors name args.output, never the temporary
            caffemodel = tmp / f"synthetic_{args.model}.caffemodel"
            write_synthetic_alexnet(caffemodel, seed=args.seed, flavour=args.model)
            convert_caffemodel(caffemodel, args.output, progress=False)
    print(f"wrote {args.output}: synthetic {args.model} (seed {args.seed}), random weights of the real shapes; "
          "accuracies with it are at chance by design")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
