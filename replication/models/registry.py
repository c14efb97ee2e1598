"""The model registry: from a name (or a deploy .prototxt) to a ready Keras model.

A model built in Python is one builder function and one registration:

    @register_model("alexnet", title="AlexNet", zoo_file="bvlc_alexnet")
    def alexnet(input_shape=None):
        ...  # return the Keras model, its WeightGroups recorded (groups.set_weight_groups)

Every command's --model accepts the registered names and any Caffe deploy .prototxt.
A model has three names, all derived here (`describe_model`): `name`, what results
tables record (a prototxt's net name plus a short hash of the file, so tables of two
prototxts with one net name never resume each other); `title`, for people ("AlexNet");
`slug`, for file names ("alexnet").
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from replication.errors import ReplicationError
from replication.files import file_digest
from replication.registry import Registry


@dataclass(frozen=True)
class ModelSpec:
    """A registered model."""

    name: str
    build: Callable  # (input_shape=None) -> keras.Model without weights
    title: str
    zoo_file: str | None  # the Caffe Model Zoo file it was trained as, without ".caffemodel"
    # what --weights takes: "caffe" (convert's HDF5), "keras1" or "keras_applications"
    weights_format: str = "caffe"
    preprocessing: dict | None = None  # Preprocessing fields its weights were trained with
    # (model, weights) -> model: how its weight file is read; None for convert's HDF5.
    # Registered by the module that defines the format, so the registry imports none of them.
    load_weights: Callable | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A model's names: in results tables, for people, in file names."""

    name: str
    title: str
    slug: str


_MODELS = Registry(
    "model", ("replication.models.alexnet", "replication.models.convnets_keras", "replication.models.keras_apps")
)
WEIGHTS_FORMATS = ("caffe", "keras1", "keras_applications")


def register_model(
    name: str,
    *,
    title: str,
    zoo_file: str | None = None,
    weights_format: str = "caffe",
    preprocessing: dict | None = None,
    load_weights: Callable | None = None,
):
    """Decorator: register `builder(input_shape=None) -> keras.Model` under `name`.

    Args:
        name: what --model takes and results tables record.
        title: the model's name for people (figure titles, reports).
        zoo_file: the Caffe Model Zoo weight file it loads, without ".caffemodel" (for
            "keras_applications", Keras's weight file without ".h5"); the default weights
            are caffe_weights/<zoo_file>.h5.
        weights_format: "caffe" for the HDF5 file python -m replication.convert writes,
            "keras1" for a Keras 1 save_weights file (models.keras1), "keras_applications"
            for a Keras Applications weight file (models.keras_apps), both loaded as they are.
        preprocessing: the data.Preprocessing fields (resize, crop, mean, resize_filter)
            the commands use for this model unless told otherwise; None for Caffe's.
        load_weights: `(model, weights) -> model`, the reader of its weight file; required
            for "keras1" and "keras_applications", None for the HDF5 file of convert.

    Returns:
        The decorator, which returns the builder unchanged.
    """
    if weights_format not in WEIGHTS_FORMATS:
        raise ValueError(f"weights_format must be one of {WEIGHTS_FORMATS}, not {weights_format!r}")
    if (weights_format == "caffe") != (load_weights is None):
        raise ValueError("give load_weights exactly when weights_format is not 'caffe'")

    def register(builder):
        spec = ModelSpec(name, builder, title, zoo_file, weights_format, dict(preprocessing or {}) or None,
                         load_weights)
        _MODELS.add(name, spec, key=builder)
        return builder

    return register


def list_models() -> tuple[str, ...]:
    """The registered model names (a deploy .prototxt path is accepted as well)."""
    return _MODELS.names()


def get_model_spec(model: str) -> ModelSpec | None:
    """The registration of `model`, or None when it is not a registered name."""
    return _MODELS.get(str(model))


def describe_model(model) -> ModelInfo:
    """The names of `model` (a registered name or a deploy .prototxt path)."""
    spec = get_model_spec(model)
    if spec is not None:
        return ModelInfo(spec.name, spec.title, spec.name)
    from replication.caffe import read_prototxt

    path = Path(model)
    title = read_prototxt(path).name or path.stem
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "model"
    return ModelInfo(f"{title}-{file_digest(path, 'sha256')[:8]}", title, slug)


def create_model(model, weights=None, *, input_shape=None):
    """The Keras model `model` names, with weights when given.

    Args:
        model: a registered name (`list_models()`; the paper's layer names) or the path of
            a Caffe deploy .prototxt (Caffe's layer names).
        weights: an HDF5 file written by `replication.caffe.convert` (python -m
            replication.convert); for a model registered with weights_format="keras1"
            (convnets_keras) a Keras 1 weight file such as heuritech's alexnet_weights.h5;
            for one registered with "keras_applications" (vgg16, vgg19, resnet50,
            inception_v3) Keras's weight file such as vgg16_weights_tf_dim_ordering_tf_kernels.h5;
            or None for an unloaded model.
        input_shape: (height, width, channels) instead of the model's own input size.

    Returns:
        The keras.Model; its final softmax layer is named "prob" and its logical layers
        are `groups.weight_groups(model)`.
    """
    spec = get_model_spec(model)
    if spec is not None:
        built = spec.build(input_shape=input_shape)
    else:
        path = Path(model)
        if path.suffix != ".prototxt":
            raise ReplicationError(
                path, f"unknown model: give one of {', '.join(list_models())} or a deploy .prototxt file"
            )
        from replication.models.prototxt import build_from_prototxt

        built = build_from_prototxt(path, input_shape=input_shape)
    if weights is None:
        return built
    if spec is not None and spec.load_weights is not None:
        return spec.load_weights(built, weights)
    from replication.models import keras1

    if keras1.keras_layout(weights) is not None:
        takers = [m for m in list_models() if get_model_spec(m).weights_format in ("keras1", "keras_applications")]
        raise ReplicationError(
            weights, f"a Keras weight file (model.save_weights), which --model {' or '.join(takers)} takes, not {model}"
        )
    from replication.models.weights import load_weights

    return load_weights(built, weights)


def open_model(model, weights, crop: int):
    """The model scored on images of `crop` pixels: a registered model at its own input
    size, a deploy .prototxt model at the crop size.

    Args:
        model: a registered model's name or a Caffe deploy .prototxt path.
        weights: its weight file.
        crop: the preprocessing's crop size.

    Returns:
        `create_model`'s Keras model.
    """
    model = str(model)
    input_shape = None if get_model_spec(model) is not None else (crop, crop, 3)
    return create_model(model, weights, input_shape=input_shape)
