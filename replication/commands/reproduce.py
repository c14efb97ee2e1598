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

Any option of the figure commands may be given (see python -m replication.figure1 --help)
except those that name one figure's grid or table: --levels, --results and --shard.
"""

import sys

from replication.analysis.experiments import EXPERIMENTS, METRICS
from replication.commands import compare, table1
from replication.commands.common import print_missing, run_cli
from replication.commands.figure import default_results, figure_main, missing_inputs, output_stem, parse_figure_args
from replication.errors import ReplicationError
from replication.models.registry import describe_model, get_model_spec
from replication.paths import WEIGHTS_DIR

PER_FIGURE_OPTIONS = ("--levels", "--results", "--shard")
# The options Figure 5 takes from the command line: those that do not belong to one model.
SHARED_VALUE_OPTIONS = ("data", "labels", "limit", "repeats", "semantics", "out", "batch_size", "memory_gb",
                        "cache_dir", "devices")
SHARED_FLAGS = ("skip_bad", "no_progress", "verbose")


def figure5_plan(args) -> tuple[list[str] | None, str]:
    """Whether `reproduce` runs Figure 5, and with which options.

    Args:
        args: the parsed figure options of the run (`parse_figure_args`).

    Returns:
        (argv for figure5, or None when it is skipped; a line saying which and why).
    """
    model = EXPERIMENTS[5].model
    weights = WEIGHTS_DIR / f"{get_model_spec(model).zoo_file}.h5"
    if not weights.is_file():
        return None, (f"Figure 5 ({describe_model(model).title}) skipped: Keras's {model} weights are not at "
                      f"{weights}; python -m replication.download {model} fetches them (528 MB)")
    argv = ["--model", model, "--weights", str(weights)]
    for name in SHARED_VALUE_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            value = ",".join(value) if isinstance(value, list) else value
            argv += [f"--{name.replace('_', '-')}", str(value)]
    argv += [f"--{name.replace('_', '-')}" for name in SHARED_FLAGS if getattr(args, name, False)]
    return argv, f"Figure 5 ({describe_model(model).title}) runs on {weights}"


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

    # Figures 1-4 are of the chosen model; Figure 5 is of its own network (figure5_plan).
    numbers = [number for number, experiment in EXPERIMENTS.items() if experiment.model == EXPERIMENTS[1].model]
    for number in numbers:
        status = figure_main(number, argv)
        if status:
            return status

    slug = describe_model(args.model).slug
    name = output_stem(slug, args.semantics)
    table1.main(["--weights", str(args.weights), "--model", args.model,
                 "--csv", str(args.out / f"table1-{name}.csv"), "--markdown", str(args.out / f"table1-{name}.md")])
    tables = sorted({str(default_results(args, EXPERIMENTS[n].perturbation, slug)) for n in numbers})
    for metric in METRICS:
        print(f"\nThe paper's claims, {metric}:")
        compare.main(["--results", *tables, "--metric", metric,
                      "--csv", str(args.out / f"claims-{name}-{metric}.csv"),
                      "--markdown", str(args.out / f"claims-{name}-{metric}.md")])

    figure5_argv, line = figure5_plan(args)
    print(f"\n{line}")
    if figure5_argv is None:
        return 0
    status = figure_main(5, figure5_argv)
    if status:
        return status
    vgg = output_stem(describe_model(EXPERIMENTS[5].model).slug, args.semantics)
    print("\nThe paper's claims on Figure 5's table, top5:")
    compare.main(["--results", str(args.out / f"results-{vgg}-{EXPERIMENTS[5].perturbation}.csv"), "--metric", "top5",
                  "--csv", str(args.out / f"claims-{vgg}-top5.csv"),
                  "--markdown", str(args.out / f"claims-{vgg}-top5.md")])
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
