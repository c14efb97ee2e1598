"""The ILSVRC2012 validation images, from files to preprocessed arrays.

classes        the 1000 classes, label i = i-th sorted WordNet id
layouts        finding images and labels (val.txt, class folders, devkit): `find_dataset`
checks         structurally bad images, found before decoding
preprocessing  Caffe's resize, crop, BGR and mean subtraction: `Preprocessing`
pipeline       the tf.data pipeline: `tf_dataset`, `batches`
cache          decode once, in RAM or memory-mapped on disk: `load_arrays`, `dataset_id`
training       a stratified train/held-out split; the seeded, augmented training stream
"""

from replication.data.cache import clear_cache, dataset_id, load_arrays
from replication.data.checks import check_images, report_skipped
from replication.data.classes import class_names, class_wnids
from replication.data.layouts import GROUND_TRUTH, META, Dataset, find_dataset
from replication.data.pipeline import batches, tf_dataset
from replication.data.preprocessing import MEAN_PIXEL_BGR, Preprocessing, mean_bgr

__all__ = [
    "GROUND_TRUTH", "META", "MEAN_PIXEL_BGR", "Dataset", "Preprocessing", "batches", "check_images",
    "class_names", "class_wnids", "clear_cache", "dataset_id", "find_dataset", "load_arrays", "mean_bgr",
    "report_skipped", "tf_dataset",
]  # fmt: skip
