"""The ``portbench`` command line.

Every user-facing failure is a PortbenchError: one line on stderr, exit code 2, no traceback.
A run whose cells failed at measurement time exits 1 (anything measured is already on disk), a
parity or accuracy regression 4, a performance regression 3 (see harness/ci_outputs.py).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from portbench import __version__
from portbench.backends.base import Precision
from portbench.backends.registry import backend_names, create_backend
from portbench.errors import PortbenchError, UnknownNameError
from portbench.files import ensure_directory
from portbench.harness import reporting
from portbench.harness.config import DEFAULT_CELL_TIMEOUT_S, Mode, RunOptions, default_cache_dir
from portbench.harness.console import make_console
from portbench.harness.container import container
from portbench.harness.fleet import fleet
from portbench.harness.parity import load_reference
from portbench.harness.quantize import DEFAULT_OP_TYPES
from portbench.harness.results import CellResult, RunResults, load_results
from portbench.harness.runner import PlannedCell, suite_for
from portbench.harness.suite import DEFAULT_SUITE, Suite, builtin_suite_names, get_suite, resolve_suite
from portbench.harness.workload import WORKLOADS, workload_names

if TYPE_CHECKING:
    from portbench.harness.compare import RunComparison

STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}
# Waits much longer than this overflow the OS poll the runner waits on (about 24 days of milliseconds).
MAX_CELL_TIMEOUT_S = 7 * 24 * 3600.0


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses nan and infinity: nan passes every bound check (and then
    every comparison the option feeds is false), infinity breaks the arithmetic behind it."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = cast(float, super().convert(value, param, ctx))
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number", param, ctx)
        return number


def labelled(label: str, style: str, rest: str) -> Text:
    """``label`` styled, then ``rest`` verbatim: cell ids and worker errors such as "[/usr/lib]" or
    "[operator < x > error]" are text, never rich markup (which would fail, or swallow them)."""
    return Text.assemble((label, style), rest)


def parse_precisions(text: str) -> tuple[Precision, ...]:
    parsed = tuple(Precision.parse(p) for p in text.split(",") if p.strip())
    if not parsed:
        raise PortbenchError("--precisions needs at least one of fp32, fp16, bf16, int8")
    return tuple(dict.fromkeys(parsed))


def parse_runtimes(text: str) -> tuple[str, ...]:
    """``--runtimes paddle,onnxruntime``: known names, in order, each once (UnknownNameError: exit 2)."""
    from portbench.backends.runtimes.registry import RUNTIMES

    parsed = tuple(dict.fromkeys(r.strip().lower() for r in text.split(",") if r.strip()))
    if not parsed:
        raise PortbenchError(f"--runtimes needs at least one of {', '.join(RUNTIMES.names())}")
    RUNTIMES.check(parsed)
    return parsed


def parse_model_dirs(values: Sequence[str]) -> dict[str, Path]:
    """``--model-dir ROLE=PATH`` pairs (roles: det, rec, model ...)."""
    parsed: dict[str, Path] = {}
    for value in values:
        role, sep, path = value.partition("=")
        if not sep or not role or not path:
            raise PortbenchError(f"--model-dir expects ROLE=PATH (e.g. rec=./my_rec_infer), got {value!r}")
        parsed[role.strip()] = Path(path).expanduser()
    return parsed


def parse_datasets(values: Sequence[str], workloads: Sequence[str]) -> dict[str, Path]:
    """``--dataset [WORKLOAD=]PATH`` values; a bare PATH needs exactly one workload in the run."""

    parsed: dict[str, Path] = {}
    for value in values:
        workload, sep, path = value.partition("=")
        if not sep:
            if len(workloads) != 1:
                raise PortbenchError(
                    f"--dataset {value}: this run has {' and '.join(workloads)} cells; "
                    "say which one it is for, e.g. --dataset ocr=DIR"
                )
            workload, path = workloads[0], value
        WORKLOADS.check([workload])
        parsed[workload] = Path(path).expanduser()
        if not parsed[workload].exists():
            raise PortbenchError(f"dataset {path} does not exist")
    return parsed


MONITORING_OPTIONS = (
    click.option("--prometheus", "prometheus_file", type=click.Path(path_type=Path), default=None,
                 metavar="FILE.prom", help="Also write the metrics for node_exporter's textfile collector."),
    click.option("--pushgateway", "pushgateway_url", default=None, metavar="URL",
                 help="Also push the metrics to a Prometheus Pushgateway, e.g. http://127.0.0.1:9091."),
    click.option("--pushgateway-job", default="portbench", show_default=True, metavar="JOB",
                 help="The job label of the Pushgateway group."),
    click.option("--mlflow", "mlflow_uri", default=None, metavar="URI",
                 help="Also log each cell as an MLflow run (extra portbench[mlflow]), e.g. sqlite:///mlflow.db."),
    click.option("--mlflow-experiment", default="portbench", show_default=True, metavar="NAME",
                 help="The MLflow experiment the runs go to."),
)


# CI's job summary, for ``run`` and ``compare``.
step_summary_option = click.option(
    "--step-summary", "step_summary", type=click.Path(path_type=Path), default=None, metavar="FILE",
    help="Also write a Markdown summary (appended to $GITHUB_STEP_SUMMARY whenever that is set).")


def monitoring_options(command: Any) -> Any:
    """The monitoring exports ``run`` and ``report`` share (read by :class:`MonitoringExports`)."""
    for option in reversed(MONITORING_OPTIONS):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="portbench")
def cli() -> None:
    """Identical Paddle Inference workloads on every platform: accuracy parity, latency, throughput."""


@cli.command()
@click.option("--suite", "suite_name", default=DEFAULT_SUITE, show_default=True,
              help="A built-in suite (portbench suites) or your own suite file (.toml).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override a suite setting, type-checked (repeatable): --set measure.min_duration_s=5.")
@click.option("--backend", "backends", multiple=True, help="Backend(s) to run; default: every available one.")
@click.option(
    "--precisions", default=None, help="Comma-separated: fp32,fp16,bf16,int8 (default: the suite's)."
)
@click.option(
    "--runtimes", default=None,
    help="Comma-separated inference runtimes: paddle,onnxruntime,openvino (default: the suite's, paddle).",
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory (default: ./portbench-results/<run-id>).")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), default=None,
              help="Finish the missing cells of an interrupted run directory.")
@click.option("--mode", type=click.Choice(["both", "accuracy", "performance"]), default="both",
              show_default=True, help="Accuracy pass, timed pass, or both.")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="CPU math threads (0: physical cores).")
@click.option("--device-id", type=click.IntRange(min=0), default=0, show_default=True,
              help="Accelerator index.")
@click.option("--model-dir", "model_dirs", multiple=True, metavar="ROLE=PATH",
              help="Use your own exported model for a role (det, rec, model).")
@click.option("--dataset", "datasets", multiple=True, metavar="[WORKLOAD=]PATH",
              help="Your own data for a workload: ocr=DIR (PaddleOCR label files), ernie=FILE.tsv. "
                   "A bare PATH is allowed when the selected cells use one workload.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Where generated data and built models are kept.")
@click.option("--reference", "reference_dir", type=click.Path(path_type=Path), default=None,
              help="An earlier run directory whose FP32 CPU cells are the parity reference.")
@click.option("--only", "only", multiple=True, metavar="TEXT",
              help="Run only cells whose id contains TEXT (repeatable), e.g. --only ocr/rec.")
@click.option("--timeout", "cell_timeout_s",
              type=FiniteFloatRange(min=0, min_open=True, max=MAX_CELL_TIMEOUT_S),
              default=DEFAULT_CELL_TIMEOUT_S, show_default=True,
              help="Seconds before a cell's worker is killed.")
@monitoring_options
@click.option("--junit", "junit_file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Also write JUnit XML: one test case per cell (CI test reports).")
@step_summary_option
def run(
    suite_name: str,
    sets: tuple[str, ...],
    backends: tuple[str, ...],
    precisions: str | None,
    runtimes: str | None,
    out_dir: Path | None,
    resume_dir: Path | None,
    mode: str,
    threads: int,
    device_id: int,
    model_dirs: tuple[str, ...],
    datasets: tuple[str, ...],
    cache_dir: Path | None,
    reference_dir: Path | None,
    only: tuple[str, ...],
    cell_timeout_s: float,
    prometheus_file: Path | None,
    pushgateway_url: str | None,
    pushgateway_job: str,
    mlflow_uri: str | None,
    mlflow_experiment: str,
    junit_file: Path | None,
    step_summary: Path | None,
) -> None:
    """Run a suite and write DIR/results.json, DIR/summary.md.

    Exit codes: 0 fine, 1 a cell failed to run, 2 bad input, 3 performance or 4 parity regression."""
    from portbench.harness import api

    console = make_console(stderr=True)
    monitoring = MonitoringExports(
        prometheus_file, pushgateway_url, pushgateway_job, mlflow_uri, mlflow_experiment
    )
    if resume_dir is not None:
        if sets:
            raise PortbenchError("--set cannot change a resumed run: it finishes the suite it started with")
        if runtimes:
            raise PortbenchError("--runtimes cannot change a resumed run: it finishes the cells it began")
        plan = api.resume_run(resume_dir)
    else:
        suite = resolve_suite(suite_name, sets, workloads=workload_names())
        options = RunOptions(
            suite=suite.name,
            backends=tuple(dict.fromkeys(backends)),
            precisions=parse_precisions(precisions) if precisions else (),
            runtimes=parse_runtimes(runtimes) if runtimes else (),
            mode=cast(Mode, mode),
            cpu_threads=threads,
            device_id=device_id,
            cache_dir=ensure_directory(cache_dir or default_cache_dir(), "cache directory"),
            cell_timeout_s=cell_timeout_s,
            model_dirs=parse_model_dirs(model_dirs),
            only=only,
            reference_dir=reference_dir,
        )
        if datasets:
            workloads = api.selected_workloads(suite, options)
            options = dataclasses.replace(options, dataset_dirs=parse_datasets(datasets, workloads))
        plan = api.plan_run(suite, options, out_dir)
    options, run_dir = plan.options, plan.run_dir
    console.print(
        f"portbench {__version__}: suite [bold]{plan.suite.name}[/], backends {', '.join(options.backends)}, "
        f"runtimes {', '.join(options.runtimes)}, "
        f"precisions {', '.join(p.value for p in options.precisions)} → {run_dir}"
    )
    try:
        with progress_bar(console) as progress:
            pending = plan.pending
            task = progress.add_task("[cyan]nothing to do" if not pending else "", total=len(pending))
            outcome = api.execute(plan, ProgressObserver(progress, task))
    except KeyboardInterrupt:
        console.print(f"[bold red]interrupted[/]: finished cells are saved; resume with "
                      f"portbench run --resume {run_dir}")
        sys.exit(130)
    _write_reports(outcome.results, run_dir)
    monitoring.export(outcome.results, run_dir)
    from portbench.harness import ci_outputs

    if junit_file is not None:
        ci_outputs.write_output(junit_file, ci_outputs.run_junit(outcome.results))
    ci_outputs.publish_summary(ci_outputs.run_summary(outcome.results), step_summary)
    if outcome.input_errors:
        raise PortbenchError(outcome.input_errors[0])
    code = ci_outputs.run_exit_code(outcome.results)
    if code:
        sys.exit(code)


class ProgressObserver:
    """The run's progress bar: the cell now running, and each finished cell on its own line."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task

    def cell_started(self, cell: PlannedCell) -> None:
        plan = cell.plan
        again = f" (timing process {plan.repeat + 1} of {plan.processes})" if plan.repeat else ""
        self.progress.update(self.task, description=f"[cyan]{plan.cell_id}{again}")

    def cell_finished(self, result: CellResult) -> None:
        style = STATUS_STYLE.get(result.status, "")
        note = f" ({result.reason})" if result.reason else ""
        self.progress.console.print(labelled(f"{result.status:>7}", style, f" {result.cell_id}{note}"))
        self.progress.advance(self.task)


