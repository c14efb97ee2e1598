"""A sharded sweep on a Slurm cluster: readable job scripts, submitted with sbatch.

`submit_sweep` writes two job scripts beside the results table (in its folder's
`slurm/`) and submits them:

- `<stem>.<command>-shards.sbatch`: a job array, one task per shard, each running the
  same command with `--shard $SLURM_ARRAY_TASK_ID/N` into its own shard table;
- `<stem>.<command>-merge.sbatch`: merges the shard tables (`python -m replication.merge`)
  and runs the command once more on the merged table, which only draws; submitted with
  `--dependency=afterok:<array>`, so it runs only when every task has succeeded.

Tasks are requeueable and append to their logs (`--requeue --open-mode=append`), and are
warned before their time limit (`--signal=B:USR1@…`). The script `exec`s the command, so
the warning reaches Python: the task stops after the trial it is running (or within the
grace the script names), requeues itself with `scontrol requeue`, and on restart resumes
from its shard table. SIGTERM (a preemption, a requeue, or scancel) stops it at once;
Slurm itself requeues a requeueable job it preempts or requeues, and leaves a cancelled
one cancelled. Finished trials are never lost: each row is durable when appended.

The results table and its shard tables stay the only record of progress: submitting
the same command again submits only the shards whose tables miss trials.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.run.shards import Shard, read_share, shard_path
from replication.run.table import read_rows, row_key

# Seconds before the time limit at which Slurm warns a task (USR1), and the part of them
# a task may spend finishing its trial before it stops regardless and requeues.
WARNING_SECONDS = 300
GRACE_SECONDS = 240
# What the job script sets for the task: on USR1, requeue within this many seconds.
REQUEUE_ENV = "REPLICATION_REQUEUE_WITHIN"

# The command's own options that do not pass on to the tasks (the tasks get their own
# --results and --shard): option -> whether it takes a value.
SUBMIT_OPTIONS = {"--slurm": False, "--dry-run": False, "--shards": True, "--sbatch": True, "--results": True,
                  "--shard": True, "--no-progress": False}


@dataclass
class Submission:
    """What `submit_sweep` wrote and submitted."""

    command: str
    results: Path  # the merged results table
    shards: int
    missing: list[int]  # shards with missing trials: the tasks submitted
    scripts: tuple[Path, Path]  # the shards' job array script, the merge-and-draw script
    sbatch_lines: list[str]  # the sbatch command lines (run, or to run for a dry run)
    logs: Path  # the folder of the job logs
    array_job: str | None = None  # job ids; None for a dry run (or no array when no shard misses trials)
    merge_job: str | None = None
    dry_run: bool = False


def task_argv(argv: list[str]) -> list[str]:
    """`argv` without the options that only the submitting command takes (`SUBMIT_OPTIONS`)."""
    return task_argv_without(argv, SUBMIT_OPTIONS)


def missing_shards(results: Path, count: int) -> list[int]:
    """The shards of `results` (cut in `count`) whose tables lack some of their trials: not
    started (no manifest), or with fewer rows than their share."""
    missing = []
    for index in range(count):
        table = shard_path(results, Shard(index, count))
        share = read_share(table) if table.exists() else None
        if share is None or not set(share) <= {row_key(r) for r in read_rows(table)}:
            missing.append(index)
    return missing


def array_ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8' (sbatch --array)."""
    parts, start = [], None
    for i, index in enumerate(indices):
        if start is None:
            start = index
        if i + 1 == len(indices) or indices[i + 1] != index + 1:
            parts.append(f"{start}" if start == index else f"{start}-{index}")
            start = None
    return ",".join(parts)


def plan_path(results: Path) -> Path:
    """Where the submissions of a sweep are recorded (job ids, for `status`)."""
    return results.with_name(results.stem + ".slurm.json")


def read_plan(results: Path) -> list[dict]:
    try:
        return json.loads(plan_path(results).read_text())["submissions"]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError) as err:
        raise ReplicationError(plan_path(results), f"not a record of Slurm submissions ({err})") from None


def _python_line(command: str, argv: list[str]) -> str:
    return shlex.join([sys.executable, "-m", f"replication.{command}", *argv])


