"""The Keras Applications networks the paper's authors' code wrapped: VGG16 (the paper's
Figure 5), VGG19, ResNet50 and InceptionV3, with their own weight files and preprocessing.

The authors' net.py builds `keras.applications.VGG16(weights=...)` (and VGG19, ResNet50,
InceptionV3) and feeds every one of them `keras.preprocessing.image.load_img(path,
target_size=(224, 224))` followed by `imagenet_utils.preprocess_input` (mode "caffe").
Here each is built from `keras.applications` with `weights=None`, so nothing is ever
downloaded at run time, and loaded from the local Keras Applications file
(`vgg16_weights_tf_dim_ordering_tf_kernels.h5` and its siblings) by `load_keras_weights`.

What changes against keras.applications' own model:

- the output layer ("predictions") is built with `classifier_activation=None`, so it gives
  the logits, and a Softmax layer named "prob" follows: the project scores the input of
  "prob" (`run.scoring`), as for every other model;
- layers Keras names automatically (InceptionV3's Conv2D and BatchNormalization layers,
  every model's input) are renamed `<kind>_1`, `<kind>_2`, … in network order, the names
  Keras 2 gave them in a fresh session (conv2d_1 … conv2d_94): Keras 3 numbers them on from
  every model built before in the process, which would make results tables and --layers
  depend on it.

A layer in the paper's sense (a WeightGroup, the unit a perturbation acts on) is each
Conv2D and Dense layer: its kernel W and, where it has one, its bias b. VGG16: 13
convolutions and 3 dense layers (block1_conv1 … block5_conv3, fc1, fc2, predictions);
VGG19: 16 and 3; ResNet50: 53 convolutions (the 4 projection shortcuts `*_0_conv` among
them) and predictions; InceptionV3: 94 convolutions without bias (a BatchNormalization's
β follows each) and predictions. BatchNormalization layers are never perturbed: the
perturbations act on [W] or [W, b], and a BatchNormalization layer's γ, β, moving mean and
variance are neither (noise on a variance can make it negative).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from replication.errors import ReplicationError
from replication.files import file_digest, open_weight_file
from replication.models.groups import WeightGroup, set_weight_groups
from replication.models.keras1 import listed_weights
from replication.models.registry import register_model
from replication.models.synthetic import SYNTHETIC_MARK, is_synthetic

if TYPE_CHECKING:  # keras (and TensorFlow) load only when a model is built or loaded
    import keras

KERAS_APPLICATIONS = "keras_applications"
_WANTED = "a Keras Applications weight file (e.g. vgg16_weights_tf_dim_ordering_tf_kernels.h5)"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/{folder}/{file}"

# Keras's preprocess_input mode "caffe" on load_img(target_size=(224, 224)): the recipe
# the authors' code gave every Keras Applications model.
CAFFE_224 = {"resize": 224, "crop": 224, "mean": "keras_caffe", "resize_filter": "pil_nearest"}


@dataclass(frozen=True)
class KerasApplication:
    """One Keras Applications network as this project registers it."""

    name: str  # the registered model name
    title: str
    constructor: str  # the keras.applications function
    weights_file: str  # Keras's published weight file (with the classifier)
    md5: str  # the hash Keras publishes for it (keras/src/applications/<model>.py, file_hash)
    folder: str  # its folder under WEIGHTS_URL
    size: int  # the side of the input the weights were trained at
    preprocessing: dict  # data.Preprocessing fields: the model's default recipe

    @property
    def zoo_file(self) -> str:
        """The weight file without ".h5": caffe_weights/<zoo_file>.h5 is the default --weights."""
        return self.weights_file.removesuffix(".h5")

    @property
    def url(self) -> str:
        return WEIGHTS_URL.format(folder=self.folder, file=self.weights_file)


APPLICATIONS = {
    app.name: app
    for app in (
        KerasApplication("vgg16", "VGG-16", "VGG16", "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                         "64373286793e3c8b2b4e3219cbf3544b", "vgg16", 224, CAFFE_224),
        KerasApplication("vgg19", "VGG-19", "VGG19", "vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                         "cbe5617147190e668d6c5d5026f83318", "vgg19", 224, CAFFE_224),
        KerasApplication("resnet50", "ResNet-50", "ResNet50", "resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                         "2cb95161c43110f7111970584f804107", "resnet", 224, CAFFE_224),
        # Keras's own recipe for InceptionV3 (299 x 299, mode "tf"): the authors' code gave
        # it the VGG recipe at 224, which its fixed 299 x 299 input would have refused.
        KerasApplication("inception_v3", "Inception-v3", "InceptionV3",
                         "inception_v3_weights_tf_dim_ordering_tf_kernels.h5", "9a0d58056eeedaa3f26cb7ebd46da564",
                         "inception_v3", 299,
                         {"resize": 299, "crop": 299, "mean": "keras_tf", "resize_filter": "pil_nearest"}),
    )
}
PUBLISHED_FILES = {app.weights_file: app for app in APPLICATIONS.values()}


def _snake_case(class_name: str) -> str:
    """Keras's automatic layer-name prefix for a layer class (Conv2D -> conv2d)."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _rename_automatic(model: keras.Model) -> None:
    """Give the layers Keras named automatically the names `<kind>_1`, `<kind>_2`, … in
    network order (module docstring)."""
    counts: dict[str, int] = {}
    for layer in model.layers:
        kind = _snake_case(type(layer).__name__)
        if re.fullmatch(rf"{re.escape(kind)}(_\d+)?", layer.name):
            counts[kind] = counts.get(kind, 0) + 1
            layer.name = f"{kind}_{counts[kind]}"


