"""The AlexNet the paper's authors ran: heuritech's convnets-keras `AlexNet`, in Keras 3.

The paper's text names the Caffe Model Zoo AlexNet, but the authors' code (net.py of
kreimanlab/neural_net_robustness) builds `convnetskeras.convnets.AlexNet` and loads
heuritech's alexnet_weights.h5, a Keras 1 weight file (see keras1.py), whose arrays the
paper's Table 1 describes. That network differs from BVLC's:

- blocks 1 and 2 run conv -> ReLU -> max-pool 3/2 -> LRN (pooling before the LRN, as
  CaffeNet), and the pooling rounds down (Keras' "valid"; at AlexNet's sizes the same);
- its LRN is x / (k + alpha * sum of x^2 over n channels)^beta with k = 2, alpha = 1e-4,
  beta = 0.75, n = 5, squares zero-padded at both ends: alpha is not divided by n as in
  Caffe, so it is the project's (Caffe-parameterised) LRN with alpha = n * 1e-4;
- conv_2, conv_4 and conv_5 are two-group convolutions, the layers conv_2_1/conv_2_2 etc.,
  and its layer names are the paper's: conv_1 .. conv_5, dense_1 .. dense_3;
- its input is RGB minus the mean pixel RGB 123.68/116.779/103.939, resized to 256 x 256
  by PIL's bilinear filter and centre-cropped to 227 x 227 (mean="rgb_pixel",
  resize_filter="pil_bilinear" in data.preprocessing, the model's default preprocessing);
- classes are indexed by sorted WordNet id, as everywhere in this project.

The Keras 3 model is channels-last; the loader flips the Theano kernels and reorders
dense_1's rows (keras1.keras3_arrays). Its two Dropout layers (rate 0.5) are the identity at
inference and active in training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from replication.errors import ReplicationError
from replication.models.alexnet import paper_weight_groups
from replication.models.groups import set_weight_groups
from replication.models.keras1 import LayerWeights, load_keras1_weights, write_keras1_weights
from replication.models.registry import register_model

if TYPE_CHECKING:  # keras (and TensorFlow) load only when a model is built or loaded
    import keras

IMAGE_SIZE = 227
# heuritech's crosschannelnormalization(alpha=1e-4, k=2, beta=0.75, n=5) in the Caffe
# parameters the LRN layer takes (Caffe divides alpha by n).
_LRN = dict(local_size=5, alpha=5 * 1e-4, beta=0.75, k=2.0)
PREPROCESSING = {"resize": 256, "crop": 227, "mean": "rgb_pixel", "resize_filter": "pil_bilinear"}

# Keras 1 weight shapes of heuritech's AlexNet: Convolution2D W (filters, channels, rows,
# cols), Dense W (inputs, outputs), then b.
KERAS1_SHAPES = {
    "conv_1": (96, 3, 11, 11),
    "conv_2_1": (128, 48, 5, 5),
    "conv_2_2": (128, 48, 5, 5),
    "conv_3": (384, 256, 3, 3),
    "conv_4_1": (192, 192, 3, 3),
    "conv_4_2": (192, 192, 3, 3),
    "conv_5_1": (128, 192, 3, 3),
    "conv_5_2": (128, 192, 3, 3),
    "dense_1": (9216, 4096),
    "dense_2": (4096, 4096),
    "dense_3": (4096, 1000),
}
# Every layer of the Keras 1 model in network order, as its save_weights lists them.
# The weightless layers heuritech left unnamed carry Keras 1's automatic names; no
# reader uses them.
KERAS1_LAYER_NAMES = (
    "input_1", "conv_1", "maxpooling2d_1", "convpool_1", "zeropadding2d_1", "lambda_1", "lambda_2",
    "conv_2_1", "conv_2_2", "conv_2", "maxpooling2d_2", "lambda_3", "zeropadding2d_2", "conv_3",
    "zeropadding2d_3", "lambda_4", "lambda_5", "conv_4_1", "conv_4_2", "conv_4", "zeropadding2d_4",
    "lambda_6", "lambda_7", "conv_5_1", "conv_5_2", "conv_5", "convpool_5", "flatten", "dense_1",
    "dropout_1", "dense_2", "dropout_2", "dense_3", "softmax",
)  # fmt: skip


def build_convnets_keras(image_size: int = IMAGE_SIZE) -> keras.Model:
    """heuritech's AlexNet as a Keras 3 model, without weights.

    Args:
        image_size: the side of the square RGB input (227 for the trained weights).

    Returns:
        The keras.Model (NHWC float32 RGB, mean pixel subtracted); its output is the
        softmax layer "prob", whose input is dense_3's logits, and its WeightGroups are
        the paper's layers conv_1 .. dense_3.
    """
    import keras

    from replication.models.layers import LRN, grouped_conv2d
    image = keras.Input((image_size, image_size, 3), name="image")
    x = grouped_conv2d(image, 96, 11, stride=4, activation="relu", name="conv_1")
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool_1")(x)
    x = LRN(**_LRN, name="norm_1")(x)  # heuritech's "convpool_1"
    x = grouped_conv2d(x, 256, 5, pad=2, groups=2, activation="relu", name="conv_2")
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool_2")(x)
    x = LRN(**_LRN, name="norm_2")(x)
    x = grouped_conv2d(x, 384, 3, pad=1, activation="relu", name="conv_3")
    x = grouped_conv2d(x, 384, 3, pad=1, groups=2, activation="relu", name="conv_4")
    x = grouped_conv2d(x, 256, 3, pad=1, groups=2, activation="relu", name="conv_5")
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool_5")(x)  # heuritech's "convpool_5"
    pool5_hwc = tuple(x.shape[1:])
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(4096, activation="relu", name="dense_1")(x)
    x = keras.layers.Dropout(0.5, name="dropout_1")(x)
    x = keras.layers.Dense(4096, activation="relu", name="dense_2")(x)
    x = keras.layers.Dropout(0.5, name="dropout_2")(x)
    logits = keras.layers.Dense(1000, name="dense_3")(x)
    prob = keras.layers.Softmax(name="prob")(logits)
    model = keras.Model(image, prob, name="convnets_keras")

    # A group's source names the Keras 1 layer (or pair of layers) of the paper's name.
    sources = ("conv_1", "conv_2", "conv_3", "conv_4", "conv_5", "dense_1", "dense_2", "dense_3")
    set_weight_groups(model, paper_weight_groups(sources, pool5_hwc))
    return model


@register_model(
    "convnets_keras",
    title="AlexNet (convnets-keras)",
    weights_format="keras1",
    preprocessing=PREPROCESSING,
    load_weights=load_keras1_weights,
)
def convnets_keras(input_shape=None) -> keras.Model:
    """heuritech's convnets-keras AlexNet, the paper's own (pool before LRN, k = 2, RGB input).

    Args:
        input_shape: (height, width, 3), square; None for 227 x 227.

    Returns:
        The unloaded keras.Model; its weights are heuritech's Keras 1 alexnet_weights.h5.
    """
    if input_shape is None:
        return build_convnets_keras()
    height, width, channels = input_shape
    if height != width or channels != 3:
        raise ReplicationError(None, f"convnets_keras takes square 3-channel images, not {tuple(input_shape)}")
    return build_convnets_keras(height)


def synthetic_keras1_weights(seed: int = 0) -> list[tuple[str, LayerWeights]]:
    """Random weights of heuritech's shapes, in its Keras 1 layout and layer list.

    He-normal scale (standard deviation sqrt(2 / fan_in)), each unit's incoming weights
    centred so its response varies from image to image, dense_3 scaled by 0.2 so the
    logits spread by a few units, biases uniform in [0, 0.2) (as synthetic.py's Caffe
    stand-in). On mean-subtracted pixels conv_1 then responds with magnitudes near 100,
    where the LRN (k = 2, alpha = 1e-4) divides by several: it is far from the identity.

    Args:
        seed: the generator's seed.

    Returns:
        (layer name, [(dataset name, array)]) for every layer in network order,
        weightless layers with an empty list: what `write_keras1_weights` takes.
    """
    rng = np.random.default_rng(seed)
    layers = []
    for name in KERAS1_LAYER_NAMES:
        shape = KERAS1_SHAPES.get(name)
        if shape is None:
            layers.append((name, []))
            continue
        conv = len(shape) == 4
        units = shape[0] if conv else shape[1]
        fan_in = int(np.prod(shape[1:])) if conv else shape[0]
        weights = rng.standard_normal(shape, dtype=np.float32)
        by_unit = weights.reshape(units, fan_in) if conv else weights.T  # a view either way
        by_unit -= by_unit.mean(axis=1, keepdims=True)
        weights *= np.float32(np.sqrt(2.0 / fan_in) * (0.2 if name == "dense_3" else 1.0))
        bias = rng.uniform(0.0, 0.2, size=units).astype(np.float32)
        layers.append((name, [(f"{name}_W", weights), (f"{name}_b", bias)]))
    return layers


def write_synthetic_convnets_keras(path, seed: int = 0) -> list[tuple[str, LayerWeights]]:
    """Write `synthetic_keras1_weights(seed)` as a Keras 1 weight file.

    Args:
        path: the HDF5 file to write.
        seed: the generator's seed.

    Returns:
        The layers written.
    """
    layers = synthetic_keras1_weights(seed)
    write_keras1_weights(path, layers)
    return layers
