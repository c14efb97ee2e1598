"""Fetching the public files the replication needs: the Model Zoo's AlexNet (and
CaffeNet) weights, Caffe's ImageNet mean image, Caffe's ILSVRC12 auxiliary archive, the
authors' Keras 1 AlexNet and Keras's VGG-16 weights (`ITEMS`).

    import replication as rp
    rp.download("alexnet", to="caffe_weights")   # -> Download(path, sha256, ...)

Each file is written to a hidden `.NAME.download` beside its target and resumed from
there (an HTTP Range request) only when the server proves, through the ETag or
Last-Modified saved with the partial file (`If-Range`), that the file has not changed;
otherwise it starts over, so two versions are never spliced. Nothing takes its final
name until it has passed every check: the published hash (sha1 for the Model Zoo, md5
for Keras's VGG-16), the content check (the mean image's shape), and for an archive the
extraction of its members. A file with no published hash has its sha256 recorded beside
it at first download (`NAME.sha256`), and every later run checks it against that.

The ILSVRC2012 validation images need a (free) registration and are never fetched.
"""

import fcntl
import hashlib
import http.client
import json
import os
import re
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tqdm import tqdm

import replication
from replication.caffe.convert import KNOWN_MODELS
from replication.errors import ReplicationError
from replication.files import atomic_output
from replication.paths import WEIGHTS_DIR

CHUNK = 1 << 16
DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"replication/{replication.__version__} (Python urllib)"

IMAGES_NOTE = ("The ILSVRC2012 validation images (ILSVRC2012_img_val.tar, 6.3 GB, 50,000 JPEGs) need a free "
               "registration: download them from https://image-net.org/download-images; this command does not "
               "fetch them.")


@dataclass(frozen=True)
class Item:
    """One file that can be fetched.

    Attributes:
        name: the name on the command line (`alexnet`).
        filename: the file's name in the target folder, and under a `--mirror`.
        url: where it is published.
        algorithm: the hash the publisher gives (`sha1`, `md5`), or None when there is none.
        digest: that hash in hex, or None.
        size: its approximate size, for people.
        about: what it is.
        check: called with the downloaded file (not yet renamed) and the target's path;
            raises ReplicationError when the content is not what it should be.
        extract: members of the (tar.gz) file to extract beside it, by exact name.
    """

    name: str
    filename: str
    url: str
    algorithm: str | None = None
    digest: str | None = None
    size: str = ""
    about: str = ""
    check: Callable[[Path, Path], None] | None = None
    extract: tuple[str, ...] = ()


class Download(NamedTuple):
    """What `download` did: the target, its sha256, the checked hash (algorithm and hex
    digest, or None twice when none is published), whether it was fetched now, and the
    members extracted beside it."""

    path: Path
    sha256: str
    algorithm: str | None
    digest: str | None
    fetched: bool
    extracted: tuple[Path, ...] = ()
    pinned: bool = False


def check_mean_image(path: Path, target: Path) -> None:
    """Refuse a mean image that is not a finite 3x256x256 numeric .npy array.

    Args:
        path: the file to read.
        target: the name to give in the error.
    """
    import numpy as np

    try:
        mean = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ReplicationError(target, f"is not a readable .npy array ({err})") from None
    if not isinstance(mean, np.ndarray) or mean.shape != (3, 256, 256):
        shape = "x".join(map(str, getattr(mean, "shape", ()))) or "no array"
        raise ReplicationError(target, f"is not a 3x256x256 mean image (shape {shape})")
    if mean.dtype.kind not in "fiu" or not np.isfinite(mean).all():
        raise ReplicationError(target, f"is not a finite numeric mean image (dtype {mean.dtype})")


def _zoo_sha1(filename: str) -> str:
    return KNOWN_MODELS[filename][0]


ITEMS = {
    item.name: item
    for item in (
        Item("alexnet", "bvlc_alexnet.caffemodel", "http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
             "sha1", _zoo_sha1("bvlc_alexnet.caffemodel"), "233 MB", "the Model Zoo's BVLC AlexNet weights"),
        Item("caffenet", "bvlc_reference_caffenet.caffemodel",
             "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel",
             "sha1", _zoo_sha1("bvlc_reference_caffenet.caffemodel"), "233 MB",
             "the Model Zoo's BVLC CaffeNet weights"),
        Item("mean", "ilsvrc_2012_mean.npy",
             "https://github.com/BVLC/caffe/raw/master/python/caffe/imagenet/ilsvrc_2012_mean.npy",
             size="1.5 MB", about="Caffe's ImageNet mean image, 3x256x256 BGR", check=check_mean_image),
        Item("aux", "caffe_ilsvrc12.tar.gz", "http://dl.caffe.berkeleyvision.org/caffe_ilsvrc12.tar.gz",
             size="17 MB", about="Caffe's ILSVRC12 auxiliary files (get_ilsvrc_aux.sh); val.txt and "
             "synset_words.txt are extracted", extract=("val.txt", "synset_words.txt")),
        Item("convnets_keras", "alexnet_weights.h5", "http://files.heuritech.com/weights/alexnet_weights.h5",
             size="233 MB", about="the authors' AlexNet: heuritech/convnets-keras' Keras 1 weights (no published "
             "hash; --model convnets_keras)"),
        Item("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
             "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
             "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
             "md5", "64373286793e3c8b2b4e3219cbf3544b", "528 MB", "Keras's VGG-16 ImageNet weights"),
    )
}
DEFAULT_ITEMS = ("alexnet", "mean", "aux")


