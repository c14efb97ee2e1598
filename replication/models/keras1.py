"""Keras 1 HDF5 weight files (`model.save_weights`), read and written without Keras 1.

heuritech's convnets-keras AlexNet weights, alexnet_weights.h5, which the paper's authors
loaded, are such a file. Its layout (Keras 1's `save_weights_to_hdf5_group`):

- a root attribute `layer_names`: every layer of the model in order, the weightless ones
  (input, pooling, padding, Lambda, dropout, merge, activation) too;
- one group per layer, named after it, whose attribute `weight_names` names the layer's
  datasets in its weight order, W then b (empty for a weightless layer); Theano names
  them `<layer>_W` and `<layer>_b`;
- a Convolution2D's W is (filters, channels, rows, cols), and a file saved from Theano
  holds the kernels Theano's conv2d flips (a true convolution); a Dense layer's W is
  (inputs, outputs).

A full-model file (`model.save`) holds the same under a group `model_weights`. Keras 1
matched a file's layers to the model's by position among the layers with weights; here
they are matched by name, which gives the same result for a file saved from the model
it is loaded into and names the layer when a file does not fit.

Refused, each with a ReplicationError naming the file: Keras 0.x's layout (root
attribute `nb_layers`, groups `layer_K` of datasets `param_P`: no layer names, so no
array can be assigned to a layer without guessing), files written by Keras 2 (attribute
`keras_version` 2.x, kernels stored (rows, cols, in, out)) and by Keras 1's TensorFlow
backend (attribute `backend`, kernels not flipped), truncated or damaged files, and files
whose layers or shapes do not fit the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from replication.errors import ReplicationError
from replication.files import open_weight_file
from replication.models.groups import WeightGroup, group_layers, weight_groups

if TYPE_CHECKING:  # keras (and TensorFlow) load only when a model is built or loaded
    import keras

KERAS1 = "keras1"
KERAS0 = "keras0"
_WANTED = "a Keras 1 weight file (model.save_weights), such as heuritech's alexnet_weights.h5"

# A layer's weights as the file holds them: (dataset name, array) in the layer's order.
LayerWeights = list[tuple[str, np.ndarray]]


def _names(attribute) -> list[str]:
    """A list-of-strings attribute as str: h5py returns bytes or str items, in an array or a list."""
    return [item.decode("utf8") if isinstance(item, bytes) else str(item) for item in np.atleast_1d(attribute)]


def listed_weights(path, root: h5py.Group) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """Keras' save_weights layout, which Keras 1 and Keras Applications' files share: every
    layer listed in `root`'s layer_names, with the datasets its weight_names list, in order.

    Returns:
        (layer name, [(weight name, array)]) for each listed layer with weights; a listed
        layer or dataset that is absent is a ReplicationError naming `path`.
    """
    layers = []
    for name in _names(root.attrs["layer_names"]):
        group = root.get(name)
        if not isinstance(group, h5py.Group) or "weight_names" not in group.attrs:
            raise ReplicationError(path, f"layer {name!r} is listed in layer_names but has no group with weight_names")
        weights = []
        for weight in _names(group.attrs["weight_names"]):
            if not isinstance(group.get(weight), h5py.Dataset):
                raise ReplicationError(path, f"layer {name!r} lists weight {weight!r}, which is not in the file")
            weights.append((weight, np.asarray(group[weight])))
        if weights:
            layers.append((name, weights))
    return layers


def _weights_root(f: h5py.File):
    """The group that holds `layer_names`: the root, or a full-model file's model_weights."""
    if "layer_names" not in f.attrs and isinstance(f.get("model_weights"), h5py.Group):
        return f["model_weights"]
    return f


def keras_layout(path) -> str | None:
    """Which Keras weight layout a file has, from its content.

    Args:
        path: any file.

    Returns:
        KERAS1 ("keras1") for an HDF5 file with a root `layer_names` attribute (or a
        model_weights group with it), KERAS0 ("keras0") for Keras 0.x's `nb_layers`
        layout, None otherwise, also for a file that is missing or cannot be opened.
    """
    path = Path(path)
    try:
        if not path.is_file() or not h5py.is_hdf5(path):
            return None
        with h5py.File(path, "r") as f:
            if "nb_layers" in f.attrs:
                return KERAS0
            return KERAS1 if "layer_names" in _weights_root(f).attrs else None
    except (OSError, KeyError, ValueError):
        return None


