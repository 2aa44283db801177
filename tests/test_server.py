"""The server scenario: Poisson load generator, scheduled-time latency, early stopping, rate search."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portbench.backends.power import Availability, PowerDomain, PowerSource
from portbench.harness.energy import EnergyMeter
from portbench.harness.results import CellResult
from portbench.harness.scenarios import ScenarioContext, scenario_names
from portbench.harness.server import (
    RunRequest,
    SearchResult,
    ServerRun,
    ServerScenario,
    ServerSettings,
    ServerSettingsError,
    ServerWarmup,
    allowed_overlatency,
    early_stopping,
    early_stopping_min_queries,
    final_allowed_overlatency,
    find_rate,
    invalid_reason,
    poisson_schedule,
    record_search,
    run_server,
    search_server,
    server_energy,
)
from portbench.harness.workload import AccuracyResult, PreparedTask, Query


def sleeping_query(seconds: float) -> Query:
    return Query(run=lambda: time.sleep(seconds))


@pytest.mark.fast
def test_server_is_a_registered_scenario() -> None:
    assert {"single-stream", "offline", "multi-stream", "server"} <= set(scenario_names())


@pytest.mark.fast
def test_poisson_gaps_have_the_rate_s_mean_and_spread() -> None:
    rate, count = 50.0, 20_000
    schedule = poisson_schedule(rate, count, seed=7)
    gaps = np.diff(np.concatenate([[0.0], schedule]))
    mean = 1.0 / rate
    # Exponential gaps: sd = mean, so the sample mean's sd is mean / sqrt(n) and the sample sd's is
    # about mean * sqrt(2 / n) (fourth central moment 9 sd^4). Four of each is the tolerance.
    assert abs(gaps.mean() - mean) < 4 * mean / math.sqrt(count)
    assert abs(gaps.std(ddof=1) - mean) < 4 * mean * math.sqrt(2.0 / count)
    assert np.all(gaps > 0) and np.all(np.diff(schedule) > 0)
    assert np.array_equal(schedule, poisson_schedule(rate, count, seed=7))
    assert not np.array_equal(schedule, poisson_schedule(rate, count, seed=8))


@pytest.mark.fast
def test_early_stopping_minimums_match_the_binomial_rule() -> None:
    # No overlatency query: 0.99 ** n <= 0.01 first at n = 459 (0.99 ** 458 = 0.01001). LoadGen says the
    # same: "Processed 21 queries. Would need to run at least 438 more queries".
    assert early_stopping_min_queries(0, 99.0, 0.99) == 459

    def brute_force(overlatency: int, p_over: float, confidence: float) -> int:
        n = overlatency + 1
        while True:
            cdf = sum(math.comb(n, x) * p_over**x * (1 - p_over) ** (n - x) for x in range(overlatency + 1))
            if cdf <= 1 - confidence:
                return n
            n += 1

    for overlatency in (1, 3):
        assert early_stopping_min_queries(overlatency, 99.0, 0.99) == brute_force(overlatency, 0.01, 0.99)
    assert early_stopping_min_queries(0, 90.0, 0.99) == brute_force(0, 0.1, 0.99) == 44
    verdict = early_stopping([1.0] * 458 + [900.0], 800.0, 99.0, 0.99)
    assert verdict.overlatency == 1 and not verdict.passed
    assert verdict.more_needed == brute_force(1, 0.01, 0.99) - 459


def test_a_mid_run_stall_shows_in_the_latencies_of_every_query_queued_behind_it() -> None:
    """One worker, 10 ms service, a query every 50 ms; the 11th call stalls a further second.

    By hand: query 10 (due 0.50 s) ends at 1.51 s, latency 1010 ms; query 10 + m (due 0.50 + 0.05 m)
    starts when its predecessor ends and ends at 1.51 + 0.01 m, latency 1010 - 40 m ms, until the
    backlog clears at m = 25. Timing from issue to completion of the service alone would show the stall
    in one query only."""
    calls = []
    lock = threading.Lock()

    def run() -> None:
        with lock:
            calls.append(None)
            number = len(calls)
        time.sleep(1.01 if number == 11 else 0.01)

    schedule = [0.05 * i for i in range(40)]
    run_ = run_server([[Query(run=run)]], schedule, rate=20.0)
    latencies = run_.latencies_ms
    expected = [10.0] * 10 + [max(10.0, 1010.0 - 40.0 * m) for m in range(30)]
    for index, (got, want) in enumerate(zip(latencies, expected, strict=True)):
        assert want - 2.0 <= got <= want + 100.0, (index, got, want)
    assert sum(1 for v in latencies if v > 500.0) == 13  # m = 0 .. 12: 1010 - 40 m > 500
    # The generator kept the schedule while the system stalled: it owns the clock.
    issued_late_ms = [(i - s) / 1e6 for i, s in zip(run_.issued_ns, run_.scheduled_ns, strict=True)]
    assert max(issued_late_ms) < 50.0


def fake_run(rate: float, count: int, seed: int, latency_ms: float) -> ServerRun:
    scheduled = [round(i * 1e9 / rate) for i in range(count)]
    completed = [s + round(latency_ms * 1e6) for s in scheduled]
    return ServerRun(rate, seed, scheduled, scheduled, completed, [0] * count, count)


@pytest.mark.fast
def test_rate_search_brackets_a_known_capacity() -> None:
    capacity, bound = 37.0, 100.0
    seen: list[tuple[float, int]] = []

    def probe(request: RunRequest) -> ServerRun:
        seen.append((request.rate, request.queries))
        latency = bound / 2 if request.rate <= capacity else bound * 2
        return fake_run(request.rate, request.queries, request.seed, latency)

    settings = ServerSettings(latency_bound_ms=bound, tolerance=0.05, max_probes=30)
    found = find_rate(probe, settings, start_rate=1.0)
    assert found.valid and found.saturated
    assert found.rate_at_bound is not None
    assert capacity / 1.05 <= found.rate_at_bound <= capacity
    assert seen[-1] == (found.rate_at_bound, 459)  # the final run: the early-stopping minimum
    assert all(count == settings.probe_queries for _, count in seen[:-1])


@pytest.mark.fast
def test_rate_search_reports_no_rate_when_even_the_slowest_probe_misses_the_bound() -> None:
    settings = ServerSettings(latency_bound_ms=10.0, max_probes=4)
    found = find_rate(lambda q: fake_run(q.rate, q.queries, q.seed, 50.0), settings, start_rate=8.0)
    assert found.rate_at_bound is None and not found.valid and found.final is None
    assert [p.rate for p in found.probes] == [8.0, 4.0, 2.0, 1.0]


@pytest.mark.fast
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "set params.latency_bound_ms"),
        ({"latency_bound_ms": -1}, "latency_bound_ms must be positive"),
        ({"latency_bound_ms": 800, "server_workers": 1.5}, "server_workers must be a whole number"),
        ({"latency_bound_ms": 800, "server_confidence": 1.0}, "server_confidence"),
        ({"latency_bound_ms": 800, "server_search_budget_s": 0}, "server_search_budget_s must be positive"),
    ],
)
def test_bad_server_parameters_are_user_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(ServerSettingsError, match=message):
        ServerSettings.from_params(params, None)


def test_each_worker_serves_the_whole_search_from_one_thread_of_its_own() -> None:
    """Warm-up, every probe and every final run of worker n on one OS thread, never the caller's:
    Paddle's oneDNN caches primitives per thread, and its predictors fail when driven from one fresh
    thread after another (README "Server scenario")."""
    seen: list[set[int]] = [set(), set()]

    def recording(worker: int) -> Query:
        def run() -> None:
            seen[worker].add(threading.get_ident())
            time.sleep(0.002)

        return Query(run=run)

    settings = ServerSettings(latency_bound_ms=50.0, confidence=0.5, probe_queries=16, max_probes=4)
    found, warmup = search_server([[recording(0)], [recording(1)]], settings)
    assert warmup.queries == 3  # one input per worker, then the timed pass on worker 0
    assert len(found.probes) >= 2  # several runs, each of which once started threads of its own
    assert all(len(threads) == 1 for threads in seen), seen
    assert seen[0] != seen[1] and threading.get_ident() not in seen[0] | seen[1]


def test_rate_search_on_a_fake_system_with_fixed_service_time() -> None:
    """Two workers, 20 ms each: capacity 100 queries/s. Above it the backlog grows by (1/100 - 1/r)
    per query, so 64 queries pass a 150 ms bound only while 64 (0.01 - 1/r) <= 0.15: r <= 131 (Poisson
    noise widens that to about 1.5x capacity). At half capacity (M/D/2, load 0.5) a wait beyond
    130 ms in 64 queries is vanishingly rare: the found rate cannot fall below about 0.4x."""
    service, workers = 0.02, 2
    capacity = workers / service
    settings = ServerSettings(latency_bound_ms=150.0, confidence=0.5, tolerance=0.1, probe_queries=64)
    found, warmup = search_server([[sleeping_query(service)] for _ in range(workers)], settings)
    assert warmup.service_s >= service
    assert found.rate_at_bound is not None
    assert 0.4 * capacity <= found.rate_at_bound <= 1.5 * capacity
    assert found.final is not None and len(found.final.scheduled_ns) >= 69


@pytest.mark.fast
def test_reports_show_the_server_cell_with_rate_p99_and_bound() -> None:
    from rich.console import Console

    from portbench.harness.results import CellResult, RunResults
    from portbench.reports.markdown import render_markdown
    from portbench.reports.terminal import print_summary

    cell = CellResult(
        cell_id="ocr/system/ppocrv4-mobile-system/cpu/fp32/server", workload="ocr", task="system",
        model="ppocrv4-mobile-system", backend="cpu", precision="fp32", scenario="server",
        dataset="synth", status="passed",
        server={"latency_bound_ms": 800.0, "percentile": 99.0, "rate_at_bound_qps": 1.23, "tail_ms": 612.5,
                "early_stopping": {"passed": True, "queries": 230, "overlatency": 0, "more_needed": 0}},
        audits={"outputs": {"verdict": "passed"}, "cache": {"verdict": "passed", "ratio": 1.04}},
    )
    results = RunResults(run_id="r", started_at="2026-12-01T00:00:00+00:00", portbench_version="0",
                         suite="scenarios", platform={}, cells=[cell])
    markdown = render_markdown(results)
    [row] = [line for line in markdown.splitlines() if line.startswith("| ocr/system/")]
    assert [c.strip() for c in row.strip("|").split("|")] == [
        cell.cell_id, "cpu", "800", "1.23", "612.50", "passed (230 queries, 0 over)",
        "outputs passed, cache passed (1.0x)",
    ]
    console = Console(record=True, width=220)
    print_summary(results, console)
    text = console.export_text()
    assert "Server scenario" in text and "1.23" in text and "612.50" in text


@pytest.mark.fast
def test_the_scenarios_suite_has_server_cells_for_ocr_system_and_the_ernie_classifier() -> None:
    from portbench.harness.suite import get_suite

    server = [(c.workload, c.task) for c in get_suite("scenarios").cells if c.scenario == "server"]
    assert sorted(server) == [("ernie", "cls"), ("ocr", "system")]


# --- early ends, the search budget, the floor and the closest invalid rate ---------------------------


def test_an_overloaded_run_stops_once_a_query_is_known_over_the_bound() -> None:
    """One worker, 50 ms service, a query every 10 ms: query i starts at 50 i ms and ends at 50 (i + 1),
    latency 50 + 40 i ms. Query 2 (due 20 ms, in service 100-150 ms) is known over the 100 ms bound
    from 120 ms on, while still running: the run stops there instead of serving 200 queries (10 s)."""
    schedule = [0.01 * i for i in range(200)]
    run = run_server([[sleeping_query(0.05)]], schedule, rate=100.0, bound_ms=100.0, stop_after_over=0)
    assert run.stopped is not None and "more than the 0 the verdict allows" in run.stopped
    assert run.planned_queries == 200
    # Queries 0-2 were served (2 finishing after the stop, as a query in service is not interrupted);
    # the ones queued behind them were dropped with the wait they had already spent.
    assert 3 <= len(run.completed_ns) <= 4
    assert [round(v, -1) for v in run.latencies_ms[:3]] == [50.0, 90.0, 130.0]
    assert 8 <= len(run.unserved_waited_ms) <= 14 and all(v >= 0 for v in run.unserved_waited_ms)
    assert run.overlatency(100.0) >= 2  # query 2 and the oldest dropped ones (waited over 100 ms)
    assert run.to_dict()["planned_queries"] == 200


def test_a_run_within_the_bound_is_never_cut_short() -> None:
    schedule = [0.02 * i for i in range(30)]
    run = run_server([[sleeping_query(0.005)]], schedule, rate=50.0, bound_ms=100.0, stop_after_over=0)
    assert run.stopped is None and len(run.completed_ns) == 30 and run.unserved_waited_ms == []
    assert max(run.latencies_ms) < 100.0


@pytest.mark.fast
def test_final_runs_may_stop_only_where_early_stopping_can_no_longer_pass() -> None:
    # 459 queries pass p99 at confidence 0.99 with none over; with one over 662 are needed (LoadGen).
    assert early_stopping_min_queries(1, 99.0, 0.99) == 662
    assert final_allowed_overlatency(459, 99.0, 0.99) == 0
    assert final_allowed_overlatency(662, 99.0, 0.99) == 1
    assert final_allowed_overlatency(100, 99.0, 0.99) == -1
    assert allowed_overlatency(24, 99.0) == 0 and allowed_overlatency(128, 99.0) == 1
    assert allowed_overlatency(200, 99.0) == 2 and allowed_overlatency(100, 90.0) == 10


def blank_result() -> CellResult:
    return CellResult(
        cell_id="c", workload="w", task="t", model="m", backend="cpu", precision="fp32",
        scenario="server", dataset="d", status="passed",
    )  # fmt: skip


def manual_clock() -> tuple[list[float], Callable[[], float]]:
    now = [0.0]
    return now, lambda: now[0]


def budget_probe(
    capacity: float, bound: float, now: list[float], seconds: float | None = None
) -> tuple[Callable[[RunRequest], ServerRun], list[RunRequest]]:
    """Fake runs that advance the clock by their arrivals' span (queries / rate), or by ``seconds``."""
    requests: list[RunRequest] = []

    def probe(request: RunRequest) -> ServerRun:
        requests.append(request)
        now[0] += seconds if seconds is not None else request.queries / request.rate
        latency = bound / 2 if request.rate <= capacity else bound * 2
        return fake_run(request.rate, request.queries, request.seed, latency)

    return probe, requests


