"""Experiment tracking: each cell of a run as one MLflow run (``--mlflow URI``), optional extra.

Layout in the tracking store: an experiment (default ``portbench``), one parent run per portbench run
(named by the run id, tagged with the platform and suite), and one child run per cell (parent tag
``mlflow.parentRunId``, so the MLflow UI nests them). A child run holds

- params: the cell's identity (workload, task, model, backend, precision, scenario, dataset, device,
  status) and its parameters (batch size, sequence length ...); MLflow params are immutable, which is
  why every cell is a run of its own rather than a step of one run;
- metrics, in base units as the Prometheus export: ``latency_p50_seconds`` ... ``latency_p999_seconds``
  (a withheld percentile is not logged), ``latency_mean_seconds``, ``throughput_samples_per_second``,
  ``throughput_queries_per_second``, ``trials_cv_ratio``, ``parity_pass`` (1/0), ``speedup_vs_fp32``,
  the task's accuracy metrics as ``task.<name>``, offline sweeps as ``offline_samples_per_second``
  with the batch size as the step;
- artifacts: the cell's outputs file (boxes, texts, logits) under ``outputs/``, and its manifest
  (every performance-relevant setting) as ``manifest.json``.

MLflow is imported only when this report is used; without the ``portbench[mlflow]`` extra the export
is a one-line error. A bare directory is refused as a URI: MLflow 3.7+ defaults to SQLite and recent
releases refuse the plain file store; ``sqlite:///PATH/mlflow.db`` is the offline choice, and a new
experiment then keeps its artifacts in ``mlartifacts/`` beside the database.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from portbench.errors import PortbenchError
from portbench.harness.reporting import Report
from portbench.harness.results import CellResult, RunResults
from portbench.reports.prometheus import QUANTILES, platform_name

DEFAULT_EXPERIMENT = "portbench"
# MLflow's per-request limits for log_batch (mlflow/utils/validation.py).
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_LENGTH = 6000
MISSING_EXTRA = "--mlflow needs MLflow: pip install 'portbench[mlflow]'"

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _epoch_ms(timestamp: str | None) -> int | None:
    if not timestamp:
        return None
    try:
        return int(datetime.fromisoformat(timestamp).timestamp() * 1000)
    except ValueError:
        return None


def check_tracking_uri(uri: str) -> str:
    uri = uri.strip()
    scheme = urllib.parse.urlsplit(uri).scheme
    if not uri or not scheme or len(scheme) == 1:  # "C:" of a Windows path is no scheme either
        raise PortbenchError(
            f"--mlflow {uri!r}: give a tracking URI such as sqlite:///mlflow.db or http://HOST:5000 "
            "(recent MLflow refuses a bare ./mlruns file store)"
        )
    return uri


def cell_params(results: RunResults, cell: CellResult, platform: str) -> dict[str, str]:
    params: dict[str, Any] = {
        "workload": cell.workload, "task": cell.task, "model": cell.model, "backend": cell.backend,
        "precision": cell.precision, "scenario": cell.scenario, "dataset": cell.dataset,
        "device": cell.device, "status": cell.status, "platform": platform, "suite": results.suite,
        "run_id": results.run_id, "cell": cell.cell_id,
    }
    params.update({f"param.{key}": value for key, value in cell.params.items()})
    # Params are strings in MLflow; a value past its length limit is cut rather than refused.
    return {key: str(value)[:MAX_PARAM_LENGTH] for key, value in params.items() if value is not None}


def cell_metrics(cell: CellResult) -> list[tuple[str, float, int]]:
    """(key, value, step) of one cell, in base units; nothing for what was not measured."""
    metrics: list[tuple[str, float | None, int]] = []
    if cell.latency_ms is not None:
        for _quantile, key in QUANTILES:
            value = getattr(cell.latency_ms, key)
            metrics.append((f"latency_{key}_seconds", None if value is None else value / 1e3, 0))
        metrics.append(("latency_mean_seconds", cell.latency_ms.mean / 1e3, 0))
        metrics.append(("latency_samples", float(cell.latency_ms.n), 0))
    if cell.throughput is not None:
        metrics.append(("throughput_samples_per_second", cell.throughput.samples_per_s, 0))
        metrics.append(("throughput_queries_per_second", cell.throughput.queries_per_s, 0))
    if cell.trials is not None:
        metrics.append(("trials_cv_ratio", cell.trials.cv, 0))
    if cell.parity is not None:
        if cell.parity.verdict in ("pass", "fail"):
            metrics.append(("parity_pass", 1.0 if cell.parity.verdict == "pass" else 0.0, 0))
        metrics.append(("speedup_vs_fp32", cell.parity.speedup_vs_fp32, 0))
    metrics.extend((f"task.{name}", value, 0) for name, value in cell.metrics.items())
    for point in cell.raw.get("offline") or []:
        throughput = (point.get("throughput") or {}).get("samples_per_s")
        metrics.append(("offline_samples_per_second", throughput, int(point.get("batch_size", 0))))
    if cell.duration_s is not None:
        metrics.append(("duration_seconds", cell.duration_s, 0))
    return [(k, float(v), step) for k, v, step in metrics if v is not None and math.isfinite(float(v))]


class MlflowExport(Report):
    """Each cell of a run as an MLflow run under one parent run; see the module docstring."""

    name = "mlflow"
    description = "MLflow tracking: one run per cell, outputs as artifacts"

    def __init__(self, uri: str | None = None, experiment: str = DEFAULT_EXPERIMENT,
                 run_dir: Path | None = None, platform: str | None = None) -> None:
        self.uri = None if uri is None else check_tracking_uri(uri)
        if not experiment.strip():
            raise PortbenchError("--mlflow-experiment must not be empty")
        self.experiment, self.run_dir, self.platform = experiment, run_dir, platform
        # Checked as the report is made, so a run started with --mlflow fails before any cell runs.
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            raise PortbenchError(MISSING_EXTRA)

    def render(self, results: RunResults, destination: Path | None, console: Console) -> Path | None:
        if self.uri is None:
            raise PortbenchError("the MLflow export needs a tracking URI (--mlflow sqlite:///mlflow.db)")
        try:
            import mlflow  # noqa: F401 - the extra's presence is the question here
            from mlflow.exceptions import MlflowException
        except ImportError:
            raise PortbenchError(MISSING_EXTRA) from None
        # What a store that cannot be used raises: MLflow's own errors, OSError (a path that is not a
        # directory; requests' connection errors derive from it too), SQLAlchemy's for the SQL stores.
        store_errors: tuple[type[BaseException], ...] = (MlflowException, OSError)
        try:
            from sqlalchemy.exc import SQLAlchemyError

            store_errors = (*store_errors, SQLAlchemyError)
        except ImportError:
            pass
        try:
            log_run(results, self.uri, self.experiment, self.run_dir, self.platform)
        except store_errors as error:
            lines = str(getattr(error, "message", None) or error).strip().splitlines()
            detail = lines[0] if lines else type(error).__name__
            raise PortbenchError(f"MLflow at {self.uri}: {detail}") from None
        return None


def _experiment_id(client: Any, uri: str, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    artifact_location = None
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme == "sqlite" and parsed.path not in ("", "/:memory:"):
        # sqlite:///rel.db and sqlite:////abs.db: keep artifacts beside the database, not in
        # whatever directory the command happened to run in (MLflow's default, ./mlruns).
        database = Path(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        artifact_location = (database.resolve().parent / "mlartifacts").as_uri()
    return str(client.create_experiment(name, artifact_location=artifact_location))


def log_run(
    results: RunResults, uri: str, experiment: str = DEFAULT_EXPERIMENT,
    run_dir: Path | None = None, platform: str | None = None,
) -> dict[str, str]:
    """Log ``results`` to the tracking store at ``uri``; returns {cell id: MLflow run id}, with the
    parent run's id under the portbench run id."""
    import tempfile

    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment_id(client, uri, experiment)
    platform = platform or platform_name(results.platform)
    common = {"portbench.run_id": results.run_id, "portbench.suite": results.suite,
              "portbench.platform": platform, "portbench.version": results.portbench_version}
    parent = client.create_run(
        experiment_id, start_time=_epoch_ms(results.started_at), run_name=results.run_id, tags=common,
    )
    ids = {results.run_id: parent.info.run_id}
    failed = False
    for cell in results.cells:
        started = _epoch_ms(cell.started_at) or _epoch_ms(results.started_at)
        tags = {**common, "mlflow.parentRunId": parent.info.run_id, "portbench.status": cell.status}
        if cell.reason:
            tags["portbench.reason"] = cell.reason[:5000]
        child = client.create_run(experiment_id, start_time=started, run_name=cell.cell_id, tags=tags)
        run_id = child.info.run_id
        ids[cell.cell_id] = run_id
        params = [Param(k, v) for k, v in cell_params(results, cell, platform).items()]
        for param_chunk in _chunks(params, MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=list(param_chunk))
        metrics = [Metric(k, v, started or 0, step) for k, v, step in cell_metrics(cell)]
        for metric_chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=list(metric_chunk))
        if cell.manifest:
            with tempfile.TemporaryDirectory() as folder:
                manifest = Path(folder) / "manifest.json"
                manifest.write_text(json.dumps(cell.manifest, indent=1, ensure_ascii=False, default=str))
                client.log_artifact(run_id, str(manifest))
        if run_dir is not None and cell.outputs_file:
            outputs = run_dir / cell.outputs_file
            if outputs.is_file():
                client.log_artifact(run_id, str(outputs), artifact_path="outputs")
        end = started + int(cell.duration_s * 1000) if started is not None and cell.duration_s else None
        status = "FAILED" if cell.status == "failed" else "FINISHED"
        failed = failed or cell.status == "failed"
        client.set_terminated(run_id, status=status, end_time=end)
    if run_dir is not None and (run_dir / "results.json").is_file():
        client.log_artifact(parent.info.run_id, str(run_dir / "results.json"))
    client.set_terminated(parent.info.run_id, status="FAILED" if failed else "FINISHED",
                          end_time=_epoch_ms(results.finished_at))
    return ids
