"""The parity matrix as display rows: workload/model down, backend × runtime × precision across.

Each entry shows the cell's parity verdict (✓ pass, ✗ fail, – skipped), the change of its headline
metric against the FP32 reference and its speed-up over FP32 on the same backend. Values are chosen
and formatted here (numbers through :mod:`portbench.reports.tables`); ``markdown`` and ``terminal``
only lay them out. Nothing is shown for a run whose cells carry no ``parity`` entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from portbench.harness.parity import has_synthetic_weights, model_label
from portbench.harness.results import LEGACY_RUNTIME as DEFAULT_RUNTIME
from portbench.harness.results import CellResult, RunResults
from portbench.harness.verdict import ParityVerdict
from portbench.reports.tables import format_delta, format_speedup, one_line

VERDICT_SYMBOLS: Mapping[str, str] = {"pass": "✓", "fail": "✗", "skipped": "–"}
REFERENCE_MARK = "ref"
WORST_SAMPLES_SHOWN = 3
DEFAULT_SCENARIO = "single-stream"

Column = tuple[str, str, str]  # (backend, runtime, precision)


@dataclass(frozen=True)
class ParityEntry:
    verdict: str
    delta: str  # formatted change of the headline metric; "" when there is none
    speedup: str  # formatted; "" when unknown
    is_reference: bool = False

    @property
    def symbol(self) -> str:
        return VERDICT_SYMBOLS.get(self.verdict, "?")

    @property
    def text(self) -> str:
        middle = REFERENCE_MARK if self.is_reference else self.delta
        return " ".join(part for part in (self.symbol, middle, self.speedup) if part)


@dataclass(frozen=True)
class ParityRow:
    label: str  # workload/task/model[@label] [(scenario)]
    metric: str  # the headline metric the deltas refer to
    entries: Mapping[Column, ParityEntry]


@dataclass(frozen=True)
class ParityMatrix:
    columns: tuple[Column, ...]
    rows: tuple[ParityRow, ...]
    reference_runs: tuple[str, ...]  # run ids the references came from, in first-use order

    @property
    def shows_runtime(self) -> bool:
        """Column labels name the runtime once any column is not Paddle Inference."""
        return any(runtime != DEFAULT_RUNTIME for _, runtime, _ in self.columns)


@dataclass(frozen=True)
class ParityNote:
    """A failed (or skipped) verdict with its reason and, for failures, the worst samples."""

    cell_id: str
    verdict: str
    reason: str
    worst_samples: tuple[str, ...]  # "sample_id: what differed"


def column_label(column: Column, with_runtime: bool = True) -> str:
    backend, runtime, precision = column
    return f"{backend} {runtime} {precision}" if with_runtime else f"{backend} {precision}"


def _row_label(cell: CellResult) -> str:
    label = f"{cell.workload}/{cell.task}/{model_label(cell)}"
    return label if cell.scenario == DEFAULT_SCENARIO else f"{label} ({cell.scenario})"


def parity_entry(parity: ParityVerdict) -> tuple[ParityEntry, str | None]:
    """The entry of one cell and the metric its delta refers to."""
    metric = parity.headline_metric
    speed = parity.speedup_vs_fp32
    entry = ParityEntry(
        verdict=parity.verdict,
        delta=format_delta(parity.task[metric].delta) if metric is not None else "",
        speedup=format_speedup(speed) if speed is not None else "",
        is_reference=parity.is_reference,
    )
    return entry, metric


def parity_matrix(results: RunResults) -> ParityMatrix | None:
    """Rows and columns in the order the run produced the cells; None when no cell has a verdict."""
    columns: dict[Column, None] = {}
    rows: dict[str, dict[Column, ParityEntry]] = {}
    metrics: dict[str, str] = {}
    runs: dict[str, None] = {}
    for cell in results.cells:
        if not cell.parity:
            continue
        column = (cell.backend, cell.runtime, cell.precision)
        columns.setdefault(column, None)
        label = _row_label(cell)
        entry, metric = parity_entry(cell.parity)
        rows.setdefault(label, {})[column] = entry
        if metric and label not in metrics:
            metrics[label] = metric
        reference = cell.parity.reference
        if reference is not None and reference.run_id:
            runs.setdefault(reference.run_id, None)
    if not rows:
        return None
    return ParityMatrix(
        columns=tuple(columns),
        rows=tuple(ParityRow(label, metrics.get(label, ""), entries) for label, entries in rows.items()),
        reference_runs=tuple(runs),
    )


def _worst_sample_lines(parity: ParityVerdict, limit: int) -> tuple[str, ...]:
    return tuple(
        f"{sample.get('sample_id', '?')}: {one_line(str(sample.get('difference', '')))}"
        for sample in parity.worst_samples[:limit]
    )


def parity_notes(results: RunResults, limit: int = WORST_SAMPLES_SHOWN) -> list[ParityNote]:
    """Failed verdicts (with worst samples), then skipped verdicts of cells that did run."""
    failed, skipped = [], []
    for cell in results.cells:
        parity = cell.parity
        if not parity:
            continue
        verdict = parity.verdict
        reason = one_line(parity.reason or "no reason recorded")
        if verdict == "fail":
            failed.append(ParityNote(cell.cell_id, "fail", reason, _worst_sample_lines(parity, limit)))
        elif verdict == "skipped" and cell.status == "passed" and not has_synthetic_weights(cell):
            # Synthetic-weight cells are speed-only by design: nothing to explain.
            skipped.append(ParityNote(cell.cell_id, "skipped", reason, ()))
    return failed + skipped


def reference_description(matrix: ParityMatrix, run_id: str) -> str:
    external = [run for run in matrix.reference_runs if run != run_id]
    if not external:
        return "FP32 on CPU in this run"
    return f"FP32 on CPU from run {', '.join(external)}"
