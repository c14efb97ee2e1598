"""Loading Caffe blobs into Keras: layouts, the dense-row permutation, bad files.

Weight files are made the way users make them: a Net written as a real .caffemodel
and converted with replication.convert.
"""

import h5py
import keras
import numpy as np
import pytest

from replication.caffe import Layer, Net, write_caffemodel
from replication.caffe.convert import convert_caffemodel
from replication.caffe.hdf5 import read_weights
from replication.errors import ReplicationError
from replication.models.groups import WeightGroup, group_layers, set_weight_groups, weight_groups
from replication.models.layers import grouped_conv2d
from replication.models.weights import load_weights

# A grouped conv with a non-square kernel (so H and W cannot be confused) feeding an
# InnerProduct through a flatten of a non-square map with several channels (so
# Caffe's channel-major flatten order differs from Keras' channel-last one).
IN_HWC = (7, 5, 4)
GROUPS, FILTERS, KERNEL, PAD = 2, 6, (3, 2), 1
CONV_HWC = (7, 6, FILTERS)
UNITS = 5


def tiny_model() -> keras.Model:
    image = keras.Input(IN_HWC)
    x = grouped_conv2d(image, FILTERS, KERNEL, pad=PAD, groups=GROUPS, name="conv")
    assert tuple(x.shape[1:]) == CONV_HWC
    out = keras.layers.Dense(UNITS, name="fc")(keras.layers.Flatten()(x))
    model = keras.Model(image, out)
    set_weight_groups(
        model,
        [
            WeightGroup("conv", ("conv_1", "conv_2"), "conv"),
            WeightGroup("fc", ("fc",), "ip", flatten_hwc=CONV_HWC),
        ],
    )
    return model


