"""Several trial streams at the user's level: a figure1 run dealt to two streams (two logical
CPU devices, `--devices cpu:2`) writes the same results table as one stream, also when it
is killed midway and resumed."""

import subprocess
import sys

import pytest
from sweep_runs import _kill_midway

from replication.run.table import read_rows

LAYERS = "fire9/expand1x1,conv10"


@pytest.fixture(scope="module")
def squeezenet(caffe_dir, tmp_path_factory):
    from replication.caffe.convert import convert_caffemodel

    folder = caffe_dir / "squeezenet_v1.1"
    out = tmp_path_factory.mktemp("streams") / "squeezenet.h5"
    convert_caffemodel(folder / "squeezenet_v1.1.caffemodel", out, prototxt=folder / "deploy.prototxt", progress=False)
    return folder / "deploy.prototxt", out


def _command(prototxt, weights, val_subset, out, results, *extra):
    return [sys.executable, "-m", "replication.figure1", "--model", str(prototxt), "--weights", str(weights),
            "--data", str(val_subset), "--resize", "227", "--crop", "227", "--mean", "pixel", "--limit", "64",
            "--layers", LAYERS, "--levels", "0,0.5,1", "--repeats", "2", "--out", str(out),
            "--results", str(results), "--no-progress", *extra]  # fmt: skip


def _content(path):
    """Each trial's row without its timing: what must not depend on the streams."""
    rows = read_rows(path)
    return {(r["layer"], r["perturbation"], r["level"], r["repeat"]): {k: v for k, v in r.items()
            if k not in ("seconds", "finished_at")} for r in rows}, len(rows)


def test_two_streams_write_the_same_table_also_after_a_kill(squeezenet, val_subset, tmp_path):
    prototxt, weights = squeezenet
    one, two, killed = tmp_path / "one.csv", tmp_path / "two.csv", tmp_path / "killed.csv"
    for results, extra in ((one, ()), (two, ("--devices", "cpu:2"))):
        done = subprocess.run(_command(prototxt, weights, val_subset, tmp_path, results, *extra),
                              capture_output=True, text=True, cwd=tmp_path, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    command = _command(prototxt, weights, val_subset, tmp_path, killed, "--devices", "cpu:2")
    partial, returncode = _kill_midway(command, killed, tmp_path, rows_before_kill=3)
    assert returncode < 0 and partial.count(b"\n") - 1 < 9  # killed before the last of its 9 trials
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "already done" in done.stdout

    expected, count = _content(one)
    assert count == 9  # the baseline and 2 layers x 2 levels x 2 repeats
    assert _content(two) == (expected, 9)
    assert _content(killed) == (expected, 9)
    assert len({row["top5"] for row in expected.values()}) > 2  # the trials differ: equality means something
