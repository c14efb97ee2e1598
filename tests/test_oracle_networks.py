"""Real trained Caffe networks built by build_from_prototxt, against OpenCV.

OpenCV's Caffe importer (cv2.dnn.readNetFromCaffe) reads the same prototxt and
.caffemodel with its own parser and layer code; our side goes prototxt -> Keras model,
.caffemodel -> converter HDF5 -> loader. Both get the same input blob (OpenCV's
blobFromImages: BGR, mean pixel 104/117/123 subtracted, no scaling), NCHW for OpenCV
and transposed to NHWC for Keras.

"Same top-5 up to ties", precisely: for every image, each class in our top-5 but not
in OpenCV's has an OpenCV probability within TOLERANCE of OpenCV's 5th-highest, and
each class in OpenCV's top-5 but not ours has, in our probabilities, a value within
TOLERANCE of our 5th-highest. Top-1 must be identical on every image, no tolerance.
"""

import numpy as np
import pytest
from opencv_caffe import small_models

from replication.caffe.convert import convert_caffemodel
from replication.caffe.text import read_prototxt
from replication.models.registry import create_model
from replication.models.synthetic import write_synthetic_alexnet
from replication.run.scoring import scores_model, topk_correct

MEAN_BGR = (104.0, 117.0, 123.0)
BATCH = 64
# Probabilities: we measured at most ~1e-5 between OpenCV and Keras on these networks.
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def validation(cv2, val_subset):
    """All 1,300 validation images (BGR uint8, decoded by OpenCV) and their labels."""
    lines = (val_subset / "val.txt").read_text().split()
    names, labels = lines[0::2], np.array(lines[1::2], dtype=np.int64)
    images = [cv2.imread(str(val_subset / "images" / name)) for name in names]
    assert len(images) == 1300 and all(i is not None and i.shape == (227, 227, 3) for i in images)
    return images, labels


def _probabilities(cv2, folder, size, images, h5_dir):
    """(ours, OpenCV's) class probabilities (N, 1000) for the network in `folder`,
    with the images resized to size x size (no resize at 227: they are 227 already)."""
    prototxt, caffemodel = folder / "deploy.prototxt", next(folder.glob("*.caffemodel"))
    h5 = h5_dir / f"{folder.name}.h5"
    convert_caffemodel(caffemodel, h5, prototxt=prototxt, progress=False)
    model = create_model(str(prototxt), h5, input_shape=(size, size, 3))
    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    ours, theirs = [], []
    for start in range(0, len(images), BATCH):
        blob = cv2.dnn.blobFromImages(images[start : start + BATCH], 1.0, (size, size), MEAN_BGR,
                                      swapRB=False, crop=False)
        cv_net.setInput(blob)
        theirs.append(cv_net.forward("prob").reshape(len(blob), -1))
        ours.append(np.asarray(model.predict_on_batch(blob.transpose(0, 2, 3, 1))))
    return np.concatenate(ours), np.concatenate(theirs)


@pytest.fixture(scope="module")
def squeezenet(cv2, caffe_dir, validation, tmp_path_factory):
    return _probabilities(cv2, caffe_dir / "squeezenet_v1.1", 227, validation[0],
                          tmp_path_factory.mktemp("squeezenet"))


@pytest.fixture(scope="module")
def googlenet(cv2, caffe_dir, validation, tmp_path_factory):
    # BVLC GoogLeNet takes 224 x 224 (shared/README: resize the 227 images to 224).
    return _probabilities(cv2, caffe_dir / "bvlc_googlenet", 224, validation[0],
                          tmp_path_factory.mktemp("googlenet"))


def assert_same_rankings(ours: np.ndarray, theirs: np.ndarray, tolerance=TOLERANCE):
    """Top-1 identical on every row; top-5 sets identical up to near-ties (module doc)."""
    assert ours.shape == theirs.shape and len(ours) > 0
    top1_differs = np.flatnonzero(ours.argmax(1) != theirs.argmax(1))
    assert top1_differs.size == 0, f"top-1 differs from OpenCV on images {top1_differs[:20]}"
    top5_ours, top5_theirs = np.argsort(-ours, 1)[:, :5], np.argsort(-theirs, 1)[:, :5]
    for i in range(len(ours)):
        for scores, top5, other_top5 in ((theirs[i], top5_theirs[i], top5_ours[i]),
                                         (ours[i], top5_ours[i], top5_theirs[i])):
            fifth = scores[top5[4]]
            outsiders = np.setdiff1d(other_top5, top5)
            assert np.all(scores[outsiders] >= fifth - tolerance), (
                f"image {i}: top-5 {sorted(top5_ours[i])} vs OpenCV {sorted(top5_theirs[i])} "
                "differ by more than a near-tie"
            )