@pytest.mark.fast
def test_the_search_budget_stops_probing_with_room_left_for_the_final_run() -> None:
    """Probes of 100 queries, a final run of 69 (confidence 0.5), capacity 37/s, a 28 s budget. By hand:
    spent before each probe + its arrivals + the final run at the best rate so far must fit in 28 s:
    10/s (0 + 10 + 0), 20/s (10 + 5 + 6.9), 40/s fails (15 + 2.5 + 3.45), 28.28/s (17.5 + 3.54 + 3.45),
    33.63/s (21.04 + 2.97 + 2.44); the next, 36.68/s, would end at 24.01 + 2.73 + 2.05 = 28.79 s: not
    started. The final run at 33.63/s ends at 26.06 s."""
    bound = 100.0
    now, clock = manual_clock()
    probe, requests = budget_probe(37.0, bound, now)
    settings = ServerSettings(
        latency_bound_ms=bound, tolerance=0.01, probe_queries=100, confidence=0.5, search_budget_s=28.0
    )
    found = find_rate(probe, settings, start_rate=10.0, clock=clock)
    expected = [10.0, 20.0, 40.0, math.sqrt(800), 800**0.25 * 40**0.5]
    assert [p.rate for p in found.probes] == pytest.approx(expected)
    assert found.stopped_by == "search_budget_s" and found.budget_exhausted
    assert found.valid and found.rate_at_bound == pytest.approx(33.635, abs=1e-3)
    assert [r.final for r in requests] == [False] * 5 + [True] and requests[-1].queries == 69
    assert now[0] == pytest.approx(26.06, abs=0.01) and found.spent_s <= 28.0
    assert found.bracket == (pytest.approx(33.635, abs=1e-3), 40.0)
    result = blank_result()
    record_search(found, ServerWarmup(4, 1.0, 0.02, 0.03), result)
    assert result.server is not None and "reason" not in result.server
    assert result.server["search"]["budget_exhausted"] is True
    assert result.server["search"]["search_budget_s"] == 28.0
    assert "search budget (28 s) stopped the search with 33.6 queries/s passing and 40 queries/s failing" in (
        result.server["note"]
    )


