"""Combine the shard tables of one sweep into one results table, or refuse.

    python -m replication.merge OUT.csv SHARD.csv [SHARD.csv ...]

Every shard table comes with the grid manifest its run wrote (`*.grid.json`). The
merge holds only if all manifests describe the same run and grid, shards 0..n-1 are
each given once, every row belongs to that run and grid, and every trial of the grid
is present exactly once. The merged table lists the trials in the sweep's order and
is written atomically, so a refused or failed merge leaves OUT as it was.
"""

import argparse
import sys
from collections import Counter
from pathlib import Path

from replication.errors import ReplicationError, run_cli
from replication.results import read_rows, row_key, run_mismatch, write_rows
from replication.sweep import key, read_manifest


def _listed(keys, limit=5) -> str:
    keys = list(keys)
    shown = ", ".join("/".join(str(part) for part in k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def merge_shards(out, shard_tables) -> int:
    """Write the checked union of `shard_tables` to `out`; returns the number of trials."""
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

    order = {key(t): i for i, t in enumerate(grid.trials())}
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

    write_rows(out, sorted(rows, key=lambda row: order[row_key(row)]))
    return len(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replication.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the merged results table to write")
    parser.add_argument("shards", type=Path, nargs="+", help="the shard tables (results.shard-I-of-N.csv)")
    args = parser.parse_args(argv)
    trials = merge_shards(args.out, args.shards)
    print(f"merged {trials} trials from {len(args.shards)} shards into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
