"""What this machine offers: processor cores and memory, for defaults that scale with it."""

import os


def cores() -> int:
    """The cores this process may run on (its affinity mask, where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def half_the_ram_gb() -> float:
    """Half of the machine's physical memory in GiB: the default memory bound of a run."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 / 2
