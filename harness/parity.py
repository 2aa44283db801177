"""Accuracy parity: how far a cell's accuracy and outputs are from the FP32 reference.

FP32 on the CPU backend with Paddle Inference is the reference. Each cell, on any backend and runtime
(ONNX Runtime and OpenVINO cells too), is compared with the Paddle FP32 CPU cell that ran the same
workload, task, model, dataset and parameters (:func:`reference_key`), taken from the same run
or from an earlier run's directory (``--reference RUN_DIR``, :func:`load_reference`), which needs only
that run's ``results.json`` and outputs files, never its models.

Two levels, in the spirit of MLPerf's accuracy targets:

- task level (gated): the cell's headline metric divided by the reference's must reach the gate for
  its precision (default INT8 >= 99%, FP16 / BF16 / FP32 >= 99.9%), overridable per metric;
- output level: per-sample agreement with the reference outputs, compared the way the cell's workload
  declares (``TaskInfo.compare_outputs``: OCR boxes and texts, ERNIE logits), and the worst samples.
  These numbers are informational by default, because a quantized model legitimately changes some
  outputs while keeping its task accuracy; a minimum can be set per number
  (``ParityGates.min_output``), and then a miss fails the cell too.

Verdicts: ``pass`` (every gate met), ``fail`` (a gate missed; the reason says by how much) or
``skipped`` (the cell did not pass, has synthetic weights, or a reference or metric is missing; the
reason says which). The FP32 CPU cell that serves as the in-run reference gets ``pass`` with
``"role": "reference"``; with an external reference it is compared like any other cell.

Which metrics are gated, which direction is better and how outputs compare all come from the
workload (``harness.workload.TaskInfo``): nothing here names a workload. The verdict is a
:class:`~portbench.harness.verdict.ParityVerdict`. Outputs files are JSON objects ``{sample_id: output}``
beside ``results.json`` (the runner's ``save_outputs``; ``CellResult.outputs_file`` holds the relative
path), so ``portbench parity RUN_DIR`` can judge a finished run again, with other gates or another
reference, without its models. No Paddle is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from portbench.errors import PortbenchError, UnknownNameError
from portbench.harness.results import CellResult, RunResults, load_results
from portbench.harness.verdict import REFERENCE_ROLE, MetricCheck, ParityVerdict, ReferenceInfo
from portbench.harness.workload import OutputsMalformed, TaskInfo, Workload, create_workload, workload_names

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, which Paddle's CUDA, XPU and DCU images ship
    import tomli as tomllib  # type: ignore[no-redef]

REFERENCE_BACKEND = "cpu"
REFERENCE_PRECISION = "fp32"
REFERENCE_RUNTIME = "paddle"
# Absolute slack on gate comparisons so a metric at exactly 99% of the reference is not failed by
# floating-point rounding of the product.
GATE_TOLERANCE = 1e-12

DEFAULT_TASK_RATIO: Mapping[str, float] = MappingProxyType(
    {"int8": 0.99, "fp16": 0.999, "bf16": 0.999, "fp32": 0.999}
)
# A precision missing from ``task_ratio`` gets the strictest usual gate.
FALLBACK_TASK_RATIO = 0.999

# Where files were, not what was computed: older results kept these in ``params``; two cells that
# differ only in these share a reference (the dataset directory differs between machines).
LOCATION_PARAMS = frozenset({"cache_dir", "dataset_dir", "model_dirs"})


class ParityError(PortbenchError):
    """Parity gates or stored outputs that cannot be used (bad configuration, corrupt file)."""


def _frozen_ratios(values: Any, where: str) -> Mapping[str, float]:
    if not isinstance(values, Mapping):
        raise ParityError(f"parity gates {where.rstrip('/ ') or 'setting'} must map names to ratios")
    checked: dict[str, float] = {}
    for name, ratio in values.items():
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise ParityError(f"parity gate {where}{name} must be a ratio in (0, 1], got {ratio!r}")
        checked[name] = float(ratio)
    return MappingProxyType(checked)


def _frozen_mapping(values: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise ParityError(f"parity setting {name} must be a mapping, got {values!r}")
    return values


@dataclass(frozen=True)
class ParityGates:
    """Pass marks for parity.

    ``task_ratio``: precision -> minimum (cell metric / reference metric) for the headline metrics; for
    a lower-is-better metric the reference / cell ratio must reach it. ``per_metric``: metric ->
    precision -> ratio, overriding ``task_ratio``; naming a metric here also gates it when it is not a
    headline metric. ``min_output``: a higher-is-better output-level number the workload declares
    (``TaskInfo.output_metrics``) -> minimum value; empty by default (output agreement is
    informational); :meth:`check_names` refuses names no workload of a run declares.
    ``worst_samples``: how many of the most different samples to keep.

    Example::

        ParityGates(per_metric={"det_hmean": {"int8": 0.98}}, min_output={"top1_agreement": 0.99})
    """

    task_ratio: Mapping[str, float] = field(default_factory=lambda: DEFAULT_TASK_RATIO)
    per_metric: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    min_output: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    worst_samples: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_ratio", _frozen_ratios(self.task_ratio, "for "))
        object.__setattr__(
            self,
            "per_metric",
            MappingProxyType(
                {
                    metric: _frozen_ratios(ratios, f"{metric}/")
                    for metric, ratios in _frozen_mapping(self.per_metric, "per_metric").items()
                }
            ),
        )
        object.__setattr__(self, "min_output", _frozen_ratios(self.min_output, "min_output/"))
        if (
            isinstance(self.worst_samples, bool)
            or not isinstance(self.worst_samples, int)
            or self.worst_samples < 0
        ):
            raise ParityError(f"worst_samples must be a whole number >= 0, got {self.worst_samples!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ParityGates:
        """Gates from suite or user configuration; omitted keys keep their defaults."""
        known = {"task_ratio", "per_metric", "min_output", "worst_samples"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParityError(f"unknown parity setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        task_ratio = {**DEFAULT_TASK_RATIO, **_frozen_ratios(data.get("task_ratio", {}), "for ")}
        return cls(
            task_ratio=task_ratio,
            per_metric=data.get("per_metric", {}),
            min_output=data.get("min_output", {}),
            worst_samples=data.get("worst_samples", 5),
        )

    def gate_for(self, metric: str, precision: str) -> float:
        """Minimum ratio of ``metric`` to its reference value for a cell of ``precision``."""
        override = self.per_metric.get(metric, {})
        if precision in override:
            return override[precision]
        return self.task_ratio.get(precision, FALLBACK_TASK_RATIO)

    def gated_metrics(self, task: TaskInfo | None) -> tuple[str, ...]:
        headline = task.headline if task else ()
        return headline + tuple(sorted(m for m in self.per_metric if m not in headline))

    def check_names(self, workloads: Iterable[Workload]) -> None:
        """Refuse an output-level gate that no task of ``workloads`` can meet (a typo would otherwise
        pass every cell silently)."""
        known = {
            metric.name
            for workload in workloads
            for task in workload.tasks().values()
            for metric in task.output_metrics
            if metric.higher_is_better
        }
        unknown = sorted(set(self.min_output) - known)
        if unknown:
            raise ParityError(
                f"unknown output-level parity gate {unknown[0]!r}; "
                f"known: {', '.join(sorted(known)) or 'none'}"
            )

    @classmethod
    def from_file(cls, path: Path) -> ParityGates:
        """Gates from a TOML file: the keys of :meth:`from_mapping`, at the top level or under
        ``[gates]`` (so a suite file serves as well)."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ParityError(f"gates file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ParityError(f"cannot read gates file {path}: {exc}") from None
        gates = data.get("gates", data)
        try:
            return cls.from_mapping(gates)
        except ParityError as exc:
            raise ParityError(f"{path}: {exc}") from None


# --- identity of a cell across backends and precisions -------------------------------------------


def model_label(cell: CellResult) -> str:
    """The model as the cell id names it (``model@label``), falling back to ``cell.model``."""
    parts = cell.cell_id.split("/")
    if (
        len(parts) >= 7
        and parts[-4] == cell.backend
        and parts[-3] == cell.runtime
        and parts[-2] == cell.precision
    ):
        return "/".join(parts[2:-4])
    return cell.model


ReferenceKey = tuple[str, str, str, str, str, str]


class TaskCatalog:
    """The workloads' :class:`TaskInfo` by (workload, task), each workload created once; a workload
    that is not installed here has no entry (its cells can still be listed, not judged)."""

    def __init__(self) -> None:
        self._workloads: dict[str, Workload | None] = {}

    def workload(self, name: str) -> Workload | None:
        if name not in self._workloads:
            try:
                self._workloads[name] = create_workload(name)
            except UnknownNameError:
                self._workloads[name] = None
        return self._workloads[name]

    def known(self) -> list[str]:
        return workload_names()

    def task(self, workload: str, task: str) -> TaskInfo | None:
        found = self.workload(workload)
        return found.tasks().get(task) if found else None

    def descriptive_params(self, workload: str) -> frozenset[str]:
        found = self.workload(workload)
        return found.descriptive_params if found else frozenset()


def reference_key(cell: CellResult, catalog: TaskCatalog | None = None) -> ReferenceKey:
    """Same workload, task, model (with label), dataset, scenario and parameters; any backend/precision.

    Parameters the workload calls descriptive (how timed inputs were arranged) and file locations
    do not identify a cell."""
    ignored = LOCATION_PARAMS | (catalog or TaskCatalog()).descriptive_params(cell.workload)
    params = {k: v for k, v in cell.params.items() if k not in ignored}
    return (
        cell.workload,
        cell.task,
        model_label(cell),
        cell.dataset,
        cell.scenario,
        json.dumps(params, sort_keys=True, default=str),
    )


def is_reference_cell(cell: CellResult) -> bool:
    return (
        cell.backend == REFERENCE_BACKEND
        and cell.runtime == REFERENCE_RUNTIME
        and cell.precision == REFERENCE_PRECISION
    )


def has_synthetic_weights(cell: CellResult) -> bool:
    return any(record.synthetic_weights for record in cell.models)


# --- outputs files --------------------------------------------------------------------------------


def read_outputs(path: Path) -> dict[str, Any]:
    """The sample id -> output mapping of an outputs file (``harness.runner.save_outputs`` writes them)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParityError(f"outputs file {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParityError(f"cannot read outputs file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise ParityError(f"outputs file {path} does not hold a sample id -> output object")
    return document


# --- output-level comparison ----------------------------------------------------------------------


@dataclass(frozen=True)
class OutputAgreement:
    """How closely a cell's per-sample outputs agree with the reference's.

    ``metrics``: agreement numbers, as the workload's ``TaskInfo.output_metrics`` declare them.
    ``worst_samples``: the most different samples first, each a dict with ``sample_id``, a one-line
    ``difference`` and the numbers.
    """

    compared: int
    metrics: Mapping[str, float]
    worst_samples: tuple[Mapping[str, Any], ...] = ()
    only_in_reference: tuple[str, ...] = ()
    only_in_cell: tuple[str, ...] = ()
    note: str | None = None

    def to_dict(self, listed_ids: int = 10) -> dict[str, Any]:
        data: dict[str, Any] = {
            "compared_samples": self.compared,
            "metrics": dict(self.metrics),
            "only_in_reference": len(self.only_in_reference),
            "only_in_cell": len(self.only_in_cell),
        }
        if self.only_in_reference:
            data["only_in_reference_ids"] = list(self.only_in_reference[:listed_ids])
        if self.only_in_cell:
            data["only_in_cell_ids"] = list(self.only_in_cell[:listed_ids])
        if self.note:
            data["note"] = self.note
        return data


def compare_outputs(
    workload: str | TaskInfo | None,
    task: str | None,
    reference_outputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    worst: int = 5,
) -> OutputAgreement:
    """Per-sample agreement of ``outputs`` with ``reference_outputs`` (both sample id -> output), by
    the comparer the task declares (``workload`` may be a workload name with ``task``, or the
    :class:`TaskInfo` itself).

    Samples present on one side only are counted and listed, not compared. Raises ParityError when an
    output does not have the shape the task stores.
    """
    if isinstance(workload, TaskInfo):
        info: TaskInfo | None = workload
        label = workload.name
    else:
        info = TaskCatalog().task(workload, task) if workload and task else None
        label = f"{workload}/{task}"
    only_reference = tuple(sorted(set(reference_outputs) - set(outputs)))
    only_cell = tuple(sorted(set(outputs) - set(reference_outputs)))
    shared = [sid for sid in reference_outputs if sid in outputs]
    if info is None or info.compare_outputs is None:
        return OutputAgreement(
            0, {}, (), only_reference, only_cell, note=f"no output comparison for {label}"
        )
    if not shared:
        return OutputAgreement(
            0, {}, (), only_reference, only_cell, note="no sample in common with the reference"
        )
    try:
        compared = info.compare_outputs([(sid, reference_outputs[sid], outputs[sid]) for sid in shared])
    except OutputsMalformed as exc:
        raise ParityError(str(exc)) from None
    ranked = sorted(
        (d for d in zip(shared, compared.diffs, strict=True) if d[1].score > 0), key=lambda d: -d[1].score
    )
    worst_samples = tuple({"sample_id": sid, **diff.detail} for sid, diff in ranked[:worst])
    return OutputAgreement(len(shared), dict(compared.metrics), worst_samples, only_reference, only_cell)


# --- verdicts -------------------------------------------------------------------------------------


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _task_checks(
    cell: CellResult, reference: CellResult, gates: ParityGates, task: TaskInfo | None
) -> tuple[dict[str, MetricCheck], list[str], list[str]]:
    """(per-metric numbers, failure messages, gated metrics missing from either cell)."""
    gated = gates.gated_metrics(task)
    checks: dict[str, MetricCheck] = {}
    failures: list[str] = []
    missing = [m for m in gated if m not in cell.metrics or m not in reference.metrics]
    shared = [m for m in reference.metrics if m in cell.metrics]
    for metric in [*[m for m in gated if m in shared], *sorted(m for m in shared if m not in gated)]:
        expected, value = float(reference.metrics[metric]), float(cell.metrics[metric])
        ratio = value / expected if expected else None
        if metric not in gated:
            checks[metric] = MetricCheck(expected, value, ratio, value - expected)
            continue
        gate = gates.gate_for(metric, cell.precision)
        declared = task.metric(metric) if task else None
        if declared is None or declared.higher_is_better:
            passed = value >= gate * expected - GATE_TOLERANCE
            kept = value / expected if expected else 1.0
        else:  # an error rate: the cell may rise to reference / gate at most
            passed = value * gate <= expected + GATE_TOLERANCE
            kept = expected / value if value else 1.0
        checks[metric] = MetricCheck(expected, value, ratio, value - expected, gate, passed)
        if not passed:
            failures.append(
                f"{metric} {value:.4f} keeps {_percent(kept)} of {reference.precision.upper()} "
                f"{expected:.4f}; gate {_percent(gate)}"
                if declared is not None and not declared.higher_is_better
                else f"{metric} {value:.4f} is {_percent(kept)} of {reference.precision.upper()} "
                f"{expected:.4f}; gate {_percent(gate)}"
            )
    return checks, failures, missing


def _output_failures(agreement: OutputAgreement, gates: ParityGates) -> list[str]:
    failures = []
    for name, minimum in gates.min_output.items():
        if name in agreement.metrics and agreement.metrics[name] < minimum - GATE_TOLERANCE:
            failures.append(f"{name.replace('_', ' ')} {agreement.metrics[name]:.4f} below {minimum:g}")
    return failures


def speedup(cell: CellResult, fp32: CellResult | None) -> float | None:
    """p50 latency of the FP32 cell divided by this cell's (2.0: twice as fast)."""
    if fp32 is None or fp32.latency_ms is None or cell.latency_ms is None or cell.latency_ms.p50 <= 0:
        return None
    return fp32.latency_ms.p50 / cell.latency_ms.p50


def _reference_info(reference: CellResult, run_id: str | None) -> ReferenceInfo:
    return ReferenceInfo(reference.cell_id, reference.backend, reference.precision, run_id, reference.runtime)


def evaluate_parity(
    cell: CellResult,
    reference: CellResult | None,
    cell_outputs: Mapping[str, Any] | None,
    reference_outputs: Mapping[str, Any] | None,
    gates: ParityGates,
    fp32_same_backend: CellResult | None,
    *,
    reference_run_id: str | None = None,
    notes: Sequence[str] = (),
    catalog: TaskCatalog | None = None,
) -> ParityVerdict:
    """The verdict of ``cell`` against ``reference`` (see the module docstring).

    ``cell_outputs`` / ``reference_outputs`` may be None (not stored or not readable): the output
    level is then left out with a note and the task level still decides. ``notes`` are kept in the
    verdict (e.g. why an outputs file could not be read).
    """
    speed = speedup(cell, fp32_same_backend)
    kept_notes = tuple(notes)
    if cell.status != "passed":
        return ParityVerdict("skipped", f"cell {cell.status}: nothing to compare", speedup_vs_fp32=speed,
                             notes=kept_notes)
    if reference is None:
        return ParityVerdict(
            "skipped",
            f"no {REFERENCE_PRECISION.upper()} {REFERENCE_BACKEND} reference cell for this "
            "workload, model, dataset and parameters",
            speedup_vs_fp32=speed,
            notes=kept_notes,
        )
    task = (catalog or TaskCatalog()).task(cell.workload, cell.task)
    common: dict[str, Any] = {
        "reference": _reference_info(reference, reference_run_id),
        "speedup_vs_fp32": speed,
        "notes": kept_notes,
    }
    agreement: OutputAgreement | None = None
    if cell_outputs is None or reference_outputs is None:
        missing = "reference" if reference_outputs is None else "this cell"
        common["output"] = {"note": f"no output-level comparison: no stored outputs for {missing}"}
    else:
        agreement = compare_outputs(task or cell.workload, cell.task, reference_outputs, cell_outputs,
                                    gates.worst_samples)
        common.update(output=agreement.to_dict(), worst_samples=agreement.worst_samples)

    if has_synthetic_weights(cell) or has_synthetic_weights(reference):
        return ParityVerdict("skipped", "synthetic weights: no task accuracy to gate", **common)
    checks, task_failures, missing_metrics = _task_checks(cell, reference, gates, task)
    common["task"] = checks
    if missing_metrics:
        where = "cell" if any(m not in cell.metrics for m in missing_metrics) else "reference"
        return ParityVerdict(
            "skipped", f"gated metric {', '.join(missing_metrics)} missing from the {where}", **common
        )
    if not gates.gated_metrics(task):
        why = "is unknown to the workloads installed here" if task is None else "defines no gated metric"
        return ParityVerdict("skipped", f"{cell.workload}/{cell.task} {why}", **common)

    failures = task_failures + (_output_failures(agreement, gates) if agreement else [])
    if failures:
        return ParityVerdict("fail", "; ".join(failures), **common)
    return ParityVerdict("pass", None, **common)


def reference_parity(cell: CellResult, run_id: str | None = None) -> ParityVerdict:
    """The verdict of the in-run FP32 CPU cell that serves as everybody's reference."""
    speed = 1.0 if cell.latency_ms else None
    if not cell.metrics and not cell.outputs_file:
        return ParityVerdict(
            "skipped",
            "reference cell has neither accuracy metrics nor stored outputs (performance-only run?)",
            role=REFERENCE_ROLE,
            speedup_vs_fp32=speed,
        )
    return ParityVerdict(
        "pass", "reference: FP32 on CPU", role=REFERENCE_ROLE, reference=_reference_info(cell, run_id),
        speedup_vs_fp32=speed,
    )


# --- references and whole runs --------------------------------------------------------------------


@dataclass
class ReferenceCell:
    """A reference cell with its outputs (None when its outputs file is absent or unreadable)."""

    cell: CellResult
    outputs: Mapping[str, Any] | None
    note: str | None = None


@dataclass
class ReferenceSet:
    """FP32 CPU cells of an earlier run, keyed by :func:`reference_key`."""

    run_id: str
    run_dir: Path
    cells: dict[ReferenceKey, ReferenceCell]
    notes: list[str] = field(default_factory=list)

    def find(self, cell: CellResult, catalog: TaskCatalog | None = None) -> ReferenceCell | None:
        return self.cells.get(reference_key(cell, catalog))


def _load_cell_outputs(run_dir: Path, cell: CellResult) -> tuple[Mapping[str, Any] | None, str | None]:
    if not cell.outputs_file:
        return None, f"{cell.cell_id}: no outputs file recorded"
    try:
        return read_outputs(run_dir / cell.outputs_file), None
    except ParityError as exc:
        return None, f"{cell.cell_id}: {exc}"


def load_reference(run_dir: Path, catalog: TaskCatalog | None = None) -> ReferenceSet:
    """The passed FP32 CPU cells of the run in ``run_dir`` and their stored outputs.

    Only ``results.json`` is required (PortbenchError otherwise); a missing outputs file only takes
    the output-level comparison away from that cell, with a note. No model is read.
    """
    catalog = catalog or TaskCatalog()
    results = load_results(run_dir)
    base = run_dir if run_dir.is_dir() else run_dir.parent
    cells: dict[ReferenceKey, ReferenceCell] = {}
    notes: list[str] = []
    for cell in results.cells:
        if not is_reference_cell(cell) or cell.status != "passed":
            continue
        outputs, note = _load_cell_outputs(base, cell)
        if note:
            notes.append(note)
        cells[reference_key(cell, catalog)] = ReferenceCell(cell, outputs, note)
    if not cells:
        raise ParityError(
            f"reference run {run_dir} has no passed {REFERENCE_PRECISION.upper()} {REFERENCE_BACKEND} cell"
        )
    return ReferenceSet(results.run_id, base, cells, notes)


def apply_parity(
    results: RunResults,
    run_dir: Path,
    reference: ReferenceSet | None = None,
    gates: ParityGates | None = None,
    catalog: TaskCatalog | None = None,
) -> None:
    """Judge every cell of ``results`` and store its :class:`ParityVerdict` in ``cell.parity``.

    ``portbench run`` calls this when a run ends and ``portbench parity`` when a finished run is
    judged again. The reference for a cell is the passed FP32 CPU cell with the same
    :func:`reference_key`: from ``reference`` when given (an earlier run), otherwise from this run.
    Outputs files are read from ``run_dir``. A problem with one cell's outputs makes that cell
    ``skipped`` with the reason, never stops the others.
    """
    gates = gates or ParityGates()
    catalog = catalog or TaskCatalog()
    keys = {cell.cell_id: reference_key(cell, catalog) for cell in results.cells}
    passed = [cell for cell in results.cells if cell.status == "passed"]
    in_run = {keys[c.cell_id]: c for c in passed if is_reference_cell(c)}
    # Speed-up is against FP32 on the same backend *and* runtime: a lower precision's own gain.
    fp32 = {(c.backend, c.runtime, keys[c.cell_id]): c for c in passed if c.precision == REFERENCE_PRECISION}
    outputs_cache: dict[str, tuple[Mapping[str, Any] | None, str | None]] = {}

    def outputs_of(cell: CellResult) -> tuple[Mapping[str, Any] | None, str | None]:
        if cell.cell_id not in outputs_cache:
            outputs_cache[cell.cell_id] = _load_cell_outputs(run_dir, cell)
        return outputs_cache[cell.cell_id]

    for cell in results.cells:
        key = keys[cell.cell_id]
        same_backend_fp32 = fp32.get((cell.backend, cell.runtime, key))
        notes: list[str] = []
        reference_cell: CellResult | None
        reference_outputs: Mapping[str, Any] | None
        if reference is not None:
            found = reference.cells.get(key)
            reference_cell = found.cell if found else None
            reference_outputs = found.outputs if found else None
            if found and found.note:
                notes.append(f"reference {found.note}")
            run_id: str | None = reference.run_id
        else:
            reference_cell = in_run.get(key)
            if reference_cell is not None and reference_cell.cell_id == cell.cell_id:
                cell.parity = reference_parity(cell, results.run_id)
                continue
            reference_outputs, note = outputs_of(reference_cell) if reference_cell else (None, None)
            if note:
                notes.append(f"reference {note}")
            run_id = results.run_id
        cell_outputs, note = outputs_of(cell) if cell.status == "passed" else (None, None)
        if note and reference_cell is not None:
            notes.append(note)
        try:
            cell.parity = evaluate_parity(
                cell, reference_cell, cell_outputs, reference_outputs, gates, same_backend_fp32,
                reference_run_id=run_id, notes=notes, catalog=catalog,
            )
        except ParityError as exc:
            reason = f"outputs cannot be compared: {exc}"
            cell.parity = ParityVerdict("skipped", reason, speedup_vs_fp32=speedup(cell, same_backend_fp32))


def verdict_counts(cells: Iterable[CellResult]) -> dict[str, int]:
    """How many cells got each verdict (cells without a parity entry are not counted)."""
    counts = {"pass": 0, "fail": 0, "skipped": 0}
    for cell in cells:
        if cell.parity:
            counts[cell.parity.verdict] = counts.get(cell.parity.verdict, 0) + 1
    return counts
