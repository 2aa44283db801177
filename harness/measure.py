"""Timing: the measurement engine every scenario, the worker and the pytest plugin share.

The timed loop only calls ``Query.run`` (plus the backend's ``synchronize`` when one is given):
inputs are pre-processed before it starts, and nothing is written or printed inside it. Percentiles
are withheld when there are too few samples to support them (a p99 from 20 samples is just the
maximum), following MLPerf's insistence on sample counts.

Scenarios (MLPerf names): ``single_stream`` (one query after another), ``offline`` (throughput over a
batch-size sweep), ``multi_stream`` (one thread per stream, each on its own cloned predictor).
``run_trials`` repeats a single-stream loop for a stability verdict; ``measure_stages`` times the
host-to-device / compute / device-to-host split in a separate loop so the main loop stays lean.
Every function takes a ``clock`` (nanoseconds) so tests can drive time deterministically.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from portbench.backends.base import Session, StageTimes
from portbench.errors import PortbenchError
from portbench.harness.results import LatencySummary, Throughput, TrialSummary
from portbench.harness.stats import DEFAULT_CV_THRESHOLD, summarize_trials
from portbench.harness.workload import Query

Clock = Callable[[], int]  # monotonic nanoseconds
Synchronize = Callable[[], None]
# Wraps exactly the timed loops (warm-up excluded), e.g. an energy meter's window; one per loop
# group: all trials of single-stream, each batch size of offline, the common run of multi-stream.
TimedWindow = Callable[[], AbstractContextManager[object]]
# Held for each step of a lockstep-timed loop (warm-up, each trial, the summary):
# ``harness.turns.Turns.turn``.
Turn = Callable[[], AbstractContextManager[object]]


def _no_window() -> AbstractContextManager[object]:
    return nullcontext()

# A tail percentile p is reported only with at least this many samples at or beyond it.
MIN_TAIL_SAMPLES = 2


class MeasureSettingsError(PortbenchError, ValueError):
    """Measurement settings that cannot work together (counts, durations, tolerances)."""


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
        p999=percentile_or_none(values, 99.9),
    )


@dataclass(frozen=True)
class MeasureSettings:
    """How long a timed loop runs, and how warm-up decides it is done.

    The timed loop stops at whichever cap comes first once the minimums are met. A count-based run
    sets ``min_queries == max_queries`` and ``min_duration_s = 0``; a time-budgeted one leaves the
    counts wide and sets the durations. ``target_percentile`` raises the minimum count to what that
    percentile needs (``min_samples_for``), e.g. 99.9 -> 2000 queries.

    Warm-up first runs every distinct query once and at least ``warmup_queries`` in all; then, unless
    ``warmup_stable_windows`` is 0, windows of ``warmup_window`` queries until the medians of the last
    ``warmup_stable_windows`` windows agree within ``warmup_tolerance`` (relative), or a cap is hit.
    """

    warmup_queries: int = 10
    min_queries: int = 30
    max_queries: int = 1000
    min_duration_s: float = 1.0
    max_duration_s: float = 20.0
    warmup_window: int = 10
    warmup_stable_windows: int = 3
    warmup_tolerance: float = 0.05
    warmup_max_queries: int = 1000
    warmup_max_s: float = 10.0
    target_percentile: float | None = None

    def __post_init__(self) -> None:
        if self.min_queries < 1 or self.max_queries < self.min_queries:
            raise MeasureSettingsError("need 1 <= min_queries <= max_queries")
        if self.min_duration_s < 0 or self.max_duration_s < self.min_duration_s:
            raise MeasureSettingsError("need 0 <= min_duration_s <= max_duration_s")
        if self.warmup_queries < 0 or self.warmup_window < 1:
            raise MeasureSettingsError("need warmup_queries >= 0 and warmup_window >= 1")
        if self.warmup_stable_windows == 1 or self.warmup_stable_windows < 0:
            raise MeasureSettingsError("warmup_stable_windows must be 0 (off) or at least 2")
        if self.warmup_tolerance <= 0 or self.warmup_max_queries < 0 or self.warmup_max_s < 0:
            raise MeasureSettingsError("need warmup_tolerance > 0 and non-negative warm-up caps")
        if self.target_percentile is not None:
            if not 0 < self.target_percentile < 100:
                raise MeasureSettingsError("target_percentile must lie between 0 and 100")
            needed = min_samples_for(self.target_percentile)
            if self.max_queries < needed:
                raise MeasureSettingsError(
                    f"max_queries {self.max_queries} cannot reach the {needed} samples "
                    f"p{self.target_percentile:g} needs"
                )

    @property
    def required_queries(self) -> int:
        """The minimum count, raised to what ``target_percentile`` needs."""
        if self.target_percentile is None:
            return self.min_queries
        return max(self.min_queries, min_samples_for(self.target_percentile))


@dataclass(frozen=True)
class WarmupReport:
    """How warm-up went. ``stable`` is None when only the fixed count ran (stability not judged)."""

    queries: int
    seconds: float
    stable: bool | None
    window_medians_ms: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "seconds": self.seconds,
            "stable": self.stable,
            "window_medians_ms": list(self.window_medians_ms),
        }


@dataclass
class Measurement:
    latencies_ns: list[int] = field(default_factory=list)
    samples: int = 0
    wall_s: float = 0.0
    warmup_queries: int = 0
    warmup_s: float = 0.0
    warmup_stable: bool | None = None
    streams: int = 1
    # Multi-stream only: each stream's latencies, in stream order (``latencies_ns`` holds them all).
    stream_latencies_ns: list[list[int]] = field(default_factory=list)

    @property
    def latencies_ms(self) -> list[float]:
        return [ns / 1e6 for ns in self.latencies_ns]

    def latency_summary(self) -> LatencySummary:
        return summarize_ms(self.latencies_ms)

    def throughput(self) -> Throughput:
        return Throughput(
            samples_per_s=self.samples / self.wall_s, queries_per_s=len(self.latencies_ns) / self.wall_s
        )

    def warmup_report(self) -> dict[str, Any]:
        """What the worker stores in ``CellResult.warmup``."""
        return {"queries": self.warmup_queries, "seconds": self.warmup_s, "stable": self.warmup_stable}


def _fixed_warm_up(
    queries: Sequence[Query], settings: MeasureSettings, synchronize: Synchronize | None
) -> int:
    """Run every distinct query once (each new input shape costs a first-time compile), then more
    up to ``warmup_queries``. Returns the number of queries run."""
    count = max(settings.warmup_queries, len(queries))
    for i in range(count):
        queries[i % len(queries)].run()
        if synchronize is not None:
            synchronize()
    return count


def _windows_agree(medians: Sequence[float], tolerance: float) -> bool:
    low, high = min(medians), max(medians)
    return high - low <= tolerance * low


def warm_up_until_stable(
    queries: Sequence[Query],
    settings: MeasureSettings,
    *,
    clock: Clock = time.perf_counter_ns,
    synchronize: Synchronize | None = None,
) -> WarmupReport:
    """Fixed warm-up (see :func:`_fixed_warm_up`), then windows until their medians agree or a cap
    is hit."""
    if not queries:
        raise ValueError("no queries to warm up")
    n_queries = len(queries)
    start = clock()
    count = _fixed_warm_up(queries, settings, synchronize)
    if settings.warmup_stable_windows == 0:
        return WarmupReport(count, (clock() - start) / 1e9, None)

    # Whole passes per window, so every window holds the same mix of input shapes.
    window = math.ceil(max(settings.warmup_window, n_queries) / n_queries) * n_queries
    max_ns = settings.warmup_max_s * 1e9
    medians_ns: list[float] = []
    stable = False
    while count + window <= settings.warmup_max_queries and clock() - start < max_ns:
        latencies: list[int] = []
        for i in range(window):
            query = queries[i % n_queries]
            t0 = clock()
            query.run()
            if synchronize is not None:
                synchronize()
            latencies.append(clock() - t0)
        count += window
        medians_ns.append(statistics.median(latencies))
        recent = medians_ns[-settings.warmup_stable_windows :]
        enough = len(recent) == settings.warmup_stable_windows
        if enough and _windows_agree(recent, settings.warmup_tolerance):
            stable = True
            break
    return WarmupReport(count, (clock() - start) / 1e9, stable, tuple(m / 1e6 for m in medians_ns))


def _timed_loop(
    queries: Sequence[Query],
    settings: MeasureSettings,
    clock: Clock,
    synchronize: Synchronize | None,
) -> Measurement:
    """The timed loop itself, warm-up not included. Kept minimal: see tests/bench_overhead.py."""
    measurement = Measurement()
    latencies = measurement.latencies_ns
    samples = 0
    n_queries = len(queries)
    min_queries = settings.required_queries
    max_queries = settings.max_queries
    min_ns = int(settings.min_duration_s * 1e9)
    max_ns = int(settings.max_duration_s * 1e9)
    loop_start = clock()
    elapsed = 0
    i = 0
    while True:
        query = queries[i % n_queries]
        t0 = clock()
        query.run()
        if synchronize is not None:
            synchronize()
        t1 = clock()
        latencies.append(t1 - t0)
        samples += query.samples
        i += 1
        elapsed = t1 - loop_start
        if i >= max_queries or elapsed >= max_ns:
            break
        # Stop on a whole pass so every distinct input (image size, batch width) weighs the same.
        if i >= min_queries and elapsed >= min_ns and i % n_queries == 0:
            break
    measurement.samples = samples
    measurement.wall_s = elapsed / 1e9
    return measurement


def single_stream(
    queries: Sequence[Query],
    settings: MeasureSettings,
    *,
    clock: Clock = time.perf_counter_ns,
    synchronize: Synchronize | None = None,
    window: TimedWindow = _no_window,
) -> Measurement:
    """One query after another, round-robin over ``queries``; latency of each recorded.

    Warms up until stable first (see :class:`MeasureSettings`). Then runs whole passes over
    ``queries`` until the minimum count and duration are both met, or until a cap (count or duration)
    stops it mid-pass. ``synchronize`` (the backend's) is called after each query inside the timed
    region, for devices whose ``run`` returns before the work is done.
    """
    if not queries:
        raise ValueError("no queries to time")
    warmup = warm_up_until_stable(queries, settings, clock=clock, synchronize=synchronize)
    with window():
        measurement = _timed_loop(queries, settings, clock, synchronize)
    measurement.warmup_queries = warmup.queries
    measurement.warmup_s = warmup.seconds
    measurement.warmup_stable = warmup.stable
    return measurement


@dataclass
class TrialsResult:
    """Repeated timed trials after one warm-up; every trial's raw samples are kept."""

    trials: list[Measurement]
    warmup: WarmupReport
    summary: TrialSummary

    def pooled(self) -> Measurement:
        """All trials as one measurement: the headline latency summary comes from every sample."""
        return Measurement(
            latencies_ns=[ns for trial in self.trials for ns in trial.latencies_ns],
            samples=sum(t.samples for t in self.trials),
            wall_s=sum(t.wall_s for t in self.trials),
            warmup_queries=self.warmup.queries,
            warmup_s=self.warmup.seconds,
            warmup_stable=self.warmup.stable,
        )

    def raw_latencies_ms(self) -> list[list[float]]:
        return [trial.latencies_ms for trial in self.trials]


def run_trials(
    queries: Sequence[Query],
    settings: MeasureSettings,
    trials: int = 3,
    *,
    cv_threshold: float = DEFAULT_CV_THRESHOLD,
    clock: Clock = time.perf_counter_ns,
    synchronize: Synchronize | None = None,
    window: TimedWindow = _no_window,
    turn: Turn = _no_window,
) -> TrialsResult:
    """Warm up once, then ``trials`` timed loops; the per-trial medians decide stability.

    ``turn`` wraps the warm-up, each trial and the summary: a lockstep partner process
    (``harness.lockstep``) runs its own step between two of ours, never during one, and nothing
    but waiting happens between them."""
    if not queries:
        raise ValueError("no queries to time")
    if trials < 1:
        raise MeasureSettingsError("trials must be at least 1")
    with turn():
        warmup = warm_up_until_stable(queries, settings, clock=clock, synchronize=synchronize)
    measured = []
    with window():
        for _ in range(trials):
            with turn():
                measured.append(_timed_loop(queries, settings, clock, synchronize))
    # A step of its own: the first summary imports scipy.stats, half a second of CPU that slowed a
    # lockstep partner's last trial 25-fold when it ran between turns (OpenMP threads starved).
    with turn():
        summary = summarize_trials(
            [float(np.percentile(m.latencies_ns, 50)) / 1e6 for m in measured],
            [m.samples / m.wall_s if m.wall_s > 0 else 0.0 for m in measured],
            cv_threshold,
        )
    return TrialsResult(measured, warmup, summary)


def offline(
    make_queries_for_batch: Callable[[int], Sequence[Query]],
    batch_sizes: Sequence[int],
    settings: MeasureSettings,
    *,
    clock: Clock = time.perf_counter_ns,
    synchronize: Synchronize | None = None,
    window: TimedWindow = _no_window,
) -> dict[int, Measurement]:
    """Throughput across a batch-size sweep: the workload builds the queries for each batch size."""
    if not batch_sizes:
        raise MeasureSettingsError("offline needs at least one batch size")
    bad = [b for b in batch_sizes if not isinstance(b, int) or b < 1]
    if bad or len(set(batch_sizes)) != len(batch_sizes):
        raise MeasureSettingsError(f"batch sizes must be distinct positive integers, got {list(batch_sizes)}")
    results: dict[int, Measurement] = {}
    for batch in batch_sizes:
        queries = make_queries_for_batch(batch)
        if not queries:
            raise ValueError(f"no queries for batch size {batch}")
        results[batch] = single_stream(queries, settings, clock=clock, synchronize=synchronize, window=window)
    return results


def multi_stream(
    streams: Sequence[Sequence[Query]],
    settings: MeasureSettings,
    *,
    clock: Clock = time.perf_counter_ns,
    synchronize: Synchronize | None = None,
    window: TimedWindow = _no_window,
) -> Measurement:
    """N concurrent streams, one thread each; every stream warms up, then all start together.

    Each stream must run on its own predictor (``Session.clone()``): Paddle predictors release
    the GIL while running but are not safe to share. The count and duration rules apply per stream.
    Latencies of all streams are pooled; throughput is every sample over the wall time from the common
    start to the last stream's end.
    """
    if not streams or any(not stream for stream in streams):
        raise ValueError("multi-stream needs at least one stream, each with queries")
    n_streams = len(streams)
    start_ns: list[int] = []
    opened: list[ExitStack] = []

    def all_warm() -> None:
        opened[0].enter_context(window())
        start_ns.append(clock())

    barrier = threading.Barrier(n_streams, action=all_warm)
    warmups: list[WarmupReport | None] = [None] * n_streams
    loops: list[Measurement | None] = [None] * n_streams
    end_ns = [0] * n_streams
    errors: list[BaseException] = []

    def run_stream(index: int) -> None:
        try:
            warmups[index] = warm_up_until_stable(
                streams[index], settings, clock=clock, synchronize=synchronize
            )
            barrier.wait()
            loops[index] = _timed_loop(streams[index], settings, clock, synchronize)
            end_ns[index] = clock()
        except threading.BrokenBarrierError:
            return  # another stream failed; its error is the one reported
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    threads = [
        threading.Thread(target=run_stream, args=(i,), name=f"portbench-stream-{i}") for i in range(n_streams)
    ]
    # The window opens in the barrier's action, once every stream has warmed up, and closes when
    # the last stream is done.
    with ExitStack() as timed:
        opened.append(timed)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    finished = [m for m in loops if m is not None]
    reports = [w for w in warmups if w is not None]
    return Measurement(
        latencies_ns=[ns for m in finished for ns in m.latencies_ns],
        samples=sum(m.samples for m in finished),
        wall_s=(max(end_ns) - start_ns[0]) / 1e9,
        warmup_queries=sum(w.queries for w in reports),
        warmup_s=max(w.seconds for w in reports),
        warmup_stable=None if any(w.stable is None for w in reports) else all(w.stable for w in reports),
        streams=n_streams,
        stream_latencies_ns=[m.latencies_ns for m in finished],
    )


# --- Staged timing: a separate loop, so the main loop carries no per-stage bookkeeping ---------

STAGE_NAMES = ("h2d", "compute", "d2h")


@dataclass(frozen=True)
class StagedQuery:
    """A query that adds its host-to-device / compute / device-to-host split to a ``StageTimes``."""

    run_staged: Callable[[StageTimes], object]
    samples: int = 1


def staged_query(session: Session, feed: Sequence[np.ndarray], samples: int = 1) -> StagedQuery:
    """Time ``session.run_staged(feed)``: the backend synchronises between the stages."""
    return StagedQuery(run_staged=lambda times: session.run_staged(feed, times), samples=samples)


@dataclass
class StageMeasurement:
    """Per-query stage times in milliseconds, by stage name (``STAGE_NAMES``)."""

    stages_ms: dict[str, list[float]]

    def summaries(self) -> dict[str, LatencySummary]:
        return {stage: summarize_ms(values) for stage, values in self.stages_ms.items() if values}


def measure_stages(
    queries: Sequence[StagedQuery],
    settings: MeasureSettings,
    *,
    clock: Clock = time.perf_counter_ns,
) -> StageMeasurement:
    """Per-stage times over whole passes of ``queries`` (same count/duration rules as the timed loop).

    The stage clock is ``Session.run_staged``'s own; ``clock`` only decides when to stop.
    """
    if not queries:
        raise ValueError("no queries to time")
    n_queries = len(queries)
    for query in queries:  # first-time compile per shape stays out of the figures
        query.run_staged(StageTimes())
    stages: dict[str, list[float]] = {name: [] for name in STAGE_NAMES}
    min_ns = settings.min_duration_s * 1e9
    max_ns = settings.max_duration_s * 1e9
    start = clock()
    i = 0
    while True:
        times = StageTimes()
        queries[i % n_queries].run_staged(times)
        stages["h2d"].append(times.h2d * 1e3)
        stages["compute"].append(times.compute * 1e3)
        stages["d2h"].append(times.d2h * 1e3)
        i += 1
        elapsed = clock() - start
        if i >= settings.max_queries or elapsed >= max_ns:
            break
        if i >= settings.required_queries and elapsed >= min_ns and i % n_queries == 0:
            break
    return StageMeasurement(stages)


# --- Run manifest: every performance-relevant setting, so comparisons can refuse or warn ---------

# Environment variables that change how fast Paddle runs. Read only: portbench never sets them here.
# These hold on every platform (host threading, oneDNN, Paddle's own flags); each backend adds its
# vendor's prefixes (``Backend.env_prefixes``).
COMMON_ENV_PREFIXES = (
    "OMP_",
    "KMP_",
    "GOMP_",
    "MKL_",
    "OPENBLAS_",
    "DNNL_",
    "ONEDNN_",
    "FLAGS_",
    "PADDLE_",
    "CUSTOM_DEVICE_",
)
MANIFEST_ENV_NAMES = ("LD_PRELOAD", "MALLOC_CONF", "GLIBC_TUNABLES")
CPU_SYSFS = Path("/sys/devices/system/cpu")


def manifest_env_prefixes() -> tuple[str, ...]:
    """Common prefixes plus every registered backend's declared ones (a backend that fails to
    import contributes none)."""
    from portbench.backends.registry import backend_classes

    declared = (prefix for cls in backend_classes().values() for prefix in cls.env_prefixes)
    return tuple(dict.fromkeys((*COMMON_ENV_PREFIXES, *declared)))


def performance_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables that can change inference speed, sorted by name."""
    source = os.environ if environ is None else environ
    prefixes = manifest_env_prefixes()
    return {
        name: value
        for name, value in sorted(source.items())
        if name.startswith(prefixes) or name in MANIFEST_ENV_NAMES
    }


def cpu_governors(sysfs_root: Path = CPU_SYSFS) -> list[str] | None:
    """Distinct cpufreq scaling governors of the online CPUs, or None where sysfs does not say."""
    found = set()
    for path in sysfs_root.glob("cpu[0-9]*/cpufreq/scaling_governor"):
        try:
            found.add(path.read_text(encoding="ascii").strip())
        except OSError:
            continue
    return sorted(found) or None


def _usable_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def build_manifest(
    *,
    backend: str,
    precision: str,
    scenario: str,
    cpu_threads: int,
    batch_sizes: Sequence[int],
    input_shapes: Mapping[str, Any],
    settings: MeasureSettings,
    predictor_options: Mapping[str, Any] | None = None,
    paddle: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    sysfs_root: Path = CPU_SYSFS,
) -> dict[str, Any]:
    """Every setting that shapes a cell's speed, JSON-ready. ``paddle`` defaults to the installed build
    (``describe_paddle``: version, commit, distribution, plugins)."""
    if paddle is None:
        from portbench.harness.platform_info import describe_paddle

        paddle = describe_paddle()
    return {
        "backend": backend,
        "precision": precision,
        "scenario": scenario,
        "cpu_threads": cpu_threads,
        "batch_sizes": list(batch_sizes),
        "input_shapes": dict(input_shapes),
        "measure_settings": asdict(settings),
        "predictor_options": dict(predictor_options or {}),
        "paddle": dict(paddle),
        "environment": performance_environment(environ),
        "cpu_governor": cpu_governors(sysfs_root),
        "usable_cpus": _usable_cpus(),
        "python": platform.python_version(),
    }


def _flatten(value: Any, prefix: str, into: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), into)
    else:
        into[prefix] = list(value) if isinstance(value, tuple) else value


def compare_manifests(
    first: Mapping[str, Any], second: Mapping[str, Any], ignore: Collection[str] = ()
) -> list[str]:
    """Differences between two manifests, one line each (``key: a != b``), sorted by key.

    ``ignore`` holds dotted keys or prefixes expected to differ (e.g. ``backend`` when comparing
    platforms on purpose). An empty list means the runs were measured the same way.
    """
    flat_first: dict[str, Any] = {}
    flat_second: dict[str, Any] = {}
    _flatten(first, "", flat_first)
    _flatten(second, "", flat_second)
    missing = object()
    differences = []
    for key in sorted(set(flat_first) | set(flat_second)):
        if any(key == skip or key.startswith(f"{skip}.") for skip in ignore):
            continue
        a, b = flat_first.get(key, missing), flat_second.get(key, missing)
        if a != b:
            shown_a = "(absent)" if a is missing else repr(a)
            shown_b = "(absent)" if b is missing else repr(b)
            differences.append(f"{key}: {shown_a} != {shown_b}")
    return differences