def partial_path(target: Path) -> Path:
    """The hidden file an unfinished download of `target` is kept in.

    Args:
        target: the file being downloaded.

    Returns:
        `.NAME.download` in the target's folder.
    """
    return target.with_name(f".{target.name}.download")


def mirror_url(mirror: str, filename: str) -> str:
    """The URL of `filename` on a mirror.

    Args:
        mirror: the mirror's base URL (http or https).
        filename: the file's name.

    Returns:
        MIRROR/FILENAME.
    """
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(filename)}"


def _digests(path: Path, algorithm: str | None) -> tuple[str, str | None]:
    """The sha256 of a file and, in the same pass, its `algorithm` digest."""
    sha256 = hashlib.sha256()
    other = hashlib.new(algorithm) if algorithm and algorithm != "sha256" else None
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            sha256.update(block)
            if other is not None:
                other.update(block)
    if algorithm is None:
        return sha256.hexdigest(), None
    return sha256.hexdigest(), (other or sha256).hexdigest()


def pin_path(target: Path) -> Path:
    """Where the sha256 of a file with no published hash is recorded at first download.

    Args:
        target: the downloaded file.

    Returns:
        `NAME.sha256` beside it (one line: the hex digest and the file's name).
    """
    return target.with_name(f"{target.name}.sha256")


def pinned_sha256(target: Path) -> str | None:
    """The sha256 recorded for `target` at its first download, or None when none was."""
    try:
        text = pin_path(target).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0].lower() if text and re.fullmatch(r"[0-9a-fA-F]{64}", text[0]) else None


def _first_line(err: Exception) -> str:
    """tarfile lists every compression it tried, one per line: the first says enough."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return lines[0].rstrip(":")


def check_archive(path: Path, target: Path, names) -> None:
    """Refuse an archive that tarfile cannot read to the end or that lacks a member.

    Args:
        path: the archive to read (every named member is read to its end).
        target: the name to give in the error.
        names: the members that must be there, as regular files.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {}
            for member in tar.getmembers():
                members.setdefault(member.name.removeprefix("./"), member)
            for name in names:
                member = members.get(name)
                if member is None or not member.isfile():
                    raise ReplicationError(target, f"is not the expected archive: no regular file {name!r} in it")
                source = tar.extractfile(member)
                while source.read(1 << 20):
                    pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise ReplicationError(target, f"is not a readable tar archive ({_first_line(err)})") from None


def _problem(path: Path, target: Path, item: Item, algorithm, digest) -> tuple[str, str | None, str | None]:
    """(sha256, actual digest, what is wrong or None) of a complete file: the published
    hash, else the sha256 recorded at first download; the content check; the archive."""
    sha256, actual = _digests(path, algorithm)
    if digest is not None and actual != digest.lower():
        return sha256, actual, f"wrong {algorithm}: expected {digest.lower()}, got {actual}"
    pinned = pinned_sha256(target) if digest is None else None
    if pinned is not None and sha256 != pinned:
        return sha256, actual, (f"sha256 {sha256} differs from the {pinned} recorded at its first download "
                                f"(in {pin_path(target)}; remove that file to accept a new version)")
    try:
        if item.check is not None:
            item.check(path, target)
        if item.extract:
            check_archive(path, target, item.extract)
    except ReplicationError as err:
        return sha256, actual, err.message
    return sha256, actual, None


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total size or None) of a Content-Range header `bytes A-B/T`."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        return None
    return int(match[1]), None if match[3] == "*" else int(match[3])


def _unsatisfiable_total(err: urllib.error.HTTPError) -> int | None:
    """The total size a 416 answer gives (`Content-Range: bytes */T`), or None."""
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", err.headers.get("Content-Range", "") if err.headers else "")
    return int(match[1]) if match else None


def validator_path(target: Path) -> Path:
    """Where the server's validator (ETag or Last-Modified) of a partial download is kept."""
    return target.with_name(f".{target.name}.download.validator")


