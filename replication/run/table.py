"""The results table: one CSV row per finished trial, written so that a sweep can be
killed at any moment and resumed without losing or recomputing a finished trial.

Every row is appended with a single write, then flushed and fsynced before the next
trial starts. A kill can therefore only leave one incomplete line at the very end (no
trailing newline); opening the table for writing cuts that line off, which costs one
trial's recomputation and nothing else. A complete row that does not parse (damaged on
disk) is moved to TABLE.damaged with a warning when the table is opened for writing, and
its trial runs again; a file whose header is not this table's is refused. A table belongs to one run: the model, weights, images,
package version and perturbation semantics must be the same in every row, so that
results of different experiments never mix in one figure.
"""

import csv
import io
import math
import os
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from replication.errors import ReplicationError
from replication.files import atomic_output, try_lock
from replication.perturb.trials import Trial, canonical_level

COLUMNS = (
    "model", "weights_sha256", "dataset_id", "images", "layer", "perturbation", "level",
    "repeat", "seed", "top1", "top5", "seconds", "finished_at", "version", "semantics", "precision",
)

# The arithmetic a run computes in (run.precision): part of a table's identity.
PRECISIONS = ("float32", "tf32", "bfloat16", "float16")

# The unperturbed network is one row shared by every layer and perturbation.
BASELINE_LAYER = "-"
BASELINE_PERTURBATION = "none"


@dataclass(frozen=True)
class RunInfo:
    """The columns that must be identical in every row of one table."""

    model: str
    weights_sha256: str
    dataset_id: str
    images: int
    version: str
    semantics: str
    precision: str = "float32"  # one of PRECISIONS


def row_key(row: dict) -> tuple[str, str, str, int]:
    """The key of the trial a row records (`Trial.key`)."""
    return Trial.from_row(row).key


def read_rows(path) -> list[dict]:
    """The finished rows of a table, as dicts of strings, without modifying the file.

    An incomplete last line (a kill in mid-write) is ignored; a wrong header or a
    malformed complete row raises ReplicationError naming the file.
    """
    path = Path(path)
    return _parse(path, read_bytes_complete(path, "results table"))


def read_bytes_complete(path, what: str) -> bytes:
    """A table's complete lines (an incomplete last line, a kill in mid-write, left out)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReplicationError(path, f"cannot read {what}: {err.strerror}") from None
    complete = data[: data.rfind(b"\n") + 1]
    if data and not complete:
        raise ReplicationError(path, f"not a {what}: it has no complete header line")
    return complete


def _parse(path: Path, data: bytes) -> list[dict]:
    return parse_csv(path, data, COLUMNS, _check_row, "results table")


def parse_csv(path: Path, data: bytes, columns: tuple[str, ...], check_row, what: str) -> list[dict]:
    """The rows of complete CSV lines `data` as dicts of strings, the header checked against
    `columns` and each row by `check_row(path, line_number, row)`; `what` names the kind of
    table in errors."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ReplicationError(path, f"{what} is not UTF-8 text: not a {what} CSV, or damaged") from None
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return []
    if tuple(lines[0]) != columns:
        raise ReplicationError(
            path,
            f"not a {what} of this version: header is {','.join(lines[0])!r}, expected {','.join(columns)!r}",
        )
    rows = []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(columns):
            raise ReplicationError(path, f"line {number} has {len(fields)} fields, expected {len(columns)}")
        row = dict(zip(columns, fields))
        check_row(path, number, row)
        rows.append(row)
    return rows


def _check_row(path: Path, number: int, row: dict) -> None:
    try:
        images = int(row["images"])
        int(row["repeat"])
        level = float(row["level"])
        scores = [float(row["top1"]), float(row["top5"])]
        float(row["seconds"])
    except ValueError as err:
        raise ReplicationError(path, f"line {number}: {err}") from None
    if images <= 0 or not math.isfinite(level) or not all(0.0 <= s <= 1.0 for s in scores):
        raise ReplicationError(path, f"line {number}: images, level or accuracies out of range")


