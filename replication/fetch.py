"""Fetching the public files the replication needs (`python -m replication.download`).

    import replication as rp
    rp.download("alexnet", to="caffe_weights")  # -> caffe_weights/bvlc_alexnet.caffemodel

`ITEMS` lists what can be fetched: the Model Zoo's AlexNet (and CaffeNet) weights, Caffe's
ImageNet mean image, Caffe's ILSVRC12 auxiliary archive, the authors' Keras 1 AlexNet and
Keras's VGG-16 weights. The ILSVRC2012 validation images need a registration and are never
fetched (`IMAGES_NOTE` says where to get them).

How a file reaches its final name:
- It is written to a hidden `.NAME.download` beside its target. The server's validator
  (its strong ETag, else its Last-Modified date) is saved beside it in `.NAME.download.json`
  before the first byte is written. An interrupted download is resumed with a Range request
  carrying that validator in If-Range, so a server whose file changed meanwhile answers with
  the whole new file and the download starts over; a partial with no validator is never
  resumed but started over, since nothing could tell two versions of the file apart.
- Before the rename it must pass every check: the published hash (sha1 or md5), or for a
  file without one the sha256 recorded at its first download in `NAME.sha256` (the format
  of `sha256sum`, so a user can pin a value by writing that file); its format (the mean
  image's shape); and for an archive, that the members to extract are there and readable.
  A download that fails is removed; a file present under its final name that fails is moved
  aside to `NAME.rejected` and fetched again. Either way the message names the file.
- One process at a time fetches into a folder: a second one is refused with one line.
"""

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
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import replication
from replication.caffe.convert import KNOWN_MODELS
from replication.errors import ReplicationError
from replication.files import atomic_output, locked
from replication.paths import WEIGHTS_DIR

CHUNK = 1 << 16
DEFAULT_TIMEOUT = 30.0
USER_AGENT = f"replication/{replication.__version__} (Python urllib)"
LOCK_NAME = ".download.lock"

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
    """What `fetch_item` did.

    Attributes:
        path: the file under its final name.
        sha256: its sha256.
        algorithm, digest: the hash it was checked against and its value (the published
            one, or the sha256 recorded beside the file); None twice when it had none yet.
        fetched: whether it was downloaded now (False: already present and checked).
        extracted: the members extracted beside it now.
        recorded: whether its sha256 was recorded now (a file without a published hash).
    """

    path: Path
    sha256: str
    algorithm: str | None
    digest: str | None
    fetched: bool
    extracted: tuple[Path, ...] = ()
    recorded: bool = False


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
        raise _error(target, "is not a readable .npy array", err) from None
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


def _error(path, message: str, cause=None) -> ReplicationError:
    """A ReplicationError whose message is one line; the full text of a multi-line message
    or of the cause is kept in its `detail` (what `--verbose` prints)."""
    lines = [line.strip() for line in str(cause or "").splitlines() if line.strip()]
    if lines:
        message = f"{message} ({lines[0]}{' …' if len(lines) > 1 else ''})"
    head, *rest = [line for line in message.splitlines() if line.strip()] or [""]
    err = ReplicationError(path, head.strip() + (" …" if rest else ""))
    err.detail = "\n".join([message, *([f"{type(cause).__name__}: {cause}"] if cause is not None else [])])
    return err


def partial_path(target: Path) -> Path:
    """The hidden file an unfinished download of `target` is kept in: `.NAME.download`."""
    return target.with_name(f".{target.name}.download")


def validator_path(target: Path) -> Path:
    """Where the server's validator of a partial download is saved: `.NAME.download.json`."""
    return target.with_name(f".{target.name}.download.json")


def record_path(target: Path) -> Path:
    """Where the sha256 of a file without a published hash is recorded: `NAME.sha256`."""
    return target.with_name(f"{target.name}.sha256")


def rejected_path(target: Path) -> Path:
    """Where a file present under its final name that fails its checks is moved: `NAME.rejected`."""
    return target.with_name(f"{target.name}.rejected")


def mirror_url(mirror: str, filename: str) -> str:
    """The URL of `filename` on a mirror.

    Args:
        mirror: the mirror's base URL (http or https).
        filename: the file's name.

    Returns:
        MIRROR/FILENAME.
    """
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(filename)}"


# --- hashes ---------------------------------------------------------------------------------


def read_record(target: Path) -> str | None:
    """The sha256 recorded (or pinned by the user) for `target`, or None when there is none.

    Raises:
        ReplicationError: the record is not a sha256 in hex (naming the record file).
    """
    record = record_path(target)
    try:
        text = record.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    value = (text.split() or [""])[0].lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ReplicationError(record, f"is not a sha256 record (64 hex digits, as sha256sum writes); "
                                       f"write the pinned value there, or delete it to record {target.name}'s anew")
    return value


