"""What happens inside a cell's worker process: backend → sessions → workload → accuracy → timing.

``execute_cell`` is plain code (tests call it in-process); ``worker_main`` is the process entry point
the runner starts, which adds the environment, logging and the reply pipe.
"""

from __future__ import annotations

import dataclasses
import math
import os
import resource
import sys
import time
import traceback
import warnings
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import psutil

from portbench.backends.base import Backend, ModelFiles, Precision, PredictorOptions, Session
from portbench.backends.power import host_power_sources
from portbench.backends.registry import create_backend
from portbench.backends.runtimes.base import OnnxModel, Runtime
from portbench.backends.runtimes.registry import create_runtime
from portbench.errors import PortbenchError, SessionUnavailableError
from portbench.harness.audits import (
    AuditSettings,
    OutputTap,
    audit_cache,
    audit_outputs,
    audits_enabled,
    sample_indices,
)
from portbench.harness.audits import failure_reason as audit_failure
from portbench.harness.config import CellPlan
from portbench.harness.energy import EnergyMeter, energy_record
from portbench.harness.first_shape import first_shape_record, measure_first_shapes
from portbench.harness.host_probe import measure_host_speed
from portbench.harness.measure import (
    Measurement,
    MeasureSettings,
    build_manifest,
    measure_stages,
    multi_stream,
    offline,
    run_trials,
    staged_query,
    summarize_ms,
)
from portbench.harness.models import hash_model_files, sha256_file
from portbench.harness.placement import (
    parse_fallback_lines,
    placement_for_role,
    placement_key,
    profile_model,
)
from portbench.harness.results import LEGACY_RUNTIME, CellResult, CellStatus, ModelRecord
from portbench.harness.scenarios import Scenario, ScenarioContext, create_scenario
from portbench.harness.turns import Turns
from portbench.harness.workload import (
    AccuracyResult,
    PreparedTask,
    QuantizationUnsupported,
    Query,
    ScenarioUnsupported,
    Workload,
    create_workload,
)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_cell_result(plan: CellPlan, status: CellStatus, reason: str | None = None) -> CellResult:
    spec = plan.spec
    return CellResult(
        cell_id=plan.cell_id,
        workload=spec.workload,
        task=spec.task,
        model=plan.model_label or spec.model,
        backend=plan.backend,
        runtime=plan.runtime,
        precision=plan.precision.value,
        scenario=plan.scenario,
        dataset=spec.dataset,
        status=status,
        reason=reason,
        # Where a user dataset came from is evidence; parity ignores it (harness.parity.LOCATION_PARAMS).
        params={**spec.params, **({"dataset_dir": str(spec.dataset_dir)} if spec.dataset_dir else {})},
    )


@dataclass
class OpenedModels:
    sessions: dict[str, Session]
    records: list[ModelRecord]
    cold_start: dict[str, float]
    quantization: dict[str, Any] | None
    # role -> provenance of the ONNX conversion a runtime loaded (none for Paddle Inference)
    conversions: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def _quantized(
    workload: Workload, plan: CellPlan, role: str, files: ModelFiles
) -> tuple[ModelFiles, dict[str, Any]]:
    """The INT8 model for ``role``, built from the workload's calibration split (cached)."""
    from portbench.harness.quantize import quantize_model

    settings = workload.quantize_settings(plan.spec)
    calibration = workload.calibration_set(
        plan.spec, role, settings.calibration_samples, settings.batch_size
    )
    quantized = quantize_model(
        workload.quantization_source(plan.spec, role, files),
        calibration,
        settings,
        plan.spec.cache_dir,
        model_name=workload.model_name(plan.spec, role),
        log=lambda note: print(f"portbench: {note}", file=sys.stderr),
    )
    return quantized.files, quantized.recorded()


def _predictor_options(plan: CellPlan) -> PredictorOptions:
    return PredictorOptions(
        precision=plan.precision,
        device_id=plan.device_id,
        cpu_threads=plan.cpu_threads,
        cache_dir=plan.spec.cache_dir / "engines",
    )


def _runtime_model(
    runtime: Runtime,
    files: ModelFiles,
    plan: CellPlan,
    name: str,
    opened: OpenedModels,
    role: str,
    force_onnx: bool = False,
) -> ModelFiles | OnnxModel:
    """What ``runtime`` loads for ``files``: the Paddle files, or their cached ONNX conversion
    (always the conversion when ``force_onnx``: the QDQ route quantizes it)."""
    if runtime.model_format(files) == "paddle" and not force_onnx:
        return files
    from portbench.harness.onnx_export import export_onnx

    started = time.perf_counter()
    converted = export_onnx(
        files, plan.spec.cache_dir, name=name, log=lambda note: print(f"portbench: {note}", file=sys.stderr)
    )
    opened.cold_start[f"{role}_convert_s"] = time.perf_counter() - started
    opened.conversions[role] = dict(converted.provenance)
    return converted


