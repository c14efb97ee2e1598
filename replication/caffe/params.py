"""Typed layer parameters with Caffe's defaults, read from a parsed prototxt layer.

The text parser keeps every field as a list of raw values; this module knows what
caffe.proto says about the few layer types the builders support: which fields
exist, their defaults, and how Caffe itself combines them (kernel_size versus
kernel_h/kernel_w, one value for both spatial axes or one per axis). Settings that
the builders cannot compute the way Caffe does are errors here, so no network is
ever built that silently computes something else.

Errors carry no file (a Layer does not know it); the builder adds it.
"""

from typing import NamedTuple

from replication.caffe.net import CaffeFormatError, Layer


class ConvParams(NamedTuple):
    num_output: int
    kernel: tuple[int, int]  # (h, w)
    stride: tuple[int, int]
    pad: tuple[int, int]
    dilation: tuple[int, int]
    group: int
    bias_term: bool


class PoolParams(NamedTuple):
    pool: str  # "MAX" or "AVE"
    kernel: tuple[int, int] | None  # None with global pooling: the whole input
    stride: tuple[int, int]
    pad: tuple[int, int]
    global_pooling: bool


class LRNParams(NamedTuple):
    local_size: int
    alpha: float  # as written in the prototxt: Caffe divides it by the window size
    beta: float
    k: float  # Caffe ignores it for WITHIN_CHANNEL
    norm_region: str  # "ACROSS_CHANNELS" or "WITHIN_CHANNEL"


class InnerProductParams(NamedTuple):
    num_output: int
    bias_term: bool
    axis: int


def conv_params(layer: Layer) -> ConvParams:
    block = _block(layer, "convolution_param")
    if _optional(layer, block, "axis", 1) != 1:
        raise _error(layer, "convolution over an axis other than 1 (channels) is not supported")
    group = _optional(layer, block, "group", 1)
    num_output = _required(layer, block, "num_output")
    if group < 1 or num_output % group:
        raise _error(layer, f"num_output {num_output} is not divisible by group {group}")
    return ConvParams(
        num_output=num_output,
        kernel=_spatial(layer, block, "kernel_size", "kernel_h", "kernel_w", default=None),
        stride=_spatial(layer, block, "stride", "stride_h", "stride_w", default=1),
        pad=_spatial(layer, block, "pad", "pad_h", "pad_w", default=0),
        dilation=_spatial(layer, block, "dilation", None, None, default=1),
        group=group,
        bias_term=_optional(layer, block, "bias_term", True),
    )


def pool_params(layer: Layer) -> PoolParams:
    block = _block(layer, "pooling_param")
    pool = _optional(layer, block, "pool", "MAX")
    if pool not in ("MAX", "AVE"):
        raise _error(layer, f"pooling method {pool} is not supported (only MAX and AVE)")
    global_pooling = _optional(layer, block, "global_pooling", False)
    stride = _spatial(layer, block, "stride", "stride_h", "stride_w", default=1)
    pad = _spatial(layer, block, "pad", "pad_h", "pad_w", default=0)
    if global_pooling:
        # Caffe refuses a kernel size with global pooling, and any pad or stride
        if any(f in block for f in ("kernel_size", "kernel_h", "kernel_w")):
            raise _error(layer, "global_pooling with a kernel size")
        if pad != (0, 0) or stride != (1, 1):
            raise _error(layer, "global_pooling needs pad 0 and stride 1")
        kernel = None
    else:
        kernel = _spatial(layer, block, "kernel_size", "kernel_h", "kernel_w", default=None)
        if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
            raise _error(layer, f"pad {pad} must be smaller than the kernel {kernel}")
    return PoolParams(pool, kernel, stride, pad, global_pooling)


def lrn_params(layer: Layer) -> LRNParams:
    block = _block(layer, "lrn_param")
    region = _optional(layer, block, "norm_region", "ACROSS_CHANNELS")
    if region not in ("ACROSS_CHANNELS", "WITHIN_CHANNEL"):
        raise _error(layer, f"unknown LRN norm_region {region}")
    local_size = _optional(layer, block, "local_size", 5)
    if local_size % 2 == 0:
        raise _error(layer, f"LRN local_size must be odd, got {local_size}")  # as Caffe
    return LRNParams(
        local_size=local_size,
        alpha=float(_optional(layer, block, "alpha", 1.0)),
        beta=float(_optional(layer, block, "beta", 0.75)),
        k=float(_optional(layer, block, "k", 1.0)),
        norm_region=region,
    )


