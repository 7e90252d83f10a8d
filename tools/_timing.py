"""Timing helper shared by the benchmarks."""

import statistics
import time


def median_ms(call, repeats: int, warmups: int = 3) -> float:
    """Median wall time of call() in milliseconds, after `warmups` untimed calls
    (tracing, compilation, caches)."""
    for _ in range(warmups):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)
