"""The ``portbench`` command line.

Every user-facing failure is a PortbenchError: one line on stderr, exit code 2, no traceback.
A run whose cells failed at measurement time exits 1; anything measured is already on disk.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from portbench import __version__
from portbench.backends.base import Precision
from portbench.backends.registry import backend_names, create_backend
from portbench.errors import PortbenchError, UnknownNameError
from portbench.harness import platform_info
from portbench.harness.config import DEFAULT_CELL_TIMEOUT_S, Mode, RunOptions, default_cache_dir
from portbench.harness.container import container
from portbench.harness.fleet import fleet
from portbench.harness.quantize import DEFAULT_OP_TYPES
from portbench.harness.results import RunResults, load_results, write_atomic
from portbench.harness.runner import (
    Runner,
    new_results,
    plan_cells,
    resume_results,
    select_backends,
    suite_for,
)
from portbench.suites.definitions import DEFAULT_SUITE, SUITES, get_suite

DEFAULT_OUT = Path("portbench-results")
STATUS_STYLE = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


def parse_precisions(text: str) -> tuple[Precision, ...]:
    parsed = tuple(Precision.parse(p) for p in text.split(",") if p.strip())
    if not parsed:
        raise PortbenchError("--precisions needs at least one of fp32, fp16, bf16, int8")
    return tuple(dict.fromkeys(parsed))


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
    from portbench.suites.registry import WORKLOADS

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
        if workload not in WORKLOADS:
            raise UnknownNameError("workload", workload, list(WORKLOADS))
        parsed[workload] = Path(path).expanduser()
        if not parsed[workload].exists():
            raise PortbenchError(f"dataset {path} does not exist")
    return parsed


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="portbench")
def cli() -> None:
    """Identical Paddle Inference workloads on every platform: accuracy parity, latency, throughput."""


@cli.command()
@click.option("--suite", "suite_name", default=DEFAULT_SUITE, show_default=True, help="Suite to run.")
@click.option("--backend", "backends", multiple=True, help="Backend(s) to run; default: every available one.")
@click.option(
    "--precisions", default=None, help="Comma-separated: fp32,fp16,bf16,int8 (default: the suite's)."
)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory (default: ./portbench-results/<run-id>).")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path), default=None,
              help="Finish the missing cells of an interrupted run directory.")
@click.option("--mode", type=click.Choice(["both", "accuracy", "performance"]), default="both",
              show_default=True, help="Accuracy pass, timed pass, or both.")
@click.option("--threads", type=int, default=0, help="CPU math threads (0: physical cores).")
@click.option("--device-id", type=int, default=0, show_default=True, help="Accelerator index.")
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
@click.option("--timeout", "cell_timeout_s", type=float, default=DEFAULT_CELL_TIMEOUT_S, show_default=True,
              help="Seconds before a cell's worker is killed.")
def run(
    suite_name: str,
    backends: tuple[str, ...],
    precisions: str | None,
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
) -> None:
    """Run a suite and write DIR/results.json, DIR/summary.md."""
    console = Console(stderr=True)
    if resume_dir is not None:
        results, options = resume_results(resume_dir)
        run_dir = resume_dir
    else:
        suite = get_suite(suite_name)
        for name in backends:
            if name not in backend_names():
                raise UnknownNameError("backend", name, backend_names())
        if reference_dir is not None:
            load_results(reference_dir)  # fail now, not after an hour of measuring
        parsed_model_dirs = parse_model_dirs(model_dirs)
        for role, path in parsed_model_dirs.items():
            if not path.is_dir():
                raise PortbenchError(f"model directory for {role!r} does not exist: {path}")
        options = RunOptions(
            suite=suite.name,
            backends=tuple(dict.fromkeys(backends)) or tuple(backend_names()),
            precisions=parse_precisions(precisions) if precisions else tuple(
                Precision(p) for p in suite.precisions
            ),
            mode=cast(Mode, mode),
            cpu_threads=threads,
            device_id=device_id,
            cache_dir=cache_dir or default_cache_dir(),
            cell_timeout_s=cell_timeout_s,
            model_dirs=parsed_model_dirs,
            only=only,
            reference_dir=reference_dir,
        )
        selected = select_backends(options, explicit=bool(backends))
        if not selected:
            raise PortbenchError("no backend is available on this machine (see: portbench backends)")
        options = dataclasses.replace(options, backends=selected)
        if datasets:
            workloads = sorted({p.plan.spec.workload for p in plan_cells(suite, options, Path("."))})
            options = dataclasses.replace(options, dataset_dirs=parse_datasets(datasets, workloads))
        results = new_results(options, platform_info.describe_platform())
        run_dir = out_dir if out_dir is not None else DEFAULT_OUT / results.run_id
    suite = suite_for(options)
    runner = Runner(results, run_dir, options)
    planned = plan_cells(suite, options, run_dir)
    if not planned:
        raise PortbenchError(f"--only {' '.join(options.only)} matches no cell of suite {suite.name}")
    pending = runner.pending(planned)
    console.print(
        f"portbench {__version__}: suite [bold]{suite.name}[/], backends {', '.join(options.backends)}, "
        f"precisions {', '.join(p.value for p in options.precisions)} → {run_dir}"
    )
    try:
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        ) as progress:
            first = pending[0].plan.cell_id if pending else "nothing to do"
            task = progress.add_task(f"[cyan]{first}", total=len(pending))
            for result in runner.run(pending):
                style = STATUS_STYLE.get(result.status, "")
                note = f" ({result.reason})" if result.reason else ""
                progress.console.print(f"[{style}]{result.status:>7}[/] {result.cell_id}{note}")
                progress.advance(task)
                upcoming = [c for c in pending if runner.results.cell(c.plan.cell_id) is None]
                if upcoming:
                    progress.update(task, description=f"[cyan]{upcoming[0].plan.cell_id}")
    except KeyboardInterrupt:
        console.print(f"[bold red]interrupted[/]: finished cells are saved; resume with "
                      f"portbench run --resume {run_dir}")
        sys.exit(130)
    _write_reports(runner.results, run_dir)
    if runner.input_errors:
        raise PortbenchError(runner.input_errors[0])
    if any(c.status == "failed" for c in runner.results.cells):
        sys.exit(1)


def _write_reports(results: RunResults, run_dir: Path) -> None:
    from portbench.reports.markdown import render_markdown
    from portbench.reports.terminal import print_summary

    write_atomic(run_dir / "summary.md", render_markdown(results))
    print_summary(results, Console())
    Console(stderr=True).print(f"results: {run_dir / 'results.json'}\nsummary: {run_dir / 'summary.md'}")


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--pytest-benchmark", "benchmark_storage", type=click.Path(path_type=Path), default=None,
              metavar="STORAGE", help="Also export the run for `pytest-benchmark compare --storage STORAGE`.")
def report(run_dir: Path, benchmark_storage: Path | None) -> None:
    """Validate a run's results.json and render its summary again."""
    results = load_results(run_dir)
    _write_reports(results, run_dir if run_dir.is_dir() else run_dir.parent)
    if benchmark_storage is not None:
        from portbench.reports.pytest_benchmark import save_pytest_benchmark

        path = save_pytest_benchmark(results, benchmark_storage)
        Console(stderr=True).print(f"pytest-benchmark: {path}")


