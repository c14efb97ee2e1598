"""Top-k counting, evaluate_model() on real images, and the evaluate command line end to end."""

import json

import keras
import numpy as np
import pytest

from replication import data
from replication.commands.common import run_cli
from replication.commands.evaluate import main
from replication.errors import ReplicationError
from replication.run.scoring import evaluate_model, scores_model, topk_correct

PIXEL = data.Preprocessing(resize=227, crop=227, mean="pixel")

# --- the top-k rule --------------------------------------------------------------------------


def topk_by_sorting(scores, labels, k):
    """The rule stated as a ranking: classes sorted by score, the true class placed after
    every class it ties with; correct when its position is below k."""
    hits = 0
    for row, label in zip(scores, labels):
        row = np.where(np.isnan(row), -np.inf, row)
        order = sorted(range(len(row)), key=lambda c: (-row[c], c == label))
        hits += order.index(label) < k
    return hits


def test_topk_on_hand_made_scores():
    scores = np.array([
        [5, 4, 3, 2, 1, 1, 0],  # label 0: best
        [5, 4, 3, 2, 1, 1, 0],  # label 3: 4th
        [5, 4, 3, 2, 1, 1, 0],  # label 4: 5th by index, but tied with 5: the tie goes against it
        [5, 5, 3, 2, 1, 1, 0],  # label 1: tied at the top: not top-1, but top-5
        [5, 4, 3, 2, 1, 1, 0],  # label 6: last
    ], dtype=np.float32)
    labels = np.array([0, 3, 4, 1, 6])
    assert topk_correct(scores, labels, ties="caffe") == (1, 3)
    assert topk_correct(scores, labels, k=2, ties="caffe") == (1, 2)
    assert topk_correct(scores[:0], labels[:0]) == (0, 0)
    # the project's rule: the two ties at the true class count their expected hit, 1/2 each
    assert topk_correct(scores, labels) == (1.5, 3.5)


def test_nan_scores_count_as_wrong():
    scores = np.array([[np.nan] * 6, [1, np.nan, 0, 0, 0, 0], [np.nan, 1, 0, 0, 0, 0]])
    assert topk_correct(scores[0:1], np.array([0])) == (0, 0)  # all NaN: nothing is right
    assert topk_correct(scores[1:2], np.array([0])) == (1, 1)  # a NaN elsewhere ranks below
    assert topk_correct(scores[2:3], np.array([0])) == (0, 0)  # a NaN true class is wrong


def test_topk_agrees_with_ranking_and_ignores_class_order():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(300, 12)).astype(np.float32)  # many ties
    labels = rng.integers(0, 12, size=300)
    for k in (1, 3, 5):
        assert topk_correct(scores, labels, k, ties="caffe")[1] == topk_by_sorting(scores, labels, k)
    perm = rng.permutation(12)
    inverse = np.argsort(perm)
    assert topk_correct(scores[:, perm], inverse[labels]) == topk_correct(scores, labels)


def test_topk_refuses_mismatched_shapes():
    with pytest.raises(ValueError):
        topk_correct(np.zeros((3, 10)), np.zeros(4, int))


# --- evaluate_model() with a small model whose accuracy is known ----------------------------------------

N_IMAGES = 30


@pytest.fixture(scope="module")
def few(val_subset):
    return data.find_dataset(val_subset, limit=N_IMAGES)


