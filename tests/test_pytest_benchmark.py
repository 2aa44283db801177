"""pytest-benchmark interoperability: the JSON export (read back by ``pytest-benchmark compare``) and
the pytest plugin that feeds portbench's own samples into the ``benchmark`` fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portbench.errors import PortbenchError
from portbench.harness.measure import summarize_ms
from portbench.harness.results import CellResult, CellStatus, RunResults, Throughput
from portbench.reports.pytest_benchmark import machine_id, save_pytest_benchmark, to_pytest_benchmark

pytest_plugins = ["pytester"]

PLATFORM: dict[str, Any] = {
    "cpu": {"vendor": "AMD", "model_name": "AMD EPYC", "architecture": "x86_64", "cores_logical": 2},
    "memory_total_bytes": 1,
    "os": {"id": "ubuntu", "name": "Ubuntu", "version_id": "22.04"},
    "kernel": "6.1.0",
    "python": {"version": "3.11.7", "implementation": "CPython"},
    "paddle": {"version": "3.2.2", "commit": None},
}


def cell(cell_id: str, latency_ms: list[float], status: CellStatus = "passed") -> CellResult:
    return CellResult(
        cell_id=cell_id,
        workload="ocr",
        task="rec",
        model="ppocrv4-mobile-rec",
        backend="cpu",
        precision="fp32",
        scenario="single-stream",
        dataset="synth-smoke",
        status=status,
        latency_ms=summarize_ms(latency_ms) if latency_ms else None,
        throughput=Throughput(samples_per_s=100.0, queries_per_s=100.0) if latency_ms else None,
        raw={"latency_ms": latency_ms} if latency_ms else {},
        metrics={"rec_char_accuracy": 0.97} if latency_ms else {},
    )


def run(*cells: CellResult) -> RunResults:
    return RunResults(
        run_id="20250101-000000-smoke",
        started_at="2025-01-01T00:00:00+00:00",
        portbench_version="0.1.0",
        suite="smoke",
        platform=PLATFORM,
        git_sha="0123abcd",
        cells=list(cells),
    )


def test_export_has_one_benchmark_per_passed_cell_in_seconds() -> None:
    document = to_pytest_benchmark(
        run(
            cell("ocr/rec/cpu/fp32", [1.0, 2.0, 3.0, 4.0]),
            cell("ocr/det/npu/fp16", [], status="skipped"),
            cell("ocr/det/cpu/int8", [], status="failed"),
        )
    )
    assert set(document) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert [b["name"] for b in document["benchmarks"]] == ["ocr/rec/cpu/fp32"]
    bench = document["benchmarks"][0]
    stats = bench["stats"]
    assert stats["data"] == pytest.approx([0.001, 0.002, 0.003, 0.004])
    assert stats["min"] == pytest.approx(0.001) and stats["max"] == pytest.approx(0.004)
    assert stats["mean"] == pytest.approx(0.0025) and stats["median"] == pytest.approx(0.0025)
    assert stats["rounds"] == 4 and stats["iterations"] == 1
    assert stats["total"] == pytest.approx(0.010)
    assert stats["ops"] == pytest.approx(400.0)  # 4 rounds in 10 ms
    # even count: q1 / q3 are the medians of the lower and upper halves
    assert stats["q1"] == pytest.approx(0.0015) and stats["q3"] == pytest.approx(0.0035)
    assert bench["group"] == "ocr/rec" and bench["param"] == "cpu-fp32-single-stream"
    assert bench["extra_info"]["metric_rec_char_accuracy"] == 0.97
    assert bench["extra_info"]["p50_ms"] == pytest.approx(2.5)
    assert document["commit_info"]["id"] == "0123abcd"
    assert json.loads(json.dumps(document, allow_nan=False)) == document


def test_machine_id_follows_pytest_benchmark_naming() -> None:
    assert machine_id(PLATFORM) == "Linux-CPython-3.11-64bit"


def test_nothing_to_export_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(PortbenchError, match="no passed cell"):
        save_pytest_benchmark(run(cell("ocr/det/npu/fp16", [], status="skipped")), tmp_path)


def pytest_benchmark_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_pytest_benchmark_compare_reads_the_export(tmp_path: Path) -> None:
    storage = tmp_path / ".benchmarks"
    first = save_pytest_benchmark(
        run(cell("ocr/rec/cpu/fp32", [5.0, 5.2, 4.9, 5.1]), cell("ocr/det/cpu/fp32", [30.0, 31.0, 29.5])),
        storage,
        name="smoke run 1",
    )
    second = save_pytest_benchmark(run(cell("ocr/rec/cpu/fp32", [5.3, 5.4, 5.2, 5.5])), storage)
    assert first.name == "0001_smoke_run_1.json"
    assert second.name == "0002_20250101-000000-smoke.json"
    assert first.parent.name == "Linux-CPython-3.11-64bit"

    listed = pytest_benchmark_cli("--storage", str(storage), "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "0001_smoke_run_1.json" in listed.stdout and "0002_" in listed.stdout

    compared = pytest_benchmark_cli("--storage", str(storage), "compare", "0001", "0002", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "Failed to load" not in compared.stdout + compared.stderr
    assert "ocr/rec/cpu/fp32" in compared.stdout and "ocr/det/cpu/fp32" in compared.stdout
    # the rec cell appears once per run file: both files were read
    assert compared.stdout.count("ocr/rec/cpu/fp32") >= 2


PLUGIN_TEST = """
import json
import pytest
from portbench.harness.workload import Query