@pytest.mark.fast
def test_a_final_run_that_cannot_fit_the_budget_is_not_started_and_the_rate_is_unconfirmed() -> None:
    """Probes that take 10 s each (a slow drain) and a 15 s budget: the probe at 10/s passes (ends at
    10 s), the next would not leave room for the final run (10 + 5 + 6.9 > 15), and the final run at
    10/s itself (10 + 6.9 s) no longer fits: no rate at bound, the unconfirmed one named."""
    now, clock = manual_clock()
    probe, requests = budget_probe(37.0, 100.0, now, seconds=10.0)
    settings = ServerSettings(latency_bound_ms=100.0, probe_queries=100, confidence=0.5, search_budget_s=15.0)
    found = find_rate(probe, settings, start_rate=10.0, clock=clock)
    assert [p.rate for p in found.probes] == [10.0] and not any(r.final for r in requests)
    assert found.rate_at_bound is None and found.final is None and found.budget_exhausted
    reason = invalid_reason(found)
    assert reason == (
        "10 queries/s passed its probes but was not confirmed: its final run (69 queries, at least 7 s) "
        "does not fit the search budget (15 s, 10 s spent)"
    )
    result = blank_result()
    record_search(found, ServerWarmup(4, 1.0, 0.02, 0.03), result)
    assert result.server is not None and result.server["best_rate_qps"] == 10.0
    assert result.server["rate_at_bound_qps"] is None and result.server["reason"].startswith("10 queries/s")


