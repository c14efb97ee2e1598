"""The figure layout from a results table, and the figure commands' missing-input check."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from replication import figure1, figure4
from replication.analysis.experiments import EXPERIMENTS
from replication.analysis.figures import CHANCE, plot_figure, save_figure
from replication.run.table import COLUMNS, as_frame

RUN = {"model": "alexnet", "weights_sha256": "ab" * 32, "dataset_id": "d1", "images": "100", "version": "0.1.0",
       "semantics": "paper", "precision": "float32", "seed": "", "seconds": "1.0", "finished_at": "2017-03-23T00:00:00+00:00"}


def _table(kind, values):
    """values: {(layer, level): [top5 per repeat]}, plus the baseline."""
    rows = [{**RUN, "layer": "-", "perturbation": "none", "level": "0.0", "repeat": "0", "top1": "0.5", "top5": "0.8"}]
    for (layer, level), repeats in values.items():
        for r, top5 in enumerate(repeats):
            rows.append({**RUN, "layer": layer, "perturbation": kind, "level": str(level), "repeat": str(r),
                         "top1": str(top5 / 2), "top5": str(top5)})
    return as_frame([{name: row[name] for name in COLUMNS} for row in rows])


def test_one_line_per_layer_in_network_order_with_sample_sd_bars_and_chance(tmp_path):
    table = _table("synapse", {("conv_2", 0.5): [0.6, 0.7, 0.8], ("conv_1", 0.5): [0.1, 0.3, 0.2]})
    fig = plot_figure(table, EXPERIMENTS[1], ["conv_1", "conv_2"], "AlexNet")
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.containers] == ["conv_1", "conv_2"]  # network order, not table order
    conv_1 = ax.containers[0]
    assert list(conv_1.lines[0].get_xdata()) == [0.0, 0.5]
    assert conv_1.lines[0].get_ydata() == pytest.approx([0.8, 0.2])  # level 0 is the shared baseline
    segments = conv_1.lines[2][0].get_segments()  # the error bars, one per point
    assert segments[1][:, 1] == pytest.approx([0.2 - 0.1, 0.2 + 0.1])  # SD with ddof=1 of 0.1, 0.3, 0.2
    chance = [line for line in ax.get_lines() if line.get_label().startswith("chance")]
    assert [tuple(line.get_ydata()) for line in chance] == [(CHANCE["top5"], CHANCE["top5"])]
    assert "top-5" in ax.get_ylabel() and "synapses" in ax.get_xlabel()
    png, pdf = save_figure(fig, tmp_path / "f")
    assert png.read_bytes()[:4] == b"\x89PNG" and pdf.read_bytes()[:4] == b"%PDF"


def test_figure4_is_top1_with_its_own_chance():
    table = _table("gaussian", {("conv_1", 1.0): [0.4, 0.6]})
    ax = plot_figure(table, EXPERIMENTS[4], ["conv_1"], "AlexNet").axes[0]
    assert ax.containers[0].lines[0].get_ydata() == pytest.approx([0.5, 0.25])
    assert any(np.allclose(line.get_ydata(), CHANCE["top1"]) for line in ax.get_lines())
    assert "top-1" in ax.get_ylabel()


def test_missing_weights_and_images_are_named_with_where_to_get_them(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no caffe_weights/ here
    assert figure1.main([]) == 2
    err = capsys.readouterr().err
    assert "caffe_weights/bvlc_alexnet.h5" in err
    assert "http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel" in err
    assert "python -m replication.convert" in err
    assert "no --data given" in err and "image-net.org" in err
    assert "ilsvrc_2012_mean.npy" in err  # --mean image is the default
    assert not list(tmp_path.iterdir())  # nothing computed, nothing written
    assert figure4.main(["--data", str(tmp_path / "nowhere"), "--mean", "pixel"]) == 2
    err = capsys.readouterr().err
    assert "nowhere: no such folder" in err and "mean image" not in err


def test_first_contact_names_what_is_missing_and_the_download_command_before_tensorflow(tmp_path):
    """`reproduce` with nothing in place, as a new user runs it: every missing input, the
    project's own download command for each fetchable one, where the images come from, and
    all that before TensorFlow (or Keras) is imported."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    # python -m replication.reproduce, reporting at exit which heavy modules were imported
    # (-X importtime cannot tell: TensorFlow is imported with stderr silenced).
    script = ("import atexit, runpy, sys; atexit.register(lambda: print(sorted({'tensorflow', 'keras'} & "
              "set(sys.modules)))); sys.argv = ['reproduce']; runpy.run_module('replication.reproduce', "
              "run_name='__main__', alter_sys=True)")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    message = done.stderr
    assert done.returncode == 2 and "The replication cannot run; missing:" in message, message
    assert done.stdout.strip() == "[]"  # neither TensorFlow nor Keras imported
    for name in ("alexnet", "mean"):
        assert f"python -m replication.download {name}" in message
    assert "python -m replication.convert caffe_weights/bvlc_alexnet.caffemodel" in message
    assert "https://image-net.org/download-images" in message and "cannot fetch" in message
    assert "curl" not in message
    assert "no --data given" in message
    assert not list(tmp_path.iterdir())  # nothing written


def test_many_layers_can_be_told_apart_and_ends_are_not_cut():
    layers = [f"layer_{i}" for i in range(26)]
    table = _table("synapse", {(layer, 1.0): [0.2, 0.4] for layer in layers})
    ax = plot_figure(table, EXPERIMENTS[1], layers, "Deep").axes[0]
    looks = {(tuple(c.lines[0].get_color()), c.lines[0].get_linestyle(), c.lines[0].get_marker()) for c in ax.containers}
    assert len(looks) == 26  # no two layers drawn alike
    low, high = ax.get_xlim()
    assert low < 0.0 and high > 1.0  # the points at level 0 and 1 with their error bars lie inside
    assert ax.get_ylim()[0] < 0 and ax.get_ylim()[1] > 1
