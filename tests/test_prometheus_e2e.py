"""One real smoke run (the OCR det cell) exported with --prometheus and --pushgateway: the textfile and
the Pushgateway's scrape carry what results.json says, in seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_prometheus import portbench_samples, pushgateway, samples_of, scrape  # noqa: F401

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


@pytest.fixture(scope="module")
def smoke_run(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path, pushgateway: str  # noqa: F811
) -> tuple[Path, Path, str]:
    folder = tmp_path_factory.mktemp("smoke")
    run_dir, prom = folder / "run", folder / "node" / "portbench.prom"
    result = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "run", "--suite", "smoke", "--backend", "cpu",
         "--only", "ocr/det", "--out", str(run_dir), "--cache-dir", str(cache_dir),
         "--prometheus", str(prom), "--pushgateway", pushgateway, "--pushgateway-job", "e2e"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr
    return run_dir, prom, pushgateway


def value_of(samples: dict[SeriesKey, float], name: str, cell: str, **labels: str) -> float:
    found = [v for (n, ls), v in samples.items()
             if n == name and ("cell", cell) in ls and set(labels.items()) <= ls]
    assert len(found) == 1, (name, cell, labels, found)
    return found[0]


def test_real_run_exports_what_its_results_say(smoke_run: tuple[Path, Path, str]) -> None:
    run_dir, prom, gateway = smoke_run
    document = json.loads((run_dir / "results.json").read_text())
    cells = [c for c in document["cells"] if c["status"] == "passed"]
    assert cells
    for samples in (samples_of(prom.read_text()), portbench_samples(scrape(gateway), "e2e")):
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
