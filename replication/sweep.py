"""A sweep: the unperturbed network once, then every (layer, level, repeat) trial of one
perturbation kind, appended to a results table as each trial finishes.

Order. Trials run layer by layer in network order (then level, then repeat), because
the engine evaluates all trials of one layer together on the activations entering that
layer, computed once (from the previous layer's, where the graph allows) and reused by
every trial.

Seeds. Each trial's random draws are seeded from `model_id` = "<model>:<weights
sha256>" and the trial itself (`perturb.trial_seed`), so different weights for the same
architecture get different draws, and any trial re-run alone reproduces its row.

Shards. `--shard i/n` runs a deterministic share of the trials so a job array can
fill one table: the trials, in the order above, are cut into n contiguous runs of about
equal estimated cost (the multiply-adds from the perturbed layer to the output, since
that is what each trial recomputes). Contiguous runs keep each shard to one or two
layers, so every shard computes few prefixes; cost-balancing keeps early layers, whose
trials recompute almost the whole network, from landing all in one slow shard. Each
shard writes its own table plus a manifest of the whole grid, which `replication.merge`
checks the union against.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from replication import engine
from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.models import WeightGroup
from replication.perturb import KINDS, Trial, trial_seed
from replication.results import (
    BASELINE_KIND, BASELINE_LAYER, ResultsLog, RunInfo, as_frame, level_text, read_rows, row_key, trial_key,
)

BASELINE = Trial(BASELINE_LAYER, BASELINE_KIND, 0.0, 0)


@dataclass(frozen=True)
class Grid:
    """What a sweep was asked to compute."""

    layers: tuple[str, ...]  # WeightGroup names in network order
    kind: str  # one of perturb.KINDS
    levels: tuple[float, ...]
    repeats: int

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ReplicationError(None, f"unknown perturbation {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.repeats < 1:
            raise ReplicationError(None, f"repeats must be at least 1, not {self.repeats}")
        top = 1.0 if self.kind in ("synapse", "node") else float("inf")
        bad = [v for v in self.levels if not 0.0 <= v <= top]
        if bad:
            allowed = "proportions in [0, 1]" if top == 1.0 else "multiples k >= 0 of the weights' SD"
            raise ReplicationError(None, f"{self.kind} levels must be {allowed}, not {', '.join(map(str, bad))}")

    def trials(self) -> list[Trial]:
        """The baseline, then layer by layer, level by level, repeat by repeat.

        Level 0 is the unperturbed network for every layer and kind, so it is the one
        shared baseline trial rather than a trial per layer.
        """
        trials = [BASELINE]
        levels = sorted({level_text(v): float(v) for v in self.levels if float(v) != 0.0}.values())
        for layer in self.layers:
            trials += [Trial(layer, self.kind, level, r) for level in levels for r in range(self.repeats)]
        return trials

    def to_json(self) -> dict:
        return {**asdict(self), "levels": [level_text(v) for v in self.levels]}

    @classmethod
    def from_json(cls, record: dict) -> "Grid":
        levels = tuple(float(v) for v in record["levels"])
        return cls(tuple(record["layers"]), record["kind"], levels, int(record["repeats"]))


def key(trial: Trial):
    """The trial's identity in a results table."""
    return trial_key(trial.layer, trial.kind, trial.level, trial.repeat)


def model_id(run: RunInfo) -> str:
    return f"{run.model}:{run.weights_sha256}"


def grid_table(path, grid: Grid):
    """The rows of the table at `path` that belong to `grid`, as a DataFrame (a table may
    also hold trials of earlier runs with other layers or levels)."""
    wanted = {key(t) for t in grid.trials()}
    return as_frame([row for row in read_rows(path) if row_key(row) in wanted])


# --- shards ------------------------------------------------------------------------


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


def layer_costs(model, groups: dict[str, WeightGroup]) -> dict[str, float]:
    """Multiply-adds per image from each layer to the output (the work one trial redoes).

    An estimate for balancing shards, not a benchmark: weight layers after the first
    member of the group in the model's (topological) layer order are counted.
    """
    macs = []
    for layer in model.layers:
        kernels = [w for w in layer.weights if len(w.shape) >= 2]  # biases add no products
        if not kernels:
            continue
        spatial = int(np.prod(layer.output.shape[1:-1])) if len(layer.output.shape) > 2 else 1
        macs.append((layer.name, sum(int(np.prod(k.shape)) for k in kernels) * spatial))
    position = {name: i for i, (name, _) in enumerate(macs)}
    costs = {}
    for group in groups.values():
        start = min(position.get(m, len(macs)) for m in group.members)
        costs[group.name] = float(sum(m for _, m in macs[start:]))
    costs[BASELINE_LAYER] = float(sum(m for _, m in macs))
    return costs


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


def write_manifest(table: Path, run: RunInfo, grid: Grid, shard: Shard) -> None:
    record = {"run": asdict(run), "grid": grid.to_json(), "shard": {"index": shard.index, "count": shard.count}}
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
        raise ReplicationError(path, f"not a shard manifest ({err})") from None


# --- running -----------------------------------------------------------------------


def run_trials(model, groups, trials, images, labels, log: ResultsLog, *, semantics="paper", batch_size=64,
               memory_gb=4.0, progress=True) -> None:
    """Evaluate `trials` (any not yet in `log`) and append one row to `log` per trial.

    groups: the model's WeightGroups in network order; memory_gb bounds the decoded images
    held in RAM plus the engine's cached activations.
    """
    pending = [t for t in trials if key(t) not in log.done]
    seed_of = model_id(log.run)
    count = len(labels)
    with tqdm(total=len(pending), unit="trial", disable=not progress, desc=log.path.name) as bar:

        def record(trial, top1_count, top5_count, seconds):
            seed = None if trial == BASELINE else trial_seed(seed_of, trial)
            top1, top5 = top1_count / count, top5_count / count
            log.append(trial.layer, trial.kind, trial.level, trial.repeat, seed, top1, top5, seconds)
            bar.set_postfix_str(f"{trial.layer} {trial.kind} {level_text(trial.level)} top5={top5:.3f}")
            bar.update()

        if BASELINE in pending:
            record(BASELINE, *evaluate_unperturbed(model, images, labels, batch_size))
        rest = [t for t in pending if t != BASELINE]
        if rest:
            # All layers in one call: the engine walks them in network order and derives each
            # layer's cached input from the previous one's.
            layers = [group for name, group in groups.items() if any(t.layer == name for t in rest)]
            engine.run_layers(model, images, labels, layers, rest, seed_of, semantics=semantics,
                              batch_size=batch_size, memory_gb=memory_gb, on_result=record)


def evaluate_unperturbed(model, images, labels, batch_size) -> tuple[int, int, float]:
    """(top1_count, top5_count, seconds) of the unperturbed model, scored and batched as
    every trial is (`engine.count_unperturbed`)."""
    start = time.perf_counter()
    top1, top5 = engine.count_unperturbed(model, images, labels, batch_size)
    return top1, top5, time.perf_counter() - start


def check_layers(groups: dict[str, WeightGroup], names, model_label: str) -> tuple[str, ...]:
    """The requested layers in network order; unknown names are an error."""
    unknown = [n for n in names if n not in groups]
    if unknown:
        raise ReplicationError(
            None, f"model {model_label} has no layer {', '.join(unknown)}; its layers are {', '.join(groups)}"
        )
    wanted = set(names)
    return tuple(n for n in groups if n in wanted)
