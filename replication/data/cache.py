"""Decode once: every image preprocessed into one array in RAM, or into a memory-mapped
cache file on disk when it does not fit the memory bound; and the dataset's identity."""

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from replication.arrays import aligned_empty
from replication.data.checks import check_images, report_skipped
from replication.data.layouts import Dataset
from replication.data.pipeline import batches
from replication.data.preprocessing import PIPELINE_VERSION, Preprocessing, mean_bgr
from replication.errors import ReplicationError
from replication.files import atomic_output, file_digest
from replication.machine import half_the_ram_gb


def dataset_id(ds: Dataset, prep: Preprocessing) -> str:
    """A short hash of what determines the decoded images: each image's file name, size
    and label, in order, and the preprocessing (the mean file by content). The same
    images give the same id in any layout and at any path."""
    recipe = {"pipeline": PIPELINE_VERSION, "resize": prep.resize, "crop": prep.crop, "mean": prep.mean}
    if prep.resize_filter != "bilinear":
        # Only when not the default, so the ids of tables made before the option stay valid.
        recipe["resize_filter"] = prep.resize_filter
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


def load_arrays(ds: Dataset, prep: Preprocessing, cache_dir=None, memory_gb=None, skip_bad=False,
                cache_gb=None, batch_size=64):
    """Decode and preprocess every image once: (images (N, crop, crop, 3) float32, labels int32).

    The images are an array in RAM when they fit memory_gb (default: half the RAM);
    otherwise a read-only np.memmap of a file in cache_dir named by `dataset_id`, reused
    while its metadata and the sha256 of its contents match and rebuilt (written aside,
    then renamed) when they do not; a damaged cache is named on stderr and removed. cache_gb bounds the cache folder: older decoded caches there are removed to
    make room, and a dataset larger than the bound is an error. Images left out by
    skip_bad are reported on stderr; the labels say which remain.
    """
    checked = check_images(ds, skip_bad)
    n = len(checked)
    need = n * prep.crop * prep.crop * 3 * 4
    bound = half_the_ram_gb() if memory_gb is None else memory_gb
    if need <= bound * 2**30:
        skipped = list(checked.skipped)
        images = aligned_empty((n, prep.crop, prep.crop, 3))
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
    """(images memmap, metadata) of a complete cache made for `expected` whose contents
    match the sha256 recorded when it was written, else None. A cache that is there but
    damaged (truncated, changed, without its checksum) is removed, with one line saying so,
    and rebuilt by the caller."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        meta = None  # missing or torn metadata: the cache is incomplete
    if meta is not None and {k: meta.get(k) for k in expected} != expected:
        return None  # a cache of another build (TensorFlow version): rebuilt without a word
    if not npy.exists():
        return None
    problem = None
    if meta is None or not {"rows", "labels", "skipped", "sha256"} <= meta.keys():
        problem = "its metadata is missing or incomplete"
    else:
        try:
            images = np.load(npy, mmap_mode="r")  # fails on a file shorter than its header says
            if list(images.shape) != expected["shape"]:
                problem = f"its shape is {list(images.shape)}, not {expected['shape']}"
            elif file_digest(npy, "sha256") != meta["sha256"]:
                problem = "its contents do not match their sha256"
        except (OSError, ValueError) as err:
            problem = f"unreadable ({err})"
    if problem is not None:
        print(f"warning: {npy}: damaged decoded-image cache ({problem}); removed, decoding the images again",
              file=sys.stderr)
        meta_path.unlink(missing_ok=True)
        npy.unlink(missing_ok=True)
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
        digest = file_digest(tmp, "sha256")  # checked at every reuse: a changed cache is never used
    meta = expected | {
        "sha256": digest,
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