def _check_origin(path: Path, f: h5py.File, root) -> None:
    """Refuse the layouts whose arrays this reader would misread."""
    if "nb_layers" in f.attrs:
        raise ReplicationError(
            path,
            "Keras 0.x weight file (attribute nb_layers, groups layer_K with datasets param_P): it names no "
            f"layers, so its arrays cannot be assigned to the model's layers without guessing; expected {_WANTED}",
        )
    if "layer_names" not in root.attrs:
        if f.attrs.get("format") == "replication-caffe-hdf5":
            raise ReplicationError(
                path, f"a converted Caffe weight file (for --model alexnet, caffenet or a .prototxt), not {_WANTED}"
            )
        raise ReplicationError(path, f"HDF5 file without a layer_names attribute; expected {_WANTED}")
    attributes = {**f.attrs, **root.attrs}
    version = _names(attributes["keras_version"])[0] if "keras_version" in attributes else None
    if version is not None and not version.startswith("1."):
        raise ReplicationError(
            path, f"saved by Keras {version}, which stores convolution kernels in another layout; expected {_WANTED}"
        )
    backend = _names(attributes["backend"])[0] if "backend" in attributes else "theano"
    if backend != "theano":
        raise ReplicationError(
            path,
            f"saved with Keras 1's {backend} backend, whose convolution kernels are not flipped as Theano's are; "
            "this reader takes files saved with Theano, as heuritech's alexnet_weights.h5 was",
        )


def read_keras1_weights(path) -> dict[str, LayerWeights]:
    """The weights of every layer of a Keras 1 weight file that has any.

    Args:
        path: a Keras 1 HDF5 weight file.

    Returns:
        Layer name -> [(dataset name, float32 array)] in the file's layer order and each
        layer's weight order, arrays in the file's (Keras 1) layout. A missing, truncated
        or damaged file, another layout, or a listed layer or dataset that is absent is a
        ReplicationError naming the file.
    """
    path = Path(path)
    with open_weight_file(path, _WANTED) as f:
        root = _weights_root(f)
        _check_origin(path, f, root)
        return {name: [(weight, array.astype(np.float32, copy=False)) for weight, array in weights]
                for name, weights in listed_weights(path, root)}


def keras3_arrays(layer, group: WeightGroup, weights: LayerWeights, source) -> list[np.ndarray]:
    """`layer.set_weights()` arrays from one Keras 1 layer's weights.

    Convolution2D W (filters, channels, rows, cols), applied by Theano as a true
    convolution, becomes a Conv2D kernel (rows, cols, channels, filters) flipped along
    both spatial axes (Keras 3 cross-correlates). Dense W (inputs, outputs) is kept, its
    rows reordered from channels-first to channels-last when `group.flatten_hwc` says the
    layer reads a flattened feature map.

    Args:
        layer: a keras.layers.Conv2D or Dense with a bias.
        group: the layer's WeightGroup.
        weights: [(name, array)] from `read_keras1_weights`, W then b.
        source: the file, for messages.

    Returns:
        [kernel, bias] in Keras 3's layout; a ReplicationError naming the layer (and both
        shapes) when they do not fit.
    """
    import keras
    names = [name for name, _ in weights]
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) or not layer.use_bias:
        raise ReplicationError(source, f"model layer {layer.name}: cannot load Keras 1 weights into a {type(layer).__name__}")
    if len(weights) != 2:
        raise ReplicationError(
            source, f"layer {layer.name!r} has {len(weights)} weights in the file ({', '.join(names)}), but the model's has 2 (W, b)"
        )
    (w_name, w), (b_name, b) = weights
    if isinstance(layer, keras.layers.Conv2D):
        rows, cols, channels, filters = layer.kernel.shape
        w_shape, b_shape = (filters, channels, rows, cols), (filters,)
    else:
        w_shape, b_shape = tuple(layer.kernel.shape), (layer.kernel.shape[1],)
    for name, array, shape in ((w_name, w, w_shape), (b_name, b, b_shape)):
        if array.shape != shape:
            raise ReplicationError(
                source,
                f"{name} (layer {layer.name!r}) has shape {array.shape}, but model layer {group.name} needs {shape} "
                "(Keras 1 layout: Convolution2D W (filters, channels, rows, cols), Dense W (inputs, outputs))",
            )
    if isinstance(layer, keras.layers.Conv2D):
        return [np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(2, 3, 1, 0)), b]
    if group.flatten_hwc is not None:
        h, wide, c = group.flatten_hwc
        if h * wide * c != w.shape[0]:
            raise ReplicationError(source, f"model layer {group.name}: flatten_hwc {group.flatten_hwc} does not make {w.shape[0]} inputs")
        # Theano flattened (c, h, w); Keras 3 flattens (h, w, c).
        w = np.ascontiguousarray(w.reshape(c, h, wide, -1).transpose(1, 2, 0, 3).reshape(w.shape))
    return [w, b]


