from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portbench.backends.base import InferenceSession, ModelFiles, StageTimes
from portbench.errors import PortbenchError
from portbench.harness.measure import (
    STAGE_NAMES,
    MeasureSettings,
    MeasureSettingsError,
    StagedQuery,
    build_manifest,
    compare_manifests,
    cpu_governors,
    measure_stages,
    min_samples_for,
    multi_stream,
    offline,
    percentile_or_none,
    performance_environment,
    run_trials,
    single_stream,
    staged_query,
    summarize_ms,
    warm_up_until_stable,
)
from portbench.harness.workload import Query

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast


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
    settings = MeasureSettings(
        warmup_queries=0,
        min_queries=5,
        max_queries=100,
        min_duration_s=0.0,
        max_duration_s=10.0,
        warmup_stable_windows=0,
    )
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
    settings = MeasureSettings(
        warmup_queries=1, min_queries=1, max_queries=7, min_duration_s=5.0, max_duration_s=60.0
    )
    measurement = single_stream(queries, settings)
    assert len(measurement.latencies_ns) == 7  # the duration minimum is never reached: the cap stops it


def test_single_stream_records_each_query_latency() -> None:
    ticks = itertools.count()
    queries = [Query(run=lambda: next(ticks))]
    settings = MeasureSettings(
        warmup_queries=0, min_queries=3, max_queries=3, min_duration_s=0.0, max_duration_s=1.0
    )
    measurement = single_stream(queries, settings)
    assert len(measurement.latencies_ms) == 3
    assert all(v >= 0 for v in measurement.latencies_ms)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_queries": 0},
        {"min_queries": 10, "max_queries": 5},
        {"min_duration_s": 3.0, "max_duration_s": 1.0},
    ],
)
def test_settings_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MeasureSettings(**kwargs)


# --- a deterministic clock: time moves only when a fake query (or synchronize) says so -----------


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns

    def advance_ms(self, ms: float) -> None:
        self.now_ns += round(ms * 1e6)


def scheduled_query(clock: FakeClock, latency_ms_for_call: Callable[[int], float], samples: int = 1) -> Query:
    """A query whose k-th call (1-based) takes ``latency_ms_for_call(k)`` on ``clock``."""
    calls = itertools.count(1)

    def run() -> None:
        clock.advance_ms(latency_ms_for_call(next(calls)))

    return Query(run=run, samples=samples)


def count_based(n: int, **overrides: float) -> MeasureSettings:
    values: dict[str, Any] = {
        "warmup_queries": 0,
        "min_queries": n,
        "max_queries": n,
        "min_duration_s": 0.0,
        "max_duration_s": 1e6,
        "warmup_stable_windows": 0,
    }
    values.update(overrides)
    return MeasureSettings(**values)


def test_p999_withheld_below_2000_samples() -> None:
    assert summarize_ms([float(v) for v in range(1, 2000)]).p999 is None
    summary = summarize_ms([float(v) for v in range(1, 2001)])
    # linear interpolation at position 0.999 * 1999 = 1997.001 between 1998 and 1999
    assert summary.p999 == pytest.approx(1998.001)
    assert summary.p99 == pytest.approx(1980.01)  # position 0.99 * 1999 = 1979.01


def test_target_percentile_raises_the_minimum_count() -> None:
    settings = MeasureSettings(min_queries=10, max_queries=5000, target_percentile=99.9)
    assert settings.required_queries == 2000
    assert MeasureSettings(min_queries=10, target_percentile=90).required_queries == 20
    assert MeasureSettings(min_queries=50, target_percentile=90).required_queries == 50
    with pytest.raises(MeasureSettingsError, match="2000 samples"):
        MeasureSettings(max_queries=1000, target_percentile=99.9)
    assert issubclass(MeasureSettingsError, PortbenchError)


def test_single_stream_reports_p999_only_when_the_run_supports_it() -> None:
    clock = FakeClock()
    query = scheduled_query(clock, lambda k: 1.0 + (k % 7) * 0.1)
    settings = MeasureSettings(
        warmup_queries=0,
        min_queries=1,
        max_queries=3000,
        min_duration_s=0.0,
        max_duration_s=1e6,
        warmup_stable_windows=0,
        target_percentile=99.9,
    )
    measurement = single_stream([query], settings, clock=clock)
    assert len(measurement.latencies_ns) == 2000
    assert measurement.latency_summary().p999 is not None

    short = single_stream([query], count_based(1999), clock=clock)
    summary = short.latency_summary()
    assert summary.p999 is None and summary.p99 is not None


def test_single_stream_times_with_the_injected_clock() -> None:
    clock = FakeClock()
    query = scheduled_query(clock, lambda k: 2.0, samples=4)
    measurement = single_stream([query], count_based(10), clock=clock)
    assert measurement.latencies_ns == [2_000_000] * 10
    assert measurement.wall_s == pytest.approx(0.020)
    assert measurement.throughput().samples_per_s == pytest.approx(40 / 0.020)
    assert measurement.warmup_queries == 1 and measurement.warmup_stable is None


