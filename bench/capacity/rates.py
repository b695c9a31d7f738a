"""Rates per CPU-second and per wall-clock second, this process's CPU and a server's counted."""

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RUNS = 3  # every rate is the median of this many runs


def no_cpu() -> float:
    return 0.0


@dataclass
class Rate:
    """Items per CPU-second (the per-core figure: on a shared machine the wall clock also
    counts the time other processes took from the core) and per wall-clock second, by run."""

    per_cpu: list[float] = field(default_factory=list)
    per_wall: list[float] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return statistics.median(self.per_cpu)

    @property
    def wall(self) -> float:
        return statistics.median(self.per_wall)

    def time(self, count: int, work: Callable[[], object], other_cpu: Callable[[], float] = no_cpu) -> None:
        """One run of `work`, which does `count` items; `other_cpu`: another process's CPU
        seconds so far (a server doing part of the work)."""
        cpu, other, began = time.process_time(), other_cpu(), time.perf_counter()
        work()
        wall = time.perf_counter() - began
        self.per_cpu.append(count / (time.process_time() - cpu + other_cpu() - other))
        self.per_wall.append(count / wall)


def measure_rate(count: int, work: Callable[[], object]) -> Rate:
    rate = Rate()
    for _ in range(RUNS):
        rate.time(count, work)
    return rate
