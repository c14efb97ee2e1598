"""Caffe's .caffemodel into the project's HDF5 weight file (`caffe.hdf5`).

With a deploy prototxt the weights are checked against the network that will use them,
so a wrong pairing fails here, naming the layer, rather than later as a shape error.
"""

import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
from tqdm import tqdm

import replication
from replication.caffe import CaffeFormatError, Layer, Net, read_caffemodel, read_prototxt
from replication.caffe.hdf5 import FORMAT, FORMAT_VERSION, write_blobs
from replication.caffe.params import conv_params, inner_product_params
from replication.errors import ReplicationError
from replication.files import atomic_output, file_digest

# Model Zoo files and the sha1 published with each (the zoo readme files; VGG's and
# SqueezeNet's from their authors' pages as mirrored by OpenCV's test-data downloader).
KNOWN_MODELS = {
    "bvlc_alexnet.caffemodel": ("9116a64c0fbe4459d18f4bb6b56d647b63920377", "BVLC AlexNet"),
    "bvlc_reference_caffenet.caffemodel": ("4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46", "BVLC CaffeNet"),
    "bvlc_googlenet.caffemodel": ("405fc5acd08a3bb12de8ee5e23a96bec22f08204", "BVLC GoogLeNet"),
    "VGG_ILSVRC_16_layers.caffemodel": ("9363e1f6d65f7dba68c4f27a1e62105cdf6c4e24", "VGG ILSVRC 16-layer"),
    "squeezenet_v1.1.caffemodel": ("3397f026368a45ae236403ccc81cfcbe8ebe1bd0", "SqueezeNet v1.1"),
}

# Layer types that cannot compute anything without learned blobs. (Scale and Bias are
# left out: they may take their factors from a second input instead.)
NEEDS_WEIGHTS = frozenset({"Convolution", "Deconvolution", "InnerProduct", "BatchNorm", "PReLU", "Embed"})


class Conversion(NamedTuple):
    net: Net
    sha256: str
    sha1: str


def check_weight_source(path) -> str:
    """What a weight file to convert turns out to be, or what is wrong with it: checked
    before any option that depends on it (a .caffemodel needs an output file, a Keras 1
    file does not).

    Args:
        path: the file given to `convert`.

    Returns:
        "keras1" for a Keras 1 weight file that reads, "caffemodel" for a .caffemodel that reads.

    Raises:
        ReplicationError: the file is missing, damaged, truncated or neither kind, naming it.
    """
    from replication.models.keras1 import keras_layout, read_keras1_weights

    path = Path(path)
    if keras_layout(path) is not None:
        read_keras1_weights(path)
        return "keras1"
    if path.is_file() and (h5py.is_hdf5(path) or path.suffix.lower() in (".h5", ".hdf5")):
        read_keras1_weights(path)  # not a Keras 1 file that reads: raises what is wrong with it
    read_caffemodel(path)
    return "caffemodel"


def convert_caffemodel(caffemodel, out_h5, prototxt=None, progress: bool = True) -> Conversion:
    """Write the blobs of a .caffemodel to an HDF5 weight file.

    Args:
        caffemodel: binary Caffe weights, either file generation.
        out_h5: the file to write; written to a temporary name and renamed when complete.
        prototxt: a deploy .prototxt to check the weights against first, or None.
        progress: a progress bar on stderr.

    Returns:
        Conversion(net, sha256, sha1) of the source file.
    """
    caffemodel, out_h5 = Path(caffemodel), Path(out_h5)
    if out_h5.exists() and out_h5.resolve() == caffemodel.resolve():
        raise ReplicationError(out_h5, "the output would overwrite the input model")
    if out_h5.is_dir():
        raise ReplicationError(out_h5, "the output is a directory; give a file name such as model.h5")
    net = read_caffemodel(caffemodel)
    weighted = [layer for layer in net.layers if layer.blobs]
    _check_layer_names(weighted, caffemodel)
    if prototxt is not None:
        check_against_prototxt(net, read_prototxt(prototxt), Path(prototxt), caffemodel)
    conversion = Conversion(net, file_digest(caffemodel, "sha256"), file_digest(caffemodel, "sha1"))
    attrs = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "net_name": net.name,
        "generation": net.generation,
        "source_file": caffemodel.name,
        "source_sha256": conversion.sha256,
        "source_sha1": conversion.sha1,
        "converter_version": replication.__version__,
    }
    _check_free_space(out_h5, weighted)
    with atomic_output(out_h5) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(attrs)
        bar = tqdm(weighted, desc="converting", unit="layer", file=sys.stderr, disable=not progress)
        for index, layer in enumerate(bar):
            bar.set_postfix_str(layer.name)
            write_blobs(f, index, layer)
    return conversion


