"""The ``server`` scenario (MLPerf's name): Poisson arrivals, latency from the scheduled arrival, and a
search for the highest rate whose tail latency stays under a bound.

A load generator thread, separate from the system under test, owns the clock: it draws a seeded
Poisson schedule for the target rate (exponential inter-arrival gaps) and puts each query on a queue
at its scheduled time. ``workers`` threads, each on its own cloned predictors, take queries from the
queue and only predict; worker ``n`` is one OS thread for the whole search (:class:`WorkerThreads`).
A query's latency runs from its *scheduled* arrival to its completion, so a system that stalls
cannot hide the queue that builds behind it (no coordinated omission: a generator that waited for
the system before issuing the next query would time only the service).

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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np
from scipy.stats import binom

from portbench.errors import PortbenchError
from portbench.harness.energy import EnergyMeter, EnergyWindow, energy_record
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
    # Seconds the search (probes and final runs) may take; None: no cap.
    search_budget_s: float | None = 600.0

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
        if self.search_budget_s is not None and not self.search_budget_s > 0:
            raise ServerSettingsError("server_search_budget_s must be positive")
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
            "server_search_budget_s": ("search_budget_s", float),
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


def allowed_overlatency(queries: int, percentile: float) -> int:
    """Queries a run of ``queries`` may have over the bound while its ``percentile`` stays within it
    (nearest rank): none under 100 queries at p99."""
    return math.floor(queries * (1.0 - percentile / 100.0) + 1e-9)


def final_allowed_overlatency(queries: int, percentile: float, confidence: float) -> int:
    """The most overlatency queries with which a final run of ``queries`` can still pass early
    stopping (-1 when even none cannot: the run is shorter than the early-stopping minimum)."""
    over = -1
    while early_stopping_min_queries(over + 1, percentile, confidence) <= queries:
        over += 1
    return over


# --- load generator -----------------------------------------------------------------------------

STOP_CHECK_NS = 5_000_000  # how often the generator looks for queries already over the bound


def poisson_schedule(rate: float, count: int, seed: int) -> np.ndarray:
    """Arrival offsets in seconds from the start: cumulative exponential gaps of mean ``1 / rate``."""
    if not rate > 0 or count < 1:
        raise ServerSettingsError("a Poisson schedule needs a positive rate and count")
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, count)
    return np.cumsum(gaps)


T = TypeVar("T")


class WorkerThreads:
    """One long-lived OS thread per server worker: worker ``n``'s warm-up, probes and final runs all
    run on thread ``n``, for as long as the search lasts.

    Fresh threads per run would be wrong twice over on Paddle's oneDNN CPU kernels, which keep
    primitives and their memory per OS thread: each new thread pays primitive creation inside the
    timed run, and Paddle 3.2.2's OCR det predictors driven from one set of new threads after another
    fail with ``could not execute a primitive`` (measured here: at the third set of two threads;
    twenty sets of runs on the same two threads pass)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("the server scenario needs at least one worker thread")
        self._executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"portbench-server-{n}")
            for n in range(count)
        ]

    def __len__(self) -> int:
        return len(self._executors)

    def submit(self, number: int, job: Callable[[], T]) -> Future[T]:
        return self._executors[number].submit(job)

    def close(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True)

    def __enter__(self) -> WorkerThreads:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class ServerRun:
    """One run at a target rate. Times are nanoseconds from the generator's start, for the queries
    that completed; ``worker`` says which worker served each. A run stopped early (``stopped`` says
    why) also keeps, for each query it never served, how long it had waited when it was dropped: a
    lower bound of its latency."""

    rate: float
    seed: int | None
    scheduled_ns: list[int]
    issued_ns: list[int]
    completed_ns: list[int]
    worker: list[int]
    samples: int
    planned: int | None = None  # queries scheduled; None: all of them completed
    stopped: str | None = None
    unserved_waited_ms: list[float] = field(default_factory=list)

    @property
    def latencies_ms(self) -> list[float]:
        return [(done - due) / 1e6 for done, due in zip(self.completed_ns, self.scheduled_ns, strict=True)]

    @property
    def planned_queries(self) -> int:
        return self.planned if self.planned is not None else len(self.scheduled_ns)

    @property
    def wall_s(self) -> float:
        return max(self.completed_ns) / 1e9 if self.completed_ns else 0.0

    def overlatency(self, bound_ms: float) -> int:
        """Queries over the bound: served ones, and dropped ones that had already waited past it."""
        served = sum(1 for v in self.latencies_ms if v > bound_ms)
        return served + sum(1 for v in self.unserved_waited_ms if v > bound_ms)

    def tail_floor_ms(self) -> float:
        """The largest latency seen, counting a dropped query's wait (a lower bound on its latency)."""
        return max([*self.latencies_ms, *self.unserved_waited_ms], default=0.0)

    def throughput(self) -> Throughput:
        wall = self.wall_s or float("inf")
        return Throughput(samples_per_s=self.samples / wall, queries_per_s=len(self.completed_ns) / wall)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_qps": self.rate,
            "seed": self.seed,
            "queries": len(self.scheduled_ns),
            "planned_queries": self.planned_queries,
            "stopped": self.stopped,
            "achieved_qps": self.throughput().queries_per_s,
            "scheduled_s": [ns / 1e9 for ns in self.scheduled_ns],
            "issued_s": [ns / 1e9 for ns in self.issued_ns],
            "completed_s": [ns / 1e9 for ns in self.completed_ns],
            "worker": list(self.worker),
            "latency_ms": self.latencies_ms,
            "unserved_waited_ms": list(self.unserved_waited_ms),
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
    bound_ms: float | None = None,
    stop_after_over: int | None = None,
    threads: WorkerThreads | None = None,
) -> ServerRun:
    """Issue query ``i`` at ``schedule_s[i]`` to whichever of the workers is free; query ``i`` is
    input ``i % len(queries)`` of that worker's own list (each list bound to its own predictors).
    Worker ``n`` serves on ``threads``' thread ``n`` (None: threads of this run's own).

    With ``bound_ms`` and ``stop_after_over`` the run stops as soon as more than ``stop_after_over``
    queries are known to be over the bound — served over it, or still unserved and older than it —
    when its verdict can no longer change: queries in service finish, queued ones are dropped."""
    if not worker_queries or any(not qs for qs in worker_queries):
        raise ValueError("the server scenario needs at least one worker, each with queries")
    if threads is not None and len(threads) != len(worker_queries):
        raise ValueError(f"{len(worker_queries)} workers need as many threads, not {len(threads)}")
    count = len(schedule_s)
    scheduled = [round(s * 1e9) for s in schedule_s]
    issued = [0] * count
    completed = [0] * count
    served_by = [0] * count
    samples = [0] * count
    done = [False] * count
    unserved_waited_ms: list[float] = []
    pending: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    errors: list[BaseException] = []
    failed = threading.Event()
    stopped = threading.Event()
    watch = bound_ms is not None and stop_after_over is not None
    bound_ns = round((bound_ms or 0.0) * 1e6)
    lock = threading.Lock()  # guards done, the over-the-bound count and the oldest-unfinished index
    state = {"over_served": 0, "issued": 0, "oldest": 0, "finished": 0}
    reason: list[str] = []
    start = clock()

    def known_over(now: int) -> int:
        with lock:
            while state["oldest"] < state["issued"] and done[state["oldest"]]:
                state["oldest"] += 1
            late = 0
            index = state["oldest"]
            while index < state["issued"] and now - scheduled[index] > bound_ns:
                late += not done[index]
                index += 1
            return state["over_served"] + late

    def check() -> None:
        if watch and not stopped.is_set():
            over = known_over(clock() - start)
            if over > (stop_after_over or 0):
                reason.append(
                    f"stopped after {state['finished']} of {count} queries: {over} over the "
                    f"{bound_ms:g} ms bound, more than the {stop_after_over} the verdict allows"
                )
                stopped.set()

    def generate() -> None:
        for index, due in enumerate(scheduled):
            while (wait := start + due - clock()) > 0 and not failed.is_set() and not stopped.is_set():
                sleep((min(wait, STOP_CHECK_NS) if watch else wait) / 1e9)
                check()
            if failed.is_set() or stopped.is_set():
                break
            issued[index] = clock() - start
            with lock:
                state["issued"] = index + 1
            pending.put(index)
            check()
        while watch and not (failed.is_set() or stopped.is_set()) and state["finished"] < state["issued"]:
            sleep(STOP_CHECK_NS / 1e9)
            check()
        for _ in worker_queries:
            pending.put(None)

    def serve(number: int) -> None:
        queries = worker_queries[number]
        try:
            while (index := pending.get()) is not None:
                if stopped.is_set() or failed.is_set():
                    with lock:
                        unserved_waited_ms.append((clock() - start - scheduled[index]) / 1e6)
                    continue
                query = queries[index % len(queries)]
                query.run()
                if synchronize is not None:
                    synchronize()
                completed[index] = clock() - start
                served_by[index] = number
                samples[index] = query.samples
                with lock:
                    done[index] = True
                    state["finished"] += 1
                    state["over_served"] += completed[index] - scheduled[index] > bound_ns
        except BaseException as exc:
            errors.append(exc)
            failed.set()

    with ExitStack() as owned:
        pool = threads if threads is not None else owned.enter_context(WorkerThreads(len(worker_queries)))
        generator = threading.Thread(target=generate, name="portbench-loadgen")
        generator.start()
        serving = [pool.submit(n, partial(serve, n)) for n in range(len(worker_queries))]
        generator.join()
        for future in serving:
            future.result()  # serve keeps its own errors
    if errors:
        raise errors[0]
    if not reason:
        return ServerRun(rate, seed, scheduled, issued, completed, served_by, sum(samples))
    # Queries never issued were due after the stop: they had not waited at all.
    kept = [i for i in range(count) if done[i]]
    return ServerRun(
        rate,
        seed,
        [scheduled[i] for i in kept],
        [issued[i] for i in kept],
        [completed[i] for i in kept],
        [served_by[i] for i in kept],
        sum(samples[i] for i in kept),
        planned=count,
        stopped=reason[0],
        unserved_waited_ms=unserved_waited_ms,
    )


