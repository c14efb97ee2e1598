"""The ILSVRC2012 validation images: finding them and their labels, preprocessing them
as Caffe does, and decoding them once.

Three layouts are recognised (`find_dataset`):
  (a) a folder of ILSVRC2012_val_*.JPEG (directly or in images/) and Caffe's val.txt
      (`FILENAME LABEL` lines, labels 0..999): --labels, or val.txt in the folder;
  (b) one subfolder per class, named by its WordNet id (n01440764/...);
  (c) the devkit's ILSVRC2012_validation_ground_truth.txt (line i: the ILSVRC2012_ID,
      1..1000, of ILSVRC2012_val_0000000i) with meta.mat beside it, whose synsets map
      those ids to WordNet ids. The devkit numbers classes in its own order, not in
      sorted-wnid order, so the ids are mapped through meta.mat.
Labels always come out 0..999 in sorted-wnid order (replication/reference/synset_words.txt,
the order of Caffe's val.txt and of every Caffe Zoo classifier's output). Images are
ordered by file name, which for the validation set is image-number order, so `limit`
takes the same images whatever the layout.

Preprocessing (`Preprocessing`, `tf_dataset`) follows Caffe's ImageNet recipe: decode,
resize to resize x resize ignoring the aspect ratio (convert_imageset), centre crop
crop x crop at offset (resize - crop) // 2 (the data layer in the TEST phase), BGR
channel order, subtract the mean image cropped at the same offset, or the mean pixel.
Where it differs from Caffe (which uses OpenCV):
  - JPEG decoding uses libjpeg's accurate integer DCT, as OpenCV does; TensorFlow's
    default fast DCT differs from it by up to ~20 grey levels. With that, decoded pixels
    equal OpenCV's and PIL's exactly.
  - The resize is TensorFlow's bilinear (half-pixel centres, no antialiasing, like
    cv2.INTER_LINEAR), rounded back to 0..255 as Caffe's uint8 image store does.
    OpenCV computes 8-bit resizes in fixed point, so pixels differ from Caffe's by at
    most 1 grey level (measured on the shared images, and on them enlarged to the usual
    500x375: max 1, about 12% of values off by 1). A same-size resize returns the pixels
    unchanged, so with resize == crop == image size they are used exactly as decoded.
  - The mean image (ilsvrc_2012_mean.npy, 3 x 256 x 256 BGR) is resized (bilinear, in
    float) when resize is not its size before it is cropped. Caffe has no such step:
    its mean file must match the stored image size.

Bad input is found before any compute where it can be: label files that do not match
the images, missing files, and images that are empty, not JPEG/PNG or truncated
(`check_images`). A file that passes those checks and still fails to decode is caught
in the pipeline by its position and named the same way. With skip_bad, bad images are
left out and reported instead of stopping the run.
"""

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from replication.errors import ReplicationError
from replication.files import atomic_output, file_digest

CLASS_LIST = Path(__file__).with_name("reference") / "synset_words.txt"
MEAN_PIXEL_BGR = (104.0, 117.0, 123.0)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"
META = "meta.mat"
MEAN_FILE_HELP = (
    "the ImageNet mean image ships with Caffe as python/caffe/imagenet/ilsvrc_2012_mean.npy; "
    "pass it with --mean-file, or use --mean pixel (BGR 104/117/123)"
)
# Part of every dataset id: bump it when the pixels this module produces change, so that
# results tables and decoded caches made by the old code are told apart.
PIPELINE_VERSION = 1

_WNID = re.compile(r"n\d{8}")
_VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d+)\.", re.IGNORECASE)


# --- classes -------------------------------------------------------------------------


@functools.cache
def _class_list() -> tuple[tuple[str, str], ...]:
    lines = CLASS_LIST.read_text().splitlines()
    return tuple((wnid, words) for wnid, _, words in (line.partition(" ") for line in lines))


def class_wnids() -> tuple[str, ...]:
    """The 1000 ILSVRC2012 WordNet ids, sorted: label i is class_wnids()[i]."""
    return tuple(wnid for wnid, _ in _class_list())


def class_names() -> tuple[str, ...]:
    """Human-readable names, in label order ("tench, Tinca tinca", ...)."""
    return tuple(words for _, words in _class_list())


@functools.cache
def _label_of_wnid() -> dict[str, int]:
    return {wnid: i for i, wnid in enumerate(class_wnids())}


