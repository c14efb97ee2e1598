"""Everything the paper reports, in one command: Table 1, Figures 1-4 and the claims table.

    python -m replication.reproduce --data ILSVRC2012_val/ [--labels val.txt] [figure options]

Runs figure1, figure2, figure3 and figure4 in turn with the same options (each resumes
its results table, so an interrupted run picks up where it stopped, and figure4 reuses
figure3's trials), then table1 for the same weights, then compare on the three tables
together, so that the claims which set node against synapse knockout are checked too.
Everything lands in --out (default figures/): figureN-MODEL.{png,pdf}, figureN-MODEL-stats.md,
results-MODEL-KIND.csv, table1-MODEL.{csv,md} and claims-MODEL.{csv,md}.

Any option of the figure commands may be given (see python -m replication.figure1 --help)
except those that name one figure's grid or table: --levels, --results and --shard.
"""

import sys

from replication.cli import FIGURES, default_results, figure_main, missing_inputs, model_label, output_name, parse_figure_args
from replication.errors import ReplicationError, run_cli

PER_FIGURE_OPTIONS = ("--levels", "--results", "--shard")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    clash = [o for o in PER_FIGURE_OPTIONS if any(a == o or a.startswith(o + "=") for a in argv)]
    if clash:
        raise ReplicationError(None, f"{', '.join(clash)} name(s) one figure's grid or table; run that figure command instead")

    args = parse_figure_args(1, argv)
    missing = missing_inputs(args)
    if missing:
        print("The replication cannot run; missing:", file=sys.stderr)
        for item in missing:
            print(f"  - {item}", file=sys.stderr)
        return 2

    # Imported only now: TensorFlow takes seconds to load, and a user who lacks a file
    # should hear so at once.
    from replication import compare, table1

    for number in FIGURES:
        status = figure_main(number, argv)
        if status:
            return status

    name = output_name(model_label(args.model), args.semantics)
    model_arg = ["--model", args.model] if args.model else []
    table1.main(["--weights", str(args.weights), *model_arg,
                 "--csv", str(args.out / f"table1-{name}.csv"), "--markdown", str(args.out / f"table1-{name}.md")])
    tables = sorted({str(default_results(args, FIGURES[n].kind)) for n in FIGURES})
    for metric in ("top5", "top1"):
        print(f"\nThe paper's claims, {metric}:")
        compare.main(["--results", *tables, "--metric", metric,
                      "--csv", str(args.out / f"claims-{name}-{metric}.csv"),
                      "--markdown", str(args.out / f"claims-{name}-{metric}.md")])
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