def rigged_model(images, labels, scale=1.0):
    """A model whose logits on these images are set by least squares: the true class first
    for a third of them, third for another third, below 998 other classes for the rest.
    Logits are scaled so far apart that its softmax rounds all but one class to 0."""
    inputs = keras.Input((227, 227, 3))
    pooled = keras.layers.Flatten()(keras.layers.AveragePooling2D(28)(inputs))  # 8 x 8 x 3 features
    logits = keras.layers.Dense(1000, use_bias=False, name="logits")(pooled)
    model = keras.Model(inputs, keras.layers.Softmax(name="prob")(logits))
    features = keras.Model(inputs, pooled).predict(images, verbose=0).astype(np.float64)
    targets = np.zeros((len(labels), 1000))
    n = len(labels)
    for i, label in enumerate(labels):
        others = [c for c in range(1000) if c != label][:2]
        if i < n // 3:
            targets[i, label] = 10
        elif i < 2 * n // 3:
            targets[i, others] = 10, 9
            targets[i, label] = 8
        else:
            targets[i, label] = -10
    model.get_layer("logits").set_weights([(np.linalg.pinv(features) @ targets * scale).astype(np.float32)])
    return model, (n // 3, 2 * n // 3)


def test_evaluate_counts_the_rigged_accuracy_from_logits(few):
    images, labels = data.load_arrays(few, PIXEL)
    model, (top1, top5) = rigged_model(images, labels, scale=1000.0)
    result = evaluate_model(model, few, PIXEL, batch_size=8, progress=False)
    assert result["images"] == N_IMAGES and result["skipped"] == []
    assert (result["top1"], result["top5"]) == (top1 / N_IMAGES, top5 / N_IMAGES)
    assert result["images_per_s"] > 0
    # The same counts from the model's logits on the decoded arrays...
    logits = scores_model(model).predict(images, verbose=0)
    assert topk_correct(logits, labels) == (top1, top5)
    # ...but not from its saturated probabilities, whose zeros tie: why logits are ranked.
    assert topk_correct(model.predict(images, verbose=0), labels)[1] < top5


def test_evaluate_uses_the_output_of_a_model_without_softmax(few):
    inputs = keras.Input((227, 227, 3))
    outputs = keras.layers.Dense(1000)(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, outputs)
    assert scores_model(model) is model
    images, labels = data.load_arrays(few, PIXEL)
    expected = topk_correct(model.predict(images, verbose=0), labels)
    result = evaluate_model(model, few, PIXEL, batch_size=7, progress=False)
    assert (round(result["top1"] * N_IMAGES), round(result["top5"] * N_IMAGES)) == expected


def test_evaluate_skips_and_reports_bad_images(tmp_path, few):
    folder = tmp_path / "bad"
    (folder / "images").mkdir(parents=True)
    for f in few.files[:6]:
        (folder / "images" / f.name).symlink_to(f)
    (folder / "val.txt").write_text("".join(f"{f.name} {label}\n" for f, label in zip(few.files[:6], few.labels)))
    broken = folder / "images" / few.files[3].name
    broken.unlink()
    broken.write_bytes(few.files[3].read_bytes()[:3000])
    ds = data.find_dataset(folder)
    model = keras.Sequential([keras.Input((227, 227, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(1000)])
    with pytest.raises(ReplicationError) as err:
        evaluate_model(model, ds, PIXEL, progress=False)
    assert err.value.path == broken
    result = evaluate_model(model, ds, PIXEL, progress=False, skip_bad=True)
    assert result["images"] == 5 and [path for path, _ in result["skipped"]] == [broken]


def test_evaluate_refuses_a_crop_the_model_cannot_take(few):
    model = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(10)])
    with pytest.raises(ReplicationError, match="224x224 images but the crop is 227"):
        evaluate_model(model, few, PIXEL, progress=False)


# --- the command line -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def squeezenet_h5(caffe_dir, tmp_path_factory):
    from replication.caffe.convert import convert_caffemodel

    out = tmp_path_factory.mktemp("squeezenet") / "squeezenet_v1.1.h5"
    convert_caffemodel(caffe_dir / "squeezenet_v1.1" / "squeezenet_v1.1.caffemodel", out, progress=False)
    return out


def opencv_counts(cv2, caffe_dir, ds):
    """OpenCV's Caffe importer on the same images, the same way (BGR, mean pixel)."""
    net = cv2.dnn.readNetFromCaffe(str(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt"),
                                   str(caffe_dir / "squeezenet_v1.1" / "squeezenet_v1.1.caffemodel"))
    images = [cv2.imread(str(f)) for f in ds.files]
    net.setInput(cv2.dnn.blobFromImages(images, 1.0, (227, 227), (104, 117, 123), swapRB=False, crop=False))
    return topk_correct(net.forward().reshape(len(images), 1000), ds.labels)


def test_cli_squeezenet_matches_opencv(val_subset, caffe_dir, squeezenet_h5, tmp_path, capsys, cv2):
    out = tmp_path / "result.json"
    argv = ["--model", str(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt"), "--weights", str(squeezenet_h5),
            "--data", str(val_subset), "--resize", "227", "--crop", "227", "--mean", "pixel", "--limit", "50",
            "--batch-size", "25", "--json", str(out), "--no-progress"]
    assert run_cli(main, argv) == 0
    printed = dict(line.rsplit(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    result = json.loads(out.read_text())
    assert sorted(result) == ["images", "images_per_s", "top1", "top5"]
    assert result["images"] == 50 and printed["images"] == "50"
    assert float(printed["top-1"]) == pytest.approx(result["top1"], abs=5e-5)
    top1, top5 = opencv_counts(cv2, caffe_dir, data.find_dataset(val_subset, limit=50))
    assert (round(result["top1"] * 50), round(result["top5"] * 50)) == (top1, top5)
    assert top1 > 25  # a real trained network: the comparison means something


def test_cli_bad_input_is_one_line_and_exit_2(val_subset, caffe_dir, squeezenet_h5, capsys):
    argv = ["--model", str(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt"), "--weights", str(squeezenet_h5),
            "--data", str(val_subset), "--crop", "227", "--limit", "5"]
    assert run_cli(main, argv) == 2  # --mean image is the default, and no --mean-file
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ilsvrc_2012_mean.npy" in err