# --- the search ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRequest:
    """One run the search asks for: ``queries`` Poisson arrivals at ``rate`` from ``seed``;
    ``stop_after_over`` ends it once more overlatency queries than that are known (None: run all).
    ``final`` marks a final run, the only kind whose energy is metered."""

    rate: float
    queries: int
    seed: int
    bound_ms: float
    stop_after_over: int | None = None
    final: bool = False


Probe = Callable[[RunRequest], ServerRun]
MonotonicSeconds = Callable[[], float]


@dataclass
class ProbeRecord:
    rate: float
    queries: int  # planned
    seed: int
    tail_ms: float  # percentile of a full probe; for a stopped one the largest latency known (a floor)
    passed: bool
    achieved_qps: float
    overlatency: int = 0
    completed: int = 0
    stopped: str | None = None


@dataclass
class SearchResult:
    """The search's probes, its final attempts (every run kept; ``final`` is the one reported: the
    valid one, else the closest to valid) and how the search ended.

    ``saturated``: the rate was bracketed from above (False: the system never failed a probe);
    ``stopped_by``: what ended the probing (bracket within tolerance, max_probes, the search budget,
    the low-load floor, or no rate reached)."""

    settings: ServerSettings
    probes: list[ProbeRecord] = field(default_factory=list)
    final: ServerRun | None = None
    final_index: int | None = None  # which of final_attempts / final_runs ``final`` is
    final_runs: list[ServerRun] = field(default_factory=list)
    final_attempts: list[dict[str, Any]] = field(default_factory=list)
    early: EarlyStopping | None = None
    saturated: bool = False
    stopped_by: str = ""
    bracket: tuple[float | None, float | None] = (None, None)
    spent_s: float = 0.0
    capacity_qps: float | None = None
    floor_qps: float | None = None
    unrun_final: dict[str, float] | None = None  # the final run the budget left no room for

    @property
    def valid(self) -> bool:
        return (
            self.final is not None
            and self.early is not None
            and self.early.passed
            and self.final.stopped is None
            and self._tail_ok(self.final)
        )

    def _tail_ok(self, run: ServerRun) -> bool:
        return tail_latency_ms(run.latencies_ms, self.settings.percentile) <= self.settings.latency_bound_ms

    @property
    def rate_at_bound(self) -> float | None:
        return self.final.rate if self.valid and self.final is not None else None

    @property
    def budget_exhausted(self) -> bool:
        return self.stopped_by == "search_budget_s"

    def best_probe(self) -> ProbeRecord | None:
        """Without a final run: the highest passing probe, else the one closest to the bound (the
        smallest tail, a floor for a stopped probe; the higher rate on a tie)."""
        passed = [p for p in self.probes if p.passed]
        if passed:
            return max(passed, key=lambda p: p.rate)
        if not self.probes:
            return None
        return min(self.probes, key=lambda p: (p.tail_ms, -p.rate))


