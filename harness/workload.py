"""The workload contract.

A workload owns data, models and scoring for one family of tasks (OCR, ERNIE). For one cell it
hands the worker two things: an accuracy pass (the full pipeline over the evaluation set, scored) and
a list of timed queries (already pre-processed inputs, so the timed loop does no I/O or pre-processing
it does not report). It never times anything itself except the stages it reports as stages.

It also declares what the harness and the reports must know without naming it (:class:`TaskInfo`):
each task's metrics and which direction is better, the headline metrics parity gates, how two runs'
per-sample outputs are compared, which parameters identify a cell across runs, and the input shape
ranges a compiled engine (TensorRT) needs. Built-in workloads are listed in :data:`BUILTIN_WORKLOADS`;
third parties register theirs in the ``portbench.workloads`` entry-point group.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from portbench.backends.base import ModelFiles, Session
from portbench.errors import PortbenchError, UnknownNameError
from portbench.plugins import Registry

if TYPE_CHECKING:
    from portbench.harness.models import ModelEntry
    from portbench.harness.onnx_quantize import OnnxQuantizeSettings
    from portbench.harness.quantize import CalibrationSet, QuantizeSettings

JSONValue = Any  # what json.dumps accepts

# Cell parameter: the model roles an INT8 cell quantizes (``Workload.int8_roles``).
INT8_ROLES_PARAM = "int8_roles"


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
class ShapeProbe:
    """One distinct input shape a task meets in its data, with a call that runs exactly that shape
    (inputs already pre-processed). ``kind`` says what varies (``det page``, ``rec width``,
    ``seq len``) and groups the report; ``label`` names the shape for a reader."""

    kind: str
    label: str
    shape: tuple[int, ...]
    run: Callable[[], object]
    samples: int = 1


def distinct_by_shape(
    items: Sequence[Any], shape_of: Callable[[Any], tuple[int, ...]], limit: int
) -> list[Any]:
    """The first item of each distinct shape, in data order, at most ``limit`` of them."""
    seen: set[tuple[int, ...]] = set()
    kept: list[Any] = []
    for item in items:
        shape = shape_of(item)
        if shape not in seen:
            seen.add(shape)
            kept.append(item)
            if len(kept) == limit:
                break
    return kept


def default_cache_dir() -> Path:
    """Generated data and built models; ``PORTBENCH_CACHE`` or the XDG cache directory."""
    if explicit := os.environ.get("PORTBENCH_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "portbench"


@dataclass(frozen=True)
class TaskSpec:
    """What a cell asks of a workload: the task (model role), its dataset and parameters, and where
    the user's own files are: ``dataset_dir`` replaces the named dataset, ``model_dirs`` (role ->
    directory) the registered models; ``cache_dir`` holds what the workload generates or builds."""

    workload: str
    task: str  # e.g. "det", "rec", "system" for OCR; "cls" for ERNIE
    model: str  # registry name of the model (or of the pipeline's first model)
    dataset: str  # dataset name as the workload understands it
    params: Mapping[str, JSONValue] = field(default_factory=dict)
    cache_dir: Path = field(default_factory=default_cache_dir)
    dataset_dir: Path | None = None
    model_dirs: Mapping[str, Path] = field(default_factory=dict)


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


# --- what a workload declares about its tasks ------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One number a task reports. ``higher_is_better`` decides how a parity gate reads a ratio."""

    name: str
    higher_is_better: bool = True
    description: str = ""


@dataclass(frozen=True)
class SampleDiff:
    """How one sample's output differs from the reference's: ``score`` 0 when identical, larger is
    more different (it ranks the worst samples); ``detail`` holds a one-line ``difference`` and numbers."""

    score: float
    detail: Mapping[str, Any]


@dataclass(frozen=True)
class OutputComparison:
    """Agreement numbers over all compared samples, and one :class:`SampleDiff` per sample (in order)."""

    metrics: Mapping[str, float]
    diffs: Sequence[SampleDiff]


class OutputsMalformed(PortbenchError):
    """A stored output does not have the shape its workload writes (corrupt or foreign file)."""

    def __init__(self, sample_id: str, what: str) -> None:
        super().__init__(f"output of sample {sample_id!r} is not {what}")


