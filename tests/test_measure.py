from __future__ import annotations

import itertools

import pytest

from portbench.harness.measure import (
    MeasureSettings,
    min_samples_for,
    percentile_or_none,
    single_stream,
    summarize_ms,
)
from portbench.suites.base import Query


def test_min_samples_for_tail_percentiles() -> None:
    # Two samples must sit at or beyond the percentile: 2 / (1 - p).
    assert min_samples_for(50) == 4
    assert min_samples_for(90) == 20
    assert min_samples_for(99) == 200
    assert min_samples_for(99.9) == 2000


def test_percentiles_withheld_when_too_few_samples() -> None:
    assert percentile_or_none([1.0] * 19, 90) is None
    assert percentile_or_none([1.0] * 20, 90) == 1.0
    summary = summarize_ms([float(v) for v in range(1, 21)])
    assert summary.p99 is None
    assert summary.p90 is not None


def test_summary_matches_hand_computation() -> None:
    summary = summarize_ms([1.0, 2.0, 3.0, 4.0])
    assert summary.n == 4
    assert summary.mean == pytest.approx(2.5)
    assert summary.p50 == pytest.approx(2.5)  # linear interpolation between 2 and 3
    assert summary.min == 1.0 and summary.max == 4.0
    # sample standard deviation of 1..4: sqrt(5/3)
    assert summary.stdev == pytest.approx((5 / 3) ** 0.5)


def test_summarize_refuses_empty() -> None:
    with pytest.raises(ValueError):
        summarize_ms([])


def counting_queries(n: int, samples: int = 1) -> tuple[list[Query], list[int]]:
    calls = [0] * n

    def make(i: int) -> Query:
        def run() -> None:
            calls[i] += 1

        return Query(run=run, samples=samples)

    return [make(i) for i in range(n)], calls


def test_single_stream_stops_on_whole_passes_after_minimums() -> None:
    queries, calls = counting_queries(3, samples=4)
    settings = MeasureSettings(warmup_queries=0, min_queries=5, max_queries=100, min_duration_s=0.0,
                               max_duration_s=10.0)
    measurement = single_stream(queries, settings)
    # warm-up runs each distinct query once; timing then needs 5 queries, rounded up to 2 passes.
    assert len(measurement.latencies_ns) == 6
    assert calls == [3, 3, 3]
    assert measurement.samples == 6 * 4
    assert measurement.warmup_queries == 3
    throughput = measurement.throughput()
    assert throughput.samples_per_s == pytest.approx(24 / measurement.wall_s)


def test_single_stream_respects_count_cap() -> None:
    queries, _ = counting_queries(2)
    settings = MeasureSettings(warmup_queries=1, min_queries=1, max_queries=7, min_duration_s=5.0,
                               max_duration_s=60.0)
    measurement = single_stream(queries, settings)
    assert len(measurement.latencies_ns) == 7  # the duration minimum is never reached: the cap stops it


def test_single_stream_records_each_query_latency() -> None:
    ticks = itertools.count()
    queries = [Query(run=lambda: next(ticks))]
    settings = MeasureSettings(warmup_queries=0, min_queries=3, max_queries=3, min_duration_s=0.0,
                               max_duration_s=1.0)
    measurement = single_stream(queries, settings)
    assert len(measurement.latencies_ms) == 3
    assert all(v >= 0 for v in measurement.latencies_ms)


@pytest.mark.parametrize(
    "kwargs",
    [dict(min_queries=0), dict(min_queries=10, max_queries=5), dict(min_duration_s=3.0, max_duration_s=1.0)],
)
def test_settings_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MeasureSettings(**kwargs)  # type: ignore[arg-type]
