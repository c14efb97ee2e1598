"""The prototxt reader, the layer-parameter accessors and the generic model builder
(structure only; tests/test_oracle_networks.py checks what the models compute)."""

import re

import numpy as np
import pytest

from replication.caffe import params
from replication.caffe.net import CaffeFormatError, Layer
from replication.caffe.text import net_from_message, parse_text, read_prototxt
from replication.errors import ReplicationError
from replication.models.alexnet import build_alexnet
from replication.models.groups import keras_name, weight_groups
from replication.models.prototxt import build_from_prototxt

# --- the reader on every real file -------------------------------------------------


def _all_prototxts(caffe_dir):
    files = sorted(caffe_dir.rglob("*.prototxt"))
    assert len(files) >= 12, files  # AlexNet (4 + solver), GoogLeNet, SqueezeNet, 5 small
    return files


def test_reads_every_shared_prototxt(caffe_dir):
    for path in _all_prototxts(caffe_dir):
        net = read_prototxt(path)
        text = path.read_text()
        # An independent count: top-level layer blocks start in column 0 in these files.
        blocks = re.findall(r"^(layers?) \{", text, flags=re.MULTILINE)
        assert len(net.layers) == len(blocks), path
        assert net.generation == ("V1" if "layers" in blocks else "current"), path
        if net.inputs:  # a deploy net (train_val has a Data layer per phase, same name)
            names = [layer.name for layer in net.layers]
            assert len(set(names)) == len(names), path
            assert all(layer.type and layer.tops for layer in net.layers), path
    assert read_prototxt(caffe_dir / "bvlc_alexnet" / "solver.prototxt").layers == []


def test_both_generations_and_input_headers(caffe_dir):
    small = caffe_dir / "small"
    v1 = read_prototxt(small / "everpeace_lenet.prototxt")  # V1 with input:/input_dim:
    current = read_prototxt(small / "v2_lenet.prototxt")  # Input layer with input_param
    assert (v1.generation, current.generation) == ("V1", "current")
    assert v1.inputs == current.inputs == {"data": (64, 1, 28, 28)}
    assert [(layer.name, layer.type, layer.bottoms, layer.tops) for layer in v1.layers] == [
        (layer.name, layer.type, layer.bottoms, layer.tops) for layer in current.layers if layer.type != "Input"
    ]
    assert read_prototxt(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt").inputs == {
        "data": (10, 3, 227, 227)
    }
    header = parse_text('input: "im" input_shape { dim: 2 dim: 3 dim: 8 dim: 9 }')
    assert net_from_message(header).inputs == {"im": (2, 3, 8, 9)}
    # Text format may give an enum by number: V1 type 4 is CONVOLUTION.
    v1_numbers = net_from_message(parse_text('layers { name: "c" type: 4 } layers { name: "r" type: RELU }'))
    assert [layer.type for layer in v1_numbers.layers] == ["Convolution", "ReLU"]


def _alexnet_pair(caffe_dir):
    folder = caffe_dir / "bvlc_alexnet"
    return (read_prototxt(folder / "deploy_v1_format_a66100181.prototxt"),
            read_prototxt(folder / "deploy.prototxt"))


def _typed(layer: Layer):
    """Everything the builder reads from a layer, through the accessors."""
    accessor = {
        "Convolution": params.conv_params,
        "Pooling": params.pool_params,
        "LRN": params.lrn_params,
        "InnerProduct": params.inner_product_params,
        "Softmax": params.softmax_axis,
        "ReLU": params.relu_negative_slope,
    }.get(layer.type, lambda _: None)
    return layer.name, layer.type, layer.bottoms, layer.tops, accessor(layer)


def test_v1_and_current_alexnet_are_the_same_graph(caffe_dir):
    v1, current = _alexnet_pair(caffe_dir)
    assert v1.inputs == current.inputs == {"data": (10, 3, 227, 227)}
    graph = [_typed(layer) for layer in current.layers if layer.type != "Input"]
    assert [_typed(layer) for layer in v1.layers] == graph
    assert len(graph) == 23


