"""Timing helper shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeats: int, *, clock: Callable[[], float] = time.perf_counter,
                warmup: bool = False) -> float:
    """Median duration in seconds of ``repeats`` calls of ``fn`` measured with ``clock``.

    Use ``clock=time.process_time`` for CPU time (steadier than wall time on a shared machine).
    """
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)
