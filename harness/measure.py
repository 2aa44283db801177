"""Timing: the timed loop, and turning raw samples into summaries.

The timed loop only calls ``Query.run``: inputs are pre-processed before it starts, and nothing is
written or printed inside it. Percentiles are withheld when there are too few samples to support
them (a p99 from 20 samples is just the maximum), following MLPerf's insistence on sample counts.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from portbench.harness.results import LatencySummary, Throughput
from portbench.suites.base import Query

# A tail percentile p is reported only with at least this many samples at or beyond it.
MIN_TAIL_SAMPLES = 2


def min_samples_for(percentile: float) -> int:
    """Samples needed before ``percentile`` (e.g. 99.0) means something: 2 / (1 - p)."""
    tail = 1.0 - percentile / 100.0
    return math.ceil(MIN_TAIL_SAMPLES / tail - 1e-9)


def percentile_or_none(samples: Sequence[float], percentile: float) -> float | None:
    if len(samples) < min_samples_for(percentile):
        return None
    return float(np.percentile(np.asarray(samples, dtype=np.float64), percentile))


def summarize_ms(samples_ms: Sequence[float]) -> LatencySummary:
    if not samples_ms:
        raise ValueError("no samples to summarise")
    values = [float(v) for v in samples_ms]
    return LatencySummary(
        n=len(values),
        mean=statistics.fmean(values),
        min=min(values),
        max=max(values),
        stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
        p50=float(np.percentile(values, 50)),
        p90=percentile_or_none(values, 90),
        p99=percentile_or_none(values, 99),
    )


@dataclass(frozen=True)
class MeasureSettings:
    """How long a timed loop runs. It stops at whichever cap comes first once minimums are met."""

    warmup_queries: int = 10
    min_queries: int = 30
    max_queries: int = 1000
    min_duration_s: float = 1.0
    max_duration_s: float = 20.0

    def __post_init__(self) -> None:
        if self.min_queries < 1 or self.max_queries < self.min_queries:
            raise ValueError("need 1 <= min_queries <= max_queries")
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("need min_duration_s <= max_duration_s")


@dataclass
class Measurement:
    latencies_ns: list[int] = field(default_factory=list)
    samples: int = 0
    wall_s: float = 0.0
    warmup_queries: int = 0
    warmup_s: float = 0.0

    @property
    def latencies_ms(self) -> list[float]:
        return [ns / 1e6 for ns in self.latencies_ns]

    def latency_summary(self) -> LatencySummary:
        return summarize_ms(self.latencies_ms)

    def throughput(self) -> Throughput:
        return Throughput(
            samples_per_s=self.samples / self.wall_s, queries_per_s=len(self.latencies_ns) / self.wall_s
        )


def warm_up(queries: Sequence[Query], settings: MeasureSettings) -> tuple[int, float]:
    """Run every distinct query once (each new input shape costs a first-time compile), then more
    up to ``warmup_queries``. Returns (queries run, seconds)."""
    count = max(settings.warmup_queries, len(queries))
    start = time.perf_counter()
    for i in range(count):
        queries[i % len(queries)].run()
    return count, time.perf_counter() - start


def single_stream(queries: Sequence[Query], settings: MeasureSettings) -> Measurement:
    """One query after another, round-robin over ``queries``; latency of each recorded.

    Runs whole passes over ``queries`` until the minimum count and duration are both met, or until a
    cap (count or duration) stops it mid-pass.
    """
    if not queries:
        raise ValueError("no queries to time")
    measurement = Measurement()
    measurement.warmup_queries, measurement.warmup_s = warm_up(queries, settings)
    clock = time.perf_counter_ns
    latencies = measurement.latencies_ns
    samples = 0
    n_queries = len(queries)
    min_ns = int(settings.min_duration_s * 1e9)
    max_ns = int(settings.max_duration_s * 1e9)
    loop_start = clock()
    elapsed = 0
    i = 0
    while True:
        query = queries[i % n_queries]
        t0 = clock()
        query.run()
        t1 = clock()
        latencies.append(t1 - t0)
        samples += query.samples
        i += 1
        elapsed = t1 - loop_start
        if i >= settings.max_queries or elapsed >= max_ns:
            break
        # Stop on a whole pass so every distinct input (image size, batch width) weighs the same.
        if i >= settings.min_queries and elapsed >= min_ns and i % n_queries == 0:
            break
    measurement.samples = samples
    measurement.wall_s = elapsed / 1e9
    return measurement
