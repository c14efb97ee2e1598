"""Keras building blocks that compute exactly what the matching Caffe layers compute.

Shared by the hand-written AlexNet (alexnet.py) and the generic prototxt builder:

- `LRN`: Caffe's local response normalisation, constructed from Caffe's own
  parameters (local_size, alpha, beta, k, norm_region).
- `CaffePooling2D`: MAX or AVE pooling with Caffe's padding and its ceil rounding
  of the output size.
- `grouped_conv2d`: a Caffe convolution with `group: g`, built as g Conv2D layers on
  channel slices (`ChannelSlice`) and concatenated, with Caffe's symmetric padding.

All are plain `keras.layers.Layer` subclasses (never `Lambda`), registered for
serialisation, so models that use them save and load in Keras' safe mode once this
module is imported.
"""

import math

import keras
import numpy as np
import tensorflow as tf  # Keras has no LRN op; the project runs Keras on TensorFlow, which has it fused
from keras import ops

_PACKAGE = "replication"


def _pair(value) -> tuple[int, int]:
    """Caffe lets kernel/stride/pad be one number or separate _h/_w values."""
    if isinstance(value, (tuple, list)):
        h, w = value
        return int(h), int(w)
    return int(value), int(value)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LRN(keras.layers.Layer):
    """Caffe's LRN layer on NHWC tensors.

    ACROSS_CHANNELS (Caffe's default, AlexNet and GoogLeNet):
        y = x / (k + alpha/n * sum of x^2 over the n channels centred on x) ** beta
    Channels beyond the edges count as 0. Caffe divides alpha by the window size n
    (TensorFlow's tf.nn.local_response_normalization does not, so it would need alpha/n);
    the sum is computed by `_lrn_across_channels`, which is faster than that op on a CPU.

    WITHIN_CHANNEL (e.g. Caffe's cifar10_full):
        y = x / (1 + alpha/n^2 * sum of x^2 over the n x n spatial window) ** beta
    with zeros outside the image counted in the window (Caffe builds it from AVE
    pooling with pad (n-1)/2, whose divisor is always n^2 here). Caffe ignores k
    in this mode, and so do we.

    The defaults are caffe.proto's.
    """

    def __init__(self, local_size=5, alpha=1.0, beta=0.75, k=1.0, norm_region="ACROSS_CHANNELS", **kwargs):
        super().__init__(**kwargs)
        if local_size % 2 != 1:
            # Caffe refuses even sizes too ("LRN only supports odd values for local_size").
            raise ValueError(f"LRN local_size must be odd, got {local_size}")
        if norm_region not in ("ACROSS_CHANNELS", "WITHIN_CHANNEL"):
            raise ValueError(f"unknown LRN norm_region {norm_region!r}")
        self.local_size = int(local_size)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = float(k)
        self.norm_region = norm_region

    def call(self, x):
        n = self.local_size
        if self.norm_region == "ACROSS_CHANNELS":
            return _lrn_across_channels(x, n, self.k, self.alpha / n, self.beta)
        half = (n - 1) // 2
        squares = ops.pad(ops.square(x), [[0, 0], [half, half], [half, half], [0, 0]])
        mean_square = ops.average_pool(squares, n, strides=1, padding="valid")
        return x * ops.power(1.0 + self.alpha * mean_square, -self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "local_size": self.local_size,
            "alpha": self.alpha,
            "beta": self.beta,
            "k": self.k,
            "norm_region": self.norm_region,
        }