class MonitoringExports:
    """``--prometheus`` / ``--pushgateway`` / ``--mlflow``: checked before a run starts (a typo or a
    missing extra must not cost an hour of measuring), exported after its reports are written."""

    def __init__(
        self,
        prometheus_file: Path | None,
        pushgateway_url: str | None,
        job: str,
        mlflow_uri: str | None = None,
        mlflow_experiment: str = "portbench",
    ) -> None:
        self.prometheus_file, self.pushgateway_url, self.job = prometheus_file, pushgateway_url, job
        if prometheus_file is not None and prometheus_file.suffix != ".prom":
            raise PortbenchError(
                f"--prometheus {prometheus_file}: node_exporter's textfile collector reads only *.prom files"
            )
        # The report checks the URL and job name as it is made, so a typo fails before any cell runs.
        self.pushgateway = (
            reporting.create_report("pushgateway", url=pushgateway_url, job=job)
            if pushgateway_url is not None else None
        )
        self.mlflow_uri, self.mlflow_experiment = mlflow_uri, mlflow_experiment
        if mlflow_uri is not None:
            reporting.create_report("mlflow", uri=mlflow_uri, experiment=mlflow_experiment)

    @property
    def requested(self) -> bool:
        return any(x is not None for x in (self.prometheus_file, self.pushgateway_url, self.mlflow_uri))

    def export(self, results: RunResults, run_dir: Path) -> None:
        lines = []
        if self.prometheus_file is not None:
            path = reporting.render("prometheus", results, run_dir, make_console(), self.prometheus_file)
            lines.append(f"prometheus: {path}")
        if self.pushgateway is not None:
            self.pushgateway.render(results, None, make_console())
            lines.append(f"pushgateway: {self.pushgateway_url} (job {self.job})")
        if self.mlflow_uri is not None:
            # The report attaches each cell's outputs file, which lies in the run directory.
            exporter = reporting.create_report(
                "mlflow", uri=self.mlflow_uri, experiment=self.mlflow_experiment, run_dir=run_dir
            )
            exporter.render(results, None, make_console())
            lines.append(f"mlflow: {self.mlflow_uri} (experiment {self.mlflow_experiment})")
        if lines:
            make_console(stderr=True).print("\n".join(lines))


