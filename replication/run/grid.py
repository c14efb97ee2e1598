"""What a sweep is asked to compute: a grid of trials of one perturbation.

Order. Trials run layer by layer in network order (then level, then repeat), because
the engine evaluates all trials of one layer together on the activations entering that
layer, computed once (from the previous layer's, where the graph allows). Level 0 is
the unperturbed network for every layer and perturbation, so it is one shared baseline
trial (layer "-", perturbation "none") rather than a trial per layer.
"""

from dataclasses import asdict, dataclass

from replication.errors import ReplicationError
from replication.perturb.registry import get_perturbation
from replication.perturb.trials import Trial, canonical_level
from replication.run.table import BASELINE_LAYER, BASELINE_PERTURBATION, as_frame, read_rows, row_key

BASELINE = Trial(BASELINE_LAYER, BASELINE_PERTURBATION, 0.0, 0)


@dataclass(frozen=True)
class Grid:
    """What a sweep was asked to compute."""

    layers: tuple[str, ...]  # WeightGroup names in network order
    perturbation: str  # a registered perturbation's name
    levels: tuple[float, ...]
    repeats: int

    def __post_init__(self):
        spec = get_perturbation(self.perturbation)
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "levels", tuple(self.levels))
        if not self.layers or not all(isinstance(n, str) and n for n in self.layers):
            raise ReplicationError(None, f"a sweep needs one or more layer names, not {list(self.layers)}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ReplicationError(None, f"repeats must be a whole number of at least 1, not {self.repeats!r}")
        if not self.levels:
            raise ReplicationError(None, "a sweep needs one or more levels")
        for level in self.levels:
            try:
                spec.check_level(level)
            except (TypeError, ValueError) as err:
                raise ReplicationError(None, str(err)) from None

    def trials(self) -> list[Trial]:
        """The baseline, then layer by layer, level by level, repeat by repeat.

        Level 0 is the unperturbed network for every layer and perturbation, so it is the one
        shared baseline trial rather than a trial per layer.
        """
        trials = [BASELINE]
        levels = sorted({canonical_level(v): float(v) for v in self.levels if float(v) != 0.0}.values())
        for layer in self.layers:
            trials += [Trial(layer, self.perturbation, level, r) for level in levels for r in range(self.repeats)]
        return trials

    def to_json(self) -> dict:
        return {**asdict(self), "layers": list(self.layers), "levels": [canonical_level(v) for v in self.levels]}

    @classmethod
    def from_json(cls, record: dict) -> "Grid":
        levels = tuple(float(v) for v in record["levels"])
        return cls(tuple(record["layers"]), record["perturbation"], levels, int(record["repeats"]))


def grid_table(path, grid: Grid):
    """The rows of the table at `path` that belong to `grid`, as a DataFrame (a table may
    also hold trials of earlier runs with other layers or levels)."""
    wanted = {t.key for t in grid.trials()}
    return as_frame([row for row in read_rows(path) if row_key(row) in wanted])


def check_layers(groups, names, model_name: str) -> tuple[str, ...]:
    """The requested layers (names of `groups`) in network order; unknown names are an error."""
    unknown = [n for n in names if n not in groups]
    if unknown:
        raise ReplicationError(
            None, f"model {model_name} has no layer {', '.join(unknown)}; its layers are {', '.join(groups)}"
        )
    wanted = set(names)
    return tuple(n for n in groups if n in wanted)
