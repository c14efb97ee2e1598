"""Bad images found before anything is decoded: empty, not JPEG/PNG, or truncated files.

A file that passes these structural checks and still fails to decode is caught in the
pipeline by its position and named the same way (`pipeline.batches`). With skip_bad,
bad images are left out and reported instead of stopping the run.
"""

import sys
from pathlib import Path

from replication.data.layouts import Dataset
from replication.errors import ReplicationError

_JPEG_TAIL = 4096  # where the end-of-image marker is looked for first


def _image_problem(path: Path) -> str | None:
    """Why `path` cannot be a complete JPEG or PNG, from its structure alone (cheap: the
    header segments and the last few KB), or None."""
    try:
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115 -- closed by the `with f:` below, once open errors are told apart
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
