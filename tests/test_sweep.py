"""The trial grid, the shard split and the merge's checks (no images needed)."""

import json

import pytest

from replication.commands.merge import main as merge_main
from replication.errors import ReplicationError
from replication.run.grid import BASELINE, Grid
from replication.run.shards import (
    Shard,
    manifest_path,
    merge_shards,
    read_manifest,
    shard_path,
    shard_share,
    write_manifest,
)
from replication.run.table import ResultsLog, RunInfo, read_rows

RUN = RunInfo(
    model="alexnet", weights_sha256="ab" * 32, dataset_id="d1", images=100, version="0.1.0", semantics="paper"
)
GRID = Grid(("conv_1", "conv_2", "dense_3"), "synapse", (0.0, 0.5, 1.0), 3)
COSTS = {"-": 10.0, "conv_1": 10.0, "conv_2": 6.0, "dense_3": 0.01}


def test_grid_is_the_baseline_then_layer_by_layer():
    trials = Grid(("conv_1", "dense_3"), "node", (0.5, 0.0, 0.1 * 3, 0.3), 2).trials()
    assert trials[0] == BASELINE
    assert [(t.layer, t.level, t.repeat) for t in trials[1:]] == [
        ("conv_1", 0.3, 0), ("conv_1", 0.3, 1), ("conv_1", 0.5, 0), ("conv_1", 0.5, 1),
        ("dense_3", 0.3, 0), ("dense_3", 0.3, 1), ("dense_3", 0.5, 0), ("dense_3", 0.5, 1),
    ]
    assert len({t.key for t in trials}) == len(trials)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 40])
def test_every_trial_is_in_exactly_one_contiguous_shard(count):
    trials = GRID.trials()
    shares = [shard_share(trials, COSTS, Shard(i, count)) for i in range(count)]
    assert sum(shares, []) == trials  # in order, so each share is one contiguous run
    costs = [sum(COSTS[t.layer] for t in share) for share in shares]
    # cut at midpoints: no share is off its fair part by more than one trial's cost
    assert max(costs) - min(costs) <= 2 * max(COSTS.values())


def test_shards_keep_to_few_layers():
    trials = GRID.trials()
    shares = [shard_share(trials, COSTS, Shard(i, 4)) for i in range(4)]
    assert all(len({t.layer for t in share if t != BASELINE}) <= 2 for share in shares)


def test_shard_parsing():
    assert Shard.parse("3/8") == Shard(3, 8)
    for bad in ("8/8", "-1/8", "x", "1/0"):
        with pytest.raises(ReplicationError):
            Shard.parse(bad)


def test_suffix_costs_fall_with_depth():
    from replication.models.alexnet import build_alexnet
    from replication.models.groups import weight_groups
    from replication.run.costs import model_macs, suffix_macs

    model = build_alexnet()
    costs = {"-": model_macs(model), **suffix_macs(model, weight_groups(model))}
    names = ("-", "conv_1", "conv_2", "conv_3", "conv_4", "conv_5", "dense_1", "dense_2", "dense_3")
    order = [costs[name] for name in names]
    assert order[0] == order[1] and all(a > b > 0 for a, b in zip(order[1:], order[2:]))
    assert costs["dense_3"] == 4096 * 1000
    # conv_1 (55 x 55 positions, 11 x 11 x 3 x 96 kernel) is part of every whole-model pass
    assert costs["conv_1"] - costs["conv_2"] == 55 * 55 * 11 * 11 * 3 * 96


def _write_shards(tmp_path, count, grid=GRID, run=RUN):
    merged = tmp_path / "results.csv"
    paths = []
    for i in range(count):
        shard = Shard(i, count)
        path = shard_path(merged, shard)
        write_manifest(path, run, grid, shard)
        with ResultsLog(path, run) as log:
            for t in shard_share(grid.trials(), COSTS, shard):
                log.append(t, None, 0.5, 0.25 + t.repeat / 10, 1.0)
        paths.append(path)
    return merged, paths


def test_merge_combines_shards_in_grid_order(tmp_path, capsys):
    merged, paths = _write_shards(tmp_path, 3)
    assert paths[1].name == "results.shard-1-of-3.csv" and manifest_path(paths[1]).is_file()
    assert read_manifest(paths[1]) == (RUN, GRID, Shard(1, 3))
    assert merge_main([str(merged), *map(str, reversed(paths))]) == 0
    assert [t.key for t in GRID.trials()] == [
        (r["layer"], r["perturbation"], r["level"], int(r["repeat"])) for r in read_rows(merged)
    ]
    assert "merged 19 trials from 3 shards" in capsys.readouterr().out


def test_merge_refuses_a_missing_trial(tmp_path):
    merged, paths = _write_shards(tmp_path, 2)
    lines = paths[1].read_text().splitlines(keepends=True)
    paths[1].write_text("".join(lines[:-1]))
    with pytest.raises(ReplicationError, match="1 of 19 trials are missing"):
        merge_shards(merged, paths)
    assert not merged.exists()


def test_merge_refuses_a_doubled_trial(tmp_path):
    merged, paths = _write_shards(tmp_path, 2)
    with open(paths[1], "a") as f:
        f.write(paths[0].read_text().splitlines(keepends=True)[-1])
    with pytest.raises(ReplicationError, match="more than once"):
        merge_shards(merged, paths)


def test_merge_refuses_missing_or_repeated_shards_and_foreign_grids(tmp_path):
    merged, paths = _write_shards(tmp_path, 3)
    with pytest.raises(ReplicationError, match=r"not given: \[2\]"):
        merge_shards(merged, paths[:2])
    with pytest.raises(ReplicationError, match=r"given twice: \[0\]"):
        merge_shards(merged, [paths[0], *paths])
    record = json.loads(manifest_path(paths[2]).read_text())
    record["grid"]["repeats"] = 4
    manifest_path(paths[2]).write_text(json.dumps(record))
    with pytest.raises(ReplicationError, match="different sweep"):
        merge_shards(merged, paths)
    manifest_path(paths[2]).unlink()
    with pytest.raises(ReplicationError, match="manifest"):
        merge_shards(merged, paths)
    assert not merged.exists()
