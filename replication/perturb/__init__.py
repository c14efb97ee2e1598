"""The paper's perturbations of one layer's weights, and the seeding that makes every trial
reproducible on its own. Needs NumPy only (no Keras, no TensorFlow).

registry   register_perturbation / get_perturbation / perturbation_names, SEMANTICS
trials     Trial, its key and its own seeded generator
knockout   synapse and node knockout (registered as "synapse", "node")
gaussian   Gaussian weight noise (registered as "gaussian")
edits      what a perturbation returns per array: new values, or a Zero (the entries it zeroes)
apply      perturb_arrays, trial_edits, and `perturbed`: apply a trial to a model, restore bit-exactly
"""

from replication.perturb.apply import perturb_arrays, perturbed, trial_edits
from replication.perturb.edits import Zero
from replication.perturb.knockout import knocked_out_units, random_subset_mask
from replication.perturb.registry import (
    SEMANTICS,
    Perturbation,
    get_perturbation,
    perturbation_names,
    register_perturbation,
)
from replication.perturb.trials import Trial, canonical_level, knockout_count, trial_rng, trial_seed

__all__ = [
    "SEMANTICS", "Perturbation", "Trial", "Zero", "canonical_level", "get_perturbation", "knocked_out_units",
    "knockout_count", "perturb_arrays", "perturbation_names", "perturbed",
    "random_subset_mask", "register_perturbation", "trial_edits", "trial_rng", "trial_seed",
]  # fmt: skip