def keras_weight_groups(model: keras.Model) -> list[WeightGroup]:
    """One WeightGroup per Conv2D or Dense layer, in network order (module docstring).

    Args:
        model: a Keras model.

    Returns:
        The groups, each named after its one member layer.
    """
    import keras
    kinds = (keras.layers.Conv2D, keras.layers.Dense)
    return [WeightGroup(layer.name, (layer.name,), layer.name) for layer in model.layers if isinstance(layer, kinds)]


def build_keras_application(name: str, input_shape=None) -> keras.Model:
    """A Keras Applications network without weights, scoring its logits.

    Args:
        name: a key of APPLICATIONS ("vgg16", "vgg19", "resnet50", "inception_v3").
        input_shape: (height, width, 3); None for the size its weights were trained at.
            VGG's dense fc1 fits only that size's feature map; the others take any size
            keras.applications allows (their global pooling makes it fit).

    Returns:
        The keras.Model: the network's layers with keras.applications' names (automatic
        ones renamed as in the module docstring), the output layer "predictions" without
        softmax, then the Softmax "prob"; its WeightGroups are `keras_weight_groups`.
    """
    import keras
    app = APPLICATIONS[name]
    shape = tuple(input_shape) if input_shape is not None else (app.size, app.size, 3)
    if len(shape) != 3 or shape[2] != 3:
        raise ReplicationError(None, f"{name} takes (height, width, 3) images, not {shape}")
    try:
        base = getattr(keras.applications, app.constructor)(
            include_top=True, weights=None, input_shape=shape, classifier_activation=None
        )
    except ValueError as err:  # keras.applications refusing the input size
        raise ReplicationError(None, f"{name}: {err}") from None
    prob = keras.layers.Softmax(name="prob")(base.output)
    model = keras.Model(base.input, prob, name=name)
    _rename_automatic(model)
    set_weight_groups(model, keras_weight_groups(model))
    return model


def _register(app: KerasApplication) -> None:
    def build(input_shape=None) -> keras.Model:
        return build_keras_application(app.name, input_shape)

    build.__doc__ = f"keras.applications.{app.constructor}, scoring its logits (build_keras_application)."
    build.__name__ = app.name
    def load(model: keras.Model, path) -> keras.Model:
        return load_keras_weights(model, path, app.name)

    register_model(app.name, title=app.title, zoo_file=app.zoo_file, weights_format=KERAS_APPLICATIONS,
                   preprocessing=app.preprocessing, load_weights=load)(build)


for _app in APPLICATIONS.values():
    _register(_app)