@tf.function(jit_compile=True)
def _lrn_across_channels(x, n, k, alpha_over_n, beta):
    """Caffe's ACROSS_CHANNELS LRN as n shifted adds of the zero-padded squares, compiled
    by XLA into one pass over memory.

    Same formula as tf.nn.local_response_normalization (with alpha/n), which on the CPU
    takes as long as the convolution before it; this is about 3x faster and agrees with
    it to 3e-7 of the largest output (docs/performance.md has the timings). beta = 0.75
    (every BVLC model) is x * t^-1/2 * t^-1/4, cheaper than pow.
    """
    half = (n - 1) // 2
    channels = x.shape[-1]
    squares = tf.pad(tf.square(x), [[0, 0], [0, 0], [0, 0], [half, half]])
    window_sum = squares[..., 0:channels]
    for i in range(1, n):
        window_sum += squares[..., i : i + channels]
    scale = k + alpha_over_n * window_sum
    if beta == 0.75:
        inverse_root = tf.math.rsqrt(scale)
        return x * inverse_root * tf.sqrt(inverse_root)
    return x * tf.pow(scale, -beta)


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, round_mode: str = "CEIL") -> int:
    """Caffe's pooling output size: rounded up (or down under the later round_mode:
    FLOOR option), minus the last window if it would start inside the bottom/right
    padding (pooling_layer.cpp)."""
    span = size + 2 * pad - kernel
    pooled = (math.ceil(span / stride) if round_mode == "CEIL" else span // stride) + 1
    if pad and (pooled - 1) * stride >= size + pad:
        pooled -= 1
    return pooled


def caffe_conv_size(size: int, kernel: int, stride: int = 1, pad: int = 0, dilation: int = 1) -> int:
    """Caffe's convolution output size (rounded down, like every framework)."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


class _Axis:
    """One spatial axis of a Caffe pooling: input size, kernel, stride, pad and
    what follows from them."""

    def __init__(self, size: int, kernel: int, stride: int, pad: int, round_mode: str = "CEIL"):
        self.size, self.kernel, self.stride, self.pad = size, kernel, stride, pad
        self.pooled = caffe_pooled_size(size, kernel, stride, pad, round_mode)
        # The windows span (pooled-1)*stride + kernel rows from the top pad on; the
        # input gives size + pad of them. Negative: trailing rows no window uses.
        self.after = (self.pooled - 1) * stride + kernel - (size + pad)

    def window_counts(self) -> np.ndarray:
        """Cells of each window inside the padded input [-pad, size+pad): Caffe's AVE divisor."""
        starts = np.arange(self.pooled) * self.stride - self.pad
        return np.minimum(starts + self.kernel, self.size + self.pad) - starts


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CaffePooling2D(keras.layers.Layer):
    """Caffe's Pooling layer (MAX or AVE) on NHWC tensors.

    Caffe pads `pad` on every side and then rounds the number of windows up, so the
    last window may hang over the bottom/right edge. We pad the bottom/right by
    exactly what that window needs (or crop rows no window reaches) and pool with
    'valid' windows; when floor and ceil agree no padding op is added at all.

    MAX: padded cells are -inf, so a window takes the maximum of its real cells,
    as Caffe's clipped windows do.
    AVE: Caffe divides each window's sum by its size clipped to the padded input
    (rows -pad .. H+pad-1): cells of the symmetric `pad` border count as zeros in
    the divisor, the extra cells of the ceil overhang do not. We sum over
    zero-padded windows and divide by that clipped size, computed from the shapes.

    `global_pooling=True` pools the whole map (Caffe's global_pooling), i.e. the
    kernel is the input's height and width. `round_mode="FLOOR"` is the option later
    Caffe versions added; the default CEIL is what every BVLC model was built with.
    """

    def __init__(self, method="MAX", kernel=None, stride=1, pad=0, global_pooling=False, round_mode="CEIL", **kwargs):
        super().__init__(**kwargs)
        if method not in ("MAX", "AVE"):
            raise ValueError(f"unsupported pooling method {method!r} (Caffe's MAX and AVE are)")
        if round_mode not in ("CEIL", "FLOOR"):
            raise ValueError(f"unknown pooling round_mode {round_mode!r}")
        self.round_mode = round_mode
        if kernel is None and not global_pooling:
            raise ValueError("a pooling kernel is needed unless global_pooling is set")
        self.method = method
        self.kernel = None if kernel is None else _pair(kernel)
        self.stride = _pair(stride)
        self.pad = _pair(pad)
        self.global_pooling = bool(global_pooling)

    def _geometry(self, input_shape):
        """Per axis (H, W): an _Axis with Caffe's numbers for that input size."""
        sizes = input_shape[1:3]
        if any(s is None for s in sizes):
            raise ValueError(f"{self.name}: Caffe pooling needs a fixed input size, got {input_shape}")
        if self.global_pooling:
            return [_Axis(size, size, 1, 0) for size in sizes]
        return [
            _Axis(size, k, s, p, self.round_mode)
            for size, k, s, p in zip(sizes, self.kernel, self.stride, self.pad)
        ]

    def build(self, input_shape):
        self._geometry(input_shape)  # fail at build time, with the layer's name, on unknown sizes

    def call(self, x):
        h, w = self._geometry(x.shape)
        # Crop the rows no window reaches, then pad what the windows need.
        if h.after < 0 or w.after < 0:
            x = x[:, : h.size + min(h.after, 0), : w.size + min(w.after, 0), :]
        padding = [[0, 0], [h.pad, max(h.after, 0)], [w.pad, max(w.after, 0)], [0, 0]]
        needs_padding = any(v for pair in padding for v in pair)
        window, strides = (h.kernel, w.kernel), (h.stride, w.stride)
        if self.method == "MAX":
            if needs_padding:
                x = ops.pad(x, padding, constant_values=-np.inf)
            return ops.max_pool(x, window, strides=strides, padding="valid")
        if needs_padding:
            x = ops.pad(x, padding)
        mean = ops.average_pool(x, window, strides=strides, padding="valid")
        # average_pool divided by kh*kw; Caffe divides by the clipped window.
        counts = np.outer(h.window_counts(), w.window_counts())
        if np.all(counts == h.kernel * w.kernel):
            return mean
        rescale = (h.kernel * w.kernel / counts).astype(np.float32)[None, :, :, None]
        return mean * ops.convert_to_tensor(rescale, dtype=mean.dtype)

    def compute_output_shape(self, input_shape):
        h, w = self._geometry(input_shape)
        return (input_shape[0], h.pooled, w.pooled, input_shape[3])

    def get_config(self):
        return {
            **super().get_config(),
            "method": self.method,
            "kernel": self.kernel,
            "stride": self.stride,
            "pad": self.pad,
            "global_pooling": self.global_pooling,
            "round_mode": self.round_mode,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ChannelSlice(keras.layers.Layer):
    """Channels [start, stop) of an NHWC tensor: one group's input of a grouped conv."""

    def __init__(self, start, stop, **kwargs):
        super().__init__(**kwargs)
        self.start = int(start)
        self.stop = int(stop)

    def call(self, x):
        return x[..., self.start : self.stop]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.stop - self.start)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


def grouped_conv2d(
    x,
    filters: int,
    kernel,
    name: str,
    stride=1,
    pad=0,
    groups: int = 1,
    dilation=1,
    use_bias: bool = True,
    activation=None,
):
    """A Caffe Convolution layer on NHWC tensor `x`; returns the output tensor.

    Caffe pads symmetrically, which Keras' 'same' does only for stride 1 and a pad of
    half the (dilated) kernel; there 'same' is used (it saves a copy of the input),
    otherwise the padding is an explicit ZeroPadding2D (named `name + "_pad"`) before
    'valid' convolutions.
    With groups == 1 this is one Conv2D named `name`. With groups == g it is g Conv2D
    layers named `name_1` .. `name_g`, layer i seeing input channels
    [i*C/g, (i+1)*C/g) and producing filters [i*O/g, (i+1)*O/g) of the output, joined
    by a Concatenate named `name` -- the layout a WeightGroup with those members
    describes, and the one the weight loader fills from Caffe's blob.
    """
    pad_hw, kernel_hw, stride_hw, dilation_hw = _pair(pad), _pair(kernel), _pair(stride), _pair(dilation)
    same = stride_hw == (1, 1) and all(2 * p == d * (k - 1) for p, k, d in zip(pad_hw, kernel_hw, dilation_hw))
    if any(pad_hw) and not same:
        x = keras.layers.ZeroPadding2D(padding=(pad_hw, pad_hw), name=f"{name}_pad")(x)
    conv_args = dict(
        kernel_size=kernel_hw,
        strides=stride_hw,
        dilation_rate=dilation_hw,
        padding="same" if same else "valid",
        use_bias=use_bias,
        activation=activation,
    )
    if groups == 1:
        return keras.layers.Conv2D(filters, name=name, **conv_args)(x)
    channels = x.shape[-1]
    if channels % groups or filters % groups:
        raise ValueError(f"{name}: {channels} input channels / {filters} filters do not split into {groups} groups")
    step = channels // groups
    outputs = []
    for i in range(groups):
        part = ChannelSlice(i * step, (i + 1) * step, name=f"{name}_{i + 1}_in")(x)
        outputs.append(keras.layers.Conv2D(filters // groups, name=f"{name}_{i + 1}", **conv_args)(part))
    return keras.layers.Concatenate(axis=-1, name=name)(outputs)


def grouped_member_names(name: str, groups: int) -> tuple[str, ...]:
    """Keras layer names `grouped_conv2d` gives the convolution(s) it builds."""
    return (name,) if groups == 1 else tuple(f"{name}_{i + 1}" for i in range(groups))
