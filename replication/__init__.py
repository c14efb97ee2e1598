"""Cheney, Schrimpf & Kreiman (2017), "On the Robustness of Convolutional Neural Networks to
Internal Architecture and Weight Perturbations" (arXiv 1703.08245), replicated in Keras.

The public API, in the order data flows (files → weights → model → trials → results
table → statistics → figures):

    import replication as rp
    rp.run_experiment(1, "alexnet", "bvlc_alexnet.h5", "ILSVRC2012_val")  # Figure 1, files to figure
    rp.download("alexnet", to="caffe_weights")                      # a public file, resumed and checked
    rp.convert_caffemodel("bvlc_alexnet.caffemodel", "bvlc_alexnet.h5")        # Caffe file -> HDF5
    model = rp.create_model("alexnet", "bvlc_alexnet.h5")           # registered model + weights
    rp.weight_groups(model)                                         # its layers: conv_1 … dense_3
    with rp.perturbed(model, group, rp.Trial("conv_2", "node", 0.5, 0), "seed scope"): ...
    images, labels = rp.load_arrays(rp.find_dataset(DIR), rp.Preprocessing())
    table = rp.run_sweep(model, rp.Grid(...), images, labels, "results.csv", run)
    rp.claims_table(rp.read_table("results.csv"))
    rp.run_study(model, [rp.RecoveryRun(trial, "held", "all")], train, prep, images, labels, log,
                 rp.Training(steps=300, eval_every=30), "<model>:<weights sha256>")  # recovery

Names are imported on first use, so `import replication` loads neither TensorFlow nor
pandas; the subpackages (caffe, models, data, perturb, run, recovery, analysis) hold the rest.
"""

import importlib

__version__ = "0.1.0"

_API = {
    # files -> weights
    "download": "replication.fetch",
    "convert_caffemodel": "replication.caffe.convert",
    "write_synthetic_weights": "replication.models.offline",
    # models
    "create_model": "replication.models.registry",
    "describe_model": "replication.models.registry",
    "list_models": "replication.models.registry",
    "register_model": "replication.models.registry",
    "WeightGroup": "replication.models.groups",
    "weight_groups": "replication.models.groups",
    # perturbations
    "SEMANTICS": "replication.perturb.registry",
    "get_perturbation": "replication.perturb.registry",
    "perturbation_names": "replication.perturb.registry",
    "register_perturbation": "replication.perturb.registry",
    "Zero": "replication.perturb.edits",
    "Trial": "replication.perturb.trials",
    "perturb_arrays": "replication.perturb.apply",
    "perturbed": "replication.perturb.apply",
    # data
    "Preprocessing": "replication.data.preprocessing",
    "find_dataset": "replication.data.layouts",
    "load_arrays": "replication.data.cache",
    # runs
    "evaluate_model": "replication.run.scoring",
    "Grid": "replication.run.grid",
    "RunInfo": "replication.run.table",
    "read_table": "replication.run.table",
    "run_info": "replication.run.sweep",
    "run_sweep": "replication.run.sweep",
    # on a cluster: sharded sweeps on Slurm, and their progress
    "submit_sweep": "replication.run.slurm",
    "sweep_status": "replication.run.status",
    # recovery after damage
    "stratified_split": "replication.data.training",
    "RecoveryRun": "replication.recovery.table",
    "RecoveryLog": "replication.recovery.table",
    "StudyInfo": "replication.recovery.table",
    "read_recovery": "replication.recovery.table",
    "Training": "replication.recovery.train",
    "run_study": "replication.recovery.study",
    "run_recovery": "replication.recovery.experiment",
    "RecoveryResult": "replication.recovery.experiment",
    # experiments, from files to figure in one call
    "run_experiment": "replication.experiment",
    "ExperimentResult": "replication.experiment",
    "reproduce": "replication.experiment",
    "run_evaluation": "replication.experiment",
    "Evaluation": "replication.experiment",
    "model_preprocessing": "replication.experiment",
    "missing_inputs": "replication.inputs",
    "MissingInputs": "replication.inputs",
    # analysis
    "compare_claims": "replication.analysis.comparison",
    "write_table1": "replication.analysis.table1",
    "EXPERIMENTS": "replication.analysis.experiments",
    "Experiment": "replication.analysis.experiments",
    "claims_table": "replication.analysis.claims",
    "plot_claims": "replication.analysis.reports",
    "summary": "replication.analysis.stats",
    "plot_figure": "replication.analysis.figures",
    "robustness_profile": "replication.analysis.profile",
    "plot_profile": "replication.analysis.profile",
    "write_profile": "replication.analysis.profile",
    "recovery_report": "replication.analysis.recovery",
    "plot_recovery": "replication.analysis.recovery",
}

__all__ = ["__version__", *_API]


def __getattr__(name):
    if name not in _API:
        raise AttributeError(f"module 'replication' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
