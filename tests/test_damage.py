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


# --- recovery: SIGTERM, a damaged checkpoint, two runs on one table ---------------------------


def recover_args(squeezenet, val_subset, out, steps=4):
    prototxt, weights = squeezenet
    return ["replication.recover", "--model", str(prototxt), "--weights", str(weights), "--data", str(val_subset),
            "--resize", "227", "--crop", "227", "--mean", "pixel", "--limit", "64", "--split", "0.5",
            "--layers", "fire9/squeeze1x1", "--perturbation", "node", "--levels", "0.5", "--repeats", "1",
            "--steps", str(steps), "--eval-every", "2", "--batch-size", "8", "--no-progress", "--out", str(out)]  # fmt: skip


def signal_after_rows(args, table: Path, rows: int, signum, timeout=300):
    """Run `python -m args`, send `signum` once `table` has `rows` finished rows; returns (status, stderr)."""
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if table.exists() and table.read_bytes().count(b"\n") >= rows + 1:
            process.send_signal(signum)
            break
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def flip_array_bytes(checkpoint: Path) -> None:
    """Flip bytes inside the largest array's data, leaving the zip directory and meta intact."""
    import zipfile

    with zipfile.ZipFile(checkpoint) as archive:
        largest = max(archive.infolist(), key=lambda info: info.compress_size)
    data = bytearray(checkpoint.read_bytes())
    at = largest.header_offset + 30 + len(largest.filename) + 200 + largest.compress_size // 2
    data[at : at + 4] = bytes(b ^ 0xFF for b in data[at : at + 4])
    checkpoint.write_bytes(bytes(data))


def recovery_content(table: Path):
    return sorted(map(str, stable(read_rows_any(table))))


def read_rows_any(table: Path):
    import csv

    with open(table, newline="") as f:
        return list(csv.DictReader(f))


def test_recover_stopped_by_sigterm_with_a_damaged_checkpoint_resumes_exactly(squeezenet, val_subset, tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    done = command(*recover_args(squeezenet, val_subset, straight))
    assert done.returncode == 0, done.stderr
    table = stopped / "recovery-squeezenet-node.csv"
    status, stderr = signal_after_rows(recover_args(squeezenet, val_subset, stopped), table, 2, signal.SIGTERM)
    assert status == 143 and "terminated" in stderr and "Traceback" not in stderr, stderr
    checkpoints = list((stopped / "recovery-squeezenet-node.csv.checkpoints").glob("*.npz"))
    assert len(checkpoints) == 1  # stopped midway: the held run's step-2 checkpoint
    flip_array_bytes(checkpoints[0])

    again = command(*recover_args(squeezenet, val_subset, stopped))
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    warnings = [line for line in again.stderr.splitlines() if "damaged checkpoint" in line]
    assert len(warnings) == 1 and checkpoints[0].name in warnings[0]
    assert checkpoints[0].with_suffix(".damaged").exists()  # set aside, named
    assert recovery_content(table) == recovery_content(straight / "recovery-squeezenet-node.csv")


def test_a_second_recover_on_the_same_table_refuses_with_one_line(squeezenet, val_subset, tmp_path):
    table = tmp_path / "recovery-squeezenet-node.csv"
    first = subprocess.Popen([sys.executable, "-m", *recover_args(squeezenet, val_subset, tmp_path, steps=400)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (table.exists() and table.read_bytes().count(b"\n") >= 2) and first.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = table.read_bytes()
        second = command(*recover_args(squeezenet, val_subset, tmp_path, steps=400))
        assert second.returncode == 2
        errors = [line for line in second.stderr.splitlines() if not line.startswith("E0000")]  # TensorFlow's CUDA probe
        assert errors == [f"error: {table}: another recovery study is writing this recovery table right now"]
        assert table.read_bytes().startswith(before)  # the first one's rows untouched
        assert first.poll() is None  # and it runs on
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143


# --- decoded-image caches -------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["changed", "truncated"])
def test_a_damaged_image_cache_is_named_removed_and_rebuilt(squeezenet, val_subset, tmp_path, damage):
    cache = tmp_path / "cache"
    options = ["--cache-dir", str(cache), "--memory-gb", "0.05", "--levels", "0,1", "--repeats", "1"]
    first = command("replication.figure1", *sweep_args(squeezenet, val_subset, tmp_path / "first"), *options)
    assert first.returncode == 0, first.stderr
    (npy,) = cache.glob("decoded-*.npy")  # 64 decoded images are more than 0.025 GB: cached on disk
    data = bytearray(npy.read_bytes())
    if damage == "changed":
        middle = len(data) // 2
        data[middle : middle + 4096] = b"\xff" * 4096  # NaN pixels in one image
    else:
        data = data[: len(data) - 4096]
    npy.write_bytes(bytes(data))

    again = command("replication.figure1", *sweep_args(squeezenet, val_subset, tmp_path / "again"), *options)
    assert again.returncode == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if "damaged decoded-image cache" in line]
    assert len(warnings) == 1 and str(npy) in warnings[0]
    table = "results-squeezenet-synapse.csv"
    assert stable(read_rows(tmp_path / "again" / table)) == stable(read_rows(tmp_path / "first" / table))
    assert npy.exists()  # rebuilt


# --- results table rows ---------------------------------------------------------------------


def test_a_damaged_results_row_is_set_aside_and_its_trial_runs_again(squeezenet, val_subset, tmp_path):
    options = ["--levels", "0,1", "--repeats", "2"]
    first = command("replication.figure1", *sweep_args(squeezenet, val_subset, tmp_path), *options)
    assert first.returncode == 0, first.stderr
    table = tmp_path / "results-squeezenet-synapse.csv"
    expected = read_rows(table)
    lines = table.read_bytes().splitlines(keepends=True)
    damaged = lines[2][:40] + b"\xff\xfe" + lines[2][60:]  # a disk error inside the second row
    table.write_bytes(b"".join([*lines[:2], damaged, *lines[3:]]))

    again = command("replication.figure1", *sweep_args(squeezenet, val_subset, tmp_path), *options)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    warnings = [line for line in again.stderr.splitlines() if "damaged row" in line]
    assert len(warnings) == 1 and str(table) in warnings[0]
    assert (tmp_path / "results-squeezenet-synapse.csv.damaged").read_bytes() == damaged
    rows = read_rows(table)
    assert sorted(map(str, stable(rows))) == sorted(map(str, stable(expected)))
