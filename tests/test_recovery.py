"""Recovery after damage: the split, the training stream, held and free lesions, the
recovery table, its statistics, and on the real SqueezeNet a run killed midway and resumed
that equals the uninterrupted one, with the held lesion intact."""

import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pandas as pd
import pytest

from replication.analysis.recovery import half_point, recovery_report, recovery_runs
from replication.data.layouts import Dataset
from replication.data.training import stratified_split, stream_indices
from replication.errors import ReplicationError
from replication.models.groups import weight_groups
from replication.perturb.apply import perturbed, touched_entries
from replication.perturb.trials import Trial
from replication.recovery.table import COLUMNS, RecoveryLog, RecoveryRun, StudyInfo, control_of, read_recovery
from replication.recovery.train import Lesion, Trainer, Training, trained_groups

STUDY = StudyInfo("toy", "0" * 64, "t" * 16, 10, "h" * 16, 20, 2, 8, 0.001, 0.9, 0.0005, True, 0, "float32", "paper", "0")


def _dataset(labels) -> Dataset:
    from pathlib import Path

    return Dataset([Path(f"img_{i:04d}.JPEG") for i in range(len(labels))], np.asarray(labels, np.int32), Path("."))


def test_split_is_seeded_stratified_and_disjoint():
    labels = np.repeat(np.arange(40), [1 + i % 4 for i in range(40)])
    ds = _dataset(labels)
    train, held = stratified_split(ds, 0.5, seed=3)
    again, _ = stratified_split(ds, 0.5, seed=3)
    other, _ = stratified_split(ds, 0.5, seed=4)
    names = lambda d: {f.name for f in d.files}  # noqa: E731
    assert names(train) == names(again) and names(train) != names(other)
    assert not names(train) & names(held) and len(train) + len(held) == len(ds)
    for label in range(40):
        count = int((labels == label).sum())
        in_train, in_held = int((train.labels == label).sum()), int((held.labels == label).sum())
        if count >= 2:  # both sides see every class that has two images
            assert in_train >= 1 and in_held >= 1
        assert abs(in_held - count / 2) <= 1
    with pytest.raises(ReplicationError, match="between 0 and 1"):
        stratified_split(ds, 1.0)


def test_stream_is_a_function_of_seed_and_step():
    whole = stream_indices(10, 4, seed=1, start_step=0, stop_step=9)
    assert np.array_equal(stream_indices(10, 4, seed=1, start_step=3, stop_step=7), whole[3:7])
    flat = whole.reshape(-1)
    for epoch in range(3):  # every epoch is a permutation of the images
        assert sorted(flat[epoch * 10 : epoch * 10 + 10]) == list(range(10))
    assert not np.array_equal(stream_indices(10, 4, seed=2, start_step=0, stop_step=9), whole)


def _toy_model():
    inputs = keras.Input((12,))
    x = keras.layers.Dense(16, activation="relu", name="a")(inputs)
    x = keras.layers.Dropout(0.5, name="dropout_1")(x)
    x = keras.layers.Dense(16, activation="relu", name="b")(x)
    logits = keras.layers.Dense(5, name="c")(x)
    model = keras.Model(inputs, keras.layers.Softmax(name="prob")(logits))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _train(model, trial, lesion_mode, train_layers="all", steps=30):
    groups = weight_groups(model)
    layer = model.get_layer(trial.layer)
    touched = touched_entries([layer.get_weights()], groups[trial.layer], trial, "toy:0")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(steps, 16, 12)).astype(np.float32), rng.integers(0, 5, (steps, 16)).astype(np.int32)
    with perturbed(model, groups[trial.layer], trial, "toy:0"):
        after = [np.array(w) for w in layer.get_weights()]
        lesion = Lesion.of([layer], touched, [after])
        trainer = Trainer(model, trained_groups(groups, trial.layer, train_layers),
                          lesion if lesion_mode == "held" else None, Training(steps, steps, learning_rate=0.05))
        trainer.seed_dropout(0)
        losses = [float(trainer.step(x[i], y[i])) for i in range(steps)]
        trained = [np.array(w) for w in layer.get_weights()]
    return lesion, after, trained, losses


