"""The run summary on the terminal: one condensed rich table, status coloured.

Content and number formatting come from :mod:`portbench.reports.tables`, shared with ``summary.md``.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from portbench.harness.results import RunResults
from portbench.reports.tables import (
    SYNTHETIC_LABEL,
    WITHHELD,
    WITHHELD_NOTE,
    CellRow,
    platform_lines,
    rows_by_workload,
    status_counts,
)

STATUS_STYLES = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


def metrics_text(row: CellRow) -> str:
    return "\n".join(f"{name} {value}" for name, value in row.metrics.items())


def note_text(row: CellRow) -> str:
    # The model column stays narrow on a terminal; the synthetic-weights warning goes with the notes.
    notes = [row.reason, SYNTHETIC_LABEL.strip("()") if row.synthetic_weights else ""]
    return "; ".join(note for note in notes if note)


def render_summary_table(results: RunResults) -> Table:
    """All cells in one table: what ran where, its accuracy, latency and throughput, or why it did not run."""
    table = Table(title=f"portbench {results.run_id} ({results.suite} suite)", title_justify="left")
    for name in ("Workload", "Task", "Model", "Backend", "Precision", "Status", "Accuracy"):
        table.add_column(name)
    for name in ("p50 ms", "p90 ms", "p99 ms", "samples/s"):
        table.add_column(name, justify="right")
    table.add_column("Note")
    for workload, rows in rows_by_workload(results).items():
        for row in rows:
            # Text, not str: a reason such as "[cpu] missing" must not be read as rich markup.
            cells = [
                workload,
                row.task,
                row.model,
                row.backend if row.device in ("", row.backend) else f"{row.backend} ({row.device})",
                row.precision,
            ]
            table.add_row(
                *(Text(value) for value in cells),
                Text(row.status, style=STATUS_STYLES.get(row.status, "")),
                Text(metrics_text(row)),
                *(Text(value) for value in (row.p50_ms, row.p90_ms, row.p99_ms, row.samples_per_s)),
                Text(note_text(row)),
            )
    return table


def print_summary(results: RunResults, console: Console) -> None:
    """Platform line, the summary table, the withheld-percentile note and the status counts."""
    platform = dict(platform_lines(results.platform))
    described = [f"{label} {platform[label]}" for label in ("CPU", "OS", "Paddle") if label in platform]
    if described:
        console.print(Text(" · ".join(described)))
    console.print(render_summary_table(results))
    if any(row.percentiles_withheld for rows in rows_by_workload(results).values() for row in rows):
        console.print(Text(f"{WITHHELD} {WITHHELD_NOTE}"))
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