NEGLIGIBLE_LOAD = 0.05  # utilisation below which queueing cannot explain a tail over the bound


def find_rate(
    probe: Probe,
    settings: ServerSettings,
    start_rate: float,
    *,
    capacity_qps: float | None = None,
    clock: MonotonicSeconds = time.monotonic,
) -> SearchResult:
    """Bracket (double / halve), bisect geometrically to ``settings.tolerance``, confirm with a final
    run of at least the early-stopping minimum, stepping the rate down while that run is not valid.

    Probes end as soon as their verdict is known (more overlatency queries than the percentile
    allows), so an overloaded rate costs seconds, not a backlog. ``settings.search_budget_s`` caps
    the whole search: no probe starts once it is spent, and no final run that cannot end within
    it (its arrivals alone take queries / rate) starts at all. Halving stops at
    the floor where the workers would be busy under ``NEGLIGIBLE_LOAD`` of ``capacity_qps`` (the
    workers / single-stream service time): a tail over the bound there is the service time's own."""
    found = SearchResult(settings, capacity_qps=capacity_qps)
    seed = settings.seed
    began = clock()
    budget = settings.search_budget_s

    def spent() -> float:
        return clock() - began

    def final_queries(rate: float) -> int:
        return max(settings.final_minimum, math.ceil(rate * settings.min_duration_s))

    def no_room_for(rate: float, passing: float | None) -> bool:
        """Whether a probe at ``rate`` (its arrivals take probe_queries / rate) would leave too little
        of the budget for the final run at the highest passing rate so far."""
        if budget is None:
            return False
        reserve = final_queries(passing) / passing if passing is not None else 0.0
        return spent() + settings.probe_queries / rate + reserve > budget

    def passes(rate: float) -> bool:
        nonlocal seed
        seed += 1
        allowed = allowed_overlatency(settings.probe_queries, settings.percentile)
        run = probe(RunRequest(rate, settings.probe_queries, seed, settings.latency_bound_ms, allowed))
        over = run.overlatency(settings.latency_bound_ms)
        if run.stopped is None:
            latencies = np.asarray(run.latencies_ms, dtype=np.float64)
            tail = float(np.percentile(latencies, settings.percentile))
            # Short probes hide overload while the backlog is still under the bound: a system that did
            # not keep up with the arrivals (completions lagging the schedule by a tenth) fails.
            kept_up = run.throughput().queries_per_s >= MIN_KEPT_UP * len(run.scheduled_ns) / (
                max(run.scheduled_ns) / 1e9
            )
            # The count, not an interpolated percentile: the final run's early stopping forgives no
            # more, so a probe that passed with one query over would only send it to a doomed final.
            ok = over <= allowed and kept_up
        else:
            tail, ok = run.tail_floor_ms(), False
        found.probes.append(
            ProbeRecord(
                rate, settings.probe_queries, seed, tail, ok, run.throughput().queries_per_s,
                overlatency=over, completed=len(run.completed_ns), stopped=run.stopped,
            )
        )  # fmt: skip
        return ok

    low: float | None = None
    high: float | None = None
    rate = start_rate
    floor = start_rate / 2**MAX_HALVINGS  # below this, probes take too long: no rate meets the bound
    if capacity_qps is not None:
        # The floor bounds the halving; the start rate itself (a suite's server_start_rate may sit
        # below 5 % load on a fast model) is always probed.
        floor = min(max(floor, NEGLIGIBLE_LOAD * capacity_qps), start_rate)
    found.floor_qps = floor
    stopped_by = ""
    while low is None or high is None:
        if len(found.probes) >= settings.max_probes:
            stopped_by = "max_probes"
        elif rate < floor:
            stopped_by = "floor"
        elif no_room_for(rate, low):
            stopped_by = "search_budget_s"
        if stopped_by:
            break
        if passes(rate):
            low = rate
            rate *= 2
        else:
            high = rate
            rate /= 2
    while not stopped_by and low is not None and high is not None:
        if high / low <= 1 + settings.tolerance:
            stopped_by = "tolerance"
        elif len(found.probes) >= settings.max_probes:
            stopped_by = "max_probes"
        elif no_room_for(math.sqrt(low * high), low):
            stopped_by = "search_budget_s"
        else:
            middle = math.sqrt(low * high)
            if passes(middle):
                low = middle
            else:
                high = middle
    found.saturated = high is not None
    found.bracket = (low, high)
    found.stopped_by = stopped_by
    if low is None:  # the halving ran into the floor, max_probes or the budget
        found.spent_s = spent()
        return found

    rate = low
    for attempt in range(settings.final_attempts):
        count = final_queries(rate)
        # The arrivals alone take count / rate: a final run that cannot end within the budget is not
        # started (a cut-short one could not pass early stopping anyway).
        if budget is not None and spent() + count / rate > budget:
            found.stopped_by = "search_budget_s"
            found.unrun_final = {"target_qps": rate, "queries": count, "expected_s": count / rate}
            break
        seed += 1
        last = attempt == settings.final_attempts - 1
        # Every attempt but the last stops once early stopping cannot pass; the last runs in full so
        # an invalid result still reports a whole latency distribution.
        allowed = final_allowed_overlatency(count, settings.percentile, settings.confidence)
        # A run too short to pass at all (server_final_queries under the minimum) still runs in full.
        stop_after = None if last or allowed < 0 else allowed
        run = probe(RunRequest(rate, count, seed, settings.latency_bound_ms, stop_after, final=True))
        early = early_stopping(
            run.latencies_ms, settings.latency_bound_ms, settings.percentile, settings.confidence
        )
        tail = tail_latency_ms(run.latencies_ms, settings.percentile) if run.completed_ns else None
        found.final_runs.append(run)
        found.final_attempts.append(
            {
                "target_qps": rate,
                "queries": count,
                "completed": len(run.completed_ns),
                "stopped": run.stopped,
                "seed": seed,
                "tail_ms": tail,
                "overlatency": run.overlatency(settings.latency_bound_ms),
                "early_stopping": early.to_dict(),
            }
        )
        found.final, found.early, found.final_index = run, early, attempt
        if found.valid:
            break
        rate *= settings.backoff
    if not found.valid and found.final_runs:
        _report_closest_attempt(found)
    found.spent_s = spent()
    return found