def test_held_lesion_stays_exactly_zero_and_free_regrows():
    trial = Trial("b", "synapse", 0.5, 0)
    lesion, damaged, trained, losses = _train(_toy_model(), trial, "held")
    assert lesion.size == 16 * 16 // 2 + 16 // 2  # floor(p·n) of W, then of b
    changed = [c for _, c, _ in lesion.entries]
    assert all(np.all(t[c] == 0) for t, c in zip(trained, changed))  # exactly zero, bit for bit below
    assert all(np.all(np.signbit(t[c]) == np.signbit(d[c])) for t, d, c in zip(trained, damaged, changed))
    assert any(np.any(t[~c] != d[~c]) for t, d, c in zip(trained, damaged, changed))  # the rest did train
    assert losses[-1] < losses[0]
    _, _, free, _ = _train(_toy_model(), trial, "free")
    assert any(np.count_nonzero(f[c]) for f, c in zip(free, changed))  # a free lesion regrows


def test_lesion_digest_tells_a_change():
    model = _toy_model()
    layer = model.get_layer("a")
    before = [np.array(w) for w in layer.get_weights()]
    after = [before[0].copy(), before[1].copy()]
    after[0][0, :3] = 0.0
    layer.set_weights(after)
    touched = [np.zeros(before[0].shape, bool), np.zeros(before[1].shape, bool)]
    touched[0][0, :3] = True
    lesion = Lesion.of([layer], [touched], [after])
    assert lesion.size == 3 and lesion.digest() == lesion.damaged_digest()
    after[0][0, 1] = 1e-30
    layer.set_weights(after)
    assert lesion.digest() != lesion.damaged_digest()


def test_a_knockout_of_an_entry_already_zero_is_held_too():
    model = _toy_model()
    groups = weight_groups(model)
    layer = model.get_layer("b")
    weights = layer.get_weights()
    weights[1][:] = 0.0  # every bias already 0: knocking one out changes no bit
    layer.set_weights(weights)
    trial = Trial("b", "synapse", 0.5, 0)
    touched = touched_entries([layer.get_weights()], groups["b"], trial, "toy:0")
    assert int(touched[0][1].sum()) == 8  # floor(0.5 · 16) biases chosen, all held although all were 0
    lesion, _, trained, _ = _train(model, trial, "held")
    assert lesion.size == 16 * 16 // 2 + 8 and np.all(trained[1][touched[0][1]] == 0)
    assert np.any(trained[1][~touched[0][1]] != 0)  # the biases not chosen did train


def test_only_the_chosen_layers_train():
    model = _toy_model()
    start = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}
    _train(model, Trial("b", "node", 0.5, 0), "held", train_layers="above", steps=5)
    # The perturbed context restored b; a is below and must be exactly as it was.
    assert all(np.array_equal(w, s) for w, s in zip(model.get_layer("a").get_weights(), start["a"]))
    assert any(not np.array_equal(w, s) for w, s in zip(model.get_layer("c").get_weights(), start["c"]))
    groups = weight_groups(model)
    assert [g.name for g in trained_groups(groups, "b", "below")] == ["a"]
    with pytest.raises(ReplicationError, match="no layer with weights comes after c"):
        trained_groups(groups, "c", "above")


def test_checkpoint_round_trip_is_exact(tmp_path):
    model = _toy_model()
    groups = weight_groups(model)
    trainer = Trainer(model, list(groups.values()), None, Training(4, 2))
    trainer.seed_dropout(0)
    rng = np.random.default_rng(2)
    batches = [(rng.normal(size=(8, 12)).astype(np.float32), rng.integers(0, 5, 8).astype(np.int32)) for _ in range(4)]
    for x, y in batches[:2]:
        trainer.step(x, y)
    trainer.save(tmp_path / "c.npz", {"step": 2})
    straight = [float(trainer.step(x, y)) for x, y in batches[2:]]
    final = [np.array(v.numpy()) for v in model.variables]
    other = _toy_model()
    resumed = Trainer(other, list(weight_groups(other).values()), None, Training(4, 2))
    assert resumed.load(tmp_path / "c.npz") == {"step": 2}
    assert [float(resumed.step(x, y)) for x, y in batches[2:]] == straight
    assert all(np.array_equal(a, np.array(v.numpy())) for a, v in zip(final, other.variables))