def _write_record(target: Path, sha256: str) -> None:
    with atomic_output(record_path(target)) as tmp:
        tmp.write_text(f"{sha256}  {target.name}\n", encoding="ascii")


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


class _Expected(NamedTuple):
    algorithm: str | None
    digest: str | None
    recorded: bool  # the digest is the one recorded beside the file, not a published one


class _Verdict(NamedTuple):
    sha256: str
    actual: str | None  # the digest in the expected algorithm
    problem: str | None  # what is wrong, one line; None when the file passed
    detail: str | None = None  # more about it, for --verbose


def _verify(path: Path, target: Path, item: Item, expected: _Expected) -> _Verdict:
    """Check a complete file: its hash, its format and, for an archive, the members to extract."""
    sha256, actual = _digests(path, expected.algorithm)
    if expected.digest is not None and actual != expected.digest:
        if expected.recorded:
            return _Verdict(sha256, actual, f"wrong sha256: expected {expected.digest} (recorded in "
                                            f"{record_path(target)}), got {actual}; the published file changed or "
                                            "this copy is damaged (if the new file is right, delete the record)")
        return _Verdict(sha256, actual, f"wrong {expected.algorithm}: expected {expected.digest}, got {actual}")
    try:
        if item.check is not None:
            item.check(path, target)
        if item.extract:
            _members(path, target, item.extract)
    except ReplicationError as err:
        return _Verdict(sha256, actual, err.message, getattr(err, "detail", None))
    return _Verdict(sha256, actual, None)


# --- archives -------------------------------------------------------------------------------


