"""The figure commands (figure1 … figure5) and the options `reproduce` shares with them.

Each figure is a row of `analysis.experiments.EXPERIMENTS`; the command parses its
options, calls `replication.experiment.run_experiment` and prints what it did.
"""

import argparse
import sys
from pathlib import Path

from replication.analysis.experiments import EXPERIMENTS, METRICS, Experiment
from replication.commands.common import (
    add_image_options,
    add_model_options,
    add_precision_option,
    comma_list,
    entry_point,
    fill_image_defaults,
    level_list,
    new_parser,
    output_file,
    output_folder,
    positive_float,
    positive_int,
    print_missing,
)
from replication.errors import ReplicationError
from replication.models.registry import list_models
from replication.perturb.registry import SEMANTICS
from replication.run.shards import Shard, shard_path


def build_parser(experiment: Experiment):
    parser = new_parser(
        f"python -m replication.{experiment.name}",
        f"{experiment.label}: {METRICS[experiment.metric]} under {experiment.perturbation} perturbation of one "
        "layer at a time. Runs the missing trials into the results table (resuming it if it exists), then "
        "writes the figure (PNG and PDF) and a statistics report.",
    )
    add_model_options(
        parser, f"{', '.join(list_models())}, or a Caffe deploy .prototxt (default: {experiment.model})",
        "HDF5 weights written by python -m replication.convert (default: caffe_weights/<Model Zoo name>.h5 "
        "for a registered model, e.g. bvlc_alexnet.h5; Keras's file for a Keras Applications model, e.g. "
        "vgg16_weights_tf_dim_ordering_tf_kernels.h5)",
    )
    parser.set_defaults(model=experiment.model)
    add_image_options(parser)
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--layers", type=comma_list,
                       help="comma-separated layers in any order (default: every layer with weights; "
                       "paper names conv_1..dense_3 for alexnet/caffenet, Caffe layer names for a prototxt)")
    sweep.add_argument("--levels", type=level_list, default=list(experiment.levels),
                       help="comma-separated levels (default: " + ",".join(f"{v:g}" for v in experiment.levels) + ")")
    sweep.add_argument("--repeats", type=positive_int, default=experiment.repeats,
                       help=f"random draws per layer and level (default {experiment.repeats})")
    sweep.add_argument("--semantics", choices=SEMANTICS, default="paper",
                       help="perturbations as the paper describes them, or as the authors' code did them")
    sweep.add_argument("--conventions", choices=("ours", "authors"), default="ours",
                       help="error bars and the report's statistics as this project computes them (sample SD, "
                       "ddof 1) or as the authors' scripts did (ddof 0); docs/method.md")
    sweep.add_argument("--shard", help="run share i of n (0-based) of the trials, e.g. 3/8, into a table of its own")
    out = parser.add_argument_group("outputs and resources")
    out.add_argument("--out", type=output_folder, default="figures", help="output folder (default figures/)")
    out.add_argument("--results", type=output_file,
                     help="results table; resumed when it exists (default: OUT/results-MODEL-PERTURBATION.csv; "
                     "figure3 and figure4 share it)")
    out.add_argument("--batch-size", type=positive_int, default=64)
    out.add_argument("--memory-gb", type=positive_float, default=4.0,
                     help="bound on the decoded images (up to half of it; more go to --cache-dir) and "
                     "the cached activations together (default 4)")
    out.add_argument("--cache-dir", type=Path, help="folder for the decoded-image cache when images exceed --memory-gb")
    add_precision_option(out)
    out.add_argument("--devices", type=comma_list,
                     help="devices for the trial streams, one stream each: e.g. /GPU:0,/GPU:1, or cpu:N for N "
                     "logical CPU devices (default: every GPU when there are several)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_slurm_options(parser)
    return parser


def add_slurm_options(parser) -> None:
    group = parser.add_argument_group("Slurm (docs/cluster.md)")
    group.add_argument("--slurm", action="store_true",
                       help="submit the sweep as a job array of --shards tasks plus a job that merges and draws, "
                       "then exit; again after failures, it submits only the shards that miss trials")
    group.add_argument("--shards", type=positive_int, default=8, help="tasks of the job array (default 8)")
    group.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                       help="an sbatch option for the jobs, e.g. --sbatch=--gres=gpu:1 --sbatch=--time=8:00:00")
    group.add_argument("--dry-run", action="store_true", help="with --slurm: write the job scripts and print the "
                       "sbatch lines, submit nothing")


def parse_figure_args(number: int, argv=None):
    """The figure command's options, with the model's default weights and own preprocessing filled in."""
    from replication.inputs import default_weights

    args = build_parser(EXPERIMENTS[number]).parse_args(argv)
    if args.weights is None:
        args.weights = default_weights(args.model)
    fill_image_defaults(args)
    return args


def image_options(args) -> dict:
    """The image and preprocessing options as `run_experiment` takes them."""
    prep = {key: getattr(args, key) for key in ("resize", "crop", "mean", "resize_filter", "mean_file")}
    return {"labels": args.labels, "limit": args.limit, "skip_bad": args.skip_bad,
            "preprocessing": {key: value for key, value in prep.items() if value is not None}}


