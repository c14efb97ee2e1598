"""The Caffe VGG-16 (the VGG authors' VGG_ILSVRC_16_layers.caffemodel) through the
project's prototxt route, and a synthetic stand-in for it in Caffe's own format.

The deploy network ships with the package (`VGG16_PROTOTXT`, written from the published
architecture); any command takes it as `--model` once the weights are converted:

    python -m replication.convert VGG_ILSVRC_16_layers.caffemodel --prototxt PROTOTXT -o vgg16_caffe.h5
    python -m replication.figure5 --model PROTOTXT --weights vgg16_caffe.h5 --resize 256 --crop 224 \\
        --mean pixel --data ...

Its layers carry the VGG authors' names (conv1_1 … conv5_3, fc6, fc7, fc8); Figure 5's
claims (analysis/claims_vgg.py) recognise them as block1_conv1 … predictions.
"""

from pathlib import Path

import numpy as np

from replication.caffe.binary import write_caffemodel
from replication.caffe.net import Net
from replication.caffe.text import read_prototxt
from replication.models.synthetic import SYNTHETIC_MARK

VGG16_PROTOTXT = Path(__file__).resolve().parents[1] / "reference" / "vgg16_deploy.prototxt"
# (block, convolutions, width) of configuration D.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


def vgg16_blob_shapes() -> dict[str, tuple[int, ...]]:
    """Caffe weight shapes of VGG-16: convolutions (out, in, 3, 3), inner products (out, in).

    Returns:
        Layer name -> weight shape, in network order; each layer's bias is (out,).
    """
    shapes, channels = {}, 3
    for block, count, width in _BLOCKS:
        for i in range(1, count + 1):
            shapes[f"conv{block}_{i}"] = (width, channels, 3, 3)
            channels = width
    shapes["fc6"] = (4096, channels * 7 * 7)  # pool5 is 7 x 7 at 224 x 224
    shapes["fc7"] = (4096, 4096)
    shapes["fc8"] = (1000, 4096)
    return shapes


def synthetic_vgg16_net(seed: int = 0) -> Net:
    """VGG16_PROTOTXT's network with random float32 blobs in Caffe's layout.

    The scale is models.synthetic's for AlexNet: He-normal weights centred per output
    unit, fc8's scaled by 0.2, biases uniform in [0, 0.2).

    Args:
        seed: the generator's seed.

    Returns:
        The Net, its name marked synthetic (SYNTHETIC_MARK), ready for `write_caffemodel`.
    """
    rng = np.random.default_rng(seed)
    net = read_prototxt(VGG16_PROTOTXT)
    shapes = vgg16_blob_shapes()
    for layer in net.layers:
        if layer.name not in shapes:
            continue
        shape = shapes[layer.name]
        fan_in = int(np.prod(shape[1:]))
        weights = rng.standard_normal(shape, dtype=np.float32)
        rows = weights.reshape(shape[0], fan_in)  # a view
        rows -= rows.mean(axis=1, keepdims=True)
        weights *= np.float32(np.sqrt(2.0 / fan_in) * (0.2 if layer.name == "fc8" else 1.0))
        layer.blobs = [weights, rng.uniform(0.0, 0.2, size=shape[0]).astype(np.float32)]
    net.name = f"{net.name} ({SYNTHETIC_MARK})"
    return net


def write_synthetic_vgg16(path, seed: int = 0) -> Net:
    """Write `synthetic_vgg16_net(seed)` as a binary .caffemodel (current format).

    Args:
        path: the .caffemodel to write.
        seed: the generator's seed.

    Returns:
        The Net written.
    """
    net = synthetic_vgg16_net(seed)
    write_caffemodel(path, net)
    return net
