"""Everything the paper reports, in one command: Table 1, Figures 1-5 and the claims table.

    python -m replication.reproduce --data ILSVRC2012_val/ [--labels val.txt] [figure options]

Runs figure1, figure2, figure3 and figure4 in turn with the same options (each resumes
its results table, so an interrupted run picks up where it stopped, and figure4 reuses
figure3's trials), then table1 for the same weights, then compare on the three tables
together, so that the claims which set node against synapse knockout are checked too.
Everything lands in --out (default figures/): figureN-MODEL.{png,pdf}, figureN-MODEL-stats.md,
results-MODEL-PERTURBATION.csv, table1-MODEL.{csv,md} and claims-MODEL-METRIC.{csv,md}.

Figure 5 is VGG-16's (Keras Applications' VGG16, whatever --model says): it runs when
Keras's VGG-16 weights are in caffe_weights/ (python -m replication.download vgg16), with
the options that do not belong to one model (images, repeats, semantics, outputs and
resources; not --model, --weights, --layers or the preprocessing), followed by compare
on its table (claims-vgg16-top5.{csv,md}); without the weights it is skipped, and the
command says so.

With --slurm (and --shards, --sbatch, --dry-run, as for the figure commands), each figure's
sweep is submitted as a job array plus a merge-and-draw job, and one last job runs this
command again once they have succeeded, which then only draws and compares (docs/cluster.md).

Any option of the figure commands may be given (see python -m replication.figure1 --help)
except those that name one figure's grid or table: --levels, --results and --shard.
"""

import sys

from replication.commands.common import print_missing, run_cli
from replication.commands.figure import (
    experiment_options,
    missing_before_tensorflow,
    parse_figure_args,
    print_submission,
)
from replication.errors import ReplicationError

PER_FIGURE_OPTIONS = ("--levels", "--results", "--shard")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    clash = [o for o in PER_FIGURE_OPTIONS if any(a == o or a.startswith(o + "=") for a in argv)]
    if clash:
        raise ReplicationError(None, f"{', '.join(clash)} name(s) one figure's grid or table; run that figure command instead")
    missing = missing_before_tensorflow(1, argv)
    if missing:
        return print_missing("The replication", missing)
    args = parse_figure_args(1, argv)
    if args.slurm or args.dry_run:
        return submit(argv, args)
    from replication.experiment import reproduce
    from replication.inputs import MissingInputs

    try:
        done = reproduce(args.data, args.model, args.weights, **experiment_options(args))
    except MissingInputs as missing:
        return print_missing(missing.what, missing.missing)
    for path in done.outputs:
        print(f"wrote {path}")
    return 0


def submit(argv, args) -> int:
    """--slurm: every figure as a sharded sweep, then one job that runs reproduce to draw and compare."""
    from replication.run.slurm import submit_replication

    done = submit_replication(argv, args.model, args.semantics, args.out, args.shards, args.sbatch, args.dry_run)
    for sweep in done.sweeps:
        print_submission(sweep)
    print(done.figure5)
    if done.job is None:
        print(f"then:\n  {done.sbatch_line}")
    else:
        print(f"submitted job {done.job}: python -m replication.reproduce once every figure is merged ({done.script})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
