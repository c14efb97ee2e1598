"""python -m replication.merge OUT.csv SHARD.csv [SHARD.csv ...]

Combines the shard tables of one sweep into one results table, or refuses, naming what is
wrong and writing nothing (`run.shards.merge_shards`). Loads neither TensorFlow nor pandas.
"""

import sys
from pathlib import Path

from replication.commands.common import new_parser, output_file, run_cli


def main(argv=None) -> int:
    parser = new_parser("python -m replication.merge",
                        "Combine the shard tables of one sweep into one results table, or refuse.", tensorflow=False)
    parser.add_argument("out", type=output_file, help="the merged results table to write")
    parser.add_argument("shards", type=Path, nargs="+", help="the shard tables (results.shard-I-of-N.csv)")
    args = parser.parse_args(argv)

    from replication.run.shards import merge_shards

    trials = merge_shards(args.out, args.shards)
    print(f"merged {trials} trials from {len(args.shards)} shards into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
