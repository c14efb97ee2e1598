"""python -m replication.status RESULTS.csv

How far a sweep has got: per shard, trials done / total, the newest row's time and the
estimated time left; where squeue exists, the states of the last --slurm submission's jobs
(`run.status.sweep_status`). Works with or without Slurm; loads neither TensorFlow nor pandas.
"""

import sys
from pathlib import Path

from replication.commands.common import new_parser, run_cli


def main(argv=None) -> int:
    parser = new_parser("python -m replication.status",
                        "How far a sweep has got, per shard, and its Slurm jobs' states.", tensorflow=False)
    parser.add_argument("results", type=Path, help="the results table (its shard tables lie beside it)")
    args = parser.parse_args(argv)

    from replication.run.status import status_text, sweep_status

    print(status_text(sweep_status(args.results)))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
