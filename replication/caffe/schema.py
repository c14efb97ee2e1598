"""The part of Caffe's message schema (src/caffe/proto/caffe.proto) that a weight file needs.

A .caffemodel is a serialised `NetParameter`. Only the fields below are decoded; every
other field (learning rates, fillers, the *_param messages that describe layer
geometry) is skipped, because the geometry comes from the deploy .prototxt and the
binary reader's job is the weights. The field numbers are Caffe's and must never change.

Readers of the wire format accept a repeated number field both packed and unpacked,
whatever the declaration says; `packed` records the declaration for the writer.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    # "string", "int" (int32/int64/enum: a varint), "float", "double", or a message name
    kind: str
    repeated: bool = False
    packed: bool = False  # how caffe.proto declares it, so the writer matches Caffe's own files


MESSAGES: dict[str, dict[int, Field]] = {
    "NetParameter": {
        1: Field("name", "string"),
        2: Field("layers", "V1LayerParameter", repeated=True),  # the 2014 ("V1") generation
        3: Field("input", "string", repeated=True),
        4: Field("input_dim", "int", repeated=True),  # 4 per input: num, channels, height, width
        8: Field("input_shape", "BlobShape", repeated=True),
        100: Field("layer", "LayerParameter", repeated=True),  # the current generation
    },
    "LayerParameter": {
        1: Field("name", "string"),
        2: Field("type", "string"),
        3: Field("bottom", "string", repeated=True),
        4: Field("top", "string", repeated=True),
        7: Field("blobs", "BlobProto", repeated=True),
    },
    "V1LayerParameter": {
        # Recognised only to reject the pre-2014 "V0" generation, which nests the whole
        # layer in this field; this project does not read V0 files.
        1: Field("layer", "V0LayerParameter"),
        2: Field("bottom", "string", repeated=True),
        3: Field("top", "string", repeated=True),
        4: Field("name", "string"),
        5: Field("type", "int"),  # a LayerType enum number, see V1_LAYER_TYPES
        6: Field("blobs", "BlobProto", repeated=True),
    },
    "V0LayerParameter": {},
    "BlobProto": {
        # Legacy 4-D dimensions, used when `shape` is absent (all V1 files).
        1: Field("num", "int"),
        2: Field("channels", "int"),
        3: Field("height", "int"),
        4: Field("width", "int"),
        5: Field("data", "float", repeated=True, packed=True),
        7: Field("shape", "BlobShape"),
        8: Field("double_data", "double", repeated=True, packed=True),
    },
    "BlobShape": {
        1: Field("dim", "int", repeated=True, packed=True),
    },
}

LEGACY_DIMS = ("num", "channels", "height", "width")

# V1LayerParameter.LayerType enum number -> the type string of the current generation
# (the mapping Caffe's own upgrade, UpgradeV1LayerType, applies).
V1_LAYER_TYPES: dict[int, str] = {
    0: "",  # NONE
    1: "Accuracy",
    2: "BNLL",
    3: "Concat",
    4: "Convolution",
    5: "Data",
    6: "Dropout",
    7: "EuclideanLoss",
    8: "Flatten",
    9: "HDF5Data",
    10: "HDF5Output",
    11: "Im2col",
    12: "ImageData",
    13: "InfogainLoss",
    14: "InnerProduct",
    15: "LRN",
    16: "MultinomialLogisticLoss",
    17: "Pooling",
    18: "ReLU",
    19: "Sigmoid",
    20: "Softmax",
    21: "SoftmaxWithLoss",
    22: "Split",
    23: "TanH",
    24: "WindowData",
    25: "Eltwise",
    26: "Power",
    27: "SigmoidCrossEntropyLoss",
    28: "HingeLoss",
    29: "MemoryData",
    30: "ArgMax",
    31: "Threshold",
    32: "DummyData",
    33: "Slice",
    34: "MVN",
    35: "AbsVal",
    36: "Silence",
    37: "ContrastiveLoss",
    38: "Exp",
    39: "Deconvolution",
}

V1_LAYER_NUMBERS: dict[str, int] = {name: number for number, name in V1_LAYER_TYPES.items()}