# --- the weight files --------------------------------------------------------------------


def read_keras_weights(path) -> list[tuple[str, list[np.ndarray]]]:
    """The layers with weights of a Keras Applications (legacy Keras HDF5) weight file.

    The layout, Keras 2's `save_weights` (keras.src.legacy.saving): a root attribute
    `layer_names` listing every layer in network order; one group per layer whose
    attribute `weight_names` lists its datasets in the layer's weight order (empty for a
    layer without weights); kernels in TensorFlow's layout, (rows, cols, in, out) and
    (in, out), as Keras 3 holds them. A full-model file holds the same under `model_weights`.

    Args:
        path: the HDF5 file.

    Returns:
        (layer name, [arrays]) for every listed layer with weights, in the file's order.
        A missing, truncated or damaged file, or another layout, is a ReplicationError
        naming the file.
    """
    path = Path(path)
    with open_weight_file(path, _WANTED) as f:
        root = f
        if "layer_names" not in f.attrs and isinstance(f.get("model_weights"), h5py.Group):
            root = f["model_weights"]
        if "layer_names" not in root.attrs:
            if f.attrs.get("format") == "replication-caffe-hdf5":
                raise ReplicationError(
                    path, f"a converted Caffe weight file (for --model alexnet or a .prototxt), not {_WANTED}"
                )
            raise ReplicationError(path, f"HDF5 file without a layer_names attribute; expected {_WANTED}")
        return [(name, [array for _, array in weights]) for name, weights in listed_weights(path, root)]


def check_published(path, app: KerasApplication) -> str | None:
    """Whether `path` is Keras's published weight file for `app`, by its md5.

    Args:
        path: the weight file.
        app: the network it is loaded into.

    Returns:
        None when its md5 is the one Keras publishes (or it is a synthetic file, which says
        so itself), otherwise a note saying that it is another file. A file that carries
        the name of a published file but not its md5 is a ReplicationError: a truncated or
        altered download.
    """
    path = Path(path)
    if not path.is_file():
        raise ReplicationError(path, "no such weight file")
    md5 = file_digest(path, "md5")
    if md5 == app.md5:
        return None
    published = PUBLISHED_FILES.get(path.name)
    if published is not None:
        raise ReplicationError(
            path,
            f"md5 {md5}, but Keras publishes {published.md5} for {path.name}: a truncated or altered download. "
            f"Fetch it again ({published.url}), or give the file another name to load it as other "
            f"{published.title} weights",
        )
    if is_synthetic(path):
        return None
    return (f"{path} is not Keras's published {app.title} weight file {app.weights_file} (md5 {md5}, Keras's "
            f"{app.md5}); it is loaded because every layer's weights have the model's shapes")


def load_keras_weights(model: keras.Model, path, app: str | None = None) -> keras.Model:
    """Set `model`'s weights from a Keras Applications weight file.

    Layers are matched as Keras's own `load_weights` matches them in these files: by
    position among the layers with weights (InceptionV3's automatic names differ from
    one Keras release to the next, so names cannot be used). Every pair must have the
    same number of arrays and the same shapes. A file named as one of Keras's published
    files must have its md5 (`check_published`); a file of another name whose shapes fit
    is loaded, and a note saying that it is not Keras's file goes to stderr.

    Args:
        model: a model built by `build_keras_application`.
        path: the weight file.
        app: the APPLICATIONS key of the model; by default the model's name.

    Returns:
        `model`, its weights set; nothing is set unless every layer fits. Otherwise a
        ReplicationError naming the file and the layer.
    """
    spec = APPLICATIONS[app or model.name]
    note = check_published(path, spec)
    layers = read_keras_weights(path)
    targets = [layer for layer in model.layers if layer.weights]
    if len(layers) != len(targets):
        raise ReplicationError(
            path,
            f"{len(layers)} layers with weights, but {spec.title} has {len(targets)} (the weights of another "
            f"network, or a file without the classifier, *_notop.h5?); expected {spec.weights_file}",
        )
    for position, ((name, arrays), layer) in enumerate(zip(layers, targets)):
        shapes = [tuple(array.shape) for array in arrays]
        wanted = [tuple(w.shape) for w in layer.weights]
        if shapes != wanted:
            raise ReplicationError(
                path,
                f"layer #{position} with weights, {name!r} in the file, has arrays of shapes {shapes}, but model "
                f"layer {layer.name!r} needs {wanted}",
            )
    for (_, arrays), layer in zip(layers, targets):
        layer.set_weights([np.asarray(array, dtype=w.dtype) for array, w in zip(arrays, layer.weights)])
    if note:
        print(f"note: {note}", file=sys.stderr)
    return model