def test_alexnet_parameters(caffe_dir):
    _, net = _alexnet_pair(caffe_dir)
    conv2 = params.conv_params(net.layer("conv2"))
    assert conv2 == (256, (5, 5), (1, 1), (2, 2), (1, 1), 2, True)
    assert conv2.group == 2 and conv2.kernel == (5, 5)
    assert params.conv_params(net.layer("conv1"))[:3] == (96, (11, 11), (4, 4))
    assert params.pool_params(net.layer("pool1")) == ("MAX", (3, 3), (2, 2), (0, 0), False)
    assert params.lrn_params(net.layer("norm1")) == (5, 1e-4, 0.75, 1.0, "ACROSS_CHANNELS")
    assert params.inner_product_params(net.layer("fc6")) == (4096, True, 1)
    squeeze = read_prototxt(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt")
    assert params.pool_params(squeeze.layer("pool10")) == ("AVE", None, (1, 1), (0, 0), True)
    assert params.concat_axis(squeeze.layer("fire2/concat")) == 1


# --- the accessors' defaults and rules ---------------------------------------------


def _layer(type_, text=""):
    return Layer("l", type_, ["x"], ["y"], params=parse_text(text))


def test_caffe_defaults():
    assert params.lrn_params(_layer("LRN")) == (5, 1.0, 0.75, 1.0, "ACROSS_CHANNELS")
    assert params.conv_params(_layer("Convolution", "convolution_param { num_output: 8 kernel_size: 3 }")) == (
        8, (3, 3), (1, 1), (0, 0), (1, 1), 1, True)
    assert params.pool_params(_layer("Pooling", "pooling_param { kernel_size: 2 }")) == (
        "MAX", (2, 2), (1, 1), (0, 0), False)
    assert params.inner_product_params(_layer("InnerProduct", "inner_product_param { num_output: 3 }")) == (
        3, True, 1)
    assert params.softmax_axis(_layer("Softmax")) == 1
    assert params.concat_axis(_layer("Concat")) == 1
    assert params.concat_axis(_layer("Concat", "concat_param { concat_dim: 2 }")) == 2  # V1 spelling
    assert params.relu_negative_slope(_layer("ReLU", "relu_param { negative_slope: 0.1 }")) == 0.1


def test_kernel_stride_pad_spellings():
    conv = params.conv_params(_layer("Convolution", """convolution_param {
        num_output: 4 kernel_h: 3 kernel_w: 5 stride: 2 stride: 1 pad_w: 2 dilation: 2
        group: 2 bias_term: false }"""))
    assert conv == (4, (3, 5), (2, 1), (0, 2), (2, 2), 2, False)
    pool = params.pool_params(_layer("Pooling", "pooling_param { pool: AVE kernel_size: 3 stride_h: 2 stride_w: 1 pad: 1 }"))
    assert pool == ("AVE", (3, 3), (2, 1), (1, 1), False)


@pytest.mark.parametrize(
    "type_, text, problem",
    [
        ("Convolution", "convolution_param { kernel_size: 3 }", "num_output"),
        ("Convolution", "convolution_param { num_output: 4 }", "kernel_size"),
        ("Convolution", "convolution_param { num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3 }", "together"),
        ("Convolution", "convolution_param { num_output: 4 kernel_size: 3 stride_h: 2 }", "together"),
        ("Convolution", "convolution_param { num_output: 6 kernel_size: 3 group: 4 }", "group"),
        ("Convolution", "convolution_param { num_output: 4 kernel_size: 3 kernel_size: 3 kernel_size: 3 }", "1 or 2"),
        ("Pooling", "pooling_param { pool: STOCHASTIC kernel_size: 3 }", "STOCHASTIC"),
        ("Pooling", "pooling_param { global_pooling: true kernel_size: 3 }", "global_pooling"),
        ("Pooling", "pooling_param { kernel_size: 2 pad: 2 }", "smaller than the kernel"),
        ("LRN", "lrn_param { local_size: 4 }", "odd"),
        ("LRN", "lrn_param { norm_region: SIDEWAYS }", "SIDEWAYS"),
        ("LRN", "lrn_param { alpha: MAX }", "alpha"),
        ("InnerProduct", "inner_product_param { num_output: 3 transpose: true }", "transpose"),
        ("InnerProduct", "inner_product_param { num_output: 3 num_output: 4 }", "2 times"),
    ],
)
def test_accessors_refuse_what_caffe_or_we_cannot_compute(type_, text, problem):
    accessor = {"Convolution": params.conv_params, "Pooling": params.pool_params,
                "LRN": params.lrn_params, "InnerProduct": params.inner_product_params}[type_]
    with pytest.raises(CaffeFormatError, match=re.escape(problem)) as err:
        accessor(_layer(type_, text))
    assert "'l'" in str(err.value)  # names the layer


# --- the text format ---------------------------------------------------------------


def test_text_format_values():
    parsed = parse_text(r"""
        # a comment, and one after a value
        s1: "a \"quoted\" \\ name\n" # trailing
        s2: 'single \'quotes\' \101\x42'
        s3: "adjacent " 'strings'
        numbers: 7 numbers: -2 numbers: 1e-4 numbers: 2.5E3 numbers: .5 numbers: 0x1F numbers: 1.5f
        numbers: [3, 4]
        flags: true flags: false flags: True
        enum: ACROSS_CHANNELS
        special: inf special: -inf
        block { inner: 1 } block: { inner: 2; } block < inner: 3 >,
        nested { deeper { deepest: "x" } }
    """)
    assert parsed["s1"] == ['a "quoted" \\ name\n']
    assert parsed["s2"] == ["single 'quotes' AB"]
    assert parsed["s3"] == ["adjacent strings"]
    assert parsed["numbers"] == [7, -2, 1e-4, 2500.0, 0.5, 31, 1.5, 3, 4]
    assert [type(v) for v in parsed["numbers"][:2]] == [int, int]
    assert parsed["flags"] == [True, False, True]
    assert parsed["enum"] == ["ACROSS_CHANNELS"]
    assert parsed["special"] == [float("inf"), float("-inf")]
    assert parsed["block"] == [{"inner": [1]}, {"inner": [2]}, {"inner": [3]}]
    assert parsed["nested"] == [{"deeper": [{"deepest": ["x"]}]}]


@pytest.mark.parametrize(
    "text, line, problem",
    [
        ('name: "net"\nlayer {\n  name: "a"\n', 2, "never closed"),
        ('layer {\n  name: "a"\n}\n}\n', 4, "field name"),
        ('layer {\n  kernel_size 3\n}', 2, "':'"),
        ('name: "net\nlayer {}', 1, "unexpected character"),
        ("layer {\n\n  top: @\n}", 3, "unexpected character '@'"),
        ("layer {\n  pad: 3x\n}", 2, "unexpected character"),
        ("layer {\n  pad: [1, 2\n}", 3, "',' or ']'"),
        ('layer {\n  name: "a\\q"\n}', 2, "escape"),
        ("layer {\n  pad:\n}", 3, "expected a value"),
        ('layers {\n  name: "a"\n  type: CONVOLUTON\n}', 1, "unknown V1 type"),
        ('layer {\n  name: "a"\n  top: "a"\n}', 1, "needs one type"),
        ('layer {\n  name: "a" type: "Input" top: "a"\n  input_param { shape {} shape {} }\n}', 1, "2 shapes"),
    ],
)
def test_malformed_text_names_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "broken.prototxt"
    path.write_text(text)
    with pytest.raises(CaffeFormatError) as err:
        read_prototxt(path)
    message = str(err.value)
    assert str(path) in message and f"line {line}:" in message and problem in message, message


@pytest.mark.parametrize(
    "text, problem",
    [
        ('input: "data"\ninput_dim: 1\ninput_dim: 3\n', "need 4 input_dim"),
        ('layer { name: "a" type: "ReLU" }\nlayers { name: "b" type: RELU }', "mixes"),
    ],
)
def test_inconsistent_nets_are_errors(tmp_path, text, problem):
    path = tmp_path / "odd.prototxt"
    path.write_text(text)
    with pytest.raises(CaffeFormatError, match=problem) as err:
        read_prototxt(path)
    assert str(path) in str(err.value)


def test_missing_and_binary_files(tmp_path, caffe_dir):
    with pytest.raises(ReplicationError, match="not found"):
        read_prototxt(tmp_path / "absent.prototxt")
    with pytest.raises(CaffeFormatError, match="not a text prototxt"):
        read_prototxt(caffe_dir / "small" / "v2_lenet_iter_10000.caffemodel")


# --- the builder's structure -------------------------------------------------------

_CONV_NET = """
name: "tiny"
input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer { name: "conv/1" type: "Convolution" bottom: "data" top: "c"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "odd" type: "%s" bottom: "c" top: "c" }
"""


def test_unknown_layer_type_names_file_layer_and_type(tmp_path, caffe_dir):
    path = tmp_path / "unknown.prototxt"
    path.write_text(_CONV_NET % "Crop")
    with pytest.raises(ReplicationError) as err:
        build_from_prototxt(path)
    message = str(err.value)
    assert str(path) in message and "'odd'" in message and "'Crop'" in message, message
    # A real training net: its Data layer cannot be built for inference.
    with pytest.raises(ReplicationError, match=r"'data'.*unsupported layer type 'Data'"):
        build_from_prototxt(caffe_dir / "bvlc_alexnet" / "train_val.prototxt")


def test_builder_errors_name_the_layer(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(_CONV_NET.replace('bottom: "data"', 'bottom: "nothing"') % "ReLU")
    with pytest.raises(CaffeFormatError, match=r"'conv/1'.*'nothing'") as err:
        build_from_prototxt(path)
    assert str(path) in str(err.value)
    path.write_text(_CONV_NET.replace("kernel_size: 3", "kernel_size: 3 group: 2") % "ReLU")
    with pytest.raises(CaffeFormatError, match=r"'conv/1'.*3 input channels"):
        build_from_prototxt(path)


def test_alexnet_from_prototxt_matches_the_paper_model(caffe_dir):
    folder = caffe_dir / "bvlc_alexnet"
    paper = build_alexnet()
    for name in ("deploy.prototxt", "deploy_v1_format_a66100181.prototxt"):
        model = build_from_prototxt(folder / name)
        assert model.count_params() == paper.count_params() == 60_965_224
        assert model.input_shape == (None, 227, 227, 3) and model.output_shape == (None, 1000)
        groups = weight_groups(model)
        assert list(groups) == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
        assert groups["conv2"].members == ("conv2_1", "conv2_2")
        assert groups["fc6"].flatten_hwc == (6, 6, 256) and groups["fc7"].flatten_hwc is None
        shapes = [[w.shape for m in g.members for w in model.get_layer(m).weights] for g in groups.values()]
        paper_shapes = [[w.shape for m in g.members for w in paper.get_layer(m).weights]
                        for g in weight_groups(paper).values()]
        assert shapes == paper_shapes
        assert model.get_layer("prob").input.shape == (None, 1000)


def test_keras_names_and_global_pooling(caffe_dir):
    model = build_from_prototxt(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt", input_shape=(99, 99, 3))
    assert model.input_shape == (None, 99, 99, 3)
    assert model.get_layer(keras_name("fire2/squeeze1x1")).name == "fire2_squeeze1x1"
    assert model.get_layer("pool10").output.shape == (None, 1, 1, 1000)
    assert model.get_layer("prob").input.shape == (None, 1000)  # the logits, flattened
    assert model.predict(np.zeros((2, 99, 99, 3), np.float32), verbose=0).shape == (2, 1000)


def test_googlenet_pooling_rounds_up(caffe_dir):
    model = build_from_prototxt(caffe_dir / "bvlc_googlenet" / "deploy.prototxt")
    # Caffe: ceil((112 - 3) / 2) + 1 = 56 (flooring would give 55), and so on down.
    sizes = {n: model.get_layer(keras_name(n)).output.shape[1]
             for n in ("pool1/3x3_s2", "pool2/3x3_s2", "pool3/3x3_s2", "pool4/3x3_s2", "pool5/7x7_s1")}
    assert sizes == {"pool1/3x3_s2": 56, "pool2/3x3_s2": 28, "pool3/3x3_s2": 14,
                     "pool4/3x3_s2": 7, "pool5/7x7_s1": 1}
    assert weight_groups(model)["loss3/classifier"].flatten_hwc == (1, 1, 1024)


def test_leaky_relu_dilation_and_in_place_layers(tmp_path):
    path = tmp_path / "net.prototxt"
    text = _CONV_NET.replace("kernel_size: 3", "kernel_size: 3 dilation: 2") % "ReLU"
    path.write_text(text.replace('top: "c" }', 'top: "c" relu_param { negative_slope: 0.25 } }'))
    model = build_from_prototxt(path)
    assert model.get_layer("conv_1").dilation_rate == (2, 2)
    assert model.output_shape == (None, 4, 4, 4)  # 8 - (2 * (3 - 1) + 1) + 1
    assert model.get_layer("odd").input is model.get_layer("conv_1").output  # in place: c -> c
    conv = model.get_layer("conv_1")
    conv.set_weights([np.zeros_like(conv.kernel), -np.ones(4, np.float32)])
    assert np.allclose(model.predict(np.zeros((1, 8, 8, 3), np.float32), verbose=0), -0.25)


def test_load_model_refuses_unknown_models(tmp_path):
    from replication.models.registry import create_model

    with pytest.raises(ReplicationError, match="unknown model"):
        create_model("lenet_9000")
    with pytest.raises(ReplicationError, match="not found"):
        create_model(str(tmp_path / "missing.prototxt"))


def test_input_layer_without_a_shape_needs_input_shape(tmp_path):
    path = tmp_path / "deferred.prototxt"
    path.write_text(_CONV_NET.replace('input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8',
                                      'layer { name: "data" type: "Input" top: "data" }') % "ReLU")
    assert read_prototxt(path).inputs == {"data": ()}
    with pytest.raises(CaffeFormatError, match="give input_shape"):
        build_from_prototxt(path)
    assert build_from_prototxt(path, input_shape=(10, 10, 3)).output_shape == (None, 8, 8, 4)
