"""A sweep: the unperturbed network and every trial of a grid, each appended to a
results table as soon as it finishes, so a killed sweep resumes where it stopped.

Seeds. Each trial's random draws are seeded from the seed scope "<model>:<weights
sha256>" and the trial itself (`perturb.trials.trial_seed`), so different weights for the
same architecture get different draws, and any trial re-run alone reproduces its row.
"""

from pathlib import Path

from tqdm import tqdm

from replication import __version__
from replication.data.cache import dataset_id
from replication.files import file_digest
from replication.models.groups import weight_groups
from replication.perturb.trials import canonical_level, trial_seed
from replication.run import engine
from replication.run.grid import BASELINE, Grid, grid_table
from replication.run.table import ResultsLog, RunInfo


def run_info(model_name: str, weights, dataset, prep, semantics: str = "paper", images: int | None = None,
             precision: str = "float32") -> RunInfo:
    """The identity every row of a results table carries.

    Args:
        model_name: the model's name in results tables (`models.registry.describe_model`).
        weights: the HDF5 weight file (hashed).
        dataset: the images (`data.find_dataset`), identified with `prep` (`data.dataset_id`).
        prep: their preprocessing.
        semantics: one of `perturb.SEMANTICS`.
        images: how many images are scored, when fewer than the dataset holds (bad
            images skipped).
        precision: what the model computes in (`precision.set_precision`).
    """
    return RunInfo(
        model=model_name,
        weights_sha256=file_digest(weights, "sha256"),
        dataset_id=dataset_id(dataset, prep),
        images=len(dataset.files) if images is None else images,
        version=__version__,
        semantics=semantics,
        precision=precision,
    )


def seed_scope(run: RunInfo) -> str:
    """What seeds the draws besides the trial: "<model>:<weights sha256>"."""
    return seed_scope_of(run.model, run.weights_sha256)


def seed_scope_of(model_name: str, weights_sha256: str) -> str:
    """The seed scope of a model's name (in results tables) and its weights' sha256."""
    return f"{model_name}:{weights_sha256}"


def run_trials(model, trials, images, labels, log: ResultsLog, *, batch_size=64, memory_gb=4.0, progress=True,
               devices=None, counters=None) -> None:
    """Evaluate the trials not yet in `log` and append one row to it per trial as each ends.

    Args:
        model: the Keras model, with the weights `log.run` names.
        trials: `perturb.Trial`s, `grid.BASELINE` among them for the unperturbed row.
        images, labels: the decoded images (`data.load_arrays`).
        log: the open results table; its run's semantics apply.
        batch_size: images per batch.
        memory_gb: bound on the process's anonymous memory, decoded images held in RAM and
            the engine's cached activations included (`engine.run_layers`).
        progress: a progress bar on stderr.
        devices: device names, one trial stream each (`devices.configure_devices`); default
            every GPU when there are several. Rows are appended as trials finish, so with
            several streams their order differs; their content does not.
        counters: a collections.Counter for the engine's counts (`engine.run_layers`).
    """
    groups = weight_groups(model)
    pending = [t for t in trials if t.key not in log.done]
    scope = seed_scope(log.run)
    count = len(labels)
    with tqdm(total=len(pending), unit="trial", disable=not progress, desc=log.path.name) as bar:

        def record(trial, top1_count, top5_count, seconds):
            seed = None if trial == BASELINE else trial_seed(scope, trial)
            top1, top5 = top1_count / count, top5_count / count
            log.append(trial, seed, top1, top5, seconds)
            bar.set_postfix_str(f"{trial.layer} {trial.perturbation} {canonical_level(trial.level)} top5={top5:.3f}")
            bar.update()

        rest = [t for t in pending if t != BASELINE]
        if pending:
            # All layers in one call: the engine walks them in network order and derives each
            # layer's cached input from the previous one's; the baseline is scored on those
            # caches, so the layers below the first perturbed one run once.
            layers = [group for name, group in groups.items() if any(t.layer == name for t in rest)]
            engine.run_layers(model, images, labels, layers, rest, scope, semantics=log.run.semantics,
                              batch_size=batch_size, memory_gb=memory_gb, on_result=record, devices=devices,
                              baseline=BASELINE if BASELINE in pending else None, counters=counters)


def run_sweep(model, grid: Grid, images, labels, results, run: RunInfo, **options):
    """Run every trial of `grid` not yet in the results table `results` (created or resumed).

    Args:
        model, images, labels: as for `run_trials`.
        grid: what to compute (`grid.Grid`).
        results: the results table's path.
        run: the identity of this run (`run_info`); a table of another run is refused.
        options: batch_size, memory_gb, progress, devices, counters (see `run_trials`).

    Returns:
        The grid's rows of the table as a pandas DataFrame (`table.as_frame`).
    """
    with ResultsLog(results, run) as log:
        run_trials(model, grid.trials(), images, labels, log, **options)
    return grid_table(Path(results), grid)
