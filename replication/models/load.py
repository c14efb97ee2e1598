"""One entry point from the command line's --model and --weights to a ready model."""

from pathlib import Path

import keras

from replication.errors import ReplicationError
from replication.models.alexnet import FLAVOURS, build_alexnet
from replication.models.prototxt import build_from_prototxt
from replication.weights import load_weights


def build_model(model_arg: str, input_shape=None) -> keras.Model:
    """The model --model names, without weights: "alexnet" or "caffenet" (the paper's
    layer names), or a deploy .prototxt path (Caffe's layer names).

    input_shape: (height, width, channels) instead of the model's own input size."""
    if model_arg in FLAVOURS:
        if input_shape is None:
            return build_alexnet(model_arg)
        height, width, channels = input_shape
        if height != width or channels != 3:
            raise ReplicationError(None, f"{model_arg} takes square 3-channel images, not {input_shape}")
        return build_alexnet(model_arg, image_size=height)
    path = Path(model_arg)
    if path.suffix != ".prototxt":
        raise ReplicationError(
            path, f"unknown model: give one of {', '.join(FLAVOURS)} or a deploy .prototxt file"
        )
    return build_from_prototxt(path, input_shape=input_shape)


def load_model(model_arg: str, weights_h5, input_shape=None) -> keras.Model:
    """build_model, then the converter's HDF5 weights loaded into it."""
    return load_weights(build_model(model_arg, input_shape=input_shape), weights_h5)