@cli.command()
@click.argument("baseline_dir", type=click.Path(path_type=Path))
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--max-slowdown", type=float, default=0.10, show_default=True,
              help="Largest tolerated p50 slowdown (a fraction), beyond the runs' own noise.")
@click.option("--max-metric-drop", type=float, default=0.005, show_default=True,
              help="Largest tolerated absolute drop of any accuracy metric.")
@click.option("--strict-manifest", is_flag=True,
              help="Treat cells measured with different settings (manifest) as regressions.")
def compare(
    baseline_dir: Path, run_dir: Path, max_slowdown: float, max_metric_drop: float, strict_manifest: bool
) -> None:
    """Compare RUN_DIR with BASELINE_DIR; exit 1 on any regression (nightly CI gate)."""
    from portbench.reports.compare import compare_runs

    comparison = compare_runs(
        load_results(baseline_dir), load_results(run_dir), max_slowdown, max_metric_drop, strict_manifest
    )
    console = Console()
    for cell in comparison.cells:
        for difference in cell.manifest_differences:
            console.print(f"[bold yellow]manifest differs[/] {cell.cell_id}: {difference}", markup=True)
        if cell.regressed:
            for problem in cell.problems:
                console.print(f"[bold red]REGRESSION[/] {cell.cell_id}: {problem}")
    for cell_id in comparison.missing:
        console.print(f"[bold red]REGRESSION[/] {cell_id}: in the baseline, missing from this run")
    quiet = len(comparison.cells) - len(comparison.regressions)
    console.print(f"{len(comparison.regressions) + len(comparison.missing)} regression(s); "
                  f"{quiet} cell(s) within limits; {len(comparison.new)} new")
    if comparison.failed:
        sys.exit(1)


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
    Console().print(table)


