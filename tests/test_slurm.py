"""The --slurm path against a real one-node Slurm (.ci/slurm-up), on the real SqueezeNet
v1.1 and 32 real validation images: a sharded sweep equals the single-process one, tasks
requeued or warned of their time limit resume with nothing lost or repeated, a cancelled
task blocks the merge and is all that a second submission runs, a GPU request runs on the
node's dummy GPUs, and --dry-run writes scripts that sbatch accepts.

Where Slurm cannot be started (not root, no apt-get), these tests skip with the reason;
under CI=true that is a failure. The fixture stops only the daemons it started.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from replication import figure1, status
from replication.commands.common import run_cli
from replication.run.shards import Shard, shard_path
from replication.run.slurm import job_states, read_plan
from replication.run.table import read_rows, row_key

ROOT = Path(__file__).resolve().parents[1]
DAEMONS = ("munged", "slurmctld", "slurmd")
IMAGES = 32
LAYERS = "fire5/squeeze1x1,conv10"  # a middle layer and the output layer: cheap trials
LEVELS = "0,0.25,0.5,0.75,1"
REPEATS = 3
TRIALS = 1 + 2 * 4 * REPEATS
LONG_REPEATS = 10
TIMINGS = ("seconds", "finished_at")


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Slurm cannot be started: {reason}; under CI=true this is an error, not a skip")
    pytest.skip(f"Slurm cannot be started: {reason}")


def _running() -> set[str]:
    return {d for d in DAEMONS if subprocess.run(["pgrep", "-x", d], capture_output=True).returncode == 0}


@pytest.fixture(scope="session")
def slurm():
    """A one-node Slurm, started with .ci/slurm-up when not running; stopped at the end
    only if this fixture started it."""
    before = _running()
    if os.geteuid() != 0 and not shutil.which("sbatch"):
        _unavailable("not root, so Slurm can be neither installed nor started")
    if not shutil.which("sbatch") and not shutil.which("apt-get"):
        _unavailable("Slurm is not installed and there is no apt-get to install it")
    up = subprocess.run([str(ROOT / ".ci" / "slurm-up")], capture_output=True, text=True, timeout=600)
    if up.returncode != 0:
        _unavailable(up.stderr.strip() or f".ci/slurm-up exited with {up.returncode}")
    yield
    for daemon in reversed(DAEMONS):
        if daemon not in before:
            found = subprocess.run(["pgrep", "-x", daemon], capture_output=True, text=True).stdout.split()
            for pid in found:
                os.kill(int(pid), 15)


@pytest.fixture(scope="module")
def sweep(slurm, tmp_path_factory, caffe_dir, val_subset):
    """The weights converted once, the options of every run, and the single-process table."""
    from replication.caffe.convert import convert_caffemodel

    tmp = tmp_path_factory.mktemp("slurm")
    squeezenet = caffe_dir / "squeezenet_v1.1"
    weights = tmp / "squeezenet_v1.1.h5"
    convert_caffemodel(squeezenet / "squeezenet_v1.1.caffemodel", weights, prototxt=squeezenet / "deploy.prototxt",
                       progress=False)
    args = ["--model", str(squeezenet / "deploy.prototxt"), "--weights", str(weights), "--data", str(val_subset),
            "--resize", "227", "--crop", "227", "--mean", "pixel", "--limit", str(IMAGES), "--repeats", str(REPEATS),
            "--layers", LAYERS, "--levels", LEVELS, "--no-progress"]
    single = tmp / "single"
    assert figure1.main([*args, "--out", str(single)]) == 0
    return tmp, args, single / "results-squeezenet-synapse.csv"


@pytest.fixture(autouse=True)
def tasks_import_this_checkout(monkeypatch):
    # sbatch passes the environment on: the jobs run this checkout's replication.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def _submit(args, out: Path, *more, capsys) -> str:
    assert figure1.main([*args, "--out", str(out), "--slurm", "--shards", "2", *more]) == 0
    return capsys.readouterr().out


def _wait(results: Path, timeout=400) -> None:
    """Until no job of the sweep's submissions is queued or running."""
    ids = [job for s in read_plan(results) for job in (s["array_job"], s["merge_job"]) if job]
    deadline = time.monotonic() + timeout
    while job_states(ids):
        assert time.monotonic() < deadline, f"jobs {ids} still queued after {timeout} s: {job_states(ids)}"
        time.sleep(0.5)


