"""Precision: float32 means float32 (TF32 off), the fast precisions are opt-in, and the
precision is part of a results table's identity."""

import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from replication.errors import ReplicationError
from replication.perturb.trials import Trial
from replication.run.precision import set_precision
from replication.run.table import ResultsLog, RunInfo

RUN = RunInfo("alexnet", "ab" * 32, "d", 10, "0.1.0", "paper")


def test_float32_turns_tf32_off_and_bfloat16_is_mixed():
    try:
        tf.config.experimental.enable_tensor_float_32_execution(True)
        set_precision("float32")
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
        assert keras.mixed_precision.global_policy().name == "float32"
        set_precision("bfloat16")
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        layer = keras.layers.Dense(3)
        layer.build((None, 4))
        assert layer.kernel.dtype == "float32" and layer.compute_dtype == "bfloat16"  # weights stay float32
    finally:
        set_precision("float32")
    with pytest.raises(ReplicationError, match="unknown precision"):
        set_precision("int8")
    if not tf.config.list_physical_devices("GPU"):
        with pytest.raises(ReplicationError, match="needs an NVIDIA GPU"):
            set_precision("tf32")


def test_tables_of_different_precision_never_mix(tmp_path):
    table = tmp_path / "results.csv"
    with ResultsLog(table, RUN) as log:
        log.append(Trial("conv_1", "synapse", 0.5, 0), 1, 0.5, 0.75, 1.0)
    assert log.rows[0]["precision"] == "float32"
    with pytest.raises(ReplicationError, match="precision is 'float32' in the table but 'bfloat16'"):
        ResultsLog(table, RunInfo(**{**RUN.__dict__, "precision": "bfloat16"}))


def test_evaluate_in_bfloat16_scores_real_images_close_to_float32(caffe_dir, val_subset, tmp_path):
    from replication.caffe.convert import convert_caffemodel

    folder = caffe_dir / "squeezenet_v1.1"
    weights = tmp_path / "squeezenet.h5"
    convert_caffemodel(folder / "squeezenet_v1.1.caffemodel", weights, progress=False)
    scores = {}
    for precision in ("float32", "bfloat16"):  # each in its own process: the precision is process-wide
        done = subprocess.run(
            [sys.executable, "-m", "replication.evaluate", "--model", str(folder / "deploy.prototxt"), "--weights",
             str(weights), "--data", str(val_subset), "--resize", "227", "--crop", "227", "--mean", "pixel",
             "--limit", "64", "--no-progress", "--precision", precision],
            capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        printed = dict(line.rsplit(maxsplit=1) for line in done.stdout.splitlines() if line.startswith("top-"))
        scores[precision] = (float(printed["top-1"]), float(printed["top-5"]))
    assert scores["float32"][1] > 0.8  # a trained network
    assert abs(scores["bfloat16"][0] - scores["float32"][0]) <= 4 / 64
    assert abs(scores["bfloat16"][1] - scores["float32"][1]) <= 4 / 64
