"""Tidy exports of a comparison: the cells table (one row per run × cell) and the long table of raw
latency samples beside it (``FILE`` and ``FILE-samples``, same suffix). Columns: README "Comparing
runs"."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
from rich.console import Console

from portbench.errors import PortbenchError
from portbench.harness.reporting import Comparison, ComparisonReport
from portbench.harness.results import write_atomic
from portbench.reports.frame import cells_frame, samples_frame, with_baseline_speedup


def samples_path(destination: Path) -> Path:
    return destination.with_name(f"{destination.stem}-samples{destination.suffix}")


def export_frames(comparison: Comparison) -> tuple[pd.DataFrame, pd.DataFrame]:
    cells = with_baseline_speedup(cells_frame(comparison.runs), comparison.baseline)
    return cells, samples_frame(comparison.runs)


class CsvExport(ComparisonReport):
    name = "csv"
    description = "cells and raw samples as CSV (UTF-8 with BOM, for Excel and WPS)"

    def render(self, comparison: Comparison, destination: Path | None, console: Console) -> list[Path]:
        if destination is None:
            raise PortbenchError("the CSV export needs a file (--csv FILE)")
        written = []
        for frame, path in zip(
            export_frames(comparison), (destination, samples_path(destination)), strict=True
        ):
            buffer = io.StringIO()
            frame.to_csv(buffer, index=False)
            # Excel and WPS read UTF-8 as UTF-8 only behind a byte-order mark (Chinese names otherwise
            # come out as mojibake); the text write adds it as U+FEFF.
            write_atomic(path, "\ufeff" + buffer.getvalue())
            written.append(path)
        return written


class ParquetExport(ComparisonReport):
    name = "parquet"
    description = "cells and raw samples as Parquet (needs pyarrow: portbench[report])"

    def render(self, comparison: Comparison, destination: Path | None, console: Console) -> list[Path]:
        if destination is None:
            raise PortbenchError("the Parquet export needs a file (--parquet FILE)")
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise PortbenchError("--parquet needs pyarrow: pip install 'portbench[report]'") from None
        written = []
        for frame, path in zip(
            export_frames(comparison), (destination, samples_path(destination)), strict=True
        ):
            frame = frame.copy()
            for column in ("platform", "workload", "task", "precision", "scenario", "backend"):
                if column in frame:
                    frame[column] = frame[column].astype("category")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.tmp")
                frame.to_parquet(tmp, index=False)
                tmp.replace(path)
            except OSError as error:
                raise PortbenchError(f"cannot write {path}: {error.strerror or error}") from None
            written.append(path)
        return written
