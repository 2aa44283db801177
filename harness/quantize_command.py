"""``portbench quantize``: INT8 post-training quantization of a registered or user model.

Calibration always comes from the workload's calibration split; the optional search keeps the most
quantization-sensitive ops in FP32 until the INT8 model's task metric passes its gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from portbench.backends.base import ModelFiles, Precision, PredictorOptions
from portbench.backends.cpu import CpuBackend
from portbench.errors import PortbenchError, UnknownNameError
from portbench.harness.models import ModelEntry
from portbench.harness.quantize import (
    CalibrationSet,
    QuantizedModel,
    QuantizeSettings,
    SearchResult,
    quantizable_ops,
    quantize_model,
    sensitive_ops_search,
)
from portbench.harness.workload import TaskSpec, Workload, registered_models


@dataclass(frozen=True)
class QuantizeTarget:
    entry: ModelEntry
    workload: Workload
    spec: TaskSpec
    files: ModelFiles  # what PTQ reads: the workload's quantization source (ERNIE: its legacy re-export)
    session_role: str  # the model's role among the task's sessions (ERNIE's one model is "model")

    @property
    def role(self) -> str:
        return self.entry.task

    def calibration(self, settings: QuantizeSettings) -> CalibrationSet:
        return self.workload.calibration_set(
            self.spec, self.session_role, settings.calibration_samples, settings.batch_size
        )


def find_target(model: str, model_dir: Path | None, dataset: str, cache_dir: Path) -> QuantizeTarget:
    entries = registered_models()
    if model not in entries:
        raise UnknownNameError("model", model, list(entries))
    entry, workload = entries[model]
    spec = TaskSpec(
        entry.workload, entry.task, entry.name, dataset, {},
        cache_dir=cache_dir, model_dirs={entry.task: model_dir} if model_dir else {},
    )
    roles = workload.roles(spec)
    session_role = entry.task if entry.task in roles or len(roles) != 1 else roles[0]
    # The runner's own path to the model (ERNIE's is built, not installed), then what PTQ reads.
    files = workload.models_for(spec)[session_role]
    source = workload.quantization_source(spec, session_role, files)
    return QuantizeTarget(entry, workload, spec, source, session_role)


def list_ops(target: QuantizeTarget, settings: QuantizeSettings) -> list[tuple[str, str]]:
    return [(op.name, op.op_type) for op in quantizable_ops(target.files, settings.op_types)]


def quantize(target: QuantizeTarget, settings: QuantizeSettings, cache_dir: Path,
             log: Callable[[str], None]) -> QuantizedModel:
    return quantize_model(
        target.files, target.calibration(settings), settings, cache_dir, model_name=target.entry.name, log=log
    )


def search_metric(target: QuantizeTarget) -> str:
    """The task metric the search protects: the first headline metric of the model's own task."""
    tasks = target.workload.tasks()
    info = tasks.get(target.role)
    if info is None or not info.headline:
        searchable = [f"{target.workload.name}/{t.name}" for t in tasks.values() if t.headline]
        raise UnknownNameError(
            "quantization search task", f"{target.workload.name}/{target.role}", searchable
        )
    metric = info.metric(info.headline[0])
    if metric is not None and not metric.higher_is_better:
        # The search keeps ops in FP32 until INT8 reaches GATE × FP32, which reads a higher-is-better score.
        raise PortbenchError(
            f"the quantization search protects a higher-is-better metric; "
            f"{target.workload.name}/{target.role} gates {metric.name}, where lower is better"
        )
    return info.headline[0]


def task_metric(target: QuantizeTarget, files: ModelFiles, precision: Precision) -> float:
    """The protected metric of ``files`` on the workload's validation split (its calibration split,
    never the evaluation split parity scores), run on the CPU at ``precision``."""
    metric = search_metric(target)
    session = CpuBackend().create_session(files, PredictorOptions(precision=precision))
    prepared = target.workload.prepare_validation(target.spec, {target.session_role: session})
    return prepared.evaluate().metrics[metric]


def search(target: QuantizeTarget, settings: QuantizeSettings, cache_dir: Path, gate: float,
           max_skipped: int, log: Callable[[str], None]) -> tuple[float, SearchResult[QuantizedModel]]:
    reference = task_metric(target, target.files, Precision.FP32)
    log(f"FP32 reference {search_metric(target)} = {reference:.4f}")
    result = sensitive_ops_search(
        target.files, target.calibration(settings), settings,
        evaluate=lambda files: task_metric(target, files, Precision.INT8),
        reference_metric=reference, gate=gate, max_skipped=max_skipped, cache_root=cache_dir,
        model_name=target.entry.name, log=log,
    )
    return reference, result