# --- preprocessing ---------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    resize: int = 256
    crop: int = 227
    mean: str = "image"  # "image": mean_file cropped like the images; "pixel": BGR 104/117/123
    mean_file: Path | None = None

    def __post_init__(self):
        if self.mean not in ("image", "pixel"):
            raise ReplicationError(None, f"mean must be 'image' or 'pixel', not {self.mean!r}")
        if not 0 < self.crop <= self.resize:
            raise ReplicationError(None, f"crop ({self.crop}) must be between 1 and resize ({self.resize})")
        if self.mean_file is not None:
            object.__setattr__(self, "mean_file", Path(self.mean_file))

    @property
    def offset(self) -> int:
        """Top-left corner of the centre crop, as Caffe's data layer computes it."""
        return (self.resize - self.crop) // 2


def _resize_bilinear(image: tf.Tensor, size: int) -> tf.Tensor:
    return tf.image.resize(image, [size, size], method="bilinear", antialias=False)


def mean_bgr(prep: Preprocessing) -> np.ndarray:
    """What is subtracted from each crop: (crop, crop, 3) for the mean image, (3,) for the
    mean pixel; float32, BGR."""
    if prep.mean == "pixel":
        return np.array(MEAN_PIXEL_BGR, np.float32)
    if prep.mean_file is None:
        raise ReplicationError(None, f"--mean image needs a mean file: {MEAN_FILE_HELP}")
    if not prep.mean_file.is_file():
        raise ReplicationError(prep.mean_file, f"mean file not found ({MEAN_FILE_HELP})")
    try:
        mean = np.load(prep.mean_file, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise ReplicationError(prep.mean_file, f"cannot read as a .npy array ({err}); {MEAN_FILE_HELP}") from None
    if mean.ndim != 3 or mean.shape[0] != 3:
        raise ReplicationError(prep.mean_file, f"expected a 3 x H x W BGR mean image, got shape {mean.shape}")
    mean = np.transpose(mean, (1, 2, 0)).astype(np.float32)
    if mean.shape[:2] != (prep.resize, prep.resize):
        mean = _resize_bilinear(mean, prep.resize).numpy()
    o = prep.offset
    return np.ascontiguousarray(mean[o : o + prep.crop, o : o + prep.crop])


# RGB -> BGR as a product with a permutation matrix: exact (each output is one input
# times 1 plus zeros), and in tf.data much faster than reversing the 3-long channel
# axis, which cost more than the decoding (measured here: 2,200 vs 1,270 images/s).
_RGB_TO_BGR = np.eye(3, dtype=np.float32)[::-1]


def _preprocess_fn(prep: Preprocessing):
    mean = tf.constant(mean_bgr(prep))
    o, c, size = prep.offset, prep.crop, prep.resize

    def preprocess(path, label, index):
        # Accurate DCT: what OpenCV (so Caffe) and PIL decode. The op also reads PNG.
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3, dct_method="INTEGER_ACCURATE")
        # Caffe stores resized images as uint8, hence the rounding. A same-size bilinear
        # resize returns the pixels unchanged.
        image = tf.clip_by_value(tf.round(_resize_bilinear(image, size)), 0.0, 255.0)
        image = tf.tensordot(image[o : o + c, o : o + c], _RGB_TO_BGR, axes=1) - mean
        return image, label, index

    return preprocess


# --- datasets ----------------------------------------------------------------------------


@dataclass
class Dataset:
    files: list[Path]
    labels: np.ndarray  # int32, 0..999 in sorted-wnid order
    root: Path
    layout: str = ""  # "val.txt", "class folders" or "devkit": how the labels were found
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, problem) left out

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, keep) -> "Dataset":
        keep = np.asarray(keep, dtype=np.int64)
        return Dataset([self.files[i] for i in keep], self.labels[keep], self.root, self.layout, list(self.skipped))


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _image_folder(data_dir: Path) -> Path:
    images = data_dir / "images"
    return images if images.is_dir() else data_dir


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ReplicationError(path, "is not a text label file") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _is_ground_truth(path: Path) -> bool:
    """The devkit's file has one number per line; Caffe's val.txt has a name and a label."""
    lines = _read_lines(path)
    return bool(lines) and lines[0][1].isdigit()