def _report_closest_attempt(found: SearchResult) -> None:
    """No attempt was valid: report the complete one with the smallest share of queries over the
    bound (the higher rate on a tie); a stopped attempt only where none completed."""
    bound = found.settings.latency_bound_ms

    def closeness(index: int) -> tuple[bool, float, float]:
        run = found.final_runs[index]
        share = run.overlatency(bound) / max(run.planned_queries, 1)
        return (run.stopped is not None, share, -run.rate)

    best = min(range(len(found.final_runs)), key=closeness)
    run = found.final_runs[best]
    found.final, found.final_index = run, best
    found.early = early_stopping(
        run.latencies_ms, bound, found.settings.percentile, found.settings.confidence
    )


def invalid_reason(found: SearchResult, warmup: ServerWarmup | None = None) -> str | None:
    """Why no rate is reported, in a sentence a report can show; None for a valid result."""
    if found.valid:
        return None
    settings = found.settings
    bound = settings.latency_bound_ms
    service = (
        f"; single-stream service time {warmup.service_s * 1e3:.0f} ms median, "
        f"{warmup.service_max_s * 1e3:.0f} ms max"
        if warmup is not None
        else ""
    )
    if found.final is None and found.unrun_final is not None:
        unrun = found.unrun_final
        return (
            f"{unrun['target_qps']:.3g} queries/s passed its probes but was not confirmed: its final run "
            f"({unrun['queries']:.0f} queries, at least {unrun['expected_s']:.0f} s) does not fit the "
            f"search budget ({settings.search_budget_s:g} s, {found.spent_s:.0f} s spent){service}"
        )
    if found.final is None:
        best = found.best_probe()
        if best is None:
            return f"no probe ran ({found.stopped_by} reached first)"
        why = {
            "floor": f"halving stopped at {found.floor_qps:.3g} queries/s, where the workers are busy "
            f"under {NEGLIGIBLE_LOAD:.0%} of the time: queueing cannot explain the tail",
            "search_budget_s": f"the search budget ({settings.search_budget_s:g} s) was spent",
            "max_probes": f"server_max_probes ({settings.max_probes}) were spent",
        }.get(found.stopped_by, found.stopped_by)
        over = (
            f"{best.overlatency} of {best.queries} queries over it"
            if best.stopped is None
            else f"{best.overlatency} queries over it when it stopped "
            f"({best.completed} of {best.queries} served)"
        )
        return (
            f"no probed rate met the {bound:g} ms bound: the closest, {best.rate:.3g} queries/s, had "
            f"{over} (largest {best.tail_ms:.0f} ms); {why}{service}"
        )
    early = found.early
    assert early is not None
    run = found.final
    tail = tail_latency_ms(run.latencies_ms, settings.percentile) if run.completed_ns else float("nan")
    stopped = f", {run.stopped}" if run.stopped else ""
    return (
        f"the closest final run, {run.rate:.3g} queries/s, had {early.overlatency} of {early.queries} "
        f"queries over the {bound:g} ms bound (p{settings.percentile:g} {tail:.0f} ms){stopped}; early "
        f"stopping at confidence {settings.confidence:g} needs {early.needed} queries with that many "
        f"over{service}"
    )


