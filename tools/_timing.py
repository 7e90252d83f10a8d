"""Timing helper shared by the benchmarks."""

import os
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


def machine() -> str:
    """'2 CPU cores (AMX-BF16 yes, AVX512-BF16 yes; oneDNN on)': what decides the
    speed of float32 vs bfloat16 on a CPU (and which oneDNN kernels run)."""
    from coltran_tf.utils.precision import cpu_bfloat16_summary

    onednn = "off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") in ("0", "false") else "on"
    return f"{os.cpu_count()} CPU cores ({cpu_bfloat16_summary()}; oneDNN {onednn})"