def _val_txt_layout(folder: Path, val_txt: Path) -> list[tuple[Path, int]]:
    listed: dict[str, tuple[int, int]] = {}
    for n, line in _read_lines(val_txt):
        parts = line.rsplit(maxsplit=1)  # Caffe's ImageData layer also splits at the last space
        if len(parts) != 2 or not parts[1].isdigit():
            raise ReplicationError(val_txt, f"line {n}: expected 'FILENAME LABEL', got {line!r}")
        name, label = parts[0], int(parts[1])
        if label >= 1000:
            raise ReplicationError(val_txt, f"line {n}: label {label} is not in 0..999")
        if name in listed:
            raise ReplicationError(val_txt, f"line {n}: {name} is listed twice (first on line {listed[name][0]})")
        listed[name] = (n, label)
    if not listed:
        raise ReplicationError(val_txt, "lists no images")

    present = {p.name for p in _image_files(folder)}
    missing = [name for name in listed if name not in present and not (folder / name).is_file()]
    if missing:
        raise ReplicationError(
            folder / missing[0],
            f"listed in {val_txt} (line {listed[missing[0]][0]}) but missing; "
            f"{len(missing)} of the {len(listed)} listed images are not in {folder}",
        )
    unlabelled = sorted(present - set(listed))
    if unlabelled:
        raise ReplicationError(
            val_txt,
            f"lists {len(listed)} images but {folder} holds {len(present)}: "
            f"{len(unlabelled)} have no label, e.g. {unlabelled[0]}",
        )
    return [(folder / name, label) for name, (_, label) in listed.items()]


