"""python -m replication.table1 --weights W.h5 [--model alexnet] [--csv F] [--markdown F]

The paper's Table 1 for a weight file: statistics of every weight array beside the
paper's printed figures and the relative differences, whether each matches at the paper's
3 significant figures, notes on probable slips of the printed table, and last a verdict:
how many of the paper's 22 rows these weights match, and the rows that differ most.
"""

import sys

from replication.commands.common import load_tensorflow, new_parser, output_file, run_cli
from replication.models.registry import list_models


def main(argv=None) -> int:
    parser = new_parser("python -m replication.table1",
                        "The paper's Table 1: summary statistics of every weight array of the network, "
                        "compared with the paper's printed figures.")
    parser.add_argument("--weights", required=True,
                        help="HDF5 file written by python -m replication.convert, or for convnets_keras the "
                        "authors' Keras 1 alexnet_weights.h5")
    parser.add_argument("--model", default="alexnet",
                        help=f"{', '.join(list_models())} or a deploy .prototxt (default alexnet)")
    parser.add_argument("--csv", type=output_file, help="also write the table, with the paper's figures and the verdict, as CSV")
    parser.add_argument("--markdown", type=output_file, help="also write the table and the verdict as markdown")
    args = parser.parse_args(argv)

    load_tensorflow(args.verbose)
    from replication.analysis.table1 import write_table1

    text, _ = write_table1(args.model, args.weights, args.csv, args.markdown)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