def test_synchronize_is_inside_the_timed_region() -> None:
    clock = FakeClock()
    synced = []

    def synchronize() -> None:
        synced.append(1)
        clock.advance_ms(1.0)  # an asynchronous device finishing its queued work

    query = scheduled_query(clock, lambda k: 2.0)
    measurement = single_stream(
        [query], count_based(5, warmup_queries=3), clock=clock, synchronize=synchronize
    )
    assert measurement.latencies_ns == [3_000_000] * 5
    assert len(synced) == 3 + 5


def test_warm_up_until_stable_stops_when_window_medians_agree() -> None:
    clock = FakeClock()
    # 5 ms steady state, reached at call 30 after a linear decline of 1 ms per call.
    query = scheduled_query(clock, lambda k: 5.0 + max(0, 30 - k))
    settings = MeasureSettings(
        warmup_queries=0,
        warmup_window=5,
        warmup_stable_windows=3,
        warmup_tolerance=0.05,
        warmup_max_queries=1000,
        warmup_max_s=1e6,
    )
    report = warm_up_until_stable([query], settings, clock=clock)
    # one first call, then windows of 5 with medians at calls 4, 9, 14, ... : 31, 26, 21, 16, 11,
    # then (8, 7, 6, 5, 5) -> 6, then 5, 5, 5: the last three agree after 9 windows.
    assert report.window_medians_ms == pytest.approx((31, 26, 21, 16, 11, 6, 5, 5, 5))
    assert report.stable is True
    assert report.queries == 1 + 9 * 5
    # calls 1..29 take 5 + (30 - k) ms = 145 + 435; calls 30..46 take 5 ms each = 85
    assert report.seconds == pytest.approx(0.665)


def test_warm_up_until_stable_gives_up_at_the_query_cap() -> None:
    clock = FakeClock()
    query = scheduled_query(clock, lambda k: 100.0 - k)  # never settles
    settings = MeasureSettings(
        warmup_queries=0,
        warmup_window=5,
        warmup_stable_windows=3,
        warmup_max_queries=50,
        warmup_max_s=1e6,
    )
    report = warm_up_until_stable([query], settings, clock=clock)
    assert report.stable is False
    assert report.queries == 46  # 1 + 9 windows of 5; a tenth would pass 50


def test_warm_up_until_stable_gives_up_at_the_time_cap() -> None:
    clock = FakeClock()
    query = scheduled_query(clock, lambda k: 100.0 - k / 100)
    settings = MeasureSettings(
        warmup_queries=0,
        warmup_window=2,
        warmup_stable_windows=2,
        warmup_tolerance=1e-6,
        warmup_max_queries=100_000,
        warmup_max_s=1.0,
    )
    report = warm_up_until_stable([query], settings, clock=clock)
    assert report.stable is False
    assert 1.0 <= report.seconds < 1.0 + 0.2 + 1e-9  # stops at the first window after one second


def test_warm_up_windows_hold_whole_passes() -> None:
    clock = FakeClock()
    # Two shapes, 1 ms and 9 ms: a window of 3 would alternate medians; whole passes keep them equal.
    queries = [scheduled_query(clock, lambda k: 1.0), scheduled_query(clock, lambda k: 9.0)]
    settings = MeasureSettings(warmup_queries=0, warmup_window=3, warmup_stable_windows=2, warmup_max_s=1e6)
    report = warm_up_until_stable(queries, settings, clock=clock)
    assert report.stable is True
    assert report.queries == 2 + 2 * 4  # the first pass, then two windows of 4


