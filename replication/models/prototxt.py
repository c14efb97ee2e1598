"""A Keras model for any Caffe deploy prototxt made of the usual classifier layers.

Caffe runs layers in file order, each reading named blobs (`bottom`) and writing
named blobs (`top`); a layer whose top is its bottom works in place. We replay that
order, keeping blob name -> Keras tensor, so in-place layers simply rebind the name.

Tensors are NHWC (Caffe's are NCHW): Caffe's channel axis 1 is our last axis, and an
InnerProduct on a spatial tensor flattens in H, W, C order, which the weight loader
undoes by permuting rows (WeightGroup.flatten_hwc).

Keras layer names are `keras_name(caffe name)`; a convolution with group g is g Conv2D
layers named `<name>_1` .. `<name>_g`. The Softmax that produces the network output is
named "prob", so its input is the logits whatever the Caffe file calls the layers.
"""

from pathlib import Path

import keras

from replication.caffe import params
from replication.caffe.net import CaffeFormatError, Layer, Net
from replication.caffe.text import read_prototxt
from replication.errors import ReplicationError
from replication.models.groups import WeightGroup, keras_name, set_weight_groups
from replication.models.layers import LRN, CaffePooling2D, grouped_conv2d, grouped_member_names


def build_from_prototxt(path, input_shape=None) -> keras.Model:
    """Build the network a deploy prototxt (current or V1 format) describes.

    input_shape: (height, width, channels) to use instead of the file's input size.
    The batch size is always left open. Weights are not loaded (see models.weights).
    """
    path = Path(path)
    return build_from_net(read_prototxt(path), source=path, input_shape=input_shape)


def build_from_net(net: Net, source=None, input_shape=None) -> keras.Model:
    """As build_from_prototxt, for a Net already read; `source` names it in errors."""
    return _Builder(net, source).build(input_shape)


def supported_types() -> tuple[str, ...]:
    return tuple(sorted(_LAYER_BUILDERS)) + ("Input",)


class _Builder:
    def __init__(self, net: Net, source):
        self.net, self.source = net, source
        self.blobs: dict[str, object] = {}  # Caffe blob name -> current Keras tensor
        self.groups: list[WeightGroup] = []
        self.names: set[str] = set()  # Keras layer names handed out

    def build(self, input_shape) -> keras.Model:
        for layer in self.net.layers:  # refuse before building anything
            if layer.type not in _LAYER_BUILDERS and layer.type != "Input":
                raise ReplicationError(
                    self.source, f"{_describe(layer)}: unsupported layer type {layer.type!r} "
                    f"(supported: {', '.join(supported_types())})"
                )
        inputs = self._inputs(input_shape)
        output_blobs = _output_blobs(self.net)
        for layer in self.net.layers:
            if layer.type == "Input":
                continue  # its tops are the model inputs, made above
            try:
                self._add(layer, final=len(output_blobs) == 1 and layer.tops == output_blobs)
            except ValueError as err:  # Keras/helpers refusing a shape: still this layer's fault
                raise ReplicationError(self.source, f"{_describe(layer)}: {err}") from None
            except ReplicationError as err:
                if err.path is not None:
                    raise
                raise type(err)(self.source, err.message) from None
        outputs = [self.blobs[b] for b in output_blobs]
        model = keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs,
                            name=keras_name(self.net.name or "caffe_net"))
        set_weight_groups(model, self.groups)
        return model

    def _inputs(self, input_shape):
        if len(self.net.inputs) != 1:
            raise CaffeFormatError(
                self.source, f"expected one network input, found {len(self.net.inputs)}: "
                f"{list(self.net.inputs)}"
            )
        (blob, shape), = self.net.inputs.items()
        if input_shape is None:
            if len(shape) != 4:
                raise CaffeFormatError(
                    self.source, f"input {blob!r} has shape {shape}, not N,C,H,W: give input_shape"
                )
            _, channels, height, width = shape
            input_shape = (height, width, channels)
        tensor = keras.Input(shape=tuple(input_shape), name=self._name(blob))
        self.blobs[blob] = tensor
        return tensor

    def _add(self, layer: Layer, final: bool):
        if not layer.name:
            raise CaffeFormatError(None, f"a {layer.type} layer has no name")
        if not layer.bottoms:
            raise CaffeFormatError(None, f"{_describe(layer)} has no bottom")
        missing = [b for b in layer.bottoms if b not in self.blobs]
        if missing:
            raise CaffeFormatError(
                None, f"{_describe(layer)}: bottom {missing[0]!r} is not written by any earlier layer"
            )
        if len(layer.tops) != 1:
            raise CaffeFormatError(None, f"{_describe(layer)}: needs one top, has {layer.tops}")
        name = self._name("prob" if final and layer.type == "Softmax" else layer.name)
        bottoms = [self.blobs[b] for b in layer.bottoms]
        tensor, group = _LAYER_BUILDERS[layer.type](layer, bottoms, name)
        self.blobs[layer.tops[0]] = tensor
        if group is not None:
            self.groups.append(group)

    def _name(self, caffe_name: str) -> str:
        name = keras_name(caffe_name)
        if name in self.names:
            raise CaffeFormatError(None, f"two layers or blobs map to the Keras name {name!r}")
        self.names.add(name)
        return name


