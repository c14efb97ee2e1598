"""A reduced Figure 1-4 on the real SqueezeNet v1.1 and real validation images, run once
per test session and shared by the end-to-end and notebook tests.

Figure 1 runs as a separate process that is killed (SIGKILL) once some rows exist and
then resumed, as a user's interrupted run would be; the other figures run in-process.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from replication.caffe.convert import convert_caffemodel
from replication.run.table import read_rows

IMAGES = 256  # a few hundred: enough for chance and (1 - p) checks, SqueezeNet ~200 img/s here
LAYERS = ("conv1", "fire5/squeeze1x1", "conv10")  # first, a middle one, the output layer
GAUSSIAN_LAYERS = LAYERS[1:]  # conv1's trials recompute the whole network: spared where no check needs them
KNOCKOUT_LEVELS = "0,0.5,1"
GAUSSIAN_LEVELS = "0,1,2"
REPEATS = 2
TRIALS = 1 + len(LAYERS) * 2 * REPEATS  # the baseline, then 2 perturbed levels per layer (figures 1, 2)


@dataclass
class Runs:
    out: Path
    args: list[str]  # what every figure command of this session was given
    tables: dict[int, Path]  # figure number -> its results table
    killed_rows: bytes  # figure 1's table as the killed process left it (complete lines)
    killed_returncode: int
    logs: dict[str, str]  # stdout of the in-process commands


_runs: Runs | None = None


def reduced_sweeps(tmp_path_factory, caffe_dir: Path, val_subset: Path) -> Runs:
    global _runs
    if _runs is None:
        _runs = _run(tmp_path_factory.mktemp("sweeps"), caffe_dir, val_subset)
    return _runs


def figure_args(caffe_dir: Path, val_subset: Path, weights: Path, out: Path) -> list[str]:
    """The options every figure command of the session gets (not --layers or --levels)."""
    return [
        "--model", str(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt"), "--weights", str(weights),
        "--data", str(val_subset), "--resize", "227", "--crop", "227", "--mean", "pixel",
        "--limit", str(IMAGES), "--repeats", str(REPEATS), "--out", str(out), "--no-progress",
    ]  # fmt: skip


def _run(tmp: Path, caffe_dir: Path, val_subset: Path) -> Runs:
    from replication import figure1, figure2, figure3, figure4

    weights = tmp / "squeezenet_v1.1.h5"
    squeezenet = caffe_dir / "squeezenet_v1.1"
    convert_caffemodel(squeezenet / "squeezenet_v1.1.caffemodel", weights, prototxt=squeezenet / "deploy.prototxt", progress=False)
    out = tmp / "figures"
    args = figure_args(caffe_dir, val_subset, weights, out)
    kinds = {1: "synapse", 2: "node", 3: "gaussian", 4: "gaussian"}
    tables = {number: out / f"results-squeezenet-{kind}.csv" for number, kind in kinds.items()}
    knockout = [*args, "--layers", ",".join(LAYERS), "--levels", KNOCKOUT_LEVELS]
    gaussian = [*args, "--layers", ",".join(GAUSSIAN_LAYERS), "--levels", GAUSSIAN_LEVELS]

    killed_rows, returncode = _kill_midway([sys.executable, "-m", "replication.figure1", *knockout], tables[1], tmp)
    logs = {}
    for name, main, argv in (
        ("figure1", figure1.main, knockout),
        ("figure2", figure2.main, knockout),
        ("figure3", figure3.main, gaussian),
        ("figure4", figure4.main, gaussian),
    ):
        logs[name] = _capture(main, argv)
    return Runs(out, args, tables, killed_rows, returncode, logs)


def _kill_midway(command, table: Path, tmp: Path, rows_before_kill=2, timeout=300) -> tuple[bytes, int]:
    """Start `command`, SIGKILL it as soon as `table` holds some finished rows."""
    log = open(tmp / "killed.log", "wb")  # noqa: SIM115 -- handed to the child process
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if table.exists() and len(read_rows(table)) >= rows_before_kill:
                os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if process.poll() is None and time.monotonic() >= deadline:
            process.kill()
        process.wait()
        log.close()
    if process.returncode != -signal.SIGKILL:
        log_tail = (tmp / "killed.log").read_text()[-3000:]
        raise AssertionError(f"figure1 was to be killed midway but ended with {process.returncode}:\n{log_tail}")
    data = table.read_bytes()
    return data[: data.rfind(b"\n") + 1], process.returncode


def _capture(main, argv) -> str:
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(argv)
    if status != 0:
        raise AssertionError(f"{main.__module__} {' '.join(argv)} returned {status}:\n{stdout.getvalue()}")
    return stdout.getvalue()
