"""Turn run results into display rows: the one place where report numbers are chosen and formatted.

Both renderers (Markdown and the terminal table) lay out these rows; neither formats a number itself,
so the summary file and the console always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portbench.harness.parity import model_label
from portbench.harness.results import LEGACY_RUNTIME as DEFAULT_RUNTIME
from portbench.harness.results import CellResult, CellStatus, LatencySummary, RunResults

WITHHELD = "—"
WITHHELD_NOTE = "too few samples to support this percentile"
UNSTABLE = "⚠"
UNSTABLE_NOTE = "unstable: the median latency varied across trials by more than the CV threshold"
SYNTHETIC_LABEL = "(synthetic weights: speed only)"
SHA256_PREFIX_LENGTH = 12

# Without a declaration (results from a workload that declared none), the first few metrics show.
SHOWN_FALLBACK_COUNT = 2


@dataclass(frozen=True)
class TaskLayout:
    """How a task's numbers are laid out, from what its workload declared (``RunResults.tasks``):
    metrics in reading order, and the ones a one-line summary shows."""

    order: tuple[str, ...] = ()
    shown: tuple[str, ...] = ()

    @classmethod
    def of(cls, results: RunResults, cell: CellResult) -> TaskLayout:
        declared = results.tasks.get(f"{cell.workload}/{cell.task}") or {}
        return cls(
            order=tuple(m["name"] for m in declared.get("metrics", ())),
            shown=tuple(declared.get("shown") or declared.get("headline") or ()),
        )


def ordered(names: Iterable[str], preferred: Sequence[str] = ()) -> list[str]:
    """Distinct ``names``: those in ``preferred`` first (in that order), the rest alphabetically."""
    distinct = set(names)
    rank = {name: index for index, name in enumerate(preferred)}
    return sorted(distinct, key=lambda name: (rank.get(name, len(rank)), name))


def format_metric(value: float) -> str:
    """Scores in [0, 1] get 4 decimals (differences of 0.0001 matter in parity checks)."""
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"


def format_ms(value: float | None) -> str:
    return WITHHELD if value is None else f"{value:.2f}"


def format_rate(value: float) -> str:
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def format_delta(value: float) -> str:
    """A signed metric change with 4 decimals and a true minus sign: "+0.0012", "−0.0031"."""
    text = f"{value:+.4f}"
    return "±0.0000" if text in ("+0.0000", "-0.0000") else text.replace("-", "−")


def format_speedup(value: float | None) -> str:
    """How many times faster than FP32: "1.83×" (two decimals tell 0.97× from 1.03×)."""
    if value is None:
        return ""
    return f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def format_bytes(value: int | None) -> str:
    if value is None:
        return ""
    return f"{value / 2**30:.1f} GiB"


def format_timestamp(text: str | None) -> str:
    """ISO 8601 as ``YYYY-MM-DD HH:MM:SS +HH:MM``; text that is not ISO 8601 is shown as written."""
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M:%S %z").strip()


def one_line(text: str | None) -> str:
    return " ".join((text or "").split())


@dataclass(frozen=True)
class CellRow:
    """One cell, every value already formatted for display."""

    cell_id: str
    workload: str
    task: str
    model: str
    synthetic_weights: bool
    backend: str
    device: str
    precision: str
    status: CellStatus
    reason: str
    metrics: Mapping[str, str]  # metric name -> formatted value, in the task's declared order
    p50_ms: str
    p90_ms: str
    p99_ms: str
    samples_per_s: str
    percentiles_withheld: bool
    unstable: bool = False
    # What tells apart cells of one task and model (e.g. ERNIE "s64-b8": 64 tokens, batch 8): the
    # cell id's label, shown so that no two rows of a table read the same.
    variant: str = ""
    scenario: str = ""
    shown: tuple[str, ...] = ()  # the metrics a one-line summary shows (declared by the workload)
    declared_order: tuple[str, ...] = ()  # the task's metrics in the workload's reading order
    runtime: str = "paddle"  # the inference runtime (Paddle Inference, ONNX Runtime, OpenVINO)

    @property
    def model_name(self) -> str:
        return f"{self.model}@{self.variant}" if self.variant else self.model

    @property
    def model_label(self) -> str:
        return f"{self.model_name} {SYNTHETIC_LABEL}" if self.synthetic_weights else self.model_name

    @property
    def status_label(self) -> str:
        return f"{self.status}: {self.reason}" if self.reason and self.status != "passed" else self.status


@dataclass(frozen=True)
class SubsetRow:
    """One metric of one cell, split by dataset subset (e.g. clean vs degraded)."""

    task: str
    model: str
    backend: str
    precision: str
    metric: str
    values: Mapping[str, str]  # subset name -> formatted value
    scenario: str = ""
    runtime: str = "paddle"


@dataclass(frozen=True)
class ModelFileRow:
    """One model file with its digest: evidence of exactly which weights ran."""

    model: str
    role: str
    file: str
    sha256_prefix: str
    synthetic_weights: bool
    path: str
    source: str | None = None


def _latency_columns(latency: LatencySummary | None) -> tuple[str, str, str, bool]:
    if latency is None:
        return "", "", "", False
    withheld = latency.p90 is None or latency.p99 is None
    return format_ms(latency.p50), format_ms(latency.p90), format_ms(latency.p99), withheld


def cell_variant(cell: CellResult) -> str:
    """The label after ``model@`` in the cell id ("" without one)."""
    named = model_label(cell)
    return named.removeprefix(f"{cell.model}@") if named.startswith(f"{cell.model}@") else ""


def _identity_but_scenario(row: CellRow | SubsetRow) -> tuple[str, ...]:
    if isinstance(row, CellRow):
        return (row.workload, row.task, row.model_name, row.backend, row.runtime, row.precision)
    return (row.task, row.model, row.backend, row.runtime, row.precision, row.metric)


def shows_runtime(rows: Iterable[CellRow | SubsetRow]) -> bool:
    """Whether a table of ``rows`` needs a runtime column: some cell ran off Paddle Inference."""
    return any(row.runtime != DEFAULT_RUNTIME for row in rows)


def scenarios_differ(rows: Iterable[CellRow | SubsetRow]) -> bool:
    """Whether some of ``rows`` differ only by scenario, so their table must show it."""
    seen: dict[tuple[str, ...], str] = {}
    for row in rows:
        scenario = seen.setdefault(_identity_but_scenario(row), row.scenario)
        if scenario != row.scenario:
            return True
    return False


def cell_row(cell: CellResult, layout: TaskLayout | None = None) -> CellRow:
    p50, p90, p99, withheld = _latency_columns(cell.latency_ms)
    layout = layout or TaskLayout()
    return CellRow(
        cell_id=cell.cell_id,
        workload=cell.workload,
        task=cell.task,
        model=cell.model,
        synthetic_weights=any(record.synthetic_weights for record in cell.models),
        backend=cell.backend,
        device=cell.device or "",
        precision=cell.precision,
        status=cell.status,
        reason=one_line(cell.reason),
        metrics={name: format_metric(cell.metrics[name]) for name in ordered(cell.metrics, layout.order)},
        p50_ms=f"{p50} {UNSTABLE}" if cell.trials and cell.trials.unstable else p50,
        p90_ms=p90,
        p99_ms=p99,
        samples_per_s=format_rate(cell.throughput.samples_per_s) if cell.throughput else "",
        percentiles_withheld=withheld,
        unstable=bool(cell.trials and cell.trials.unstable),
        variant=cell_variant(cell),
        scenario=cell.scenario,
        shown=tuple(name for name in layout.shown if name in cell.metrics),
        declared_order=layout.order,
        runtime=cell.runtime,
    )


def shown_metrics(row: CellRow) -> dict[str, str]:
    """The metrics the workload chose for a one-line summary; without a choice, the first few."""
    names = row.shown or tuple(row.metrics)[:SHOWN_FALLBACK_COUNT]
    return {name: row.metrics[name] for name in names}


def rows_by_workload(results: RunResults) -> dict[str, list[CellRow]]:
    """Cell rows grouped by workload, workloads and cells in the order the run produced them."""
    grouped: dict[str, list[CellRow]] = {}
    for cell in results.cells:
        grouped.setdefault(cell.workload, []).append(cell_row(cell, TaskLayout.of(results, cell)))
    return grouped


def rows_by_task(rows: Iterable[CellRow]) -> dict[str, list[CellRow]]:
    grouped: dict[str, list[CellRow]] = {}
    for row in rows:
        grouped.setdefault(row.task, []).append(row)
    return grouped


def metric_columns(rows: Sequence[CellRow]) -> list[str]:
    """Every metric of ``rows``: the declared ones in the workload's order, then the rest by name."""
    declared = tuple(dict.fromkeys(name for row in rows for name in row.declared_order))
    return ordered((name for row in rows for name in row.metrics), declared)


