"""Baseline comparison: regressions are reported precisely, noise is not."""

from __future__ import annotations

import json
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


def cell(
    p50s: tuple[float, ...], low: float, high: float, metric: float = 0.9, **extra: object
) -> CellResult:
    median = sorted(p50s)[len(p50s) // 2]
    result = CellResult(
        cell_id="ocr/rec/m/cpu/fp32/single-stream",
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
            n=60, mean=median, min=median, max=median, stdev=0.0, p50=median, p90=median, p99=None
        ),
        trials=TrialSummary(
            trials=len(p50s),
            p50_ms=p50s,
            samples_per_s=(1.0,) * len(p50s),
            median_p50_ms=median,
            mean_p50_ms=median,
            ci95_low_ms=low,
            ci95_high_ms=high,
            cv=0.01,
            cv_threshold=0.05,
            unstable=False,
        ),
        manifest={"cpu_threads": 2, "paddle": {"version": "3.2.2"}},
    )
    for key, value in extra.items():
        setattr(result, key, value)
    return result


def test_a_slowdown_inside_the_noise_is_quiet() -> None:
    # 15 % slower by the median, but the intervals overlap: noise, not a regression.
    result = compare_cell(cell((10.0, 10.0, 10.0), 9.0, 11.5), cell((11.5, 11.5, 11.5), 11.0, 12.0))
    assert not result.regressed
    assert abs(result.slowdown - 0.15) < 1e-9  # type: ignore[operator]


def test_a_slowdown_beyond_the_noise_and_the_limit_fails_with_numbers() -> None:
    result = compare_cell(cell((10.0,) * 3, 9.8, 10.2), cell((12.0,) * 3, 11.8, 12.2))
    assert result.regressed
    (problem,) = result.problems
    assert "10.00 ms -> 12.00 ms" in problem and "+20.0%" in problem


def test_small_real_slowdown_under_the_limit_is_quiet() -> None:
    result = compare_cell(cell((10.0,) * 3, 9.9, 10.1), cell((10.5,) * 3, 10.4, 10.6))
    assert not result.regressed


def test_metric_drop_and_status_change_are_regressions() -> None:
    result = compare_cell(
        cell((10.0,) * 3, 9.9, 10.1, metric=0.95), cell((10.0,) * 3, 9.9, 10.1, metric=0.93)
    )
    assert result.problems == ("rec_char_accuracy 0.9500 -> 0.9300 (-0.0200)",)
    failed = cell((10.0,) * 3, 9.9, 10.1, status="failed", reason="worker killed by signal SIGKILL")
    assert any(
        "now failed: worker killed" in p for p in compare_cell(cell((10.0,) * 3, 9.9, 10.1), failed).problems
    )


def test_manifest_differences_are_listed_and_strict_refuses() -> None:
    other = cell((10.0,) * 3, 9.9, 10.1, manifest={"cpu_threads": 4, "paddle": {"version": "3.2.2"}})
    loose = compare_cell(cell((10.0,) * 3, 9.9, 10.1), other)
    assert loose.manifest_differences == ("cpu_threads: 2 != 4",) and not loose.regressed
    assert compare_cell(cell((10.0,) * 3, 9.9, 10.1), other, strict_manifest=True).regressed


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
    comparison = compare_runs(run_with([cell((10.0,) * 3, 9.9, 10.1)]), run_with([]))
    assert comparison.missing == ("ocr/rec/m/cpu/fp32/single-stream",) and comparison.failed


def test_compare_command_exit_codes(tmp_path: Path) -> None:
    save_results(run_with([cell((10.0,) * 3, 9.8, 10.2)]), tmp_path / "base")
    save_results(run_with([cell((10.1,) * 3, 9.9, 10.3)]), tmp_path / "same")
    save_results(run_with([cell((13.0,) * 3, 12.8, 13.2)]), tmp_path / "slow")

    def compare(run: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "portbench.harness.cli",
                "compare",
                str(tmp_path / "base"),
                str(tmp_path / run),
            ],
            capture_output=True,
            text=True,
            check=False,
        )

    quiet, loud = compare("same"), compare("slow")
    assert quiet.returncode == 0 and "0 regression(s)" in quiet.stdout
    assert loud.returncode == 1 and "REGRESSION" in loud.stdout and "+30.0%" in loud.stdout
    assert json.loads((tmp_path / "slow" / "results.json").read_text())["cells"]


def test_compare_prints_ids_and_problems_as_text_not_markup(tmp_path: Path) -> None:
    # "[/usr/lib]" would be a closing markup tag (a crash), "[bold]" a style (swallowed).
    odd = "ocr/rec/m@[/usr/lib]-[bold]/cpu/fp32/single-stream"
    save_results(run_with([cell((10.0,) * 3, 9.8, 10.2, cell_id=odd)]), tmp_path / "base")
    save_results(run_with([]), tmp_path / "run")
    result = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "compare", str(tmp_path / "base"),
         str(tmp_path / "run")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"REGRESSION {odd}: in the baseline, missing from this run" in result.stdout.splitlines()
