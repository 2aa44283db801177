"""What happens inside a cell's worker process: backend → sessions → workload → accuracy → timing.

``execute_cell`` is plain code (tests call it in-process); ``worker_main`` is the process entry point
the runner starts, which adds the environment, logging and the reply pipe.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import traceback
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import psutil

from portbench.backends.base import Backend, InferenceSession, PredictorOptions
from portbench.backends.registry import create_backend
from portbench.harness.config import CellPlan
from portbench.harness.errors import PortbenchError
from portbench.harness.measure import single_stream, summarize_ms
from portbench.harness.models import hash_model_files
from portbench.harness.results import CellResult, CellStatus, ModelRecord
from portbench.suites.base import AccuracyResult, Workload
from portbench.suites.registry import create_workload


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_cell_result(plan: CellPlan, status: CellStatus, reason: str | None = None) -> CellResult:
    spec = plan.spec
    return CellResult(
        cell_id=plan.cell_id,
        workload=spec.workload,
        task=spec.task,
        model=spec.model,
        backend=plan.backend,
        precision=plan.precision.value,
        scenario=plan.scenario,
        dataset=spec.dataset,
        status=status,
        reason=reason,
        params={k: v for k, v in spec.params.items() if k not in ("cache_dir", "model_dirs")},
    )


def _open_sessions(
    backend: Backend, workload: Workload, plan: CellPlan
) -> tuple[dict[str, InferenceSession], list[ModelRecord], dict[str, float]]:
    options = PredictorOptions(
        precision=plan.precision,
        device_id=plan.device_id,
        cpu_threads=plan.cpu_threads,
        cache_dir=plan.cache_dir / "engines",
    )
    sessions: dict[str, InferenceSession] = {}
    records: list[ModelRecord] = []
    cold: dict[str, float] = {}
    synthetic = workload.synthetic_weights(plan.spec)
    for role, files in workload.models_for(plan.spec).items():
        records.append(
            ModelRecord(
                role=role,
                name=workload.model_name(plan.spec, role),
                path=str(files.directory),
                sha256=hash_model_files(files),
                synthetic_weights=synthetic,
                source=workload.model_source(plan.spec, role),
            )
        )
        start = time.perf_counter()
        try:
            sessions[role] = backend.create_session(files, options)
        except PortbenchError:
            raise
        except Exception as exc:  # Paddle raises plain RuntimeError/ValueError on corrupt models
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PortbenchError(
                f"cannot load model {files.directory} on {backend.name}: {first_line}"
            ) from exc
        cold[f"{role}_load_s"] = time.perf_counter() - start
    return sessions, records, cold


def _stage_summaries(accuracy: AccuracyResult) -> tuple[dict[str, Any], dict[str, list[float]]]:
    summaries: dict[str, Any] = {}
    raw: dict[str, list[float]] = {}
    for stage, seconds in accuracy.stage_samples_s.items():
        if seconds:
            raw[stage] = [s * 1e3 for s in seconds]
            summaries[stage] = summarize_ms(raw[stage])
    return summaries, raw


def execute_cell(plan: CellPlan) -> CellResult:
    """Run one cell in this process. Raises PortbenchError for problems the user can fix."""
    started = utc_now()
    wall_start = time.perf_counter()
    backend = create_backend(plan.backend, plan.device_id)
    workload = create_workload(plan.spec.workload)
    result = new_cell_result(plan, "passed")
    result.started_at = started
    result.device = backend.device
    result.device_info = _device_info_dict(backend)

    sessions, result.models, result.cold_start = _open_sessions(backend, workload, plan)
    prepared = workload.prepare(plan.spec, sessions)
    queries = prepared.queries()
    result.params.update(prepared.query_description())

    if queries:
        first = time.perf_counter()
        queries[0].run()
        backend.synchronize()
        result.cold_start["first_inference_ms"] = (time.perf_counter() - first) * 1e3

    if plan.mode in ("both", "accuracy") and not workload.synthetic_weights(plan.spec):
        accuracy = prepared.evaluate()
        result.metrics = dict(accuracy.metrics)
        result.metrics_by_subset = {k: dict(v) for k, v in accuracy.metrics_by_subset.items()}
        result.stages_ms, result.raw["stages_ms"] = _stage_summaries(accuracy)
        result.raw["accuracy_samples"] = accuracy.samples

    if plan.mode in ("both", "performance") and queries:
        process = psutil.Process()
        process.cpu_percent(None)
        measurement = single_stream(queries, plan.measure)
        result.resources["cpu_percent"] = process.cpu_percent(None)
        result.latency_ms = measurement.latency_summary()
        result.throughput = measurement.throughput()
        result.warmup = {"queries": measurement.warmup_queries, "seconds": measurement.warmup_s}
        result.raw["latency_ms"] = measurement.latencies_ms
        result.raw["samples_per_query"] = [q.samples for q in queries]

    # ru_maxrss is KiB on Linux: the true peak, including model load.
    result.resources["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    device_memory = backend.memory_used_bytes()
    result.resources["device_memory_bytes"] = device_memory
    result.duration_s = time.perf_counter() - wall_start
    return result


def _device_info_dict(backend: Backend) -> dict[str, Any] | None:
    from dataclasses import asdict

    try:
        return asdict(backend.device_info())
    except Exception as exc:  # identity is evidence, but a parse failure must not lose the cell
        return {"error": f"{type(exc).__name__}: {exc}"}


def worker_main(plan: CellPlan, reply: Any, environment: Mapping[str, str]) -> None:
    """Process entry point: environment for this device, output to the cell's log, reply on a pipe."""
    os.environ.update(environment)
    warnings.filterwarnings("ignore", message="No ccache found")
    if plan.log_path is not None:
        plan.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(plan.log_path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    try:
        cell = execute_cell(plan)
        reply.send(("ok", cell.to_dict()))
    except PortbenchError as exc:
        reply.send(("input-error", str(exc)))
    except Exception as exc:
        traceback.print_exc()
        reply.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        reply.close()
