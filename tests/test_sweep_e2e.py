"""End to end on the real SqueezeNet v1.1 with real validation images: a reduced Figure
1, 2, 3 and 4 (see sweep_runs.py), a kill and resume, shards and merge, and what must
hold on real trained weights."""

import numpy as np
import pytest
from sweep_runs import GAUSSIAN_LAYERS, IMAGES, LAYERS, REPEATS, TRIALS, reduced_sweeps

from replication import figure2
from replication.errors import ReplicationError
from replication.run.grid import Grid
from replication.run.shards import merge_shards
from replication.run.table import read_rows, read_table, row_key


@pytest.fixture(scope="module")
def runs(tmp_path_factory, caffe_dir, val_subset):
    return reduced_sweeps(tmp_path_factory, caffe_dir, val_subset)


def _grid(kind, levels, layers=LAYERS):
    return {t.key for t in Grid(layers, kind, levels, REPEATS).trials()}


def _mean(table, layer, level, metric="top5"):
    rows = table[(table["layer"] == layer) & (table["level"] == level)]
    assert len(rows) == REPEATS
    return rows[metric].mean()


def test_a_killed_run_resumes_without_losing_or_repeating_a_trial(runs):
    finished_before_kill = runs.killed_rows.count(b"\n") - 1
    assert 2 <= finished_before_kill < TRIALS  # really killed midway
    table = runs.tables[1].read_bytes()
    assert table.startswith(runs.killed_rows)  # rows finished before the kill are kept as written
    rows = read_rows(runs.tables[1])
    keys = [row_key(r) for r in rows]
    assert len(keys) == len(set(keys)) == TRIALS
    assert set(keys) == _grid("synapse", (0.5, 1.0))
    assert f"{finished_before_kill} of {TRIALS} trials already done" in runs.logs["figure1"]


def test_every_figure_writes_its_picture_table_and_report(runs):
    for number in (1, 2, 3, 4):
        stem = runs.out / f"figure{number}-squeezenet"
        assert stem.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
        assert stem.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
        report = (runs.out / f"figure{number}-squeezenet-stats.md").read_text()
        layers = LAYERS if number < 3 else GAUSSIAN_LAYERS
        assert "| level | " + " | ".join(layers) + " |" in report
        assert "Unperturbed AlexNet" in report and "holds" in report
    assert {row_key(r) for r in read_rows(runs.tables[1])} == _grid("synapse", (0.5, 1.0))
    assert {row_key(r) for r in read_rows(runs.tables[2])} == _grid("node", (0.5, 1.0))
    assert {row_key(r) for r in read_rows(runs.tables[3])} == _grid("gaussian", (1.0, 2.0), GAUSSIAN_LAYERS)
    # Figure 4 is Figure 3's runs read again: nothing was computed
    assert runs.tables[4] == runs.tables[3]
    done = len(_grid("gaussian", (1.0, 2.0), GAUSSIAN_LAYERS))
    assert f"{done} of {done} trials already done, 0 to run" in runs.logs["figure4"]


def test_accuracy_falls_as_more_is_knocked_out(runs):
    for number in (1, 2):
        table = read_table(runs.tables[number])
        baseline = table.loc[table["layer"] == "-", "top5"].item()
        assert baseline > 0.8  # SqueezeNet v1.1 scores top-5 0.908 on the 1300 images
        for layer in LAYERS:
            half, full = _mean(table, layer, 0.5), _mean(table, layer, 1.0)
            # 2 repeats on a few hundred images: allow a little noise between neighbours
            assert baseline >= half - 0.02 and half >= full - 0.02
            assert baseline - full > 0.5


def _constant_guess_ceiling(labels, k):
    """The best accuracy any input-independent top-k guess can reach on these labels:
    guessing the k most frequent classes. On a few hundred images this, not 0.005, is
    what chance means for a network whose output no longer depends on the image."""
    counts = np.sort(np.bincount(labels, minlength=1000))[::-1]
    return counts[:k].sum() / len(labels)


def test_complete_knockout_gives_chance(runs, val_subset):
    from replication.data import find_dataset

    labels = find_dataset(val_subset, limit=IMAGES).labels
    ceiling1, ceiling5 = _constant_guess_ceiling(labels, 1), _constant_guess_ceiling(labels, 5)
    assert ceiling5 < 0.1  # far below the baseline's 0.9, so the check has teeth
    for number in (1, 2):
        table = read_table(runs.tables[number])
        for layer in LAYERS:
            rows = table[(table["layer"] == layer) & (table["level"] == 1.0)]
            # conv10 at 100% makes every logit 0: a tie rule that counted ties as hits
            # would score 1.0 here
            assert (rows["top5"] <= ceiling5).all() and (rows["top1"] <= ceiling1).all(), (number, layer)


def test_knocking_out_output_units_leaves_the_rest_of_top1(runs):
    table = read_table(runs.tables[2])
    baseline = table.loc[table["layer"] == "-", "top1"].item()
    kept = _mean(table, "conv10", 0.5, "top1") / baseline
    # An image keeps its top-1 hit when its class survives (probability 1 - p), and an
    # image whose winning wrong class is knocked out may gain one, hence the margin.
    assert kept == pytest.approx(0.5, abs=0.1)


def test_shards_and_merge_give_the_unsharded_table(runs):
    # Figure 2's grid without conv1 (whose trials cost a whole forward pass each): the
    # baseline and two layers, so the cost-balanced cut falls inside the grid.
    layers = LAYERS[1:]
    results = runs.out / "sharded.csv"
    args = [*runs.args, "--layers", ",".join(layers), "--levels", "0,0.5,1", "--results", str(results)]
    for shard in ("0/2", "1/2"):
        assert figure2.main([*args, "--shard", shard]) == 0
    shards = [runs.out / f"sharded.shard-{i}-of-2.csv" for i in (0, 1)]
    assert all(len(read_rows(p)) > 0 for p in shards)  # both shards had work
    merged = runs.out / "merged.csv"
    expected = _grid("node", (0.5, 1.0), layers)
    assert merge_shards(merged, shards) == len(expected)

    def numbers(path):
        return {row_key(r): (r["seed"], r["top1"], r["top5"]) for r in read_rows(path) if row_key(r) in expected}

    assert numbers(merged) == numbers(runs.tables[2])  # same seeds, same counts as the unsharded run

    # a shard that lost a row, or two shards holding the same trial, are refused
    complete = shards[1].read_text()
    shards[1].write_text("".join(complete.splitlines(keepends=True)[:-1]))
    with pytest.raises(ReplicationError, match="missing"):
        merge_shards(runs.out / "refused.csv", shards)
    shards[1].write_text(complete + shards[0].read_text().splitlines(keepends=True)[-1])
    with pytest.raises(ReplicationError, match="more than once"):
        merge_shards(runs.out / "refused.csv", shards)
    assert not (runs.out / "refused.csv").exists()
