"""Training images: a seeded, class-stratified train/held-out split, and the training
stream, batch after batch, with Caffe's TRAIN-phase augmentation.

The stream is a function of (seed, step) alone: step s takes positions s·B … s·B + B − 1
of an endless sequence of epochs, each a permutation of the training images drawn from
(seed, epoch), and each image's crop offset and mirror are drawn from (seed, position).
A run resumed at step s therefore sees exactly the images, crops and mirrors the
uninterrupted run saw from step s on, whatever was computed before, and every run of one
recovery study (damaged networks and controls alike) sees the same stream.

Augmentation is what Caffe's data layer does in its TRAIN phase (`crop_size`, `mirror:
true` in BVLC's train_val.prototxt): the image is resized and mean-subtracted as for
evaluation (`Preprocessing`), then a crop of the model's input size is taken at a uniformly
random offset instead of the centre, and mirrored left-right with probability 1/2. With
resize == crop (the Keras Applications recipes) the crop is the whole image and only the
mirror remains.
"""

import dataclasses
import hashlib

import numpy as np
import tensorflow as tf

from replication.data.layouts import Dataset
from replication.data.preprocessing import Preprocessing, preprocess_fn
from replication.errors import ReplicationError
from replication.machine import cores


def stratified_split(ds: Dataset, heldout_fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
    """(train, held-out): a seeded split in which each class gives its share to each side.

    Args:
        ds: the images to split.
        heldout_fraction: the share of each class held out, in (0, 1).
        seed: the split's seed; the same seed and images give the same split.

    Returns:
        Two Datasets in file order. Of a class's n images, floor(f·n) are held out, plus one
        more with probability frac(f·n); a class of two or more images always has one on
        each side, so every held-out class with any sibling was also trained on.
    """
    if not 0.0 < heldout_fraction < 1.0:
        raise ReplicationError(None, f"the held-out fraction must be between 0 and 1, not {heldout_fraction:g}")
    rng = np.random.default_rng([seed, 0x5EED])
    heldout = []
    for label in np.unique(ds.labels):
        members = rng.permutation(np.flatnonzero(ds.labels == label))
        share = heldout_fraction * len(members)
        count = int(share) + int(rng.random() < share - int(share))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        heldout += members[:count].tolist()
    heldout = np.sort(np.asarray(heldout, dtype=np.int64))
    train = np.setdiff1d(np.arange(len(ds)), heldout)
    if not len(train) or not len(heldout):
        raise ReplicationError(ds.root, f"{len(ds)} images cannot be split into a training and a held-out set")
    return ds.subset(train), ds.subset(heldout)


def random_sample(ds: Dataset, count: int, seed: int = 0) -> Dataset:
    """A seeded uniform sample of `count` of the images, in file order (all of them when
    there are no more): every class has its chance, where the first `count` files of a
    class-folder layout would be a few classes."""
    if count >= len(ds):
        return ds
    keep = np.random.default_rng([seed, 0x11A1]).choice(len(ds), count, replace=False)
    return ds.subset(np.sort(keep))


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose ("order", "crop", "dropout|0", …) derived from the study's seed."""
    digest = hashlib.sha256(f"{int(seed)}|{purpose}".encode()).digest()
    return int.from_bytes(digest[:7], "big")  # below 2**56: a valid int64


def stream_indices(count: int, batch_size: int, seed: int, start_step: int, stop_step: int) -> np.ndarray:
    """Indices into the training images of steps start_step … stop_step − 1, (steps, batch_size).

    Position p of the stream is image perm_e[p mod count] of epoch e = p // count, where
    perm_e is a permutation drawn from (seed, e) alone.
    """
    positions = np.arange(start_step * batch_size, stop_step * batch_size, dtype=np.int64)
    epochs, within = np.divmod(positions, count)
    out = np.empty_like(positions)
    for epoch in np.unique(epochs):
        permutation = np.random.default_rng([derived_seed(seed, "order"), int(epoch)]).permutation(count)
        here = epochs == epoch
        out[here] = permutation[within[here]]
    return out.reshape(stop_step - start_step, batch_size)


def training_stream(ds: Dataset, prep: Preprocessing, batch_size: int, seed: int, start_step: int, stop_step: int,
                    augment: bool = True):
    """Iterate the batches (images NHWC float32, labels int32) of training steps
    start_step … stop_step − 1. An image that passed the structure check and still cannot
    be decoded is a ReplicationError naming it.

    Args:
        ds: the training images (any layout, `find_dataset`), already checked
            (`check_images`, once per study: ImageNet's train set has 1.28 million files).
        prep: the evaluation preprocessing: its resize, mean and channel order are kept,
            and the crop is taken at random (with `augment`) or at the centre.
        batch_size: images per step.
        seed: the stream's seed (see the module notes).
        start_step, stop_step: the steps to deliver.
        augment: Caffe's random crop and mirror; without it, the evaluation's centre crop.
    """
    if not len(ds):
        raise ReplicationError(ds.root, "no training images")
    order = stream_indices(len(ds), batch_size, seed, start_step, stop_step).reshape(-1)
    positions = np.arange(start_step * batch_size, stop_step * batch_size, dtype=np.int64)
    files = np.array([str(f) for f in ds.files])[order]
    labels = ds.labels.astype(np.int32)[order]
    decode = preprocess_fn(dataclasses.replace(prep, crop=prep.resize))  # the whole resized image
    crop_seed, mirror_seed = derived_seed(seed, "crop"), derived_seed(seed, "mirror")
    size, offset = prep.crop, prep.offset

    def load(path, label, position):
        image, label, _ = decode(path, label, position)
        if not augment:
            return image[offset : offset + size, offset : offset + size], label
        image = tf.image.stateless_random_crop(image, [size, size, 3], seed=tf.stack([crop_seed, position]))
        image = tf.image.stateless_random_flip_left_right(image, seed=tf.stack([mirror_seed, position]))
        return image, label

    pipeline = tf.data.Dataset.from_tensor_slices((files, labels, positions))
    pipeline = pipeline.map(load, num_parallel_calls=cores(), deterministic=True)
    options = tf.data.Options()
    options.autotune.enabled = False
    try:
        yield from pipeline.batch(batch_size, drop_remainder=True).prefetch(2).with_options(options)
    except tf.errors.InvalidArgumentError:
        for name in dict.fromkeys(files):
            try:
                tf.io.decode_jpeg(tf.io.read_file(name), channels=3)
            except tf.errors.InvalidArgumentError:
                raise ReplicationError(name, "training image cannot be decoded (corrupt image data)") from None
        raise