# --- synthetic weights -------------------------------------------------------------------


def synthetic_keras_arrays(model: keras.Model, seed: int = 0) -> list[list[np.ndarray]]:
    """Random weights of realistic scale for every layer of `model` with weights.

    As `models.synthetic` does for AlexNet: He-normal kernels (standard deviation
    sqrt(2 / fan_in)) centred per output unit, the output layer's scaled by 0.2 so the
    logits spread by a few units, biases uniform in [0, 0.2). A BatchNormalization layer
    gets the identity (γ 1, β 0, moving mean 0, moving variance 1).

    Args:
        model: a built Keras model.
        seed: the generator's seed.

    Returns:
        One list of arrays per layer with weights, in `layer.weights` order.
    """
    rng = np.random.default_rng(seed)
    out = []
    for layer in (layer for layer in model.layers if layer.weights):
        arrays = []
        for variable in layer.weights:
            shape, kind = tuple(variable.shape), variable.name
            if kind == "kernel":
                fan_in = int(np.prod(shape[:-1]))
                kernel = rng.standard_normal(shape, dtype=np.float32)
                by_unit = kernel.reshape(fan_in, shape[-1])  # a view
                by_unit -= by_unit.mean(axis=0, keepdims=True)
                kernel *= np.float32(np.sqrt(2.0 / fan_in) * (0.2 if layer.name == "predictions" else 1.0))
                arrays.append(kernel)
            elif kind == "bias":
                arrays.append(rng.uniform(0.0, 0.2, size=shape).astype(np.float32))
            elif kind in ("gamma", "moving_variance"):
                arrays.append(np.ones(shape, np.float32))
            else:  # beta, moving_mean
                arrays.append(np.zeros(shape, np.float32))
        out.append(arrays)
    return out


def write_keras_weights(path, model: keras.Model, arrays: list[list[np.ndarray]] | None = None,
                        net_name: str = "") -> None:
    """Write weights in the Keras Applications files' layout (`read_keras_weights`).

    Args:
        path: the HDF5 file to write (replaced if it exists).
        model: the model whose layers the file lists (every layer, in model.layers order).
        arrays: one list per layer with weights, in order; None for the model's own.
        net_name: a root attribute naming the network (SYNTHETIC_MARK in it marks a
            synthetic file); none when empty.
    """
    import keras
    weighted = [layer for layer in model.layers if layer.weights]
    arrays = [layer.get_weights() for layer in weighted] if arrays is None else arrays
    values = dict(zip((layer.name for layer in weighted), arrays))
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = keras.__version__.encode("utf8")
        if net_name:
            f.attrs["net_name"] = net_name
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]  # Keras 2's names
            group.attrs["weight_names"] = [name.encode("utf8") for name in names]
            for name, array in zip(names, values.get(layer.name, [])):
                group.create_dataset(name, data=np.asarray(array, dtype=np.float32))


def write_synthetic_keras_weights(path, name: str = "vgg16", seed: int = 0, input_shape=None) -> None:
    """Write a synthetic weight file for a Keras Applications model (offline use, tests).

    Args:
        path: the HDF5 file to write.
        name: a key of APPLICATIONS.
        seed: the generator's seed.
        input_shape: as `build_keras_application` (VGG's dense shapes depend on it).
    """
    model = build_keras_application(name, input_shape)
    write_keras_weights(path, model, synthetic_keras_arrays(model, seed),
                        net_name=f"{APPLICATIONS[name].title} ({SYNTHETIC_MARK})")