def subset_rows(results: RunResults, cells: Iterable[CellResult]) -> list[SubsetRow]:
    """``metrics_by_subset`` (metric -> subset -> value) as one row per cell and shown metric.

    A cell without any shown metric split by subset shows all of its split metrics.
    """
    rows = []
    for cell in cells:
        split = cell.metrics_by_subset
        layout = TaskLayout.of(results, cell)
        shown = [name for name in layout.shown if name in split]
        for metric in shown or ordered(split, layout.order):
            by_subset = cell.metrics_by_subset[metric]
            rows.append(
                SubsetRow(
                    task=cell.task,
                    model=model_label(cell),
                    backend=cell.backend,
                    precision=cell.precision,
                    metric=metric,
                    values={
                        subset: format_metric(by_subset[subset]) for subset in sorted(by_subset)
                    },
                    scenario=cell.scenario,
                    runtime=cell.runtime,
                )
            )
    return rows


def subset_columns(rows: Iterable[SubsetRow]) -> list[str]:
    # Subsets are the workload's own names (e.g. clean, degraded): alphabetical, the same in every table.
    return sorted({subset for row in rows for subset in row.values})


def model_file_rows(results: RunResults) -> list[ModelFileRow]:
    """Every distinct model file any cell loaded, in first-use order."""
    seen: dict[tuple[str, str, str, str], ModelFileRow] = {}
    for cell in results.cells:
        for record in cell.models:
            for file_name, digest in sorted(record.sha256.items()):
                key = (record.name, record.path, file_name, digest)
                if key not in seen:
                    seen[key] = ModelFileRow(
                        model=record.name,
                        role=record.role,
                        file=file_name,
                        sha256_prefix=digest[:SHA256_PREFIX_LENGTH],
                        synthetic_weights=record.synthetic_weights,
                        path=record.path,
                        source=record.source,
                    )
    return list(seen.values())


