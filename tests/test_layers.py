"""The Caffe building blocks against direct numpy transcriptions of Caffe's formulas."""

import math

import keras
import numpy as np
import pytest

from replication.models.layers import LRN, CaffePooling2D, grouped_conv2d


def caffe_lrn_across(x, n, alpha, beta, k):
    """Caffe ACROSS_CHANNELS on NHWC: x / (k + alpha/n * sum over the channel window)^beta."""
    channels = x.shape[-1]
    out = np.empty_like(x, dtype=np.float64)
    for c in range(channels):
        lo, hi = max(0, c - (n - 1) // 2), min(channels, c + (n - 1) // 2 + 1)
        scale = k + alpha / n * np.sum(x[..., lo:hi].astype(np.float64) ** 2, axis=-1)
        out[..., c] = x[..., c] * scale**-beta
    return out


def caffe_lrn_within(x, n, alpha, beta):
    """Caffe WITHIN_CHANNEL on NHWC: x / (1 + alpha/n^2 * sum over the n x n window)^beta."""
    half = (n - 1) // 2
    squares = np.pad(x.astype(np.float64) ** 2, [(0, 0), (half, half), (half, half), (0, 0)])
    _, height, width, _ = x.shape
    window_sum = np.zeros(x.shape)
    for dy in range(n):
        for dx in range(n):
            window_sum += squares[:, dy : dy + height, dx : dx + width, :]
    return x * (1 + alpha / n**2 * window_sum) ** -beta


def caffe_pool(x, method, kernel, stride, pad, round_mode="CEIL"):
    """Caffe's PoolingLayer forward (CPU), on NHWC, for square settings."""
    _, height, width, _ = x.shape
    rounding = math.ceil if round_mode == "CEIL" else math.floor

    def pooled(size):
        n = rounding((size + 2 * pad - kernel) / stride) + 1
        return n - 1 if pad and (n - 1) * stride >= size + pad else n

    out = np.zeros((x.shape[0], pooled(height), pooled(width), x.shape[3]))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            hstart, wstart = i * stride - pad, j * stride - pad
            hend, wend = min(hstart + kernel, height + pad), min(wstart + kernel, width + pad)
            pool_size = (hend - hstart) * (wend - wstart)
            window = x[:, max(hstart, 0) : min(hend, height), max(wstart, 0) : min(wend, width), :]
            if method == "MAX":
                out[:, i, j, :] = window.max(axis=(1, 2))
            else:
                out[:, i, j, :] = window.sum(axis=(1, 2)) / pool_size
    return out


@pytest.mark.parametrize("n, alpha, beta, k", [(5, 1e-4, 0.75, 1.0), (3, 5e-2, 0.6, 2.0), (1, 0.3, 1.0, 0.5)])
def test_lrn_across_channels_matches_caffe_formula(n, alpha, beta, k):
    rng = np.random.default_rng(n)
    # Values of the size of AlexNet's conv1 outputs, so the normalisation really bites.
    x = (rng.standard_normal((2, 4, 5, 11)) * 60).astype(np.float32)
    got = np.asarray(LRN(n, alpha, beta, k)(x))
    expected = caffe_lrn_across(x, n, alpha, beta, k)
    assert not np.allclose(expected, x, rtol=1e-2)
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-6 * np.abs(expected).max())


def test_lrn_within_channel_matches_caffe_formula():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 6, 7, 3)) * 30).astype(np.float32)
    got = np.asarray(LRN(3, 5e-2, 0.75, k=7.0, norm_region="WITHIN_CHANNEL")(x))  # Caffe ignores k here
    expected = caffe_lrn_within(x, 3, 5e-2, 0.75)
    assert not np.allclose(expected, x, rtol=1e-2)
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-6 * np.abs(expected).max())


def test_lrn_rejects_even_window():
    with pytest.raises(ValueError, match="odd"):
        LRN(4, 1e-4, 0.75)