# --- the scenario -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerWarmup:
    queries: int
    seconds: float
    service_s: float  # median service time of one query on one worker, unloaded
    service_max_s: float = 0.0


def _warm_up(
    worker_queries: Sequence[Sequence[Query]],
    synchronize: Synchronize | None,
    threads: WorkerThreads,
    clock: Clock = time.perf_counter_ns,
) -> ServerWarmup:
    """Run every input once on every worker's predictors, on that worker's own thread (first-shape
    and per-thread primitive costs stay out of the probes), then one timed pass on the first worker
    for the single-stream service time that seeds the search.

    One worker after another, never at once: cloned Paddle predictors share their weights and
    oneDNN's first call of a shape may reorder them, so first calls are kept apart."""

    def timed_pass(queries: Sequence[Query]) -> list[float]:
        times = []
        for query in queries:
            t0 = clock()
            query.run()
            if synchronize is not None:
                synchronize()
            times.append((clock() - t0) / 1e9)
        return times

    start = clock()
    count = 0
    for number, queries in enumerate(worker_queries):
        count += len(threads.submit(number, partial(timed_pass, queries)).result())
    times = threads.submit(0, partial(timed_pass, worker_queries[0])).result()
    count += len(times)
    return ServerWarmup(count, (clock() - start) / 1e9, statistics.median(times), max(times))


