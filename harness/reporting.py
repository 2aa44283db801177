"""The report contract and registry: every rendering of results (summary.md, the terminal table,
exports for other tools) is a :class:`Report` registered by name.

The harness renders through this registry and never imports a report module, so ``reports/`` can build
on the results model without a cycle, and a new report (or a third party's, through the
``portbench.reports`` entry-point group) is one module plus its registration.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console

from portbench.errors import PortbenchError
from portbench.harness.machines import Machine
from portbench.harness.results import CellResult, RunResults, load_results
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


# ``create_report(name, **options)``: the options go to the report's constructor (a report whose
# destination is not a file, such as a Pushgateway URL, takes it there).
create_report = REPORTS.create


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
    return EVIDENCE.create(name)


# --- Comparisons: several runs (hosts, nights) rendered together -------------------------------
# A per-run Report sees one RunResults; a comparison needs every run at once, each with the label
# its column group carries, the baseline the ratios are taken against, and the user's machines file
# (prices, power) for the procurement view. Kept apart from Report so single-run reports stay as
# they are.


@dataclass(frozen=True)
class LabelledRun:
    label: str  # the platform name its column group carries (fingerprint, or --name)
    path: Path  # the run directory
    results: RunResults


@dataclass(frozen=True)
class Comparison:
    runs: tuple[LabelledRun, ...]
    baseline: str  # label of the run every ratio is taken against
    machines: Mapping[str, Machine] = field(default_factory=dict)  # label -> its machines entry

    def run(self, label: str) -> LabelledRun:
        return next(r for r in self.runs if r.label == label)


def platform_label(platform: Mapping[str, Any], cells: Iterable[CellResult] = ()) -> str:
    """A platform's name from its fingerprint: CPU model, accelerator (first non-CPU device), OS."""
    cpu = platform.get("cpu") or {}
    parts = [str(cpu.get("model_name") or cpu.get("vendor") or "unknown CPU")]
    accelerators = [
        str(c.device_info.get("name"))
        for c in cells
        if c.device_info and c.backend != "cpu" and c.device_info.get("name")
    ]
    if accelerators:
        parts.append(accelerators[0])
    os_info = platform.get("os") or {}
    os_name = " ".join(str(v) for v in (os_info.get("name"), os_info.get("version_id")) if v)
    if os_name:
        parts.append(os_name)
    return " · ".join(parts)


def load_labelled_runs(
    run_dirs: Sequence[Path], names: Mapping[Path, str] | None = None
) -> list[LabelledRun]:
    """Load each run and name it: the ``names`` override (by run directory), else its fingerprint;
    runs of the same platform get their run id appended so every column group is distinct."""
    names = dict(names or {})
    loaded = [(path, load_results(path)) for path in run_dirs]
    resolved_names = {p.resolve(): label for p, label in names.items()}
    given = {path.resolve() for path, _ in loaded}
    for path in resolved_names:
        if path not in given:
            raise PortbenchError(f"--name names {path}, which is not one of the compared runs")
    labels = [
        resolved_names.get(path.resolve()) or platform_label(results.platform, results.cells)
        for path, results in loaded
    ]
    counts = {label: labels.count(label) for label in labels}
    runs = []
    for (path, results), label in zip(loaded, labels, strict=True):
        if counts[label] > 1 and path.resolve() not in resolved_names:
            label = f"{label} ({results.run_id})"
        runs.append(LabelledRun(label, path, results))
    seen: set[str] = set()
    for run in runs:
        if run.label in seen:
            raise PortbenchError(
                f"two compared runs carry the label {run.label!r}: give them distinct --name"
            )
        seen.add(run.label)
    return runs


class ComparisonReport(ABC):
    """One rendering of several runs side by side. Like Report, it only reads results."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def render(self, comparison: Comparison, destination: Path | None, console: Console) -> list[Path]:
        """Write to ``destination`` (or print on ``console`` when None); returns the paths written."""


BUILTIN_COMPARISON_REPORTS: Mapping[str, str] = {
    "comparison-terminal": "portbench.reports.comparison_terminal:ComparisonTerminal",
    "html": "portbench.reports.html:HtmlComparison",
    "csv": "portbench.reports.exports:CsvExport",
    "parquet": "portbench.reports.exports:ParquetExport",
}
COMPARISON_ENTRY_POINT_GROUP = "portbench.comparison_reports"
COMPARISON_REPORTS = Registry[ComparisonReport](
    "comparison report", ComparisonReport, BUILTIN_COMPARISON_REPORTS, COMPARISON_ENTRY_POINT_GROUP
)


def render_comparison(
    name: str, comparison: Comparison, console: Console, destination: Path | None = None
) -> list[Path]:
    return COMPARISON_REPORTS.create(name).render(comparison, destination, console)