@pytest.mark.fast
def test_halving_stops_where_queueing_cannot_explain_the_tail() -> None:
    """Capacity 100 queries/s: the floor is 5 % of it. Probes at 50, 25, 12.5 and 6.25 queries/s
    fail; 3.125 is under the floor and is not run."""
    settings = ServerSettings(latency_bound_ms=10.0)
    found = find_rate(
        lambda q: fake_run(q.rate, q.queries, q.seed, 12.0 if q.rate < 20 else 50.0),
        settings, start_rate=50.0, capacity_qps=100.0,
    )  # fmt: skip
    assert [p.rate for p in found.probes] == [50.0, 25.0, 12.5, 6.25]
    assert found.stopped_by == "floor" and found.final is None and found.floor_qps == 5.0
    best = found.best_probe()
    assert best is not None and best.rate == 12.5 and best.tail_ms == pytest.approx(12.0)
    reason = invalid_reason(found, ServerWarmup(4, 1.0, 0.008, 0.011))
    assert reason is not None
    assert reason.startswith("no probed rate met the 10 ms bound: the closest, 12.5 queries/s, had 64 of 64")
    assert "halving stopped at 5 queries/s" in reason and "8 ms median, 11 ms max" in reason


@pytest.mark.fast
def test_a_start_rate_below_the_load_floor_is_still_probed() -> None:
    """Capacity 1,000 queries/s puts the 5 % floor at 50; a suite asking to start at 20 gets its 20
    probed (and passing, it doubles up), never "no probe ran"."""
    settings = ServerSettings(latency_bound_ms=10.0, max_probes=2)
    found = find_rate(
        lambda q: fake_run(q.rate, q.queries, q.seed, 2.0), settings, start_rate=20.0, capacity_qps=1000.0
    )
    assert [p.rate for p in found.probes] == [20.0, 40.0]
    assert found.floor_qps == 20.0 and found.stopped_by == "max_probes"


