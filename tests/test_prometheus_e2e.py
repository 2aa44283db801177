"""The session's real smoke run (``smoke_run``, tests/conftest.py): the textfile the run wrote with
--prometheus, and the same results pushed with ``portbench report --pushgateway``, carry what
results.json says, in seconds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SmokeRun
from test_prometheus import portbench_samples, pushgateway, samples_of, scrape  # noqa: F401

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture(scope="module")
def pushed(
    tmp_path_factory: pytest.TempPathFactory, smoke_run: SmokeRun, pushgateway: str  # noqa: F811
) -> str:
    """The run pushed to a real Pushgateway by the export ``run --pushgateway`` also calls, from a
    copy of the run (``report`` writes summary.md again)."""
    copy = tmp_path_factory.mktemp("pushed") / "run"
    copy.mkdir()
    shutil.copy(smoke_run.run_dir / "results.json", copy / "results.json")
    result = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "report", str(copy),
         "--pushgateway", pushgateway, "--pushgateway-job", "e2e"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return pushgateway


def value_of(samples: dict[SeriesKey, float], name: str, cell: str, **labels: str) -> float:
    found = [v for (n, ls), v in samples.items()
             if n == name and ("cell", cell) in ls and set(labels.items()) <= ls]
    assert len(found) == 1, (name, cell, labels, found)
    return found[0]


def assert_exports(samples: dict[SeriesKey, float], run_dir: Path) -> None:
    document = json.loads((run_dir / "results.json").read_text())
    cells = [c for c in document["cells"] if c["status"] == "passed"]
    assert len(cells) == 5  # every smoke cell passed and is exported
    for cell in cells:
        cell_id = cell["cell_id"]
        assert value_of(samples, "portbench_latency_seconds", cell_id, quantile="0.5") == pytest.approx(
            cell["latency_ms"]["p50"] / 1000)
        assert value_of(samples, "portbench_throughput_samples_per_second", cell_id) == pytest.approx(
            cell["throughput"]["samples_per_s"])
        assert value_of(samples, "portbench_cell_status", cell_id, status="passed") == 1
        assert value_of(samples, "portbench_latency_samples", cell_id) == cell["latency_ms"]["n"]
        if cell["latency_ms"]["p90"] is None:
            with pytest.raises(AssertionError):
                value_of(samples, "portbench_latency_seconds", cell_id, quantile="0.9")


def test_the_run_writes_a_textfile_that_says_what_its_results_say(smoke_run: SmokeRun) -> None:
    assert_exports(samples_of(smoke_run.prometheus_file.read_text()), smoke_run.run_dir)


def test_the_pushed_run_scrapes_as_what_its_results_say(smoke_run: SmokeRun, pushed: str) -> None:
    assert_exports(portbench_samples(scrape(pushed), "e2e"), smoke_run.run_dir)