def _qdq_model(
    workload: Workload, plan: CellPlan, role: str, converted: OnnxModel
) -> tuple[OnnxModel, dict[str, Any]]:
    """The static QDQ INT8 model of the FP32 ONNX conversion for ``role``, calibrated on the
    workload's calibration split (feeds renamed to the ONNX inputs), cached with provenance."""
    from portbench.harness.onnx_quantize import onnx_calibration, quantize_onnx

    settings = workload.onnx_quantize_settings(plan.spec)
    calibration = onnx_calibration(
        converted.path,
        workload.calibration_set(plan.spec, role, settings.calibration_samples, settings.batch_size),
    )
    quantized = quantize_onnx(
        converted.path,
        calibration,
        settings,
        plan.spec.cache_dir,
        model_name=workload.model_name(plan.spec, role),
    )
    # The Paddle files the conversion came from, as the Paddle route records its source.
    paddle_digests = converted.provenance.get("source_sha256", {})
    provenance = quantized.recorded(
        paddle_source={"path": str(converted.source.directory), "sha256": dict(paddle_digests)}
    )
    return OnnxModel(quantized.model_file, converted.source, converted.provenance), provenance


def _role_precision(int8: bool) -> dict[str, Any]:
    """What an INT8 cell's ``quantization`` record says of one role before its provenance is added."""
    if int8:
        return {"precision": "int8"}
    return {"precision": "fp32", "reason": "not in the cell's int8_roles: its FP32 model runs"}


def _open_sessions(
    backend: Backend, workload: Workload, plan: CellPlan, runtime: Runtime | None = None
) -> OpenedModels:
    options = _predictor_options(plan)
    runtime = runtime or create_runtime(plan.runtime)
    opened = OpenedModels({}, [], {}, None)
    synthetic = workload.synthetic_weights(plan.spec)
    int8_cell = plan.precision is Precision.INT8
    int8_roles = workload.int8_roles(plan.spec) if int8_cell else ()
    # role -> its precision in this cell, and the INT8 model's provenance: INT8 cells only
    quantization: dict[str, dict[str, Any]] = {}
    for role, source_files in workload.models_for(plan.spec).items():
        int8 = role in int8_roles
        paddle_ptq = int8 and runtime.int8_route == "paddle-ptq" and backend.int8_needs_quantized_model
        onnx_qdq = int8 and runtime.int8_route == "onnx-qdq"
        if int8_cell:
            quantization[role] = _role_precision(int8)
        name = workload.model_name(plan.spec, role)
        source = workload.model_source(plan.spec, role)
        files = source_files
        if paddle_ptq:
            started = time.perf_counter()
            files, provenance = _quantized(workload, plan, role, source_files)
            opened.cold_start[f"{role}_quantize_s"] = time.perf_counter() - started
            quantization[role].update(provenance)
            name = f"{name}-int8-{provenance.get('settings', {}).get('algo', 'ptq')}"
            source = f"portbench post-training quantization of {workload.model_name(plan.spec, role)}"
        loaded = _runtime_model(runtime, files, plan, name, opened, role, force_onnx=onnx_qdq)
        record_path, record_sha256 = str(files.directory), hash_model_files(files)
        if onnx_qdq and isinstance(loaded, OnnxModel):
            started = time.perf_counter()
            loaded, provenance = _qdq_model(workload, plan, role, loaded)
            opened.cold_start[f"{role}_quantize_s"] = time.perf_counter() - started
            quantization[role].update(provenance)
            name = f"{name}-int8-qdq-{provenance.get('settings', {}).get('method', 'MinMax')}"
            source = f"ONNX Runtime static QDQ quantization of {workload.model_name(plan.spec, role)}"
            record_path, record_sha256 = str(loaded.path.parent), {loaded.path.name: sha256_file(loaded.path)}
        opened.records.append(
            ModelRecord(
                role=role,
                name=name,
                path=record_path,
                sha256=record_sha256,
                synthetic_weights=synthetic,
                source=source,
                supplied_path=str(plan.spec.model_dirs[role]) if role in plan.spec.model_dirs else None,
                supplied_sha256={p.name: sha256_file(p) for p in workload.supplied_files(plan.spec, role)},
            )
        )
        start = time.perf_counter()
        role_options = dataclasses.replace(
            options,
            dynamic_shapes=workload.shape_ranges(plan.spec, role),
            # A role an INT8 cell keeps in FP32 gets an FP32 predictor (no INT8 kernels, no calibration).
            precision=Precision.FP32 if int8_cell and not int8 else plan.precision,
        )
        try:
            opened.sessions[role] = runtime.create_session(backend, loaded, role_options)
        except PortbenchError:
            raise
        except Exception as exc:  # Paddle raises plain RuntimeError/ValueError on corrupt models
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = backend.name if runtime.name == "paddle" else f"{backend.name} with {runtime.name}"
            raise PortbenchError(f"cannot load model {files.directory} on {where}: {first_line}") from exc
        opened.cold_start[f"{role}_load_s"] = time.perf_counter() - start
    opened.quantization = quantization or None
    return opened


