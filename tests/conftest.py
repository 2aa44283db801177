"""Shared test set-up: hardware markers and a per-session cache for generated data and models."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


def hardware_backends() -> dict[str, str]:
    """Marker kind -> portbench backend whose probe decides whether the test can run here, from each
    backend's ``hardware_kind`` declaration (the first backend declaring a kind wins)."""
    from portbench.backends.registry import backend_classes

    kinds: dict[str, str] = {}
    for name, cls in backend_classes().items():
        if cls.hardware_kind is not None:
            kinds.setdefault(cls.hardware_kind, name)
    return kinds


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from portbench.backends.registry import create_backend

    probes: dict[str, str | None] = {}
    kinds: dict[str, str] | None = None
    for item in items:
        marker = item.get_closest_marker("hardware")
        if marker is None:
            continue
        kind = marker.args[0] if marker.args else "gpu"
        if kind not in probes:
            kinds = hardware_backends() if kinds is None else kinds
            backend_name = kinds.get(kind, kind)
            status = create_backend(backend_name).probe()
            probes[kind] = None if status.available else status.reason
        if probes[kind] is not None:
            item.add_marker(pytest.mark.skip(reason=f"needs {kind} hardware: {probes[kind]}"))


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole test session, so generated datasets are built once."""
    return tmp_path_factory.mktemp("portbench-cache")


@dataclass(frozen=True)
class SmokeRun:
    """The session's one real run of the smoke suite on the CPU (``smoke_run``)."""

    run_dir: Path
    prometheus_file: Path  # what the run itself wrote with --prometheus
    completed: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> SmokeRun:
    """``portbench run --suite smoke --backend cpu --prometheus FILE``, once per session: the tests
    that only read a real run (its results, summary, logs, outputs and export) share it instead of
    each running smoke again (about a minute on two cores each). Copy it before writing into it."""
    base = tmp_path_factory.mktemp("smoke-run")
    run_dir, prometheus_file = base / "run", base / "node" / "portbench.prom"
    completed = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "run", "--suite", "smoke", "--backend", "cpu",
         "--out", str(run_dir), "--cache-dir", str(cache_dir), "--prometheus", str(prometheus_file)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    return SmokeRun(run_dir, prometheus_file, completed)
