"""End to end: a real smoke cell run with --junit and --step-summary, then compared with itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from junitparser import JUnitXml


def portbench(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", *args],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )


def test_a_real_run_writes_junit_and_a_step_summary_and_compares_clean(
    tmp_path: Path, cache_dir: Path
) -> None:
    github = tmp_path / "github_step_summary.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(github)}
    run_dir, junit, summary = tmp_path / "run", tmp_path / "run.xml", tmp_path / "run.md"
    done = portbench(
        "run", "--suite", "smoke", "--backend", "cpu", "--only", "ernie/perf", "--mode", "performance",
        "--threads", "1", "--out", str(run_dir), "--cache-dir", str(cache_dir),
        "--junit", str(junit), "--step-summary", str(summary), env=env,
    )
    assert done.returncode == 0, done.stderr
    (suite,) = list(JUnitXml.fromfile(str(junit)))
    (case,) = list(suite)
    assert case.name == "ernie/perf/ernie-3.0-pico-synthetic@pico-s32-b1/cpu/paddle/fp32/single-stream"
    assert case.is_passed and case.time > 0
    text = summary.read_text(encoding="utf-8")
    assert "**OK** (exit 0): 1 passed, 0 failed, 0 skipped" in text
    assert github.read_text(encoding="utf-8") == text

    # The same run against itself: identical samples, a median ratio of exactly 1, no change. The
    # interval is the run's own query noise, which passed ±10 % while another run shared the two
    # cores: a wide limit keeps this about the JUnit case, not the host.
    compared = portbench(
        "compare", str(run_dir), str(run_dir), "--max-slowdown", "0.5", "--junit", str(tmp_path / "c.xml"),
        env=env,
    )
    assert compared.returncode == 0, compared.stdout + compared.stderr
    (suite,) = list(JUnitXml.fromfile(str(tmp_path / "c.xml")))
    assert [(c.name, c.is_passed) for c in suite] == [(case.name, True)]
    assert "latency no change: median +0.0%" in (next(iter(suite)).system_out or "")
    assert github.read_text(encoding="utf-8").count("## portbench") == 2