def _validator(response) -> str | None:
    """What proves later that the server's file is unchanged: a strong ETag, else the
    Last-Modified date (weak ETags may not be used with If-Range)."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified") or None


def _saved_validator(target: Path, url: str) -> str | None:
    try:
        record = json.loads(validator_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("url") != url or not isinstance(record.get("validator"), str):
        return None
    return record["validator"]


def _open(url: str, offset: int, target: Path, timeout: float, validator: str | None = None):
    """The server's response for `url`, from byte `offset` if the file is unchanged
    (`If-Range: validator`); a 416 answer is returned as the HTTPError itself (the caller
    decides whether the partial is complete)."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return err
        err.close()
        raise ReplicationError(target, f"{url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise ReplicationError(target, f"cannot reach {url}: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:
        raise ReplicationError(target, f"cannot reach {url}: {err}") from None


def _interrupted(target: Path, url: str, received: int, total: int | None, why) -> ReplicationError:
    of = f"{received} of {total}" if total is not None else f"{received}"
    reason = f" ({why})" if why else ""
    return ReplicationError(target, f"download from {url} interrupted after {of} bytes{reason}; "
                                    "run the same command again to resume")


def _fetch(url: str, target: Path, partial: Path, progress: bool, timeout: float) -> None:
    """Complete `partial` from `url`. A partial file is resumed (a Range request) only
    with the validator saved when it was started, sent as If-Range: a server whose file
    changed since answers with the whole new file, which replaces the partial; a partial
    without a validator (the server gave none) is started over, never spliced."""
    validators = validator_path(target)
    for _ in range(2):
        offset = partial.stat().st_size if partial.exists() else 0
        validator = _saved_validator(target, url) if offset else None
        if offset and validator is None:
            partial.unlink()  # nothing proves the server's file is the one begun: start again
            offset = 0
        response = _open(url, offset, target, timeout, validator)
        if isinstance(response, urllib.error.HTTPError):  # 416: nothing left past `offset`
            total = _unsatisfiable_total(response)
            response.close()
            if total == offset:
                return  # the partial is complete; its hash decides
            partial.unlink()  # longer than the file now served: start again
            continue
        with response:
            if offset and response.status == 206:
                span = _content_range(response.headers.get("Content-Range"))
                if span is None or span[0] != offset:
                    partial.unlink()  # an answer for another range: start again
                    continue
                total = span[1]
                mode = "ab"
            else:  # 200: a fresh start, or the server's file changed, or it ignores ranges
                offset, total, mode = 0, None, "wb"
                fresh = _validator(response)
                try:
                    if fresh is None:
                        validators.unlink(missing_ok=True)
                    else:
                        validators.write_text(json.dumps({"url": url, "validator": fresh}) + "\n", encoding="utf-8")
                except OSError as err:
                    raise ReplicationError(target.parent, f"cannot write: {err.strerror}") from None
            length = response.headers.get("Content-Length")
            if total is None and length is not None and length.isdigit():
                total = offset + int(length)
            _copy(response, url, target, partial, mode, offset, total, progress)
        return
    raise ReplicationError(target, f"{url}: the server answers the range request for a resumed download with "
                                   "the wrong range twice; remove " + str(partial) + " to start from zero")


def _copy(response, url: str, target: Path, partial: Path, mode: str, offset: int, total, progress: bool) -> None:
    received = offset
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
               file=sys.stderr, disable=not progress, leave=False)
    try:
        with open(partial, mode) as out:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as err:
                    raise _interrupted(target, url, received, total, str(err) or type(err).__name__) from None
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as err:
                    raise ReplicationError(partial, f"cannot write: {err.strerror}") from None
                received += len(block)
                bar.update(len(block))
    except OSError as err:  # opening or closing (flushing) the partial
        raise ReplicationError(partial, f"cannot write: {err.strerror}") from None
    finally:
        bar.close()
    if total is not None and received < total:
        raise _interrupted(target, url, received, total, "the connection was closed")


def extract_members(archive, folder, names) -> tuple[Path, ...]:
    """Extract regular-file members of a tar archive by exact name into `folder`.

    Only the named members are read, each written to `folder/NAME` (NAME a plain file
    name), so no other member, and no path in the archive, decides where anything is
    written. A member may be stored as NAME or ./NAME.

    Args:
        archive: the tar file (any compression tarfile reads).
        folder: where to write the members.
        names: the members' plain file names.

    Returns:
        The paths written, in the order of `names`.
    """
    archive, folder = Path(archive), Path(folder)
    for name in names:
        if Path(name).name != name or name in ("", ".", ".."):
            raise ReplicationError(archive, f"refusing to extract {name!r}: not a plain file name")
    written = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {}
            for member in tar.getmembers():
                members.setdefault(member.name.removeprefix("./"), member)
            for name in names:
                member = members.get(name)
                if member is None:
                    raise ReplicationError(archive, f"has no member {name!r}")
                if not member.isfile():
                    raise ReplicationError(archive, f"member {name!r} is not a regular file")
                source = tar.extractfile(member)
                with atomic_output(folder / name) as tmp, open(tmp, "wb") as out:
                    while block := source.read(1 << 20):
                        out.write(block)
                written.append(folder / name)
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ReplicationError(archive, f"is not a readable tar archive ({_first_line(err)})") from None
    return tuple(written)