# (sample id, reference output, cell output) for every sample both sides hold.
OutputComparer = Callable[[Sequence[tuple[str, Any, Any]]], OutputComparison]


@dataclass(frozen=True)
class TaskInfo:
    """Everything the harness and the reports need to know about one task of a workload.

    ``metrics``: every task metric, in the order readers compare them. ``headline``: the metric names
    that parity gates (first: the one tables show when there is room for one). ``output_metrics``: the
    numbers ``compare_outputs`` produces (the higher-is-better ones may get a floor in a suite's
    parity gates). ``compare_outputs``: None where outputs cannot be compared (speed-only tasks).
    """

    name: str
    description: str
    metrics: tuple[Metric, ...] = ()
    headline: tuple[str, ...] = ()
    output_metrics: tuple[Metric, ...] = ()
    compare_outputs: OutputComparer | None = None
    # What one-line summaries show (the terminal table); the headline when empty.
    shown: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        known = {m.name for m in self.metrics}
        unknown = [name for name in (*self.headline, *self.shown) if name not in known]
        if unknown:
            raise ValueError(f"task {self.name}: metric {unknown[0]!r} is not among its metrics")

    def to_dict(self) -> dict[str, Any]:
        """What results store of the task, so reports need no workload installed to lay it out."""

        def listed(metrics: Sequence[Metric]) -> list[dict[str, Any]]:
            return [{"name": m.name, "higher_is_better": m.higher_is_better, "description": m.description}
                    for m in metrics]

        return {
            "description": self.description,
            "metrics": listed(self.metrics),
            "headline": list(self.headline),
            "shown": list(self.shown or self.headline),
            "output_metrics": listed(self.output_metrics),
        }

    def metric(self, name: str) -> Metric | None:
        return next((m for m in (*self.metrics, *self.output_metrics) if m.name == name), None)


# (min, opt, max) per input name: what a compiled engine must cover.
ShapeRanges = Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]]


def batch_sizes_of(spec: TaskSpec, default: int) -> tuple[int, int]:
    """(the cell's own batch size, the largest it will run): an offline sweep (``batch_sizes``)
    runs bigger batches than the single-stream ``batch_size``. Malformed values count as absent here;
    the scenario itself rejects them with a clear error."""
    own = spec.params.get("batch_size", default)
    own = own if isinstance(own, int) and not isinstance(own, bool) and own > 0 else default
    sweep = spec.params.get("batch_sizes", ())
    listed = sweep if isinstance(sweep, (list, tuple)) else [sweep]
    sizes = [b for b in listed if isinstance(b, int) and not isinstance(b, bool) and b > 0]
    return own, max([own, *sizes])


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
    # The server scenario's default tail-latency bound for this task (a cell's
    # ``params.latency_bound_ms`` overrides it); None: a server cell must set one.
    server_latency_bound_ms: ClassVar[float | None] = None

    def unsupported(self, scenario: str) -> ScenarioUnsupported:
        name = self.task_label or type(self).__name__
        return ScenarioUnsupported(f"{name} does not support the {scenario} scenario")

    def queries_for_batch(self, batch_size: int) -> Sequence[Query]:
        """Offline sweep: timed queries of exactly ``batch_size`` samples each, pre-processed."""
        raise self.unsupported("offline")

    def stream_queries(self, session_clones: Mapping[str, Session]) -> Sequence[Query]:
        """Multi-stream: one stream's timed queries, bound to that stream's cloned sessions (by role)."""
        raise self.unsupported("multi-stream")

    def staged_feeds(self) -> Sequence[tuple[Session, Sequence[np.ndarray], int]]:
        """(session, pre-processed feed, samples) for a few inputs: what ``measure_stages`` times
        for the host-to-device / compute / device-to-host split."""
        raise self.unsupported("staged-timing")

    def audit_outputs(self, query_index: int, returned: object) -> Mapping[str, JSONValue]:
        """Output audit: what timed query ``query_index`` (of :meth:`queries`, or of any
        :meth:`stream_queries` list, which hold the same inputs in the same order) returned, in the
        accuracy pass's per-sample form (sample id -> output), for comparison with that pass."""
        raise self.unsupported("output-audit")

    def shape_probes(self) -> Sequence[ShapeProbe]:
        """One probe per distinct input shape of the task's real data, in data order: the harness
        times each one's first call (a device that compiles per shape pays it there) against its
        steady state, before anything else runs on the sessions. None: the task declares no shapes
        (its report says so)."""
        return ()


