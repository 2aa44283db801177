"""The ``server`` scenario (MLPerf's name): Poisson arrivals, latency from the scheduled arrival, and a
search for the highest rate whose tail latency stays under a bound.

A load generator thread, separate from the system under test, owns the clock: it draws a seeded
Poisson schedule for the target rate (exponential inter-arrival gaps) and puts each query on a queue
at its scheduled time. ``workers`` threads, each on its own cloned predictors, take queries from the
queue and only predict. A query's latency runs from its *scheduled* arrival to its completion, so a
system that stalls cannot hide the queue that builds behind it (no coordinated omission: a generator
that waited for the system before issuing the next query would time only the service).

Validity follows MLPerf LoadGen: a run at a rate passes when the tail percentile of its latencies is
within the bound and LoadGen's early-stopping rule holds (``loadgen/early_stopping.cc``: with ``t``
queries over the bound, at least ``h`` under it where the binomial probability of ``t`` or fewer
overlatency queries among ``h + t``, each overlatency with probability ``1 - p``, is at most
``1 - confidence``; p = 0.99, confidence 0.99 gives 459 queries when none is over). MLPerf's own
minimums (270,336 queries and 600 s for Server) are out of reach on a 2-core host, which is what the
early-stopping rule is for; ``server_min_duration_s`` adds a duration floor where wanted.

The search: short probes (``server_probe_queries`` each) double or halve the rate until one passes
and one fails, bisect (geometrically) until the bracket is within ``server_tolerance``, then one
final run of at least the early-stopping minimum at the highest passing rate, stepping down by
``server_backoff`` when that run is not valid. Every run keeps its raw times (scheduled, issued,
completed, per query) in results.
"""

from __future__ import annotations

import math
import queue
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import binom

from portbench.errors import PortbenchError
from portbench.harness.measure import Clock, Synchronize, min_samples_for, summarize_ms
from portbench.harness.results import CellResult, Throughput
from portbench.harness.scenarios import Scenario, ScenarioContext
from portbench.harness.workload import Query

DEFAULT_SEED = 20261201
MAX_EARLY_STOPPING_QUERIES = 10_000_000
MAX_HALVINGS = 6
MIN_KEPT_UP = 0.9


class ServerSettingsError(PortbenchError, ValueError):
    """Server-scenario parameters that cannot work (non-positive bound, rate, counts)."""


@dataclass(frozen=True)
class ServerSettings:
    """How the rate search runs. Set per cell in ``params`` (names prefixed ``server_``, bound as
    ``latency_bound_ms``)."""

    latency_bound_ms: float
    percentile: float = 99.0
    confidence: float = 0.99
    workers: int = 2
    probe_queries: int = 64
    final_queries: int | None = None  # None: the early-stopping minimum for percentile/confidence
    min_duration_s: float = 0.0
    seed: int = DEFAULT_SEED
    start_rate: float | None = None  # queries per second; None: half the capacity seen in warm-up
    tolerance: float = 0.1
    max_probes: int = 14
    final_attempts: int = 3
    backoff: float = 0.9

    def __post_init__(self) -> None:
        if not self.latency_bound_ms > 0:
            raise ServerSettingsError("latency_bound_ms must be positive")
        if not 0 < self.percentile < 100 or not 0 < self.confidence < 1:
            raise ServerSettingsError(
                "server_percentile must lie in (0, 100) and server_confidence in (0, 1)"
            )
        if self.workers < 1 or self.probe_queries < 1 or self.max_probes < 1 or self.final_attempts < 1:
            raise ServerSettingsError("server workers, probe queries, probes and attempts must be positive")
        if self.final_queries is not None and self.final_queries < 1:
            raise ServerSettingsError("server_final_queries must be positive")
        if self.start_rate is not None and not self.start_rate > 0:
            raise ServerSettingsError("server_start_rate must be positive")
        if not self.tolerance > 0 or not 0 < self.backoff < 1 or self.min_duration_s < 0:
            raise ServerSettingsError(
                "need server_tolerance > 0, 0 < server_backoff < 1, server_min_duration_s >= 0"
            )

    @property
    def final_minimum(self) -> int:
        return self.final_queries or early_stopping_min_queries(0, self.percentile, self.confidence)

    @classmethod
    def from_params(cls, params: Mapping[str, Any], default_bound_ms: float | None) -> ServerSettings:
        bound = params.get("latency_bound_ms", default_bound_ms)
        if bound is None:
            raise ServerSettingsError("this task has no default latency bound: set params.latency_bound_ms")
        names = {
            "server_percentile": ("percentile", float),
            "server_confidence": ("confidence", float),
            "server_workers": ("workers", int),
            "server_probe_queries": ("probe_queries", int),
            "server_final_queries": ("final_queries", int),
            "server_min_duration_s": ("min_duration_s", float),
            "server_seed": ("seed", int),
            "server_start_rate": ("start_rate", float),
            "server_tolerance": ("tolerance", float),
            "server_max_probes": ("max_probes", int),
            "server_final_attempts": ("final_attempts", int),
            "server_backoff": ("backoff", float),
        }
        values: dict[str, Any] = {"latency_bound_ms": _number(bound, "latency_bound_ms", float)}
        for key, (name, kind) in names.items():
            if key in params:
                values[name] = _number(params[key], key, kind)
        return cls(**values)


