"""Everything the paper reports, in one command: Table 1, Figures 1-4 and the claims table.

    python -m replication.reproduce --data ILSVRC2012_val/ [--labels val.txt] [figure options]

Runs figure1, figure2, figure3 and figure4 in turn with the same options (each resumes
its results table, so an interrupted run picks up where it stopped, and figure4 reuses
figure3's trials), then table1 for the same weights, then compare on the three tables
together, so that the claims which set node against synapse knockout are checked too.
Everything lands in --out (default figures/): figureN-MODEL.{png,pdf}, figureN-MODEL-stats.md,
results-MODEL-PERTURBATION.csv, table1-MODEL.{csv,md} and claims-MODEL-METRIC.{csv,md}.

Any option of the figure commands may be given (see python -m replication.figure1 --help)
except those that name one figure's grid or table: --levels, --results and --shard.
"""

import sys

from replication.analysis.experiments import EXPERIMENTS, METRICS
from replication.commands import compare, table1
from replication.commands.common import print_missing, run_cli
from replication.commands.figure import default_results, figure_main, missing_inputs, output_stem, parse_figure_args
from replication.errors import ReplicationError
from replication.models.registry import describe_model

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
        return print_missing("The replication", missing)

    for number in EXPERIMENTS:
        status = figure_main(number, argv)
        if status:
            return status

    slug = describe_model(args.model).slug
    name = output_stem(slug, args.semantics)
    table1.main(["--weights", str(args.weights), "--model", args.model,
                 "--csv", str(args.out / f"table1-{name}.csv"), "--markdown", str(args.out / f"table1-{name}.md")])
    tables = sorted({str(default_results(args, e.perturbation, slug)) for e in EXPERIMENTS.values()})
    for metric in METRICS:
        print(f"\nThe paper's claims, {metric}:")
        compare.main(["--results", *tables, "--metric", metric,
                      "--csv", str(args.out / f"claims-{name}-{metric}.csv"),
                      "--markdown", str(args.out / f"claims-{name}-{metric}.md")])
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