SessionFactory = Callable[[ModelFiles], Session]


class Workload(ABC):
    """One family of tasks, registered by name (:data:`BUILTIN_WORKLOADS`, ``portbench.workloads``)."""

    name: ClassVar[str]
    description: ClassVar[str]

    # Parameters that describe how the timed inputs were arranged, not what was computed: two cells
    # that differ only in these share a parity reference.
    descriptive_params: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def tasks(self) -> Mapping[str, TaskInfo]:
        """Every task this workload can run, by name, with its scoring declarations."""

    def task_info(self, task: str) -> TaskInfo:
        tasks = self.tasks()
        if task not in tasks:
            raise UnknownNameError(f"{self.name} task", task, list(tasks))
        return tasks[task]

    def registered_models(self) -> Sequence[ModelEntry]:
        """Models this workload knows by name (``portbench models``, ``portbench quantize``)."""
        return ()

    def buildable_models(self) -> Sequence[str]:
        """Models this workload trains or exports itself (``portbench models build NAME``)."""
        return ()

    def build_model(self, name: str, cache_dir: Path, log: Callable[[str], None]) -> None:
        """Build ``name`` (one of :meth:`buildable_models`) into the cache, reporting through ``log``."""
        raise UnknownNameError("buildable model", name, list(self.buildable_models()))

    def shape_ranges(self, spec: TaskSpec, role: str) -> ShapeRanges:
        """Input shape ranges the model playing ``role`` sees in this cell (TensorRT dynamic shapes);
        empty where the workload cannot bound them."""
        return {}

    @abstractmethod
    def models_for(self, spec: TaskSpec) -> Mapping[str, ModelFiles]:
        """Verified model files by role (e.g. {"det": ..., "rec": ...}); raises ModelError."""

    def model_name(self, spec: TaskSpec, role: str) -> str:
        """Registry name of the model playing ``role`` (recorded with its hashes)."""
        return spec.model

    @abstractmethod
    def roles(self, spec: TaskSpec) -> Sequence[str]:
        """The model roles the task of ``spec`` uses (keys of :meth:`models_for`), without building
        anything: the planner names a cell's model from them."""

    def int8_roles(self, spec: TaskSpec) -> tuple[str, ...]:
        """The roles an INT8 cell of ``spec`` runs in INT8 (the cell parameter ``int8_roles``; every
        role of :meth:`roles` by default); the others run their FP32 model, so a pipeline can keep
        its most sensitive model in FP32 (OCR system: det FP32, rec INT8)."""
        roles = tuple(self.roles(spec))
        chosen = spec.params.get(INT8_ROLES_PARAM)
        if chosen is None:
            return roles
        if (
            not isinstance(chosen, (list, tuple))
            or not chosen
            or not all(isinstance(role, str) for role in chosen)
            or len(set(chosen)) != len(chosen)
        ):
            raise PortbenchError(
                f"parameter {INT8_ROLES_PARAM} must be a non-empty list of distinct role names "
                f"({', '.join(roles)}), got {chosen!r}"
            )
        unknown = [role for role in chosen if role not in roles]
        if unknown:
            raise UnknownNameError(f"{self.name} {spec.task} role (in {INT8_ROLES_PARAM})", unknown[0], roles)
        # The task's own order, so two spellings of one choice name the same INT8 models.
        return tuple(role for role in roles if role in chosen)

    def model_label(self, spec: TaskSpec) -> str:
        """The model a cell of ``spec`` runs, as cell ids, results and reports name it: the registered
        name; ``user:DIR`` when the user's own directory replaced the task's only model; the registered
        name with ``+ROLE=user:DIR`` per replaced role otherwise (one OCR model of the pipeline)."""
        roles = list(self.roles(spec))
        replaced = {role: spec.model_dirs[role] for role in roles if role in spec.model_dirs}
        if not replaced:
            return spec.model
        if len(roles) == 1:
            return f"user:{replaced[roles[0]].name}"
        return spec.model + "".join(f"+{role}=user:{path.name}" for role, path in replaced.items())

    def supplied_files(self, spec: TaskSpec, role: str) -> Sequence[Path]:
        """The files the user handed in for ``role`` (``--model-dir``), hashed as given into the
        evidence; none for registered models."""
        directory = spec.model_dirs.get(role)
        if directory is None or role not in self.roles(spec) or not directory.is_dir():
            return ()
        return sorted(p for p in directory.iterdir() if p.is_file())

    def data_files(self, spec: TaskSpec) -> Sequence[Path]:
        """The files the evaluation data of ``spec`` is read from (images, labels, corpus, split
        lists), hashed into results after :meth:`prepare` so compliance evidence can re-check them;
        none for synthetic inputs."""
        return ()

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

    def onnx_quantize_settings(self, spec: TaskSpec) -> OnnxQuantizeSettings:
        """How INT8 cells on an ONNX runtime quantize (QDQ): the same calibration samples and batch
        size as :meth:`quantize_settings`, MinMax per-channel unless the cell's ``onnx_quant_method``
        says otherwise; ``onnx_quant_exclude`` lists ONNX node names kept in FP32."""
        from portbench.harness.onnx_quantize import METHODS, OnnxQuantizeSettings

        paddle = self.quantize_settings(spec)
        method = spec.params.get("onnx_quant_method", "MinMax")
        if method not in METHODS:
            raise UnknownNameError("ONNX calibration method (onnx_quant_method)", str(method), METHODS)
        exclude = spec.params.get("onnx_quant_exclude", [])
        if not isinstance(exclude, list) or not all(isinstance(name, str) for name in exclude):
            raise PortbenchError(f"onnx_quant_exclude must be a list of ONNX node names, got {exclude!r}")
        return OnnxQuantizeSettings(
            method=method,
            calibration_samples=paddle.calibration_samples,
            batch_size=paddle.batch_size,
            nodes_to_exclude=tuple(exclude),
        )

    def calibration_set(self, spec: TaskSpec, role: str, samples: int, batch_size: int) -> CalibrationSet:
        """Calibration inputs for quantizing the model playing ``role``: from the workload's
        calibration split only, never from the evaluation data."""
        raise QuantizationUnsupported(f"the {self.name} workload cannot quantize its {role} model yet")

    def prepare_validation(self, spec: TaskSpec, sessions: Mapping[str, Session]) -> PreparedTask:
        """The task bound to data apart from the evaluation split that parity scores (for the built-in
        workloads, the calibration split): what the INT8 search scores its candidates on."""
        raise QuantizationUnsupported(
            f"the {self.name} workload has no validation split for the INT8 search; it must not "
            "choose FP32 ops on the evaluation split parity scores"
        )

    @abstractmethod
    def prepare(
        self, spec: TaskSpec, sessions: Mapping[str, Session]
    ) -> PreparedTask:
        """Load data and bind it to ready sessions (one per model role)."""


# --- registry ---------------------------------------------------------------------------------------

BUILTIN_WORKLOADS: Mapping[str, str] = {
    "ocr": "portbench.suites.ocr.workload:OcrWorkload",
    "ernie": "portbench.suites.ernie.workload:ErnieWorkload",
}
ENTRY_POINT_GROUP = "portbench.workloads"
WORKLOADS = Registry[Workload]("workload", Workload, BUILTIN_WORKLOADS, ENTRY_POINT_GROUP)


workload_names = WORKLOADS.names
# Imported only when created: listing suites must not load Paddle.
create_workload = WORKLOADS.create


def registered_models() -> dict[str, tuple[ModelEntry, Workload]]:
    """Every model an installed workload knows by name, with that workload (first one wins)."""
    found: dict[str, tuple[ModelEntry, Workload]] = {}
    for name in workload_names():
        workload = create_workload(name)
        for entry in workload.registered_models():
            found.setdefault(entry.name, (entry, workload))
    return found


def buildable_models() -> dict[str, Workload]:
    """Every model an installed workload can build itself, with that workload."""
    found: dict[str, Workload] = {}
    for name in workload_names():
        workload = create_workload(name)
        for model in workload.buildable_models():
            found.setdefault(model, workload)
    return found