def _write_reports(results: RunResults, run_dir: Path) -> None:
    console = make_console()
    written = [reporting.render(name, results, run_dir, console) for name in reporting.RUN_REPORTS]
    lines = [f"results: {run_dir / 'results.json'}", *(f"summary: {path}" for path in written if path)]
    make_console(stderr=True).print("\n".join(lines))


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path), metavar="RUN_DIR...")
@click.option("--pytest-benchmark", "benchmark_storage", type=click.Path(path_type=Path), default=None,
              metavar="STORAGE", help="Also export the run for `pytest-benchmark compare --storage STORAGE`.")
@monitoring_options
@click.option("--baseline", "baseline_dir", type=click.Path(path_type=Path), default=None,
              help="The run every ratio is taken against (default: the first RUN_DIR); added if not listed.")
@click.option("--html", "html_file", type=click.Path(path_type=Path), default=None,
              help="Write the comparison as one self-contained HTML file.")
@click.option("--csv", "csv_file", type=click.Path(path_type=Path), default=None,
              help="Write one row per run x cell as CSV, and the raw samples as FILE-samples.csv.")
@click.option("--parquet", "parquet_file", type=click.Path(path_type=Path), default=None,
              help="The same two tables as Parquet (FILE and FILE-samples); needs pyarrow.")
@click.option("--machines", "machines_file", type=click.Path(path_type=Path), default=None,
              help="TOML file of machine prices and power: adds the procurement view.")
@click.option("--name", "names", multiple=True, metavar="RUN_DIR=LABEL",
              help="Label a run's column group instead of its platform fingerprint (repeatable).")