def _wait_rows(table: Path, rows: int, timeout=200) -> None:
    deadline = time.monotonic() + timeout
    while not (table.exists() and len(read_rows(table)) >= rows):
        assert time.monotonic() < deadline, f"{table} has not {rows} rows after {timeout} s"
        time.sleep(0.1)


def _without_timings(path: Path) -> dict:
    return {row_key(r): {k: v for k, v in r.items() if k not in TIMINGS} for r in read_rows(path)}


def _logs(out: Path) -> str:
    return "".join(p.read_text() for p in sorted((out / "slurm" / "logs").glob("*.log")))


def test_a_sharded_sweep_on_slurm_equals_the_single_process_one_and_draws(sweep, capsys):
    tmp, args, single = sweep
    out = tmp / "sharded"
    printed = _submit(args, out, capsys=capsys)
    assert "submitted job array" in printed and "shards 0,1 of 2" in printed
    results = out / "results-squeezenet-synapse.csv"
    _wait(results)
    assert results.exists(), _logs(out)
    merged, expected = _without_timings(results), _without_timings(single)
    assert len(merged) == TRIALS and merged == expected
    assert all(read_rows(shard_path(results, Shard(i, 2))) for i in (0, 1))  # both tasks had work
    assert (out / "figure1-squeezenet.png").read_bytes().startswith(b"\x89PNG")
    assert "Figure 1 took" in (out / "slurm" / "logs" / "results-squeezenet-synapse.figure1-merge.log").read_text()


def test_requeued_and_time_limited_tasks_resume_with_nothing_lost_or_repeated(sweep, capsys):
    tmp, args, single = sweep
    out = tmp / "requeued"
    # More repeats than the other tests, so that both tasks are still running when signalled;
    # the first REPEATS repeats of each trial are the single-process table's trials.
    longer = [*args[: args.index("--repeats") + 1], str(LONG_REPEATS), *args[args.index("--repeats") + 2:]]
    _submit(longer, out, capsys=capsys)
    results = out / "results-squeezenet-synapse.csv"
    array = read_plan(results)[-1]["array_job"]
    tables = [shard_path(results, Shard(i, 2)) for i in (0, 1)]
    _wait_rows(tables[0], 2)
    subprocess.run(["scontrol", "requeue", f"{array}_0"], check=True)
    _wait_rows(tables[1], 2)
    before = len(read_rows(tables[1]))
    subprocess.run(["scancel", "--signal=USR1", "--batch", f"{array}_1"], check=True)
    _wait(results)
    logs = {i: (out / "slurm" / "logs" / f"results-squeezenet-synapse.figure1-shard-{i}.log").read_text() for i in (0, 1)}
    for i in (0, 1):
        assert "restart 1)" in logs[i], logs[i]  # each task ran a second time
        keys = [row_key(r) for r in read_rows(tables[i])]
        assert len(keys) == len(set(keys))  # nothing repeated
        started = [line for line in logs[i].splitlines() if "trials already done" in line]
        assert len(started) == 2 and not started[1].split(":")[-1].lstrip().startswith("0 of"), started
    stopped = re.search(r"stopped before the time limit and requeued job \S+; \S+ holds (\d+) finished rows", logs[1])
    assert stopped and int(stopped.group(1)) > before, logs[1]  # the trial running when warned was finished
    merged, expected = _without_timings(results), _without_timings(single)
    assert len(merged) == 1 + 2 * 4 * LONG_REPEATS  # nothing lost (merge also checks the grid)
    assert {key: merged[key] for key in expected} == expected