def set_aside(path: Path, why: str, log=None) -> Path:
    """Rename a file that failed its checks to `NAME.failed` (replacing an older one), so
    that no later run trusts it; returns the new name."""
    aside = path.with_name(f"{path.name}.failed")
    try:
        os.replace(path, aside)
    except OSError as err:
        raise ReplicationError(path, f"{why}, and it cannot be moved aside: {err.strerror}") from None
    if log is not None:
        log(f"{path}: {why}; moved aside to {aside.name}")
    return aside


@contextmanager
def _folder_lock(target: Path):
    """Hold `.NAME.download.lock` for the whole download of `target`: a second process
    fetching the same file into the same folder is refused instead of interleaving."""
    lock = target.with_name(f".{target.name}.download.lock")
    try:
        handle = open(lock, "a+b")  # noqa: SIM115 -- held for the whole download
    except OSError as err:
        raise ReplicationError(target.parent, f"cannot write: {err.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReplicationError(target, "another download of this file into this folder is running right now; "
                                           "wait for it to finish") from None
        yield
    finally:
        handle.close()


def download(item, to=WEIGHTS_DIR, url: str | None = None, digest: str | None = None, algorithm: str | None = None,
             progress: bool = True, timeout: float = DEFAULT_TIMEOUT, log=None) -> Download:
    """Fetch one item into the folder `to`: resume a partial download where the server's
    file is unchanged, check everything before the final rename, extract the members.

    Args:
        item: an Item or the name of one in ITEMS.
        to: the target folder (created if missing; default caffe_weights/).
        url: fetch from here instead of the item's URL (a mirror, a test server).
        digest: the expected hex digest instead of the item's.
        algorithm: its hash algorithm (default the item's, or sha256 when the item has none).
        progress: a progress bar on stderr.
        timeout: seconds any one network operation may wait.
        log: called with a line for people (a file present but wrong, a file moved
            aside); None for none.

    Returns:
        Download(path, sha256, algorithm, digest, fetched, extracted, pinned): `pinned`
        is True when this run recorded the sha256 of a file with no published hash.

    Raises:
        ReplicationError: unreachable server, HTTP error, interrupted transfer (the partial
            is kept for the next run), a wrong hash or content or an unreadable archive
            (the download is removed; nothing takes the final name), a file that cannot
            be written, another process downloading the same file.
    """
    if isinstance(item, str):
        if item not in ITEMS:
            raise ReplicationError(None, f"unknown item {item!r}; choose from {', '.join(ITEMS)}")
        item = ITEMS[item]
    if digest is not None:
        algorithm = algorithm or item.algorithm or "sha256"
    else:
        algorithm, digest = algorithm or item.algorithm, item.digest
    if algorithm is not None and algorithm not in hashlib.algorithms_available:
        raise ReplicationError(None, f"unknown hash algorithm {algorithm!r}")
    url = url or item.url
    folder = Path(to)
    target = folder / item.filename
    partial = partial_path(target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReplicationError(folder, f"cannot create the folder: {err.strerror}") from None
    if target.is_dir():
        raise ReplicationError(target, "is a folder; the download needs this name for its file")

    with _folder_lock(target):
        if target.is_file():
            sha256, actual, problem = _problem(target, target, item, algorithm, digest)
            if problem is None:
                missing = [name for name in item.extract if not (folder / name).is_file()]
                extracted = extract_members(target, folder, missing) if missing else ()
                return Download(target, sha256, algorithm, actual, False, extracted)
            set_aside(target, f"present but {problem}; downloading it again", log)

        _fetch(url, target, partial, progress, timeout)
        sha256, actual, problem = _problem(partial, target, item, algorithm, digest)
        if problem is not None:
            partial.unlink(missing_ok=True)
            validator_path(target).unlink(missing_ok=True)
            raise ReplicationError(target, f"{problem} (downloaded from {url}; the download was removed)")
        pinned = digest is None and pinned_sha256(target) is None
        try:
            if pinned:
                with atomic_output(pin_path(target)) as tmp:
                    tmp.write_text(f"{sha256}  {item.filename}\n", encoding="utf-8")
            os.replace(partial, target)
        except OSError as err:
            raise ReplicationError(target, f"cannot write: {err.strerror}") from None
        validator_path(target).unlink(missing_ok=True)
        extracted = extract_members(target, folder, item.extract) if item.extract else ()
        return Download(target, sha256, algorithm, actual, True, extracted, pinned)
