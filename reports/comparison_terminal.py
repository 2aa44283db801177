"""The comparison on the terminal: p50 and throughput side by side, the settings that differ, and the
procurement ranking when a machines file was given."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from portbench.harness.reporting import Comparison, ComparisonReport
from portbench.reports.frame import KEY, cells_frame, manifest_differences, with_baseline_speedup
from portbench.reports.procurement import procurement_frame


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=title, title_justify="left")
    for column in frame.columns:
        table.add_column(Text(str(column)))
    for row in frame.itertuples(index=False):
        # Text, not markup: host and model names such as "[bold]" or "<script>" print as they are.
        table.add_row(*(Text(_fmt(v)) for v in row))
    return table


class ComparisonTerminal(ComparisonReport):
    name = "comparison-terminal"
    description = "the comparison as terminal tables"

    def render(self, comparison: Comparison, destination: Path | None, console: Console) -> list[Path]:
        cells = with_baseline_speedup(cells_frame(comparison.runs), comparison.baseline)
        shown = cells[
            [
                *KEY,
                "column",
                "status",
                "p50_ms",
                "throughput_samples_per_s",
                "speedup_vs_baseline",
                "parity_verdict",
            ]
        ].rename(columns={"column": "platform"})
        console.print(_table(f"Side by side (baseline: {comparison.baseline})", shown))
        differences = manifest_differences(comparison.runs)
        if not differences.empty:
            console.print(_table("Settings that differ between runs", differences))
        if comparison.machines:
            frame = procurement_frame(cells, comparison.machines, comparison.baseline)
            console.print(
                _table(
                    "Procurement",
                    frame[
                        [
                            *KEY,
                            "platform",
                            "per_10k_yuan",
                            "per_watt",
                            "per_10k_yuan_vs_baseline",
                            "rank_per_10k_yuan",
                            "rank_per_watt",
                            "excluded",
                        ]
                    ],
                )
            )
        return []
