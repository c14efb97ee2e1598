"""How far a sweep has got, read from its tables (with or without Slurm).

For a results table, its shard tables (`<stem>.shard-i-of-n.csv`, each with the grid
manifest that lists its trials) say per shard how many trials are done of how many, when
the newest row was written, and, from the mean time per trial so far, how long the rest
should take. Where `squeue` exists, the jobs of the last `--slurm` submission are listed
with their states (jobs that have ended are no longer in the queue). Needs neither
TensorFlow nor pandas.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from replication.errors import ReplicationError
from replication.run.shards import Shard, read_share, shard_path
from replication.run.slurm import job_states, read_plan
from replication.run.table import read_rows, row_key


@dataclass(frozen=True)
class ShardProgress:
    """One shard's progress (or the whole table's, `shard` None)."""

    table: Path
    shard: Shard | None
    done: int  # trials finished (of this shard's share, when known)
    total: int | None  # trials of the share; None when the shard has not started
    newest: str | None  # finished_at of the newest row (UTC, ISO 8601)
    seconds_left: float | None  # estimated from the mean seconds per finished trial

    @property
    def complete(self) -> bool:
        return self.total is not None and self.done >= self.total


@dataclass(frozen=True)
class SweepStatus:
    """What `sweep_status` found."""

    results: Path
    merged: ShardProgress | None  # the results table itself, when it exists
    shards: tuple[ShardProgress, ...]
    jobs: dict[str, str] | None  # job id -> state of the last submission's queued jobs; None: squeue absent or silent
    submission: dict | None  # the last --slurm submission (run.slurm.read_plan)

    @property
    def short(self) -> list[int]:
        """The shards that still miss trials."""
        return [p.shard.index for p in self.shards if not p.complete]


def _progress(table: Path, shard: Shard | None) -> ShardProgress:
    rows = read_rows(table) if table.exists() else []
    share = read_share(table) if shard is not None else None
    if share is not None:
        wanted = set(share)
        rows = [row for row in rows if row_key(row) in wanted]
    newest = max((row["finished_at"] for row in rows), default=None)
    total = len(share) if share is not None else (len(rows) if shard is None else None)
    left = None
    if rows and total is not None:
        left = sum(float(row["seconds"]) for row in rows) / len(rows) * max(total - len(rows), 0)
    return ShardProgress(table, shard, len(rows), total, newest, left)


def shard_counts(results: Path) -> list[int]:
    """The shard counts n of the shard tables beside `results` (usually one)."""
    pattern = re.compile(re.escape(results.stem) + r"\.shard-(\d+)-of-(\d+)" + re.escape(results.suffix) + "$")
    found = {int(m.group(2)) for p in results.parent.glob(f"{results.stem}.shard-*") if (m := pattern.match(p.name))}
    return sorted(found)


def sweep_status(results) -> SweepStatus:
    """The progress of the sweep into `results`: per shard, trials done / total, the
    newest row's time and the estimated time left; the jobs' states where squeue exists.

    Returns:
        A `SweepStatus`. Raises ReplicationError when neither the table nor any shard of
        it nor a submission record exists.
    """
    results = Path(results)
    plan = read_plan(results)
    submission = plan[-1] if plan else None
    counts = set(shard_counts(results)) | ({submission["shards"]} if submission else set())
    if not counts and not results.exists():
        raise ReplicationError(results, "no such results table, and no shard tables or Slurm submission beside it")
    shards = tuple(_progress(shard_path(results, Shard(i, n)), Shard(i, n)) for n in sorted(counts) for i in range(n))
    merged = _progress(results, None) if results.exists() else None
    jobs = None
    if submission:
        jobs = job_states([submission.get("array_job"), submission.get("merge_job")])
    return SweepStatus(results, merged, shards, jobs, submission)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def status_text(status: SweepStatus) -> str:
    """The status as a table of lines, as `python -m replication.status` prints it."""
    lines = [f"{status.results}"]
    if status.merged is not None:
        lines.append(f"  merged table: {status.merged.done} trials, newest {status.merged.newest or '-'}")
    if status.shards:
        lines.append(f"  {'shard':>7}  {'done/total':>11}  {'newest row (UTC)':<25}  left (est.)")
        for p in status.shards:
            total = "?" if p.total is None else str(p.total)
            left = "done" if p.complete else ("not started" if p.total is None else _duration(p.seconds_left))
            lines.append(f"  {str(p.shard):>7}  {f'{p.done}/{total}':>11}  {p.newest or '-':<25}  {left}")
        known = [p for p in status.shards if p.total is not None]
        done, total = sum(p.done for p in known), sum(p.total for p in known)
        estimates = [p.seconds_left for p in status.shards if not p.complete]
        left = _duration(max(estimates)) if estimates and None not in estimates else "?"
        lines.append(f"  {done} of {total} trials of the started shards done; short: "
                     f"{', '.join(map(str, status.short)) or 'none'}; time left if the shards run side by side: "
                     f"{left if status.short else '0'}")
    if status.submission is not None:
        s = status.submission
        lines.append(f"  last --slurm submission {s['submitted_at']}: array job {s.get('array_job') or '-'}, "
                     f"merge job {s.get('merge_job') or '-'}")
        if status.jobs is None:
            lines.append("  (no squeue here, or no answer from it: job states unknown)")
        elif not status.jobs:
            lines.append("  none of its jobs is queued or running")
        else:
            lines.extend(f"  job {job}: {state}" for job, state in sorted(status.jobs.items()))
    return "\n".join(lines)