def _number(value: Any, key: str, kind: type) -> Any:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    if not ok:
        raise ServerSettingsError(
            f"parameter {key} must be a {'whole ' if kind is int else ''}number, got {value!r}"
        )
    return kind(value)


# --- early stopping (MLPerf LoadGen) ------------------------------------------------------------


def early_stopping_min_queries(overlatency: int, percentile: float, confidence: float) -> int:
    """The fewest queries with ``overlatency`` of them over the bound for which the tail percentile
    is within the bound at ``confidence``: the smallest ``h + t`` with
    ``P(Binomial(h + t, 1 - p) <= t) <= 1 - confidence`` (LoadGen's ``MinPassingQueriesFinder``)."""
    p_over = 1.0 - percentile / 100.0

    def passes(total: int) -> bool:
        return float(binom.cdf(overlatency, total, p_over)) <= 1.0 - confidence

    low = overlatency + 1
    high = max(low, math.ceil(math.log(1.0 - confidence) / math.log(1.0 - p_over)) + overlatency)
    while not passes(high):
        high *= 2
        if high > MAX_EARLY_STOPPING_QUERIES:
            raise ServerSettingsError("early stopping needs more queries than portbench will run")
    while low < high:  # the cdf falls as the total grows: the first passing total
        mid = (low + high) // 2
        if passes(mid):
            high = mid
        else:
            low = mid + 1
    return low


@dataclass(frozen=True)
class EarlyStopping:
    """LoadGen's verdict on one run: ``passed`` when ``queries`` is at least ``needed``."""

    queries: int
    overlatency: int
    needed: int
    percentile: float
    confidence: float

    @property
    def passed(self) -> bool:
        return self.queries >= self.needed

    @property
    def more_needed(self) -> int:
        """Queries still to run, were every further one under the bound."""
        return max(0, self.needed - self.queries)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "more_needed": self.more_needed}


def early_stopping(
    latencies_ms: Sequence[float], bound_ms: float, percentile: float, confidence: float
) -> EarlyStopping:
    over = sum(1 for v in latencies_ms if v > bound_ms)
    return EarlyStopping(
        len(latencies_ms),
        over,
        early_stopping_min_queries(over, percentile, confidence),
        percentile,
        confidence,
    )


def tail_latency_ms(latencies_ms: Sequence[float], percentile: float) -> float:
    """The percentile where the sample supports it, else the maximum (never an optimistic figure)."""
    if len(latencies_ms) >= min_samples_for(percentile):
        return float(np.percentile(np.asarray(latencies_ms, dtype=np.float64), percentile))
    return float(max(latencies_ms))