def _class_folder_layout(data_dir: Path) -> list[tuple[Path, int]]:
    label_of = _label_of_wnid()
    pairs = []
    for sub in sorted(p for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in label_of:
            what = "not one of the 1000 ILSVRC2012 classes" if _WNID.fullmatch(sub.name) else "not a WordNet id"
            raise ReplicationError(
                sub, f"is {what}: in a class-folder layout every subfolder is a class (e.g. n01440764)"
            )
        pairs += [(f, label_of[sub.name]) for f in _image_files(sub)]
    loose = _image_files(data_dir)
    if loose:
        raise ReplicationError(loose[0], "is outside the class folders, so its class is unknown")
    return pairs


def _read_meta(meta: Path) -> dict[int, int]:
    """meta.mat: devkit class id (ILSVRC2012_ID 1..1000) -> label in sorted-wnid order."""
    import scipy.io  # only the devkit layout needs it

    if not meta.is_file():
        raise ReplicationError(meta, f"not found: the devkit's meta.mat must sit beside {GROUND_TRUTH}")
    try:
        synsets = scipy.io.loadmat(meta, squeeze_me=True)["synsets"]
        ids, wnids = synsets["ILSVRC2012_ID"], synsets["WNID"]
    except Exception as err:  # scipy raises several types for files that are not .mat
        problem = f"has no synsets with ILSVRC2012_ID and WNID ({type(err).__name__}: {err})"
        raise ReplicationError(meta, problem) from None
    label_of = _label_of_wnid()
    mapping = {}
    # meta.mat also lists the WordNet ancestors of the classes, with ids above 1000.
    for class_id, wnid in zip(np.atleast_1d(ids), np.atleast_1d(wnids)):
        if 1 <= int(class_id) <= 1000:
            if str(wnid) not in label_of:
                raise ReplicationError(meta, f"class {int(class_id)} is {wnid}, not one of the 1000 ILSVRC2012 classes")
            mapping[int(class_id)] = label_of[str(wnid)]
    if sorted(mapping) != list(range(1, 1001)) or len(set(mapping.values())) != 1000:
        raise ReplicationError(meta, "does not map the class ids 1..1000 to 1000 distinct classes")
    return mapping


def _devkit_layout(folder: Path, ground_truth: Path) -> list[tuple[Path, int]]:
    label_of_id = _read_meta(ground_truth.with_name(META))
    ids = []
    for n, line in _read_lines(ground_truth):
        if not line.isdigit() or int(line) not in label_of_id:
            raise ReplicationError(ground_truth, f"line {n}: expected a class id 1..1000, got {line!r}")
        ids.append(int(line))
    pairs = []
    # Line i is image number i, so a folder may hold any subset of the 50,000 images.
    for f in _image_files(folder):
        number = _VAL_NUMBER.match(f.name)
        if number is None:
            raise ReplicationError(f, f"is not named ILSVRC2012_val_<number>, so its line in {GROUND_TRUTH} is unknown")
        i = int(number.group(1))
        if not 1 <= i <= len(ids):
            raise ReplicationError(ground_truth, f"has {len(ids)} labels but {f.name} is image number {i}")
        pairs.append((f, label_of_id[ids[i - 1]]))
    return pairs


def find_dataset(data_dir, labels=None, limit=None) -> Dataset:
    """Find the images and labels in data_dir (see the module docstring for the layouts).

    labels: a Caffe val.txt or the devkit's ground-truth file (meta.mat beside it);
    otherwise looked for in data_dir. limit: keep the first `limit` images by file name.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ReplicationError(data_dir, "no such folder of validation images")
    folder = _image_folder(data_dir)
    if labels is not None:
        labels = Path(labels)
        if not labels.is_file():
            raise ReplicationError(labels, "label file not found")
    else:
        labels = next((p for p in (data_dir / "val.txt", data_dir / GROUND_TRUTH) if p.is_file()), None)

    if labels is not None and _is_ground_truth(labels):
        layout, pairs = "devkit", _devkit_layout(folder, labels)
    elif labels is not None:
        layout, pairs = "val.txt", _val_txt_layout(folder, labels)
    elif any(_WNID.fullmatch(p.name) and p.is_dir() for p in data_dir.iterdir()):
        layout, pairs = "class folders", _class_folder_layout(data_dir)
    else:
        raise ReplicationError(
            data_dir,
            "cannot tell the labels: expected val.txt (or --labels val.txt), one subfolder per "
            f"class named by WordNet id, or the devkit's {GROUND_TRUTH} with {META}",
        )
    if not pairs:
        raise ReplicationError(data_dir, "holds no images (.JPEG, .jpg or .png)")
    pairs.sort(key=lambda pair: (pair[0].name, str(pair[0])))
    if limit is not None:
        if limit < 1:
            raise ReplicationError(None, f"limit must be at least 1, not {limit}")
        pairs = pairs[:limit]
    files = [f for f, _ in pairs]
    return Dataset(files, np.array([label for _, label in pairs], np.int32), data_dir, layout)


# --- bad images ------------------------------------------------------------------------

_JPEG_TAIL = 4096  # where the end-of-image marker is looked for first


def _image_problem(path: Path) -> str | None:
    """Why `path` cannot be a complete JPEG or PNG, from its structure alone (cheap: the
    header segments and the last few KB), or None."""
    try:
        size = path.stat().st_size
        f = open(path, "rb")
    except FileNotFoundError:
        return "image file is missing"
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    with f:
        head = f.read(8)
        if size == 0:
            return "is empty"
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            f.seek(max(0, size - 12))
            return None if b"IEND" in f.read() else "is a truncated PNG (no IEND chunk)"
        if not head.startswith(b"\xff\xd8\xff"):
            return "is not a JPEG or PNG image"
        # Walk the header segments (each FF xx + length) up to the start of the scan.
        pos = 2
        while True:
            f.seek(pos)
            marker = f.read(4)
            if len(marker) < 2:
                return "is truncated (it ends inside the JPEG header)"
            if marker[0] != 0xFF:
                return "is a corrupt JPEG (bad header segment)"
            if marker[1] == 0xFF:  # fill byte
                pos += 1
                continue
            if marker[1] == 0xDA:  # start of scan: entropy-coded data follows
                break
            if marker[1] == 0xD9 or len(marker) < 4:
                return "is truncated (it ends inside the JPEG header)"
            if 0xD0 <= marker[1] <= 0xD7 or marker[1] == 0x01:  # markers without a length
                pos += 2
                continue
            pos += 2 + int.from_bytes(marker[2:4], "big")
            if pos > size:
                return "is truncated (it ends inside the JPEG header)"
        # FF D9 cannot occur inside the entropy-coded data (an FF there is followed by 00
        # or a restart marker), so finding it after the scan start means the file is whole.
        f.seek(max(pos, size - _JPEG_TAIL))
        if b"\xff\xd9" in f.read():
            return None
        f.seek(pos)  # data appended after the end marker: look through the whole scan
        return None if b"\xff\xd9" in f.read() else "is truncated (no JPEG end-of-image marker)"


def check_images(ds: Dataset, skip_bad=False) -> Dataset:
    """Check every image's structure before any is decoded. A bad one is an error naming
    it; with skip_bad, the dataset without the bad images, which are listed in `skipped`."""
    bad, keep = [], []
    for i, f in enumerate(ds.files):
        problem = _image_problem(f)
        if problem is None:
            keep.append(i)
        elif not skip_bad:
            raise ReplicationError(f, problem)
        else:
            bad.append((f, problem))
    if not bad:
        return ds
    checked = ds.subset(keep)
    checked.skipped += bad
    return checked


def report_skipped(skipped, file=None) -> None:
    """One line per image left out by skip_bad, on stderr."""
    file = file or sys.stderr
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s):", file=file)
        for path, problem in skipped:
            print(f"  {path}: {problem}", file=file)


# --- the tf.data pipeline -----------------------------------------------------------------


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pipeline(ds: Dataset, prep: Preprocessing, batch_size: int, drop_errors: bool) -> tf.data.Dataset:
    """Batches of (images, labels, indices into ds.files)."""
    index = np.arange(len(ds), dtype=np.int32)
    pipeline = tf.data.Dataset.from_tensor_slices(([str(f) for f in ds.files], ds.labels.astype(np.int32), index))
    # Fixed parallelism rather than AUTOTUNE: it decodes as fast here, and an autotuned
    # pipeline can stall for seconds when its exhausted iterator is discarded.
    pipeline = pipeline.map(_preprocess_fn(prep), num_parallel_calls=_cores(), deterministic=True)
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


def batches(ds: Dataset, prep: Preprocessing, batch_size=64, skip_bad=False, skipped=None):
    """Iterate (images tf.Tensor, labels np.ndarray) batches; every bad image, found by the
    structure check or by a failed decode, is a ReplicationError naming it, or with
    skip_bad is left out and appended to `skipped` as (file, problem)."""
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


# --- identity and decode-once ---------------------------------------------------------------


def dataset_id(ds: Dataset, prep: Preprocessing) -> str:
    """A short hash of what determines the decoded images: each image's file name, size
    and label, in order, and the preprocessing (the mean file by content). The same
    images give the same id in any layout and at any path."""
    recipe = {"pipeline": PIPELINE_VERSION, "resize": prep.resize, "crop": prep.crop, "mean": prep.mean}
    if prep.mean == "image":
        mean_bgr(prep)  # the usual errors for a missing or unreadable mean file
        recipe["mean_sha256"] = file_digest(prep.mean_file, "sha256")
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for f, label in zip(ds.files, ds.labels):
        try:
            size = f.stat().st_size
        except FileNotFoundError:
            raise ReplicationError(f, "image file is missing") from None
        digest.update(f"{f.name}\t{size}\t{int(label)}\n".encode())
    return digest.hexdigest()[:16]


def _default_memory_gb() -> float:
    """Half of the machine's RAM."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 / 2


def load_arrays(ds: Dataset, prep: Preprocessing, cache_dir=None, memory_gb=None, skip_bad=False,
                cache_gb=None, batch_size=64):
    """Decode and preprocess every image once: (images (N, crop, crop, 3) float32, labels int32).

    The images are an array in RAM when they fit memory_gb (default: half the RAM);
    otherwise a read-only np.memmap of a file in cache_dir named by `dataset_id`, reused
    while its metadata matches and rebuilt (written aside, then renamed) when it does
    not. cache_gb bounds the cache folder: older decoded caches there are removed to
    make room, and a dataset larger than the bound is an error. Images left out by
    skip_bad are reported on stderr; the labels say which remain.
    """
    checked = check_images(ds, skip_bad)
    n = len(checked)
    need = n * prep.crop * prep.crop * 3 * 4
    bound = _default_memory_gb() if memory_gb is None else memory_gb
    if need <= bound * 2**30:
        skipped = list(checked.skipped)
        images = np.empty((n, prep.crop, prep.crop, 3), np.float32)
        labels, rows = _fill(images, checked, prep, batch_size, skip_bad, skipped)
        report_skipped(skipped)
        return images[:rows], labels
    if cache_dir is None:
        raise ReplicationError(
            None,
            f"the {n} decoded images need {need / 2**30:.1f} GB, more than the {bound:g} GB allowed in memory: "
            "give a cache folder (--cache-dir) for a memory-mapped copy on disk, or raise --memory-gb",
        )
    return _cached_arrays(ds, checked, prep, Path(cache_dir), skip_bad, cache_gb, batch_size)


def _fill(images, ds, prep, batch_size, skip_bad, skipped):
    """Decode ds into images[0:rows]; return (labels, rows)."""
    labels, rows = [], 0
    for batch, batch_labels in batches(ds, prep, batch_size, skip_bad, skipped):
        images[rows : rows + len(batch_labels)] = batch.numpy()
        labels.append(batch_labels)
        rows += len(batch_labels)
    return np.concatenate(labels).astype(np.int32) if labels else np.zeros(0, np.int32), rows


_CACHE_PREFIX = "decoded-"


def _cache_entries(cache_dir: Path) -> list[tuple[Path, Path]]:
    """(images .npy, metadata .json) of every decoded cache in cache_dir, oldest use first."""
    entries = [(p, p.with_suffix(".json")) for p in cache_dir.glob(_CACHE_PREFIX + "*.npy")]
    return sorted(entries, key=lambda e: e[1].stat().st_mtime if e[1].exists() else 0.0)


def _cache_metadata(key: str, shape) -> dict:
    return {"dataset_id": key, "shape": list(shape), "dtype": "float32", "tensorflow": tf.__version__}


def _reuse_cache(npy: Path, meta_path: Path, expected: dict):
    """(images memmap, metadata) of a complete cache made for `expected`, else None."""
    try:
        meta = json.loads(meta_path.read_text())
        if {k: meta.get(k) for k in expected} != expected:
            return None
        images = np.load(npy, mmap_mode="r")  # fails on a file shorter than its header says
    except (OSError, ValueError):
        return None  # missing, incomplete or unreadable: rebuilt
    if list(images.shape) != expected["shape"] or not {"rows", "labels", "skipped"} <= meta.keys():
        return None
    with contextlib.suppress(OSError):  # a read-only cache is still usable
        os.utime(meta_path)  # most recently used: evicted last
    return images, meta


def _cached_arrays(ds, checked, prep, cache_dir, skip_bad, cache_gb, batch_size):
    key = dataset_id(ds, prep)
    npy = cache_dir / f"{_CACHE_PREFIX}{key}.npy"
    meta_path = npy.with_suffix(".json")
    shape = (len(checked), prep.crop, prep.crop, 3)
    expected = _cache_metadata(key, shape)
    reused = _reuse_cache(npy, meta_path, expected)
    if reused is not None:
        images, meta = reused
        skipped = [(Path(f), problem) for f, problem in meta["skipped"]]
        if skipped and not skip_bad:
            raise ReplicationError(*skipped[0])
        report_skipped(skipped)
        return images[: meta["rows"]], np.array(meta["labels"], np.int32)

    need = int(np.prod(shape)) * 4
    _make_room(cache_dir, need, cache_gb, keep=npy)
    skipped = list(checked.skipped)
    with atomic_output(npy) as tmp:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        labels, rows = _fill(images, checked, prep, batch_size, skip_bad, skipped)
        images.flush()
        del images
    meta = expected | {
        "rows": rows,
        "labels": labels.tolist(),
        "skipped": [(str(f), problem) for f, problem in skipped],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    # Written last: a cache without its metadata is incomplete and gets rebuilt.
    with atomic_output(meta_path) as tmp:
        tmp.write_text(json.dumps(meta))
    report_skipped(skipped)
    return np.load(npy, mmap_mode="r")[:rows], labels


def _make_room(cache_dir: Path, need: int, cache_gb, keep: Path) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    if cache_gb is not None:
        bound = cache_gb * 2**30
        if need > bound:
            raise ReplicationError(
                cache_dir, f"the decoded images need {need / 2**30:.1f} GB, over the cache bound of {cache_gb:g} GB"
            )
        entries = [e for e in _cache_entries(cache_dir) if e[0] != keep]
        used = sum(p.stat().st_size for p, _ in entries)
        while entries and used + need > bound:
            npy, meta = entries.pop(0)
            used -= npy.stat().st_size
            meta.unlink(missing_ok=True)
            npy.unlink(missing_ok=True)
    free = shutil.disk_usage(cache_dir).free
    if need > free:
        raise ReplicationError(
            cache_dir, f"the decoded images need {need / 2**30:.1f} GB but only {free / 2**30:.1f} GB are free"
        )


def clear_cache(cache_dir) -> int:
    """Remove every decoded-image cache (and leftovers of interrupted ones) from cache_dir;
    return the bytes freed."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return 0
    freed = 0
    for pattern in (_CACHE_PREFIX + "*", "." + _CACHE_PREFIX + "*"):
        for path in cache_dir.glob(pattern):
            freed += path.stat().st_size
            path.unlink()
    return freed