def experiment_options(args) -> dict:
    """Every option of a figure command but the model, weights and data, as `run_experiment`
    keywords; shared by the figure commands and `reproduce`."""
    return {**image_options(args), "layers": args.layers, "repeats": args.repeats, "semantics": args.semantics,
            "conventions": args.conventions, "out": args.out, "batch_size": args.batch_size,
            "memory_gb": args.memory_gb, "cache_dir": args.cache_dir, "precision": args.precision,
            "devices": args.devices, "progress": not args.no_progress}


def figure_command(number: int, module_name: str):
    """`main(argv)` of the command for Figure `number`, run at once under python -m."""

    def main(argv=None) -> int:
        return figure_main(number, argv)

    return entry_point(module_name, main)


class _InputOptions(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def missing_before_tensorflow(number: int, argv=None) -> list[str]:
    """What a run lacks, found before the full parser loads TensorFlow, so that a user who
    lacks a file hears so at once: when the command line names only inputs (--model,
    --weights, --data, --labels, --mean, --mean-file), or nothing. Any other option could be
    a typo that only the full parser can tell, so such a command line is left to it (which
    checks every option first; the run then reports what is missing).

    Args:
        number: the figure whose model is the default.
        argv: the command line (default sys.argv[1:]).

    Returns:
        One message per missing input (`experiment.experiment_missing`); empty when all is
        in place, or when the command line holds other options, asks for help or does not parse.
    """
    from replication.experiment import experiment_missing

    argv = list(sys.argv[1:] if argv is None else argv)
    inputs = _InputOptions(add_help=False, allow_abbrev=False)
    for option in ("--model", "--weights", "--data", "--labels", "--mean", "--mean-file"):
        inputs.add_argument(option)
    if {"-h", "--help"} & set(argv):
        return []
    try:
        known, others = inputs.parse_known_args(argv)
    except ValueError:
        return []
    if others:
        return []
    model = known.model or EXPERIMENTS[number].model
    preprocessing = {"mean": known.mean, "mean_file": known.mean_file and Path(known.mean_file)}
    return experiment_missing(model, known.weights, known.data, known.labels,
                              {key: value for key, value in preprocessing.items() if value})


def figure_main(number: int, argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    missing = missing_before_tensorflow(number, argv)
    if missing:
        return print_missing(EXPERIMENTS[number].label, missing)
    args = parse_figure_args(number, argv)
    from replication.experiment import default_results, run_experiment
    from replication.inputs import MissingInputs
    from replication.run import slurm

    results = args.results or default_results(args.out, args.model, EXPERIMENTS[number].perturbation, args.semantics)
    if args.slurm or args.dry_run:
        if args.shard:
            raise ReplicationError(None, "--slurm chooses the shards itself: give --shards N, not --shard")
        print_submission(slurm.submit_sweep(f"figure{number}", argv, results, args.shards, args.sbatch, args.dry_run))
        return 0
    try:
        table = shard_path(results, Shard.parse(args.shard)) if args.shard else results
        result = slurm.run_task(run_experiment, table, number, args.model, args.weights, args.data,
                                **experiment_options(args), levels=args.levels, shard=args.shard, results=results)
    except MissingInputs as missing:
        return print_missing(missing.what, missing.missing)
    except slurm.TaskStopped as stopped:
        print(stopped, file=sys.stderr)
        return stopped.status
    print_result(result)
    return 0


def print_submission(done) -> None:
    """What --slurm prints: the job ids (or the sbatch lines of a dry run) and where the logs go."""
    print(f"job scripts: {done.scripts[0]}\n             {done.scripts[1]}")
    if done.dry_run:
        print("not submitted (--dry-run); to submit:\n" + "\n".join(f"  {line}" for line in done.sbatch_lines))
        return
    if done.array_job:
        print(f"submitted job array {done.array_job} (shards {','.join(map(str, done.missing))} of {done.shards})")
    else:
        print(f"every shard of {done.shards} is complete: no job array")
    print(f"submitted job {done.merge_job}: merges into {done.results} and draws, after the array succeeds")
    print(f"logs in {done.logs}; progress: python -m replication.status {done.results}")


def print_result(result) -> None:
    """What a figure command prints when its experiment is done."""
    if result.shard is not None:
        shard, merged = result.shard, result.results
        pattern = merged.name.replace(f"shard-{shard.index}-", "shard-*-")
        target = merged.with_name(pattern.split(".shard-")[0] + merged.suffix)
        print(f"shard {shard} done in {result.seconds:.0f} s. Once every shard is done:\n"
              f"  python -m replication.merge {target} {merged.with_name(pattern)}\n"
              f"then run this command with --results {target} and without --shard to draw the figure.")
        return
    print(result.report_text)
    for path in result.outputs:
        print(f"wrote {path}")
    if result.note:
        print(f"note: {result.note}")
    print(f"{result.experiment.label} took {result.seconds:.0f} s")