def test_squeezenet_ranks_every_image_like_opencv(squeezenet):
    ours, theirs = squeezenet
    assert np.abs(ours - theirs).max() < TOLERANCE
    assert_same_rankings(ours, theirs)


def test_squeezenet_accuracy_equals_opencv(squeezenet, validation):
    ours, theirs = squeezenet
    labels = validation[1]
    ours_counts, their_counts = topk_correct(ours, labels), topk_correct(theirs, labels)
    assert ours_counts == their_counts
    top1, top5 = (count / len(labels) for count in their_counts)
    assert (round(top1, 3), round(top5, 3)) == (0.728, 0.908)  # shared/README.md's figures


def test_googlenet_ranks_every_image_like_opencv(googlenet, validation):
    ours, theirs = googlenet
    assert np.abs(ours - theirs).max() < TOLERANCE
    assert_same_rankings(ours, theirs)
    # shared/README.md: OpenCV scores top-1 0.78 / top-5 0.93 on the first 300 images.
    labels = validation[1][:300]
    counts = topk_correct(theirs[:300], labels)
    assert topk_correct(ours[:300], labels) == counts
    assert tuple(round(c / 300, 2) for c in counts) == (0.78, 0.93)


def test_near_ties_rule():
    """The top-5 rule itself: a swap at the 5th place passes only within the tolerance."""
    base = np.array([[0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.03]])
    swapped = base.copy()
    swapped[0, 4], swapped[0, 5] = 0.04, 0.05 + 1e-6  # class 5 overtakes class 4
    assert_same_rankings(base, base.copy())
    with pytest.raises(AssertionError, match="near-tie"):
        assert_same_rankings(base, swapped)
    near = base.copy()
    near[0, 5] = 0.05 - 1e-6
    swapped_near = near.copy()
    swapped_near[0, 4], swapped_near[0, 5] = 0.05 - 2e-6, 0.05 - 1e-6
    assert_same_rankings(near, swapped_near)
    with pytest.raises(AssertionError, match="top-1"):
        assert_same_rankings(base, base[:, ::-1].copy())


# --- the small real models in shared/data/caffe/small (both file generations) -------


def test_small_models_compute_what_opencv_computes(cv2, caffe_dir, tmp_path):
    rng = np.random.default_rng(0)
    generations = set()
    for caffemodel, prototxt, _ in small_models(caffe_dir, tmp_path):
        net = read_prototxt(prototxt)
        generations.add(net.generation)
        h5 = tmp_path / f"{caffemodel.stem}.h5"
        convert_caffemodel(caffemodel, h5, prototxt=prototxt, progress=False)
        model = create_model(str(prototxt), h5)
        _, channels, height, width = net.inputs["data"]
        # LeNet was trained on pixels scaled to [0, 1), the CIFAR nets on mean-subtracted 0..255
        scale = 1.0 if channels == 1 else 60.0
        blob = (rng.standard_normal((16, channels, height, width)) * scale).astype(np.float32)
        softmax = net.layers[-1]
        assert softmax.type == "Softmax"
        cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        cv_net.setInput(blob)
        cv_logits, cv_prob = cv_net.forward(softmax.bottoms)[0], cv_net.forward("prob")
        images = blob.transpose(0, 2, 3, 1)
        logits = scores_model(model).predict(images, verbose=0)
        error = np.abs(logits - cv_logits.reshape(logits.shape)).max() / np.abs(cv_logits).max()
        assert error < 1e-5, f"{prototxt.name}: logits differ by {error:.2e} of their largest"
        assert_same_rankings(np.asarray(model(images)), cv_prob.reshape(len(blob), -1))
    assert generations == {"V1", "current"}


# --- the generic builder against the paper-named AlexNet ----------------------------


def test_synthetic_alexnet_same_from_prototxt_as_paper_model(caffe_dir, validation, tmp_path):
    caffemodel, h5 = tmp_path / "synthetic.caffemodel", tmp_path / "synthetic.h5"
    write_synthetic_alexnet(caffemodel, seed=3)
    convert_caffemodel(caffemodel, h5, progress=False)
    caffemodel.unlink()  # 233 MB; the HDF5 has what the models need
    images = np.stack(validation[0][:BATCH]).astype(np.float32) - np.float32(MEAN_BGR)
    paper = scores_model(create_model("alexnet", h5)).predict(images, verbose=0)
    assert paper.std() > 0.1  # realistic spread, so the comparison means something
    for name in ("deploy.prototxt", "deploy_v1_format_a66100181.prototxt"):
        generic = scores_model(create_model(str(caffe_dir / "bvlc_alexnet" / name), h5))
        difference = np.abs(generic.predict(images, verbose=0) - paper).max()
        assert difference <= 1e-5 * np.abs(paper).max(), f"{name}: logits differ by {difference}"