TimedWindow = Callable[[], AbstractContextManager[object]]


def search_server(
    worker_queries: Sequence[Sequence[Query]],
    settings: ServerSettings,
    *,
    synchronize: Synchronize | None = None,
    final_window: TimedWindow | None = None,
) -> tuple[SearchResult, ServerWarmup]:
    """Warm up, then :func:`find_rate` over real runs of ``worker_queries``; each final run (never a
    probe) runs inside ``final_window()`` — the energy meter's window."""
    with WorkerThreads(len(worker_queries)) as threads:
        warmup = _warm_up(worker_queries, synchronize, threads)
        capacity = len(worker_queries) / max(warmup.service_s, 1e-6)
        start = settings.start_rate or max(0.5 * capacity, 1e-3)

        def probe(request: RunRequest) -> ServerRun:
            schedule = poisson_schedule(request.rate, request.queries, request.seed)

            def run() -> ServerRun:
                return run_server(
                    worker_queries, schedule.tolist(), rate=request.rate, seed=request.seed,
                    synchronize=synchronize, bound_ms=request.bound_ms,
                    stop_after_over=request.stop_after_over, threads=threads,
                )  # fmt: skip

            if request.final and final_window is not None:
                with final_window():
                    return run()
            return run()

        return find_rate(probe, settings, start, capacity_qps=capacity), warmup


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
        meter = context.meter if context.meter is not None else EnergyMeter([])
        first_window = len(meter.windows)
        found, warmup = search_server(
            worker_queries, settings, synchronize=context.backend.synchronize, final_window=meter.window
        )
        result.params["latency_bound_ms"] = settings.latency_bound_ms
        result.params["server_workers"] = settings.workers
        record_search(found, warmup, result)
        result.energy = server_energy(meter, meter.windows[first_window:], found)
        return sorted({q.samples for queries in worker_queries for q in queries})


