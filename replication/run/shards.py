"""Shards: a sweep cut into n parts for a job array, and the merge that joins them.

`--shard i/n` runs a deterministic share of the trials so a job array can fill one
table: the trials, in the grid's order, are cut into n contiguous runs of about equal
estimated cost (the multiply-adds from the perturbed layer to the output, `costs`,
since that is what each trial recomputes). Contiguous runs keep each shard to one or two
layers, so every shard computes few prefixes; cost-balancing keeps early layers, whose
trials recompute almost the whole network, from landing all in one slow shard. Each
shard writes its own table plus a manifest of the whole grid, which `merge_shards`
checks the union against. Needs neither TensorFlow nor pandas.
"""

import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.perturb.trials import Trial
from replication.run.grid import Grid
from replication.run.table import RunInfo, read_rows, row_key, run_mismatch, write_rows


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'i/n' with 0 <= i < n (a job array's task id and size)."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ReplicationError(None, f"--shard expects i/n, e.g. 0/8, got {text!r}") from None
        if not 0 <= index < count:
            raise ReplicationError(None, f"--shard {text}: need 0 <= i < n")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_path(results: Path, shard: Shard) -> Path:
    """Where shard i of n writes its table: beside the merged table, named after it."""
    return results.with_name(f"{results.stem}.shard-{shard.index}-of-{shard.count}{results.suffix}")


def manifest_path(table: Path) -> Path:
    return table.with_name(table.stem + ".grid.json")


def shard_share(trials: list[Trial], costs: dict[str, float], shard: Shard) -> list[Trial]:
    """Shard's contiguous run of `trials`, cut where the cumulative cost crosses k/n.

    A trial belongs to the shard whose cost interval holds its midpoint, so every trial
    is in exactly one shard, and each process computes the same cut.
    """
    weights = [costs.get(t.layer, 0.0) for t in trials]
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(trials), float(len(trials))
    share, done = [], 0.0
    for trial, weight in zip(trials, weights):
        owner = min(int(shard.count * (done + weight / 2) / total), shard.count - 1)
        if owner == shard.index:
            share.append(trial)
        done += weight
    return share


def write_manifest(table: Path, run: RunInfo, grid: Grid, shard: Shard, trials=None) -> None:
    """Write the shard's grid manifest beside its table; `trials`, the shard's share, are
    listed too, so that progress and missing trials can be told without the model."""
    record = {"run": asdict(run), "grid": grid.to_json(), "shard": {"index": shard.index, "count": shard.count}}
    if trials is not None:
        record["trials"] = [list(t.key) for t in trials]
    with atomic_output(manifest_path(table)) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


def read_manifest(table: Path) -> tuple[RunInfo, Grid, Shard]:
    path = manifest_path(table)
    try:
        record = json.loads(path.read_text())
        return RunInfo(**record["run"]), Grid.from_json(record["grid"]), Shard(**record["shard"])
    except FileNotFoundError:
        raise ReplicationError(path, f"missing: the shard run writes this grid manifest beside {table.name}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ReplicationError(path, f"damaged or not a shard manifest ({err}); run that shard's command again "
                               "to rewrite it (its finished trials are kept)") from None


def read_share(table: Path) -> list[tuple] | None:
    """The keys of the trials shard `table` was given (its manifest's list), or None when
    the shard has not started (no manifest) or its manifest lists none."""
    try:
        record = json.loads(manifest_path(table).read_text())
    except FileNotFoundError:
        return None
    except ValueError as err:
        raise ReplicationError(manifest_path(table), f"not a shard manifest ({err})") from None
    trials = record.get("trials")
    return None if trials is None else [tuple(key) for key in trials]


def _listed(keys, limit=5) -> str:
    keys = list(keys)
    shown = ", ".join("/".join(str(part) for part in k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def merge_shards(out, shard_tables) -> int:
    """Write the checked union of the shard tables of one sweep to `out`.

    Every shard table comes with the grid manifest its run wrote (`*.grid.json`). The
    merge holds only if all manifests describe the same run and grid, shards 0..n-1 are
    each given once, every row belongs to that run and grid, and every trial of the grid
    is present exactly once. The merged table lists the trials in the sweep's order and
    is written atomically, so a refused or failed merge leaves `out` as it was.

    Returns:
        The number of trials written.
    """
    out = Path(out)
    shard_tables = [Path(p) for p in shard_tables]
    if not shard_tables:
        raise ReplicationError(None, "no shard tables given")
    if any(p.resolve() == out.resolve() for p in shard_tables):
        raise ReplicationError(out, "the merged table cannot also be one of the shards")

    manifests = [read_manifest(p) for p in shard_tables]
    run, grid, first = manifests[0]
    for path, (other_run, other_grid, shard) in zip(shard_tables, manifests):
        if (other_run, other_grid, shard.count) != (run, grid, first.count):
            raise ReplicationError(
                path, f"belongs to a different sweep than {shard_tables[0]} (run, grid or shard count differ)"
            )
    indices = Counter(shard.index for _, _, shard in manifests)
    doubled = sorted(i for i, n in indices.items() if n > 1)
    absent = sorted(set(range(first.count)) - set(indices))
    if doubled or absent:
        raise ReplicationError(
            None, f"shards of {first.count}: " + "; ".join(
                part for part in (doubled and f"given twice: {doubled}", absent and f"not given: {absent}") if part)
        )

    order = {t.key: i for i, t in enumerate(grid.trials())}
    rows, count = [], Counter()
    for path in shard_tables:
        for row in read_rows(path):
            problem = run_mismatch(row, run)
            if problem:
                raise ReplicationError(path, f"row {row_key(row)} is from another run: {problem}")
            if row_key(row) not in order:
                raise ReplicationError(path, f"trial {_listed([row_key(row)])} is not in the sweep's grid")
            count[row_key(row)] += 1
            rows.append(row)
    doubled = [k for k, n in count.items() if n > 1]
    if doubled:
        raise ReplicationError(None, f"{len(doubled)} trials appear more than once: {_listed(doubled)}")
    absent = [k for k in order if k not in count]
    if absent:
        raise ReplicationError(
            None, f"{len(absent)} of {len(order)} trials are missing (unfinished shards?): {_listed(absent)}"
        )

    _check_nothing_dropped(out, rows)
    write_rows(out, sorted(rows, key=lambda row: order[row_key(row)]))
    return len(rows)


def _check_nothing_dropped(out: Path, rows: list[dict]) -> None:
    """Refuse to replace an existing `out` that holds a finished trial the merge would lose:
    one not in the shards, or in them with other results. Merging the same shards again
    is allowed (every row of `out` is then in `rows`, identical)."""
    if not out.exists():
        return
    merged = {row_key(row): row for row in rows}
    same = ("seed", "top1", "top5", *RunInfo.__dataclass_fields__)
    lost = [row for row in read_rows(out)
            if row_key(row) not in merged or any(row[c] != merged[row_key(row)][c] for c in same)]
    if lost:
        raise ReplicationError(
            out, f"already holds {len(lost)} finished trial(s) that these shards do not, or with other results "
            f"(e.g. {_listed([row_key(lost[0])])}); merge into a new file, or move this one away first",
        )
