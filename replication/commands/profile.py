"""python -m replication.profile --results T.csv [T2.csv ...] [-o OUT] [--metric top5]

Beyond the paper: for every network and perturbation in the given results tables, the
level at which each layer's metric falls to half its baseline (interpolated; "not
reached" when it does not), with its spread over repeats, against relative depth.
Writes OUT.csv, OUT.md and OUT.png (`analysis.profile`).
"""

import sys
from pathlib import Path

from replication.analysis.experiments import METRICS
from replication.commands.common import new_parser, output_file, run_cli


def main(argv=None) -> int:
    parser = new_parser("python -m replication.profile",
                        "The level at which each layer's accuracy halves, per network and perturbation, "
                        "against relative depth.", tensorflow=False)
    parser.add_argument("--results", required=True, nargs="+", help="results CSV(s) written by sweeps, of one or more networks")
    parser.add_argument("--metric", choices=tuple(METRICS), default="top5")
    parser.add_argument("-o", "--output", type=output_file, default=Path("profile"),
                        help="stem of the files written: OUT.csv, OUT.md, OUT.png (default profile)")
    args = parser.parse_args(argv)

    from replication.analysis.profile import profile_markdown, robustness_profile, write_profile

    profile = robustness_profile(args.results, args.metric)
    print(profile_markdown(profile), end="")
    for path in write_profile(profile, args.output, args.metric):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