def _output_blobs(net: Net) -> list[str]:
    """Blobs written and never read afterwards: what Caffe reports as the net's outputs."""
    unread = dict.fromkeys(net.inputs)
    for layer in net.layers:
        if layer.type == "Input":
            continue
        for blob in layer.bottoms:
            unread.pop(blob, None)
        unread.update(dict.fromkeys(layer.tops))
    return list(unread)


def _describe(layer: Layer) -> str:
    return f"layer {layer.name!r} ({layer.type})"


def _one_bottom(layer: Layer, bottoms):
    if len(bottoms) != 1:
        raise CaffeFormatError(None, f"{_describe(layer)}: needs one bottom, has {layer.bottoms}")
    return bottoms[0]


def _spatial_bottom(layer: Layer, bottoms):
    x = _one_bottom(layer, bottoms)
    if len(x.shape) != 4:
        raise CaffeFormatError(None, f"{_describe(layer)}: needs an N,C,H,W input, got "
                               f"{len(x.shape)}-D {layer.bottoms[0]!r}")
    return x


def _nhwc_axis(layer: Layer, caffe_axis: int, rank: int) -> int:
    """Caffe's (N, C, H, W) axis index -> the same axis of our (N, H, W, C) tensor."""
    if not -rank <= caffe_axis < rank:
        raise CaffeFormatError(None, f"{_describe(layer)}: axis {caffe_axis} of a {rank}-D blob")
    caffe_axis %= rank
    if rank != 4:
        return caffe_axis
    return {0: 0, 1: 3, 2: 1, 3: 2}[caffe_axis]


def _convolution(layer, bottoms, name):
    x = _spatial_bottom(layer, bottoms)
    p = params.conv_params(layer)
    if x.shape[-1] % p.group:
        raise CaffeFormatError(None, f"{_describe(layer)}: {x.shape[-1]} input channels do not "
                               f"split into {p.group} groups")
    y = grouped_conv2d(x, p.num_output, p.kernel, name=name, stride=p.stride, pad=p.pad,
                       groups=p.group, dilation=p.dilation, use_bias=p.bias_term)
    return y, WeightGroup(layer.name, grouped_member_names(name, p.group), layer.name)


def _inner_product(layer, bottoms, name):
    x = _one_bottom(layer, bottoms)
    p = params.inner_product_params(layer)
    if p.axis % len(x.shape) != 1:
        raise CaffeFormatError(None, f"{_describe(layer)}: InnerProduct axis {p.axis} "
                               "is not supported (only 1)")
    flatten_hwc = None
    if len(x.shape) == 4:
        flatten_hwc = tuple(int(d) for d in x.shape[1:])
        x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    y = keras.layers.Dense(p.num_output, use_bias=p.bias_term, name=name)(x)
    return y, WeightGroup(layer.name, (name,), layer.name, flatten_hwc=flatten_hwc)


def _pooling(layer, bottoms, name):
    x = _spatial_bottom(layer, bottoms)
    p = params.pool_params(layer)
    window = {} if p.global_pooling else {"kernel": p.kernel}  # global: the input's size
    pool = CaffePooling2D(method=p.pool, stride=p.stride, pad=p.pad,
                          global_pooling=p.global_pooling, name=name, **window)
    return pool(x), None


def _lrn(layer, bottoms, name):
    x = _spatial_bottom(layer, bottoms)
    p = params.lrn_params(layer)
    return LRN(p.local_size, p.alpha, p.beta, p.k, p.norm_region, name=name)(x), None


def _relu(layer, bottoms, name):
    x = _one_bottom(layer, bottoms)
    return keras.layers.ReLU(negative_slope=params.relu_negative_slope(layer), name=name)(x), None


def _concat(layer, bottoms, name):
    ranks = {len(x.shape) for x in bottoms}
    if len(ranks) != 1:
        raise CaffeFormatError(None, f"{_describe(layer)}: bottoms of different ranks")
    axis = _nhwc_axis(layer, params.concat_axis(layer), ranks.pop())
    if len(bottoms) == 1:
        return bottoms[0], None  # Caffe passes a single bottom through
    return keras.layers.Concatenate(axis=axis, name=name)(bottoms), None


def _softmax(layer, bottoms, name):
    x = _one_bottom(layer, bottoms)
    caffe_axis = params.softmax_axis(layer)
    if len(x.shape) == 4 and tuple(x.shape[1:3]) == (1, 1) and caffe_axis % 4 == 1:
        # e.g. SqueezeNet's global pooling: (N, 1, 1, classes) -> (N, classes), so the
        # probabilities and the logits (this layer's input) are plain score matrices.
        x = keras.layers.Flatten(name=f"{name}_flatten")(x)
    axis = _nhwc_axis(layer, caffe_axis, len(x.shape))
    return keras.layers.Softmax(axis=axis, name=name)(x), None


def _dropout(layer, bottoms, name):
    # The identity at inference (every sweep); active when the network is trained.
    return keras.layers.Dropout(params.dropout_ratio(layer), name=name)(_one_bottom(layer, bottoms)), None


_LAYER_BUILDERS = {
    "Convolution": _convolution,
    "InnerProduct": _inner_product,
    "Pooling": _pooling,
    "LRN": _lrn,
    "ReLU": _relu,
    "Concat": _concat,
    "Softmax": _softmax,
    "Dropout": _dropout,
}