def unfinished_cells(results: RunResults) -> list[CellRow]:
    return [cell_row(cell, TaskLayout.of(results, cell)) for cell in results.cells if cell.status != "passed"]


def status_counts(results: RunResults) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for cell in results.cells:
        counts[cell.status] = counts.get(cell.status, 0) + 1
    return counts


def _section(platform: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = platform.get(key)
    return value if isinstance(value, Mapping) else {}


def _join(*parts: object, separator: str = ", ") -> str:
    return separator.join(str(part) for part in parts if part)


def platform_lines(platform: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs describing the machine; labels without a known value are left out."""
    cpu = _section(platform, "cpu")
    os_release = _section(platform, "os")
    python = _section(platform, "python")
    paddle = _section(platform, "paddle")

    cpu_details = _join(
        cpu.get("vendor"), cpu.get("family") and f"family {cpu['family']}", cpu.get("architecture")
    )
    cpu_text = _join(cpu.get("model_name"), cpu_details and f"({cpu_details})", separator=" ")
    cores = _join(
        cpu.get("cores_physical") and f"{cpu['cores_physical']} physical",
        cpu.get("cores_logical") and f"{cpu['cores_logical']} logical",
        separator=" / ",
    )
    os_text = os_release.get("pretty_name") or _join(
        os_release.get("name"), os_release.get("version_id"), separator=" "
    )
    paddle_text = _join(
        paddle.get("version"), paddle.get("commit") and f"(commit {paddle['commit']})", separator=" "
    )
    memory = platform.get("memory_total_bytes")
    lines = [
        ("CPU", cpu_text),
        ("Cores", cores),
        ("Memory", format_bytes(memory) if isinstance(memory, int) else ""),
        ("OS", os_text),
        ("Kernel", str(platform.get("kernel") or "")),
        ("Python", _join(python.get("version"), python.get("implementation"), separator=" ")),
        ("Paddle", paddle_text),
    ]
    return [(label, value) for label, value in lines if value]


def suite_text(results: RunResults) -> str:
    """The suite as the run stored it (its file may have changed since); name only before schema 1.1."""
    stored = results.suite_definition
    if not stored:
        return results.suite
    header = stored.get("suite", {})
    trials = header.get("trials")
    processes = header.get("processes") or 1
    timing = trials and f"{trials} timed trial(s) per cell"
    if timing and processes > 1:
        timing += f" in each of {processes} worker processes (single-stream cells)"
    parts = [header.get("description"), f"{len(stored.get('cells', []))} cell(s)", timing]
    return f"{results.suite} ({'; '.join(str(p) for p in parts if p)})"


def run_header_lines(results: RunResults) -> list[tuple[str, str]]:
    """(label, value) pairs identifying the run itself."""
    version = _join(
        results.portbench_version, results.git_sha and f"(git {results.git_sha[:12]})", separator=" "
    )
    lines = [
        ("Run", results.run_id),
        ("Suite", suite_text(results)),
        ("Started", format_timestamp(results.started_at)),
        ("Finished", format_timestamp(results.finished_at)),
        ("portbench", version),
    ]
    return [(label, value) for label, value in lines if value]


# --- server scenario and audits ---------------------------------------------------------------------

SERVER_COLUMNS = ("Cell", "Backend", "Bound ms", "Rate at bound q/s", "p99 ms", "Early stopping", "Audits")


@dataclass(frozen=True)
class ServerRow:
    """One server cell: the rate found under its bound and the final run's tail, formatted."""

    cell_id: str
    backend: str
    bound_ms: str
    rate_qps: str
    p99_ms: str
    early_stopping: str
    audits: str
    note: str = ""  # why no rate is valid, or that the search budget cut the search short


def audits_text(audits: Mapping[str, Any]) -> str:
    """``outputs passed, cache passed (1.1x)``; empty where no audit ran."""
    parts = []
    for name, verdict in audits.items():
        text = f"{name} {verdict.get('verdict', '?')}"
        if name == "cache" and isinstance(verdict.get("ratio"), (int, float)):
            text += f" ({verdict['ratio']:.1f}x)"
        parts.append(text)
    return ", ".join(parts)


def server_rows(results: RunResults) -> list[ServerRow]:
    rows = []
    for cell in results.cells:
        server = cell.server
        if not server:
            continue
        early = server.get("early_stopping") or {}
        if not early:
            early_text = "-"
        elif early.get("passed"):
            early_text = f"passed ({early['queries']} queries, {early['overlatency']} over)"
        else:
            early_text = f"not met: {early.get('more_needed', '?')} more queries needed"
        rate = server.get("rate_at_bound_qps")
        tail = server.get("tail_ms")
        best = server.get("best_rate_qps")
        if isinstance(rate, (int, float)):
            rate_text = format_rate(rate)
        elif isinstance(best, (int, float)):
            # Never a bare "none": the closest rate the search reached, marked invalid (see the note).
            rate_text = f"none met (closest {format_rate(best)}, invalid)"
            tail = tail if isinstance(tail, (int, float)) else server.get("best_tail_ms")
        else:
            rate_text = "none met"
        rows.append(
            ServerRow(
                cell_id=cell.cell_id,
                backend=cell.backend,
                bound_ms=f"{server['latency_bound_ms']:g}",
                rate_qps=rate_text,
                p99_ms=format_ms(tail) if isinstance(tail, (int, float)) else "-",
                early_stopping=early_text,
                audits=audits_text(cell.audits),
                note=str(server.get("reason") or server.get("note") or ""),
            )
        )
    return rows


SERVER_NOTE = (
    "Rate at bound: the highest Poisson arrival rate whose final run kept the p99 latency, counted "
    "from each query's scheduled arrival, under the bound, with MLPerf's early-stopping rule met; "
    "p99 ms is that run's (its maximum where it holds fewer than 200 queries)."
)
