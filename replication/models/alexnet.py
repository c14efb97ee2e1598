"""AlexNet as BVLC's Caffe deploy.prototxt defines it, with the paper's layer names.

Layer by layer the model follows bvlc_alexnet/deploy.prototxt (Caffe names in the
comments); the paper (and the Keras port it used) calls the layers conv_1 .. conv_5
and dense_1 .. dense_3, and splits the two-group convolutions into conv_2_1/conv_2_2,
conv_4_1/conv_4_2 and conv_5_1/conv_5_2. Caffe's drop6 and drop7 (rate 0.5) are Keras
Dropout layers dropout_1 and dropout_2: the identity at inference (the sweeps), active when
the network is trained (python -m replication.recover). Input: NHWC float32, BGR, mean
already subtracted, 227 x 227.

flavour="caffenet" is BVLC's CaffeNet (caffenet_deploy.prototxt): the same layers
and weight shapes, but each pooling comes before its LRN instead of after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replication.errors import ReplicationError
from replication.models.groups import WeightGroup, set_weight_groups
from replication.models.registry import register_model

if TYPE_CHECKING:  # keras (and TensorFlow) load only when a model is built or loaded
    import keras

FLAVOURS = ("alexnet", "caffenet")
IMAGE_SIZE = 227

# Caffe's LRN parameters for norm1 and norm2 (k is Caffe's default).
_LRN = dict(local_size=5, alpha=1e-4, beta=0.75, k=1.0)
# Caffe's pool1, pool2, pool5.
_POOL = dict(method="MAX", kernel=3, stride=2)


def build_alexnet(flavour: str = "alexnet", image_size: int = IMAGE_SIZE) -> keras.Model:
    """The Keras AlexNet (or CaffeNet); its output is the softmax layer "prob",
    whose input is the logits of dense_3 (Caffe's fc8)."""
    import keras

    from replication.models.layers import LRN, CaffePooling2D, grouped_conv2d
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown AlexNet flavour {flavour!r}; choose one of {FLAVOURS}")
    lrn_first = flavour == "alexnet"

    def normalise_and_pool(x, index):
        lrn = LRN(**_LRN, name=f"norm_{index}")
        pool = CaffePooling2D(**_POOL, name=f"pool_{index}")
        return pool(lrn(x)) if lrn_first else lrn(pool(x))

    image = keras.Input((image_size, image_size, 3), name="image")
    x = grouped_conv2d(image, 96, 11, stride=4, activation="relu", name="conv_1")  # conv1 + relu1
    x = normalise_and_pool(x, 1)  # norm1, pool1
    x = grouped_conv2d(x, 256, 5, pad=2, groups=2, activation="relu", name="conv_2")  # conv2 + relu2
    x = normalise_and_pool(x, 2)  # norm2, pool2
    x = grouped_conv2d(x, 384, 3, pad=1, activation="relu", name="conv_3")  # conv3 + relu3
    x = grouped_conv2d(x, 384, 3, pad=1, groups=2, activation="relu", name="conv_4")  # conv4 + relu4
    x = grouped_conv2d(x, 256, 3, pad=1, groups=2, activation="relu", name="conv_5")  # conv5 + relu5
    x = CaffePooling2D(**_POOL, name="pool_5")(x)  # pool5
    pool5_hwc = tuple(x.shape[1:])
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(4096, activation="relu", name="dense_1")(x)  # fc6 + relu6
    x = keras.layers.Dropout(0.5, name="dropout_1")(x)  # drop6
    x = keras.layers.Dense(4096, activation="relu", name="dense_2")(x)  # fc7 + relu7
    x = keras.layers.Dropout(0.5, name="dropout_2")(x)  # drop7
    logits = keras.layers.Dense(1000, name="dense_3")(x)  # fc8
    prob = keras.layers.Softmax(name="prob")(logits)  # prob
    model = keras.Model(image, prob, name=flavour)

    set_weight_groups(model, paper_weight_groups(CAFFE_LAYERS, pool5_hwc))
    return model


# The paper's layers and the Caffe layers whose blobs fill them.
CAFFE_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


def paper_weight_groups(sources, pool5_hwc) -> list[WeightGroup]:
    """The paper's eight layers, conv_1 … dense_3, with conv_2, conv_4 and conv_5 split in
    two (the two towers), each filled from the weight-file layer named in `sources`.

    Args:
        sources: the eight layer names of the weight file, in the paper's order.
        pool5_hwc: pool5's (H, W, C): the weight file flattened it channel-major for dense_1,
            Keras flattens channel-last, so the loader reorders dense_1's rows.
    """
    from replication.models.layers import grouped_member_names
    halves = {"conv_1": 1, "conv_2": 2, "conv_3": 1, "conv_4": 2, "conv_5": 2}
    groups = [WeightGroup(name, grouped_member_names(name, count), source)
              for (name, count), source in zip(halves.items(), sources)]
    groups.append(WeightGroup("dense_1", ("dense_1",), sources[5], flatten_hwc=pool5_hwc))
    groups += [WeightGroup(name, (name,), source) for name, source in zip(("dense_2", "dense_3"), sources[6:])]
    return groups


def _image_size(flavour: str, input_shape) -> int:
    if input_shape is None:
        return IMAGE_SIZE
    height, width, channels = input_shape
    if height != width or channels != 3:
        raise ReplicationError(None, f"{flavour} takes square 3-channel images, not {tuple(input_shape)}")
    return height


@register_model("alexnet", title="AlexNet", zoo_file="bvlc_alexnet")
def alexnet(input_shape=None) -> keras.Model:
    """BVLC AlexNet with the paper's layer names (LRN before each pooling)."""
    return build_alexnet("alexnet", _image_size("alexnet", input_shape))


@register_model("caffenet", title="CaffeNet", zoo_file="bvlc_reference_caffenet")
def caffenet(input_shape=None) -> keras.Model:
    """BVLC CaffeNet with the paper's layer names (pooling before each LRN)."""
    return build_alexnet("caffenet", _image_size("caffenet", input_shape))