def run_mismatch(row: dict, run: RunInfo) -> str | None:
    """Which run column of `row` differs from `run`, described, or None."""
    for name, expected in asdict(run).items():
        if row[name] != str(expected):
            return f"{name} is {row[name]!r} in the table but {str(expected)!r} in this run"
    return None


def check_rows(path, rows: list[dict], run: RunInfo) -> None:
    """Refuse a table written by a different run, or holding a trial twice."""
    seen = set()
    for row in rows:
        problem = run_mismatch(row, run)
        if problem:
            raise ReplicationError(
                path,
                f"results table belongs to a different run ({problem}); "
                "pass another --results file, or delete this one to start over",
            )
        key = row_key(row)
        if key in seen:
            raise ReplicationError(path, f"trial {key} appears twice: was the table written by two runs at once?")
        seen.add(key)


class DurableTable:
    """An open append-only CSV table whose rows are each one durable write (see the module
    notes): the base of the sweeps' results table and of the recovery table.

    Holds an exclusive lock on the file while open, so two runs can never interleave rows
    in one table (shards of a job array each write their own file). A subclass says what
    its table is: `columns`, `what` (its name in messages), `parse(data)` (the rows of
    complete lines, checked), `check(rows)` (that they belong to this run) and `key(row)`.
    """

    columns: tuple[str, ...] = ()
    what = "table"
    writer = "run"  # what writes it, in the message when another one holds it
    option = "--results"  # the option that names the file, in the messages

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")  # noqa: SIM115 -- kept open for the whole run
        try:
            try_lock(self._file, self.path, f"another {self.writer} is writing this {self.what} right now")
        except ReplicationError:
            self._file.close()
            raise
        try:
            self.rows = self._recover()
        except BaseException:
            self.close()
            raise
        self.done = {self.key(row) for row in self.rows}

    def parse(self, data: bytes) -> list[dict]:
        raise NotImplementedError

    def check(self, rows: list[dict]) -> None:
        raise NotImplementedError

    def key(self, row: dict):
        raise NotImplementedError

    def _recover(self) -> list[dict]:
        """The finished rows, after deciding that the file is a table of this run; only
        then is a torn last line cut off, so a file that is not such a table is left as it was."""
        self._file.seek(0)
        data = self._file.read()
        complete = data.rfind(b"\n") + 1
        if complete == 0 and data and not _csv_line(self.columns).startswith(data):
            raise ReplicationError(self.path, f"not a {self.what} (no header line); pass another {self.option} file")
        data, complete = self._set_aside_damaged(data, complete)
        rows = self.parse(data[:complete])
        self.check(rows)
        if complete < len(data):
            # Only the last append can be incomplete (see the module docstring).
            print(f"warning: {self.path}: dropped an incomplete last line left by an interrupted run", file=sys.stderr)
            self._file.truncate(complete)
        if complete == 0:
            self._append(self.columns)
        return rows

    def _set_aside_damaged(self, data: bytes, complete: int) -> tuple[bytes, int]:
        """Move complete rows that do not parse (a disk error, an edit gone wrong) to
        TABLE.damaged, with one line saying so, and rewrite the table without them: their
        trials run again, every other row is kept. A table whose header is wrong is not
        this kind of table at all, and is left to `parse` to refuse."""
        lines = data[:complete].splitlines(keepends=True)
        if len(lines) < 2:
            return data, complete
        try:
            self.parse(lines[0])
        except ReplicationError:
            return data, complete
        good, damaged = [lines[0]], []
        for line in lines[1:]:
            try:
                self.parse(lines[0] + line)
            except ReplicationError:
                damaged.append(line)
            else:
                good.append(line)
        if not damaged:
            return data, complete
        aside = self.path.with_name(self.path.name + ".damaged")
        with open(aside, "ab") as f:  # appended: an earlier repair's lines stay
            f.write(b"".join(damaged))
            f.flush()
            os.fsync(f.fileno())
        kept = b"".join(good) + data[complete:]
        with atomic_output(self.path) as tmp:
            with open(tmp, "wb") as f:
                f.write(kept)
                f.flush()
                os.fsync(f.fileno())
        # The table is a new file now: lock it instead of the old one.
        self._file.close()
        self._file = open(self.path, "a+b")  # noqa: SIM115 -- kept open for the whole run
        try_lock(self._file, self.path, f"another {self.writer} is writing this {self.what} right now")
        print(f"warning: {self.path}: {len(damaged)} damaged row(s) that do not parse moved to {aside.name}; "
              "their work is done again", file=sys.stderr)
        return kept, len(kept) - (len(data) - complete)

    def _write_row(self, row: dict) -> None:
        """Append `row` (every column, as strings) durably and remember it."""
        self._append([row[name] for name in self.columns])
        self.rows.append(row)
        self.done.add(self.key(row))

    def _append(self, fields) -> None:
        self._file.write(_csv_line(fields))  # one write: a kill tears at most this line
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()  # also releases the lock

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ResultsLog(DurableTable):
    """An open results table that finished trials are appended to, one durable row each."""

    columns = COLUMNS
    what = "results table"
    writer = "sweep"

    def __init__(self, path, run: RunInfo):
        self.run = run
        super().__init__(path)

    def parse(self, data: bytes) -> list[dict]:
        return _parse(self.path, data)

    def check(self, rows: list[dict]) -> None:
        check_rows(self.path, rows, self.run)

    def key(self, row: dict):
        return row_key(row)

    def append(self, trial: Trial, seed, top1, top5, seconds) -> dict:
        """Record one finished trial durably; returns the row as written."""
        if trial.key in self.done:
            raise ValueError(f"{self.path}: trial {trial.key} is already in the table")
        if not all(math.isfinite(float(v)) for v in (trial.level, top1, top5, seconds)):
            raise ValueError(f"{self.path}: trial {trial.key}: level, accuracies and seconds must be finite")
        row = {
            **{name: str(value) for name, value in asdict(self.run).items()},
            "layer": trial.layer,
            "perturbation": trial.perturbation,
            "level": canonical_level(trial.level),
            "repeat": str(int(trial.repeat)),
            "seed": "" if seed is None else str(int(seed)),
            "top1": repr(float(top1)),
            "top5": repr(float(top5)),
            "seconds": f"{seconds:.3f}",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._write_row(row)
        return row


def _csv_line(fields) -> bytes:
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(fields)
    return line.getvalue().encode("utf-8")


def write_rows(path, rows: list[dict]) -> None:
    """Write a complete table at once (merging shards); nothing is left if it fails."""
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([row[name] for name in COLUMNS])
        f.flush()
        os.fsync(f.fileno())


def read_table(*paths):
    """The finished rows of one or more results tables as one pandas DataFrame.

    Args:
        paths: results tables of one experiment (Figure 1's and Figure 2's, say).

    Returns:
        A DataFrame with the table's columns, numeric where they are numbers. Each table
        holds its own unperturbed baseline row; identical baselines are kept once, so the
        baseline is not counted as several repeats.
    """
    rows, baselines = [], set()
    for path in paths:
        for row in read_rows(path):
            if row["layer"] == BASELINE_LAYER:
                same = tuple(row[c] for c in ("model", "weights_sha256", "dataset_id", "images", "top1", "top5"))
                if same in baselines:
                    continue
                baselines.add(same)
            rows.append(row)
    return as_frame(rows)


def as_frame(rows: list[dict]):
    """Rows of dicts of strings (as `read_rows` returns them) as a typed DataFrame."""
    import pandas as pd  # here, so that merging shards needs no pandas

    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for name in ("images", "repeat"):
        table[name] = table[name].astype(int)
    for name in ("level", "top1", "top5", "seconds"):
        table[name] = table[name].astype(float)
    return table
