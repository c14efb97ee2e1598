"""Caffe weights from the converter's HDF5 file into a Keras model.

The file (`caffe.hdf5`) holds each Caffe layer's blobs in Caffe's
own layout. The model says, through its WeightGroups, which Caffe layer fills which
Keras layers; this module only changes layouts:

- Convolution (O, I/g, kh, kw) -> Conv2D kernel (kh, kw, I/g, O/g) per group member,
  member i taking output filters [i*O/g, (i+1)*O/g).
- InnerProduct (out, in) -> Dense kernel (in, out). When the layer reads a flattened
  feature map, Caffe's inputs run channel-major (c, h, w) and Keras' channel-last
  (h, w, c), so the rows are reordered as well.
"""

import keras
import numpy as np

from replication.caffe.hdf5 import CaffeBlobs, read_weights
from replication.errors import ReplicationError
from replication.models.groups import WeightGroup, group_layers, weight_groups


def load_weights(model: keras.Model, h5_path) -> keras.Model:
    """Set every weight group of `model` from the Caffe layers in a converted HDF5 file.

    Args:
        model: a model whose WeightGroups name their Caffe layers.
        h5_path: the file `caffe.convert` wrote.

    Returns:
        `model`, its weights set. A missing layer or a shape that does not fit is a
        ReplicationError naming the file and the layer.
    """
    layers = read_weights(h5_path)
    for group in weight_groups(model).values():
        if group.caffe_name not in layers:
            raise ReplicationError(
                h5_path,
                f"Caffe layer {group.caffe_name!r} (model layer {group.name}) is not in the file; "
                f"it has {', '.join(layers) or 'no layers'}",
            )
        members = group_layers(model, group)
        arrays = keras_arrays(group, members, layers[group.caffe_name], h5_path)
        for layer, weights in zip(members, arrays):
            layer.set_weights(weights)
    return model


# Keras layer type -> the Caffe layer type whose blobs it takes.
_CAFFE_TYPE = {keras.layers.Conv2D: "Convolution", keras.layers.Dense: "InnerProduct"}


def keras_arrays(group: WeightGroup, members: list, caffe: CaffeBlobs, source="weights") -> list[list]:
    """One get_weights()-style list per member layer, from the Caffe layer's blobs.

    Raises ReplicationError(source, ...) naming the layer (and both shapes when the
    blobs do not fit the model).
    """
    kinds = {type(layer) for layer in members}
    kind = kinds.pop() if len(kinds) == 1 else None
    if kind not in _CAFFE_TYPE or (kind is keras.layers.Dense and len(members) != 1):
        names = sorted(type(layer).__name__ for layer in members)
        raise ReplicationError(source, f"model layer {group.name}: cannot load Caffe weights into {names} layers")
    if caffe.type != _CAFFE_TYPE[kind]:
        raise ReplicationError(
            source,
            f"Caffe layer {group.caffe_name!r} is a {caffe.type} layer but model layer {group.name} "
            f"needs {_CAFFE_TYPE[kind]} weights",
        )
    if kind is keras.layers.Conv2D:
        return _conv_arrays(group, members, caffe.blobs, source)
    return [_dense_arrays(group, members[0], caffe.blobs, source)]


def _check(source, group: WeightGroup, what: str, found: tuple, needed: tuple):
    if tuple(found) != tuple(needed):
        raise ReplicationError(
            source,
            f"Caffe layer {group.caffe_name!r} has {what} of shape {tuple(found)}, but model layer "
            f"{group.name} needs {tuple(needed)} (Caffe layout)",
        )


def _bias(group, layer, blobs, source, units) -> list[np.ndarray]:
    """[] for a layer without bias, else the (units,) Caffe bias checked against it."""
    has_bias = len(blobs) > 1
    if has_bias != layer.use_bias:
        caffe, model = f"Caffe layer {group.caffe_name!r}", f"model layer {group.name}"
        having, lacking = (caffe, model) if has_bias else (model, caffe)
        raise ReplicationError(source, f"{having} has a bias but {lacking} has none")
    if not has_bias:
        return []
    _check(source, group, "bias", blobs[1].shape, (units,))
    return [blobs[1]]


def _conv_arrays(group, members, blobs, source):
    g = len(members)
    kh, kw, in_per_group, out_per_group = members[0].kernel.shape
    weights = blobs[0]
    _check(source, group, "weights", weights.shape, (g * out_per_group, in_per_group, kh, kw))
    bias = _bias(group, members[0], blobs, source, g * out_per_group)
    arrays = []
    for i in range(g):
        filters = slice(i * out_per_group, (i + 1) * out_per_group)
        arrays.append([weights[filters].transpose(2, 3, 1, 0)] + [b[filters] for b in bias])
    return arrays


def _dense_arrays(group, layer, blobs, source):
    n_in, n_out = layer.kernel.shape
    weights = blobs[0]
    _check(source, group, "weights", weights.shape, (n_out, n_in))
    if group.flatten_hwc is not None:
        h, w, c = group.flatten_hwc
        if h * w * c != n_in:
            raise ReplicationError(
                source, f"model layer {group.name}: flatten_hwc {group.flatten_hwc} does not make {n_in} inputs"
            )
        # Caffe's column c*h*w-order -> Keras' h*w*c-order.
        weights = weights.reshape(n_out, c, h, w).transpose(0, 2, 3, 1).reshape(n_out, n_in)
    return [np.ascontiguousarray(weights.T)] + _bias(group, layer, blobs, source, n_out)