def test_a_cancelled_task_blocks_the_merge_and_a_second_submission_runs_only_it(sweep, capsys):
    tmp, args, single = sweep
    out = tmp / "cancelled"
    _submit(args, out, capsys=capsys)
    results = out / "results-squeezenet-synapse.csv"
    first = read_plan(results)[-1]
    subprocess.run(["scancel", f"{first['array_job']}_1"], check=True)
    _wait(results)
    assert not results.exists()  # the merge-and-draw job never ran
    assert not (out / "slurm" / "logs" / "results-squeezenet-synapse.figure1-merge.log").exists()
    assert not (out / "figure1-squeezenet.png").exists()
    assert status.main([str(results)]) == 0
    report = capsys.readouterr().out
    assert "short: 1;" in report and f"array job {first['array_job']}" in report
    shard0 = shard_path(results, Shard(0, 2)).read_bytes()

    printed = _submit(args, out, capsys=capsys)
    assert "(shards 1 of 2)" in printed
    _wait(results)
    assert shard_path(results, Shard(0, 2)).read_bytes() == shard0  # shard 0 was not run again
    assert _without_timings(results) == _without_timings(single)
    assert (out / "figure1-squeezenet.png").exists()
    assert status.main([str(results)]) == 0
    assert "short: none;" in capsys.readouterr().out


def test_a_gpu_request_runs_on_the_dummy_gpu_node(sweep, capsys):
    tmp, args, _ = sweep
    out = tmp / "gpu"
    small = [*args[: args.index("--layers")], "--layers", "conv10", "--levels", "0,1"]
    _submit(small, out, "--sbatch=--gres=gpu:1", "--sbatch=--time=10:00", capsys=capsys)
    results = out / "results-squeezenet-synapse.csv"
    script = (out / "slurm" / "results-squeezenet-synapse.figure1-shards.sbatch").read_text()
    assert "#SBATCH --gres=gpu:1\n" in script and "#SBATCH --time=10:00\n" in script
    _wait(results)
    assert len(read_rows(results)) == 1 + 1 * REPEATS
    logs = _logs(out)
    devices = [line.rsplit("=", 1)[1] for line in logs.splitlines() if "CUDA_VISIBLE_DEVICES=" in line]
    assert len(devices) == 2 and all(d in ("0", "1") for d in devices), logs


def test_dry_run_writes_scripts_that_sbatch_accepts(sweep, capsys):
    tmp, args, _ = sweep
    out = tmp / "dry"
    assert figure1.main([*args, "--out", str(out), "--slurm", "--shards", "3", "--dry-run",
                         "--sbatch=--time=1:00:00"]) == 0
    printed = capsys.readouterr().out
    results = out / "results-squeezenet-synapse.csv"
    scripts = sorted((out / "slurm").glob("*.sbatch"))
    assert len(scripts) == 2 and "sbatch --array=0-2 " in printed and "afterok:<array job id>" in printed
    assert read_plan(results) == [] and not results.exists()  # nothing submitted, nothing run
    for script in scripts:
        extra = ["--array=0-2"] if script.name.endswith("shards.sbatch") else []
        done = subprocess.run(["sbatch", "--test-only", *extra, str(script)], capture_output=True, text=True)
        assert done.returncode == 0 and "to start at" in done.stderr, done.stderr


# Without Slurm: what the submission, the status and the signal handling decide from the tables.


def _tables(folder: Path, finished: dict[int, int]):
    """A 2-shard sweep's tables by hand: shard i with its first finished[i] trials done."""
    from replication.run.grid import Grid
    from replication.run.shards import write_manifest
    from replication.run.table import ResultsLog, RunInfo

    run = RunInfo("toy", "0" * 64, "images", 10, "0.1.0", "paper")
    grid = Grid(("a", "b"), "synapse", (0.0, 0.5, 1.0), 2)
    trials = grid.trials()
    results = folder / "results.csv"
    shares = {0: trials[:5], 1: trials[5:]}
    for index, count in finished.items():
        table = shard_path(results, Shard(index, 2))
        write_manifest(table, run, grid, Shard(index, 2), shares[index])
        with ResultsLog(table, run) as log:
            for trial in shares[index][:count]:
                log.append(trial, 1, 0.5, 0.75, 2.0)
    return results, shares


def test_status_and_resubmission_read_what_is_missing_from_the_tables(tmp_path, capsys):
    from replication.run.slurm import missing_shards
    from replication.run.status import sweep_status

    results, shares = _tables(tmp_path, {0: 5, 1: 1})
    assert missing_shards(results, 2) == [1]
    assert missing_shards(results, 3) == [0, 1, 2]  # another cut: none of its shards has started
    found = sweep_status(results)
    assert [(p.done, p.total) for p in found.shards] == [(5, 5), (1, len(shares[1]))]
    assert found.short == [1] and found.shards[1].seconds_left == 2.0 * (len(shares[1]) - 1)
    assert status.main([str(results)]) == 0
    printed = capsys.readouterr().out
    assert f"1/{len(shares[1])}" in printed and "short: 1;" in printed
    assert run_cli(status.main, [str(tmp_path / "none.csv")]) == 2
    assert "no such results table" in capsys.readouterr().err