def job_scripts(command: str, argv: list[str], results: Path, count: int, sbatch_options: list[str],
                folder: Path, workdir: Path) -> tuple[str, str]:
    """The text of the shards' job array script and of the merge-and-draw script."""
    logs = folder / "logs"
    stem = f"{results.stem}.{command}"
    user = "".join(f"#SBATCH {option}\n" for option in sbatch_options)
    task = _python_line(command, [*argv, "--results", str(results), "--no-progress"])
    shards = f"""#!/bin/bash
# Shard $SLURM_ARRAY_TASK_ID of {count} of `python -m replication.{command}`, into its own table
# {results.stem}.shard-<i>-of-{count}{results.suffix} beside {results.name}.
# Submitted by --slurm as `sbatch --array=<the shards still missing trials> THIS_FILE`.
#SBATCH --job-name={command}-shards
#SBATCH --chdir={workdir}
#SBATCH --output={logs}/{stem}-shard-%a.log
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@{WARNING_SECONDS}
{user}
# Warned by USR1 {WARNING_SECONDS} s before the time limit, the task stops after its current trial
# (or at the latest {GRACE_SECONDS} s later), requeues itself with scontrol requeue, and resumes from
# its table when it restarts. exec: the warning goes to the batch shell, which must be Python.
export {REQUEUE_ENV}={GRACE_SECONDS}
echo "task $SLURM_ARRAY_TASK_ID (job $SLURM_JOB_ID, restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname), $(date -u +%FT%TZ); CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-unset}}"
exec {task} --shard "$SLURM_ARRAY_TASK_ID/{count}"
"""
    prefix = shlex.quote(str(results.with_name(results.stem)))
    merge = f"""#!/bin/bash
# Once every shard task has succeeded (sbatch --dependency=afterok:<array job>), merge the
# {count} shard tables into {results.name} and draw: every trial is done, so the command only draws.
#SBATCH --job-name={command}-merge
#SBATCH --chdir={workdir}
#SBATCH --output={logs}/{stem}-merge.log
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --kill-on-invalid-dep=yes
{user}
set -e
{shlex.join([sys.executable, "-m", "replication.merge", str(results)])} {prefix}.shard-*-of-{count}{results.suffix}
exec {task}
"""
    return shards, merge