@pytest.mark.fast
def test_no_valid_final_run_reports_the_closest_one_and_why() -> None:
    """Probes pass at every rate; the three final attempts have 364, 3 and 63 queries of 459 over the
    bound (what the ERNIE reference's loaded run saw): the one with 3 over is reported, invalid, with
    the queries early stopping would need. Only the last attempt runs without an early end."""
    bound = 130.0
    overs = iter([364, 3, 63])
    requests: list[RunRequest] = []

    def probe(request: RunRequest) -> ServerRun:
        requests.append(request)
        run = fake_run(request.rate, request.queries, request.seed, 20.0)
        if request.final:
            over = next(overs)
            run.completed_ns[:over] = [s + round(200e6) for s in run.scheduled_ns[:over]]
        return run

    settings = ServerSettings(latency_bound_ms=bound, max_probes=2, start_rate=100.0)
    found = find_rate(probe, settings, start_rate=100.0)
    assert not found.valid and found.rate_at_bound is None
    finals = [r for r in requests if r.final]
    assert [r.stop_after_over for r in finals] == [0, 0, None]
    assert found.final_index == 1 and found.final is not None
    assert found.final.rate == pytest.approx(200.0 * 0.9)
    assert found.early is not None and found.early.overlatency == 3
    needed = early_stopping_min_queries(3, 99.0, 0.99)
    reason = invalid_reason(found)
    assert reason is not None and "180 queries/s, had 3 of 459 queries over the 130 ms bound" in reason
    assert f"needs {needed} queries with that many over" in reason
    result = blank_result()
    record_search(found, ServerWarmup(4, 1.0, 0.003, 0.004), result)
    assert result.server is not None and result.server["rate_at_bound_qps"] is None
    assert result.server["best_rate_qps"] == pytest.approx(180.0)
    assert result.server["reported_attempt"] == 1 and result.server["reason"] == invalid_reason(
        found, ServerWarmup(4, 1.0, 0.003, 0.004)
    )
    assert result.latency_ms is not None and result.latency_ms.n == 459