# (size, kernel, stride, pad): exact fits, ceil overhangs, pads, and the case where
# Caffe drops a last window that would start in the padding.
POOLINGS = [
    (13, 3, 2, 0),  # AlexNet pool5: floor and ceil agree
    (6, 3, 2, 0),  # ceil adds a window hanging over the edge
    (8, 3, 2, 1),
    (5, 2, 2, 1),  # the window starting in the padding is dropped
    (10, 3, 3, 2),
    (7, 5, 2, 2),
    (112, 3, 2, 0),  # GoogLeNet-like
    (9, 4, 3, 1),
    (8, 2, 3, 1),  # stride > kernel: the last input row is in no window
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("size, kernel, stride, pad", POOLINGS)
def test_pooling_matches_caffe(method, size, kernel, stride, pad):
    rng = np.random.default_rng(size * 100 + kernel * 10 + stride)
    # Negative values too, so padding with zeros instead of -inf would show in MAX.
    x = rng.standard_normal((2, size, size + 1, 3)).astype(np.float32)
    layer = CaffePooling2D(method, kernel, stride, pad)
    got = np.asarray(layer(x))
    expected = caffe_pool(x, method, kernel, stride, pad)
    assert got.shape == expected.shape
    assert layer.compute_output_shape(x.shape) == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_pooling_floor_mode_matches_caffe(method):
    x = np.random.default_rng(3).standard_normal((1, 8, 9, 2)).astype(np.float32)
    got = np.asarray(CaffePooling2D(method, 3, 2, 1, round_mode="FLOOR")(x))
    expected = caffe_pool(x, method, 3, 2, 1, round_mode="FLOOR")
    assert got.shape == expected.shape == (1, 4, 5, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_global_average_pooling_is_the_mean_of_the_map():
    x = np.random.default_rng(0).standard_normal((2, 13, 13, 4)).astype(np.float32)
    got = np.asarray(CaffePooling2D("AVE", global_pooling=True)(x))
    np.testing.assert_allclose(got[:, 0, 0, :], x.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_grouped_conv_builds_named_members_on_channel_halves():
    image = keras.Input((9, 9, 4))
    out = grouped_conv2d(image, 6, 3, pad=1, groups=2, name="conv")
    model = keras.Model(image, out)
    first, second = model.get_layer("conv_1"), model.get_layer("conv_2")
    assert first.kernel.shape == second.kernel.shape == (3, 3, 2, 3)
    assert out.shape == (None, 9, 9, 6)  # pad 1 keeps the size
    # Zeroing group 2's filters zeroes exactly output channels 3..5.
    second.set_weights([np.zeros((3, 3, 2, 3)), np.zeros(3)])
    y = np.asarray(model(np.random.default_rng(0).standard_normal((1, 9, 9, 4)).astype(np.float32)))
    assert np.abs(y[..., :3]).max() > 0 and np.abs(y[..., 3:]).max() == 0


def caffe_conv(x, kernel, bias, stride, pad):
    """Caffe's Convolution forward on NHWC, groups of 1: zero-pad `pad` on every side,
    then 'valid' windows every `stride`; kernel is (kh, kw, in, out)."""
    kh, kw, _, _ = kernel.shape
    padded = np.pad(x.astype(np.float64), [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    rows = (padded.shape[1] - kh) // stride + 1
    cols = (padded.shape[2] - kw) // stride + 1
    out = np.empty((x.shape[0], rows, cols, kernel.shape[3]))
    for i in range(rows):
        for j in range(cols):
            window = padded[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[:, i, j, :] = np.tensordot(window, kernel, axes=3) + bias
    return out


# Stride 1 with pad = half the kernel goes through Keras' 'same'; the others through an
# explicit ZeroPadding2D. Both must pad as Caffe does.
@pytest.mark.parametrize("kernel, stride, pad", [(3, 1, 1), (5, 1, 2), (3, 1, 2), (3, 2, 1), (1, 1, 0), (4, 1, 1)])
def test_conv_pads_as_caffe(kernel, stride, pad):
    rng = np.random.default_rng(kernel * 10 + stride + pad)
    x = rng.standard_normal((2, 8, 9, 3)).astype(np.float32)
    image = keras.Input(x.shape[1:])
    model = keras.Model(image, grouped_conv2d(image, 4, kernel, stride=stride, pad=pad, name="conv"))
    weights = [rng.standard_normal((kernel, kernel, 3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    model.get_layer("conv").set_weights(weights)
    expected = caffe_conv(x, *weights, stride, pad)
    got = np.asarray(model(x))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_models_with_these_layers_load_in_safe_mode(tmp_path):
    image = keras.Input((11, 11, 4))
    x = grouped_conv2d(image, 6, 3, pad=1, groups=2, name="conv", activation="relu")
    x = LRN(5, 1e-2, 0.75, name="norm")(x)
    x = CaffePooling2D("AVE", 3, 2, pad=1, name="pool")(x)
    model = keras.Model(image, x)
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(0).standard_normal((2, 11, 11, 4)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    assert loaded.get_layer("pool").pad == (1, 1)
