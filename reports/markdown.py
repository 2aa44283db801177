"""The run summary as Markdown (``summary.md``): readable by someone who compares platforms, not code.

Content and number formatting come from :mod:`portbench.reports.tables`; this module only lays them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from portbench.harness.reporting import Report
from portbench.harness.results import RunResults, write_atomic
from portbench.reports.device_sections import (
    energy_rows,
    first_shape_kind_lines,
    first_shape_rows,
    placement_rows,
)
from portbench.reports.parity import (
    VERDICT_SYMBOLS,
    column_label,
    parity_matrix,
    parity_notes,
    reference_description,
)
from portbench.reports.tables import (
    SERVER_COLUMNS,
    SERVER_NOTE,
    SYNTHETIC_LABEL,
    UNSTABLE,
    UNSTABLE_NOTE,
    WITHHELD,
    WITHHELD_NOTE,
    CellRow,
    metric_columns,
    model_file_rows,
    platform_lines,
    rows_by_task,
    rows_by_workload,
    run_header_lines,
    scenarios_differ,
    server_rows,
    shows_runtime,
    status_counts,
    subset_columns,
    subset_rows,
    unfinished_cells,
)

CELL_COLUMNS = ("Task", "Model", "Backend", "Device", "Precision", "Status")
LATENCY_COLUMNS = ("p50 ms", "p90 ms", "p99 ms", "samples/s")


def escape_inline(text: str) -> str:
    """One line, with ``<`` escaped so an error message such as ``<Tensor>`` is not taken for HTML."""
    return " ".join(text.split()).replace("<", "&lt;")


def escape_cell(text: str) -> str:
    """Make ``text`` safe inside a Markdown table cell (a pipe would start a new column)."""
    return escape_inline(text).replace("|", "\\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_right_from: int) -> list[str]:
    """A GitHub-flavoured Markdown table; columns from ``align_right_from`` on hold numbers."""
    separators = ["---" if index < align_right_from else "---:" for index in range(len(header))]
    lines = [
        "| " + " | ".join(escape_cell(name) for name in header) + " |",
        "| " + " | ".join(separators) + " |",
    ]
    lines += ["| " + " | ".join(escape_cell(value) for value in row) + " |" for row in rows]
    return lines


def metric_header(name: str) -> str:
    # The OCR metric "precision" must not be mistaken for the numeric precision column.
    if name.lower() in (column.lower() for column in CELL_COLUMNS):
        return f"{name} (metric)"
    return name


def key_value_table(pairs: Sequence[tuple[str, str]]) -> list[str]:
    return markdown_table(("", ""), [(f"**{label}**", value) for label, value in pairs], align_right_from=2)


def cells_table(rows: Sequence[CellRow]) -> list[str]:
    metrics = metric_columns(rows)
    scenario = scenarios_differ(rows)
    runtime = shows_runtime(rows)
    cell_columns = [*CELL_COLUMNS[:2], *(["Scenario"] if scenario else []), *CELL_COLUMNS[2:4],
                    *(["Runtime"] if runtime else []), *CELL_COLUMNS[4:]]
    header = [*cell_columns, *(metric_header(name) for name in metrics), *LATENCY_COLUMNS]
    body = [
        [
            row.task,
            row.model_label,
            *([row.scenario] if scenario else []),
            row.backend,
            row.device,
            *([row.runtime] if runtime else []),
            row.precision,
            row.status_label,
            *(row.metrics.get(name, "") for name in metrics),
            row.p50_ms,
            row.p90_ms,
            row.p99_ms,
            row.samples_per_s,
        ]
        for row in rows
    ]
    return markdown_table(header, body, align_right_from=len(cell_columns))


def workload_section(workload: str, rows: Sequence[CellRow], results: RunResults) -> list[str]:
    # One table per task: det, rec and system report different metrics, and a shared table
    # would be mostly empty columns.
    lines = [f"## Workload: {workload}"]
    for table_rows in rows_by_task(rows).values():
        lines += ["", *cells_table(table_rows)]
    if any(row.percentiles_withheld for row in rows):
        lines += ["", f"{WITHHELD} in a latency column: {WITHHELD_NOTE}."]
    if any(row.unstable for row in rows):
        lines += ["", f"{UNSTABLE} after p50: {UNSTABLE_NOTE}."]

    cells = [cell for cell in results.cells if cell.workload == workload]
    subsets = subset_rows(results, cells)
    if subsets:
        columns = subset_columns(subsets)
        scenario = scenarios_differ(subsets)
        runtime = shows_runtime(subsets)
        subset_body = [
            [
                row.task,
                row.model,
                *([row.scenario] if scenario else []),
                row.backend,
                *([row.runtime] if runtime else []),
                row.precision,
                row.metric,
                *(row.values.get(c, "") for c in columns),
            ]
            for row in subsets
        ]
        subset_header = (
            "Task", "Model", *(["Scenario"] if scenario else []), "Backend",
            *(["Runtime"] if runtime else []), "Precision", "Metric",
        )
        lines += [
            "",
            f"### {workload}: accuracy by subset",
            "",
            *markdown_table((*subset_header, *columns), subset_body, len(subset_header)),
        ]
        if sum(len(cell.metrics_by_subset) for cell in cells) > len(subsets):
            lines += ["", "Headline metrics only; every metric of every subset is in results.json."]
    return lines


def models_section(results: RunResults) -> list[str]:
    files = model_file_rows(results)
    if not files:
        return []
    body = [
        [
            row.model,
            row.role,
            row.file,
            f"`{row.sha256_prefix}`",
            SYNTHETIC_LABEL.strip("()") if row.synthetic_weights else "real",
            row.source or "—",
            f"`{row.path}`",
        ]
        for row in files
    ]
    header = ("Model", "Role", "File", "sha256 (first 12)", "Weights", "Source", "Loaded from")
    return ["## Models", "", *markdown_table(header, body, align_right_from=len(header))]


def parity_section(results: RunResults) -> list[str]:
    """The parity matrix, then why cells failed (with their worst samples) or were not compared."""
    matrix = parity_matrix(results)
    if matrix is None:
        return []
    legend = ", ".join(f"{symbol} {verdict}" for verdict, symbol in VERDICT_SYMBOLS.items())
    labels = (column_label(column, matrix.shows_runtime) for column in matrix.columns)
    header = ("Workload / model", "Metric", *labels)
    body = [
        [row.label, row.metric, *(row.entries[c].text if c in row.entries else "" for c in matrix.columns)]
        for row in matrix.rows
    ]
    lines = [
        "## Accuracy parity",
        "",
        f"Reference: {reference_description(matrix, results.run_id)}. Each entry: verdict ({legend}), "
        "change of the metric against the reference, speed-up over FP32 on the same backend (p50).",
        "",
        *markdown_table(header, body, align_right_from=2),
    ]
    notes = parity_notes(results)
    if notes:
        lines.append("")
    for note in notes:
        lines.append(f"- **{note.verdict}** `{note.cell_id}`: {escape_inline(note.reason)}")
        lines += [f"  - `{escape_inline(sample)}`" for sample in note.worst_samples]
    return lines


def server_section(results: RunResults) -> list[str]:
    rows = server_rows(results)
    if not rows:
        return []
    table = [
        (r.cell_id, r.backend, r.bound_ms, r.rate_qps, r.p99_ms, r.early_stopping, r.audits) for r in rows
    ]
    notes = [f"- `{r.cell_id}`: {escape_inline(r.note)}" for r in rows if r.note]
    return [
        "## Server scenario", "", SERVER_NOTE, "", *markdown_table(SERVER_COLUMNS, table, align_right_from=2),
        *(["", *notes] if notes else []),
    ]


def energy_section(results: RunResults) -> list[str]:
    rows, absent = energy_rows(results)
    if not rows and not absent:
        return []
    lines = [
        "## Energy",
        "",
        "Energy of the timed loops from every power source found; each figure covers its scope only "
        "(a CPU package is not the wall socket). No figure is ever a 0 standing in for \"not measured\".",
    ]
    if rows:
        header = ("Cell", "Source", "Scope", "Domain", "Method", "Energy J", "Mean W", "J/sample",
                  "samples/J")
        body = [[r.cell_id, r.source, r.scope, r.domain, r.method, r.energy_j, r.mean_power_w,
                 r.energy_per_sample_j, r.samples_per_j] for r in rows]
        lines += ["", *markdown_table(header, body, align_right_from=5)]
    for reason, cells in absent.items():
        shown = "every cell" if len(cells) == len([c for c in results.cells if c.energy]) else ", ".join(
            f"`{c}`" for c in cells
        )
        lines += ["", f"- {shown}: {escape_inline(reason)}"]
    return lines


def first_shape_section(results: RunResults) -> list[str]:
    rows = first_shape_rows(results)
    if not rows:
        return []
    header = ("Cell", "What varies", "Shape", "First call ms", "Steady ms", "Extra ms")
    body = [[r.cell_id, r.kind, r.label + (" *" if r.first_of_session else ""), r.first_ms, r.steady_ms,
             r.extra_ms] for r in rows]
    lines = [
        "## First-shape cost",
        "",
        "Each distinct input shape of the data, in data order, timed in its own pass before any other "
        "inference of the cell: its first call against the median of the next calls of the same shape. "
        "\\* the predictor's first run of any shape (start-up included).",
        "",
        *markdown_table(header, body, align_right_from=3),
    ]
    summary = first_shape_kind_lines(results)
    if summary:
        lines += ["", *(f"- {escape_inline(line)}" for line in summary)]
    return lines


def placement_section(results: RunResults) -> list[str]:
    rows, missing = placement_rows(results)
    if not rows and not missing:
        return []
    lines = [
        "## Operator placement",
        "",
        "Operators of Paddle's optimized program per model, where they ran, and their share of "
        "operator time from Paddle's profiler (a run on a predictor of its own, after the timed loops).",
    ]
    if rows:
        header = ("Cell", "Role", "Device", "Placement", "Fallbacks", "Top operators by time", "Ops",
                  "On device", "On CPU", "CPU time")
        body = [[r.cell_id, r.role, r.device, r.note, r.fallbacks, r.top_operators, str(r.op_total),
                 str(r.ops_on_device), str(r.ops_on_cpu), r.cpu_time_share] for r in rows]
        lines += ["", *markdown_table(header, body, align_right_from=6)]
    if missing:
        lines += ["", *(f"- {escape_inline(line)}" for line in missing)]
    return lines


def unfinished_section(results: RunResults) -> list[str]:
    rows = unfinished_cells(results)
    if not rows:
        return []
    lines = ["## Failed and skipped cells", ""]
    lines += [
        f"- **{row.status}** `{row.cell_id}`: {escape_inline(row.reason) or 'no reason recorded'}"
        for row in rows
    ]
    return lines


def render_markdown(results: RunResults) -> str:
    """The whole run summary as Markdown text."""
    counts = status_counts(results)
    lines = [
        f"# portbench results: {results.suite} suite",
        "",
        *key_value_table(run_header_lines(results)),
        "",
        f"Cells: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped.",
        "",
        "## Platform",
        "",
        *key_value_table(platform_lines(results.platform)),
    ]
    for workload, rows in rows_by_workload(results).items():
        lines += ["", *workload_section(workload, rows, results)]
    sections = (
        server_section(results),
        parity_section(results),
        energy_section(results),
        first_shape_section(results),
        placement_section(results),
        models_section(results),
        unfinished_section(results),
    )
    for section in sections:
        if section:
            lines += ["", *section]
    return "\n".join(lines) + "\n"


class MarkdownSummary(Report):
    """``summary.md`` beside ``results.json``: every cell, parity, models, unfinished cells."""

    name = "summary"
    description = "Markdown summary of one run (summary.md)"
    default_filename = "summary.md"

    def render(self, results: RunResults, destination: Path | None, console: Console) -> Path | None:
        path = destination or Path(self.default_filename)
        write_atomic(path, render_markdown(results))
        return path
