"""Synthetic weight files for any of the project's networks, for offline use and tests.

Each file has the real layers and weight shapes with random weights, and its net name
carries the synthetic mark, so every output made from it says its accuracies are at
chance by design.
"""

from pathlib import Path

from replication.errors import ReplicationError

CAFFE_MODELS = ("alexnet", "caffenet")
KERAS_MODELS = ("vgg16", "vgg19", "resnet50", "inception_v3")
SYNTHETIC_MODELS = (*CAFFE_MODELS, "convnets_keras", *KERAS_MODELS)


def write_synthetic_weights(path, model: str = "alexnet", seed: int = 0) -> Path:
    """Write a synthetic weight file for a registered network.

    Args:
        path: the file to write: `.h5` (ready for `--weights`) for every model, or
            `.caffemodel` (Caffe's binary format) for alexnet and caffenet.
        model: one of SYNTHETIC_MODELS.
        seed: the generator's seed.

    Returns:
        The path written.

    Raises:
        ReplicationError: an unknown model, or a file kind the model has no writer for.
    """
    path = Path(path)
    if model not in SYNTHETIC_MODELS:
        raise ReplicationError(path, f"no synthetic weights for model {model!r} (choose from {', '.join(SYNTHETIC_MODELS)})")
    if path.suffix not in (".h5", ".caffemodel") or (path.suffix == ".caffemodel" and model not in CAFFE_MODELS):
        kinds = ".caffemodel or .h5" if model in CAFFE_MODELS else ".h5"
        raise ReplicationError(path, f"name it {kinds} for a synthetic {model}")
    if model in KERAS_MODELS:
        from replication.models.keras_apps import write_synthetic_keras_weights

        write_synthetic_keras_weights(path, model, seed=seed)
    elif model == "convnets_keras":
        from replication.models.convnets_keras import write_synthetic_convnets_keras

        write_synthetic_convnets_keras(path, seed=seed)
    elif path.suffix == ".caffemodel":
        from replication.models.synthetic import write_synthetic_alexnet

        write_synthetic_alexnet(path, seed=seed, flavour=model)
    else:
        from replication.caffe.convert import convert_caffemodel
        from replication.files import temporary_folder
        from replication.models.synthetic import write_synthetic_alexnet

        with temporary_folder(path) as tmp:  # errors name `path`, never the temporary
            caffemodel = tmp / f"synthetic_{model}.caffemodel"
            write_synthetic_alexnet(caffemodel, seed=seed, flavour=model)
            convert_caffemodel(caffemodel, path, progress=False)
    return path
