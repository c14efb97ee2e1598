"""The tf.data pipeline: decoding and preprocessing in parallel threads, in dataset order,
with every image that fails to decode named."""

import numpy as np
import tensorflow as tf

from replication.data.checks import check_images, report_skipped
from replication.data.layouts import Dataset
from replication.data.preprocessing import Preprocessing, preprocess_fn
from replication.errors import ReplicationError
from replication.machine import cores


def _pipeline(ds: Dataset, prep: Preprocessing, batch_size: int, drop_errors: bool) -> tf.data.Dataset:
    """Batches of (images, labels, indices into ds.files)."""
    index = np.arange(len(ds), dtype=np.int32)
    pipeline = tf.data.Dataset.from_tensor_slices(([str(f) for f in ds.files], ds.labels.astype(np.int32), index))
    # Fixed parallelism rather than AUTOTUNE: it decodes as fast here, and an autotuned
    # pipeline can stall for seconds when its exhausted iterator is discarded.
    pipeline = pipeline.map(preprocess_fn(prep), num_parallel_calls=cores(), deterministic=True)
    if drop_errors:
        pipeline = pipeline.ignore_errors()
    pipeline = pipeline.batch(batch_size).prefetch(2)
    options = tf.data.Options()
    options.autotune.enabled = False
    return pipeline.with_options(options)


def tf_dataset(ds: Dataset, prep: Preprocessing, batch_size=64, skip_bad=False) -> tf.data.Dataset:
    """Batches of (images NHWC float32 BGR mean-subtracted, int32 labels), in ds order.

    The images are checked first (`check_images`); bad ones are an error naming them, or
    with skip_bad are left out and reported. An image that passes the check and still
    fails to decode stops the iteration with TensorFlow's error, which cannot name the
    file (with skip_bad it is dropped unreported): `batches()` names it in both cases.
    """
    checked = check_images(ds, skip_bad)
    report_skipped(checked.skipped)
    pipeline = _pipeline(checked, prep, batch_size, drop_errors=skip_bad)
    return pipeline.map(lambda images, labels, index: (images, labels))


def batches(ds: Dataset, prep: Preprocessing, batch_size=64, skip_bad=False, skipped=None, with_files=False):
    """Iterate (images tf.Tensor, labels np.ndarray) batches, with the batch's image files
    as a third item when `with_files`; every bad image, found by the structure check or by
    a failed decode, is a ReplicationError naming it, or with skip_bad is left out and
    appended to `skipped` as (file, problem)."""
    checked = check_images(ds, skip_bad)
    if skipped is not None:
        skipped += checked.skipped
    expected = 0
    if not checked.files:
        raise ReplicationError(ds.root, f"none of the {len(ds)} images could be read")
    for images, labels, index in _pipeline(checked, prep, batch_size, drop_errors=True):
        index = index.numpy()
        # ignore_errors drops the images that fail to decode: they show as gaps in the index.
        _lost_images(checked, np.setdiff1d(np.arange(expected, index[-1] + 1), index), skip_bad, skipped)
        expected = index[-1] + 1
        if with_files:
            yield images, labels.numpy(), [checked.files[i] for i in index]
        else:
            yield images, labels.numpy()
    _lost_images(checked, np.arange(expected, len(checked)), skip_bad, skipped)
    if expected == 0:
        raise ReplicationError(ds.root, f"none of the {len(ds)} images could be read")


def _lost_images(ds: Dataset, lost, skip_bad, skipped) -> None:
    for i in lost:
        problem = "cannot be decoded (corrupt image data)"
        if not skip_bad:
            raise ReplicationError(ds.files[i], problem)
        if skipped is not None:
            skipped.append((ds.files[i], problem))
