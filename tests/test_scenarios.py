"""Offline and multi-stream scenarios in the worker, the per-stage inference split, and the suite."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from portbench.backends.base import InferenceSession, Precision, StageTimes
from portbench.errors import PortbenchError
from portbench.harness.config import CellPlan
from portbench.harness.measure import MeasureSettings
from portbench.harness.results import CellResult, validate_document
from portbench.harness.suite import get_suite
from portbench.harness.worker import _measure_inference_stages, _measure_scenario, new_cell_result
from portbench.harness.workload import AccuracyResult, PreparedTask, Query, ScenarioUnsupported, TaskSpec

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

QUICK = MeasureSettings(
    warmup_queries=1, min_queries=6, max_queries=6, min_duration_s=0.0, max_duration_s=5.0,
    warmup_stable_windows=0,
)
SLEEP_S = 0.004


class FakeBackend:
    def __init__(self) -> None:
        self.synchronized = 0

    def synchronize(self) -> None:
        self.synchronized += 1

    def power_sources(self) -> list[object]:
        return []  # a fake device has no power counter


class FakeSession:
    """Sleeps per run (releasing the GIL, as Paddle does); counts clones; fixed stage times."""

    def __init__(self, clones: list[FakeSession] | None = None) -> None:
        self.clones = clones if clones is not None else []
        self.runs = 0

    def run(self, feed: Sequence[np.ndarray]) -> list[np.ndarray]:
        self.runs += 1
        time.sleep(SLEEP_S)
        return [feed[0]]

    def run_staged(self, feed: Sequence[np.ndarray], times: StageTimes) -> list[np.ndarray]:
        times.h2d += 0.001
        times.compute += 0.002
        times.d2h += 0.003
        return [feed[0]]

    def clone(self) -> FakeSession:
        copy = FakeSession(self.clones)
        self.clones.append(copy)
        return copy


class SweepTask(PreparedTask):
    """Supports every hook: queries of ``batch_size`` samples, streams bound to the clones given."""

    def __init__(self, session: FakeSession) -> None:
        self.session = session
        self.stream_sessions: list[FakeSession] = []

    def evaluate(self) -> AccuracyResult:
        return AccuracyResult(metrics={})

    def _queries(self, session: FakeSession, batch_size: int) -> list[Query]:
        feed = [np.zeros((batch_size, 4), dtype=np.float32)]
        return [Query(run=lambda: session.run(feed), samples=batch_size) for _ in range(3)]

    def queries(self) -> Sequence[Query]:
        return self._queries(self.session, 1)

    def queries_for_batch(self, batch_size: int) -> Sequence[Query]:
        return self._queries(self.session, batch_size)

    def stream_queries(self, session_clones: Mapping[str, InferenceSession]) -> Sequence[Query]:
        session = session_clones["model"]
        assert isinstance(session, FakeSession)
        self.stream_sessions.append(session)
        return self._queries(session, 1)

    def staged_feeds(self) -> Sequence[tuple[InferenceSession, Sequence[np.ndarray], int]]:
        session: InferenceSession = self.session
        return [(session, [np.zeros((2, 4), dtype=np.float32)], 2)]


class PlainTask(PreparedTask):
    """Overrides no scenario hook."""

    task_label = "plain test task"

    def evaluate(self) -> AccuracyResult:
        return AccuracyResult(metrics={})

    def queries(self) -> Sequence[Query]:
        return [Query(run=lambda: None)]


def plan_for(scenario: str, tmp_path: Path, **params: object) -> CellPlan:
    return CellPlan(
        cell_id=f"fake/x/m/cpu/paddle/fp32/{scenario}",
        spec=TaskSpec("fake", "x", "m", "d", params, cache_dir=tmp_path),
        backend="cpu",
        device_id=0,
        precision=Precision.FP32,
        scenario=scenario,
        measure=QUICK,
        trials=1,
        mode="performance",
        cpu_threads=1,
    )


def measure(plan: CellPlan, task: PreparedTask, session: FakeSession) -> tuple[CellResult, list[int]]:
    result = new_cell_result(plan, "passed")
    sessions: Mapping[str, InferenceSession] = {"model": session}
    batch_sizes = _measure_scenario(
        plan, FakeBackend(), task, sessions, task.queries(), result
    )
    return result, batch_sizes


def test_offline_records_one_summary_per_batch_size(tmp_path: Path) -> None:
    session = FakeSession()
    plan = plan_for("offline", tmp_path, batch_sizes=[1, 4, 16])
    result, batch_sizes = measure(plan, SweepTask(session), session)
    assert batch_sizes == [1, 4, 16]
    sweep = result.raw["offline"]
    assert [entry["batch_size"] for entry in sweep] == [1, 4, 16]
    for entry in sweep:
        batch = entry["batch_size"]
        assert entry["samples_per_query"] == [batch] * 3
        assert entry["latency_ms"]["n"] == len(entry["latencies_ms"]) == 6
        # Every query holds ``batch`` samples, so samples/s is exactly batch x queries/s.
        throughput = entry["throughput"]
        assert throughput["samples_per_s"] == pytest.approx(batch * throughput["queries_per_s"])
        assert entry["latency_ms"]["min"] >= SLEEP_S * 1e3
    # The headline is the largest batch's.
    assert result.params["headline_batch_size"] == 16
    assert result.latency_ms is not None and result.throughput is not None
    assert result.raw["latency_ms"] == sweep[-1]["latencies_ms"]
    assert result.throughput.samples_per_s == pytest.approx(sweep[-1]["throughput"]["samples_per_s"])
    assert result.trials is None  # one loop per batch size, no stability trials


def test_multi_stream_runs_each_stream_on_its_own_clone(tmp_path: Path) -> None:
    session = FakeSession()
    task = SweepTask(session)
    result, _ = measure(plan_for("multi-stream", tmp_path, streams=3), task, session)
    assert len(session.clones) == 3
    assert task.stream_sessions == session.clones
    assert all(clone.runs > 0 for clone in session.clones) and session.runs == 0
    assert result.params["streams"] == 3
    per_stream = result.raw["stream_latency_ms"]
    assert len(per_stream) == 3 and all(len(s) == 6 for s in per_stream)
    assert len(result.raw["latency_ms"]) == 18
    assert result.latency_ms is not None and result.latency_ms.n == 18
    # Sleeping streams overlap: the aggregate beats what one stream could do at this latency.
    assert result.throughput is not None
    one_stream_limit = 1e3 / result.latency_ms.mean
    assert result.throughput.queries_per_s > 1.8 * one_stream_limit


def test_staged_feeds_fill_inference_stages(tmp_path: Path) -> None:
    result = new_cell_result(plan_for("single-stream", tmp_path), "passed")
    _measure_inference_stages(SweepTask(FakeSession()), result)
    assert result.stages_ms["inference_h2d"].p50 == pytest.approx(1.0)
    assert result.stages_ms["inference_compute"].p50 == pytest.approx(2.0)
    assert result.stages_ms["inference_d2h"].p50 == pytest.approx(3.0)
    assert len(result.raw["stages_ms"]["inference_compute"]) == result.stages_ms["inference_compute"].n >= 8


def test_tasks_without_staged_feeds_are_skipped(tmp_path: Path) -> None:
    result = new_cell_result(plan_for("single-stream", tmp_path), "passed")
    _measure_inference_stages(PlainTask(), result)
    assert result.stages_ms == {} and "stages_ms" not in result.raw


@pytest.mark.parametrize("scenario", ["offline", "multi-stream"])
def test_unsupported_scenario_is_a_one_line_error(tmp_path: Path, scenario: str) -> None:
    with pytest.raises(ScenarioUnsupported) as caught:
        measure(plan_for(scenario, tmp_path), PlainTask(), FakeSession())
    assert str(caught.value) == f"plain test task does not support the {scenario} scenario"


@pytest.mark.parametrize(
    ("scenario", "params", "message"),
    [
        ("warp-speed", {}, "unknown scenario .warp-speed."),
        ("offline", {"batch_sizes": [4, 4]}, "batch_sizes must be distinct positive integers"),
        ("offline", {"batch_sizes": [0]}, "batch_sizes must be distinct positive integers"),
        ("multi-stream", {"streams": 0}, "streams must be a positive integer"),
    ],
)
def test_bad_scenario_settings_are_user_errors(
    tmp_path: Path, scenario: str, params: dict[str, object], message: str
) -> None:
    session = FakeSession()
    with pytest.raises(PortbenchError, match=message):
        measure(plan_for(scenario, tmp_path, **params), SweepTask(session), session)


def test_scenarios_suite_cells_are_unique_and_carry_their_scenario() -> None:
    suite = get_suite("scenarios")
    ids = [cell.cell_id("cpu", "fp32") for cell in suite.cells]
    assert len(set(ids)) == len(ids)
    assert all(cell_id.endswith(f"/{cell.scenario}") for cell_id, cell in zip(ids, suite.cells, strict=True))
    offline_ernie = [c for c in suite.cells if c.task == "cls" and c.scenario == "offline"]
    assert [tuple(c.params["batch_sizes"]) for c in offline_ernie] == [(1, 8, 32)]
    rec = [c for c in suite.cells if c.task == "rec"]
    assert [(c.scenario, tuple(c.params["batch_sizes"])) for c in rec] == [("offline", (1, 6, 12))]


def test_cli_runs_the_ernie_scenarios_and_results_validate(tmp_path: Path, cache_dir: Path) -> None:
    """ERNIE perf (synthetic pico: seconds to build) offline and multi-stream through the real CLI."""
    out = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "run", "--suite", "scenarios", "--backend", "cpu",
         "--only", "ernie/perf", "--cache-dir", str(cache_dir), "--out", str(out), "--threads", "1"],
        capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    validate_document(document)
    cells = {cell["scenario"]: cell for cell in document["cells"]}
    assert set(cells) == {"offline", "multi-stream"}
    assert all(cell["status"] == "passed" for cell in cells.values())
    sweep = cells["offline"]["raw"]["offline"]
    assert [entry["batch_size"] for entry in sweep] == [1, 8, 32]
    assert all(set(entry["samples_per_query"]) == {entry["batch_size"]} for entry in sweep)
    multi = cells["multi-stream"]
    assert multi["params"]["streams"] == 2 and len(multi["raw"]["stream_latency_ms"]) == 2
    for cell in cells.values():
        assert {"inference_h2d", "inference_compute", "inference_d2h"} <= set(cell["stages_ms"])
        assert cell["manifest"]["scenario"] == cell["scenario"]
