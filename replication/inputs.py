"""What a run needs but cannot find, each with how to get it: checked before anything
heavy loads, so that a user who lacks a file hears so at once."""

from pathlib import Path

from replication.errors import ReplicationError
from replication.models.registry import get_model_spec, list_models
from replication.paths import DEFAULT_MEAN_FILE, WEIGHTS_DIR

ZOO_URL = "http://dl.caffe.berkeleyvision.org/{}.caffemodel"
MEAN_URL = "https://github.com/BVLC/caffe/raw/master/python/caffe/imagenet/ilsvrc_2012_mean.npy"


class MissingInputs(ReplicationError):
    """A run lacks files; `missing` lists each with how to get it."""

    def __init__(self, what: str, missing: list[str]):
        self.what, self.missing = what, list(missing)
        super().__init__(None, f"{what} cannot run; missing: " + "; ".join(m.splitlines()[0] for m in missing))


def default_weights(model) -> Path | None:
    """caffe_weights/<Model Zoo name>.h5 for a registered model with a zoo file, else None."""
    spec = get_model_spec(model)
    return WEIGHTS_DIR / f"{spec.zoo_file}.h5" if spec is not None and spec.zoo_file else None


def missing_inputs(model, weights, data, labels=None, mean="image", mean_file=DEFAULT_MEAN_FILE) -> list[str]:
    """What a run of `model` on `data` lacks, each entry with how to get it.

    Args:
        model: a registered model's name or a deploy .prototxt path.
        weights: its weight file, or None when none was given.
        data: the folder of validation images, or None.
        labels: the label file, when given apart from `data`.
        mean, mean_file: the preprocessing's mean ("image" needs `mean_file`).

    Returns:
        One message per missing input; empty when everything is in place.
    """
    missing = []
    weights = None if weights is None else Path(weights)
    spec = get_model_spec(model)
    if spec is None and not Path(model).is_file():
        missing.append(f"model {model}: no such file. Give {', '.join(list_models())} or a Caffe deploy .prototxt.")
    if spec is not None and spec.weights_format == "keras_applications" and (weights is None or not weights.is_file()):
        from replication.fetch import ITEMS
        from replication.models.keras_apps import APPLICATIONS

        app = APPLICATIONS[spec.name]
        where = "none given" if weights is None else f"{weights}: not found"
        fetch = (f"      python -m replication.download {app.name}\n" if app.name in ITEMS else
                 f"      mkdir -p caffe_weights\n      curl -L -o caffe_weights/{app.weights_file} {app.url}\n")
        missing.append(
            f"weights: {where}. Get Keras's {spec.title} weights ({app.url}, md5 {app.md5}):\n{fetch}"
            f"      ... --weights caffe_weights/{app.weights_file} (the default)"
        )
    elif weights is None and spec is not None and spec.weights_format == "keras1":
        missing.append(
            f"weights: none given for {model}. Get the authors' Keras 1 weights (docs/authors_alexnet.md):\n"
            "      python -m replication.download convnets_keras\n"
            "      ... --weights caffe_weights/alexnet_weights.h5"
        )
    elif weights is None:
        missing.append(
            f"weights: none given for {model}. Convert the model's .caffemodel and pass the result:\n"
            f"      python -m replication.convert MODEL.caffemodel --prototxt {model} -o MODEL.h5\n"
            "      ... --weights MODEL.h5"
        )
    elif not weights.is_file():
        if spec is not None and spec.zoo_file:
            url = ZOO_URL.format(spec.zoo_file)
            item = _fetchable(f"{spec.zoo_file}.caffemodel")
            fetch = (f"      python -m replication.download {item}\n" if item else
                     f"      mkdir -p caffe_weights\n      curl -L -o caffe_weights/{spec.zoo_file}.caffemodel {url}\n")
            missing.append(
                f"weights {weights}: not found. Download {spec.zoo_file} from the Caffe Model Zoo ({url}, "
                f"233 MB; the download checks its sha1) and convert it:\n{fetch}"
                f"      python -m replication.convert caffe_weights/{spec.zoo_file}.caffemodel -o {weights}"
            )
        else:
            missing.append(
                f"weights {weights}: not found. Convert the model's .caffemodel:\n"
                f"      python -m replication.convert MODEL.caffemodel --prototxt {model} -o {weights}"
            )
    if data is None or not Path(data).is_dir():
        where = "no --data given" if data is None else f"{data}: no such folder"
        missing.append(
            f"images: {where}. The ILSVRC2012 validation images are the one input python -m replication.download "
            "cannot fetch: download ILSVRC2012_img_val.tar (6.3 GB; free registration at "
            "https://image-net.org/download-images), unpack it into a folder, and pass --data FOLDER (with "
            "--labels caffe_weights/val.txt, Caffe's FILENAME LABEL list from python -m replication.download aux, "
            "unless the folder holds one)."
        )
    if labels is not None and not Path(labels).is_file():
        aux = " Caffe's val.txt comes with: python -m replication.download aux" if Path(labels).name == "val.txt" else ""
        missing.append(f"labels {labels}: no such file.{aux}")
    if mean == "image" and not Path(mean_file).is_file():
        fetch = (f"fetch it with: python -m replication.download mean{_to(Path(mean_file))}" if
                 Path(mean_file).name == "ilsvrc_2012_mean.npy" else f"save it as {mean_file}")
        missing.append(
            f"mean image {mean_file}: not found. It ships with Caffe as "
            f"python/caffe/imagenet/ilsvrc_2012_mean.npy ({MEAN_URL}); {fetch} "
            "(or pass --mean-file, or use --mean pixel)."
        )
    return missing


def _fetchable(filename: str) -> str | None:
    """The name `python -m replication.download` fetches `filename` by, or None."""
    from replication.fetch import ITEMS

    return next((item.name for item in ITEMS.values() if item.filename == filename), None)


def _to(path: Path) -> str:
    """The download command's --to option for a file at `path` (none for caffe_weights/)."""
    return "" if path.parent == WEIGHTS_DIR else f" --to {path.parent}"