# --- load generator -----------------------------------------------------------------------------


def poisson_schedule(rate: float, count: int, seed: int) -> np.ndarray:
    """Arrival offsets in seconds from the start: cumulative exponential gaps of mean ``1 / rate``."""
    if not rate > 0 or count < 1:
        raise ServerSettingsError("a Poisson schedule needs a positive rate and count")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, count)
    return np.cumsum(gaps)


@dataclass
class ServerRun:
    """One run at a target rate. Times are nanoseconds from the generator's start; ``worker`` says
    which worker served each query."""

    rate: float
    seed: int | None
    scheduled_ns: list[int]
    issued_ns: list[int]
    completed_ns: list[int]
    worker: list[int]
    samples: int

    @property
    def latencies_ms(self) -> list[float]:
        return [(done - due) / 1e6 for done, due in zip(self.completed_ns, self.scheduled_ns, strict=True)]

    @property
    def wall_s(self) -> float:
        return max(self.completed_ns) / 1e9

    def throughput(self) -> Throughput:
        return Throughput(
            samples_per_s=self.samples / self.wall_s, queries_per_s=len(self.completed_ns) / self.wall_s
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_qps": self.rate,
            "seed": self.seed,
            "queries": len(self.scheduled_ns),
            "achieved_qps": len(self.completed_ns) / self.wall_s,
            "scheduled_s": [ns / 1e9 for ns in self.scheduled_ns],
            "issued_s": [ns / 1e9 for ns in self.issued_ns],
            "completed_s": [ns / 1e9 for ns in self.completed_ns],
            "worker": list(self.worker),
            "latency_ms": self.latencies_ms,
        }