def _sbatch(args: list[str]) -> str:
    """Run sbatch --parsable; the job id."""
    done = subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ReplicationError(Path(args[-1]), f"sbatch refused the job: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout.strip().split(";")[0]


def job_states(job_ids) -> dict[str, str] | None:
    """{job id (array tasks as 12_3): state} of the jobs squeue still lists, or None
    where there is no squeue or it does not answer. Jobs that have ended are no longer listed."""
    ids = [str(i) for i in job_ids if i]
    if shutil.which("squeue") is None:
        return None
    if not ids:
        return {}
    done = subprocess.run(["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T %r"], capture_output=True, text=True)
    if done.returncode != 0:  # every id unknown to the controller: all ended; otherwise no answer
        return {} if "invalid job id" in done.stderr.lower() else None
    states = {}
    for line in done.stdout.splitlines():
        job, state, reason = (line.split(None, 2) + ["", ""])[:3]
        states[job] = state if reason in ("", "None") else f"{state} ({reason})"
    return states


def submit_sweep(command: str, argv: list[str], results, shards: int, sbatch_options=(), dry_run=False,
                 workdir=None) -> Submission:
    """Write the job scripts of a sharded sweep and submit those shards that miss trials,
    plus the merge-and-draw job that depends on them.

    Args:
        command: the figure command, e.g. "figure1" (run as python -m replication.<command>).
        argv: its options, as given (those of `SUBMIT_OPTIONS` are left out for the tasks).
        results: the merged results table; the shard tables go beside it.
        shards: how many shards (array tasks) the sweep is cut into.
        sbatch_options: more sbatch options for both jobs, e.g. ["--gres=gpu:1", "--time=8:00:00"].
        dry_run: write the scripts and return the sbatch lines without submitting.
        workdir: the jobs' working folder (default: the current one).

    Returns:
        A `Submission`. Refuses (ReplicationError) while jobs of an earlier submission of
        the same table are queued or running, and when sbatch is missing or refuses.
    """
    results = Path(results).absolute()
    workdir = Path(workdir or os.getcwd()).absolute()
    folder = results.parent / "slurm"
    stem = f"{results.stem}.{command}"
    scripts = (folder / f"{stem}-shards.sbatch", folder / f"{stem}-merge.sbatch")
    earlier = read_plan(results)
    if not dry_run:
        if shutil.which("sbatch") is None:
            raise ReplicationError(None, "sbatch not found: --slurm submits to a Slurm cluster; --dry-run only "
                                   "writes the job scripts")
        active = _active_jobs(earlier)
        if active:
            raise ReplicationError(results, f"jobs of an earlier submission are still queued or running "
                                   f"({', '.join(active)}); wait for them (python -m replication.status "
                                   f"{results}) or scancel them, then submit again")
    missing = missing_shards(results, shards)
    texts = job_scripts(command, task_argv(argv), results, shards, list(sbatch_options), folder, workdir)
    (folder / "logs").mkdir(parents=True, exist_ok=True)
    for path, text in zip(scripts, texts):
        with atomic_output(path) as tmp:
            tmp.write_text(text)
    array = [f"--array={array_ranges(missing)}", str(scripts[0])] if missing else None
    submission = Submission(command, results, shards, missing, scripts, [], folder / "logs", dry_run=dry_run)
    if dry_run:
        if array:
            submission.sbatch_lines.append(shlex.join(["sbatch", *array]))
        dependency = ["--dependency=afterok:<array job id>"] if array else []
        submission.sbatch_lines.append(shlex.join(["sbatch", *dependency, str(scripts[1])]))
        return submission
    if array:
        submission.array_job = _sbatch(array)
        submission.sbatch_lines.append(shlex.join(["sbatch", *array]))
        merge = [f"--dependency=afterok:{submission.array_job}", str(scripts[1])]
    else:
        merge = [str(scripts[1])]
    submission.merge_job = _sbatch(merge)
    submission.sbatch_lines.append(shlex.join(["sbatch", *merge]))
    record = {"command": command, "shards": shards, "missing": missing, "array_job": submission.array_job,
              "merge_job": submission.merge_job, "scripts": [str(p) for p in scripts],
              "submitted_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with atomic_output(plan_path(results)) as tmp:
        tmp.write_text(json.dumps({"submissions": [*earlier, record]}, indent=2) + "\n")
    return submission


def _active_jobs(submissions: list[dict]) -> list[str]:
    ids = [job for s in submissions for job in (s.get("array_job"), s.get("merge_job")) if job]
    states = job_states(ids) or {}
    return [f"{job} {state}" for job, state in states.items()]


class TaskStopped(Exception):
    """A Slurm task stopped on a signal; `status` is its exit status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def run_task(function, table, *args, **kwargs):
    """Call `function(*args, **kwargs)`; inside a job script of `submit_sweep` (which sets
    REQUEUE_ENV), stop on USR1 after the trial in progress and requeue, or stop at once on
    SIGTERM. Outside such a job it is a plain call.

    Args:
        function: what the task runs (e.g. `experiment.run_experiment` of one shard).
        table: the results table it appends to; a new row there marks the end of a trial.

    Returns:
        What `function` returns. Raises `TaskStopped` when a signal stopped it (after the
        requeue, when there was one).
    """
    grace = os.environ.get(REQUEUE_ENV)
    if not grace or threading.current_thread() is not threading.main_thread():
        return function(*args, **kwargs)
    table = Path(table)
    state = {"cause": None, "watcher": None, "done": threading.Event()}

    def stop_now(signum, frame):
        if state["done"].is_set():  # a late alarm after the function returned
            return
        raise _Stop(state["cause"] if signum == signal.SIGALRM else signal.Signals(signum).name)

    def after_trial(signum, frame):
        if state["cause"] or state["done"].is_set():
            return
        state["cause"] = signal.Signals(signum).name
        size = table.stat().st_size if table.exists() else 0
        state["watcher"] = threading.Thread(target=_watch, args=(table, size, float(grace), state["done"]),
                                            daemon=True)
        state["watcher"].start()

    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGTERM, signal.SIGALRM)}
    signal.signal(signal.SIGUSR1, after_trial)
    signal.signal(signal.SIGTERM, stop_now)
    signal.signal(signal.SIGALRM, stop_now)
    try:
        return function(*args, **kwargs)
    except _Stop as stopped:
        state["done"].set()
        for s in saved:  # the requeue below makes Slurm send SIGTERM: it must not interrupt it
            signal.signal(s, signal.SIG_IGN)
        return _stopped(str(stopped), table)
    finally:
        state["done"].set()
        if state["watcher"] is not None:  # its alarm, if any, must reach these handlers, not the default
            state["watcher"].join()
        for s, handler in saved.items():
            signal.signal(s, handler)


class _Stop(BaseException):  # not an Exception: no `except Exception` on the way may swallow it
    pass


def _watch(table: Path, size: int, grace: float, done: threading.Event) -> None:
    """Wait until `table` has grown (a trial ended and its row is written) or `grace`
    seconds passed, then stop the main thread (SIGALRM, handled there); return without
    a signal once `done` (the task ended by itself)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not done.is_set():
        if table.exists() and table.stat().st_size > size:
            break
        done.wait(0.1)
    if not done.is_set():
        signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)


def _stopped(cause: str, table: Path):
    rows = len(read_rows(table)) if table.exists() else 0
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_TASK_ID") and os.environ.get("SLURM_ARRAY_JOB_ID"):
        # One task of an array has the array's own id as SLURM_JOB_ID, and `scontrol requeue`
        # of that id requeues every task of the array: name the task.
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if cause != "SIGUSR1" or not job:
        raise TaskStopped(f"stopped by {cause}; {table} holds {rows} finished rows (Slurm requeues a requeued or "
                          "preempted task; a cancelled one finishes when the command is submitted again)", 143)
    done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if done.returncode != 0:
        raise TaskStopped(f"stopped before the time limit; {table} holds {rows} finished rows; scontrol requeue "
                          f"{job} failed ({done.stderr.strip()}): submit the command again to finish", 75)
    raise TaskStopped(f"stopped before the time limit and requeued job {job}; {table} holds {rows} finished rows", 0)


# What Figure 5 does not take from a reproduce command line (experiment.figure5_options):
# the options that belong to one model.
MODEL_OPTIONS = {"--model": True, "--weights": True, "--layers": True, "--resize": True, "--crop": True,
                 "--mean": True, "--resize-filter": True, "--mean-file": True}


@dataclass
class ReplicationSubmission:
    """What `submit_replication` wrote and submitted."""

    sweeps: list[Submission]  # one per results table (Figures 3 and 4 share one)
    script: Path  # the final job: python -m replication.reproduce, which then only draws and compares
    sbatch_line: str
    job: str | None = None  # None for a dry run
    figure5: str = ""  # whether Figure 5 is among the sweeps, and why not when it is not


def submit_replication(argv: list[str], model, semantics="paper", out="figures", shards=8, sbatch_options=(),
                       dry_run=False, workdir=None) -> ReplicationSubmission:
    """Submit every figure of `reproduce` as a sharded sweep (`submit_sweep`), then one job
    that runs `python -m replication.reproduce` with the same options once all their
    merge jobs have succeeded: every trial is then done, so it only draws Figures 1-5,
    writes Table 1 and compares the claims.

    Args:
        argv: the reproduce command's options as given (the figure options).
        model, semantics, out: as parsed from them (for the results tables' names).
        shards, sbatch_options, dry_run, workdir: as for `submit_sweep`.

    Returns:
        A `ReplicationSubmission`.
    """
    from replication.analysis.experiments import EXPERIMENTS
    from replication.experiment import default_results, figure5_options

    argv = task_argv(argv)
    sweeps, seen = [], set()
    for experiment in EXPERIMENTS.values():
        if experiment.model != EXPERIMENTS[1].model:
            continue
        results = Path(default_results(out, model, experiment.perturbation, semantics)).absolute()
        if results not in seen:  # Figure 4 is Figure 3's trials read again
            seen.add(results)
            sweeps.append(submit_sweep(experiment.name, argv, results, shards, sbatch_options, dry_run, workdir))
    figure5, line = figure5_options({"out": out})
    if figure5 is not None:
        vgg = task_argv_without(argv, MODEL_OPTIONS)
        results = Path(default_results(out, figure5["model"], EXPERIMENTS[5].perturbation, semantics)).absolute()
        sweeps.append(submit_sweep(EXPERIMENTS[5].name, vgg, results, shards, sbatch_options, dry_run, workdir))
    workdir = Path(workdir or os.getcwd()).absolute()
    folder = Path(out).absolute() / "slurm"
    script = folder / "reproduce.sbatch"
    user = "".join(f"#SBATCH {option}\n" for option in sbatch_options)
    text = f"""#!/bin/bash
# Once every figure's merge-and-draw job has succeeded (sbatch --dependency=afterok:<their ids>),
# run reproduce with the same options: every trial is done, so it draws the figures, writes
# Table 1 and compares the paper's claims.
#SBATCH --job-name=reproduce
#SBATCH --chdir={workdir}
#SBATCH --output={folder}/logs/reproduce.log
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --kill-on-invalid-dep=yes
{user}
exec {_python_line("reproduce", [*argv, "--no-progress"])}
"""
    with atomic_output(script) as tmp:
        tmp.write_text(text)
    merges = [s.merge_job or "<merge job id>" for s in sweeps]
    dependency = f"--dependency=afterok:{':'.join(merges)}"
    done = ReplicationSubmission(sweeps, script, shlex.join(["sbatch", dependency, str(script)]), figure5=line)
    if not dry_run:
        done.job = _sbatch([dependency, str(script)])
    return done


def task_argv_without(argv: list[str], options: dict[str, bool]) -> list[str]:
    """`argv` without `options` (option -> whether it takes a value)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in options:
            skip = options[name] and "=" not in arg
            continue
        kept.append(arg)
    return kept
