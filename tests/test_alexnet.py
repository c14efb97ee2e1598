"""The Keras AlexNet against BVLC's deploy.prototxt: names, parameters, every size."""

import math

import pytest

from replication.caffe import read_prototxt
from replication.caffe.params import conv_params, lrn_params, pool_params
from replication.models.alexnet import build_alexnet
from replication.models.groups import weight_groups
from replication.run.scoring import scores_model

PAPER_NAMES = [
    "conv_1",
    "conv_2_1",
    "conv_2_2",
    "conv_3",
    "conv_4_1",
    "conv_4_2",
    "conv_5_1",
    "conv_5_2",
    "dense_1",
    "dense_2",
    "dense_3",
]
# Caffe top blob -> the Keras layer that outputs it.
KERAS_OUTPUT = {
    "conv1": "conv_1",
    "norm1": "norm_1",
    "pool1": "pool_1",
    "conv2": "conv_2",
    "norm2": "norm_2",
    "pool2": "pool_2",
    "conv3": "conv_3",
    "conv4": "conv_4",
    "conv5": "conv_5",
    "pool5": "pool_5",
}
PROTOTXT = {"alexnet": "deploy.prototxt", "caffenet": "caffenet_deploy.prototxt"}


@pytest.fixture(scope="module")
def alexnet():
    return build_alexnet()


def test_layer_names_and_parameter_count(alexnet):
    assert [layer.name for layer in alexnet.layers if layer.weights] == PAPER_NAMES
    assert alexnet.count_params() == 60_965_224
    assert alexnet.input.shape == (None, 227, 227, 3)
    assert alexnet.output.shape == (None, 1000)


def test_softmax_named_prob_reads_the_logits(alexnet):
    assert alexnet.layers[-1].name == "prob"
    assert scores_model(alexnet).output.shape == (None, 1000)
    assert alexnet.get_layer("prob").input is alexnet.get_layer("dense_3").output


def test_weight_groups_name_the_paper_and_caffe_layers(alexnet):
    groups = weight_groups(alexnet)
    assert list(groups) == ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5", "dense_1", "dense_2", "dense_3"]
    assert [g.caffe_name for g in groups.values()] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    assert groups["conv_2"].members == ("conv_2_1", "conv_2_2")
    assert groups["dense_1"].flatten_hwc == (6, 6, 256)
    assert sorted(m for g in groups.values() for m in g.members) == sorted(PAPER_NAMES)


def caffe_sizes(deploy, image_size):
    """Top blob -> (H, W, C), from the prototxt numbers and Caffe's size formulas."""
    sizes = {"data": (image_size, image_size, 3)}
    for layer in deploy.layers:
        if not layer.bottoms:
            continue
        height, width, channels = sizes[layer.bottoms[0]]
        if layer.type == "Convolution":
            p = conv_params(layer)
            height, width = (
                (size + 2 * pad - (dil * (k - 1) + 1)) // stride + 1  # conv rounds down
                for size, k, stride, pad, dil in zip((height, width), p.kernel, p.stride, p.pad, p.dilation)
            )
            channels = p.num_output
        elif layer.type == "Pooling":
            p = pool_params(layer)
            pooled = []
            for size, k, stride, pad in zip((height, width), p.kernel, p.stride, p.pad):
                n = math.ceil((size + 2 * pad - k) / stride) + 1  # pooling rounds up
                pooled.append(n - 1 if pad and (n - 1) * stride >= size + pad else n)
            height, width = pooled
        sizes[layer.tops[0]] = (height, width, channels)
    return sizes


@pytest.mark.parametrize("flavour", ["alexnet", "caffenet"])
@pytest.mark.parametrize("image_size", [227, 224])
def test_every_size_matches_caffe(caffe_dir, flavour, image_size):
    """227 is AlexNet's input; at 224 floor and ceil pooling disagree (pool1: 26 vs
    27), so the sizes only match if the model rounds up as Caffe does."""
    deploy = read_prototxt(caffe_dir / "bvlc_alexnet" / PROTOTXT[flavour])
    expected = caffe_sizes(deploy, image_size)
    if image_size == 224:
        assert expected["pool1"][:2] == (27, 27)  # rounding down would give 26
    model = build_alexnet(flavour, image_size=image_size)
    for top, keras_name in KERAS_OUTPUT.items():
        assert tuple(model.get_layer(keras_name).output.shape[1:]) == expected[top], top
    assert weight_groups(model)["dense_1"].flatten_hwc == expected["pool5"]


def test_lrn_and_pooling_take_the_prototxt_parameters(caffe_dir, alexnet):
    deploy = read_prototxt(caffe_dir / "bvlc_alexnet" / "deploy.prototxt")
    for index in (1, 2):
        lrn = lrn_params(deploy.layer(f"norm{index}"))
        layer = alexnet.get_layer(f"norm_{index}")
        assert (layer.local_size, layer.alpha, layer.beta, layer.k) == (lrn.local_size, lrn.alpha, lrn.beta, lrn.k)
    for index in (1, 2, 5):
        pool = pool_params(deploy.layer(f"pool{index}"))
        layer = alexnet.get_layer(f"pool_{index}")
        assert (layer.method, layer.kernel, layer.stride, layer.pad) == (pool.pool, pool.kernel, pool.stride, pool.pad)


def test_caffenet_pools_before_normalising():
    model = build_alexnet("caffenet")
    assert model.count_params() == 60_965_224
    assert model.get_layer("norm_1").input is model.get_layer("pool_1").output
    assert model.get_layer("norm_2").input is model.get_layer("pool_2").output
    assert model.get_layer("conv_3").input.shape[1:] == (13, 13, 256)  # pool2 13x13 (conv_3 pads by 1 itself)


def test_unknown_flavour_is_refused():
    with pytest.raises(ValueError, match="flavour"):
        build_alexnet("vgg")
