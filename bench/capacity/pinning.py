"""Core pinning: every thread of a process on one core, and numpy's BLAS held to one thread."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]


def tasks_of(pid: int | str) -> list[int]:
    return [int(task) for task in os.listdir(f"/proc/{pid}/task")]


def two_cores() -> tuple[int, int]:
    """(this process's core, another one for a server it talks to; the same if only one)."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[-1], allowed[0]


@contextmanager
def pinned(core: int, pid: int | str = "self") -> Iterator[None]:
    """Pins every thread of a process to one core, restoring each one's affinity afterwards.
    Thread by thread: Linux affinity is per task, and the runtimes' worker threads exist."""
    before = {task: os.sched_getaffinity(task) for task in tasks_of(pid)}
    for task in before:
        os.sched_setaffinity(task, {core})
    try:
        if pid != "self":
            yield
        else:  # and one BLAS thread: OpenBLAS threads spinning on one core doubled LSH's CPU
            with threadpool_limits(limits=1):
                yield
    finally:
        main = before[os.getpid() if pid == "self" else int(pid)]
        for task in tasks_of(pid):  # threads born while pinned get the main thread's affinity
            os.sched_setaffinity(task, before.get(task, main))