calls = []

@pytest.mark.portbench(warmup_queries=0, min_queries=12, max_queries=12, min_duration_s=0.0,
                       warmup_stable_windows=0)
def test_fake_model(portbench_benchmark):
    queries = [Query(run=lambda: calls.append(0)), Query(run=lambda: calls.append(1))]
    measurement = portbench_benchmark(queries)
    with open("measured.json", "w") as handle:
        json.dump({"latencies_ns": measurement.latencies_ns, "calls": len(calls)}, handle)
"""


def test_plugin_feeds_portbench_samples_into_pytest_benchmark(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fake=PLUGIN_TEST)
    outcome = pytester.runpytest_subprocess("--benchmark-json=bench.json", "-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=1)
    measured = json.loads((pytester.path / "measured.json").read_text())
    assert measured["calls"] == 2 + 12  # one warm-up pass over two queries, then the marker's 12
    document = json.loads((pytester.path / "bench.json").read_text())
    (bench,) = document["benchmarks"]
    assert bench["name"] == "test_fake_model"
    assert bench["stats"]["rounds"] == 12 and bench["stats"]["iterations"] == 1
    # the very samples portbench's loop measured, converted to seconds: one engine, not two
    assert bench["stats"]["data"] == pytest.approx([ns / 1e9 for ns in measured["latencies_ns"]])
    assert bench["extra_info"]["engine"] == "portbench"
    assert bench["extra_info"]["p999_ms"] is None  # 12 samples cannot support p99.9
    assert bench["extra_info"]["warmup"]["queries"] == 2


def test_plugin_with_benchmarks_disabled_still_runs_the_queries(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fake=PLUGIN_TEST)
    outcome = pytester.runpytest_subprocess("--benchmark-disable", "-p", "no:cacheprovider")
    outcome.assert_outcomes(passed=1)
    measured = json.loads((pytester.path / "measured.json").read_text())
    assert measured["calls"] == 2 + 2  # one warm-up pass and one timed pass
    assert len(measured["latencies_ns"]) == 2


def test_plugin_refuses_a_second_use_of_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_twice="""
from portbench.harness.workload import Query
from portbench.harness.measure import MeasureSettings

def test_twice(portbench_benchmark):
    settings = MeasureSettings(min_queries=2, max_queries=2, min_duration_s=0.0, warmup_stable_windows=0)
    portbench_benchmark([Query(run=lambda: None)], settings)
    portbench_benchmark([Query(run=lambda: None)], settings)
"""
    )
    outcome = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    outcome.assert_outcomes(failed=1)
    outcome.stdout.fnmatch_lines(["*already used in portbench mode*"])
