"""The recovery table: one row per evaluation of one recovery run, durable as it is written
(`run.table.DurableTable`), so a killed study resumes with nothing lost and no row twice.

A *recovery run* is one damaged network (a sweep trial: layer, perturbation, level,
repeat), one lesion mode and one choice of trained layers, fine-tuned for a fixed number of
steps and scored on the held-out images at fixed steps. Its control is the same layer and
perturbation at level 0 (the undamaged network, bit for bit) with lesion "none", fine-tuned
identically. Every row also carries the study's identity (`StudyInfo`): a table holds one
study, so that curves of different weights, images or training settings never mix.
"""

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from replication.errors import ReplicationError
from replication.perturb.trials import Trial, canonical_level
from replication.run.table import PRECISIONS, DurableTable, parse_csv, read_bytes_complete

LESIONS = ("held", "free")  # what a damaged run's changed weights do in training
CONTROL_LESION = "none"  # the control's lesion: nothing is damaged
TRAIN_LAYERS = ("all", "damaged", "above", "below")  # which layers a run trains

STUDY_COLUMNS = (
    "model", "weights_sha256", "train_id", "train_images", "heldout_id", "heldout_images", "eval_every",
    "batch_size", "learning_rate", "momentum", "weight_decay", "augment", "seed", "precision", "semantics", "version",
)  # fmt: skip
RUN_COLUMNS = ("layer", "perturbation", "level", "repeat", "lesion", "train_layers")
COLUMNS = STUDY_COLUMNS + RUN_COLUMNS + (
    "trial_seed", "step", "images_seen", "top1", "top5", "loss", "seconds", "finished_at",
)  # fmt: skip


@dataclass(frozen=True)
class StudyInfo:
    """The columns that must be identical in every row of one recovery table."""

    model: str
    weights_sha256: str
    train_id: str  # data.dataset_id of the training images
    train_images: int
    heldout_id: str  # data.dataset_id of the held-out images
    heldout_images: int
    eval_every: int
    batch_size: int
    learning_rate: float
    momentum: float
    weight_decay: float
    augment: bool
    seed: int
    precision: str
    semantics: str
    version: str

    def as_row(self) -> dict:
        return {name: repr(value) if isinstance(value, float) else str(value) for name, value in asdict(self).items()}


@dataclass(frozen=True)
class RecoveryRun:
    """One fine-tuning run: `trial`'s damage, `lesion` mode, `train_layers` trained."""

    trial: Trial
    lesion: str  # one of LESIONS, or CONTROL_LESION for the control
    train_layers: str  # one of TRAIN_LAYERS

    def __post_init__(self):
        if self.lesion not in (*LESIONS, CONTROL_LESION):
            raise ValueError(f"lesion must be one of {', '.join(LESIONS)} (or {CONTROL_LESION}), not {self.lesion!r}")
        if self.train_layers not in TRAIN_LAYERS:
            raise ValueError(f"train_layers must be one of {', '.join(TRAIN_LAYERS)}, not {self.train_layers!r}")

    @property
    def is_control(self) -> bool:
        return self.lesion == CONTROL_LESION

    @property
    def key(self) -> tuple:
        return (*self.trial.key, self.lesion, self.train_layers)

    @property
    def label(self) -> str:
        t = self.trial
        return f"{t.layer} {t.perturbation} {canonical_level(t.level)} #{t.repeat} {self.lesion} train={self.train_layers}"

    @classmethod
    def from_row(cls, row: dict) -> "RecoveryRun":
        return cls(Trial.from_row(row), row["lesion"], row["train_layers"])


def control_of(run: RecoveryRun) -> RecoveryRun:
    """The control of `run`: its layer and perturbation at level 0, undamaged, trained alike."""
    return RecoveryRun(Trial(run.trial.layer, run.trial.perturbation, 0.0, 0), CONTROL_LESION, run.train_layers)


def row_key(row: dict) -> tuple:
    return (*RecoveryRun.from_row(row).key, int(row["step"]))