@cli.command("suites")
def list_suites() -> None:
    """The suites and their cells."""
    table = Table(title="portbench suites")
    for column in ("suite", "description", "cells"):
        table.add_column(column)
    for suite in SUITES.values():
        cells = "\n".join(
            f"{c.workload}/{c.task}/{c.model}{'@' + c.label if c.label else ''} on {c.dataset}"
            for c in suite.cells
        )
        name = suite.name + (" (default)" if suite.name == DEFAULT_SUITE else "")
        table.add_row(name, suite.description, cells)
    Console().print(table)


@cli.group("models", invoke_without_command=True)
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check sha256 of every file.")
@click.pass_context
def models(ctx: click.Context, verify: bool) -> None:
    """Registered models (with hash verification), and building the ones portbench makes itself."""
    if ctx.invoked_subcommand is not None:
        return
    from portbench.harness.models import resolve
    from portbench.suites.catalog import registered_models

    table = Table(title="portbench models")
    for column in ("model", "task", "source", "status"):
        table.add_column(column)
    bad = 0
    for entry in registered_models():
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
    Console().print(table)
    if bad:
        raise PortbenchError(f"{bad} model(s) failed verification")


@cli.command("quantize")
@click.argument("model")
@click.option("--model-dir", type=click.Path(path_type=Path), default=None,
              help="Quantize your own export of this model instead of the registered files.")
@click.option("--algo", type=click.Choice(["avg", "hist", "KL", "mse"]), default="avg", show_default=True)
@click.option("--samples", "calibration_samples", type=int, default=32, show_default=True,
              help="Calibration samples (from the calibration split only).")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--op-types", default=",".join(DEFAULT_OP_TYPES), show_default=True,
              help="Comma-separated op types to quantize.")
@click.option("--skip-ops", default="", help="Comma-separated op names (see --list-ops) to keep in FP32.")
@click.option("--list-ops", is_flag=True, help="List the quantizable ops and exit.")
@click.option("--search", "search_gate", type=float, default=None, metavar="GATE",
              help="Keep the most sensitive ops in FP32 until INT8 reaches GATE × FP32 (e.g. 0.99).")
@click.option("--max-skipped", type=int, default=8, show_default=True,
              help="Most ops the search may keep in FP32.")
@click.option("--dataset", default="synth-smoke", show_default=True,
              help="Generated set: its calibration split calibrates, its eval split scores the search.")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
def quantize_cmd(
    model: str, model_dir: Path | None, algo: str, calibration_samples: int, batch_size: int,
    op_types: str, skip_ops: str, list_ops: bool, search_gate: float | None, max_skipped: int,
    dataset: str, cache_dir: Path | None,
) -> None:
    """Post-training INT8 quantization of MODEL (e.g. ppocrv4-mobile-rec), cached with provenance."""
    from portbench.harness import quantize_command as qc
    from portbench.harness.quantize import QuantizeSettings

    console = Console()
    cache = cache_dir or default_cache_dir()
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


BUILDABLE_MODELS = ("ernie-sentiment", "ernie-sentiment-smoke")


@models.command("build")
@click.argument("name", type=click.Choice(BUILDABLE_MODELS))
@click.option("--cache-dir", type=click.Path(path_type=Path), default=None)
def build_model(name: str, cache_dir: Path | None) -> None:
    """Train and export a model portbench builds itself (the ERNIE sentiment reference)."""
    from portbench.suites.ernie.reference import RECIPES, build_with_report

    recipe = RECIPES["smoke" if name.endswith("-smoke") else "default"]
    build_with_report((cache_dir or default_cache_dir()) / "models", recipe, Console().print)


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
