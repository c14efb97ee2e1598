"""Reliability, third round, each class through the real command in a subprocess: SIGTERM
is handled like Ctrl-C (exit 143, nothing lost on resume); two runs on one recovery table;
state the program wrote itself that is damaged is named, set aside and recovered from;
usage errors name the input's real problem; errors name the path the user gave."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replication.run.table import read_rows

ROOT = Path(__file__).resolve().parents[1]
VOLATILE = ("seconds", "finished_at")  # what differs between two runs of the same trials


def command(*args, cwd=None, timeout=600, env=None):
    """Run `python -m replication.<args>` from the repository root; returns the completed process."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})


def stable(rows):
    return [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]


@pytest.fixture(scope="module")
def squeezenet(caffe_dir, tmp_path_factory):
    from replication.caffe.convert import convert_caffemodel

    folder = caffe_dir / "squeezenet_v1.1"
    weights = tmp_path_factory.mktemp("squeezenet") / "squeezenet_v1.1.h5"
    convert_caffemodel(folder / "squeezenet_v1.1.caffemodel", weights, prototxt=folder / "deploy.prototxt",
                       progress=False)
    return folder / "deploy.prototxt", weights


def sweep_args(squeezenet, val_subset, out):
    prototxt, weights = squeezenet
    return ["--model", str(prototxt), "--weights", str(weights), "--data", str(val_subset), "--resize", "227",
            "--crop", "227", "--mean", "pixel", "--limit", "64", "--repeats", "3", "--layers", "conv10",
            "--levels", "0,0.25,0.5,0.75,1", "--out", str(out), "--no-progress"]  # fmt: skip


# --- SIGTERM -----------------------------------------------------------------------------------


def test_sigterm_ends_a_sweep_with_143_and_resuming_loses_nothing(squeezenet, val_subset, tmp_path):
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    done = command("replication.figure1", *sweep_args(squeezenet, val_subset, whole))
    assert done.returncode == 0, done.stderr
    table = stopped / "results-squeezenet-synapse.csv"
    process = subprocess.Popen([sys.executable, "-m", "replication.figure1", *sweep_args(squeezenet, val_subset, stopped)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if table.exists() and len(read_rows(table)) >= 2:
            process.send_signal(signal.SIGTERM)
            break
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    kept = read_rows(table)
    expected = read_rows(whole / "results-squeezenet-synapse.csv")
    assert 2 <= len(kept) < len(expected)  # stopped midway, every finished row kept
    assert not list(stopped.glob(".*.part"))  # no temporary left behind

    resumed = command("replication.figure1", *sweep_args(squeezenet, val_subset, stopped))
    assert resumed.returncode == 0, resumed.stderr
    rows = read_rows(table)
    assert stable(rows[: len(kept)]) == stable(kept)
    assert sorted(map(str, stable(rows))) == sorted(map(str, stable(expected)))
