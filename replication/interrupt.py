"""Stopping a run from outside: SIGTERM (what Slurm, LSF and Kubernetes send before
SIGKILL) is handled like Ctrl-C.

`handle_termination` installs a handler that raises `Terminated`, a KeyboardInterrupt, at
the point the main thread has reached; the trial or training step in progress is abandoned
the way Ctrl-C abandons it (every finished row is already durable, temporaries are removed
on the way out), so a resumed run loses nothing. The commands' shared runner maps it to
exit status 143 (128 + SIGTERM), Ctrl-C to 130.
"""

import contextlib
import signal
import threading

EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; a KeyboardInterrupt, so that every clean-up written
    for Ctrl-C runs for it too."""


_received = threading.Event()


def _raise_terminated(signum, frame):
    # A second SIGTERM during the clean-up is ignored: the scheduler's SIGKILL follows anyway,
    # and an exception raised inside a `finally` could leave a temporary behind.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _received.set()
    raise Terminated(f"received signal {signum}")


def termination_received() -> bool:
    """Whether SIGTERM arrived within the current `handle_termination` block. `Terminated`
    is raised wherever the main thread is, and code that it interrupts can turn it into
    another exception (TensorFlow's tracing does: an AssertionError); the process was
    terminated all the same."""
    return _received.is_set()


@contextlib.contextmanager
def handle_termination():
    """Within the block, SIGTERM raises `Terminated` in the main thread; the previous
    handler is put back afterwards (a command called from Python leaves no trace).

    Nothing is installed outside the main thread (where Python allows no signal handler)
    or when SIGTERM is ignored by the parent (nohup-like).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()  # a SIGTERM noted in an earlier block is not this one's
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """143 for `Terminated`, 130 for Ctrl-C."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED
