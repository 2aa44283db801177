"""The run API: from a request to saved, judged results in one call.

``plan_run`` checks everything a user can get wrong (names, directories, the reference run, parity
gates, an ``--only`` that matches nothing, unavailable backends) before anything is written or
measured, and builds each backend once; ``execute`` runs the plan's pending cells in worker processes
(saving after each), judges parity with the same function ``portbench parity`` uses, and saves the
result. ``resume_run`` plans the missing cells of an interrupted run from what its results stored.
The CLI only parses options and renders; a library user calls :func:`run`.

    from portbench.harness.api import run
    from portbench.harness.config import RunOptions
from portbench.harness.models import check_model_dir
    from portbench.harness.suite import get_suite

    results = run(get_suite("smoke"), RunOptions(suite="smoke", backends=("cpu",)))
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from portbench.backends.base import Backend, Precision
from portbench.backends.registry import BACKENDS, backend_names, create_backend
from portbench.backends.runtimes.base import Runtime
from portbench.backends.runtimes.registry import RUNTIMES, create_runtime
from portbench.errors import BackendUnavailableError, PortbenchError, UnknownNameError
from portbench.files import ensure_directory
from portbench.harness import platform_info
from portbench.harness.config import RunOptions
from portbench.harness.lockstep import (
    DEFAULT_PAIR_TIMING,
    PairRunner,
    PairTiming,
    Side,
    lockstep_pair,
    time_in_lockstep,
)
from portbench.harness.models import check_model_dir
from portbench.harness.parity import ReferenceSet, TaskCatalog, apply_parity, load_reference
from portbench.harness.results import CellResult, RunResults, save_results
from portbench.harness.runner import (
    CellOutcome,
    PlannedCell,
    Runner,
    new_results,
    plan_cells,
    resume_results,
    run_cell_in_worker,
    suite_for,
)
from portbench.harness.suite import Suite
from portbench.harness.worker import utc_now

DEFAULT_OUT = Path("portbench-results")


class RunObserver(Protocol):
    """What a front end hears while a plan runs (the CLI draws a progress bar from it)."""

    def cell_started(self, cell: PlannedCell) -> None: ...

    def cell_finished(self, result: CellResult) -> None: ...


@dataclass
class RunPlan:
    """A checked run: its options with backends and precisions resolved, the suite, the backends
    (built once), every planned cell, and the reference run parity will use."""

    options: RunOptions
    suite: Suite
    run_dir: Path
    results: RunResults
    backends: Mapping[str, Backend]
    cells: list[PlannedCell]
    reference: ReferenceSet | None = None
    catalog: TaskCatalog = field(default_factory=TaskCatalog)
    runtimes: Mapping[str, Runtime] = field(default_factory=dict)

    @property
    def pending(self) -> list[PlannedCell]:
        done = {c.cell_id for c in self.results.cells}
        return [c for c in self.cells if c.plan.cell_id not in done]


@dataclass
class RunOutcome:
    results: RunResults
    run_dir: Path
    # Failures caused by the user's input (a bad model or data file): the CLI exits 2 on the first.
    input_errors: list[str]

    @property
    def failed(self) -> list[CellResult]:
        return [c for c in self.results.cells if c.status == "failed"]


def _backends(options: RunOptions) -> dict[str, Backend]:
    """Every backend the run may use, built once. Asked-for backends must exist and be available
    (a clear error otherwise); with none asked for, every available backend runs."""
    known = backend_names()
    candidates = {name: create_backend(name, options.device_id) for name in options.backends or known}
    availability = {name: backend.probe() for name, backend in candidates.items()}
    if options.backends:
        for name, status in availability.items():
            if not status.available:
                raise BackendUnavailableError(f"backend {name!r} is not available here: {status.reason}")
        return candidates
    available = {name: b for name, b in candidates.items() if availability[name].available}
    if not available:
        raise PortbenchError("no backend is available on this machine (see: portbench backends)")
    return available


def _runtimes(names: Iterable[str]) -> dict[str, Runtime]:
    """The runtimes a run uses, each installed here (a clear error naming the extra otherwise).
    Probing finds the modules without importing them: no runtime lives in this process."""
    runtimes: dict[str, Runtime] = {}
    for name in names:
        RUNTIMES.check([name])
        runtime = create_runtime(name)
        status = runtime.probe()
        if not status.available:
            raise BackendUnavailableError(f"runtime {name!r} is not available here: {status.reason}")
        runtimes[name] = runtime
    return runtimes


def _check_model_dirs(model_dirs: Mapping[str, Path]) -> None:
    for role, path in model_dirs.items():
        if not path.is_dir():
            raise PortbenchError(f"model directory for {role!r} does not exist: {path}")
        check_model_dir(path)  # a file Paddle would crash on fails here, before any worker


def _check_dataset_dirs(dataset_dirs: Mapping[str, Path], workloads: Iterable[str]) -> None:
    known = sorted(set(workloads))
    for workload, path in dataset_dirs.items():
        if workload not in known:
            raise UnknownNameError("workload", workload, known)
        if not path.exists():
            raise PortbenchError(f"dataset {path} does not exist")


def selected_workloads(suite: Suite, options: RunOptions) -> list[str]:
    """Workloads of the suite cells ``--only`` keeps, on any backend and precision of the run."""
    backends = options.backends or tuple(backend_names())
    runtimes = options.runtimes or suite.runtimes
    precisions = options.precisions or tuple(Precision(p) for p in suite.precisions)
    return sorted({
        template.workload
        for template in suite.cells
        if any(
            options.selects(template.cell_id(b, p.value, runtime=r))
            for b in backends for r in runtimes for p in precisions
        )
    })


def _reference(options: RunOptions, catalog: TaskCatalog) -> ReferenceSet | None:
    # Loaded now, not after an hour of measuring: a reference without FP32 CPU cells is an error.
    return load_reference(options.reference_dir, catalog) if options.reference_dir else None


def _check_gates(suite: Suite, cells: Iterable[PlannedCell], catalog: TaskCatalog) -> None:
    names = {cell.plan.spec.workload for cell in cells}
    suite.gates.check_names(w for name in sorted(names) if (w := catalog.workload(name)))


def task_declarations(cells: Iterable[PlannedCell], catalog: TaskCatalog) -> dict[str, Any]:
    """What the workloads declare of every task the cells run, as results store it."""
    declared: dict[str, Any] = {}
    for cell in cells:
        spec = cell.plan.spec
        info = catalog.task(spec.workload, spec.task)
        if info is not None:
            declared.setdefault(f"{spec.workload}/{spec.task}", info.to_dict())
    return declared


def plan_run(suite: Suite, options: RunOptions, out_dir: Path | None = None) -> RunPlan:
    """Check ``options`` against ``suite`` and this machine and plan every cell; nothing is written.

    ``options.backends`` empty means every available backend, ``options.precisions`` empty the
    suite's own; the plan's options hold what was chosen (and are recorded in the results)."""
    catalog = TaskCatalog()
    BACKENDS.check(options.backends)  # names first: cheap, and the commonest typo
    runtimes = _runtimes(options.runtimes or suite.runtimes)
    _check_model_dirs(options.model_dirs)
    _check_dataset_dirs(options.dataset_dirs, [t.workload for t in suite.cells])
    for workload in {t.workload for t in suite.cells}:
        if catalog.workload(workload) is None:
            raise UnknownNameError("workload", workload, list(catalog.known()))
    reference = _reference(options, catalog)
    backends = _backends(options)
    options = dataclasses.replace(
        options,
        suite=suite.name,
        backends=tuple(backends),
        runtimes=tuple(runtimes),
        precisions=options.precisions or tuple(Precision(p) for p in suite.precisions),
    )
    results = new_results(options, platform_info.describe_platform(), suite)
    run_dir = out_dir if out_dir is not None else DEFAULT_OUT / results.run_id
    cells = plan_cells(suite, options, backends, run_dir, catalog, runtimes)
    if not cells:
        raise PortbenchError(f"--only {' '.join(options.only)} matches no cell of suite {suite.name}")
    _check_gates(suite, cells, catalog)
    results.tasks = task_declarations(cells, catalog)
    return RunPlan(options, suite, run_dir, results, backends, cells, reference, catalog, runtimes)


def resume_run(run_dir: Path) -> RunPlan:
    """The missing cells of the run in ``run_dir`` (its directory or its results.json), planned from
    the options and the suite its results stored, so an edited suite file changes nothing."""
    run_dir = run_dir if run_dir.is_dir() or not run_dir.exists() else run_dir.parent
    results, options = resume_results(run_dir)
    catalog = TaskCatalog()
    suite = suite_for(results)
    backends = {name: create_backend(name, options.device_id) for name in options.backends}
    runtimes = {name: create_runtime(name) for name in options.runtimes}
    cells = plan_cells(suite, options, backends, run_dir, catalog, runtimes)
    # Runs started before task declarations were stored get them now.
    results.tasks = results.tasks or task_declarations(cells, catalog)
    return RunPlan(
        options, suite, run_dir, results, backends, cells, _reference(options, catalog), catalog, runtimes
    )


def execute(
    plan: RunPlan,
    observer: RunObserver | None = None,
    cell_runner: Callable[..., CellOutcome] = run_cell_in_worker,
) -> RunOutcome:
    """Run the plan's pending cells (results saved after each), then judge parity and save."""
    ensure_directory(plan.run_dir, "run directory")
    runner = Runner(plan.results, plan.run_dir, plan.options, cell_runner)
    for _, result in runner.run(plan.pending, started=observer.cell_started if observer else None):
        if observer is not None:
            observer.cell_finished(result)
    # Parity needs every cell (the FP32 CPU reference may run last), so it is judged at the end.
    apply_parity(plan.results, plan.run_dir, plan.reference, plan.suite.gates, plan.catalog)
    plan.results.finished_at = utc_now()
    save_results(plan.results, plan.run_dir)
    return RunOutcome(plan.results, plan.run_dir, runner.input_errors)


