"""The server scenario: Poisson load generator, scheduled-time latency, early stopping, rate search."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from portbench.harness.scenarios import scenario_names
from portbench.harness.server import (
    ServerRun,
    ServerSettings,
    ServerSettingsError,
    early_stopping,
    early_stopping_min_queries,
    find_rate,
    poisson_schedule,
    run_server,
    search_server,
)
from portbench.harness.workload import Query


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

    def probe(rate: float, count: int, seed: int) -> ServerRun:
        seen.append((rate, count))
        return fake_run(rate, count, seed, bound / 2 if rate <= capacity else bound * 2)

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
    found = find_rate(lambda r, n, s: fake_run(r, n, s, 50.0), settings, start_rate=8.0)
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
    ],
)
def test_bad_server_parameters_are_user_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(ServerSettingsError, match=message):
        ServerSettings.from_params(params, None)


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
