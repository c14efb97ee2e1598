"""A trial, its identity and its own random generator.

Each trial gets its own `numpy.random.Generator`, seeded by `trial_seed` from the seed
scope ("<model>:<weights sha256>") and the trial's (layer, perturbation, level, repeat)
and nothing else, so a trial run alone equals the same trial run in the middle of a
sweep, in any process or shard. The seed does not include the semantics, so the two
semantics see the same random stream (paired comparisons). NumPy only promises identical
Generator streams within a NumPy version, so exact reproduction needs the same release.
"""

import hashlib
import math
from dataclasses import dataclass

import numpy as np


def canonical_level(level: float) -> str:
    """The text of a level that seeds and results tables agree on.

    Levels usually come from arithmetic (0.1 * 3 == 0.30000000000000004); rounding to
    9 decimals first makes 0.3 and 0.1 * 3 the same trial.
    """
    return repr(round(float(level), 9) + 0.0)  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True)
class Trial:
    """One perturbed evaluation: `perturbation` at `level` on `layer`, draw number `repeat`."""

    layer: str  # a WeightGroup name
    perturbation: str  # a registered perturbation's name
    level: float  # proportion p for knockouts, k (multiples of σ) for gaussian
    repeat: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        """The trial's identity in a results table (levels compared as `canonical_level`)."""
        return (self.layer, self.perturbation, canonical_level(self.level), int(self.repeat))

    @classmethod
    def from_row(cls, row: dict) -> "Trial":
        """The trial a results-table row (a dict of strings) records."""
        return cls(row["layer"], row["perturbation"], float(row["level"]), int(row["repeat"]))


def trial_seed(seed_scope: str, trial: Trial) -> int:
    """A 64-bit seed derived from the trial's identity, identical in every process.

    sha256 rather than Python's hash(), which is salted per process for strings.
    """
    layer, perturbation, level, repeat = trial.key
    text = "|".join((seed_scope, layer, perturbation, level, str(repeat)))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def trial_rng(seed_scope: str, trial: Trial) -> np.random.Generator:
    return np.random.default_rng(trial_seed(seed_scope, trial))


def knockout_count(level: float, n: int) -> int:
    """floor(level · n), robust to levels such as 0.57 whose float product is 56.999…"""
    return math.floor(round(level * n, 6))
