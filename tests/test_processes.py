"""Timing a cell in several worker processes, and the gate's test on process medians."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from test_compare import cell

from portbench.errors import PortbenchError
from portbench.harness.compare import compare_cell, judge_process_medians, processes_needed
from portbench.harness.processes import pool_processes
from portbench.harness.results import CellResult, Throughput, TrialSummary, validate_document
from portbench.harness.suite import SuiteFileError, get_suite

STEADY = [100.0, 102.0, 98.0, 101.0, 99.0]


@pytest.mark.fast
def test_a_uniform_15_percent_slowdown_of_every_process_is_regressed() -> None:
    judged = judge_process_medians(STEADY, [v * 1.15 for v in STEADY])
    assert judged.verdict == "regressed" and judged.unit == "processes"
    # Every process scaled by 1.15: the geometric-mean ratio is exactly 1.15.
    assert judged.ratio == pytest.approx(1.15)
    assert judged.ratio_low is not None and judged.ratio_low > 1.10
    assert (judged.baseline_n, judged.current_n) == (5, 5)


@pytest.mark.fast
def test_identical_processes_are_no_change_and_swapping_sides_mirrors_the_verdict() -> None:
    assert judge_process_medians(STEADY, STEADY).verdict == "no change"
    assert judge_process_medians([v * 1.15 for v in STEADY], STEADY).verdict == "improved"


@pytest.mark.fast
def test_a_shift_inside_a_wide_process_spread_is_inconclusive_and_says_how_many_processes() -> None:
    # The 15 % shift is there, but the processes spread by about ±10 %: with five per side Welch's
    # interval reaches below 1, so the gate must not call it, and says what would settle it.
    wide = [90.0, 110.0, 95.0, 105.0, 100.0]
    judged = judge_process_medians(wide, [v * 1.15 for v in wide])
    assert judged.verdict == "inconclusive"
    assert judged.reason is not None and "processes per side" in judged.reason
    assert "suite.processes=" in judged.reason


@pytest.mark.fast
def test_processes_needed_by_hand() -> None:
    # z(0.99) + z(0.90) = 2.3263 + 1.2816 = 3.6079; ln 1.1 = 0.09531.
    # spread 10 %: 2 * (3.6079 * 0.10 / 0.09531) ** 2 = 2 * 3.7854 ** 2 = 28.66 -> 29.
    assert processes_needed(0.10, 0.10) == 29
    # spread 2 %: 2 * 0.7571 ** 2 = 1.15 -> 2 (and never fewer than two).
    assert processes_needed(0.02, 0.10) == 2
    # spread 5 %, limit 15 % (ln 1.15 = 0.13976): 2 * (3.6079 * 0.05 / 0.13976) ** 2 = 3.33 -> 4.
    assert processes_needed(0.05, 0.15) == 4


@pytest.mark.fast
def test_compare_cell_tests_process_medians_when_both_runs_kept_processes() -> None:
    # Two processes a side, each 10 samples; the process medians are 10 / 10.2 ms (baseline) and
    # 20 / 20.4 ms (current), so the ratio is sqrt(20 * 20.4 / (10 * 10.2)) = 2 exactly.
    def two_processes(low: float, high: float) -> list[float]:
        return [low] * 10 + [high] * 10

    before = cell(two_processes(10.0, 10.2))
    after = cell(two_processes(20.0, 20.4))
    for side in (before, after):
        side.raw["latency_process_sizes"] = [10, 10]
    compared = compare_cell(before, after)
    judged = compared.speed
    assert judged is not None and judged.unit == "processes"
    assert judged.ratio == pytest.approx(2.0)
    assert judged.verdict == "regressed" and [p.kind for p in compared.problems] == ["performance"]
    # Only one side has processes: the query-level test, as before.
    del before.raw["latency_process_sizes"]
    plain = compare_cell(before, after).speed
    assert plain is not None and plain.unit == "queries"


@pytest.mark.fast
def test_process_sizes_that_do_not_add_up_are_a_clear_error() -> None:
    broken = cell([10.0] * 20)
    broken.raw["latency_process_sizes"] = [10, 5]
    with pytest.raises(PortbenchError, match="latency_process_sizes"):
        compare_cell(broken, cell([10.0] * 20))


def _trials(p50s: tuple[float, ...], rates: tuple[float, ...]) -> TrialSummary:
    return TrialSummary(
        trials=len(p50s),
        p50_ms=p50s,
        samples_per_s=rates,
        median_p50_ms=p50s[0],
        mean_p50_ms=p50s[0],
        ci95_low_ms=None,
        ci95_high_ms=None,
        cv=None,
        cv_threshold=0.07,
        unstable=False,
    )


@pytest.mark.fast
def test_pool_processes_appends_samples_and_pools_throughput_by_wall_time() -> None:
    first = cell([1.0, 2.0, 3.0, 4.0])
    first.raw["latency_trial_sizes"] = [2, 2]
    # 4 queries at 10 queries/s: 0.4 s of wall; 20 samples/s: 8 samples.
    first.throughput = Throughput(samples_per_s=20.0, queries_per_s=10.0)
    first.trials = _trials((1.5, 3.5), (20.0, 20.0))
    second = dataclasses.replace(cell([5.0, 7.0]), raw={"latency_ms": [5.0, 7.0], "latency_trial_sizes": [2]})
    # 2 queries at 5 queries/s: 0.4 s; 5 samples/s: 2 samples.
    second.throughput = Throughput(samples_per_s=5.0, queries_per_s=5.0)
    second.trials = _trials((6.0,), (5.0,))

    pool_processes(first, [second])

    assert first.raw["latency_ms"] == [1.0, 2.0, 3.0, 4.0, 5.0, 7.0]
    assert first.raw["latency_trial_sizes"] == [2, 2, 2]
    assert first.raw["latency_process_sizes"] == [4, 2]
    # 10 samples and 6 queries over 0.8 s.
    assert first.throughput == Throughput(samples_per_s=pytest.approx(12.5), queries_per_s=pytest.approx(7.5))
    assert first.latency_ms is not None and first.latency_ms.n == 6
    assert first.latency_ms.p50 == pytest.approx(3.5)  # median of 1, 2, 3, 4, 5, 7
    assert first.trials is not None and first.trials.p50_ms == (1.5, 3.5, 6.0)
    assert first.trials.median_p50_ms == pytest.approx(3.5)
    assert first.trials.cv_threshold == 0.07
    assert "host_probe" not in first.raw  # neither process kept one: nothing invented


@pytest.mark.fast
def test_pool_processes_keeps_one_host_probe_per_process_in_order() -> None:
    first = _probed([[10.0, 10.0], [11.0, 11.0]], [1.0, 1.1])  # already a pool of two
    first.throughput = Throughput(samples_per_s=100.0, queries_per_s=100.0)
    first.trials = _trials((10.0, 11.0), (100.0, 100.0))
    third = _probed([[12.0, 12.0]], [1.2])
    del third.raw["latency_process_sizes"]
    third.throughput = Throughput(samples_per_s=80.0, queries_per_s=80.0)
    third.trials = _trials((12.0,), (80.0,))
    pool_processes(first, [third])
    assert first.raw["latency_process_sizes"] == [2, 2, 2]
    assert [p["probe_ms"] for p in first.raw["host_probe"]] == [1.0, 1.1, 1.2]


@pytest.mark.fast
def test_suite_processes_key_defaults_to_one_and_is_type_checked() -> None:
    assert get_suite("smoke").processes == 1
    assert get_suite("smoke", ["suite.processes=4"]).processes == 4
    assert get_suite("smoke", ["suite.processes=4"]).to_dict()["suite"]["processes"] == 4
    with pytest.raises(SuiteFileError, match=r"suite\.processes"):
        get_suite("smoke", ["suite.processes=0"])
    with pytest.raises(SuiteFileError, match=r"suite\.processes"):
        get_suite("smoke", ["suite.processes=two"])


@pytest.mark.fast
def test_needed_count_is_consistent_with_the_reason_text() -> None:
    wide = [90.0, 110.0, 95.0, 105.0, 100.0]
    logs = [math.log(v) for v in wide]
    mean = sum(logs) / len(logs)
    spread = math.sqrt(sum((v - mean) ** 2 for v in logs) / (len(logs) - 1))
    judged = judge_process_medians(wide, [v * 1.15 for v in wide])
    assert judged.reason is not None
    assert f"suite.processes={processes_needed(spread, 0.10)}" in judged.reason
    assert f"{spread:.1%}" in judged.reason


@pytest.mark.fast
def test_only_single_stream_is_repeated() -> None:
    from portbench.harness.scenarios import create_scenario

    assert create_scenario("single-stream").repeatable
    # Their headline is a sweep, concurrent streams or a rate search: pooling queries would mix runs.
    assert not any(create_scenario(name).repeatable for name in ("offline", "multi-stream", "server"))


# Not the fast tier: a real run of two worker processes (~15 s).
def test_smoke_with_two_processes_pools_both(tmp_path: Path, cache_dir: Path) -> None:
    """A real run: the synthetic ERNIE cell timed in two worker processes, results still valid."""
    out = tmp_path / "run"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "portbench.harness.cli",
            "run",
            "--suite",
            "smoke",
            "--only",
            "ernie/perf",
            "--mode",
            "performance",
            "--threads",
            "1",
            "--set",
            "suite.processes=2",
            "--cache-dir",
            str(cache_dir),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    validate_document(document)
    (result,) = document["cells"]
    sizes = result["raw"]["latency_process_sizes"]
    assert len(sizes) == 2 and sum(sizes) == len(result["raw"]["latency_ms"])
    # The smoke suite's two trials in each process.
    assert result["trials"]["trials"] == 4 and len(result["raw"]["latency_trial_sizes"]) == 4
    assert result["latency_ms"]["n"] == sum(sizes)
    # One host probe per timing process, each the geometric mean of its before and after.
    probes = result["raw"]["host_probe"]
    assert len(probes) == 2 and all(
        p["probe_ms"] == pytest.approx(math.sqrt(p["before_ms"] * p["after_ms"])) for p in probes
    )


@pytest.mark.fast
def test_the_summary_says_how_many_processes_timed_each_cell() -> None:
    from portbench.harness.results import RunResults
    from portbench.reports.tables import suite_text

    def stored(processes: int) -> RunResults:
        return RunResults(
            run_id="r", started_at="2026-12-02T00:00:00+00:00", portbench_version="0", suite="smoke",
            platform={}, suite_definition={"suite": {"trials": 2, "processes": processes}, "cells": [{}]},
        )

    assert suite_text(stored(1)) == "smoke (1 cell(s); 2 timed trial(s) per cell)"
    assert suite_text(stored(5)) == (
        "smoke (1 cell(s); 2 timed trial(s) per cell in each of 5 worker processes (single-stream cells))"
    )


@pytest.mark.fast
def test_runner_times_cells_again_round_robin_and_pools_each_round(tmp_path: Path) -> None:
    """Processes spread over the run: A, B, then A again, B again; a failed repeat fails only its cell."""
    from portbench.harness import api
    from portbench.harness.results import LatencySummary, load_results
    from portbench.harness.runner import CellOutcome
    from portbench.harness.worker import new_cell_result

    suite = get_suite("smoke", ["suite.processes=3"])
    from portbench.backends.base import Precision
    from portbench.harness.config import RunOptions

    options = RunOptions(
        suite="smoke", backends=("cpu",), precisions=(Precision.FP32,), cache_dir=tmp_path / "cache",
        only=("ernie/",),
    )
    plan = api.plan_run(suite, options, tmp_path / "run")
    ids = [c.plan.cell_id for c in plan.cells]
    assert len(ids) == 2 and all(c.plan.processes == 3 for c in plan.cells)
    calls: list[tuple[str, int]] = []

    def fake(cell_plan, timeout_s):  # type: ignore[no-untyped-def]
        calls.append((cell_plan.cell_id, cell_plan.repeat))
        if cell_plan.cell_id == ids[1] and cell_plan.repeat == 2:
            return CellOutcome(new_cell_result(cell_plan, "failed", "worker killed by signal SIGKILL"))
        result = new_cell_result(cell_plan, "passed")
        value = 10.0 + cell_plan.repeat  # process k's queries all take 10 + k ms
        result.raw = {"latency_ms": [value] * 4, "latency_trial_sizes": [2, 2]}
        result.latency_ms = LatencySummary(n=4, mean=value, min=value, max=value, stdev=0.0, p50=value,
                                           p90=value, p99=None)
        result.throughput = Throughput(samples_per_s=1000 / value, queries_per_s=1000 / value)
        result.trials = _trials((value, value), (1000 / value, 1000 / value))
        return CellOutcome(result)

    api.execute(plan, cell_runner=fake)
    assert calls == [(ids[0], 0), (ids[1], 0), (ids[0], 1), (ids[1], 1), (ids[0], 2), (ids[1], 2)]
    final = {c.cell_id: c for c in load_results(tmp_path / "run").cells}
    first, second = final[ids[0]], final[ids[1]]
    assert first.status == "passed"
    assert first.raw["latency_process_sizes"] == [4, 4, 4]
    assert first.raw["latency_ms"] == [10.0] * 4 + [11.0] * 4 + [12.0] * 4
    assert first.trials is not None and first.trials.trials == 6
    # Third process of the second cell died: failed with the reason, two processes' samples kept.
    assert second.status == "failed" and "timing process 3 of 3" in (second.reason or "")
    assert "SIGKILL" in (second.reason or "")
    assert second.raw["latency_process_sizes"] == [4, 4]


def _probed(samples_per_process: list[list[float]], probes_ms: list[float]) -> CellResult:
    samples = [v for process in samples_per_process for v in process]
    result = cell(samples)
    result.raw["latency_trial_sizes"] = [len(p) for p in samples_per_process]
    result.raw["latency_process_sizes"] = [len(p) for p in samples_per_process]
    result.raw["host_probe"] = [{"version": 1, "probe_ms": v} for v in probes_ms]
    return result


@pytest.mark.fast
def test_host_normalised_divides_each_process_by_its_own_probe() -> None:
    from portbench.harness.compare import host_normalised

    probed = _probed([[10.0, 10.0], [20.0, 20.0]], [1.0, 2.0])
    assert host_normalised(probed, probed.raw["latency_ms"]) == [10.0, 10.0, 10.0, 10.0]


@pytest.mark.fast
def test_a_whole_host_slowdown_seen_by_the_probe_is_no_change_when_normalised() -> None:
    # Tonight the host is 20 % slower: every process and its probe take 1.2 times as long.
    steady = [[v] * 6 for v in STEADY]
    base = _probed(steady, [5.0] * 5)
    slow_host = _probed([[v * 1.2 for v in p] for p in steady], [6.0] * 5)
    raw = compare_cell(base, slow_host).speed
    assert raw is not None and raw.verdict == "regressed"
    judged = compare_cell(base, slow_host, normalise_host=True).speed
    assert judged is not None and judged.verdict == "no change" and judged.host_normalised
    assert judged.ratio == pytest.approx(1.0)
    # A slower program on the same host: the probe did not move, the regression stays.
    slow_code = _probed([[v * 1.2 for v in p] for p in steady], [5.0] * 5)
    still = compare_cell(base, slow_code, normalise_host=True)
    assert still.speed is not None and still.speed.verdict == "regressed"
    assert "host-normalised" in still.problems[0].message


@pytest.mark.fast
def test_normalising_without_probes_is_a_clear_error() -> None:
    with pytest.raises(PortbenchError, match="needs a host probe for each timing process"):
        compare_cell(cell([10.0] * 20), cell([10.0] * 20), normalise_host=True)
    mixed = _probed([[10.0] * 4], [1.0])
    other = _probed([[10.0] * 4], [1.0])
    other.raw["host_probe"][0]["version"] = 2
    with pytest.raises(PortbenchError, match="different versions"):
        compare_cell(mixed, other, normalise_host=True)


@pytest.mark.fast
def test_the_host_probe_times_both_parts() -> None:
    from portbench.harness.host_probe import PROBE_VERSION, measure_host_speed

    probe = measure_host_speed()
    assert probe["version"] == PROBE_VERSION
    assert probe["compute_ms"] > 0 and probe["copy_ms"] > 0
    assert probe["probe_ms"] == pytest.approx(math.sqrt(probe["compute_ms"] * probe["copy_ms"]))