def run(
    suite: Suite, options: RunOptions, out_dir: Path | None = None, observer: RunObserver | None = None
) -> RunResults:
    """Plan, run, judge and save in one call; returns the results (also in ``out_dir``)."""
    return execute(plan_run(suite, options, out_dir), observer).results


@dataclass
class AbOutcome:
    baseline: RunOutcome
    candidate: RunOutcome
    lockstep_id: str


def with_environment(plan: RunPlan, environment: Mapping[str, str]) -> RunPlan:
    """``plan`` with ``environment`` added to every cell's worker environment, each cell timed in one
    process of its own (the A/B pairs replace ``suite.processes``)."""
    cells = [
        PlannedCell(
            dataclasses.replace(c.plan, environment={**c.plan.environment, **environment}, processes=1),
            c.skip_reason,
        )
        for c in plan.cells
    ]
    return dataclasses.replace(plan, cells=cells)


def execute_ab(
    baseline: RunPlan,
    candidate: RunPlan,
    environments: tuple[Mapping[str, str], Mapping[str, str]],
    pairs: int,
    observer: RunObserver | None = None,
    cell_runner: Callable[..., CellOutcome] = run_cell_in_worker,
    pair_runner: PairRunner = lockstep_pair,
    timing: PairTiming = DEFAULT_PAIR_TIMING,
) -> AbOutcome:
    """Run both plans in full (accuracy, parity, one timing process each), then time every
    single-stream cell in ``pairs`` lockstep pairs of processes (``harness.lockstep``), so that
    ``harness.compare`` can judge the candidate against the baseline measured at the same moments."""
    if pairs < 1:
        raise PortbenchError(f"--pairs must be at least 1, got {pairs}")
    plans = (with_environment(baseline, environments[0]), with_environment(candidate, environments[1]))
    outcomes = [execute(plan, observer, cell_runner) for plan in plans]
    lockstep_id = uuid.uuid4().hex
    # Each side pairs from its own plans: the baseline's environment must not reach the candidate.
    sides = [Side(plan.results, plan.run_dir, {c.plan.cell_id: c.plan for c in plan.cells}) for plan in plans]
    time_in_lockstep(
        plans[0].cells, sides[0], sides[1], pairs, lockstep_id, plans[0].options.cell_timeout_s,
        timing, pair_runner, observer.cell_started if observer else None,
    )
    for plan in plans:
        plan.results.finished_at = utc_now()
        save_results(plan.results, plan.run_dir)
    return AbOutcome(outcomes[0], outcomes[1], lockstep_id)