def test_submit_options_stay_out_of_the_tasks_and_arrays_are_ranges():
    from replication.run.slurm import array_ranges, task_argv

    argv = ["--data", "d", "--slurm", "--shards", "4", "--sbatch=--gres=gpu:1", "--sbatch", "--time=1:00:00",
            "--dry-run", "--results=r.csv", "--limit", "32"]
    assert task_argv(argv) == ["--data", "d", "--limit", "32"]
    assert array_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8" and array_ranges([3]) == "3"


def test_a_warned_task_stops_after_the_trial_in_progress(tmp_path, monkeypatch):
    import signal

    from replication.run.grid import Grid
    from replication.run.slurm import REQUEUE_ENV, TaskStopped, run_task
    from replication.run.table import ResultsLog, RunInfo

    monkeypatch.setenv(REQUEUE_ENV, "30")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)  # not in a job: stops without requeueing
    table = tmp_path / "results.csv"
    run = RunInfo("toy", "0" * 64, "images", 10, "0.1.0", "paper")
    trials = Grid(("a",), "synapse", (0.0, 0.5, 1.0), 5).trials()
    warned_at = {}

    def sweep():
        with ResultsLog(table, run) as log:
            for number, trial in enumerate(trials):
                if number == 3:
                    warned_at["rows"] = len(log.done)
                    os.kill(os.getpid(), signal.SIGUSR1)  # in mid-trial
                time.sleep(0.3)
                log.append(trial, 1, 0.5, 0.75, 0.3)

    before = signal.getsignal(signal.SIGUSR1)
    with pytest.raises(TaskStopped, match="stopped by SIGUSR1") as stopped:
        run_task(sweep, table)
    assert stopped.value.status == 143
    assert len(read_rows(table)) == warned_at["rows"] + 1 < len(trials)  # the trial in progress was finished
    assert signal.getsignal(signal.SIGUSR1) is before
    monkeypatch.delenv(REQUEUE_ENV)
    assert run_task(len, table, "abc") == 3  # outside a generated job script: a plain call


def test_reproduce_dry_run_writes_each_figures_sweep_and_a_last_job(sweep, capsys):
    from replication.commands import reproduce

    tmp, args, _ = sweep
    out = tmp / "reproduce-dry"
    no_levels = [*args[: args.index("--levels")], *args[args.index("--levels") + 2:]]
    assert reproduce.main([*no_levels, "--out", str(out), "--slurm", "--shards", "2", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    scripts = {p.name for p in (out / "slurm").glob("*.sbatch")}
    # Figures 1-3 each as a sweep (Figure 4 reads Figure 3's table), then reproduce itself
    assert scripts == {f"results-squeezenet-{kind}.figure{n}-{part}.sbatch" for n, kind in
                       ((1, "synapse"), (2, "node"), (3, "gaussian")) for part in ("shards", "merge")} | {"reproduce.sbatch"}
    assert "--dependency=afterok:<merge job id>:<merge job id>:<merge job id>" in printed
    last = out / "slurm" / "reproduce.sbatch"
    assert "-m replication.reproduce" in last.read_text() and "--slurm" not in last.read_text()
    done = subprocess.run(["sbatch", "--test-only", str(last)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_warned_task_whose_trial_outlasts_the_grace_stops_anyway(tmp_path, monkeypatch):
    import signal

    from replication.run.slurm import REQUEUE_ENV, TaskStopped, run_task

    monkeypatch.setenv(REQUEUE_ENV, "0.5")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)

    def endless_trial():
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # a trial far longer than the grace, no row written
            time.sleep(0.05)

    started = time.monotonic()
    with pytest.raises(TaskStopped, match="stopped by SIGUSR1"):
        run_task(endless_trial, tmp_path / "results.csv")
    assert 0.4 < time.monotonic() - started < 10
