"""The whole chain against an independent Caffe implementation.

A synthetic AlexNet (random weights of realistic scale, real binary .caffemodel
format) is converted with replication.convert, loaded into build_alexnet() and run
on real validation images; OpenCV's Caffe importer runs the same .caffemodel with
BVLC's own deploy.prototxt. Their fc8 outputs must agree to 1e-4 of the largest
magnitude and give the same top-5 classes on every image.
"""

import numpy as np
import pytest
from PIL import Image

from replication.caffe.convert import convert_caffemodel
from replication.models.alexnet import build_alexnet
from replication.models.synthetic import write_synthetic_alexnet
from replication.models.weights import load_weights
from replication.run.scoring import scores_model

N_IMAGES = 64
MEAN_BGR = (104.0, 117.0, 123.0)
TOLERANCE = 1e-4  # of max |fc8|


@pytest.fixture(scope="module")
def bgr_images(val_subset):
    """The first N_IMAGES validation images, decoded once (PIL), as BGR uint8 227x227."""
    files = sorted((val_subset / "images").glob("*.JPEG"))[:N_IMAGES]
    assert len(files) == N_IMAGES
    images = [np.asarray(Image.open(f).convert("RGB"))[:, :, ::-1] for f in files]
    assert all(image.shape == (227, 227, 3) for image in images)
    return np.stack(images)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """(caffemodel, h5) of the synthetic AlexNet."""
    folder = tmp_path_factory.mktemp("oracle")
    caffemodel, h5 = folder / "synthetic_alexnet.caffemodel", folder / "synthetic_alexnet.h5"
    write_synthetic_alexnet(caffemodel, seed=0)
    convert_caffemodel(caffemodel, h5, progress=False)
    return caffemodel, h5


def keras_fc8(flavour, h5, bgr_images):
    model = load_weights(build_alexnet(flavour), h5)
    inputs = bgr_images.astype(np.float32) - np.array(MEAN_BGR, dtype=np.float32)
    return scores_model(model).predict(inputs, batch_size=N_IMAGES, verbose=0)


def opencv_fc8(cv2, prototxt, caffemodel, bgr_images):
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    if hasattr(net, "enableWinograd"):
        # OpenCV's Winograd fast path for 3x3 convolutions rounds differently (it
        # roughly triples the difference, still well inside the tolerance); the
        # oracle should compute the convolutions as Caffe defines them.
        net.enableWinograd(False)
    blob = cv2.dnn.blobFromImages(list(bgr_images), 1.0, (227, 227), MEAN_BGR, swapRB=False, crop=False)
    net.setInput(blob)
    return net.forward("fc8")


def compare(ours, oracle, label):
    assert ours.shape == oracle.shape == (N_IMAGES, 1000)
    relative = float(np.abs(ours - oracle).max() / np.abs(oracle).max())
    print(f"\n{label}: largest fc8 difference {relative:.3g} of max |fc8| = {np.abs(oracle).max():.4g}")
    assert relative <= TOLERANCE
    top5_ours = np.argsort(-ours, axis=1)[:, :5]
    top5_oracle = np.argsort(-oracle, axis=1)[:, :5]
    differing = [i for i in range(N_IMAGES) if set(top5_ours[i]) != set(top5_oracle[i])]
    assert not differing, f"top-5 classes differ on images {differing}"
    return relative


@pytest.fixture(scope="module")
def alexnet_fc8(synthetic, bgr_images):
    return keras_fc8("alexnet", synthetic[1], bgr_images)


def test_alexnet_matches_opencv(cv2, caffe_dir, synthetic, bgr_images, alexnet_fc8):
    oracle = opencv_fc8(cv2, caffe_dir / "bvlc_alexnet" / "deploy.prototxt", synthetic[0], bgr_images)
    compare(alexnet_fc8, oracle, "AlexNet vs OpenCV")
    # The comparison means something only if the outputs depend on the image.
    assert len(set(oracle.argmax(axis=1))) >= N_IMAGES // 4


def test_v1_format_prototxt_gives_the_same_network(cv2, caffe_dir, synthetic, bgr_images, alexnet_fc8):
    v1 = caffe_dir / "bvlc_alexnet" / "deploy_v1_format_a66100181.prototxt"
    compare(alexnet_fc8, opencv_fc8(cv2, v1, synthetic[0], bgr_images), "AlexNet vs OpenCV (V1 prototxt)")


def test_caffenet_matches_opencv(cv2, caffe_dir, synthetic, bgr_images, alexnet_fc8):
    # CaffeNet has AlexNet's layer names and blob shapes, so the same weights serve.
    ours = keras_fc8("caffenet", synthetic[1], bgr_images)
    oracle = opencv_fc8(cv2, caffe_dir / "bvlc_alexnet" / "caffenet_deploy.prototxt", synthetic[0], bgr_images)
    compare(ours, oracle, "CaffeNet vs OpenCV")
    assert not np.allclose(ours, alexnet_fc8, rtol=1e-3)  # the LRN/pool order matters
