"""A third party's workload and backend, each its own package outside portbench (tests/plugins),
found through entry points alone: ``run``, ``parity`` and ``report`` work on them with no edit to
portbench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).parent / "plugins"
TOY_SUITE = """
[suite]
name = "toy"
description = "A third party's regression workload"
precisions = ["fp32", "int8"]
trials = 1

[measure]
warmup_queries = 1
min_queries = 5
max_queries = 20
min_duration_s = 0.0
max_duration_s = 1.0
warmup_stable_windows = 0

[[cells]]
workload = "toy"
task = "regress"
model = "toy-linear"
dataset = "seeded"
"""


def portbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(PLUGINS / "toy_workload"), str(PLUGINS / "toy_backend"), environment.get("PYTHONPATH", "")]
    )
    return subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd, env=environment, check=False,
    )


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    work = tmp_path_factory.mktemp("toy")
    (work / "toy.toml").write_text(TOY_SUITE)
    result = portbench(
        "run", "--suite", str(work / "toy.toml"), "--backend", "cpu", "--backend", "toycpu",
        "--out", str(work / "run"), "--cache-dir", str(work / "cache"), "--threads", "1", cwd=work,
    )
    return work / "run", result


def test_the_plugins_are_listed(tmp_path: Path) -> None:
    backends = portbench("backends", cwd=tmp_path)
    assert backends.returncode == 0, backends.stderr
    assert "toycpu" in backends.stdout


def test_run_measures_and_judges_the_third_party_cells(
    toy_run: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    run_dir, result = toy_run
    assert result.returncode == 0, result.stderr
    cells = {c["cell_id"]: c for c in json.loads((run_dir / "results.json").read_text())["cells"]}
    assert set(cells) == {
        f"toy/regress/toy-linear/{backend}/paddle/{precision}/single-stream"
        for backend in ("cpu", "toycpu") for precision in ("fp32", "int8")
    }
    fp32_cpu = cells["toy/regress/toy-linear/cpu/paddle/fp32/single-stream"]
    fp32_toy = cells["toy/regress/toy-linear/toycpu/paddle/fp32/single-stream"]
    for cell in (fp32_cpu, fp32_toy):
        assert cell["status"] == "passed", cell["reason"]
        # Targets are the model's own map plus N(0, 0.05) noise: RMSE near 0.05, R² near 1.
        assert 0.03 < cell["metrics"]["rmse"] < 0.07
        assert cell["metrics"]["r2"] > 0.99
        assert cell["latency_ms"]["n"] >= 5
    # The toy backend declares FP32 only; the toy workload offers no calibration data for INT8.
    toy_int8 = cells["toy/regress/toy-linear/toycpu/paddle/int8/single-stream"]
    assert (toy_int8["status"], toy_int8["reason"]) == ("skipped", "the toy backend runs FP32 only")
    assert cells["toy/regress/toy-linear/cpu/paddle/int8/single-stream"]["status"] == "skipped"
    # Parity against the FP32 CPU cell uses the workload's own metric direction and comparer.
    assert fp32_cpu["parity"]["role"] == "reference"
    assert fp32_toy["parity"]["verdict"] == "pass"
    assert fp32_toy["parity"]["task"]["rmse"]["gate"] == 0.999
    assert fp32_toy["parity"]["output"]["metrics"]["close_fraction"] == 1.0


def test_parity_and_report_read_the_third_party_results(
    toy_run: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    run_dir, _ = toy_run
    # A gates file asking for a floor under the toy's own output metric: known, so accepted.
    gates = tmp_path / "gates.toml"
    gates.write_text("[gates]\nmin_output = { close_fraction = 1.0 }\n")
    judged = portbench("parity", str(run_dir), "--gates", str(gates), cwd=tmp_path)
    assert judged.returncode == 0, judged.stderr
    assert "2 pass, 0 fail, 2 skipped" in judged.stderr  # the reference passes as the reference
    report = portbench("report", str(run_dir), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    summary = (run_dir / "summary.md").read_text()
    assert "toy-linear" in summary and "rmse" in summary
