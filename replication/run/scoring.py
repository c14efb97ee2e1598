"""Scoring: the top-k rule on the logits, and top-1/top-5 accuracy over a dataset.

The accuracy is Caffe's Accuracy layer's top-k rule, with ties at the true class scored
by their expected value under random tie-breaking (see `topk_correct`), applied to the
logits, the input of the final softmax (where BVLC's train_val.prototxt attaches it,
at fc8). Ranking logits rather than probabilities matters once a network's logits
are far apart: float32 softmax then rounds the lesser classes to exactly 0, and those
ties would decide top-5.
"""

import sys
import time

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from replication import data
from replication.errors import ReplicationError

SOFTMAX_LAYER = "prob"  # the project's models name their final softmax this (Caffe's name)


TIES = ("expected", "caffe")  # how ties with the true class are scored; see topk_correct


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int = 5, ties: str = "expected") -> tuple[float, float]:
    """(top-1 count, top-k count) over a batch: scores (N, classes), labels (N,).

    An image's count is its expected top-k hit under random tie-breaking: with b classes
    scoring strictly above its true class and a tie group of m classes scoring exactly what
    the true class scores (the true class included, so m >= 1), the true class lands with
    equal probability on each of the ranks b + 1 … b + m, so it is in the top k with
    probability clip((k − b) / m, 0, 1). Without a tie at the true class (m = 1) that is
    1 when b < k and 0 otherwise: Caffe's Accuracy layer rule exactly, so on real-valued
    logits the two rules agree. With all logits equal (100% node knockout of an output
    layer) it is chance, k / classes (0.005 top-5 of 1000 classes), the value the paper
    plots from the authors' argpartition ranking; Caffe's rule, which gives every tie
    against the true class, would score 0. The rule is deterministic and does not depend
    on class order. Counts are therefore fractional when ties touch a true class.

    Args:
        scores: logits, (N, classes). A NaN score ranks below every number; an image whose
            true class scores NaN counts 0 (Caffe itself would count it correct).
        labels: true classes, (N,).
        k: the k of top-k.
        ties: "expected" (the project's rule, above) or "caffe" (Caffe's: an image counts
            when fewer than k other classes score at least as high as its true class).

    Returns:
        (top-1 count, top-k count): floats for "expected", ints for "caffe".
    """
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, not {ties!r}")
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be (N, classes) for N={len(labels)} labels, got shape {scores.shape}")
    rows = np.arange(len(labels))
    nan_true = np.isnan(scores[rows, labels])
    scores = np.where(np.isnan(scores), -np.inf, scores)
    true = scores[rows, labels][:, None]
    above = (scores > true).sum(axis=1)
    group = (scores == true).sum(axis=1)  # the tie group, the true class included
    if ties == "caffe":
        others = above + group - 1
        return int(((others < 1) & ~nan_true).sum()), int(((others < k) & ~nan_true).sum())

    def expected(top):
        return float(np.where(nan_true, 0.0, np.clip((top - above) / group, 0.0, 1.0)).sum())

    return expected(1), expected(k)


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


def prediction_rows(files, scores: np.ndarray, labels: np.ndarray, k: int = 5) -> list[dict]:
    """One record per image: its file, its label, the k top-scoring classes in order (ties
    by class index) and the rank of its true class (1 + the classes scoring strictly higher).

    Args:
        files: the images' paths, in batch order.
        scores: (N, classes) logits.
        labels: (N,) true classes.

    Returns:
        [{"file", "label", "top1" … "top<k>", "true_rank"}] in batch order.
    """
    scores = np.where(np.isnan(scores), -np.inf, np.asarray(scores))
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    true = scores[np.arange(len(labels)), labels]
    ranks = 1 + (scores > true[:, None]).sum(axis=1)
    return [
        {"file": str(f), "label": int(label), **{f"top{i + 1}": int(c) for i, c in enumerate(row)}, "true_rank": int(rank)}
        for f, label, row, rank in zip(files, labels, top, ranks)
    ]


def evaluate_model(model, ds: data.Dataset, prep: data.Preprocessing, batch_size=64, progress=True, skip_bad=False,
                   predictions: list | None = None) -> dict:
    """Top-1 and top-5 accuracy of `model` on a dataset, decoding while the model runs.

    Args:
        model: a Keras classifier (its logits are scored, see `scores_model`).
        ds: the images and labels (`data.find_dataset`).
        prep: their preprocessing; its crop must be the model's input size.
        batch_size: images per batch.
        progress: a progress bar on stderr.
        skip_bad: leave out unreadable images instead of stopping.
        predictions: a list to extend with one `prediction_rows` record per image.

    Returns:
        {"top1", "top5": fractions, "images": how many were scored, "images_per_s": end to
        end (decoding included, the model's one-off tracing not), "skipped": [(file, problem)]}.

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
        for batch, labels, files in data.batches(ds, prep, batch_size, skip_bad, skipped, with_files=True):
            scores = np.asarray(score(batch), dtype=np.float32)  # bfloat16 logits under mixed precision
            c1, c5 = topk_correct(scores, labels)
            if predictions is not None:
                predictions += prediction_rows(files, scores, labels)
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
