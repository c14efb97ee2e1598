"""evaluate --predictions: one row per image, the same image by image as OpenCV's Caffe
importer on the real SqueezeNet, written atomically."""

import csv

import numpy as np
import pytest

from replication import data
from replication.commands.common import run_cli
from replication.commands.evaluate import main
from replication.run.scoring import prediction_rows

IMAGES = 48


def test_prediction_rows_on_hand_made_scores():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -1.0, 0.0], [np.nan, 3.0, 2.0, 1.0, 0.0, -1.0]], np.float32)
    rows = prediction_rows(["a.JPEG", "b.JPEG"], scores, np.array([2, 0]), k=3)
    assert rows[0] == {"file": "a.JPEG", "label": 2, "top1": 1, "top2": 3, "top3": 2, "true_rank": 3}
    # NaN ranks below every number: the true class is last of six
    assert rows[1] == {"file": "b.JPEG", "label": 0, "top1": 1, "top2": 2, "top3": 3, "true_rank": 6}


@pytest.fixture(scope="module")
def squeezenet_h5(caffe_dir, tmp_path_factory):
    from replication.caffe.convert import convert_caffemodel

    out = tmp_path_factory.mktemp("squeezenet") / "squeezenet_v1.1.h5"
    convert_caffemodel(caffe_dir / "squeezenet_v1.1" / "squeezenet_v1.1.caffemodel", out, progress=False)
    return out


def test_predictions_equal_opencv_image_by_image(val_subset, caffe_dir, squeezenet_h5, tmp_path, cv2):
    out = tmp_path / "predictions.csv"
    argv = ["--model", str(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt"), "--weights", str(squeezenet_h5),
            "--data", str(val_subset), "--resize", "227", "--crop", "227", "--mean", "pixel",
            "--limit", str(IMAGES), "--batch-size", "20", "--predictions", str(out), "--no-progress"]
    assert run_cli(main, argv) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    ds = data.find_dataset(val_subset, limit=IMAGES)
    assert [r["file"] for r in rows] == [str(p) for p in ds.files]
    assert [int(r["label"]) for r in rows] == ds.labels.tolist()
    assert list(rows[0]) == ["file", "label", "top1", "top2", "top3", "top4", "top5", "true_rank"]

    net = cv2.dnn.readNetFromCaffe(str(caffe_dir / "squeezenet_v1.1" / "deploy.prototxt"),
                                   str(caffe_dir / "squeezenet_v1.1" / "squeezenet_v1.1.caffemodel"))
    images = [cv2.imread(str(f)) for f in ds.files]
    net.setInput(cv2.dnn.blobFromImages(images, 1.0, (227, 227), (104, 117, 123), swapRB=False, crop=False))
    theirs = net.forward().reshape(IMAGES, 1000)
    their_top5 = np.argsort(-theirs, axis=1)[:, :5]
    ours_top5 = np.array([[int(r[f"top{i}"]) for i in range(1, 6)] for r in rows])
    assert [set(a) for a in ours_top5] == [set(b) for b in their_top5]
    assert (ours_top5[:, 0] == their_top5[:, 0]).all()
    for row, top5 in zip(rows, ours_top5):
        rank = int(row["true_rank"])
        assert (rank == 1) == (top5[0] == int(row["label"])) and (rank <= 5) == (int(row["label"]) in top5)
    assert sum(int(r["true_rank"]) == 1 for r in rows) > IMAGES // 2  # a trained network: the check means something
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
