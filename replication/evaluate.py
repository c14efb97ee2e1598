"""Top-1 and top-5 accuracy of a classifier on the validation images, and its command line:

    python -m replication.evaluate --model alexnet --weights caffe_weights/bvlc_alexnet.h5 \\
        --data DIR --mean-file ilsvrc_2012_mean.npy [--json out.json]

The accuracy is Caffe's: its Accuracy layer's top-k rule (see `topk_correct`) applied to
the logits, the input of the final softmax (where BVLC's train_val.prototxt attaches it,
at fc8). Ranking logits rather than probabilities matters once a network's logits
are far apart: float32 softmax then rounds the lesser classes to exactly 0, and those
ties would decide top-5.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from replication import data
from replication.errors import ReplicationError, run_cli
from replication.files import atomic_output
from replication.paths import DEFAULT_MEAN_FILE

SOFTMAX_LAYER = "prob"  # the project's models name their final softmax this (Caffe's name)


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int = 5) -> tuple[int, int]:
    """(top-1 count, top-k count) over a batch: scores (N, classes), labels (N,).

    Caffe's Accuracy layer rule: an image counts for top-k when fewer than k other classes
    score at least as high as its true class. Ties therefore go against the true class
    (a tie at the top is a top-1 miss), and the result does not depend on class order.
    NaN scores rank below every number, so a network that outputs NaN scores nothing
    (Caffe itself would count such an image as correct).
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be (N, classes) for N={len(labels)} labels, got shape {scores.shape}")
    scores = np.where(np.isnan(scores), -np.inf, scores)
    true = scores[np.arange(len(labels)), labels]
    at_least_as_high = (scores >= true[:, None]).sum(axis=1) - 1  # other classes only
    return int((at_least_as_high < 1).sum()), int((at_least_as_high < k).sum())


def scores_model(model: keras.Model) -> keras.Model:
    """The model up to its logits: the input of its final softmax layer "prob", or the
    model itself when it has none."""
    try:
        softmax = model.get_layer(SOFTMAX_LAYER)
    except ValueError:
        return model
    return keras.Model(model.inputs, softmax.input, name=f"{model.name}_logits")


def _check_input_size(model: keras.Model, prep: data.Preprocessing) -> None:
    expected = tuple(model.input_shape[1:3])
    if None not in expected and expected != (prep.crop, prep.crop):
        raise ReplicationError(
            None, f"the model takes {expected[0]}x{expected[1]} images but the crop is {prep.crop} (--crop)"
        )


def evaluate(model, ds: data.Dataset, prep: data.Preprocessing, batch_size=64, progress=True, skip_bad=False) -> dict:
    """Top-1, top-5 (fractions), the number of images evaluated and images/s end to end
    (decoding included; the model's one-off tracing not). "skipped" lists (file, problem)
    for images left out by skip_bad.

    Decoding runs in tf.data's threads while the model runs: one iterator, kept until the
    last batch. On a machine with a GPU the model runs there.
    """
    _check_input_size(model, prep)
    logits = scores_model(model)

    @tf.function(input_signature=[tf.TensorSpec([None, prep.crop, prep.crop, 3], tf.float32)])
    def score(images):
        return logits(images, training=False)

    score.get_concrete_function()
    skipped = []
    images = top1 = top5 = 0
    with tqdm(total=len(ds), desc="evaluate", unit="img", file=sys.stderr, disable=not progress) as bar:
        start = time.perf_counter()
        for batch, labels in data.batches(ds, prep, batch_size, skip_bad, skipped):
            c1, c5 = topk_correct(score(batch).numpy(), labels)
            images, top1, top5 = images + len(labels), top1 + c1, top5 + c5
            bar.total = len(ds) - len(skipped)
            bar.update(len(labels))
        seconds = time.perf_counter() - start
    return {
        "top1": top1 / images,
        "top5": top5 / images,
        "images": images,
        "images_per_s": images / seconds,
        "skipped": skipped,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m replication.evaluate",
        description="Top-1 and top-5 accuracy of a Caffe classifier on ILSVRC2012 validation images.",
    )
    parser.add_argument("--model", required=True, help="alexnet, caffenet, or a Caffe deploy .prototxt")
    parser.add_argument("--weights", type=Path, required=True, help="HDF5 weights from python -m replication.convert")
    parser.add_argument("--data", type=Path, required=True,
                        help="the images: with val.txt, in one folder per class (WordNet ids), "
                        "or with the devkit's ground truth")
    parser.add_argument("--labels", type=Path,
                        help="Caffe val.txt (FILENAME LABEL) or the devkit's ILSVRC2012_validation_ground_truth.txt, "
                        "when not in --data")
    parser.add_argument("--resize", type=int, default=256, help="resize images to this square size first (default 256)")
    parser.add_argument("--crop", type=int, default=227, help="then take the central crop of this size (default 227)")
    parser.add_argument("--mean", choices=("image", "pixel"), default="image",
                        help="subtract the ImageNet mean image (--mean-file) or the mean pixel BGR 104/117/123 "
                        "(default image)")
    parser.add_argument("--mean-file", type=Path, help=f"ilsvrc_2012_mean.npy (3x256x256 BGR), for --mean image (default {DEFAULT_MEAN_FILE})")
    parser.add_argument("--limit", type=int, help="use only the first N images (by file name)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-bad", action="store_true", help="leave out unreadable images and list them at the end")
    parser.add_argument("--json", type=Path, help="also write top1, top5, images, images_per_s to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.mean == "image" and args.mean_file is None:
        args.mean_file = DEFAULT_MEAN_FILE
    from replication.models.load import load_model  # TensorFlow model building: only once arguments parse

    prep = data.Preprocessing(resize=args.resize, crop=args.crop, mean=args.mean, mean_file=args.mean_file)
    data.mean_bgr(prep)  # a missing mean file is reported before the model is built
    dataset = data.find_dataset(args.data, labels=args.labels, limit=args.limit)
    builtin = args.model in ("alexnet", "caffenet")
    model = load_model(args.model, args.weights, input_shape=None if builtin else (args.crop, args.crop, 3))
    result = evaluate(model, dataset, prep, args.batch_size, progress=not args.no_progress, skip_bad=args.skip_bad)

    print(f"top-1     {result['top1']:.4f}")
    print(f"top-5     {result['top5']:.4f}")
    print(f"images    {result['images']}")
    print(f"images/s  {result['images_per_s']:.1f}")
    data.report_skipped(result["skipped"])
    if args.json:
        record = {key: result[key] for key in ("top1", "top5", "images", "images_per_s")}
        if result["skipped"]:
            record["skipped"] = [str(path) for path, _ in result["skipped"]]
        with atomic_output(args.json) as tmp:
            tmp.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