def test_run_trials_aggregates_per_trial_medians() -> None:
    clock = FakeClock()
    # call 1 is the warm-up; then three trials of four queries at 10, 11 and 12 ms.
    query = scheduled_query(clock, lambda k: 1.0 if k == 1 else 10.0 + (k - 2) // 4)
    result = run_trials([query], count_based(4), trials=3, clock=clock)
    summary = result.summary
    assert summary.p50_ms == pytest.approx((10.0, 11.0, 12.0))
    assert summary.median_p50_ms == pytest.approx(11.0)
    # mean 11, sample sd 1, t(0.975, 2) = 4.3027: 11 -/+ 4.3027 / sqrt(3)
    assert summary.ci95_low_ms == pytest.approx(11 - 2.48416, abs=1e-4)
    assert summary.ci95_high_ms == pytest.approx(11 + 2.48416, abs=1e-4)
    assert summary.cv == pytest.approx(1 / 11)
    assert summary.unstable is True  # 0.0909 > 0.05
    assert summary.samples_per_s == pytest.approx((4 / 0.040, 4 / 0.044, 4 / 0.048))
    assert [len(t) for t in result.raw_latencies_ms()] == [4, 4, 4]
    pooled = result.pooled()
    assert len(pooled.latencies_ns) == 12 and pooled.samples == 12
    assert pooled.wall_s == pytest.approx(0.132)
    assert result.warmup.queries == 1


def test_run_trials_threshold_is_configurable_and_steady_runs_are_stable() -> None:
    clock = FakeClock()
    query = scheduled_query(clock, lambda k: 1.0 if k == 1 else 10.0 + (k - 2) // 4)
    assert run_trials([query], count_based(4), 3, cv_threshold=0.1, clock=clock).summary.unstable is False
    clock2 = FakeClock()
    steady = scheduled_query(clock2, lambda k: 3.0)
    summary = run_trials([steady], count_based(4), 5, clock=clock2).summary
    assert summary.cv == 0.0 and summary.unstable is False
    assert summary.ci95_low_ms == pytest.approx(3.0) and summary.ci95_high_ms == pytest.approx(3.0)
    with pytest.raises(MeasureSettingsError):
        run_trials([steady], count_based(4), 0, clock=clock2)


def test_offline_times_each_batch_size() -> None:
    clock = FakeClock()
    built: list[int] = []

    def make(batch: int) -> list[Query]:
        built.append(batch)
        def latency_ms(call: int) -> float:
            return float(batch)

        return [scheduled_query(clock, latency_ms, samples=batch)]

    results = offline(make, [1, 4, 8], count_based(5), clock=clock)
    assert built == [1, 4, 8] and list(results) == [1, 4, 8]
    for batch, measurement in results.items():
        assert measurement.samples == 5 * batch
        assert measurement.latencies_ns == [batch * 1_000_000] * 5
        # a batch-b query takes b ms here: b samples per b ms is 1000 samples/s whatever the batch
        assert measurement.throughput().samples_per_s == pytest.approx(1000.0)


@pytest.mark.parametrize("sizes", [[], [0], [2, 2], [1, -3]])
def test_offline_refuses_bad_batch_sizes(sizes: list[int]) -> None:
    with pytest.raises(MeasureSettingsError):
        offline(lambda b: [Query(run=lambda: None)], sizes, count_based(1))


def test_multi_stream_runs_streams_concurrently_and_pools_latencies() -> None:
    n_streams = 3
    # Each stream's first warm-up call waits for the others: sequential streams would time out here.
    rendezvous = threading.Barrier(n_streams, timeout=10)
    threads_seen: list[set[int]] = [set() for _ in range(n_streams)]
    calls = [[0, 0] for _ in range(n_streams)]

    def make(stream: int, index: int) -> Query:
        def run() -> None:
            if calls[stream] == [0, 0]:
                rendezvous.wait()
            calls[stream][index] += 1
            threads_seen[stream].add(threading.get_ident())

        return Query(run=run, samples=2)

    streams = [[make(s, 0), make(s, 1)] for s in range(n_streams)]
    measurement = multi_stream(streams, count_based(6, warmup_queries=2))
    assert measurement.streams == 3
    assert [len(lat) for lat in measurement.stream_latencies_ns] == [6, 6, 6]
    assert len(measurement.latencies_ns) == 18
    assert measurement.samples == 36
    assert calls == [[4, 4]] * 3  # 2 warm-up + 6 timed per stream, round-robin over two queries
    assert all(len(seen) == 1 for seen in threads_seen)
    assert len(set.union(*threads_seen)) == 3  # one thread per stream
    assert measurement.wall_s > 0
    assert measurement.throughput().samples_per_s == pytest.approx(36 / measurement.wall_s)


def test_multi_stream_reports_a_failing_stream_without_hanging() -> None:
    def broken() -> None:
        raise RuntimeError("predictor exploded")

    good = [Query(run=lambda: None)]
    with pytest.raises(RuntimeError, match="exploded"):
        multi_stream([good, [Query(run=broken)], good], count_based(3))


class FakeHandle:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def reshape(self, shape: tuple[int, ...]) -> None:
        self.log.append(f"reshape {self.name}")

    def copy_from_cpu(self, array: np.ndarray) -> None:
        self.log.append(f"in {self.name}")

    def copy_to_cpu(self) -> np.ndarray:
        self.log.append(f"out {self.name}")
        return np.zeros(2)


class FakePredictor:
    def __init__(self) -> None:
        self.log: list[str] = []

    def get_input_names(self) -> list[str]:
        return ["x"]

    def get_output_names(self) -> list[str]:
        return ["y"]

    def get_input_handle(self, name: str) -> FakeHandle:
        return FakeHandle(self.log, name)

    def get_output_handle(self, name: str) -> FakeHandle:
        return FakeHandle(self.log, name)

    def run(self) -> None:
        self.log.append("run")


class CountingBackend:
    def __init__(self) -> None:
        self.synchronized = 0

    def synchronize(self) -> None:
        self.synchronized += 1


def test_measure_stages_with_fixed_stage_times() -> None:
    def run_staged(times: StageTimes) -> None:
        times.h2d += 0.001
        times.compute += 0.002
        times.d2h += 0.0005

    clock = FakeClock()
    queries = [StagedQuery(run_staged=run_staged), StagedQuery(run_staged=run_staged)]
    stages = measure_stages(queries, count_based(6), clock=clock)
    assert set(stages.stages_ms) == set(STAGE_NAMES)
    assert stages.stages_ms["compute"] == pytest.approx([2.0] * 6)
    summaries = stages.summaries()
    assert summaries["h2d"].p50 == pytest.approx(1.0)
    assert summaries["d2h"].mean == pytest.approx(0.5)


def test_staged_query_runs_the_session_and_synchronizes_the_backend() -> None:
    predictor = FakePredictor()
    backend: Any = CountingBackend()  # only synchronize() is used
    model = ModelFiles(Path("m/inference.pdmodel"), Path("m/inference.pdiparams"))
    session = InferenceSession(predictor, backend, model)
    query = staged_query(session, [np.ones((1, 3), dtype=np.float32)], samples=1)
    stages = measure_stages([query], count_based(4), clock=FakeClock())
    assert len(stages.stages_ms["compute"]) == 4
    assert predictor.log.count("run") == 1 + 4  # one untimed first call, then four timed
    assert backend.synchronized == 2 * 5  # after the copy in and after the run, every call
    assert all(v >= 0 for values in stages.stages_ms.values() for v in values)


def test_performance_environment_reads_only_speed_relevant_variables() -> None:
    environ = {
        "OMP_NUM_THREADS": "2",
        "FLAGS_use_mkldnn": "1",
        "CUDA_VISIBLE_DEVICES": "0",
        "KMP_AFFINITY": "compact",
        "HOME": "/root",
        "PATH": "/usr/bin",
        "MY_FLAGS_X": "1",
    }
    assert performance_environment(environ) == {
        "CUDA_VISIBLE_DEVICES": "0",
        "FLAGS_use_mkldnn": "1",
        "KMP_AFFINITY": "compact",
        "OMP_NUM_THREADS": "2",
    }


def test_cpu_governors_from_sysfs(tmp_path: Path) -> None:
    assert cpu_governors(tmp_path) is None
    for cpu, governor in (("cpu0", "performance"), ("cpu1", "powersave"), ("cpu12", "performance")):
        directory = tmp_path / cpu / "cpufreq"
        directory.mkdir(parents=True)
        (directory / "scaling_governor").write_text(f"{governor}\n")
    (tmp_path / "cpufreq").mkdir()  # not a CPU: ignored
    assert cpu_governors(tmp_path) == ["performance", "powersave"]


def manifest(threads: int = 2, environ: dict[str, str] | None = None, **settings: Any) -> dict[str, object]:
    return build_manifest(
        backend="cpu",
        precision="fp32",
        scenario="single-stream",
        cpu_threads=threads,
        batch_sizes=[1],
        input_shapes={"x": [1, 3, 48, 320]},
        settings=MeasureSettings(**settings),
        predictor_options={"ir_optim": True},
        paddle={"version": "3.2.2", "commit": "abc"},
        environ=environ if environ is not None else {"OMP_NUM_THREADS": "1"},
    )


def test_build_manifest_records_the_settings_and_is_json_ready(tmp_path: Path) -> None:
    record = manifest()
    assert json.loads(json.dumps(record)) == record
    assert record["cpu_threads"] == 2 and record["precision"] == "fp32"
    assert record["environment"] == {"OMP_NUM_THREADS": "1"}
    assert record["paddle"] == {"version": "3.2.2", "commit": "abc"}
    assert record["measure_settings"]["min_queries"] == MeasureSettings().min_queries  # type: ignore[index]


def test_compare_manifests_lists_every_difference() -> None:
    assert compare_manifests(manifest(), manifest()) == []
    differences = compare_manifests(
        manifest(),
        manifest(threads=4, environ={"OMP_NUM_THREADS": "1", "FLAGS_use_mkldnn": "0"}, min_queries=50),
    )
    assert differences == [
        "cpu_threads: 2 != 4",
        "environment.FLAGS_use_mkldnn: (absent) != '0'",
        "measure_settings.min_queries: 30 != 50",
    ]
    assert compare_manifests(manifest(), manifest(threads=4), ignore=["cpu_threads"]) == []
    other = manifest()
    other["backend"] = "npu"
    other["paddle"] = {"version": "3.2.2", "commit": "def"}
    assert compare_manifests(manifest(), other, ignore=["backend", "paddle"]) == []
