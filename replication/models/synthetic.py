"""A synthetic BVLC AlexNet: random weights of realistic scale in Caffe's own format.

The real bvlc_alexnet.caffemodel (233 MB) cannot be shipped or fetched in CI, so the
tests prove the converter, the loader and the Keras AlexNet on a stand-in with the
same layers and blob shapes, written in the real binary format and read back by an
independent Caffe reader (OpenCV).

Scale: He-normal weights (standard deviation sqrt(2 / fan_in)) keep the activations'
magnitude roughly constant through the ReLU layers, so nothing vanishes or overflows
across eight layers on mean-subtracted images; each output unit's incoming weights
are centred so the units' responses differ from image to image instead of being
dominated by the (always positive) mean of the ReLU outputs below them; fc8 is
scaled down so the logits have the spread of a trained network's (a few units), and
biases are small and positive (uniform in [0, 0.2), around BVLC's 0.1 bias init).
"""

import h5py
import numpy as np

from replication.caffe.binary import write_caffemodel
from replication.caffe.net import Layer, Net

# Caffe blob shapes of BVLC AlexNet (deploy.prototxt): weights (O, I/group, kh, kw)
# or (out, in), then the bias (O,).
ALEXNET_BLOB_SHAPES = {
    "conv1": (96, 3, 11, 11),
    "conv2": (256, 48, 5, 5),
    "conv3": (384, 256, 3, 3),
    "conv4": (384, 192, 3, 3),
    "conv5": (256, 192, 3, 3),
    "fc6": (4096, 9216),
    "fc7": (4096, 4096),
    "fc8": (1000, 4096),
}

# In the net name of every synthetic file, so that results made from one say so.
SYNTHETIC_MARK = "synthetic random weights"

# fc8's He-normal weights are scaled by this: the logits then spread by about 3
# (standard deviation over classes and validation images) instead of about 17.
_LOGIT_SCALE = 0.2


def _norm_and_pool(i: int, below: str, flavour: str) -> list[tuple]:
    norm = (f"norm{i}", "LRN")
    pool = (f"pool{i}", "Pooling")
    first, second = (norm, pool) if flavour == "alexnet" else (pool, norm)
    return [(*first, below, first[0]), (*second, first[0], second[0])]


def _layers(flavour: str) -> list[Layer]:
    """The deploy network's layers in order; ReLU and Dropout work in place, as in
    the prototxt."""
    if flavour not in ("alexnet", "caffenet"):
        raise ValueError(f"unknown AlexNet flavour {flavour!r}")
    block1 = _norm_and_pool(1, "conv1", flavour)
    block2 = _norm_and_pool(2, "conv2", flavour)
    top1, top2 = block1[-1][3], block2[-1][3]
    spec = [
        ("conv1", "Convolution", "data", "conv1"),
        ("relu1", "ReLU", "conv1", "conv1"),
        *block1,
        ("conv2", "Convolution", top1, "conv2"),
        ("relu2", "ReLU", "conv2", "conv2"),
        *block2,
        ("conv3", "Convolution", top2, "conv3"),
        ("relu3", "ReLU", "conv3", "conv3"),
        ("conv4", "Convolution", "conv3", "conv4"),
        ("relu4", "ReLU", "conv4", "conv4"),
        ("conv5", "Convolution", "conv4", "conv5"),
        ("relu5", "ReLU", "conv5", "conv5"),
        ("pool5", "Pooling", "conv5", "pool5"),
        ("fc6", "InnerProduct", "pool5", "fc6"),
        ("relu6", "ReLU", "fc6", "fc6"),
        ("drop6", "Dropout", "fc6", "fc6"),
        ("fc7", "InnerProduct", "fc6", "fc7"),
        ("relu7", "ReLU", "fc7", "fc7"),
        ("drop7", "Dropout", "fc7", "fc7"),
        ("fc8", "InnerProduct", "fc7", "fc8"),
        ("prob", "Softmax", "fc8", "prob"),
    ]
    return [Layer(name, kind, [bottom], [top]) for name, kind, bottom, top in spec]


def _random_blobs(rng: np.random.Generator, name: str) -> list[np.ndarray]:
    shape = ALEXNET_BLOB_SHAPES[name]
    fan_in = int(np.prod(shape[1:]))
    weights = rng.standard_normal(shape, dtype=np.float32)
    rows = weights.reshape(shape[0], fan_in)
    rows -= rows.mean(axis=1, keepdims=True)  # centred per output unit (see module docstring)
    weights *= np.float32(np.sqrt(2.0 / fan_in) * (_LOGIT_SCALE if name == "fc8" else 1.0))
    bias = rng.uniform(0.0, 0.2, size=shape[0]).astype(np.float32)
    return [weights, bias]


def synthetic_alexnet_net(seed: int = 0, flavour: str = "alexnet") -> Net:
    """BVLC AlexNet's layers with random float32 blobs in Caffe layout."""
    rng = np.random.default_rng(seed)
    layers = _layers(flavour)
    for layer in layers:
        if layer.name in ALEXNET_BLOB_SHAPES:
            layer.blobs = _random_blobs(rng, layer.name)
    name = "AlexNet" if flavour == "alexnet" else "CaffeNet"
    return Net(f"{name} ({SYNTHETIC_MARK})", layers, inputs={"data": (10, 3, 227, 227)})


def is_synthetic(weights) -> bool:
    """Whether a weight file holds this module's random weights: its Caffe net name, kept
    by the converter, carries `SYNTHETIC_MARK`. Any other file, or none, is not."""
    try:
        with h5py.File(weights, "r") as f:
            return SYNTHETIC_MARK in str(f.attrs.get("net_name", ""))
    except (OSError, TypeError):
        return False


def synthetic_note(weights) -> str | None:
    """The sentence every output made from synthetic weights carries, or None."""
    if weights is None or not is_synthetic(weights):
        return None
    return f"{weights} holds synthetic random weights: its accuracies are at chance by design"


def write_synthetic_alexnet(path, seed: int = 0, flavour: str = "alexnet", generation: str = "current"):
    """Write the synthetic network as a binary .caffemodel; returns the Net written."""
    net = synthetic_alexnet_net(seed, flavour)
    write_caffemodel(path, net, generation=generation)
    return net
