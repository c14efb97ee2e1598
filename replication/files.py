"""File helpers: atomic outputs and content hashes."""

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_output(path, suffix=""):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    A crash, an error or Ctrl-C leaves neither a partial `path` nor the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix + ".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_digest(path, algorithm="sha256", chunk=1 << 22) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
