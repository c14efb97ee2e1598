"""The perturbation registry: every perturbation the project knows, by name.

A perturbation is one function and one registration:

    @register_perturbation("sign_flip", title="Sign flips", level_label="proportion of weights flipped",
                           max_level=1.0)
    def sign_flip(originals, level, rng, semantics):
        ...  # return perturbed copies of `originals` (or `edits.Zero`s), drawing only from `rng`

and from then on sweeps, results tables, the figure code and the command line accept it.
The function's contract (checked for every registered perturbation by
tests/test_perturbation_contract.py):

- `originals` is one list per member Keras layer of the weight group, [W] or [W, b]
  (Keras layout: the units are the last axis of W and the entries of b); the function
  returns lists in the same layout, each entry the array's new values (same shape and
  dtype) or an `edits.Zero` (which entries become 0), and leaves `originals` untouched;
- every random draw comes from `rng`, the trial's own generator (`trials.trial_rng`), so a
  trial is reproducible alone;
- level 0 returns the weights bit-for-bit unchanged;
- the group's members are perturbed as one layer (a split convolution is one layer);
- `semantics` is one of `SEMANTICS`; a perturbation that does not depend on it ignores it;
- a perturbation that needs to know which layer it acts on declares a keyword parameter
  `group`: it then receives the `models.groups.WeightGroup` of the trial (its name, its
  members, and `flatten_hwc`, the spatial layout a dense layer's input rows were flattened
  from), or None when called on bare arrays. The mechanism passes it to every perturbation
  that asks and names none of them.
"""

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

from replication.errors import ReplicationError
from replication.registry import Registry

# How a perturbation is read: as the paper describes it, or as the authors' code did it.
SEMANTICS = ("paper", "authors_code")

# The built-in perturbations register themselves when their modules are imported.
_REGISTRY = Registry("perturbation", ("replication.perturb.knockout", "replication.perturb.gaussian"))


@dataclass(frozen=True)
class Perturbation:
    """A registered perturbation of one layer's weights."""

    name: str  # what results tables and --perturbation say: "synapse"
    apply: Callable  # (originals, level, rng, semantics) -> per array new values or a Zero (`edits`)
    title: str  # for figure titles and reports: "Synapse knockout"
    level_label: str  # what the level means, for axis labels
    max_level: float  # levels lie in [0, max_level]; math.inf for unbounded
    takes_group: bool = False  # whether `apply` declares the keyword parameter `group`

    def edits(self, originals, level: float, rng, semantics: str, group=None):
        """Call the registered function, with the weight group when it asks for it."""
        if self.takes_group:
            return self.apply(originals, level, rng, semantics, group=group)
        return self.apply(originals, level, rng, semantics)

    def check_level(self, level) -> float:
        """`level` as a float, or ValueError when it is not a finite level in range."""
        value = float(level)
        if not math.isfinite(value) or not 0.0 <= value <= self.max_level:
            allowed = f"[0, {self.max_level:g}]" if math.isfinite(self.max_level) else "[0, ∞) and finite"
            raise ValueError(f"{self.name} levels must lie in {allowed}, not {level}")
        return value


def register_perturbation(name: str, *, title: str, level_label: str, max_level: float = math.inf):
    """Decorator: register `function(originals, level, rng, semantics[, group])` under `name`.

    Args:
        name: the perturbation's name in results tables, grids and on the command line.
        title: how figures and reports name it.
        level_label: what a level means (an axis label).
        max_level: levels are checked to lie in [0, max_level] (1 for proportions).

    Returns:
        The decorator, which returns the function unchanged.
    """
    if not name.isidentifier():
        raise ValueError(f"a perturbation name must be an identifier, not {name!r}")

    def register(function):
        takes_group = "group" in inspect.signature(function).parameters
        _REGISTRY.add(name, Perturbation(name, function, title, level_label, float(max_level), takes_group),
                      key=function)
        return function

    return register


def perturbation_names() -> tuple[str, ...]:
    """The registered perturbations, built-in ones first, in registration order."""
    return _REGISTRY.names()


def get_perturbation(name: str) -> Perturbation:
    """The registered perturbation `name`; ReplicationError naming the choices otherwise."""
    found = _REGISTRY.get(name)
    if found is None:
        raise ReplicationError(None, f"unknown perturbation {name!r}; registered: {', '.join(_REGISTRY.names())}")
    return found


def check_semantics(semantics: str) -> None:
    if semantics not in SEMANTICS:
        raise ValueError(f"unknown semantics {semantics!r}; expected one of {SEMANTICS}")
