"""Export a run in pytest-benchmark's saved-JSON format.

``pytest-benchmark compare`` and CI trackers that read pytest-benchmark files (github-action-benchmark,
codspeed-style dashboards) then work on portbench runs. One benchmark per passed cell that has raw
latency samples; the statistics are computed by pytest-benchmark's own ``Stats`` class from the raw
samples (in seconds, as that format expects), so every field means exactly what the tool expects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from portbench.errors import PortbenchError
from portbench.harness.reporting import Report
from portbench.harness.results import CellResult, RunResults, write_atomic
from portbench.installed import distribution_version

_64_BIT_ARCHITECTURES = ("x86_64", "amd64", "aarch64", "arm64", "loongarch64", "ppc64le", "s390x", "riscv64")


def _pytest_benchmark_version() -> str:
    return distribution_version("pytest-benchmark") or "5.0.0"


def machine_id(platform: Mapping[str, Any]) -> str:
    """pytest-benchmark's storage folder name, e.g. ``Linux-CPython-3.11-64bit``, for the run's machine."""
    python = platform.get("python", {})
    implementation = python.get("implementation") or "CPython"
    major_minor = ".".join(str(python.get("version", "0.0")).split(".")[:2])
    architecture = str(platform.get("cpu", {}).get("architecture", "")).lower()
    bits = "64bit" if architecture in _64_BIT_ARCHITECTURES else "32bit"
    return f"Linux-{implementation}-{major_minor}-{bits}"


def _machine_info(results: RunResults) -> dict[str, Any]:
    platform = results.platform
    cpu = platform.get("cpu", {})
    python = platform.get("python", {})
    return {
        "node": platform.get("machine_id_sha256") or "",
        "processor": cpu.get("model_name", ""),
        "machine": cpu.get("architecture", ""),
        "python_implementation": python.get("implementation", ""),
        "python_version": python.get("version", ""),
        "release": platform.get("kernel", ""),
        "system": "Linux",
        "cpu": {
            "vendor": cpu.get("vendor", ""),
            "brand_raw": cpu.get("model_name", ""),
            "arch": cpu.get("architecture", ""),
            "count": cpu.get("cores_logical"),
            "flags": list(cpu.get("flags_of_interest", [])),
        },
        "paddle": platform.get("paddle", {}),
        "portbench_version": results.portbench_version,
    }


def _commit_info(results: RunResults) -> dict[str, Any]:
    return {
        "id": results.git_sha or "unversioned",
        "time": None,
        "author_time": None,
        "dirty": False,
        "project": "portbench",
        "branch": "(unknown)",
    }


def _benchmark(
    results: RunResults, cell: CellResult, latency_ms: list[float], include_data: bool
) -> dict[str, Any]:
    from pytest_benchmark.stats import Stats

    stats = Stats()
    for value in latency_ms:
        stats.update(value / 1e3)
    stats_dict: dict[str, Any] = stats.as_dict()
    if include_data:
        stats_dict["data"] = list(stats.data)
    stats_dict["iterations"] = 1

    extra: dict[str, Any] = {"workload": cell.workload, "task": cell.task, "device": cell.device}
    if cell.latency_ms is not None:
        extra.update(
            p50_ms=cell.latency_ms.p50,
            p90_ms=cell.latency_ms.p90,
            p99_ms=cell.latency_ms.p99,
            p999_ms=cell.latency_ms.p999,
        )
    if cell.throughput is not None:
        extra["samples_per_s"] = cell.throughput.samples_per_s
    # Repeated-trial verdicts, where the worker recorded them (a ``trials`` field on the cell).
    trials = getattr(cell, "trials", None)
    if trials is not None:
        extra["unstable"] = trials.unstable
        extra["cv"] = trials.cv
    extra.update({f"metric_{name}": value for name, value in cell.metrics.items()})

    return {
        "group": f"{cell.workload}/{cell.task}",
        "name": cell.cell_id,
        "fullname": f"portbench::{results.suite}::{cell.cell_id}",
        "params": {
            "model": cell.model,
            "backend": cell.backend,
            "precision": cell.precision,
            "scenario": cell.scenario,
            "dataset": cell.dataset,
        },
        "param": f"{cell.backend}-{cell.precision}-{cell.scenario}",
        "extra_info": extra,
        "options": {
            "disable_gc": False,
            "timer": "time.perf_counter_ns",
            "min_rounds": len(latency_ms),
            "max_time": None,
            "min_time": None,
            "warmup": bool(cell.warmup),
        },
        "stats": stats_dict,
    }


def to_pytest_benchmark(results: RunResults, *, include_data: bool = True) -> dict[str, Any]:
    """The run as a pytest-benchmark document: one benchmark per passed cell with latency samples."""
    benchmarks = []
    for cell in results.cells:
        latency_ms = cell.raw.get("latency_ms") or []
        if cell.status == "passed" and latency_ms:
            benchmarks.append(_benchmark(results, cell, [float(v) for v in latency_ms], include_data))
    return {
        "machine_info": _machine_info(results),
        "commit_info": _commit_info(results),
        "benchmarks": benchmarks,
        "datetime": results.finished_at or results.started_at,
        "version": _pytest_benchmark_version(),
    }


def save_pytest_benchmark(results: RunResults, storage: Path, name: str | None = None) -> Path:
    """Write the export where ``pytest-benchmark compare --storage STORAGE`` finds it:
    ``STORAGE/<machine id>/NNNN_<name>.json`` with the next free counter, as pytest-benchmark numbers runs."""
    document = to_pytest_benchmark(results)
    if not document["benchmarks"]:
        raise PortbenchError(f"run {results.run_id} has no passed cell with latency samples to export")
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or results.run_id).strip("_") or "portbench"
    folder = storage / machine_id(results.platform)
    folder.mkdir(parents=True, exist_ok=True)
    counters = [int(p.name[:4]) for p in folder.glob("[0-9][0-9][0-9][0-9]_*.json")]
    path = folder / f"{max(counters, default=0) + 1:04d}_{label}.json"
    write_atomic(path, json.dumps(document, ensure_ascii=True, indent=4, allow_nan=False))
    return path


class PytestBenchmarkExport(Report):
    """The run as a pytest-benchmark file under a storage folder (``destination``), for
    ``pytest-benchmark compare --storage``."""

    name = "pytest-benchmark"
    description = "pytest-benchmark JSON in a storage folder"

    def render(self, results: RunResults, destination: Path | None, console: Console) -> Path | None:
        if destination is None:
            raise PortbenchError("the pytest-benchmark export needs a storage folder")
        return save_pytest_benchmark(results, destination)