# --- energy of the final run only ------------------------------------------------------------------


class ConstantDraw(PowerSource):
    """A card drawing a constant 40 W, read at each window's edges only."""

    name = "fake-card"
    kind = "draw"
    poll_interval_s = 3600.0

    @property
    def scopes(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("card",)

    def probe(self) -> Availability:
        return Availability.yes()

    def domains(self) -> Sequence[PowerDomain]:
        return [PowerDomain("fake-card:0", "card")]

    def read(self) -> Mapping[str, float]:
        return {"fake-card:0": 40.0}


class ServedTask(PreparedTask):
    """Queries of two samples each that sleep ``service_s`` on the stream's own (fake) session."""

    server_latency_bound_ms = 200.0

    def __init__(self, service_s: float) -> None:
        self.service_s = service_s

    def evaluate(self) -> AccuracyResult:
        return AccuracyResult(metrics={})

    def queries(self) -> Sequence[Query]:
        return [Query(run=lambda: time.sleep(self.service_s), samples=2) for _ in range(3)]

    def stream_queries(self, session_clones: Mapping[str, Any]) -> Sequence[Query]:
        return self.queries()


class CloneableSession:
    def clone(self) -> CloneableSession:
        return CloneableSession()


class NoSync:
    def synchronize(self) -> None:
        pass


def server_context(meter: EnergyMeter | None, tmp_path: Path, **params: object) -> ScenarioContext:
    from portbench.backends.base import Precision
    from portbench.harness.config import CellPlan
    from portbench.harness.measure import MeasureSettings
    from portbench.harness.workload import TaskSpec

    plan = CellPlan(
        cell_id="fake/x/m/cpu/paddle/fp32/server",
        spec=TaskSpec("fake", "x", "m", "d", params, cache_dir=tmp_path),
        backend="cpu", device_id=0, precision=Precision.FP32, scenario="server",
        measure=MeasureSettings(), trials=1, mode="performance", cpu_threads=1,
    )  # fmt: skip
    task = ServedTask(0.01)
    return ScenarioContext(
        plan, NoSync(), task, {"model": CloneableSession()}, task.queries(), None, meter  # type: ignore[arg-type]
    )


def test_a_server_cell_meters_its_final_run_only(tmp_path: Path) -> None:
    """Two workers, 10 ms per query of two samples, bound 200 ms, confidence 0.5 (69 final queries).
    One meter window per final attempt and none per probe; the reported energy is 40 W over that
    run: per query it is 40 W x window / queries, per sample half that."""
    meter = EnergyMeter([ConstantDraw()])
    context = server_context(
        meter, tmp_path, server_confidence=0.5, server_probe_queries=32, server_max_probes=5
    )
    result = blank_result()
    ServerScenario().record(context, result)
    server = result.server
    assert server is not None and len(server["probes"]) >= 2
    assert len(meter.windows) == len(server["final_attempts"]) >= 1
    energy = result.energy
    assert energy is not None and energy["available"] is True
    final = result.raw["server_final"]
    queries = len(final["latency_ms"])
    assert energy["queries"] == queries >= 69 and energy["samples"] == 2 * queries
    (reading,) = energy["readings"]
    assert reading["source"] == "fake-card" and reading["scope"] == "card"
    assert reading["mean_power_w"] == pytest.approx(40.0)
    # The window holds the final run (its last completion is its wall time) and little else: the
    # probes before it took longer than the slack allowed here.
    run_s = max(final["completed_s"])
    probes_s = sum(p["queries"] / p["rate"] for p in server["probes"])
    assert run_s <= reading["seconds"] < run_s + min(0.25, probes_s / 2)
    assert reading["energy_j"] == pytest.approx(40.0 * reading["seconds"], rel=1e-6)
    assert reading["energy_per_query_j"] == pytest.approx(reading["energy_j"] / queries)
    assert reading["queries_per_j"] == pytest.approx(queries / reading["energy_j"])
    assert reading["energy_per_sample_j"] == pytest.approx(reading["energy_j"] / (2 * queries))


@pytest.mark.fast
def test_a_server_cell_without_a_final_run_or_a_source_has_no_energy_figure_and_says_why(
    tmp_path: Path,
) -> None:
    empty = EnergyMeter([])
    found = SearchResult(ServerSettings(latency_bound_ms=1.0))
    record = server_energy(empty, [], found)
    assert record["available"] is False and record["readings"] == []
    assert record["queries"] == 0
    assert any("without a final run" in p["reason"] for p in record["unavailable"])
    # A final run but no power source: the figure is absent with the sources' reasons, never 0.
    meter = EnergyMeter([_Unavailable()])
    with meter.window():
        pass
    found.final = fake_run(10.0, 5, 1, 0.5)
    found.final_index = 0
    record = server_energy(meter, meter.windows, found)
    assert record["available"] is False and record["readings"] == []
    assert record["unavailable"] == [{"source": "fake-card", "scopes": ["card"], "reason": "no such card"}]


class _Unavailable(ConstantDraw):
    def probe(self) -> Availability:
        return Availability.no("no such card")


@pytest.mark.fast
def test_reports_show_the_closest_invalid_rate_and_why() -> None:
    from portbench.harness.results import RunResults
    from portbench.reports.markdown import render_markdown

    reason = "the closest final run, 313 queries/s, had 3 of 459 queries over the 130 ms bound"
    cell = CellResult(
        cell_id="ernie/cls/m/cpu/paddle/fp32/server", workload="ernie", task="cls", model="m",
        backend="cpu", precision="fp32", scenario="server", dataset="d", status="passed",
        server={"latency_bound_ms": 130.0, "percentile": 99.0, "rate_at_bound_qps": None, "tail_ms": 100.57,
                "best_rate_qps": 313.2, "reason": reason,
                "early_stopping": {"passed": False, "queries": 459, "overlatency": 3, "more_needed": 542}},
    )  # fmt: skip
    results = RunResults(
        run_id="r", started_at="2026-12-01T00:00:00+00:00", portbench_version="0", suite="scenarios",
        platform={}, cells=[cell],
    )  # fmt: skip
    markdown = render_markdown(results)
    [row] = [line for line in markdown.splitlines() if line.startswith("| ernie/cls/")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:6] == ["none met (closest 313.2, invalid)", "100.57", "not met: 542 more queries needed"]
    assert f"- `{cell.cell_id}`: {reason}" in markdown
