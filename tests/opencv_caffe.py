"""OpenCV's Caffe importer as the independent oracle for the Caffe readers and the converter.

OpenCV (cv2.dnn.readNetFromCaffe) parses Caffe files with the real caffe.proto and its
own upgrade code, so agreeing with it exactly is evidence that our decoder is right.
"""

import re
from pathlib import Path

import numpy as np

# The small/ models, with the deploy prototxt OpenCV needs beside each caffemodel
# (OpenCV takes the network from the prototxt and only the blobs from the caffemodel).
SMALL_MODELS = {
    "everpeace_cifar10_full_iter_70000.caffemodel": ("everpeace_cifar10_full.prototxt", "V1"),
    "everpeace_cifar10_quick_iter_4000.caffemodel": ("everpeace_cifar10_quick.prototxt", "V1"),
    "everpeace_lenet_iter_10000.caffemodel": ("everpeace_lenet.prototxt", "V1"),
    "v2_lenet_iter_10000.caffemodel": ("v2_lenet.prototxt", "current"),
    "yuvval_cifar10_full_iter_70000.caffemodel": ("yuvval_cifar10_full.prototxt", "current"),
    "yuvval_cifar100_quick_iter_4000.caffemodel": (None, "current"),  # see cifar100_quick_prototxt
}


def small_models(caffe_dir: Path, tmp_path: Path) -> list[tuple[Path, Path, str]]:
    """(caffemodel, prototxt, generation) for every .caffemodel in caffe_dir/small."""
    small = caffe_dir / "small"
    found = sorted(small.glob("*.caffemodel"))
    unknown = [p.name for p in found if p.name not in SMALL_MODELS]
    assert not unknown, f"new small models need a prototxt entry in SMALL_MODELS: {unknown}"
    assert len(found) == len(SMALL_MODELS), f"expected {len(SMALL_MODELS)} small models, found {len(found)}"
    models = []
    for caffemodel in found:
        prototxt, generation = SMALL_MODELS[caffemodel.name]
        prototxt = small / prototxt if prototxt else cifar100_quick_prototxt(small, tmp_path)
        models.append((caffemodel, prototxt, generation))
    return models


def cifar100_quick_prototxt(small: Path, tmp_path: Path) -> Path:
    """The CIFAR-100 "quick" model ships without a prototxt; it is the CIFAR-10 quick
    network trained on the 20 coarse CIFAR-100 classes, so only ip2's width differs."""
    text = (small / "everpeace_cifar10_quick.prototxt").read_text()
    text, n = re.subn(r'(name: "ip2".*?num_output:\s*)10\b', r"\g<1>20", text, flags=re.DOTALL)
    assert n == 1, "everpeace_cifar10_quick.prototxt no longer has the expected ip2 layer"
    path = tmp_path / "cifar100_quick.prototxt"
    path.write_text(text)
    return path


def without_unit_dims(shape) -> tuple:
    return tuple(d for d in shape if d != 1)


def assert_matches_opencv(cv_net, weights: dict[str, list[np.ndarray]]) -> None:
    """`weights` (layer name -> blobs, for every layer that has blobs) is exactly what
    OpenCV holds: the same layers, and each blob equal value for value.

    OpenCV reshapes some blobs its own way (biases to (1, n) or (n, 1), V1 biases kept
    (1, 1, 1, n)), so shapes are compared without their unit dimensions; 4-D
    convolution weights must agree exactly."""
    with_blobs = [name for name in cv_net.getLayerNames() if cv_net.getLayer(name).blobs]
    assert sorted(with_blobs) == sorted(weights), "not the layers with weights that OpenCV finds"
    for name, blobs in weights.items():
        assert_blobs_match_opencv(cv_net, name, blobs)


def assert_blobs_match_opencv(cv_net, layer_name: str, blobs: list[np.ndarray]) -> None:
    layer_id = cv_net.getLayerId(layer_name)
    assert layer_id >= 0, f"OpenCV has no layer {layer_name!r}"
    assert len(cv_net.getLayer(layer_id).blobs) == len(blobs), f"{layer_name}: not OpenCV's number of blobs"
    for i, ours in enumerate(blobs):
        theirs = cv_net.getParam(layer_id, i)
        assert theirs.dtype == np.float32 and ours.dtype == np.float32
        if ours.ndim == 4:
            assert theirs.shape == ours.shape, f"{layer_name} blob {i}: OpenCV {theirs.shape}, ours {ours.shape}"
        assert without_unit_dims(theirs.shape) == without_unit_dims(ours.shape), (
            f"{layer_name} blob {i}: OpenCV {theirs.shape}, ours {ours.shape}"
        )
        assert np.array_equal(theirs.reshape(ours.shape), ours), f"{layer_name} blob {i} differs from OpenCV's"
