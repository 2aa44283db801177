"""A fixed, portbench-independent probe of how fast the host is right now.

Why: on a shared or virtual host the whole machine speeds up and slows down for minutes at a time
(measured on this project's VM: one of four identical smoke runs was 12–22 % slower in *every*
cell, its five timing processes spread over two minutes). No test on the cell's own latencies can
tell that from a regression of the software under test. A probe that does none of that software's
work, timed in each timing process just before its trials, can: a host that is slower shows in the
probe too, a slower Paddle or model does not. ``portbench compare --normalise-host`` divides each
process's median by its probe's time (``harness.compare``).

The probe is NumPy element-wise arithmetic on an L2-sized array and a copy of a 32 MiB one:
core speed and memory bandwidth, single-threaded by construction (NumPy's ufuncs use no thread
pool, so no BLAS thread setting changes it). Its figure is the geometric mean of the two parts'
medians over a few repetitions, about 0.2 s in all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

PROBE_VERSION = 1  # bump when the kernels change: probes of different versions are not comparable
_REPEATS = 5


def _median_ms(work: Callable[[], None], repeats: int = _REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def measure_host_speed() -> dict[str, float | int]:
    """Time the probe; returns its parts (ms), their geometric mean ``probe_ms`` and the version."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(32_768).astype(np.float32)  # 128 KiB: stays in L2
    y = x.copy()
    z = np.empty_like(x)
    source = np.ones(4_194_304, dtype=np.float64)  # 32 MiB: beyond any last-level cache here
    target = np.empty_like(source)

    def compute() -> None:
        for _ in range(100):
            np.multiply(x, y, out=z)
            np.add(z, x, out=z)

    def copy() -> None:
        np.copyto(target, source)

    compute()
    copy()  # first touch of the pages, not timed
    compute_ms, copy_ms = _median_ms(compute), _median_ms(copy)
    return {
        "version": PROBE_VERSION,
        "compute_ms": compute_ms,
        "copy_ms": copy_ms,
        "probe_ms": math.sqrt(compute_ms * copy_ms),
    }