def _stage_summaries(accuracy: AccuracyResult) -> tuple[dict[str, Any], dict[str, list[float]]]:
    summaries: dict[str, Any] = {}
    raw: dict[str, list[float]] = {}
    for stage, seconds in accuracy.stage_samples_s.items():
        if seconds:
            raw[stage] = [s * 1e3 for s in seconds]
            summaries[stage] = summarize_ms(raw[stage])
    return summaries, raw


DEFAULT_STREAMS = 2
# The stage split runs in its own short loop after the timed one: a few passes are enough.
STAGE_SETTINGS = MeasureSettings(
    warmup_queries=0, min_queries=8, max_queries=64, min_duration_s=0.0, max_duration_s=2.0,
    warmup_stable_windows=0,
)


def _int_list_param(params: Mapping[str, Any], key: str, default: Sequence[int]) -> list[int]:
    value = params.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
        or len(set(value)) != len(value)
    ):
        raise PortbenchError(f"parameter {key} must be distinct positive integers, got {value!r}")
    return list(value)


def _record_single_stream(
    plan: CellPlan,
    backend: Backend,
    queries: Sequence[Query],
    result: CellResult,
    meter: EnergyMeter,
    turns: Turns | None = None,
) -> list[int]:
    turn = turns.turn if turns is not None else nullcontext
    with turn():  # the probe, too, must not run while a lockstep partner times
        before = measure_host_speed()  # outside the timed loops: see harness/host_probe.py
    trials = run_trials(
        queries, plan.measure, trials=plan.trials, synchronize=backend.synchronize, window=meter.window,
        turn=turn,
    )
    # The result is assembled within the last turn too; only sending it and exiting overlap the
    # partner's last step (its host probe after the trials).
    with turn():
        after = measure_host_speed()
        pooled = trials.pooled()
        result.energy = energy_record(meter, meter.windows[-1], pooled.samples)
        result.latency_ms = pooled.latency_summary()
        result.throughput = pooled.throughput()
        result.trials = trials.summary
        result.warmup = pooled.warmup_report()
        result.raw["latency_ms"] = pooled.latencies_ms
        result.raw["latency_trial_sizes"] = [len(t.latencies_ns) for t in trials.trials]
        result.raw["samples_per_query"] = [q.samples for q in queries]
    # One entry per timing process (the runner's pooling appends the others'): the host's speed
    # around this process's trials, the geometric mean of the probe before and after them.
    result.raw["host_probe"] = [
        {
            "version": before["version"],
            "probe_ms": math.sqrt(float(before["probe_ms"]) * float(after["probe_ms"])),
            "before_ms": before["probe_ms"],
            "after_ms": after["probe_ms"],
        }
    ]
    return sorted({q.samples for q in queries})


