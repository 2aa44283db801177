"""The report contract and registry: every rendering of results (summary.md, the terminal table,
exports for other tools) is a :class:`Report` registered by name.

The harness renders through this registry and never imports a report module, so ``reports/`` can build
on the results model without a cycle, and a new report (or a third party's, through the
``portbench.reports`` entry-point group) is one module plus its registration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console

from portbench.harness.results import RunResults
from portbench.plugins import Registry


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
    "prometheus": "portbench.reports.prometheus:PrometheusTextfile",
    "pushgateway": "portbench.reports.prometheus:PushgatewayExport",
    "mlflow": "portbench.reports.mlflow_tracking:MlflowExport",
}
ENTRY_POINT_GROUP = "portbench.reports"
REPORTS = Registry[Report]("report", Report, BUILTIN_REPORTS, ENTRY_POINT_GROUP)
# Rendered after every run and by ``portbench report``.
RUN_REPORTS = ("summary", "terminal")


def create_report(name: str, **options: Any) -> Report:
    """An instance of report ``name``; ``options`` go to its constructor (a report whose destination
    is not a file, such as a Pushgateway URL, takes it here)."""
    return REPORTS.load(name)(**options)


def render(
    name: str,
    results: RunResults,
    run_dir: Path,
    console: Console,
    destination: Path | None = None,
    **options: Any,
) -> Path | None:
    """Render report ``name`` of the run in ``run_dir`` to ``destination`` or its default place."""
    report = create_report(name, **options)
    if destination is None and report.default_filename is not None:
        destination = run_dir / report.default_filename
    return report.render(results, destination, console)


class EvidenceBundler(ABC):
    """Writes and checks a compliance evidence bundle (one zip) of a run. Unlike a :class:`Report` it
    needs the run directory (outputs and logs go in the bundle), an optional reference run and a
    signing key, and it has a second operation, ``verify``, that reads no run at all."""

    name: ClassVar[str]

    @abstractmethod
    def write(
        self,
        run_dir: Path,
        results: RunResults,
        reference: RunResults | None,
        out: Path,
        signing_key: Path | None,
        console: Console,
    ) -> bool:
        """Write the bundle to ``out``; True when the overall verdict is PASS."""

    @abstractmethod
    def verify(self, bundle: Path, public_key: Path | None, console: Console) -> bool:
        """Re-check the bundle's hashes, signature and verdicts; True when all hold."""


BUILTIN_EVIDENCE: Mapping[str, str] = {"evidence": "portbench.reports.evidence:EvidenceBundle"}
EVIDENCE = Registry[EvidenceBundler](
    "evidence bundle", EvidenceBundler, BUILTIN_EVIDENCE, "portbench.evidence"
)


def create_evidence_bundler(name: str = "evidence") -> EvidenceBundler:
    return EVIDENCE.load(name)()
