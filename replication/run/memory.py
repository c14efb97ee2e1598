"""What the process itself holds: the measurements `--memory-gb` is budgeted with.

`--memory-gb` bounds the whole process's anonymous memory (what it needs of the RAM; a
memory-mapped image cache's pages are the kernel's page cache and are not counted). The
engine subtracts from it what is already held when a sweep starts (TensorFlow's runtime,
the model, images held in RAM), what one batch needs while it runs through the model
(measured here, `batch_working_bytes`), the layer copies and draws a trial needs, and
`MARGIN_BYTES`; what is left is for cached activations.

Memory that the allocator keeps after it is freed still counts as the process's, so
`return_freed_memory` hands it back to the system between the engine's caches.
"""

import ctypes
import ctypes.util

MARGIN_BYTES = 256 * 2**20  # what the bound leaves for what is not measured: Python objects, threads' stacks


def _status() -> dict[str, int]:
    """/proc/self/status's memory lines in bytes; empty where there is none (not Linux)."""
    try:
        with open("/proc/self/status") as status:
            lines = [line.split() for line in status if line.startswith(("Vm", "Rss"))]
    except OSError:
        return {}
    return {fields[0].rstrip(":"): int(fields[1]) * 1024 for fields in lines if len(fields) >= 3}


def anonymous_bytes() -> int:
    """This process's resident anonymous memory (RssAnon), 0 where it cannot be read."""
    return _status().get("RssAnon", 0)


def _reset_peak() -> bool:
    """Reset the process's peak resident memory (VmHWM) to its current value."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def batch_working_bytes(run) -> int:
    """Memory `run()` needs while it runs, beyond what the process held before: the rise of
    the peak resident memory (VmHWM, reset first), or where that cannot be reset, the rise
    of anonymous memory after it. Trace `run`'s functions before, so that tracing is not
    counted; a first run's set-up of TensorFlow's kernels is, and resident memory includes
    file pages `run` reads, so this errs high."""
    return_freed_memory()
    if _reset_peak():
        before = _status().get("VmRSS", 0)
        run()
        return max(0, _status().get("VmHWM", 0) - before)
    before = anonymous_bytes()
    run()
    return max(0, anonymous_bytes() - before)


_LIBC = None


def return_freed_memory() -> None:
    """Hand memory the C allocator keeps after frees back to the system (glibc's
    malloc_trim); nothing where there is no glibc. TensorFlow frees a cache's tensors to
    the allocator, which would otherwise keep their pages as the process's."""
    global _LIBC
    if _LIBC is None:
        name = ctypes.util.find_library("c")
        try:
            _LIBC = ctypes.CDLL(name) if name else False
            _LIBC.malloc_trim  # noqa: B018 - only glibc has it
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)