def server_energy(meter: EnergyMeter, windows: Sequence[EnergyWindow], found: SearchResult) -> dict[str, Any]:
    """Energy of the reported final run (one meter window per final attempt, in order); probes are
    never metered, so a search without a final run has no figure, and says why."""
    if found.final is None or found.final_index is None:
        return energy_record(
            meter, None, 0, queries=0,
            absent_reason="the search ended without a final run (see server.reason); probes are not metered",
        )  # fmt: skip
    window = windows[found.final_index]
    return energy_record(meter, window, found.final.samples, queries=len(found.final.completed_ns))


def record_search(found: SearchResult, warmup: ServerWarmup, result: CellResult) -> None:
    """Headline figures from the final run; every probe and every final attempt kept raw."""
    settings = found.settings
    low, high = found.bracket
    summary: dict[str, Any] = {
        "latency_bound_ms": settings.latency_bound_ms,
        "percentile": settings.percentile,
        "rate_at_bound_qps": found.rate_at_bound,
        "valid": found.valid,
        "saturated": found.saturated,
        "warmup_service_ms": warmup.service_s * 1e3,
        "warmup_service_max_ms": warmup.service_max_s * 1e3,
        "settings": asdict(settings),
        "search": {
            "search_budget_s": settings.search_budget_s,
            "spent_s": found.spent_s,
            "budget_exhausted": found.budget_exhausted,
            "stopped_by": found.stopped_by,
            "bracket_qps": [low, high],
            "capacity_estimate_qps": found.capacity_qps,
            "floor_qps": found.floor_qps,
        },
        "probes": [asdict(p) for p in found.probes],
        "final_attempts": found.final_attempts,
        "reported_attempt": found.final_index,
        "early_stopping": found.early.to_dict() if found.early else None,
        "tail_ms": None,
        "p99_ms": None,
        "best_rate_qps": found.rate_at_bound,
        "best_tail_ms": None,
    }
    if found.final is not None and found.final.completed_ns:
        latencies = found.final.latencies_ms
        result.latency_ms = summarize_ms(latencies)
        result.throughput = found.final.throughput()
        result.raw["latency_ms"] = latencies
        result.raw["server_final"] = found.final.to_dict()
        summary["tail_ms"] = tail_latency_ms(latencies, settings.percentile)
        summary["p99_ms"] = result.latency_ms.p99
        summary["achieved_qps"] = result.throughput.queries_per_s
        summary["best_rate_qps"] = found.final.rate
        summary["best_tail_ms"] = summary["tail_ms"]
    elif (best := found.best_probe()) is not None:
        summary["best_rate_qps"] = best.rate
        summary["best_tail_ms"] = best.tail_ms
    result.warmup = {"queries": warmup.queries, "seconds": warmup.seconds, "stable": None}
    result.server = summary
    reason = invalid_reason(found, warmup)
    if reason is not None:
        summary["reason"] = reason
    elif found.budget_exhausted:
        above = "no failing rate" if high is None else f"{high:.3g} queries/s failing"
        summary["note"] = (
            f"the search budget ({settings.search_budget_s:g} s) stopped the search with {low:.3g} "
            f"queries/s passing and {above}: the rate is valid but may be below the capacity"
        )