def tiny_net(seed=0, conv_shape=None, with_ip=True) -> Net:
    rng = np.random.default_rng(seed)

    def blobs(weight_shape, units):
        return [rng.standard_normal(weight_shape, dtype=np.float32), rng.standard_normal(units, dtype=np.float32)]

    conv_shape = conv_shape or (FILTERS, IN_HWC[2] // GROUPS, *KERNEL)
    layers = [Layer("conv", "Convolution", ["data"], ["conv"], blobs=blobs(conv_shape, FILTERS))]
    if with_ip:
        n_in = int(np.prod(CONV_HWC))
        layers.append(Layer("ip", "InnerProduct", ["conv"], ["ip"], blobs=blobs((UNITS, n_in), UNITS)))
    return Net("tiny", layers)


def weight_file(tmp_path, net: Net, name="tiny"):
    caffemodel = tmp_path / f"{name}.caffemodel"
    write_caffemodel(caffemodel, net)
    h5 = tmp_path / f"{name}.h5"
    convert_caffemodel(caffemodel, h5, progress=False)
    return h5


def caffe_forward(x_nchw, conv_w, conv_b, ip_w, ip_b):
    """The tiny network as Caffe computes it, in NCHW with explicit sums."""
    padded = np.pad(x_nchw.astype(np.float64), [(0, 0), (0, 0), (PAD, PAD), (PAD, PAD)])
    n, (height, width) = x_nchw.shape[0], CONV_HWC[:2]
    out = np.zeros((n, FILTERS, height, width))
    in_per_group, out_per_group = conv_w.shape[1], FILTERS // GROUPS
    for o in range(FILTERS):
        g = o // out_per_group
        for c in range(in_per_group):
            for dy in range(KERNEL[0]):
                for dx in range(KERNEL[1]):
                    window = padded[:, g * in_per_group + c, dy : dy + height, dx : dx + width]
                    out[:, o] += conv_w[o, c, dy, dx] * window
        out[:, o] += conv_b[o]
    flat = out.reshape(n, -1)  # Caffe flattens (C, H, W)
    return flat @ ip_w.T.astype(np.float64) + ip_b


def test_loaded_model_computes_what_caffe_computes(tmp_path):
    net = tiny_net()
    model = load_weights(tiny_model(), weight_file(tmp_path, net))
    x = np.random.default_rng(1).standard_normal((3, *IN_HWC)).astype(np.float32)
    expected = caffe_forward(x.transpose(0, 3, 1, 2), *net.layer("conv").blobs, *net.layer("ip").blobs)
    got = np.asarray(model(x))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_without_the_row_permutation_the_outputs_differ(tmp_path):
    """Guards the test above: the permutation matters for this network."""
    net = tiny_net()
    model = tiny_model()
    set_weight_groups(model, [WeightGroup("conv", ("conv_1", "conv_2"), "conv"), WeightGroup("fc", ("fc",), "ip")])
    load_weights(model, weight_file(tmp_path, net))
    x = np.random.default_rng(1).standard_normal((3, *IN_HWC)).astype(np.float32)
    expected = caffe_forward(x.transpose(0, 3, 1, 2), *net.layer("conv").blobs, *net.layer("ip").blobs)
    assert not np.allclose(np.asarray(model(x)), expected, rtol=1e-2)


def test_layouts_round_trip_exactly(tmp_path):
    net = tiny_net(seed=3)
    model = load_weights(tiny_model(), weight_file(tmp_path, net))
    groups = weight_groups(model)
    # Back from Keras to Caffe layout, by the inverse of each documented conversion.
    kernels, biases = zip(*(layer.get_weights() for layer in group_layers(model, groups["conv"])))
    conv_w = np.concatenate([k.transpose(3, 2, 0, 1) for k in kernels])  # HWIO -> OIHW, groups stacked
    np.testing.assert_array_equal(conv_w, net.layer("conv").blobs[0])
    np.testing.assert_array_equal(np.concatenate(biases), net.layer("conv").blobs[1])
    kernel, bias = model.get_layer("fc").get_weights()
    h, w, c = CONV_HWC
    ip_w = kernel.T.reshape(UNITS, h, w, c).transpose(0, 3, 1, 2).reshape(UNITS, -1)  # HWC rows -> CHW columns
    np.testing.assert_array_equal(ip_w, net.layer("ip").blobs[0])
    np.testing.assert_array_equal(bias, net.layer("ip").blobs[1])


def test_read_weights_returns_types_and_blobs_in_order(tmp_path):
    net = tiny_net()
    layers = read_weights(weight_file(tmp_path, net))
    assert list(layers) == ["conv", "ip"]
    kind, blobs = layers["ip"]
    assert kind == "InnerProduct"
    np.testing.assert_array_equal(blobs[0], net.layer("ip").blobs[0])


def test_missing_layer_names_file_and_layer(tmp_path):
    h5 = weight_file(tmp_path, tiny_net(with_ip=False))
    with pytest.raises(ReplicationError) as err:
        load_weights(tiny_model(), h5)
    assert err.value.path == h5
    assert "'ip'" in str(err.value) and str(h5) in str(err.value)


def test_shape_mismatch_names_file_layer_and_both_shapes(tmp_path):
    # An ungrouped conv's blob (6, 4, 3, 2) where the model needs group 2's (6, 2, 3, 2).
    h5 = weight_file(tmp_path, tiny_net(conv_shape=(FILTERS, IN_HWC[2], *KERNEL)))
    with pytest.raises(ReplicationError) as err:
        load_weights(tiny_model(), h5)
    message = str(err.value)
    assert str(h5) in message and "'conv'" in message
    assert "(6, 4, 3, 2)" in message and "(6, 2, 3, 2)" in message


def test_wrong_layer_type_is_refused(tmp_path):
    net = tiny_net()
    net.layer("ip").type = "Convolution"  # a file whose 'ip' is not an InnerProduct
    net.layer("ip").blobs[0] = net.layer("ip").blobs[0].reshape(UNITS, 6, 7, 6)
    h5 = weight_file(tmp_path, net)
    with pytest.raises(ReplicationError, match="InnerProduct"):
        load_weights(tiny_model(), h5)


def test_not_hdf5_is_a_clear_error(tmp_path):
    path = tmp_path / "random.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ReplicationError, match="not an HDF5 file") as err:
        read_weights(path)
    assert err.value.path == path


def test_truncated_file_is_a_clear_error(tmp_path):
    h5 = weight_file(tmp_path, tiny_net())
    data = h5.read_bytes()
    h5.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReplicationError) as err:
        load_weights(tiny_model(), h5)
    assert err.value.path == h5


def test_hdf5_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "keras_weights.h5"
    with h5py.File(path, "w") as f:
        f["conv/kernel"] = np.zeros(3)
    with pytest.raises(ReplicationError, match="format") as err:
        read_weights(path)
    assert err.value.path == path


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ReplicationError, match="no such"):
        read_weights(tmp_path / "absent.h5")
