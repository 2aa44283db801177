"""The run summary on the terminal: one condensed rich table, status coloured, readable at 80 columns.

Content and number formatting come from :mod:`portbench.reports.tables`, shared with ``summary.md``;
the terminal shows headline metrics, p50 and p99 only (summary.md has every metric and p90), and lists
reasons for failed and skipped cells below the table.
"""

from __future__ import annotations

from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from portbench.harness.reporting import Report
from portbench.harness.results import RunResults
from portbench.reports.parity import ParityMatrix, column_label, parity_matrix, parity_notes
from portbench.reports.tables import (
    SERVER_COLUMNS,
    SERVER_NOTE,
    SYNTHETIC_LABEL,
    UNSTABLE,
    UNSTABLE_NOTE,
    WITHHELD,
    WITHHELD_NOTE,
    CellRow,
    platform_lines,
    rows_by_workload,
    scenarios_differ,
    server_rows,
    shown_metrics,
    shows_runtime,
    status_counts,
    unfinished_cells,
)

STATUS_STYLES = {"passed": "green", "failed": "bold red", "skipped": "yellow"}
VERDICT_STYLES = {"pass": "green", "fail": "bold red", "skipped": "yellow"}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def cell_text(workload: str, row: CellRow, show_scenario: bool = False) -> Text:
    # Text, not str, everywhere: a name or reason such as "[cpu]" must not be read as rich markup.
    text = Text(f"{workload}/{row.task}\n", style="bold")
    text.append(row.model_name)
    if show_scenario:
        text.append(f"\n{row.scenario}")
    if row.synthetic_weights:
        text.append(f"\n{SYNTHETIC_LABEL}", style="dim")
    return text


def backend_text(row: CellRow, with_runtime: bool = False) -> Text:
    where = row.backend if row.device in ("", row.backend) else f"{row.backend} ({row.device})"
    return Text(f"{where}\n{row.runtime} {row.precision}" if with_runtime else f"{where}\n{row.precision}")


def metrics_text(row: CellRow) -> Text:
    return Text("\n".join(f"{name} {value}" for name, value in shown_metrics(row).items()))


def render_summary_table(results: RunResults) -> Table:
    """All cells in one table: what ran where, its headline accuracy, latency and throughput."""
    table = Table(
        title=Text(f"portbench {results.run_id} ({results.suite} suite)"),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1, 0, 0),
    )
    # Minimum widths fit the usual model and metric names; with p90 left to summary.md the table
    # fits an 80-column terminal.
    table.add_column("Cell", overflow="fold", min_width=18)
    table.add_column("Backend", overflow="fold")
    table.add_column("Status", no_wrap=True)
    table.add_column("Accuracy", overflow="fold", min_width=17)
    for name in ("p50\nms", "p99\nms", "samples\nper s"):
        table.add_column(name, justify="right", no_wrap=True)
    grouped = rows_by_workload(results)
    show_scenario = scenarios_differ(row for rows in grouped.values() for row in rows)
    # Like the scenario, the runtime is shown once the run has cells off Paddle Inference.
    show_runtime = shows_runtime(row for rows in grouped.values() for row in rows)
    for workload, rows in grouped.items():
        for row in rows:
            table.add_row(
                cell_text(workload, row, show_scenario),
                backend_text(row, show_runtime),
                status_text(row.status),
                metrics_text(row),
                *(Text(value) for value in (row.p50_ms, row.p99_ms, row.samples_per_s)),
            )
    return table


def render_parity_table(matrix: ParityMatrix, title: str) -> Table:
    """Workload/model down, backend × precision across: verdict, metric change, speed-up."""
    table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
    table.add_column("Workload / model", overflow="fold", min_width=18)
    for column in matrix.columns:
        table.add_column(column_label(column, matrix.shows_runtime), justify="right", overflow="fold")
    for row in matrix.rows:
        cells = [Text(f"{row.label}\n{row.metric}" if row.metric else row.label)]
        for column in matrix.columns:
            entry = row.entries.get(column)
            cells.append(Text(entry.text, style=VERDICT_STYLES.get(entry.verdict, "")) if entry else Text(""))
        table.add_row(*cells)
    return table


def print_parity(results: RunResults, console: Console) -> None:
    """The parity matrix and the reasons of failed or skipped verdicts; nothing without verdicts."""
    matrix = parity_matrix(results)
    if matrix is None:
        return
    console.print(render_parity_table(matrix, "Accuracy parity vs FP32 CPU (Δ metric, speed-up vs FP32)"))
    for note in parity_notes(results):
        verdict = (note.verdict, VERDICT_STYLES.get(note.verdict, ""))
        console.print(Text.assemble(verdict, f" {note.cell_id}: {note.reason}"))
        for sample in note.worst_samples:
            console.print(Text(f"  {sample}"))


def print_server(results: RunResults, console: Console) -> None:
    rows = server_rows(results)
    if not rows:
        return
    table = Table(title="Server scenario")
    for index, column in enumerate(SERVER_COLUMNS):
        table.add_column(column, justify="right" if 2 <= index <= 4 else "left")
    for r in rows:
        table.add_row(r.cell_id, r.backend, r.bound_ms, r.rate_qps, r.p99_ms, r.early_stopping, r.audits)
    console.print(table)
    console.print(Text(SERVER_NOTE))
    for r in rows:
        if r.note:
            console.print(Text(f"{r.cell_id}: {r.note}"))


def print_summary(results: RunResults, console: Console) -> None:
    """Platform line, the summary table, notes (withheld percentiles, reasons) and the status counts."""
    platform = dict(platform_lines(results.platform))
    described = [f"{label} {platform[label]}" for label in ("CPU", "OS", "Paddle") if label in platform]
    if described:
        console.print(Text(" · ".join(described)))
    console.print(render_summary_table(results))
    rows = [row for grouped in rows_by_workload(results).values() for row in grouped]
    if any(row.percentiles_withheld for row in rows):
        console.print(Text(f"{WITHHELD} {WITHHELD_NOTE}"))
    if any(row.unstable for row in rows):
        console.print(Text(f"{UNSTABLE} {UNSTABLE_NOTE}"))
    for row in unfinished_cells(results):
        console.print(
            Text.assemble(status_text(row.status), f" {row.cell_id}: {row.reason or 'no reason recorded'}")
        )
    print_server(results, console)
    print_parity(results, console)
    counts = status_counts(results)
    console.print(
        Text.assemble(
            (f"{counts['passed']} passed", STATUS_STYLES["passed"]),
            ", ",
            (f"{counts['failed']} failed", STATUS_STYLES["failed"] if counts["failed"] else ""),
            ", ",
            (f"{counts['skipped']} skipped", STATUS_STYLES["skipped"] if counts["skipped"] else ""),
        )
    )


class TerminalSummary(Report):
    """The summary table, notes and parity matrix, printed."""

    name = "terminal"
    description = "Summary table and parity matrix on the terminal"

    def render(self, results: RunResults, destination: Path | None, console: Console) -> Path | None:
        print_summary(results, console)
        return None