def _record_offline(
    plan: CellPlan, backend: Backend, prepared: PreparedTask, result: CellResult, meter: EnergyMeter
) -> list[int]:
    """One single-stream loop per batch size; the headline figures are the largest batch's."""
    batch_sizes = _int_list_param(plan.spec.params, "batch_sizes", [1, 8, 32])
    samples_per_query: dict[int, list[int]] = {}

    def queries_for(batch_size: int) -> Sequence[Query]:
        queries = prepared.queries_for_batch(batch_size)
        samples_per_query[batch_size] = [q.samples for q in queries]
        return queries

    measured = offline(
        queries_for, batch_sizes, plan.measure, synchronize=backend.synchronize, window=meter.window
    )
    # One meter window per batch size, in sweep order.
    energy = {
        batch_size: energy_record(meter, window, measurement.samples)
        for (batch_size, measurement), window in zip(measured.items(), meter.windows, strict=True)
    }
    result.raw["offline"] = [
        {
            "batch_size": batch_size,
            "latency_ms": asdict(measurement.latency_summary()),
            "throughput": asdict(measurement.throughput()),
            "warmup": measurement.warmup_report(),
            "samples_per_query": samples_per_query[batch_size],
            "latencies_ms": measurement.latencies_ms,
            "energy": energy[batch_size],
        }
        for batch_size, measurement in measured.items()
    ]
    headline = max(batch_sizes)
    result.energy = energy[headline]
    result.params["batch_sizes"] = batch_sizes
    result.params["headline_batch_size"] = headline
    _record_headline(measured[headline], result)
    result.raw["samples_per_query"] = samples_per_query[headline]
    return sorted(batch_sizes)