def load_keras1_weights(model: keras.Model, path, layers: dict[str, LayerWeights] | None = None) -> keras.Model:
    """Set every weight group of `model` from a Keras 1 weight file, layer by layer name.

    Args:
        model: a model whose weight groups' members carry the file's layer names
            (the convnets_keras AlexNet).
        path: the Keras 1 HDF5 file (heuritech's alexnet_weights.h5).
        layers: `read_keras1_weights(path)` when the caller has read it already.

    Returns:
        `model`, its weights set; nothing is set unless every layer fits. A layer the
        file lacks, a layer with weights the model lacks, or a shape that does not fit
        is a ReplicationError naming the file and the layer.
    """
    layers = read_keras1_weights(path) if layers is None else layers
    arrays, used = [], set()
    for group in weight_groups(model).values():
        for layer in group_layers(model, group):
            if layer.name not in layers:
                raise ReplicationError(
                    path,
                    f"layer {layer.name!r} (model layer {group.name}) is not in the file; its layers with weights "
                    f"are {', '.join(layers) or 'none'}",
                )
            arrays.append((layer, keras3_arrays(layer, group, layers[layer.name], path)))
            used.add(layer.name)
    extra = [name for name in layers if name not in used]
    if extra:
        raise ReplicationError(
            path, f"the file has weights for layers the model lacks: {', '.join(extra)} (the weights of another network?)"
        )
    for layer, values in arrays:
        layer.set_weights(values)
    return model


def write_keras1_weights(path, layers: list[tuple[str, LayerWeights]]) -> None:
    """Write a weight file in Keras 1's save_weights layout (stand-ins for tests and offline use).

    Args:
        path: the HDF5 file to write (replaced if it exists).
        layers: (layer name, [(dataset name, array)]) for every layer in network order;
            weightless layers with an empty list, as Keras 1 writes them.
    """
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode("utf8") for name, _ in layers]
        for name, weights in layers:
            group = f.create_group(name)
            group.attrs["weight_names"] = [weight.encode("utf8") for weight, _ in weights]
            for weight, array in weights:
                group.create_dataset(weight, data=np.asarray(array, dtype=np.float32))


def summary_table(layers: dict[str, LayerWeights]) -> str:
    """One line per layer with weights: name, dataset names with their shapes, parameter count.

    Args:
        layers: from `read_keras1_weights`.

    Returns:
        The table as text, with a total line.
    """
    rows = [("layer", "weights", "parameters")]
    total = 0
    for name, weights in layers.items():
        count = sum(array.size for _, array in weights)
        total += count
        shapes = ", ".join(f"{weight} {'x'.join(map(str, array.shape))}" for weight, array in weights)
        rows.append((name, shapes, f"{count:,}"))
    rows.append(("total", "", f"{total:,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2])]) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
