"""pytest plugin: drive portbench queries from pytest, with pytest-benchmark's tables and storage.

One engine: portbench's timed loop measures (warm-up until stable, whole passes, percentile minimums),
then its raw samples are handed to the ``benchmark`` fixture's statistics. ``--benchmark-json``,
``--benchmark-save``, ``--benchmark-compare`` and the terminal table then show portbench's own numbers;
pytest-benchmark's calibration and timer are not used.

    def test_rec_latency(portbench_benchmark):
        session = CpuBackend().create_session(files, PredictorOptions())
        feed = [np.zeros((1, 3, 48, 320), np.float32)]
        measurement = portbench_benchmark([Query(run=lambda: session.run(feed))])
        assert measurement.latency_summary().n >= 30

Registered through the ``pytest11`` entry point ``portbench``; needs pytest-benchmark (a dependency).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from portbench.harness.measure import Measurement, MeasureSettings, Synchronize, single_stream
from portbench.harness.workload import Query


def smoke_settings(n_queries: int) -> MeasureSettings:
    """With --benchmark-disable the test still runs its queries as a plain functional test: one
    warm-up pass and one timed pass, nothing recorded."""
    return MeasureSettings(
        warmup_queries=0,
        min_queries=n_queries,
        max_queries=n_queries,
        min_duration_s=0.0,
        max_duration_s=1e9,
        warmup_stable_windows=0,
    )


def record_measurement(benchmark: Any, measurement: Measurement) -> None:
    """Hand a portbench measurement to a pytest-benchmark ``benchmark`` fixture, as one round per query.

    Uses the fixture's ``_make_stats`` (the hook pytest-benchmark's own ``pedantic`` mode uses): the
    fixture has no public way to accept samples measured elsewhere.
    """
    if benchmark._mode:
        raise RuntimeError(f"the benchmark fixture was already used in {benchmark._mode} mode")
    if not measurement.latencies_ns:
        raise ValueError("the measurement holds no samples")
    benchmark._mode = "portbench"
    stats = benchmark._make_stats(1)
    for nanoseconds in measurement.latencies_ns:
        stats.update(nanoseconds / 1e9)
    summary = measurement.latency_summary()
    benchmark.extra_info.update(
        {
            "engine": "portbench",
            "p90_ms": summary.p90,
            "p99_ms": summary.p99,
            "p999_ms": summary.p999,
            "samples_per_s": measurement.throughput().samples_per_s if measurement.wall_s > 0 else None,
            "warmup": measurement.warmup_report(),
        }
    )


class PortbenchBenchmark:
    """Callable the ``portbench_benchmark`` fixture returns: time queries, feed the ``benchmark`` fixture."""

    def __init__(self, benchmark: Any, settings: MeasureSettings) -> None:
        self.benchmark = benchmark
        self.settings = settings

    def __call__(
        self,
        queries: Sequence[Query],
        settings: MeasureSettings | None = None,
        *,
        synchronize: Synchronize | None = None,
    ) -> Measurement:
        if self.benchmark.disabled:
            return single_stream(queries, smoke_settings(max(len(queries), 1)), synchronize=synchronize)
        measurement = single_stream(queries, settings or self.settings, synchronize=synchronize)
        record_measurement(self.benchmark, measurement)
        return measurement


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "portbench(**settings): MeasureSettings fields for the portbench_benchmark fixture in this test",
    )


@pytest.fixture
def portbench_benchmark(benchmark: Any, request: pytest.FixtureRequest) -> PortbenchBenchmark:
    """Time ``Query`` lists with portbench's engine and report them through pytest-benchmark.

    Settings come from ``@pytest.mark.portbench(min_queries=..., ...)`` or an argument of the call.
    """
    marker = request.node.get_closest_marker("portbench")
    settings = MeasureSettings(**marker.kwargs) if marker else MeasureSettings()
    return PortbenchBenchmark(benchmark, settings)