def _check_row(path, number: int, row: dict) -> None:
    try:
        RecoveryRun.from_row(row)
        for name in ("train_images", "heldout_images", "eval_every", "batch_size", "seed"):
            int(row[name])
        step, seen = int(row["step"]), int(row["images_seen"])
        scores = [float(row["top1"]), float(row["top5"])]
        loss = float(row["loss"]) if row["loss"] else 0.0
        float(row["seconds"])
    except ValueError as err:
        raise ReplicationError(path, f"line {number}: {err}") from None
    if step < 0 or seen < 0 or not all(0.0 <= s <= 1.0 for s in scores) or not math.isfinite(loss):
        raise ReplicationError(path, f"line {number}: step, images seen, accuracies or loss out of range")


class RecoveryLog(DurableTable):
    """An open recovery table that evaluations are appended to, one durable row each."""

    columns = COLUMNS
    what = "recovery table"
    writer = "recovery study"

    def __init__(self, path, study: StudyInfo):
        self.study = study
        super().__init__(path)

    def parse(self, data: bytes) -> list[dict]:
        return parse_csv(self.path, data, COLUMNS, _check_row, self.what)

    def check(self, rows: list[dict]) -> None:
        expected = self.study.as_row()
        seen = set()
        for row in rows:
            for name, value in expected.items():
                if row[name] != value:
                    raise ReplicationError(
                        self.path,
                        f"recovery table belongs to a different study ({name} is {row[name]!r} in the table but "
                        f"{value!r} in this run); pass another --results file, or delete this one to start over",
                    )
            key = row_key(row)
            if key in seen:
                raise ReplicationError(self.path, f"evaluation {key} appears twice: written by two runs at once?")
            seen.add(key)

    def key(self, row: dict):
        return row_key(row)

    def steps_done(self, run: RecoveryRun) -> set[int]:
        return {key[-1] for key in self.done if key[:-1] == run.key}

    def append(self, run: RecoveryRun, trial_seed, step: int, images_seen: int, top1: float, top5: float,
               loss: float | None, seconds: float) -> dict:
        """Record one evaluation durably; `loss` is the mean training loss since the previous
        evaluation (None at step 0); returns the row as written."""
        if (*run.key, step) in self.done:
            raise ValueError(f"{self.path}: {run.label} step {step} is already in the table")
        values = (top1, top5, seconds) + (() if loss is None else (loss,))
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError(f"{self.path}: {run.label} step {step}: accuracies, loss and seconds must be finite")
        t = run.trial
        row = {
            **self.study.as_row(),
            "layer": t.layer, "perturbation": t.perturbation, "level": canonical_level(t.level),
            "repeat": str(int(t.repeat)), "lesion": run.lesion, "train_layers": run.train_layers,
            "trial_seed": "" if trial_seed is None else str(int(trial_seed)),
            "step": str(int(step)), "images_seen": str(int(images_seen)),
            "top1": repr(float(top1)), "top5": repr(float(top5)),
            "loss": "" if loss is None else repr(float(loss)),
            "seconds": f"{seconds:.3f}",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }  # fmt: skip
        self._write_row(row)
        return row


def read_recovery(path):
    """The finished rows of a recovery table as a typed pandas DataFrame."""
    import pandas as pd  # here, so that the table module needs no pandas

    rows = parse_csv(path, read_bytes_complete(path, "recovery table"), COLUMNS, _check_row, "recovery table")
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for name in ("repeat", "step", "images_seen", "train_images", "heldout_images", "eval_every", "batch_size"):
        table[name] = table[name].astype(int)
    for name in ("level", "top1", "top5", "seconds"):
        table[name] = table[name].astype(float)
    table["loss"] = pd.to_numeric(table["loss"], errors="coerce")
    return table


__all__ = [
    "COLUMNS", "CONTROL_LESION", "LESIONS", "PRECISIONS", "TRAIN_LAYERS", "RecoveryLog", "RecoveryRun", "StudyInfo",
    "control_of", "read_recovery",
]  # fmt: skip