def _record_multi_stream(
    plan: CellPlan,
    backend: Backend,
    prepared: PreparedTask,
    sessions: Mapping[str, Session],
    result: CellResult,
    meter: EnergyMeter,
) -> list[int]:
    """N threads, each on its own clone of every session: per-query latency across all streams,
    aggregate throughput."""
    value = plan.spec.params.get("streams", DEFAULT_STREAMS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PortbenchError(f"parameter streams must be a positive integer, got {value!r}")
    streams = [
        prepared.stream_queries({role: session.clone() for role, session in sessions.items()})
        for _ in range(value)
    ]
    measured = multi_stream(streams, plan.measure, synchronize=backend.synchronize, window=meter.window)
    result.energy = energy_record(meter, meter.windows[-1], measured.samples)
    result.params["streams"] = value
    _record_headline(measured, result)
    result.raw["stream_latency_ms"] = [[ns / 1e6 for ns in lat] for lat in measured.stream_latencies_ns]
    result.raw["samples_per_query"] = [q.samples for q in streams[0]]
    return sorted({q.samples for stream in streams for q in stream})


def _record_headline(measurement: Measurement, result: CellResult) -> None:
    result.latency_ms = measurement.latency_summary()
    result.throughput = measurement.throughput()
    result.warmup = measurement.warmup_report()
    result.raw["latency_ms"] = measurement.latencies_ms


def _measure_scenario(
    plan: CellPlan,
    backend: Backend,
    prepared: PreparedTask,
    sessions: Mapping[str, Session],
    queries: Sequence[Query],
    result: CellResult,
    output_tap: OutputTap | None = None,
    turns: Turns | None = None,
) -> list[int]:
    """Run the cell's scenario (``harness.scenarios`` registry) and record it; returns the batch
    sizes measured (for the manifest)."""
    # Host sources (RAPL, the BMC) first, then the device's own; probed once per cell.
    meter = EnergyMeter([*host_power_sources(), *backend.power_sources()])
    context = ScenarioContext(plan, backend, prepared, sessions, queries, output_tap, meter, turns)
    return create_scenario(plan.scenario).record(context, result)


def _meter_of(context: ScenarioContext) -> EnergyMeter:
    # A context built without power sources (a test, a third-party caller) records "no source".
    return context.meter if context.meter is not None else EnergyMeter([])


class SingleStreamScenario(Scenario):
    name = "single-stream"
    description = "one query after another, repeated trials"
    repeatable = True
    lockstep = True

    def record(self, context: ScenarioContext, result: CellResult) -> list[int]:
        tap = context.output_tap
        queries = tap.wrap(context.queries) if tap is not None else context.queries
        return _record_single_stream(
            context.plan, context.backend, queries, result, _meter_of(context), context.turns
        )


class OfflineScenario(Scenario):
    name = "offline"
    description = "throughput over a batch-size sweep (params.batch_sizes)"

    def record(self, context: ScenarioContext, result: CellResult) -> list[int]:
        return _record_offline(context.plan, context.backend, context.prepared, result, _meter_of(context))


class MultiStreamScenario(Scenario):
    name = "multi-stream"
    description = "params.streams concurrent streams, each on cloned predictors"

    def record(self, context: ScenarioContext, result: CellResult) -> list[int]:
        return _record_multi_stream(
            context.plan, context.backend, context.prepared, context.sessions, result, _meter_of(context)
        )


def _measure_inference_stages(prepared: PreparedTask, result: CellResult) -> None:
    """Host-to-device / compute / device-to-host split of a few pre-processed inputs, each stage
    synchronised by the backend (``Session.run_staged``); tasks without feeds are skipped."""
    try:
        feeds = prepared.staged_feeds()
    except ScenarioUnsupported:
        return
    if not feeds:
        return
    staged = measure_stages([staged_query(s, feed, n) for s, feed, n in feeds], STAGE_SETTINGS)
    raw_stages = result.raw.setdefault("stages_ms", {})
    for stage, summary in staged.summaries().items():
        result.stages_ms[f"inference_{stage}"] = summary
        raw_stages[f"inference_{stage}"] = staged.stages_ms[stage]


def _run_audits(
    backend: Backend,
    prepared: PreparedTask,
    queries: Sequence[Query],
    tap: OutputTap,
    accuracy_outputs: Mapping[str, Any] | None,
    settings: AuditSettings,
    result: CellResult,
) -> None:
    """After the timed pass: compare the tapped outputs with the accuracy pass's, then the
    same-versus-distinct input check; a failed audit fails the cell (its figures stay recorded)."""
    result.audits["outputs"] = audit_outputs(prepared, tap, accuracy_outputs, backend.determinism_atol)
    result.audits["cache"] = audit_cache(queries, settings, synchronize=backend.synchronize)
    reason = audit_failure(result.audits)
    if reason is not None:
        result.status = "failed"
        result.reason = reason


def _measure_placement(
    plan: CellPlan, backend: Backend, workload: Workload, prepared: PreparedTask, opened: OpenedModels
) -> dict[str, Any]:
    """Operator placement per model role, on predictors of its own (profiling slows every op), from
    the feeds the stage split uses; the kernel-fallback lines come from this cell's log so far. A
    role an earlier cell of the run profiled with the same files and options is not profiled again:
    it records the key and that cell, and the runner copies that cell's record in."""
    if plan.runtime != LEGACY_RUNTIME:
        # The op list and times come from Paddle Inference's profiler, which another runtime lacks.
        return {"unavailable": f"operator placement is read from Paddle Inference's profiler, "
                               f"not available for the {plan.runtime} runtime"}  # fmt: skip
    try:
        feeds = prepared.staged_feeds()
    except ScenarioUnsupported as exc:
        return {"unavailable": f"{exc}: no feeds to profile the operators with"}
    log_text = ""
    if plan.log_path is not None and plan.log_path.is_file():
        log_text = plan.log_path.read_text(encoding="utf-8", errors="replace")
    fallbacks = parse_fallback_lines(log_text)
    digests = {record.role: record.sha256 for record in opened.records}
    roles: dict[str, Any] = {}
    for role, session in opened.sessions.items():
        role_feeds = [feed for s, feed, _ in feeds if s is session]
        if not role_feeds:
            continue
        options = dataclasses.replace(
            _predictor_options(plan), dynamic_shapes=workload.shape_ranges(plan.spec, role)
        )
        key = placement_key(backend.name, backend.device, digests.get(role, {}), options)
        if key in plan.placement_measured:
            roles[role] = {"key": key, "measured_in": plan.placement_measured[key]}
            continue
        try:
            counts, place, times = profile_model(backend, session.model, options, role_feeds)
        except Exception as exc:  # placement is evidence; a profiler failure must not lose the cell
            roles[role] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        roles[role] = {**placement_for_role(backend.device, counts, place, times, fallbacks), "key": key}
    return {"roles": roles, "fallback_log": plan.log_path is not None}


@dataclass
class CellRun:
    result: CellResult
    outputs: dict[str, Any] | None = None  # per-sample outputs of the accuracy pass


def execute_cell(plan: CellPlan, turns: Turns | None = None) -> CellRun:
    """Run one cell in this process. Raises PortbenchError for problems the user can fix.
    ``turns``: the cell is timed in lockstep with a partner process (``harness.lockstep``)."""
    started = utc_now()
    wall_start = time.perf_counter()
    backend = create_backend(plan.backend, plan.device_id)
    runtime = create_runtime(plan.runtime)
    workload = create_workload(plan.spec.workload)
    result = new_cell_result(plan, "passed")
    result.started_at = started
    result.device = backend.device
    result.device_info = _device_info_dict(backend)

    opened = _open_sessions(backend, workload, plan, runtime)
    result.models, result.cold_start, result.quantization = (
        opened.records, opened.cold_start, opened.quantization
    )
    prepared = workload.prepare(plan.spec, opened.sessions)
    result.dataset_sha256 = {str(p): sha256_file(p) for p in workload.data_files(plan.spec)}
    queries = prepared.queries()
    result.params.update(prepared.query_description())

    # First-shape costs before anything else runs on the sessions: every shape is new here.
    repeat = plan.repeat > 0  # an extra timing process: the timed scenario only
    probes = prepared.shape_probes() if plan.mode in ("both", "performance") and not repeat else ()
    if probes:
        costs = measure_first_shapes(probes, synchronize=backend.synchronize)
        result.first_shape = first_shape_record(costs)
        result.cold_start["first_inference_ms"] = costs[0].first_ms
    elif queries:
        first = time.perf_counter()
        queries[0].run()
        backend.synchronize()
        result.cold_start["first_inference_ms"] = (time.perf_counter() - first) * 1e3

    outputs = None
    if plan.mode in ("both", "accuracy") and not repeat and not workload.synthetic_weights(plan.spec):
        accuracy = prepared.evaluate()
        outputs = accuracy.outputs
        result.metrics = dict(accuracy.metrics)
        result.metrics_by_subset = {k: dict(v) for k, v in accuracy.metrics_by_subset.items()}
        result.stages_ms, result.raw["stages_ms"] = _stage_summaries(accuracy)
        result.raw["accuracy_samples"] = accuracy.samples

    if plan.mode in ("both", "performance") and queries:
        process = psutil.Process()
        process.cpu_percent(None)
        audit_settings = (
            AuditSettings.from_params(plan.spec.params)
            if audits_enabled(plan.spec.params, plan.scenario) and not repeat else None
        )
        tap = (
            OutputTap(sample_indices(len(queries), audit_settings.samples, audit_settings.seed))
            if audit_settings else None
        )
        batch_sizes = _measure_scenario(plan, backend, prepared, opened.sessions, queries, result, tap, turns)
        result.resources["cpu_percent"] = process.cpu_percent(None)
        if audit_settings is not None and tap is not None:
            _run_audits(backend, prepared, queries, tap, outputs, audit_settings, result)
        if not repeat:
            _measure_inference_stages(prepared, result)
            result.placement = _measure_placement(plan, backend, workload, prepared, opened)
        result.manifest = build_manifest(
            backend=backend.name,
            precision=plan.precision.value,
            scenario=plan.scenario,
            cpu_threads=plan.cpu_threads,
            batch_sizes=batch_sizes,
            input_shapes=prepared.query_description().get("input_shapes", {}),
            settings=plan.measure,
        )
        result.manifest["runtime"] = _runtime_manifest(runtime, opened)

    # ru_maxrss is KiB on Linux: the true peak, including model load.
    result.resources["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    device_memory = backend.memory_used_bytes()
    result.resources["device_memory_bytes"] = device_memory
    result.duration_s = time.perf_counter() - wall_start
    return CellRun(result, outputs)


def _runtime_manifest(runtime: Runtime, opened: OpenedModels) -> dict[str, Any]:
    """The runtime, its installed versions and each session's settings (what it was told and, where
    the runtime reports it, what it applied)."""
    return {
        "name": runtime.name,
        "versions": runtime.versions(),
        "sessions": {role: dict(session.settings) for role, session in opened.sessions.items()},
        **({"conversions": opened.conversions} if opened.conversions else {}),
    }


def _device_info_dict(backend: Backend) -> dict[str, Any] | None:
    from dataclasses import asdict

    try:
        return asdict(backend.device_info())
    except Exception as exc:  # identity is evidence, but a parse failure must not lose the cell
        return {"error": f"{type(exc).__name__}: {exc}"}


def worker_main(
    plan: CellPlan, reply: Any, environment: Mapping[str, str], turns: Turns | None = None
) -> None:
    """Process entry point: environment for this device, output to the cell's log, reply on a pipe."""
    os.environ.update(environment)
    if turns is not None and turns.cpus:
        os.sched_setaffinity(0, turns.cpus)  # before Paddle starts its threads, which inherit it
    warnings.filterwarnings("ignore", message="No ccache found")
    if plan.log_path is not None:
        plan.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(plan.log_path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the process
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    try:
        run = execute_cell(plan, turns)
        reply.send(("ok", run.result.to_dict(), run.outputs))
    except (QuantizationUnsupported, SessionUnavailableError) as exc:
        reply.send(("skipped", str(exc), None))
    except PortbenchError as exc:
        reply.send(("input-error", str(exc), None))
    except Exception as exc:
        traceback.print_exc()
        reply.send(("error", f"{type(exc).__name__}: {exc}", None))
    finally:
        reply.close()
