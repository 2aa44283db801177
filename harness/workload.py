"""The workload contract.

A workload owns data, models and scoring for one family of tasks (OCR, ERNIE). For one cell it
hands the worker two things: an accuracy pass (the full pipeline over the evaluation set, scored) and
a list of timed queries (already pre-processed inputs, so the timed loop does no I/O or pre-processing
it does not report). It never times anything itself except the stages it reports as stages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from portbench.backends.base import InferenceSession, ModelFiles
from portbench.errors import PortbenchError

if TYPE_CHECKING:
    from portbench.harness.quantize import CalibrationSet, QuantizeSettings

JSONValue = Any  # what json.dumps accepts


class QuantizationUnsupported(PortbenchError):
    """This workload/model cannot be quantized: its INT8 cells are skipped with this reason."""


class ScenarioUnsupported(PortbenchError):
    """A task cannot run a scenario (e.g. offline batching of pages whose sizes differ)."""


@dataclass(frozen=True)
class Query:
    """One timed unit of work: ``run()`` processes ``samples`` samples (a batch)."""

    run: Callable[[], object]
    samples: int = 1


@dataclass(frozen=True)
class TaskSpec:
    """What a cell asks of a workload: the task (model role), its dataset and parameters."""

    workload: str
    task: str  # e.g. "det", "rec", "system" for OCR; "cls" for ERNIE
    model: str  # registry name of the model (or of the pipeline's first model)
    dataset: str  # dataset name as the workload understands it
    params: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass
class AccuracyResult:
    """Scores of one accuracy pass, plus per-sample outputs kept for parity checks."""

    metrics: dict[str, float]
    # metric name -> subset name -> value, e.g. {"hmean": {"clean": 0.97, "degraded": 0.88}}
    metrics_by_subset: dict[str, dict[str, float]] = field(default_factory=dict)
    # sample id -> what the model produced (boxes, texts, logits), JSON-serialisable
    outputs: dict[str, JSONValue] = field(default_factory=dict)
    # stage name -> seconds per sample (pre-process, inference, post-process), raw
    stage_samples_s: dict[str, list[float]] = field(default_factory=dict)
    samples: int = 0


class PreparedTask(ABC):
    """A task bound to its data and to predictors on one backend."""

    @abstractmethod
    def evaluate(self) -> AccuracyResult:
        """Run the full pipeline over the evaluation set and score it."""

    @abstractmethod
    def queries(self) -> Sequence[Query]:
        """Timed units for performance mode, inputs already pre-processed."""

    def query_description(self) -> Mapping[str, JSONValue]:
        """Shapes and batch sizes of the queries, recorded in the run manifest."""
        return {}

    # Optional scenario hooks: a task that does not override one cannot run that scenario.
    task_label: ClassVar[str] = ""

    def unsupported(self, scenario: str) -> ScenarioUnsupported:
        name = self.task_label or type(self).__name__
        return ScenarioUnsupported(f"{name} does not support the {scenario} scenario")

    def queries_for_batch(self, batch_size: int) -> Sequence[Query]:
        """Offline sweep: timed queries of exactly ``batch_size`` samples each, pre-processed."""
        raise self.unsupported("offline")

    def stream_queries(self, session_clones: Mapping[str, InferenceSession]) -> Sequence[Query]:
        """Multi-stream: one stream's timed queries, bound to that stream's cloned sessions (by role)."""
        raise self.unsupported("multi-stream")

    def staged_feeds(self) -> Sequence[tuple[InferenceSession, Sequence[np.ndarray], int]]:
        """(session, pre-processed feed, samples) for a few inputs: what ``measure_stages`` times
        for the host-to-device / compute / device-to-host split."""
        raise self.unsupported("staged-timing")


SessionFactory = Callable[[ModelFiles], InferenceSession]


class Workload(ABC):
    """One family of tasks. Registered by name in ``portbench.suites.registry``."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def tasks(self) -> Sequence[str]:
        """Task names this workload can run."""

    @abstractmethod
    def models_for(self, spec: TaskSpec) -> Mapping[str, ModelFiles]:
        """Verified model files by role (e.g. {"det": ..., "rec": ...}); raises ModelError."""

    def model_name(self, spec: TaskSpec, role: str) -> str:
        """Registry name of the model playing ``role`` (recorded with its hashes)."""
        return spec.model

    def model_source(self, spec: TaskSpec, role: str) -> str | None:
        """Where the model playing ``role`` came from, for compliance evidence."""
        return None

    def synthetic_weights(self, spec: TaskSpec) -> bool:
        """True where the model has made-up weights: speed only, never task accuracy."""
        return False

    def quantization_source(self, spec: TaskSpec, role: str, files: ModelFiles) -> ModelFiles:
        """The FP32 model that post-training quantization starts from. Static PTQ reads only the
        legacy program format: a workload whose models are PIR exports re-exports them here."""
        return files

    def quantize_settings(self, spec: TaskSpec) -> QuantizeSettings:
        """How INT8 cells of this workload are quantized when built on the fly."""
        from portbench.harness.quantize import QuantizeSettings

        return QuantizeSettings()

    def calibration_set(self, spec: TaskSpec, role: str, samples: int, batch_size: int) -> CalibrationSet:
        """Calibration inputs for quantizing the model playing ``role``: from the workload's
        calibration split only, never from the evaluation data."""
        raise QuantizationUnsupported(f"the {self.name} workload cannot quantize its {role} model yet")

    @abstractmethod
    def prepare(
        self, spec: TaskSpec, sessions: Mapping[str, InferenceSession]
    ) -> PreparedTask:
        """Load data and bind it to ready sessions (one per model role)."""