def test_recovery_log_resumes_and_refuses_another_study(tmp_path):
    path = tmp_path / "r.csv"
    run = RecoveryRun(Trial("a", "node", 0.5, 0), "held", "all")
    with RecoveryLog(path, STUDY) as log:
        log.append(run, 7, 0, 0, 0.5, 0.75, None, 0.0)
        log.append(run, 7, 10, 80, 0.55, 0.8, 2.5, 1.0)
        with pytest.raises(ValueError, match="already"):
            log.append(run, 7, 10, 80, 0.55, 0.8, 2.5, 1.0)
    with open(path, "ab") as f:
        f.write(b"toy,0000")  # a kill in mid-write
    with RecoveryLog(path, STUDY) as log:
        assert log.steps_done(run) == {0, 10}
    other = StudyInfo(**{**STUDY.__dict__, "learning_rate": 0.01})
    with pytest.raises(ReplicationError, match="different study"):
        RecoveryLog(path, other)
    table = read_recovery(path)
    assert list(table.columns) == list(COLUMNS) and math.isnan(table["loss"].iloc[0]) and table["loss"].iloc[1] == 2.5


def _table(rows):
    base = STUDY.as_row()
    out = []
    for layer, level, repeat, lesion, step, top5 in rows:
        out.append({**base, "layer": layer, "perturbation": "node", "level": level, "repeat": repeat, "lesion": lesion,
                    "train_layers": "all", "trial_seed": "", "step": step, "images_seen": step * 8, "top1": top5 / 2,
                    "top5": top5, "loss": "", "seconds": 0.0, "finished_at": ""})
    frame = pd.DataFrame(out)
    frame["heldout_images"] = 20
    return frame


def test_recovered_fraction_and_half_point():
    assert half_point(np.array([0, 10, 20]), np.array([0.0, 0.25, 0.75])) == 15.0
    assert math.isnan(half_point(np.array([0, 10]), np.array([0.0, 0.4])))
    table = _table([
        ("x", 0.0, 0, "none", 0, 0.8), ("x", 0.0, 0, "none", 10, 0.82), ("x", 0.0, 0, "none", 20, 0.84),
        ("x", 0.5, 0, "held", 0, 0.4), ("x", 0.5, 0, "held", 10, 0.6), ("x", 0.5, 0, "held", 20, 0.7),
        ("x", 0.5, 1, "held", 0, 0.5), ("x", 0.5, 1, "held", 10, 0.55), ("x", 0.5, 1, "held", 20, 0.6),
    ])  # fmt: skip
    runs = recovery_runs(table).set_index("repeat")
    assert runs.loc[0, "recovered"] == pytest.approx((0.7 - 0.4) / (0.8 - 0.4))
    assert runs.loc[0, "vs_control"] == pytest.approx((0.7 - 0.4) / (0.84 - 0.4))
    assert runs.loc[0, "control_change"] == pytest.approx(0.04)
    assert runs.loc[0, "images_to_half"] == pytest.approx(80.0)  # 0.5 reached exactly at step 10
    assert math.isnan(runs.loc[1, "images_to_half"])  # 1/3 of the loss back: half not reached
    at = recovery_runs(table, at_images=100).set_index("repeat")
    assert at.loc[0, "images"] == 80 and at.loc[0, "after"] == 0.6
    report = recovery_report(table, "r.csv")
    assert "| x | node | 0.5 | held | all | 2 | 160 | 0.800 |" in report and "(1/2)" in report


def test_control_is_level_zero_of_the_same_layer():
    run = RecoveryRun(Trial("conv_3", "synapse", 0.7, 2), "free", "above")
    control = control_of(run)
    assert control.trial == Trial("conv_3", "synapse", 0.0, 0) and control.is_control
    assert control.train_layers == "above"
    with pytest.raises(ValueError):
        RecoveryRun(Trial("a", "node", 0.5, 0), "regrow", "all")


# --- on the real SqueezeNet --------------------------------------------------------------------


@pytest.fixture(scope="module")
def squeezenet_h5(tmp_path_factory, caffe_dir):
    from replication.caffe.convert import convert_caffemodel

    weights = tmp_path_factory.mktemp("recover") / "squeezenet_v1.1.h5"
    net = caffe_dir / "squeezenet_v1.1"
    convert_caffemodel(net / "squeezenet_v1.1.caffemodel", weights, prototxt=net / "deploy.prototxt", progress=False)
    return weights