def report(
    run_dirs: tuple[Path, ...],
    benchmark_storage: Path | None,
    prometheus_file: Path | None,
    pushgateway_url: str | None,
    pushgateway_job: str,
    mlflow_uri: str | None,
    mlflow_experiment: str,
    baseline_dir: Path | None,
    html_file: Path | None,
    csv_file: Path | None,
    parquet_file: Path | None,
    machines_file: Path | None,
    names: tuple[str, ...],
) -> None:
    """Render a run's summary again (and its exports), or compare several runs side by side.

    One RUN_DIR and no comparison option: validate its results.json and rewrite summary.md.
    Several RUN_DIRs, or any of --baseline/--html/--csv/--parquet/--machines/--name: the comparison."""
    comparing = len(run_dirs) > 1 or any(
        option is not None for option in (baseline_dir, html_file, csv_file, parquet_file, machines_file)
    ) or bool(names)
    monitoring = MonitoringExports(
        prometheus_file, pushgateway_url, pushgateway_job, mlflow_uri, mlflow_experiment
    )
    if comparing:
        if benchmark_storage is not None:
            raise PortbenchError("--pytest-benchmark exports one run: give it a single RUN_DIR")
        if monitoring.requested:
            raise PortbenchError("--prometheus, --pushgateway and --mlflow export one run: give one RUN_DIR")
        _compare_report(run_dirs, baseline_dir, html_file, csv_file, parquet_file, machines_file, names)
        return
    run_dir = run_dirs[0]
    results = load_results(run_dir)
    if benchmark_storage is not None:
        ensure_directory(benchmark_storage, "pytest-benchmark storage")
    _write_reports(results, run_dir if run_dir.is_dir() else run_dir.parent)
    if benchmark_storage is not None:
        run_dir = run_dir if run_dir.is_dir() else run_dir.parent
        path = reporting.render("pytest-benchmark", results, run_dir, make_console(), benchmark_storage)
        make_console(stderr=True).print(f"pytest-benchmark: {path}")
    monitoring.export(results, run_dir if run_dir.is_dir() else run_dir.parent)


def parse_names(names: Sequence[str]) -> dict[Path, str]:
    """``RUN_DIR=LABEL`` pairs; the label may itself hold ``=`` (the first one splits)."""
    parsed: dict[Path, str] = {}
    for item in names:
        path, sep, label = item.partition("=")
        if not sep or not path.strip() or not label.strip():
            raise PortbenchError(f"--name wants RUN_DIR=LABEL, got {item!r}")
        if Path(path) in parsed:
            raise PortbenchError(f"--name gives {path} two labels")
        parsed[Path(path)] = label.strip()
    return parsed


def _compare_report(
    run_dirs: Sequence[Path],
    baseline_dir: Path | None,
    html_file: Path | None,
    csv_file: Path | None,
    parquet_file: Path | None,
    machines_file: Path | None,
    names: Sequence[str],
) -> None:
    from portbench.harness.machines import load_machines, match_machines

    dirs = [p if p.is_dir() or p.name != "results.json" else p.parent for p in run_dirs]
    if baseline_dir is not None and not any(_same_dir(baseline_dir, p) for p in dirs):
        dirs.insert(0, baseline_dir)
    seen: list[Path] = []
    for path in dirs:
        if any(_same_dir(path, other) for other in seen):
            raise PortbenchError(f"{path} is given twice")
        seen.append(path)
    outputs = [f for f in (html_file, csv_file, parquet_file) if f is not None]
    for output in outputs:
        if output.is_dir():
            raise PortbenchError(f"{output} is a directory: give a file name")
    # Checked before anything is written: a missing extra should not leave half the outputs behind.
    needed = {"--html": ("jinja2", "matplotlib"), "--parquet": ("pyarrow",)}
    for option, given in (("--html", html_file), ("--parquet", parquet_file)):
        missing = [m for m in needed[option] if given is not None and importlib.util.find_spec(m) is None]
        if missing:
            raise PortbenchError(f"{option} needs {', '.join(missing)}: pip install 'portbench[report]'")
    runs = reporting.load_labelled_runs(dirs, parse_names(names))
    baseline = runs[0].label
    if baseline_dir is not None:
        baseline = next(r.label for r in runs if _same_dir(r.path, baseline_dir))
    machines = {}
    if machines_file is not None:
        machines = match_machines(load_machines(machines_file), [(r.label, r.path) for r in runs],
                                  str(machines_file))  # fmt: skip
    comparison = reporting.Comparison(tuple(runs), baseline, machines)
    console = make_console()
    reporting.render_comparison("comparison-terminal", comparison, console)
    written: list[Path] = []
    for name, destination in (("html", html_file), ("csv", csv_file), ("parquet", parquet_file)):
        if destination is not None:
            written += reporting.render_comparison(name, comparison, console, destination)
    if written:
        make_console(stderr=True).print("\n".join(f"wrote {path}" for path in written))


def _same_dir(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


@cli.command("parity")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--reference", "reference_dir", type=click.Path(path_type=Path), default=None,
              help="Judge against this earlier run's FP32 CPU cells instead of the run's own.")
@click.option("--gates", "gates_file", type=click.Path(path_type=Path), default=None,
              help="TOML file of parity gates (keys of a suite's [gates] table); default: the run's suite.")
def parity_command(run_dir: Path, reference_dir: Path | None, gates_file: Path | None) -> None:
    """Judge a finished run's parity again from its stored outputs; exit 4 when a verdict fails.

    No model is loaded: only results.json and the outputs files. results.json and summary.md are
    rewritten with the new verdicts."""
    from portbench.harness.parity import (
        ParityGates,
        TaskCatalog,
        apply_parity,
        verdict_counts,
    )
    from portbench.harness.results import save_results

    results = load_results(run_dir)
    base = run_dir if run_dir.is_dir() else run_dir.parent
    catalog = TaskCatalog()
    gates = ParityGates.from_file(gates_file) if gates_file else suite_for(results).gates
    gates.check_names(w for name in {c.workload for c in results.cells} if (w := catalog.workload(name)))
    reference = load_reference(reference_dir, catalog) if reference_dir else None
    apply_parity(results, base, reference, gates, catalog)
    save_results(results, base)
    _write_reports(results, base)
    counts = verdict_counts(results.cells)
    make_console(stderr=True).print(
        f"parity: {counts['pass']} pass, {counts['fail']} fail, {counts['skipped']} skipped"
    )
    if counts["fail"]:
        from portbench.harness.ci_outputs import EXIT_ACCURACY

        sys.exit(EXIT_ACCURACY)