def inner_product_params(layer: Layer) -> InnerProductParams:
    block = _block(layer, "inner_product_param")
    if _optional(layer, block, "transpose", False):
        raise _error(layer, "transposed InnerProduct weights are not supported")
    return InnerProductParams(
        num_output=_required(layer, block, "num_output"),
        bias_term=_optional(layer, block, "bias_term", True),
        axis=_optional(layer, block, "axis", 1),
    )


def concat_axis(layer: Layer) -> int:
    block = _block(layer, "concat_param")
    if "axis" in block:
        return _optional(layer, block, "axis", 1)
    return _optional(layer, block, "concat_dim", 1)  # the V1 name of the same setting


def softmax_axis(layer: Layer) -> int:
    return _optional(layer, _block(layer, "softmax_param"), "axis", 1)


def relu_negative_slope(layer: Layer) -> float:
    return float(_optional(layer, _block(layer, "relu_param"), "negative_slope", 0.0))


def dropout_ratio(layer: Layer) -> float:
    ratio = float(_optional(layer, _block(layer, "dropout_param"), "dropout_ratio", 0.5))
    if not 0.0 <= ratio < 1.0:
        raise _error(layer, f"dropout_ratio must be in [0, 1), not {ratio:g}")
    return ratio


def _block(layer: Layer, name: str) -> dict:
    """The layer's `name { ... }` sub-message; empty (all defaults) when absent."""
    blocks = layer.params.get(name, [])
    if len(blocks) > 1:
        raise _error(layer, f"{name} given {len(blocks)} times")
    if blocks and not isinstance(blocks[0], dict):
        raise _error(layer, f"{name} must be a {{ ... }} block")
    return blocks[0] if blocks else {}


def _optional(layer: Layer, block: dict, field: str, default):
    values = block.get(field, [])
    if len(values) > 1:
        raise _error(layer, f"{field} given {len(values)} times")
    if not values:
        return default
    value = values[0]
    if not _same_kind(value, default):
        raise _error(layer, f"{field}: expected {_kind(default)}, got {value!r}")
    return value


def _required(layer: Layer, block: dict, field: str) -> int:
    value = _optional(layer, block, field, None)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise _error(layer, f"{field} must be a positive integer, got {value!r}")
    return value


def _spatial(layer, block, field, field_h, field_w, default) -> tuple[int, int]:
    """Caffe's 2-D rule: `field_h` and `field_w` together, or `field` once for both
    axes or twice (h, w), or neither (default; None = required)."""
    separate = [f for f in (field_h, field_w) if f is not None and f in block]
    values = block.get(field, [])
    if separate:
        # Caffe lets a convolution give just one of pad_h/pad_w (the other is 0)
        if values or (len(separate) != 2 and field != "pad"):
            raise _error(layer, f"give {field_h} and {field_w} together, without {field}")
        hw = tuple(_optional(layer, block, f, 0) for f in (field_h, field_w))
    elif len(values) == 1:
        hw = (values[0], values[0])
    elif len(values) == 2:
        hw = tuple(values)
    elif not values and default is not None:
        hw = (default, default)
    else:
        raise _error(layer, f"{field} needs 1 or 2 values, got {len(values)}")
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in hw):
        raise _error(layer, f"{field} must be non-negative integers, got {hw}")
    if field != "pad" and 0 in hw:
        raise _error(layer, f"{field} must be positive, got {hw}")
    return hw


def _same_kind(value, default) -> bool:
    """Whether a parsed value fits a field whose caffe.proto default is `default`."""
    if default is None:
        return True  # a required field: the caller checks it
    if isinstance(default, (bool, str)):
        return type(value) is type(default)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if isinstance(default, int) else isinstance(value, (int, float))


def _kind(default) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a name"}.get(
        type(default), "a value"
    )


def _error(layer: Layer, message: str) -> CaffeFormatError:
    return CaffeFormatError(None, f"layer {layer.name!r} ({layer.type}): {message}")
