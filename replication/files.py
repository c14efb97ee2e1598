"""File helpers: atomic outputs, exclusive locks, content hashes and reading HDF5 weight files."""

import contextlib
import fcntl
import glob
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from replication.errors import ReplicationError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Remove the temporaries of `path` left by writers that were killed (SIGKILL leaves
    no chance to clean up): those named by `atomic_output` whose process is gone."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_output(path, suffix=""):
    """Yield a temporary path beside `path`; rename it to `path` only if the block succeeds.

    An error or Ctrl-C leaves neither a partial `path` nor the temporary file. The
    temporary's name carries the writer's process id, so that one left by a killed
    writer is found and removed by the next write of the same file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix or path.suffix + ".part",
                                   dir=path.parent)
    except OSError as err:
        raise ReplicationError(path, f"cannot write: {err.strerror}") from None
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
    except OSError as err:
        if err.filename is not None and Path(err.filename) != tmp:
            raise  # a fault of another file, named by the error itself
        raise ReplicationError(path, f"cannot write: {err.strerror}") from None  # named as the user knows it
    finally:
        tmp.unlink(missing_ok=True)


def try_lock(file, path, busy: str) -> None:
    """Take an exclusive lock on the open `file`, or refuse at once when another process holds it.

    Args:
        file: an open file object.
        path: what to name in the error (the file the user knows).
        busy: the message when the lock is held elsewhere.

    Raises:
        ReplicationError: `path: busy`, with the file left open for the caller to close.
    """
    try:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ReplicationError(path, busy) from None


@contextlib.contextmanager
def locked(lock_file, path, busy: str):
    """Hold an exclusive lock on `lock_file` (created if missing) for the block, or refuse.

    The lock file is removed when the block ends. Since a second process may have opened
    it just before, a lock is only taken as held once the name still leads to the locked file.

    Args:
        lock_file: the lock file's path.
        path: what to name when another process holds the lock (a folder, a table).
        busy: the message then.

    Raises:
        ReplicationError: `path: busy`.
    """
    lock_file = Path(lock_file)
    while True:
        file = open(lock_file, "a+b")  # noqa: SIM115 -- held open for the block
        try:
            try_lock(file, path, busy)
            if os.path.samestat(os.fstat(file.fileno()), os.stat(lock_file)):
                break
        except FileNotFoundError:
            pass  # removed by the holder between our open and our lock: try again
        except BaseException:
            file.close()
            raise
        file.close()
    try:
        yield
    finally:
        lock_file.unlink(missing_ok=True)
        file.close()


def _inside(name, folder: Path) -> bool:
    try:
        return Path(name).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError, TypeError):
        return False


@contextlib.contextmanager
def temporary_folder(path):
    """Yield a private folder beside `path` for the intermediate files of writing `path`;
    it is removed afterwards, whatever happens.

    A failure that names something inside it (a full disk while an intermediate file is
    written) is reported as the failure to write `path`: the user never gave, and can no
    longer find, the temporary.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise ReplicationError(path, f"cannot write: {err.strerror}") from None
    try:
        yield folder
    except ReplicationError as err:
        if err.path is None or not _inside(err.path, folder):
            raise
        message = err.message.replace(str(folder), str(path.parent))
        raise ReplicationError(path, message if message.startswith("cannot write") else f"cannot write: {message}") from None
    except OSError as err:
        if err.filename is not None and not _inside(err.filename, folder):
            raise
        raise ReplicationError(path, f"cannot write: {err.strerror or err}") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def file_digest(path, algorithm="sha256", chunk=1 << 22) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def open_weight_file(path, expected: str):
    """An HDF5 weight file opened for reading.

    Args:
        path: the file.
        expected: what the file should be, for the message when it is not HDF5.

    Yields:
        The open h5py.File. A missing file, a file that is not HDF5, and h5py's errors on a
        truncated or damaged one (raised while it is read inside the `with`) are a
        ReplicationError naming the file; a ReplicationError raised inside passes through.
    """
    # Imported here, not at the top: the modules that want only locks and atomic outputs
    # (the results table, Slurm, shards) would otherwise load h5py for nothing.
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ReplicationError(path, "no such weight file")
    if not h5py.is_hdf5(path):
        raise ReplicationError(path, f"not an HDF5 file; expected {expected}")
    try:
        with h5py.File(path, "r") as f:
            yield f
    except ReplicationError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        # h5py reports truncation and damaged metadata as OSError/KeyError.
        raise ReplicationError(path, f"damaged or truncated weight file ({err})") from err