@cli.command()
@click.argument("baseline_dir", type=click.Path(path_type=Path))
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--max-slowdown", type=FiniteFloatRange(min=0), default=0.10, show_default=True,
              help="Largest tolerated p50 slowdown (a fraction), beyond the runs' own noise.")
@click.option("--max-metric-drop", type=FiniteFloatRange(min=0), default=0.005, show_default=True,
              help="Largest tolerated absolute drop of any accuracy metric.")
@click.option("--strict-manifest", is_flag=True,
              help="Treat cells measured with different settings (manifest) as regressions.")
@click.option("--alpha", type=FiniteFloatRange(min=0, max=0.5, min_open=True), default=0.01,
              show_default=True,
              help="Significance level of the one-sided Mann–Whitney U test on the raw latencies.")
@click.option("--normalise-host", is_flag=True,
              help="Divide each timing process's latencies by its host-speed probe first (shared or "
                   "virtual hosts whose speed drifts for minutes; raw.host_probe).")
@click.option("--junit", "junit_file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Also write JUnit XML: one test case per cell, regressions as failures.")
@step_summary_option
def compare(
    baseline_dir: Path,
    run_dir: Path,
    max_slowdown: float,
    max_metric_drop: float,
    strict_manifest: bool,
    alpha: float,
    normalise_host: bool,
    junit_file: Path | None,
    step_summary: Path | None,
) -> None:
    """Compare RUN_DIR with BASELINE_DIR (nightly CI gate).

    Exit codes: 0 no regression, 1 a cell failed or is missing, 2 bad input, 3 performance
    regression, 4 accuracy or parity regression."""
    from portbench.harness.compare import compare_runs

    baseline, current = load_results(baseline_dir), load_results(run_dir)
    comparison = compare_runs(
        baseline, current, max_slowdown, max_metric_drop, strict_manifest, alpha,
        normalise_host=normalise_host,
    )
    _gate(baseline, current, comparison, junit_file, step_summary)


def _gate(
    baseline: RunResults,
    current: RunResults,
    comparison: RunComparison,
    junit_file: Path | None,
    step_summary: Path | None,
) -> None:
    """Print a comparison, write its JUnit file and step summary, and exit with its code."""
    from portbench.harness import ci_outputs

    console = make_console()
    for cell in comparison.cells:
        for difference in cell.manifest_differences:
            console.print(labelled("manifest differs", "bold yellow", f" {cell.cell_id}: {difference}"))
        if cell.regressed:
            for problem in cell.problems:
                console.print(labelled("REGRESSION", "bold red", f" {cell.cell_id}: {problem}"))
    for cell_id in comparison.missing:
        missing = f" {cell_id}: in the baseline, missing from this run"
        console.print(labelled("REGRESSION", "bold red", missing))
    for cell in comparison.cells:
        if not cell.regressed and cell.speed is not None and cell.speed.verdict != "no change":
            style = "bold green" if cell.speed.verdict == "improved" else "yellow"
            console.print(labelled(cell.speed.verdict, style, f" {cell.cell_id}: {cell.speed.describe()}"))
    single = [c.cell_id for c in comparison.cells if c.speed is not None and c.speed.unit == "queries"]
    if single:
        # One process per run cannot see run-to-run noise: its queries agree more than runs do.
        console.print(
            f"note: {len(single)} cell(s) judged on queries of one worker process per run; run-to-run "
            "noise is not measured there (time both runs with --set suite.processes=5)"
        )
    quiet = len(comparison.cells) - len(comparison.regressions)
    console.print(f"{len(comparison.regressions) + len(comparison.missing)} regression(s); "
                  f"{quiet} cell(s) within limits; {len(comparison.new)} new")
    if junit_file is not None:
        ci_outputs.write_output(junit_file, ci_outputs.compare_junit(baseline, current, comparison))
    ci_outputs.publish_summary(ci_outputs.compare_summary(baseline, current, comparison), step_summary)
    code = ci_outputs.compare_exit_code(comparison)
    if code:
        sys.exit(code)


# Read by the interpreter or the dynamic loader when a process starts, before the worker applies
# its environment: setting them there would change nothing and the A/B would compare like with like.
STARTUP_ONLY_VARIABLES = frozenset({"PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LD_PRELOAD"})


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


def parse_environment(values: Sequence[str], option: str) -> dict[str, str]:
    """``KEY=VALUE`` pairs, as ``--baseline-env`` and ``--candidate-env`` take them."""
    parsed: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key or not (key.replace("_", "a").isalnum() and not key[0].isdigit()):
            raise PortbenchError(f"{option} {value!r}: expected NAME=VALUE, NAME a variable name")
        if key in STARTUP_ONLY_VARIABLES:
            raise PortbenchError(
                f"{option} {key}: read only when a process starts, so a worker cannot take it; "
                "compare two installations with two runs and `portbench compare`"
            )
        parsed[key] = text
    return parsed


@cli.command("ab")
@click.option("--suite", "suite_name", default="smoke", show_default=True,
              help="Built-in suite name or path to a suite TOML file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a suite setting.")
@click.option("--backend", "backends", multiple=True, help="Backend(s) to run; default: every available one.")
@click.option("--only", "only", multiple=True, metavar="TEXT", help="Only cells whose id contains TEXT.")
@click.option("--mode", type=click.Choice(["both", "performance"]), default="performance", show_default=True,
              help="performance: timing only; both: also accuracy and parity on each side.")
