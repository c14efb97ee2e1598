"""Adding a perturbation is one function and one registration, and touches no other file.

This module defines a toy perturbation (sign flips) and registers it; with nothing else
changed, a sweep runs it on a tiny Keras model with a split convolution, writes and resumes
its results table, and the figure code draws it with the registered title and axis label.
The registry is global, so the toy keeps a name of its own and stays registered
(registering the same function again is a no-op).
"""

import keras
import numpy as np
import pandas as pd
import pytest

import replication
from replication.analysis.experiments import Experiment
from replication.analysis.figures import plot_figure
from replication.errors import ReplicationError
from replication.models.groups import WeightGroup, set_weight_groups
from replication.models.layers import grouped_conv2d
from replication.perturb import knockout_count, perturb_arrays, perturbation_names, register_perturbation
from replication.run.grid import Grid
from replication.run.sweep import run_sweep
from replication.run.table import RunInfo, read_table

NAME = "toy_sign_flip"
LAYERS = ("conv", "dense")
LEVELS = (0.0, 0.5, 1.0)


@register_perturbation(NAME, title="Sign flips", level_label="proportion of weights sign-flipped", max_level=1.0)
def sign_flip(originals, level, rng, semantics="paper"):
    """Flip the sign of floor(level·n) kernel entries chosen over the whole group; biases untouched."""
    sizes = [arrays[0].size for arrays in originals]
    flip = np.zeros(sum(sizes), bool)
    flip[rng.choice(flip.size, knockout_count(level, flip.size), replace=False)] = True
    out = []
    for arrays, part in zip(originals, np.split(flip, np.cumsum(sizes)[:-1])):
        w = arrays[0]
        out.append([np.where(part.reshape(w.shape), -w, w), *(a.copy() for a in arrays[1:])])
    return out


def toy_model() -> keras.Model:
    inputs = keras.Input((8, 8, 4))
    x = grouped_conv2d(inputs, 6, 3, groups=2, name="conv")
    x = keras.layers.Dense(10, name="dense")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, keras.layers.Softmax(name="prob")(x))
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()])
    set_weight_groups(model, [WeightGroup("conv", ("conv_1", "conv_2"), "conv"), WeightGroup("dense", ("dense",), "fc")])
    return model


def test_a_registered_toy_perturbation_sweeps_resumes_and_plots(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.standard_normal((64, 8, 8, 4)).astype(np.float32)
    labels = rng.integers(0, 10, 64)
    run = RunInfo(model="toy", weights_sha256="0" * 64, dataset_id="toy", images=64,
                  version=replication.__version__, semantics="paper")
    grid, results, model = Grid(LAYERS, NAME, LEVELS, 2), tmp_path / "results.csv", toy_model()
    table = run_sweep(model, grid, images, labels, results, run, memory_gb=0.5, progress=False)

    assert len(table) == 1 + len(LAYERS) * 2 * 2
    trials = table[table["layer"] != "-"]
    assert set(trials["perturbation"]) == {NAME} and set(trials["layer"]) == set(LAYERS)
    assert sorted(trials["level"].unique()) == [0.5, 1.0] and sorted(trials["repeat"].unique()) == [0, 1]
    pd.testing.assert_frame_equal(read_table(results), table)

    again = run_sweep(model, grid, images, labels, results, run, memory_gb=0.5, progress=False)
    pd.testing.assert_frame_equal(again, table)  # nothing recomputed: same rows, same finished_at
    assert len(read_table(results)) == len(table)

    baseline = table[table["layer"] == "-"].iloc[0]
    flipped = trials[trials["level"] == 1.0]
    assert ((flipped["top1"] != baseline["top1"]) | (flipped["top5"] != baseline["top5"])).any()

    fig = plot_figure(table, Experiment(None, NAME, "top5", LEVELS, 2), LAYERS, "Toy")
    ax = fig.axes[0]
    assert [c.get_label() for c in ax.containers] == list(LAYERS)  # one error-bar line per layer
    assert ax.get_xlabel() == "proportion of weights sign-flipped"
    assert "Sign flips" in ax.get_title()


def test_sign_flip_flips_exactly_floor_pn_over_the_group_and_level_zero_is_the_identity():
    rng = np.random.default_rng(2)
    halves = [[rng.uniform(0.5, 1.5, (3, 3, 2, 3)).astype(np.float32), np.ones(3, np.float32)] for _ in range(2)]
    halves[0][0][0, 0, 0, 0] = -0.0
    same = perturb_arrays(halves, NAME, 0.0, np.random.default_rng(0))
    assert all(a.tobytes() == b.tobytes() for x, y in zip(halves, same) for a, b in zip(x, y))
    out = perturb_arrays(halves, NAME, 0.7, np.random.default_rng(0))
    flipped = sum(int(np.count_nonzero(np.signbit(w1) != np.signbit(w0))) for (w0, _), (w1, _) in zip(halves, out))
    assert flipped == 75  # floor(0.7 · 108) over both halves, not 2 · floor(0.7 · 54) = 74
    assert all((b1 == b0).all() for (_, b0), (_, b1) in zip(halves, out))


def test_levels_beyond_the_registered_range_are_refused_by_the_grid():
    assert NAME in perturbation_names()
    for level in (1.5, float("nan"), -0.5):
        with pytest.raises(ReplicationError, match=NAME):
            Grid(LAYERS, NAME, (level,), 1)
    again = register_perturbation(NAME, title="Sign flips", level_label="proportion of weights sign-flipped", max_level=1.0)
    assert again(sign_flip) is sign_flip  # registering the same function again is a no-op
    with pytest.raises(ValueError, match="already registered"):
        register_perturbation(NAME, title="x", level_label="x", max_level=1.0)(lambda *args: None)