def _command(caffe_dir, val_subset, weights, out):
    return [
        sys.executable, "-m", "replication.recover", "--model", str(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt"),
        "--weights", str(weights), "--data", str(val_subset), "--resize", "227", "--crop", "227", "--mean", "pixel",
        "--limit", "64", "--split", "0.5", "--layers", "fire9/squeeze1x1", "--perturbation", "node", "--levels", "0.5",
        "--repeats", "1", "--steps", "4", "--eval-every", "2", "--batch-size", "8", "--no-progress", "--out", str(out),
    ]  # fmt: skip


def _kill_after_rows(command, table, rows, timeout=600):
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        if table.exists() and table.read_bytes().count(b"\n") >= rows + 1:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    return process.returncode


def _content(path):
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    return table.drop(columns=["seconds", "finished_at"]).sort_values(["lesion", "step"]).reset_index(drop=True)


def test_recover_on_squeezenet_resumes_exactly(tmp_path, caffe_dir, val_subset, squeezenet_h5):
    straight = tmp_path / "straight"
    done = subprocess.run(_command(caffe_dir, val_subset, squeezenet_h5, straight), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "fire9/squeeze1x1 node 0.5 #0 held train=all: held lesion of" in done.stdout
    assert "intact after training" in done.stdout  # the command checks the lesion's sha256 and fails otherwise
    table = straight / "recovery-squeezenet-node.csv"
    rows = _content(table)
    assert list(rows["step"]) == ["0", "2", "4"] * 2  # held, then the control ("none"), three evaluations each
    assert set(rows["images_seen"]) == {"0", "16", "32"}
    assert (straight / "recovery-squeezenet-node.png").exists() and (straight / "recovery-squeezenet-node-stats.md").exists()
    assert not list(straight.glob("*.checkpoints/*.npz"))  # removed once their runs ended
    held = rows[rows["lesion"] == "held"].set_index("step")
    control = rows[rows["lesion"] == "none"].set_index("step")
    assert float(held.loc["0", "top5"]) < float(control.loc["0", "top5"])  # the damage cost something

    resumed = tmp_path / "resumed"
    code = _kill_after_rows(_command(caffe_dir, val_subset, squeezenet_h5, resumed),
                            resumed / "recovery-squeezenet-node.csv", rows=2)
    assert code == -signal.SIGKILL
    assert list((resumed / "recovery-squeezenet-node.csv.checkpoints").glob("*.npz"))  # it was killed midway
    again = subprocess.run(_command(caffe_dir, val_subset, squeezenet_h5, resumed), capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    pd.testing.assert_frame_equal(_content(resumed / "recovery-squeezenet-node.csv"), rows)


def test_recover_refuses_impossible_options(tmp_path, caffe_dir, val_subset, squeezenet_h5):
    command = _command(caffe_dir, val_subset, squeezenet_h5, tmp_path)
    at = command.index("--layers") + 1
    bad = [*command[:at], "conv10", *command[at + 1 :], "--train-layers", "above"]
    done = subprocess.run(bad, capture_output=True, text=True)
    assert done.returncode == 2 and "no layer with weights comes after conv10" in done.stderr
    assert "Traceback" not in done.stderr and not list(tmp_path.glob("*.csv"))


@pytest.mark.parametrize("options, message", [
    (["--split", "1.5"], "--split: must be between 0 and 1"),
    (["--split", "0.5", "--momentum", "-1"], "--momentum: must be a finite number of at least 0"),
    (["--split", "0.5", "--lesion", "held,regrow"], "regrow: choose from held, free"),
    (["--split", "0.5", "--train-layers", "sideways"], "sideways: choose from all, damaged, above, below"),
    (["--split", "0.5", "--precision", "float16"], "float16 needs loss scaling"),
    ([], "give the training images (--train DIR) or a demonstration split"),
])  # fmt: skip
def test_recover_refuses_impossible_options_when_parsed(options, message, capsys):
    from replication.commands import recover
    from replication.commands.common import run_cli

    assert run_cli(recover.main, ["--layers", "conv_1", "--data", "nowhere", *options]) == 2
    assert message in capsys.readouterr().err