@click.option("--threads", type=click.IntRange(min=0), default=0,
              help="CPU math threads per predictor (0 = the backend's default).")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None,
              help="Where built models and datasets are kept (default ~/.cache/portbench).")
@click.option("--timeout", "cell_timeout_s", type=FiniteFloatRange(min=0, min_open=True),
              default=DEFAULT_CELL_TIMEOUT_S, show_default=True, help="Seconds one worker process may take.")
@click.option("--baseline-env", "baseline_env", multiple=True, metavar="NAME=VALUE",
              help="Environment of the baseline side's worker processes (repeatable).")
@click.option("--candidate-env", "candidate_env", multiple=True, metavar="NAME=VALUE",
              help="Environment of the candidate side's worker processes (repeatable).")
@click.option("--pairs", type=click.IntRange(min=1), default=5, show_default=True,
              help="Lockstep pairs of timing processes per cell.")
@click.option("--trials", "pair_trials", type=click.IntRange(min=2), default=20, show_default=True,
              help="Trials of each lockstep process (the suite's own trials time each side's run).")
@click.option("--trial-seconds", "trial_s", type=FiniteFloatRange(min=0, max=60, min_open=True), default=0.2,
              show_default=True, help="Least duration of one lockstep trial (at least one query).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="New directory: the two runs go to OUT/baseline and OUT/candidate.")
@click.option("--max-slowdown", type=FiniteFloatRange(min=0), default=0.10, show_default=True,
              help="Largest tolerated slowdown (a fraction), as in compare.")
@click.option("--max-metric-drop", type=FiniteFloatRange(min=0), default=0.005, show_default=True,
              help="Largest tolerated absolute drop of any accuracy metric.")
@click.option("--alpha", type=FiniteFloatRange(min=0, max=0.5, min_open=True), default=0.01,
              show_default=True, help="Significance level of the one-sided test on the lockstep pairs.")
@click.option("--junit", "junit_file", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Also write JUnit XML: one test case per cell, regressions as failures.")
@step_summary_option
def ab(
    suite_name: str,
    sets: tuple[str, ...],
    backends: tuple[str, ...],
    only: tuple[str, ...],
    mode: str,
    threads: int,
    cache_dir: Path | None,
    cell_timeout_s: float,
    baseline_env: tuple[str, ...],
    candidate_env: tuple[str, ...],
    pairs: int,
    pair_trials: int,
    trial_s: float,
    out_dir: Path,
    max_slowdown: float,
    max_metric_drop: float,
    alpha: float,
    junit_file: Path | None,
    step_summary: Path | None,
) -> None:
    """Time a baseline and a candidate side by side, trial for trial, and gate the candidate.

    The two sides are the same suite in worker processes that differ only in the environment given
    (--baseline-env, --candidate-env: Paddle FLAGS_*, oneDNN or OpenMP settings, a plugin's switches:
    whatever is read after a worker starts). Each single-stream cell is timed in --pairs pairs of
    processes that take turns, so both meet the same host; then the candidate is compared with the
    baseline as `portbench compare` does, on the pairs.

    Exit codes: as compare (0, 1 a cell failed, 2 bad input, 3 performance, 4 accuracy)."""
    from portbench.harness import api
    from portbench.harness.compare import compare_runs
    from portbench.harness.lockstep import PairTiming

    environments = (
        parse_environment(baseline_env, "--baseline-env"), parse_environment(candidate_env, "--candidate-env")
    )
    dirs = (out_dir / "baseline", out_dir / "candidate")
    for run_dir in dirs:
        if (run_dir / "results.json").exists():
            raise PortbenchError(f"{run_dir} already holds a run: give a new --out directory")
    suite = resolve_suite(suite_name, sets, workloads=workload_names())
    options = RunOptions(
        suite=suite.name,
        backends=tuple(dict.fromkeys(backends)),
        mode=cast(Mode, mode),
        cpu_threads=threads,
        cache_dir=ensure_directory(cache_dir or default_cache_dir(), "cache directory"),
        cell_timeout_s=cell_timeout_s,
        only=only,
    )
    plans = [api.plan_run(suite, options, run_dir) for run_dir in dirs]
    console = make_console(stderr=True)
    console.print(
        f"portbench {__version__}: A/B of suite [bold]{suite.name}[/], {pairs} lockstep pair(s) per cell "
        f"→ {dirs[0]}, {dirs[1]}"
    )
    try:
        with progress_bar(console) as progress:
            task = progress.add_task("", total=None)
            observer = ProgressObserver(progress, task)
            outcome = api.execute_ab(
                plans[0], plans[1], environments, pairs, observer, timing=PairTiming(pair_trials, trial_s)
            )
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: finished cells and pairs are saved in both runs")
        sys.exit(130)
    for side in (outcome.baseline, outcome.candidate):
        _write_reports(side.results, side.run_dir)
        if side.input_errors:
            raise PortbenchError(side.input_errors[0])
    comparison = compare_runs(
        outcome.baseline.results, outcome.candidate.results, max_slowdown, max_metric_drop, alpha=alpha
    )
    _gate(outcome.baseline.results, outcome.candidate.results, comparison, junit_file, step_summary)


@cli.command("backends")
def list_backends() -> None:
    """Every backend, whether it can run here, and why not."""
    table = Table(title="portbench backends")
    for column in ("backend", "available", "device / reason", "precisions"):
        table.add_column(column)
    for name in backend_names():
        try:
            backend = create_backend(name)
            status = backend.probe()
        except Exception as exc:  # a third-party plugin failing to import must not hide the others
            table.add_row(name, "[red]error[/]", f"{type(exc).__name__}: {exc}", "")
            continue
        if status.available:
            info = backend.device_info()
            precisions = ", ".join(p.value for p, s in backend.precisions().items() if s.supported)
            table.add_row(name, "[green]yes[/]", f"{info.name} ({status.reason})", precisions)
        else:
            table.add_row(name, "[yellow]no[/]", status.reason, "")
    console = make_console()
    console.print(table)
    console.print(_runtimes_table())


def _runtimes_table() -> Table:
    """Every runtime × every backend it can drive: usable here (runtime installed and backend
    available), through what, and the precisions it runs there. Nothing is imported but the classes."""
    from portbench.backends.runtimes.registry import create_runtime, runtime_names

    table = Table(title="portbench runtimes × backends")
    for column in ("runtime", "backend", "available", "via / reason", "precisions"):
        table.add_column(column)
    probes: dict[str, Any] = {}
    for name in runtime_names():
        try:
            runtime = create_runtime(name)
            installed = runtime.probe()
        except Exception as exc:  # a third-party runtime failing to import must not hide the others
            table.add_row(name, "", "[red]error[/]", f"{type(exc).__name__}: {exc}", "")
            continue
        for backend_name, target in runtime.targets().items():
            if backend_name not in probes:
                try:
                    backend = create_backend(backend_name)
                    probes[backend_name] = (backend, backend.probe())
                except Exception:
                    probes[backend_name] = (None, None)
            backend, status = probes[backend_name]
            if not installed.available:
                table.add_row(name, backend_name, "[yellow]no[/]", installed.reason, "")
            elif backend is None or status is None or not status.available:
                reason = status.reason if status is not None else "backend failed to load"
                table.add_row(name, backend_name, "[yellow]no[/]", f"{target.how}; backend: {reason}", "")
            else:
                precisions = ", ".join(p.value for p, s in runtime.precisions(backend).items() if s.supported)
                table.add_row(name, backend_name, "[green]yes[/]", f"{target.how} ({installed.reason})",
                              precisions)
    return table


@cli.command("suites")
@click.argument("suite_file", required=False, metavar="[NAME|FILE]")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting, as in run.")
def list_suites(suite_file: str | None, sets: tuple[str, ...]) -> None:
    """The built-in suites and their cells; with NAME or FILE, check that suite and show it resolved."""
    if suite_file is None:
        table = Table(title="portbench suites")
        for column in ("suite", "description", "cells"):
            table.add_column(column)
        for name in builtin_suite_names():
            suite = get_suite(name, sets, workloads=workload_names())
            label = name + (" (default)" if name == DEFAULT_SUITE else "")
            table.add_row(label, suite.description, _cell_lines(suite))
        make_console().print(table)
        return
    suite = resolve_suite(suite_file, sets, workloads=workload_names())
    # Plain lines, not a table: whole cell ids, whatever the terminal width, for grep and diff.
    measure = ", ".join(f"{k}={v}" for k, v in suite.to_dict()["measure"].items() if v is not None)
    click.echo(f"{suite.name}: {suite.description}")
    click.echo(f"precisions {', '.join(suite.precisions)}; {suite.trials} trial(s) per cell; "
               f"{len(suite.cells)} cell(s) per backend and precision")
    click.echo(f"measure: {measure}")
    for cell in suite.cells:
        params = " ".join(f"{k}={v}" for k, v in cell.to_dict()["params"].items())
        cell_id = cell.cell_id("BACKEND", "PRECISION", runtime="RUNTIME")
        click.echo(f"  {cell_id} on {cell.dataset}  {params}".rstrip())


def _cell_lines(suite: Suite) -> str:
    return "\n".join(
        f"{c.workload}/{c.task}/{c.model}{'@' + c.label if c.label else ''} on {c.dataset}"
        for c in suite.cells
    )


@cli.group("models", invoke_without_command=True)
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check sha256 of every file.")
@click.pass_context
def models(ctx: click.Context, verify: bool) -> None:
    """Registered models (with hash verification), and building the ones portbench makes itself."""
    if ctx.invoked_subcommand is not None:
        return
    from portbench.harness.models import resolve
    from portbench.harness.workload import registered_models

    table = Table(title="portbench models")
    for column in ("model", "task", "source", "status"):
        table.add_column(column)
    bad = 0
    for entry, _ in registered_models().values():
        if entry.package is None:
            status = "[dim]built on first use[/]"
        elif verify:
            try:
                files, _ = resolve(entry)
                status = f"[green]verified[/] {files.directory}"
            except PortbenchError as exc:
                status, bad = f"[red]{exc}[/]", bad + 1
        else:
            status = "not checked"
        table.add_row(entry.name, f"{entry.workload}/{entry.task}", entry.source, status)
    make_console().print(table)
    if bad:
        raise PortbenchError(f"{bad} model(s) failed verification")


@cli.command("quantize")
@click.argument("model")
@click.option("--model-dir", type=click.Path(path_type=Path), default=None,
              help="Quantize your own export of this model instead of the registered files.")
@click.option("--algo", type=click.Choice(["avg", "hist", "KL", "mse"]), default="avg", show_default=True)
@click.option("--samples", "calibration_samples", type=click.IntRange(min=1), default=32, show_default=True,
              help="Calibration samples (from the calibration split only).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--op-types", default=",".join(DEFAULT_OP_TYPES), show_default=True,
              help="Comma-separated op types to quantize.")
@click.option("--skip-ops", default="", help="Comma-separated op names (see --list-ops) to keep in FP32.")
@click.option("--list-ops", is_flag=True, help="List the quantizable ops and exit.")
# Checked here as well as in the search itself, so a bad gate fails before the FP32 reference is scored.
@click.option("--search", "search_gate", type=FiniteFloatRange(min=0, max=1, min_open=True), default=None,
              metavar="GATE",
              help="Keep the most sensitive ops in FP32 until INT8 reaches GATE × FP32 (e.g. 0.99).")
@click.option("--max-skipped", type=click.IntRange(min=0), default=8, show_default=True,
              help="Most ops the search may keep in FP32.")
@click.option("--dataset", default="synth-smoke", show_default=True,
              help="Generated set: its calib split calibrates and scores the search, never its eval split.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
def quantize_cmd(
    model: str, model_dir: Path | None, algo: str, calibration_samples: int, batch_size: int,
    op_types: str, skip_ops: str, list_ops: bool, search_gate: float | None, max_skipped: int,
    dataset: str, cache_dir: Path | None,
) -> None:
    """Post-training INT8 quantization of MODEL (e.g. ppocrv4-mobile-rec), cached with provenance."""
    from portbench.harness import quantize_command as qc
    from portbench.harness.quantize import QuantizeSettings

    console = make_console()
    cache = ensure_directory(cache_dir or default_cache_dir(), "cache directory")
    settings = QuantizeSettings(
        algo=algo, calibration_samples=calibration_samples, batch_size=batch_size,
        op_types=tuple(t.strip() for t in op_types.split(",") if t.strip()),
        skip_ops=tuple(t.strip() for t in skip_ops.split(",") if t.strip()),
    )
    target = qc.find_target(model, model_dir, dataset, cache)
    if list_ops:
        table = Table(title=f"quantizable ops of {model}")
        table.add_column("op (first output)")
        table.add_column("type")
        for name, op_type in qc.list_ops(target, settings):
            table.add_row(name, op_type)
        console.print(table)
        return
    if search_gate is not None:
        reference, found = qc.search(target, settings, cache, search_gate, max_skipped, console.print)
        status = "[green]passed[/]" if found.passed else "[red]did not pass[/]"
        console.print(f"search {status}: metric {found.metric:.4f} vs FP32 {reference:.4f} "
                      f"(gate {search_gate:g}); kept in FP32: {', '.join(found.kept_fp32) or 'none'}")
        console.print(f"INT8 model: {found.model.files.directory}")
        if not found.passed:
            sys.exit(1)
        return
    built = qc.quantize(target, settings, cache, console.print)
    origin = "cache" if built.from_cache else "built"
    console.print(f"INT8 model ({origin}): {built.files.directory}")
    console.print(f"provenance: {built.files.directory / 'quantization.json'}")


@models.command("build")
@click.argument("name")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
def build_model(name: str, cache_dir: Path | None) -> None:
    """Train or export a model portbench builds itself (e.g. the ERNIE sentiment reference)."""
    from portbench.harness.workload import buildable_models

    buildable = buildable_models()
    if name not in buildable:
        raise UnknownNameError("buildable model", name, list(buildable))
    cache = ensure_directory(cache_dir or default_cache_dir(), "cache directory")
    buildable[name].build_model(name, cache, make_console().print)


class EvidenceGroup(click.Group):
    """``portbench evidence RUN_DIR ...`` writes a bundle, ``portbench evidence verify FILE.zip`` checks
    one: any first argument that is not a subcommand is the run directory of ``evidence create``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["create", *args]
        return super().parse_args(ctx, args)


@cli.group("evidence", cls=EvidenceGroup)
def evidence() -> None:
    """Compliance evidence bundle: `evidence RUN_DIR --out FILE.zip`, `evidence verify FILE.zip`.

    Exit codes: 0 PASS (适配通过) / bundle verifies; 1 FAIL (未通过, the bundle is still written) /
    bundle altered, incomplete or its verdicts do not follow from its results; 2 bad input."""


@evidence.command("create")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--reference", "reference_dir", type=click.Path(path_type=Path), default=None,
              help="The FP32 reference run the parity verdicts were judged against; bundled too.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), required=True, help="The .zip to write.")
@click.option("--sign", "signing_key", type=click.Path(path_type=Path), default=None, metavar="KEY.pem",
              help="Ed25519 private key (PEM or OpenSSH): adds a detached signature over SHA256SUMS.")
def evidence_create(
    run_dir: Path, reference_dir: Path | None, out_file: Path, signing_key: Path | None
) -> None:
    """Bundle RUN_DIR's results, outputs and logs with a bilingual report and evidence.json."""
    results = load_results(run_dir)
    reference = load_results(reference_dir) if reference_dir is not None else None
    base = run_dir if run_dir.is_dir() else run_dir.parent
    bundler = reporting.create_evidence_bundler()
    if not bundler.write(base, results, reference, out_file, signing_key, make_console()):
        sys.exit(1)


@evidence.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--public-key", type=click.Path(path_type=Path), default=None, metavar="KEY.pub",
              help="Ed25519 public key (PEM or OpenSSH): the signature must be present and valid.")
def evidence_verify(bundle: Path, public_key: Path | None) -> None:
    """Re-check every hash, the signature and the verdicts of an evidence bundle."""
    if not reporting.create_evidence_bundler().verify(bundle, public_key, make_console()):
        sys.exit(1)


cli.add_command(container)
cli.add_command(fleet)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: user errors become one line and exit code 2."""
    # Paddle's import looks for a C++ compiler cache that inference never uses.
    warnings.filterwarnings("ignore", message="No ccache found")
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="portbench", standalone_mode=False)
    except PortbenchError as exc:
        click.echo(f"portbench: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("portbench: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"portbench: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
