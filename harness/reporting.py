"""The report contract and registry: every rendering of results (summary.md, the terminal table,
exports for other tools) is a :class:`Report` registered by name.

The harness renders through this registry and never imports a report module, so ``reports/`` can build
on the results model without a cycle, and a new report (or a third party's, through the
``portbench.reports`` entry-point group) is one module plus its registration.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

from rich.console import Console

from portbench.errors import UnknownNameError
from portbench.harness.results import RunResults


class Report(ABC):
    """One rendering of one run's results. Reports only read results; they never measure."""

    name: ClassVar[str]
    description: ClassVar[str]
    # Where the report goes when the caller names no destination, relative to the run directory
    # (None: the report prints to the console).
    default_filename: ClassVar[str | None] = None

    @abstractmethod
    def render(self, results: RunResults, destination: Path | None, console: Console) -> Path | None:
        """Write the report to ``destination`` (a file, or a folder where the report says so) or print
        it on ``console``; returns the path written, if any."""


BUILTIN_REPORTS: Mapping[str, str] = {
    "summary": "portbench.reports.markdown:MarkdownSummary",
    "terminal": "portbench.reports.terminal:TerminalSummary",
    "pytest-benchmark": "portbench.reports.pytest_benchmark:PytestBenchmarkExport",
}
ENTRY_POINT_GROUP = "portbench.reports"
# Rendered after every run and by ``portbench report``.
RUN_REPORTS = ("summary", "terminal")


def report_targets() -> dict[str, str]:
    """Every report name with its ``module:Class`` target; built-ins win over plugins."""
    targets = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    targets.update(BUILTIN_REPORTS)
    return targets


def create_report(name: str) -> Report:
    targets = report_targets()
    if name not in targets:
        raise UnknownNameError("report", name, list(targets))
    module_name, _, class_name = targets[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Report)):
        raise TypeError(f"{targets[name]} is not a portbench Report")
    return cls()


def render(
    name: str, results: RunResults, run_dir: Path, console: Console, destination: Path | None = None
) -> Path | None:
    """Render report ``name`` of the run in ``run_dir`` to ``destination`` or its default place."""
    report = create_report(name)
    if destination is None and report.default_filename is not None:
        destination = run_dir / report.default_filename
    return report.render(results, destination, console)