def run_server(
    worker_queries: Sequence[Sequence[Query]],
    schedule_s: Sequence[float] | np.ndarray,
    *,
    rate: float,
    seed: int | None = None,
    clock: Clock = time.perf_counter_ns,
    sleep: Callable[[float], None] = time.sleep,
    synchronize: Synchronize | None = None,
) -> ServerRun:
    """Issue query ``i`` at ``schedule_s[i]`` to whichever of the workers is free; query ``i`` is
    input ``i % len(queries)`` of that worker's own list (each list bound to its own predictors)."""
    if not worker_queries or any(not qs for qs in worker_queries):
        raise ValueError("the server scenario needs at least one worker, each with queries")
    count = len(schedule_s)
    scheduled = [round(s * 1e9) for s in schedule_s]
    issued = [0] * count
    completed = [0] * count
    served_by = [0] * count
    samples = [0] * count
    pending: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    errors: list[BaseException] = []
    failed = threading.Event()
    start = clock()

    def generate() -> None:
        for index, due in enumerate(scheduled):
            while (wait := start + due - clock()) > 0 and not failed.is_set():
                sleep(wait / 1e9)
            if failed.is_set():
                break
            issued[index] = clock() - start
            pending.put(index)
        for _ in worker_queries:
            pending.put(None)

    def serve(number: int) -> None:
        queries = worker_queries[number]
        try:
            while (index := pending.get()) is not None:
                query = queries[index % len(queries)]
                query.run()
                if synchronize is not None:
                    synchronize()
                completed[index] = clock() - start
                served_by[index] = number
                samples[index] = query.samples
        except BaseException as exc:
            errors.append(exc)
            failed.set()

    threads = [threading.Thread(target=generate, name="portbench-loadgen")] + [
        threading.Thread(target=serve, args=(n,), name=f"portbench-server-{n}")
        for n in range(len(worker_queries))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return ServerRun(rate, seed, scheduled, issued, completed, served_by, sum(samples))


# --- the search ---------------------------------------------------------------------------------

Probe = Callable[[float, int, int], ServerRun]  # (rate, queries, seed) -> run


@dataclass
class ProbeRecord:
    rate: float
    queries: int
    seed: int
    tail_ms: float
    passed: bool
    achieved_qps: float


@dataclass
class SearchResult:
    """The search's probes, the final run at the rate found (None when no rate met the bound) and
    whether the rate was bracketed from above (False: the system never saturated within the probes)."""

    settings: ServerSettings
    probes: list[ProbeRecord] = field(default_factory=list)
    final: ServerRun | None = None
    final_attempts: list[dict[str, Any]] = field(default_factory=list)
    early: EarlyStopping | None = None
    saturated: bool = False

    @property
    def valid(self) -> bool:
        return (
            self.final is not None
            and self.early is not None
            and self.early.passed
            and self._tail_ok(self.final)
        )

    def _tail_ok(self, run: ServerRun) -> bool:
        return tail_latency_ms(run.latencies_ms, self.settings.percentile) <= self.settings.latency_bound_ms

    @property
    def rate_at_bound(self) -> float | None:
        return self.final.rate if self.valid and self.final is not None else None


def find_rate(probe: Probe, settings: ServerSettings, start_rate: float) -> SearchResult:
    """Bracket (double / halve), bisect geometrically to ``settings.tolerance``, confirm with a final
    run of at least the early-stopping minimum, stepping the rate down while that run is not valid."""
    found = SearchResult(settings)
    seed = settings.seed

    def passes(rate: float) -> bool:
        nonlocal seed
        seed += 1
        run = probe(rate, settings.probe_queries, seed)
        # A probe only steers the search (the final run is judged by early stopping): its interpolated
        # percentile, not its maximum, so one scheduler hiccup on a loaded host does not halve the rate.
        tail = float(np.percentile(np.asarray(run.latencies_ms, dtype=np.float64), settings.percentile))
        # Short probes hide overload while the backlog is still under the bound: a system that did not
        # keep up with the arrivals (completions lagging the schedule by more than a tenth) fails.
        kept_up = run.throughput().queries_per_s >= MIN_KEPT_UP * len(run.scheduled_ns) / (
            max(run.scheduled_ns) / 1e9
        )
        ok = tail <= settings.latency_bound_ms and kept_up
        found.probes.append(
            ProbeRecord(rate, settings.probe_queries, seed, tail, ok, run.throughput().queries_per_s)
        )
        return ok

    low: float | None = None
    high: float | None = None
    rate = start_rate
    floor = start_rate / 2**MAX_HALVINGS  # below this, probes take too long: no rate meets the bound
    while len(found.probes) < settings.max_probes and (low is None or high is None) and rate >= floor:
        if passes(rate):
            low = rate
            rate *= 2
        else:
            high = rate
            rate /= 2
    while low is not None and high is not None and high / low > 1 + settings.tolerance:
        if len(found.probes) >= settings.max_probes:
            break
        middle = math.sqrt(low * high)
        if passes(middle):
            low = middle
        else:
            high = middle
    found.saturated = high is not None
    if low is None:
        return found

    rate = low
    for _ in range(settings.final_attempts):
        seed += 1
        count = max(settings.final_minimum, math.ceil(rate * settings.min_duration_s))
        run = probe(rate, count, seed)
        early = early_stopping(
            run.latencies_ms, settings.latency_bound_ms, settings.percentile, settings.confidence
        )
        tail = tail_latency_ms(run.latencies_ms, settings.percentile)
        found.final, found.early = run, early
        found.final_attempts.append(
            {
                "target_qps": rate,
                "queries": count,
                "seed": seed,
                "tail_ms": tail,
                "early_stopping": early.to_dict(),
            }
        )
        if found.valid:
            break
        rate *= settings.backoff
    return found


# --- the scenario -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerWarmup:
    queries: int
    seconds: float
    service_s: float  # median service time of one query on one worker, unloaded


def _warm_up(
    worker_queries: Sequence[Sequence[Query]],
    synchronize: Synchronize | None,
    clock: Clock = time.perf_counter_ns,
) -> ServerWarmup:
    """Run every input once on every worker's predictors (first-shape costs stay out), then one timed
    pass on the first worker for the service time that seeds the search."""
    start = clock()
    count = 0
    for queries in worker_queries:
        for query in queries:
            query.run()
            if synchronize is not None:
                synchronize()
            count += 1
    times = []
    for query in worker_queries[0]:
        t0 = clock()
        query.run()
        if synchronize is not None:
            synchronize()
        times.append((clock() - t0) / 1e9)
    count += len(times)
    return ServerWarmup(count, (clock() - start) / 1e9, statistics.median(times))


def search_server(
    worker_queries: Sequence[Sequence[Query]],
    settings: ServerSettings,
    *,
    synchronize: Synchronize | None = None,
) -> tuple[SearchResult, ServerWarmup]:
    """Warm up, then :func:`find_rate` over real runs of ``worker_queries``."""
    warmup = _warm_up(worker_queries, synchronize)
    start = settings.start_rate or max(0.5 * len(worker_queries) / max(warmup.service_s, 1e-6), 1e-3)

    def probe(rate: float, count: int, seed: int) -> ServerRun:
        schedule = poisson_schedule(rate, count, seed)
        return run_server(worker_queries, schedule.tolist(), rate=rate, seed=seed, synchronize=synchronize)

    return find_rate(probe, settings, start), warmup


class ServerScenario(Scenario):
    name = "server"
    description = (
        "Poisson arrivals; the highest rate whose p99 latency (from scheduled arrival) meets a bound"
    )

    def record(self, context: ScenarioContext, result: CellResult) -> list[int]:
        prepared = context.prepared
        settings = ServerSettings.from_params(context.plan.spec.params, prepared.server_latency_bound_ms)
        worker_queries = [
            prepared.stream_queries({role: s.clone() for role, s in context.sessions.items()})
            for _ in range(settings.workers)
        ]
        if context.output_tap is not None:
            worker_queries = [context.output_tap.wrap(queries) for queries in worker_queries]
        found, warmup = search_server(worker_queries, settings, synchronize=context.backend.synchronize)
        result.params["latency_bound_ms"] = settings.latency_bound_ms
        result.params["server_workers"] = settings.workers
        record_search(found, warmup, result)
        return sorted({q.samples for queries in worker_queries for q in queries})


def record_search(found: SearchResult, warmup: ServerWarmup, result: CellResult) -> None:
    """Headline figures from the final run; every probe and every final attempt kept raw."""
    settings = found.settings
    summary: dict[str, Any] = {
        "latency_bound_ms": settings.latency_bound_ms,
        "percentile": settings.percentile,
        "rate_at_bound_qps": found.rate_at_bound,
        "valid": found.valid,
        "saturated": found.saturated,
        "warmup_service_ms": warmup.service_s * 1e3,
        "settings": asdict(settings),
        "probes": [asdict(p) for p in found.probes],
        "final_attempts": found.final_attempts,
        "early_stopping": found.early.to_dict() if found.early else None,
        "tail_ms": None,
        "p99_ms": None,
    }
    if found.final is not None:
        latencies = found.final.latencies_ms
        result.latency_ms = summarize_ms(latencies)
        result.throughput = found.final.throughput()
        result.raw["latency_ms"] = latencies
        result.raw["server_final"] = found.final.to_dict()
        summary["tail_ms"] = tail_latency_ms(latencies, settings.percentile)
        summary["p99_ms"] = result.latency_ms.p99
        summary["achieved_qps"] = result.throughput.queries_per_s
    result.warmup = {"queries": warmup.queries, "seconds": warmup.seconds, "stable": None}
    result.server = summary
    if not found.valid:
        why = (
            "no probed rate met the bound"
            if found.final is None
            else "the final run did not meet the bound with early stopping"
        )
        summary["reason"] = why
