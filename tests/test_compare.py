"""Baseline comparison: regressions are reported precisely, noise is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from portbench.harness.compare import compare_cell, compare_runs
from portbench.harness.results import (
    CellResult,
    LatencySummary,
    RunResults,
    TrialSummary,
    save_results,
)

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

PLATFORM = {
    "cpu": {"vendor": "GenuineIntel", "model_name": "test", "architecture": "x86_64"},
    "memory_total_bytes": 1,
    "os": {"id": "debian", "name": "Debian", "version_id": "12"},
    "kernel": "6",
    "python": {"version": "3.11"},
    "paddle": {"version": "3.2.2", "commit": None},
}


def spread(center: float, n: int = 30) -> list[float]:
    """n distinct latencies from center to center * 1.029 in equal steps (ms): a tight, known sample."""
    return [center * (1 + 0.001 * i) for i in range(n)]


def cell(samples: list[float], metric: float = 0.9, **extra: object) -> CellResult:
    median = sorted(samples)[len(samples) // 2]
    half = len(samples) // 2
    result = CellResult(
        cell_id="ocr/rec/m/cpu/paddle/fp32/single-stream",
        workload="ocr",
        task="rec",
        model="m",
        backend="cpu",
        precision="fp32",
        scenario="single-stream",
        dataset="d",
        status="passed",
        metrics={"rec_char_accuracy": metric},
        latency_ms=LatencySummary(
            n=len(samples), mean=median, min=median, max=median, stdev=0.0, p50=median, p90=median, p99=None
        ),
        trials=TrialSummary(
            trials=2,
            p50_ms=(median, median),
            samples_per_s=(1.0, 1.0),
            median_p50_ms=median,
            mean_p50_ms=median,
            ci95_low_ms=median * 0.6,  # wide, as two trials give: the gate must not need it
            ci95_high_ms=median * 1.4,
            cv=0.01,
            cv_threshold=0.05,
            unstable=False,
        ),
        manifest={"cpu_threads": 2, "paddle": {"version": "3.2.2"}},
        raw={"latency_ms": list(samples), "latency_trial_sizes": [half, len(samples) - half]},
    )
    for key, value in extra.items():
        setattr(result, key, value)
    return result


def test_a_real_slowdown_hidden_by_wide_trial_intervals_is_caught() -> None:
    # The case: two trials give a ±40 % interval, the raw samples show +20 % plainly.
    # Every resampled median ratio lies in [12 / 10.29, 12.348 / 10] = [1.166, 1.235], above 1.10.
    result = compare_cell(cell(spread(10.0)), cell(spread(12.0)))
    assert result.regressed and result.speed is not None
    assert result.speed.verdict == "regressed"
    assert result.slowdown == pytest.approx(0.2)
    assert 1.166 <= result.speed.ratio_low <= result.speed.ratio_high <= 1.235  # type: ignore[operator]
    (problem,) = result.problems
    assert problem.kind == "performance" and "median +20.0%" in str(problem) and "limit +10%" in str(problem)


def test_a_change_inside_the_limit_is_no_change() -> None:
    # +1 %: every resampled ratio lies in [10.1 / 10.29, 10.4029 / 10] = [0.981, 1.041], inside ±10 %.
    result = compare_cell(cell(spread(10.0)), cell(spread(10.1)))
    assert not result.regressed and result.speed is not None and result.speed.verdict == "no change"


def test_metric_drop_and_status_change_are_regressions() -> None:
    result = compare_cell(cell(spread(10.0), metric=0.95), cell(spread(10.0), metric=0.93))
    assert [str(p) for p in result.problems] == ["rec_char_accuracy 0.9500 -> 0.9300 (-0.0200)"]
    assert result.kinds() == {"accuracy"}
    failed = cell(spread(10.0), status="failed", reason="worker killed by signal SIGKILL")
    crashed = compare_cell(cell(spread(10.0)), failed)
    assert any("now failed: worker killed" in str(p) for p in crashed.problems)
    assert crashed.kinds() == {"infrastructure"}


def test_manifest_differences_are_listed_and_strict_refuses() -> None:
    other = cell(spread(10.0), manifest={"cpu_threads": 4, "paddle": {"version": "3.2.2"}})
    loose = compare_cell(cell(spread(10.0)), other)
    assert loose.manifest_differences == ("cpu_threads: 2 != 4",) and not loose.regressed
    strict = compare_cell(cell(spread(10.0)), other, strict_manifest=True)
    assert strict.regressed and strict.kinds() == {"manifest"}


def run_with(cells: list[CellResult]) -> RunResults:
    return RunResults(
        run_id="r",
        started_at="2026-11-23T00:00:00+00:00",
        portbench_version="0",
        suite="smoke",
        platform=PLATFORM,
        cells=cells,
    )


def test_a_missing_cell_fails_the_comparison() -> None:
    comparison = compare_runs(run_with([cell(spread(10.0))]), run_with([]))
    assert comparison.missing == ("ocr/rec/m/cpu/paddle/fp32/single-stream",) and comparison.failed


def test_compare_prints_ids_and_problems_as_text_not_markup(tmp_path: Path) -> None:
    # "[/usr/lib]" would be a closing markup tag (a crash), "[bold]" a style (swallowed).
    odd = "ocr/rec/m@[/usr/lib]-[bold]/cpu/paddle/fp32/single-stream"
    save_results(run_with([cell(spread(10.0), cell_id=odd)]), tmp_path / "base")
    save_results(run_with([]), tmp_path / "run")
    result = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "compare", str(tmp_path / "base"),
         str(tmp_path / "run")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"REGRESSION {odd}: in the baseline, missing from this run" in result.stdout.splitlines()
