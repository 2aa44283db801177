"""The run API with an in-process cell runner: planning, skips, atomic saves, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from portbench.backends.base import Precision
from portbench.errors import PortbenchError
from portbench.harness import api
from portbench.harness.config import CellPlan, RunOptions
from portbench.harness.results import RunResults, load_results, validate_document
from portbench.harness.runner import CellOutcome, PlannedCell, Runner, resume_results
from portbench.harness.suite import get_suite
from portbench.harness.worker import new_cell_result

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

PLATFORM = {
    "cpu": {"vendor": "GenuineIntel", "model_name": "test", "architecture": "x86_64"},
    "memory_total_bytes": 1,
    "os": {"id": "debian", "name": "Debian", "version_id": "12"},
    "kernel": "6",
    "python": {"version": "3.11"},
    "paddle": {"version": "3.2.2", "commit": None},
}


def make_options(tmp_path: Path, precisions: tuple[Precision, ...] = (Precision.FP32,)) -> RunOptions:
    return RunOptions(suite="smoke", backends=("cpu",), precisions=precisions, cache_dir=tmp_path / "cache")


def make_results(options: RunOptions) -> RunResults:
    return RunResults(
        run_id="test-run", started_at="2026-11-23T00:00:00+00:00", portbench_version="0", suite="smoke",
        platform=PLATFORM, request=options.to_dict(),
    )


def plan_smoke(options: RunOptions, run_dir: Path) -> list[PlannedCell]:
    return api.plan_run(get_suite("smoke"), options, run_dir).cells


class Recorder:
    """A RunObserver that checks results.json after every finished cell."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.started: list[str] = []
        self.seen: list[str] = []

    def cell_started(self, cell: PlannedCell) -> None:
        self.started.append(cell.plan.cell_id)

    def cell_finished(self, result: object) -> None:
        on_disk = json.loads((self.run_dir / "results.json").read_text())
        validate_document(on_disk)
        self.seen.append(on_disk["cells"][-1]["cell_id"])
        assert [c["cell_id"] for c in on_disk["cells"]] == self.seen


def test_plan_expands_suite_by_backend_and_precision(tmp_path: Path) -> None:
    options = make_options(tmp_path, (Precision.FP32, Precision.FP16))
    planned = plan_smoke(options, tmp_path)
    suite_cells = len(get_suite("smoke").cells)
    assert len(planned) == 2 * suite_cells
    assert len({p.plan.cell_id for p in planned}) == len(planned)
    # The CPU has no FP16 kernels in Paddle Inference: skipped before any worker starts, with why.
    fp16 = [p for p in planned if p.plan.precision is Precision.FP16]
    assert all(p.skip_reason and "FP16" in p.skip_reason for p in fp16)
    assert all(p.skip_reason is None for p in planned if p.plan.precision is Precision.FP32)


def fake_runner(fail_ids: set[str]) -> tuple[list[str], object]:
    calls: list[str] = []

    def run(plan: CellPlan, timeout_s: float) -> CellOutcome:
        calls.append(plan.cell_id)
        if plan.cell_id in fail_ids:
            return CellOutcome(new_cell_result(plan, "failed", "worker killed by signal SIGKILL"))
        result = new_cell_result(plan, "passed")
        result.metrics = {"det_hmean": 0.5}
        return CellOutcome(result)

    return calls, run


def test_each_cell_is_saved_as_it_finishes(tmp_path: Path) -> None:
    options = make_options(tmp_path)
    planned = plan_smoke(options, tmp_path)
    failing = {planned[1].plan.cell_id}
    calls, run = fake_runner(failing)
    plan = api.plan_run(get_suite("smoke"), options, tmp_path)
    recorder = Recorder(tmp_path)
    api.execute(plan, recorder, cell_runner=run)
    assert recorder.started == recorder.seen == [p.plan.cell_id for p in planned]
    final = load_results(tmp_path)
    assert final.finished_at is not None
    statuses = {c.cell_id: c.status for c in final.cells}
    assert statuses[planned[1].plan.cell_id] == "failed"
    assert sum(s == "passed" for s in statuses.values()) == len(planned) - 1
    assert calls == [p.plan.cell_id for p in planned]


def test_resume_runs_only_missing_cells(tmp_path: Path) -> None:
    options = make_options(tmp_path)
    plan = api.plan_run(get_suite("smoke"), options, tmp_path)
    _, run = fake_runner(set())
    first = Runner(plan.results, tmp_path, plan.options, cell_runner=run)  # type: ignore[arg-type]
    iterator = first.run(plan.cells)
    next(iterator)  # one cell finishes, then the run "dies"
    del iterator

    _, resumed_options = resume_results(tmp_path)
    assert resumed_options == plan.options
    resumed = api.resume_run(tmp_path)
    assert [c.plan.cell_id for c in resumed.pending] == [c.plan.cell_id for c in plan.cells[1:]]
    calls, run = fake_runner(set())
    api.execute(resumed, cell_runner=run)
    assert calls == [c.plan.cell_id for c in plan.cells[1:]]
    final = load_results(tmp_path)
    assert {c.cell_id for c in final.cells} == {c.plan.cell_id for c in plan.cells}
    assert final.finished_at is not None


def test_skipped_cells_never_start_a_worker(tmp_path: Path) -> None:
    options = make_options(tmp_path)
    plan = plan_smoke(options, tmp_path)[0].plan
    calls, run = fake_runner(set())
    runner = Runner(make_results(options), tmp_path, options, cell_runner=run)  # type: ignore[arg-type]
    ((_, result),) = list(runner.run([PlannedCell(plan, "no such precision here")]))
    assert calls == []
    assert result.status == "skipped" and result.reason == "no such precision here"


def test_resume_of_a_directory_without_results_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PortbenchError, match="no results"):
        resume_results(tmp_path)


def test_a_plan_resolves_what_was_left_open(tmp_path: Path) -> None:
    # As the README's library example asks: no precisions given, so the suite's own (smoke: fp32).
    plan = api.plan_run(get_suite("smoke"), RunOptions(suite="smoke", backends=("cpu",)), tmp_path / "run")
    assert plan.options.precisions == (Precision.FP32,)
    assert plan.options.backends == ("cpu",)
    assert [c.plan.cell_id for c in plan.cells] == [
        t.cell_id("cpu", "fp32") for t in get_suite("smoke").cells
    ]
    assert not (tmp_path / "run").exists()  # planning writes nothing


def test_plan_refusals_come_before_any_work(tmp_path: Path) -> None:
    suite = get_suite("smoke")
    with pytest.raises(PortbenchError, match="unknown backend 'quantum'"):
        api.plan_run(suite, RunOptions(suite="smoke", backends=("quantum",)), tmp_path / "run")
    with pytest.raises(PortbenchError, match="matches no cell"):
        api.plan_run(suite, RunOptions(suite="smoke", backends=("cpu",), only=("nothing",)), tmp_path / "r")
    with pytest.raises(PortbenchError, match="model directory for 'det' does not exist"):
        api.plan_run(
            suite, RunOptions(suite="smoke", backends=("cpu",), model_dirs={"det": tmp_path / "x"}), tmp_path
        )
    assert not (tmp_path / "run").exists() and not (tmp_path / "r").exists()
