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
from test_reliability import tmpfs

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


# --- usage errors that hide the real problem ------------------------------------------------


def keras1_file(path: Path) -> Path:
    """A small Keras 1 weight file (root layer_names, one group per layer)."""
    import h5py
    import numpy as np

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv_1"]
        group = f.create_group("conv_1")
        group.attrs["weight_names"] = [b"conv_1_W", b"conv_1_b"]
        group.create_dataset("conv_1_W", data=np.zeros((96, 3, 11, 11), "f4"))
        group.create_dataset("conv_1_b", data=np.zeros(96, "f4"))
    return path


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_convert_names_what_is_wrong_with_the_file_before_a_missing_option(tmp_path, damage):
    path = keras1_file(tmp_path / "damaged_keras1.h5")
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[:512] = bytes(512)  # the superblock gone: not even recognisable as HDF5
    path.write_bytes(bytes(data))
    done = command("replication.convert", str(path))
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"error: {path}: ") and "Traceback" not in done.stderr
    assert "-o/--output" not in done.stderr


def test_convert_of_a_good_caffemodel_without_output_asks_for_it(tmp_path):
    from replication.models.synthetic import write_synthetic_alexnet

    caffemodel = tmp_path / "synthetic.caffemodel"
    write_synthetic_alexnet(caffemodel)
    done = command("replication.convert", str(caffemodel))
    assert done.returncode == 2 and "-o/--output" in done.stderr


# --- errors that name a temporary -----------------------------------------------------------


def test_synthetic_on_a_full_disk_names_the_output_not_a_temporary(tmp_path):
    with tmpfs(tmp_path / "full", "size=8m") as full:
        out = full / "out.h5"
        done = command("replication.synthetic", "-o", str(out))
        assert done.returncode == 2
        assert done.stderr.strip() == f"error: {out}: cannot write: No space left on device"
        assert not list(full.iterdir())  # neither the output nor a temporary folder left