def _check_free_space(out_h5: Path, weighted: list[Layer]) -> None:
    """Refuse before writing when the blobs cannot fit: the HDF5 library does not always
    fail cleanly on a full disk (it can crash the process)."""
    need = sum(int(np.asarray(blob).size) * 4 for layer in weighted for blob in layer.blobs) + (1 << 20)
    folder = out_h5.parent if str(out_h5.parent) else Path(".")
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if need > free:
        raise ReplicationError(out_h5, f"needs {need / 2**20:.0f} MB but only {free / 2**20:.0f} MB are free there")


def _check_layer_names(weighted: list[Layer], caffemodel: Path) -> None:
    seen = set()
    for layer in weighted:
        if not layer.name:
            raise CaffeFormatError(caffemodel, f"a {layer.type} layer with weights has no name")
        if layer.name in seen:
            raise CaffeFormatError(caffemodel, f"two layers with weights are both named {layer.name!r}")
        seen.add(layer.name)


def check_against_prototxt(net: Net, deploy: Net, prototxt: Path, caffemodel: Path) -> None:
    """Every layer with weights in `net` is in `deploy` with the same type and blob
    shapes that fit its parameters; every `deploy` layer that needs weights has them."""
    deploy_layers = {layer.name: layer for layer in deploy.layers}
    for layer in net.layers:
        if not layer.blobs:
            continue
        target = deploy_layers.get(layer.name)
        where = f"layer {layer.name!r}"
        if target is None:
            raise ReplicationError(prototxt, f"{where} has weights in {caffemodel.name} but is not in this prototxt")
        if target.type != layer.type:
            raise ReplicationError(prototxt, f"{where} is {target.type} here but {layer.type} in {caffemodel.name}")
        problem = _shape_problem(target, layer.blobs)
        if problem:
            raise ReplicationError(prototxt, f"{where}: {problem} in {caffemodel.name}")
    weighted = {layer.name for layer in net.layers if layer.blobs}
    for layer in deploy.layers:
        if layer.type in NEEDS_WEIGHTS and layer.name not in weighted:
            problem = f"layer {layer.name!r} ({layer.type}) needs weights but {caffemodel.name} has none for it"
            raise ReplicationError(prototxt, problem)


def _shape_problem(layer: Layer, blobs: list[np.ndarray]) -> str | None:
    """What does not fit between a prototxt layer's parameters and the blobs for it."""
    try:
        if layer.type == "Convolution":
            conv = conv_params(layer)
            expected = (conv.num_output, None, *conv.kernel)
            bias_term = conv.bias_term
        elif layer.type == "InnerProduct":
            ip = inner_product_params(layer)
            expected = (ip.num_output, None)
            bias_term = ip.bias_term
        else:
            return None
    except CaffeFormatError as err:
        return f"its parameters cannot be used ({err.message})"
    wanted = 1 + bias_term
    if len(blobs) != wanted:
        return f"the prototxt asks for {wanted} blobs (bias_term {bias_term}) but there are {len(blobs)}"
    shape = blobs[0].shape
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected, shape)):
        wanted_shape = "(" + ", ".join("?" if e is None else str(e) for e in expected) + ")"
        return f"the prototxt asks for weights of shape {wanted_shape} but they are {shape}"
    if bias_term and blobs[1].shape != (expected[0],):
        return f"the prototxt asks for a bias of shape ({expected[0]},) but it is {blobs[1].shape}"
    return None


def identify(caffemodel: Path, sha1: str) -> tuple[str | None, str | None]:
    """(which Model Zoo file this is, or None; a warning when it is named like a zoo
    file but is not that file, or None)."""
    for file_name, (zoo_sha1, title) in KNOWN_MODELS.items():
        if sha1 == zoo_sha1:
            return f"{title} from the Caffe Model Zoo ({file_name}, sha1 verified)", None
    if caffemodel.name in KNOWN_MODELS:
        zoo_sha1, title = KNOWN_MODELS[caffemodel.name]
        return None, (
            f"{caffemodel.name} is named like the Model Zoo's {title} file, but its sha1 {sha1} "
            f"is not the published {zoo_sha1}: it is a different, modified or damaged file"
        )
    return None, None
