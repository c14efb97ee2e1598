"""python -m replication.table1 --weights W.h5 [--model alexnet] [--csv F] [--markdown F]

The paper's Table 1 for a weight file: statistics of every weight array beside the
paper's published figures.
"""

import sys

from replication.commands.common import new_parser, run_cli
from replication.files import atomic_output
from replication.models.registry import list_models


def main(argv=None) -> int:
    parser = new_parser("python -m replication.table1",
                        "The paper's Table 1: summary statistics of every weight array of the network.")
    parser.add_argument("--weights", required=True, help="HDF5 file written by python -m replication.convert")
    parser.add_argument("--model", default="alexnet",
                        help=f"{', '.join(list_models())} or a deploy .prototxt (default alexnet)")
    parser.add_argument("--csv", help="also write the table, with the paper's figures, as CSV")
    parser.add_argument("--markdown", help="also write the table as markdown")
    args = parser.parse_args(argv)

    from replication.analysis.table1 import format_markdown, format_table, table1
    from replication.models.registry import create_model

    table = table1(create_model(args.model, args.weights))
    print(f"Table 1 for {args.weights} ({args.model}):\n")
    print(format_table(table))
    if args.csv:
        with atomic_output(args.csv) as tmp:
            table.to_csv(tmp, float_format="%.9g")
    if args.markdown:
        with atomic_output(args.markdown) as tmp:
            tmp.write_text(format_markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