def _members(archive: Path, name: Path, names, folder: Path | None = None) -> tuple[Path, ...]:
    """Check (and read, or write into `folder`) the named regular-file members of a tar archive."""
    for member_name in names:
        if Path(member_name).name != member_name or member_name in ("", ".", ".."):
            raise ReplicationError(name, f"refusing to extract {member_name!r}: not a plain file name")
    written = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = {}
            for member in tar.getmembers():
                members.setdefault(member.name.removeprefix("./"), member)
            for member_name in names:
                member = members.get(member_name)
                if member is None:
                    raise ReplicationError(name, f"has no member {member_name!r}")
                if not member.isfile():
                    raise ReplicationError(name, f"member {member_name!r} is not a regular file")
                source = tar.extractfile(member)
                if folder is None:
                    while source.read(1 << 20):
                        pass
                    continue
                with atomic_output(folder / member_name) as tmp, open(tmp, "wb") as out:
                    while block := source.read(1 << 20):
                        out.write(block)
                written.append(folder / member_name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        if isinstance(err, OSError) and err.filename is not None:
            raise
        raise _error(name, "is not a readable tar archive", err) from None
    return tuple(written)


def extract_members(archive, folder, names) -> tuple[Path, ...]:
    """Extract regular-file members of a tar archive by exact name into `folder`.

    Only the named members are read, each written to `folder/NAME` (NAME a plain file
    name) through a temporary, so no other member, and no path in the archive, decides
    where anything is written. A member may be stored as NAME or ./NAME.

    Args:
        archive: the tar file (any compression tarfile reads).
        folder: where to write the members.
        names: the members' plain file names.

    Returns:
        The paths written, in the order of `names`.
    """
    return _members(Path(archive), Path(archive), names, folder=Path(folder))


# --- the transfer ---------------------------------------------------------------------------


def _validators(headers) -> dict:
    """The validators of a response that If-Range accepts: a strong ETag, a Last-Modified date."""
    etag = headers.get("ETag")
    validators = {}
    if etag and not etag.startswith("W/"):
        validators["etag"] = etag
    if headers.get("Last-Modified"):
        validators["last_modified"] = headers["Last-Modified"]
    return validators


def _saved_validators(partial: Path, target: Path, url: str, log) -> dict:
    """The validators saved with a partial download of `url`; {} when there are none, or
    when the saved file is damaged or belongs to another URL (said in one line)."""
    saved = validator_path(target)
    try:
        state = json.loads(saved.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log(f"{saved}: unreadable ({str(err).splitlines()[0]}); the partial download is started over")
        return {}
    if not isinstance(state, dict) or state.get("url") != url:
        return {}
    return {key: state[key] for key in ("etag", "last_modified") if isinstance(state.get(key), str) and state[key]}


def _start_over(partial: Path, target: Path, url: str, validators: dict) -> None:
    """Empty the partial, then save the validators of the version about to be written (in
    this order, so that no saved validator ever describes bytes of another version)."""
    saved = validator_path(target)
    saved.unlink(missing_ok=True)
    try:
        with open(partial, "wb"):
            pass
    except OSError as err:
        raise ReplicationError(partial, f"cannot write: {err.strerror}") from None
    if validators:
        with atomic_output(saved) as tmp:
            tmp.write_text(json.dumps({"url": url, **validators}), encoding="utf-8")


def _discard(partial: Path, target: Path) -> None:
    partial.unlink(missing_ok=True)
    validator_path(target).unlink(missing_ok=True)


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


def _open(url: str, offset: int, validators: dict, target: Path, timeout: float):
    """The server's response for `url` from byte `offset` if the file still has the saved
    validator; a 416 answer is returned as the HTTPError itself (the caller decides whether
    the partial is complete)."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        headers["If-Range"] = validators.get("etag") or validators["last_modified"]
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return err
        err.close()
        raise ReplicationError(target, f"{url}: HTTP {err.code} {err.reason}") from None
    except urllib.error.URLError as err:
        raise _error(target, f"cannot reach {url}: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:
        raise _error(target, f"cannot reach {url}", err) from None


def _same_version(saved: dict, headers) -> bool:
    """Whether a response's validators agree with the saved ones (those it sends at all):
    the last guard against a server that honours Range but ignores If-Range."""
    fresh = _validators(headers)
    return all(fresh[key] == saved[key] for key in saved.keys() & fresh.keys())


def _interrupted(target: Path, url: str, received: int, total: int | None, why) -> ReplicationError:
    of = f"{received} of {total}" if total is not None else f"{received}"
    reason = f" ({why.splitlines()[0]})" if why else ""
    return ReplicationError(target, f"download from {url} interrupted after {of} bytes{reason}; "
                                    "run the same command again to resume")


def _fetch(url: str, target: Path, progress: bool, timeout: float, log) -> None:
    """Complete the partial download of `target` from `url`: resume it when a saved
    validator lets the server confirm that its file is the same, start over otherwise."""
    partial = partial_path(target)
    offset = partial.stat().st_size if partial.exists() else 0
    saved = _saved_validators(partial, target, url, log) if offset else {}
    if offset and not saved:
        log(f"{partial}: {offset} bytes from an earlier attempt, but no validator (ETag or Last-Modified) "
            "to tell whether the server's file is still the same; starting over")
        _discard(partial, target)
        offset = 0
    for _ in range(3):
        response = _open(url, offset, saved, target, timeout)
        if isinstance(response, urllib.error.HTTPError):  # 416: nothing left past `offset`
            total, same = _unsatisfiable_total(response), _same_version(saved, response.headers)
            response.close()
            if total == offset and same:
                return  # the partial is complete; its hash decides
            log(f"{partial}: does not match the file the server has now; starting over")
            _discard(partial, target)
            offset, saved = 0, {}
            continue
        with response:
            if offset and response.status == 206:
                span = _content_range(response.headers.get("Content-Range"))
                if span is None or span[0] != offset or not _same_version(saved, response.headers):
                    log(f"{partial}: the server answered for another range or version of the file; starting over")
                    _discard(partial, target)
                    offset, saved = 0, {}
                    continue
                total = span[1]
            else:  # 200: the whole file (a new version, a server that ignores ranges, or no range asked)
                if offset:
                    log(f"{partial}: the server sent the whole file (it changed since the earlier attempt, or "
                        "it does not resume downloads); starting over")
                offset, total = 0, None
                _start_over(partial, target, url, _validators(response.headers))
            length = response.headers.get("Content-Length")
            if total is None and length is not None and length.isdigit():
                total = offset + int(length)
            _copy(response, url, target, partial, offset, total, progress)
        return
    raise ReplicationError(target, f"{url}: the server answers a resumed download with the wrong range or "
                                   f"version again and again; remove {partial} to start from zero")


def _copy(response, url: str, target: Path, partial: Path, offset: int, total, progress: bool) -> None:
    from tqdm import tqdm

    received = offset
    bar = tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
               file=sys.stderr, disable=not progress, leave=False)
    try:
        with open(partial, "ab") as out:
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


# --- one item -------------------------------------------------------------------------------


def _item(item) -> Item:
    if isinstance(item, Item):
        return item
    if item not in ITEMS:
        raise ReplicationError(None, f"unknown item {item!r}; choose from {', '.join(ITEMS)}")
    return ITEMS[item]


def _expected(item: Item, target: Path, digest, algorithm) -> _Expected:
    if digest is not None:
        expected = _Expected(algorithm or item.algorithm or "sha256", digest.lower(), False)
    elif item.digest is not None:
        expected = _Expected(algorithm or item.algorithm, item.digest.lower(), False)
    elif (recorded := read_record(target)) is not None:
        expected = _Expected("sha256", recorded, True)
    else:
        expected = _Expected(algorithm, None, False)
    if expected.algorithm is not None and expected.algorithm not in hashlib.algorithms_available:
        raise ReplicationError(None, f"unknown hash algorithm {expected.algorithm!r}")
    return expected


def fetch_item(item, folder=WEIGHTS_DIR, url: str | None = None, digest: str | None = None,
               algorithm: str | None = None, progress: bool = True, timeout: float = DEFAULT_TIMEOUT,
               log=None) -> Download:
    """Fetch one item into `folder`: resume a partial download when the server confirms its
    file is unchanged, check everything before the final rename, extract its members.

    Args:
        item: an Item or the name of one in ITEMS.
        folder: the target folder (created if missing).
        url: fetch from here instead of the item's URL (a mirror, a test server).
        digest: the expected hex digest instead of the item's (or the recorded one).
        algorithm: its hash algorithm (default the item's, or sha256 when the item has none).
        progress: a progress bar on stderr.
        timeout: seconds any one network operation may wait.
        log: called with a line for people (a file moved aside, a download started over);
            None for none.

    Returns:
        Download(path, sha256, algorithm, digest, fetched, extracted, recorded).

    Raises:
        ReplicationError: another process fetching into the folder, an unreachable server,
            an HTTP error, an interrupted transfer (the partial is kept for the next run),
            a wrong hash, format or archive (the download is removed), a file that cannot
            be written. The message is one line; `detail` holds more where there is more.
    """
    item, folder, log = _item(item), Path(folder), log or (lambda line: None)
    target = folder / item.filename
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReplicationError(folder, f"cannot create the folder: {err.strerror}") from None
    busy = "another download is fetching into this folder right now; wait for it to end, or pass another --to"
    with locked(folder / LOCK_NAME, folder, busy):
        return _fetch_locked(item, folder, target, url or item.url, digest, algorithm, progress, timeout, log)


def _fetch_locked(item, folder, target, url, digest, algorithm, progress, timeout, log) -> Download:
    if target.is_dir():
        raise ReplicationError(target, "is a folder; the download needs this name for its file")
    expected = _expected(item, target, digest, algorithm)
    if target.is_file():
        sha256, actual, problem, _ = _verify(target, target, item, expected)
        if problem is None:
            recorded = expected.digest is None
            if recorded:
                _write_record(target, sha256)
            missing = [name for name in item.extract if not (folder / name).is_file()]
            extracted = extract_members(target, folder, missing) if missing else ()
            return Download(target, sha256, expected.algorithm if expected.digest else None, actual if expected.digest
                            else None, False, extracted, recorded)
        aside = rejected_path(target)
        os.replace(target, aside)
        log(f"{target}: present but {problem}; moved aside to {aside}, downloading it again")

    _fetch(url, target, progress, timeout, log)
    partial = partial_path(target)
    sha256, actual, problem, detail = _verify(partial, target, item, expected)
    if problem is not None:
        _discard(partial, target)
        err = ReplicationError(target, f"{problem} (downloaded from {url}; the download was removed)")
        err.detail = detail
        raise err
    extracted = _members(partial, target, item.extract, folder=folder) if item.extract else ()
    recorded = expected.digest is None
    if recorded:
        _write_record(target, sha256)
    try:
        os.replace(partial, target)
    except OSError as err:
        raise ReplicationError(target, f"cannot write: {err.strerror}") from None
    validator_path(target).unlink(missing_ok=True)
    return Download(target, sha256, expected.algorithm if expected.digest else None, actual if expected.digest
                    else None, True, extracted, recorded)


def download(name, to=WEIGHTS_DIR, **options) -> Path:
    """Fetch one of ITEMS (or an Item) into the folder `to`, resuming and checking it.

    Args:
        name: an item's name (`alexnet`, `mean`, `aux`, `caffenet`, `convnets_keras`,
            `vgg16`) or an Item.
        to: the target folder (default caffe_weights/).
        **options: url, digest, algorithm, progress, timeout, log, as `fetch_item` takes them.

    Returns:
        The path of the file under its final name, checked.
    """
    return fetch_item(name, to, **options).path
