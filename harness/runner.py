"""The runner: expands a suite into cells, runs each in its own worker process, saves after each.

A worker that crashes, is killed or hangs costs only its own cell (recorded as failed with the
cause); results are rewritten atomically after every cell, so an interrupted run leaves a valid file
and ``--resume`` finishes only what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import portbench
from portbench.backends.base import Backend
from portbench.backends.runtimes.base import Runtime
from portbench.backends.runtimes.registry import create_runtime
from portbench.errors import PortbenchError
from portbench.harness.config import CellPlan, RunOptions
from portbench.harness.parity import TaskCatalog
from portbench.harness.placement import fill_shared_placements, measured_placements
from portbench.harness.processes import pool_processes
from portbench.harness.results import (
    SCHEMA_VERSION,
    CellResult,
    RunResults,
    load_results,
    save_results,
    write_atomic,
)
from portbench.harness.scenarios import create_scenario
from portbench.harness.suite import Suite, get_suite
from portbench.harness.worker import new_cell_result, utc_now, worker_main
from portbench.harness.workload import TaskSpec, Workload

LOG_TAIL_LINES = 8
KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class PlannedCell:
    """A cell to run, or a skip decided before any worker starts (e.g. an unsupported precision)."""

    plan: CellPlan
    skip_reason: str | None = None


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def git_sha() -> str | None:
    """The checkout's commit when portbench runs from a git clone (editable installs)."""
    source = Path(portbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def plan_cells(
    suite: Suite,
    options: RunOptions,
    backends: Mapping[str, Backend],
    run_dir: Path,
    catalog: TaskCatalog | None = None,
    runtimes: Mapping[str, Runtime] | None = None,
) -> list[PlannedCell]:
    """Suite × backends × runtimes × precisions, in that nesting, keeping what ``--only`` selects. A
    cell whose model the user replaced (``--model-dir``) is named after the user's model, not the
    registered one. ``runtimes`` defaults to those ``options`` names (the suite's when it names none);
    a runtime that cannot drive a backend, or a precision it cannot run there, is a skipped cell."""
    catalog = catalog or TaskCatalog()
    if runtimes is None:
        runtimes = {name: create_runtime(name) for name in options.runtimes or suite.runtimes}
    planned: list[PlannedCell] = []
    for backend_name, backend, runtime_name, runtime in (
        (b, backend, r, runtime) for b, backend in backends.items() for r, runtime in runtimes.items()
    ):
        drives = runtime.drives(backend_name)
        support = runtime.precisions(backend) if drives.available else {}
        environment = dict(backend.worker_environment())
        for precision in options.precisions:
            for template in suite.cells:
                spec = TaskSpec(
                    template.workload, template.task, template.model, template.dataset,
                    dict(template.params),
                    cache_dir=options.cache_dir,
                    dataset_dir=options.dataset_dirs.get(template.workload),
                    model_dirs=options.model_dirs,
                )
                workload = catalog.workload(template.workload)
                model_label = workload.model_label(spec) if workload else template.model
                cell_id = template.cell_id(
                    backend_name, precision.value, model=model_label, runtime=runtime_name
                )
                if not options.selects(cell_id):
                    continue
                if workload is not None:
                    _check_int8_roles(workload, spec, cell_id)
                plan = CellPlan(
                    cell_id=cell_id,
                    spec=spec,
                    backend=backend_name,
                    device_id=options.device_id,
                    precision=precision,
                    scenario=template.scenario,
                    measure=suite.measure,
                    trials=suite.trials,
                    processes=suite.processes,
                    mode=options.mode,
                    cpu_threads=options.cpu_threads,
                    model_label=model_label,
                    environment=environment,
                    log_path=run_dir / "logs" / f"{cell_file_stem(cell_id)}.log",
                    runtime=runtime_name,
                )
                how = support.get(precision)
                skip = None
                if not drives.available:
                    skip = drives.reason
                elif how is None or not how.supported:
                    skip = how.how if how else f"{backend_name} does not declare {precision.value}"
                planned.append(PlannedCell(plan, skip))
    return planned


def _check_int8_roles(workload: Workload, spec: TaskSpec, cell_id: str) -> None:
    """A misspelt ``int8_roles`` fails the plan, before any cell runs (an hour of measuring later is
    too late)."""
    try:
        workload.int8_roles(spec)
    except PortbenchError as exc:
        raise PortbenchError(f"cell {cell_id}: {exc}") from None


OUTPUTS_DIR = "outputs"


def cell_file_stem(cell_id: str) -> str:
    return cell_id.replace("/", "__")


def save_outputs(run_dir: Path, cell_id: str, outputs: dict[str, Any]) -> str:
    """Write a cell's per-sample outputs atomically; returns the path relative to ``run_dir``."""
    relative = f"{OUTPUTS_DIR}/{cell_file_stem(cell_id)}.json"
    write_atomic(run_dir / relative, json.dumps(outputs, ensure_ascii=False, allow_nan=False))
    return relative


def _log_tail(path: Path | None) -> str:
    if path is None or not path.is_file():
        return ""
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return " | ".join(lines[-LOG_TAIL_LINES:])


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker did not exit"
    if exitcode < 0:
        try:
            return f"worker killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker killed by signal {-exitcode}"
    return f"worker exited with code {exitcode}"


@dataclass(frozen=True)
class CellOutcome:
    result: CellResult
    input_error: bool = False  # the failure was the user's input (bad model, bad data)
    outputs: dict[str, Any] | None = None  # per-sample outputs, saved beside results.json


def run_cell_in_worker(plan: CellPlan, timeout_s: float) -> CellOutcome:
    """Run one cell in a fresh process; never raises for anything the worker does."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=worker_main, args=(plan, sender, plan.environment), name=f"portbench-{plan.cell_id}"
    )
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout_s):
            try:
                message = receiver.recv()
            except EOFError:
                message = None
        else:
            process.kill()
            process.join(KILL_GRACE_S)
            tail = _log_tail(plan.log_path)
            reason = f"timed out after {timeout_s:g} s" + (f"; last output: {tail}" if tail else "")
            return CellOutcome(new_cell_result(plan, "failed", reason))
    finally:
        receiver.close()
    process.join(KILL_GRACE_S)
    if process.is_alive():
        process.kill()
        process.join(KILL_GRACE_S)
    if message is None:
        tail = _log_tail(plan.log_path)
        reason = _describe_exit(process.exitcode) + (f"; last output: {tail}" if tail else "")
        return CellOutcome(new_cell_result(plan, "failed", reason))
    kind, payload, outputs = message
    if kind == "ok":
        return CellOutcome(CellResult.from_dict(payload), outputs=outputs)
    if kind == "skipped":
        return CellOutcome(new_cell_result(plan, "skipped", str(payload)))
    return CellOutcome(new_cell_result(plan, "failed", str(payload)), input_error=kind == "input-error")


CellRunner = Callable[[CellPlan, float], CellOutcome]


class Runner:
    """Runs planned cells, saving results after each; reports progress through callbacks."""

    def __init__(
        self,
        results: RunResults,
        run_dir: Path,
        options: RunOptions,
        cell_runner: CellRunner = run_cell_in_worker,
    ) -> None:
        self.results = results
        self.run_dir = run_dir
        self.options = options
        self.cell_runner = cell_runner
        self.input_errors: list[str] = []

    def pending(self, planned: Sequence[PlannedCell]) -> list[PlannedCell]:
        done = {c.cell_id for c in self.results.cells}
        return [p for p in planned if p.plan.cell_id not in done]

    def run(
        self, planned: Sequence[PlannedCell], started: Callable[[PlannedCell], None] | None = None
    ) -> Iterator[tuple[PlannedCell, CellResult]]:
        """Run each cell; yields each with its finished result (already saved). Parity is judged by
        the caller once every cell is in (``harness.api.execute``)."""
        save_results(self.results, self.run_dir)
        for cell in planned:
            if started is not None:
                started(cell)
            if cell.skip_reason is not None:
                result = new_cell_result(cell.plan, "skipped", cell.skip_reason)
            else:
                measured = measured_placements(self.results.cells)
                plan = dataclasses.replace(cell.plan, placement_measured=measured)
                outcome = self.cell_runner(plan, self.options.cell_timeout_s)
                result = outcome.result
                fill_shared_placements(result, self.results.cells)
                if outcome.input_error and result.reason:
                    self.input_errors.append(result.reason)
                if outcome.outputs is not None:
                    result.outputs_file = save_outputs(self.run_dir, result.cell_id, outcome.outputs)
            self.results.upsert(result)
            save_results(self.results, self.run_dir)
            yield cell, result
        self._repeat_timing(planned, started)

    def _repeat_timing(
        self, planned: Sequence[PlannedCell], started: Callable[[PlannedCell], None] | None
    ) -> None:
        """Time each passed single-stream cell again in fresh worker processes (``suite.processes``),
        round-robin over the cells, so that a cell's processes are spread over the whole run and
        their spread includes the host's drift over that time, not just over a few seconds
        (randomised multiple interleaved trials, Abedi & Brecht 2017, for exactly such cloud hosts).
        Each round's timing is pooled into the cell (``harness.processes``) and saved at once; a
        repeat that fails fails its cell with the reason, keeping every latency measured before."""
        wanting = [
            cell for cell in planned
            if cell.skip_reason is None and cell.plan.processes > 1 and cell.plan.mode != "accuracy"
            and create_scenario(cell.plan.scenario).repeatable
        ]  # fmt: skip
        for repeat in range(1, max((cell.plan.processes for cell in wanting), default=1)):
            for cell in wanting:
                result = self.results.cell(cell.plan.cell_id)
                if repeat >= cell.plan.processes or result is None or result.status != "passed":
                    continue
                again = PlannedCell(dataclasses.replace(cell.plan, repeat=repeat), None)
                if started is not None:
                    started(again)
                done = self.cell_runner(again.plan, self.options.cell_timeout_s).result
                if done.status == "passed":
                    pool_processes(result, [done])
                else:
                    result.status = "failed"
                    result.reason = (
                        f"timing process {repeat + 1} of {cell.plan.processes}: {done.status}: {done.reason}"
                    )
                save_results(self.results, self.run_dir)


def new_results(options: RunOptions, platform: dict[str, object], suite: Suite) -> RunResults:
    return RunResults(
        run_id=new_run_id(),
        started_at=utc_now(),
        portbench_version=portbench.__version__,
        git_sha=git_sha(),
        suite=options.suite,
        platform=dict(platform),
        command=list(sys.argv),
        request=options.to_dict(),
        suite_definition=suite.to_dict(),
    )


def resume_results(run_dir: Path) -> tuple[RunResults, RunOptions]:
    results = load_results(run_dir)
    if not results.request:
        raise PortbenchError(f"{run_dir} holds no run request to resume from")
    try:
        options = RunOptions.from_dict(results.request)
    except (KeyError, TypeError, ValueError) as error:
        # results.json is user-editable: a damaged request must not surface as a traceback.
        raise PortbenchError(f"{run_dir}: the run request in results.json is unusable ({error!r})") from None
    results.finished_at = None
    # Its cells were migrated on load (harness.results): it is saved again in this schema.
    results.schema_version = SCHEMA_VERSION
    return results, options


def suite_for(results: RunResults) -> Suite:
    """The suite a run was started with, as stored in its results: editing or renaming the suite file
    afterwards changes nothing for ``--resume``, reports or parity. Documents from before suites were
    stored (schema 1.0) name a built-in suite."""
    if results.suite_definition is None:
        return get_suite(results.suite)
    return Suite.from_dict(results.suite_definition, source=f"the suite stored in run {results.run_id}")
