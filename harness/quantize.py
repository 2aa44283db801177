"""Post-training INT8 quantization of Paddle inference models, cached with provenance.

Paddle's static ``PostTrainingQuantization`` needs the legacy program format, the legacy IR
(``FLAGS_enable_pir_api=0`` before paddle is imported) and ``paddle.enable_static()``. Neither may leak
into a worker that runs Paddle Inference, so every step that touches the static program runs in a
child process (``python -m portbench.harness.quantize REQUEST.json``); calibration feeds travel in an
``.npz`` file beside the request, and the child answers in a JSON file.

Quantized models live in ``<cache_root>/quantized/<label>-<key[:16]>/`` beside ``quantization.json``
(what they were built from, how, and the sha256 of every produced file). A directory is reused only
when every file still matches its recorded digest; otherwise it is rebuilt and the reason is reported.

Ops are named by their first output variable (``conv2d_185.tmp_0``), which is stable for a given
export; :func:`quantizable_ops` lists them. ``skip_ops`` keeps those ops in FP32 by marking them the
way Paddle's quantization passes recognise (``op_namescope`` containing ``skip_quant``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from portbench.backends.base import ModelFiles
from portbench.errors import PortbenchError, UnknownNameError
from portbench.harness.artifacts import ArtifactStore, CachedBuild, canonical_sha256
from portbench.harness.models import hash_model_files
from portbench.harness.platform_info import describe_paddle

ALGORITHMS = ("avg", "hist", "KL", "mse")
DEFAULT_OP_TYPES = ("conv2d", "depthwise_conv2d", "mul", "matmul", "matmul_v2")
PROVENANCE_FILE = "quantization.json"
QUANTIZED_DIR = "quantized"
PROVENANCE_FORMAT = 1
MODEL_FILENAME = "inference.pdmodel"
PARAMS_FILENAME = "inference.pdiparams"
# Sample ids are listed verbatim in the provenance up to this many; beyond it only their hash and count.
MAX_LISTED_IDS = 512
DEFAULT_TIMEOUT_S = 3600.0
SKIP_QUANT_NAMESCOPE = "/skip_quant"
PIR_FLAG = "FLAGS_enable_pir_api"
_CHILD_ERROR_EXIT = 3
_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]+")

Model = TypeVar("Model")  # what a quantization route builds: QuantizedModel, or the ONNX route's


class QuantizationError(PortbenchError):
    """Quantization cannot proceed: unsupported model, bad settings, or the PTQ process failed."""


class CalibrationError(QuantizationError):
    """The calibration set is empty, too small, or does not fit the model."""


@dataclass(frozen=True)
class QuantizeSettings:
    """How to quantize. ``calibration_samples`` caps the samples used (whole batches are taken)."""

    algo: str = "avg"
    calibration_samples: int = 32
    batch_size: int = 4
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    skip_ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise UnknownNameError("quantization algorithm", self.algo, ALGORITHMS)
        if self.calibration_samples < 1:
            raise QuantizationError(f"calibration_samples must be at least 1, got {self.calibration_samples}")
        if self.batch_size < 1:
            raise QuantizationError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.op_types:
            raise QuantizationError("op_types is empty; name at least one op type to quantize, e.g. conv2d")
        blank = [name for name in (*self.op_types, *self.skip_ops) if not name.strip()]
        if blank:
            raise QuantizationError("op_types and skip_ops must not contain empty names")


@dataclass(frozen=True)
class CalibrationSet:
    """Batched calibration feeds keyed by the model's input names.

    ``sample_ids`` name the rows of ``feeds`` in order (batch after batch), so the ids actually used
    are known when only the first batches are taken. ``source`` names the data (e.g. a dataset name).
    """

    sample_ids: tuple[str, ...]
    feeds: Sequence[Mapping[str, np.ndarray]]
    source: str = ""

    def batch_rows(self) -> list[int]:
        rows = []
        for index, feed in enumerate(self.feeds):
            if not feed:
                raise CalibrationError(f"calibration batch {index} has no inputs")
            sizes = {int(np.asarray(array).shape[0]) if np.ndim(array) else 1 for array in feed.values()}
            if len(sizes) != 1:
                raise CalibrationError(
                    f"calibration batch {index} has inputs with different batch sizes {sizes}"
                )
            rows.append(sizes.pop())
        return rows


@dataclass(frozen=True)
class CalibrationBatches:
    """The leading batches of a :class:`CalibrationSet` that one quantization calibrates on."""

    feeds: list[Mapping[str, np.ndarray]]
    sample_ids: tuple[str, ...]
    source: str
    feeds_sha256: str

    def record(self) -> dict[str, Any]:
        """The provenance's ``calibration`` entry: which samples, identified by their digests."""
        return {
            "source": self.source,
            "sample_count": len(self.sample_ids),
            "batches": len(self.feeds),
            "sample_ids_sha256": ids_digest(self.sample_ids),
            "sample_ids": list(self.sample_ids) if len(self.sample_ids) <= MAX_LISTED_IDS else None,
            "feeds_sha256": self.feeds_sha256,
        }


@dataclass(frozen=True)
class QuantizedModel(CachedBuild):
    """An INT8 model in the cache. ``rebuilt_because`` says why a cached copy was replaced."""

    files: ModelFiles


@dataclass(frozen=True)
class QuantizableOp:
    name: str  # the op's first output variable
    op_type: str


@dataclass(frozen=True)
class SearchTrial:
    kept_fp32: tuple[str, ...]
    metric: float
    passed: bool


@dataclass(frozen=True)
class SearchResult(Generic[Model]):
    """Outcome of an FP32-fallback search (:func:`sensitive_ops_search`, the ONNX route's
    ``exclusion_search``): ``kept_fp32`` are every op left in FP32 at the end, ``model`` the last
    one built, ``sensitivity`` the ranking, if it had to be computed."""

    kept_fp32: list[str]
    metric: float
    passed: bool
    trials: list[SearchTrial]
    model: Model
    sensitivity: list[tuple[str, float]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# Parent side


def paddle_version() -> str:
    described = describe_paddle()
    return f"{described.get('distribution') or 'paddle'}=={described.get('version') or 'unknown'}"


def _require_legacy(source: ModelFiles) -> None:
    if source.is_pir:
        raise QuantizationError(
            f"{source.model_file} is a PIR program (inference.json); Paddle's static post-training "
            "quantization reads only the legacy inference.pdmodel format. Export the model with "
            "FLAGS_enable_pir_api=0 (paddle.jit.save) or supply a legacy .pdmodel export"
        )
    for path in (source.model_file, source.params_file):
        if not path.is_file():
            raise QuantizationError(f"model file {path} does not exist")


def selected_batches(
    calibration: CalibrationSet, samples: int, batch_size: int
) -> tuple[int, tuple[str, ...]]:
    """How many leading batches cover ``samples`` rows and the ids of their rows; raises when the set
    holds less than one batch of ``batch_size``."""
    rows = calibration.batch_rows()
    total = sum(rows)
    if total != len(calibration.sample_ids):
        raise CalibrationError(
            f"calibration set names {len(calibration.sample_ids)} samples but its feeds hold {total} rows"
        )
    if not rows or total < batch_size:
        raise CalibrationError(
            f"calibration set has {total} sample(s), fewer than one batch of {batch_size}; "
            "use a larger calibration split or a smaller batch size"
        )
    used_rows = 0
    batches = 0
    for count in rows:
        if used_rows >= samples:
            break
        used_rows += count
        batches += 1
    return batches, calibration.sample_ids[:used_rows]


def _selected_batches(calibration: CalibrationSet, settings: QuantizeSettings) -> tuple[int, tuple[str, ...]]:
    return selected_batches(calibration, settings.calibration_samples, settings.batch_size)


def leading_batches(calibration: CalibrationSet, samples: int, batch_size: int) -> CalibrationBatches:
    """The batches :func:`selected_batches` picks, with their ids and the digest of their feeds."""
    batches, used_ids = selected_batches(calibration, samples, batch_size)
    feeds = list(calibration.feeds[:batches])
    return CalibrationBatches(feeds, used_ids, calibration.source, feeds_digest(feeds))


def quantization_store(root: Path, required: tuple[str, ...]) -> ArtifactStore:
    """The cache of one quantization route: entries under ``root``, each described by its
    ``quantization.json`` (provenance and the sha256 of every file, under ``files``)."""
    return ArtifactStore(
        root, manifest=PROVENANCE_FILE, files_field="files", required=required, error=QuantizationError
    )


def feeds_digest(feeds: Sequence[Mapping[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()


def ids_digest(sample_ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sample_ids).encode()).hexdigest()


def _cache_identity(
    source_digests: Mapping[str, str],
    settings: QuantizeSettings,
    sample_ids: Sequence[str],
    feeds_digest: str,
    version: str,
) -> dict[str, Any]:
    return {
        "format": PROVENANCE_FORMAT,
        "source_sha256": dict(sorted(source_digests.items())),
        "algo": settings.algo,
        "op_types": sorted(settings.op_types),
        "skip_ops": sorted(settings.skip_ops),
        "calibration_ids_sha256": ids_digest(sample_ids),
        "calibration_feeds_sha256": feeds_digest,
        "paddle": version,
    }


def cache_key_for(
    source_digests: Mapping[str, str],
    settings: QuantizeSettings,
    sample_ids: Sequence[str],
    feeds_digest: str,
    version: str,
) -> str:
    """sha256 over everything that shapes the quantized artifact (not batch size or sample cap as such:
    those act through the ids they select)."""
    return canonical_sha256(_cache_identity(source_digests, settings, sample_ids, feeds_digest, version))


def _label(model_name: str | None, source_digests: Mapping[str, str]) -> str:
    if model_name:
        cleaned = _LABEL_CHARS.sub("-", model_name).strip("-.")
        if cleaned:
            return cleaned[:48]
    joined = "".join(source_digests[name] for name in sorted(source_digests))
    return "model-" + hashlib.sha256(joined.encode()).hexdigest()[:12]


def quantize_model(
    source: ModelFiles,
    calibration: CalibrationSet,
    settings: QuantizeSettings,
    cache_root: Path,
    model_name: str | None = None,
    log: Callable[[str], None] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> QuantizedModel:
    """The INT8 model for ``source`` calibrated on ``calibration``, from the cache or built now.

    ``model_name`` labels the cache directory (default: a hash of the source files). ``log`` receives
    one-line notes (a corrupted cached copy being rebuilt).
    """
    _require_legacy(source)
    used = leading_batches(calibration, settings.calibration_samples, settings.batch_size)
    source_digests = hash_model_files(source)
    version = paddle_version()
    key = cache_key_for(source_digests, settings, used.sample_ids, used.feeds_sha256, version)
    store = quantization_store(cache_root / QUANTIZED_DIR, (MODEL_FILENAME, PARAMS_FILENAME))
    name = f"{_label(model_name, source_digests)}-{key[:16]}"

    def build(staging: Path) -> dict[str, Any]:
        started = time.time()
        answer = _run_child(
            "quantize",
            source,
            {
                "algo": settings.algo,
                "op_types": list(settings.op_types),
                "skip_ops": list(settings.skip_ops),
                "batch_size": settings.batch_size,
                "out_dir": str(staging),
            },
            used.feeds,
            timeout_s,
        )
        return {
            "format": PROVENANCE_FORMAT,
            "cache_key": key,
            "source": {
                "name": model_name,
                "model_file": str(source.model_file),
                "params_file": str(source.params_file),
                "sha256": source_digests,
            },
            "algo": settings.algo,
            "settings": asdict(settings),
            "calibration": used.record(),
            "paddle": version,
            "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.time() - started, 2),
            "quantized_ops": answer["quantized_ops"],
            "quantized_op_count": len(answer["quantized_ops"]),
            "kept_fp32_ops": answer["skipped_ops"],
        }

    def reason(problem: str) -> str:
        return f"cached quantized model {name} rebuilt: {problem}"

    artifact = store.build(name, key, build, on_rebuild=(lambda p: log(reason(p))) if log else None)
    return QuantizedModel(
        _artifact_files(artifact.directory),
        cache_key=key,
        provenance=dict(artifact.manifest),
        from_cache=not artifact.built,
        rebuilt_because=reason(artifact.rebuilt_because) if artifact.rebuilt_because else None,
    )


def _artifact_files(directory: Path) -> ModelFiles:
    return ModelFiles(directory / MODEL_FILENAME, directory / PARAMS_FILENAME)


def export_legacy_program(
    factory: str,
    arguments: Mapping[str, Any],
    state_file: Path,
    inputs: Sequence[tuple[str, str, Sequence[int]]],
    out_dir: Path,
    timeout_s: float = 600.0,
) -> ModelFiles:
    """Export a ``paddle.nn`` model to the legacy ``inference.pdmodel`` format that static PTQ reads.

    Paddle 3.x's ``jit.save`` with ``FLAGS_enable_pir_api=0`` fails on Transformers because
    ``paddle.matmul`` is bound to a PIR/dygraph-only kernel. In a child process this builds the model
    as a legacy static program with ``paddle.matmul`` emitting the ``matmul_v2`` op, copies the weights
    of ``state_file`` (a ``paddle.save``d state dict) in by structured name, and saves it.

    ``factory`` is ``"module:callable"``; ``callable(**arguments)`` must return the ``nn.Layer`` built
    in static mode (no dygraph-only weight initialisation). ``inputs`` are (name, dtype, shape) with
    -1 for dynamic axes, in ``forward`` argument order.
    """
    if ":" not in factory:
        raise QuantizationError(f"factory {factory!r} must look like 'package.module:callable'")
    if not state_file.is_file():
        raise QuantizationError(f"state dict {state_file} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    placeholder = ModelFiles(state_file, state_file)  # the child reads no model for this command
    _run_child(
        "legacy-export",
        placeholder,
        {
            "factory": factory,
            "arguments": dict(arguments),
            "state_file": str(state_file),
            "inputs": [[name, dtype, list(shape)] for name, dtype, shape in inputs],
            "out_dir": str(out_dir),
        },
        [],
        timeout_s,
    )
    return ModelFiles(out_dir / MODEL_FILENAME, out_dir / PARAMS_FILENAME)


def quantizable_ops(
    source: ModelFiles, op_types: Sequence[str] = DEFAULT_OP_TYPES, timeout_s: float = 600.0
) -> list[QuantizableOp]:
    """Ops of ``op_types`` in the model's program, in program order, named by their first output."""
    _require_legacy(source)
    answer = _run_child("list", source, {"op_types": list(op_types)}, [], timeout_s)
    return [QuantizableOp(name, op_type) for name, op_type in answer["ops"]]


def op_sensitivity(
    source: ModelFiles,
    calibration: CalibrationSet,
    settings: QuantizeSettings,
    probe_batches: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[tuple[str, float]]:
    """Quantizable ops ranked by the error each adds under INT8 simulation, most sensitive first.

    The model is calibrated with ``settings`` and its fake-quantized program run beside the FP32
    program on the first ``probe_batches`` calibration batches. An op's score is the relative squared
    error of its output minus the largest relative error among its activation inputs: what this op
    adds, not what it inherited. No labels are needed.
    """
    _require_legacy(source)
    batches, _ = _selected_batches(calibration, settings)
    feeds = list(calibration.feeds[:batches])
    answer = _run_child(
        "sensitivity",
        source,
        {
            "algo": settings.algo,
            "op_types": list(settings.op_types),
            "skip_ops": list(settings.skip_ops),
            "batch_size": settings.batch_size,
            "probe_batches": max(1, min(probe_batches, len(feeds))),
        },
        feeds,
        timeout_s,
    )
    ranked = [(str(name), float(score)) for name, score in answer["sensitivity"]]
    return sorted(ranked, key=lambda item: item[1], reverse=True)


def sensitive_ops_search(
    source: ModelFiles,
    calibration: CalibrationSet,
    settings: QuantizeSettings,
    evaluate: Callable[[ModelFiles], float],
    reference_metric: float,
    gate: float,
    max_skipped: int,
    cache_root: Path,
    model_name: str | None = None,
    log: Callable[[str], None] | None = None,
) -> SearchResult[QuantizedModel]:
    """Quantize everything; while ``evaluate(int8) < gate * reference_metric``, keep the next most
    sensitive op (see :func:`op_sensitivity`) in FP32 and rebuild, up to ``max_skipped`` extra ops.

    ``evaluate`` scores a model (higher is better), e.g. char accuracy of an INT8 session built on it.
    """
    if not 0.0 < gate <= 1.0:
        raise QuantizationError(f"gate must be in (0, 1], got {gate}")
    if max_skipped < 0:
        raise QuantizationError(f"max_skipped must not be negative, got {max_skipped}")
    threshold = gate * reference_metric

    def build(skipped: tuple[str, ...]) -> QuantizedModel:
        skipping = replace(settings, skip_ops=skipped)
        return quantize_model(source, calibration, skipping, cache_root, model_name=model_name, log=log)

    def note(skipped: tuple[str, ...], metric: float) -> None:
        if log is not None:
            log(f"INT8 with {len(skipped)} op(s) in FP32: metric {metric:.4f} (gate {threshold:.4f})")

    return search_kept_fp32(
        build,
        lambda model: evaluate(model.files),
        lambda: op_sensitivity(source, calibration, settings),
        tuple(settings.skip_ops),
        threshold,
        max_skipped,
        note,
    )


def search_kept_fp32(
    build: Callable[[tuple[str, ...]], Model],
    evaluate: Callable[[Model], float],
    rank: Callable[[], Sequence[tuple[str, float]]],
    initial: tuple[str, ...],
    threshold: float,
    max_kept: int,
    note: Callable[[tuple[str, ...], float], None],
) -> SearchResult[Model]:
    """:func:`keep_fp32_until_passing` over real models: ``build`` quantizes with an FP32 set,
    ``evaluate`` scores the model, ``note`` hears each score; ``rank`` runs once, if at all."""
    models: dict[tuple[str, ...], Model] = {}
    ranking: list[tuple[str, float]] = []

    def attempt(kept: tuple[str, ...]) -> float:
        models[kept] = build(kept)
        metric = float(evaluate(models[kept]))
        note(kept, metric)
        return metric

    def ranked() -> Sequence[tuple[str, float]]:
        ranking.extend(rank())
        return ranking

    kept, trials = keep_fp32_until_passing(ranked, initial, attempt, threshold, max_kept)
    last = trials[-1]
    return SearchResult(list(kept), last.metric, last.passed, trials, models[kept], sensitivity=ranking)


def keep_fp32_until_passing(
    rank: Callable[[], Sequence[tuple[str, float]]],
    initial: tuple[str, ...],
    attempt: Callable[[tuple[str, ...]], float],
    threshold: float,
    max_kept: int,
) -> tuple[tuple[str, ...], list[SearchTrial]]:
    """The greedy selection both INT8 routes share: score the model with ``initial`` kept in FP32;
    while it scores below ``threshold``, add the next op of ``rank()`` (name, sensitivity; computed only
    when needed, most sensitive first) to the FP32 set, at most ``max_kept`` more. Returns the final
    FP32 set and every trial in order."""
    if max_kept < 0:
        raise QuantizationError(f"max_skipped must not be negative, got {max_kept}")
    kept = tuple(initial)
    metric = attempt(kept)
    trials = [SearchTrial(kept, metric, metric >= threshold)]
    if trials[-1].passed or max_kept == 0:
        return kept, trials
    candidates = [
        name for name, _ in sorted(rank(), key=lambda item: item[1], reverse=True) if name not in kept
    ]
    for name in candidates[:max_kept]:
        kept = (*kept, name)
        metric = attempt(kept)
        trials.append(SearchTrial(kept, metric, metric >= threshold))
        if trials[-1].passed:
            break
    return kept, trials


# Child process plumbing


_NOISE = re.compile(
    r"^(\s*$|.*Run batch:|.*Adding quant|I\d{4} |W\d{4} |.*-(INFO|WARNING|DEBUG): "
    r"|\s*warnings\.warn|.*Warning: )"
)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")


def last_meaningful_line(stderr: str) -> str:
    """The line of a child's stderr that says what went wrong (its exception line when there is one)."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", stderr)]
    lines = [line for line in lines if line and not _NOISE.match(line)]
    for line in reversed(lines):
        if _EXCEPTION_LINE.match(line):
            return line
    return lines[-1] if lines else "no error output"


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env[PIR_FLAG] = "0"
    env.setdefault("GLOG_minloglevel", "2")
    return env


def _run_child(
    command: str,
    source: ModelFiles,
    arguments: Mapping[str, Any],
    feeds: Sequence[Mapping[str, np.ndarray]],
    timeout_s: float,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="portbench-ptq-") as workdir:
        work = Path(workdir)
        arrays: dict[str, np.ndarray] = {}
        layout: list[list[str]] = []
        for batch_index, feed in enumerate(feeds):
            names = list(feed)
            layout.append(names)
            for input_index, name in enumerate(names):
                arrays[f"b{batch_index}_i{input_index}"] = np.ascontiguousarray(feed[name])
        feeds_path = work / "feeds.npz"
        np.savez(feeds_path, **arrays)  # type: ignore[arg-type]
        request = {
            "command": command,
            "model_dir": str(source.directory),
            "model_filename": source.model_file.name,
            "params_filename": source.params_file.name,
            "feeds": str(feeds_path),
            "feed_layout": layout,
            "answer": str(work / "answer.json"),
            **arguments,
        }
        request_path = work / "request.json"
        request_path.write_text(json.dumps(request), encoding="utf-8")
        try:
            completed = subprocess.run(
                [sys.executable, "-m", "portbench.harness.quantize", str(request_path)],
                env=child_environment(),
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise QuantizationError(
                f"post-training quantization ({command}) ran past {timeout_s:.0f} s and was stopped"
            ) from None
        answer_path = work / "answer.json"
        answer: dict[str, Any] = {}
        if answer_path.is_file():
            answer = json.loads(answer_path.read_text(encoding="utf-8"))
        if completed.returncode == 0 and "error" not in answer and answer:
            return answer
        if "error" in answer:
            error_class = CalibrationError if answer.get("kind") == "calibration" else QuantizationError
            raise error_class(str(answer["error"]))
        if completed.returncode < 0:
            raise QuantizationError(
                f"post-training quantization ({command}) was killed by signal {-completed.returncode}"
            )
        raise QuantizationError(
            f"post-training quantization ({command}) failed: {last_meaningful_line(completed.stderr)}"
        )


# ---------------------------------------------------------------------------------------------------
# Child side: runs with FLAGS_enable_pir_api=0 in a fresh interpreter. Nothing above imports paddle.


class _ChildError(Exception):
    def __init__(self, message: str, kind: str = "quantization") -> None:
        super().__init__(message)
        self.kind = kind


def _child_feeds(request: Mapping[str, Any]) -> list[dict[str, np.ndarray]]:
    with np.load(request["feeds"]) as stored:
        return [
            {name: stored[f"b{b}_i{i}"] for i, name in enumerate(names)}
            for b, names in enumerate(request["feed_layout"])
        ]


def _op_name(op: Any) -> str | None:
    outputs = op.output_arg_names
    return str(outputs[0]) if outputs else None


def _load_program(request: Mapping[str, Any]) -> tuple[Any, Any, list[str], list[Any], Any]:
    import paddle

    paddle.enable_static()
    scope = paddle.static.Scope()
    executor = paddle.static.Executor(paddle.CPUPlace())
    with paddle.static.scope_guard(scope):
        program, feed_names, fetch_targets = paddle.static.load_inference_model(
            request["model_dir"],
            executor,
            model_filename=request["model_filename"],
            params_filename=request["params_filename"],
        )
    return program, executor, list(feed_names), list(fetch_targets), scope


def _check_op_types(op_types: Sequence[str]) -> None:
    from paddle.static.quantization.utils import SUPPORT_QUANTIZATION_OP_DICT

    unknown = [t for t in op_types if t not in SUPPORT_QUANTIZATION_OP_DICT]
    if unknown:
        raise _ChildError(
            f"op type(s) {', '.join(unknown)} cannot be quantized by Paddle; "
            f"supported: {', '.join(sorted(SUPPORT_QUANTIZATION_OP_DICT))}"
        )


def _listed_ops(program: Any, op_types: Sequence[str]) -> list[tuple[str, str]]:
    found = []
    for block in program.blocks:
        for op in block.ops:
            name = _op_name(op)
            if op.type in op_types and name is not None:
                found.append((name, str(op.type)))
    return found


def _check_feeds(feeds: Sequence[Mapping[str, np.ndarray]], feed_names: Sequence[str]) -> None:
    for feed in feeds:
        if set(feed) != set(feed_names):
            raise _ChildError(
                f"calibration feeds have inputs {sorted(feed)}, the model expects {sorted(feed_names)}",
                kind="calibration",
            )


def _calibrated(request: Mapping[str, Any], feeds: list[dict[str, np.ndarray]]) -> tuple[Any, list[str]]:
    """A PTQ object whose ``quantize()`` has run; also the names of the ops it quantized."""
    from paddle.static.quantization import PostTrainingQuantization

    op_types = list(request["op_types"])
    _check_op_types(op_types)
    program, executor, feed_names, _, _ = _load_program(request)
    _check_feeds(feeds, feed_names)
    present = _listed_ops(program, op_types)
    present_names = {name for name, _ in present}
    skip = set(request["skip_ops"])
    unknown = sorted(skip - present_names)
    if unknown:
        raise _ChildError(
            f"op(s) to skip not found among the model's {', '.join(op_types)} ops: {', '.join(unknown[:5])}"
            + (" …" if len(unknown) > 5 else "")
            + "; list them with quantizable_ops()"
        )
    targets = [name for name, _ in present if name not in skip]
    if not targets:
        reason = "all of them are skipped" if present else "the program has none"
        raise _ChildError(f"no op of type {', '.join(op_types)} left to quantize ({reason})")

    class _SkippingPTQ(PostTrainingQuantization):
        def _collect_target_varnames(self) -> None:
            # Marked on the loaded program; Paddle's transform passes honour "skip_quant" namescopes.
            for block in self._program.blocks:
                for op in block.ops:
                    if _op_name(op) in skip:
                        op._set_attr("op_namescope", SKIP_QUANT_NAMESCOPE)
            super()._collect_target_varnames()

    ptq = _SkippingPTQ(
        executor=executor,
        model_dir=request["model_dir"],
        model_filename=request["model_filename"],
        params_filename=request["params_filename"],
        data_loader=lambda: iter(feeds),
        batch_size=int(request["batch_size"]),
        batch_nums=len(feeds),
        algo=request["algo"],
        quantizable_op_type=op_types,
        onnx_format=True,
    )
    ptq.quantize()
    return ptq, targets


def _quantized_op_names(program: Any, op_types: Sequence[str]) -> list[str]:
    """Ops of ``op_types`` fed by a dequantize op: those really running in INT8."""
    ops = [op for block in program.blocks for op in block.ops]
    producers = {name: op.type for op in ops for name in op.output_arg_names}
    return [
        name
        for op in ops
        if op.type in op_types
        and (name := _op_name(op)) is not None
        and any(producers.get(arg) == "dequantize_linear" for arg in op.input_arg_names)
    ]


def _float_source(name: str, producers: Mapping[str, Any]) -> str:
    """The float tensor behind ``name``: itself, or what its quantize/dequantize pair was made from."""
    dequantize = producers.get(name)
    if dequantize is None or dequantize.type != "dequantize_linear":
        return name
    quantized = dequantize.input("X")[0]
    quantize = producers.get(quantized)
    return (
        str(quantize.input("X")[0])
        if quantize is not None and quantize.type == "quantize_linear"
        else quantized
    )


def _isolate_skipped_ops(program: Any, skip: set[str]) -> list[str]:
    """Make oneDNN keep the skipped ops in FP32; returns the tensors given their own copies.

    Paddle Inference's oneDNN INT8 passes quantize every ``fc``/``matmul`` whose activation input has
    a scale, and a scale exists as soon as *any* consumer of that tensor was quantized (q/k/v of one
    attention share their input): the ``skip_quant`` mark on the op does not survive ``fc_fuse_pass``.
    So each activation input of a skipped op becomes a private float copy (an ``assign`` of the
    tensor before any quantize/dequantize), which carries no scale, and the op stays FP32.
    """
    block = program.global_block()
    persistable = {v.name for v in program.list_vars() if v.persistable}
    producers = {name: op for op in block.ops for name in op.output_arg_names}
    targets = [op for op in block.ops if _op_name(op) in skip]
    copied = []
    for op in targets:
        for name in dict.fromkeys(op.input_arg_names):
            if name in persistable:
                continue
            source = block.var(_float_source(name, producers))
            copy = block.create_var(
                name=f"{source.name}.fp32.{_op_name(op)}", dtype=source.dtype, shape=source.shape
            )
            index = next(i for i, candidate in enumerate(block.ops) if candidate is op)
            block._insert_op(index, type="assign", inputs={"X": [source]}, outputs={"Out": [copy]})
            op._rename_input(name, copy.name)
            copied.append(name)
    return copied


def _child_quantize(request: Mapping[str, Any]) -> dict[str, Any]:
    feeds = _child_feeds(request)
    ptq, _ = _calibrated(request, feeds)
    _isolate_skipped_ops(ptq._program, set(request["skip_ops"]))
    quantized = _quantized_op_names(ptq._program, request["op_types"])
    if not quantized:
        raise _ChildError(
            f"post-training quantization inserted no quantize op for {', '.join(request['op_types'])}; "
            "the model has no quantizable op"
        )
    ptq.save_quantized_model(
        request["out_dir"], model_filename=MODEL_FILENAME, params_filename=PARAMS_FILENAME
    )
    return {"quantized_ops": quantized, "skipped_ops": sorted(request["skip_ops"])}


def _relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    reference = reference.astype(np.float64)
    energy = float(np.mean(reference * reference))
    error = float(np.mean((candidate.astype(np.float64) - reference) ** 2))
    return error / energy if energy > 0 else error


def _child_sensitivity(request: Mapping[str, Any]) -> dict[str, Any]:
    import paddle

    feeds = _child_feeds(request)
    ptq, targets = _calibrated(request, feeds)
    simulated = ptq._program
    fp32, executor, _, _, fp32_scope = _load_program(request)
    persistable = {v.name for v in fp32.list_vars() if v.persistable}
    activation_inputs: dict[str, list[str]] = {}
    for block in fp32.blocks:
        for op in block.ops:
            name = _op_name(op)
            if name in targets:
                activation_inputs[name] = [a for a in op.input_arg_names if a not in persistable]
    fetch = sorted(set(targets) | {a for args in activation_inputs.values() for a in args})
    sums: dict[str, float] = dict.fromkeys(fetch, 0.0)
    probes = feeds[: int(request["probe_batches"])]
    for feed in probes:
        with paddle.static.scope_guard(fp32_scope):
            reference = executor.run(fp32, feed=feed, fetch_list=fetch, return_numpy=True)
        with paddle.static.scope_guard(ptq._scope):
            candidate = executor.run(simulated, feed=feed, fetch_list=fetch, return_numpy=True)
        for name, ref, cand in zip(fetch, reference, candidate, strict=True):
            sums[name] += _relative_error(np.asarray(ref), np.asarray(cand))
    errors = {name: total / len(probes) for name, total in sums.items()}
    scores = [
        (name, errors[name] - max((errors[a] for a in activation_inputs[name]), default=0.0))
        for name in targets
    ]
    return {"sensitivity": scores}


def _child_list(request: Mapping[str, Any]) -> dict[str, Any]:
    program, *_ = _load_program(request)
    return {"ops": _listed_ops(program, request["op_types"])}


def _legacy_matmul(
    x: Any, y: Any, transpose_x: bool = False, transpose_y: bool = False, name: Any = None
) -> Any:
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper("matmul_v2", name=name)
    out = helper.create_variable_for_type_inference(dtype=x.dtype)
    helper.append_op(
        type="matmul_v2",
        inputs={"X": x, "Y": y},
        outputs={"Out": out},
        attrs={"trans_x": transpose_x, "trans_y": transpose_y},
    )
    return out


def _child_legacy_export(request: Mapping[str, Any]) -> dict[str, Any]:
    import importlib

    import paddle

    paddle.enable_static()
    # paddle.matmul and paddle.tensor.matmul are C++-bound (dygraph / PIR only) in Paddle 3.x; the
    # nn layers look them up at call time, so the legacy op is swapped in for this process only.
    # (`paddle.tensor` the attribute is a function; the module is reached through sys.modules.)
    paddle.matmul = _legacy_matmul
    setattr(sys.modules["paddle.tensor"], "matmul", _legacy_matmul)  # noqa: B010
    module_name, _, attribute = str(request["factory"]).partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise _ChildError(f"cannot import factory {request['factory']!r}: {error}") from None
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        feeds = [paddle.static.data(name, shape, dtype) for name, dtype, shape in request["inputs"]]
        layer = factory(**request["arguments"])
        layer.eval()
        outputs = layer(*feeds)
    fetch = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    executor = paddle.static.Executor(paddle.CPUPlace())
    executor.run(startup)
    state = paddle.load(request["state_file"])
    scope = paddle.static.global_scope()
    params = layer.state_dict()
    missing = sorted(set(params) - set(state))
    if missing:
        raise _ChildError(f"state dict {request['state_file']} lacks {', '.join(missing[:5])}")
    for key, variable in params.items():
        value = np.asarray(state[key])
        tensor = scope.find_var(variable.name).get_tensor()
        if tuple(value.shape) != tuple(variable.shape):
            raise _ChildError(f"{key}: state dict shape {value.shape}, model shape {tuple(variable.shape)}")
        tensor.set(value, paddle.CPUPlace())
    prefix = str(Path(request["out_dir"]) / Path(MODEL_FILENAME).stem)
    paddle.static.save_inference_model(prefix, feeds, fetch, executor, program=main)
    return {"saved": prefix}


_CHILD_COMMANDS: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "quantize": _child_quantize,
    "sensitivity": _child_sensitivity,
    "list": _child_list,
    "legacy-export": _child_legacy_export,
}


def _child_main(request_path: str) -> int:
    if os.environ.get(PIR_FLAG) != "0":
        print("portbench.harness.quantize must run with FLAGS_enable_pir_api=0", file=sys.stderr)
        return 2
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    answer_path = Path(request["answer"])
    try:
        answer = _CHILD_COMMANDS[request["command"]](request)
    except _ChildError as error:
        answer_path.write_text(json.dumps({"error": str(error), "kind": error.kind}), encoding="utf-8")
        return _CHILD_ERROR_EXIT
    answer_path.write_text(json.dumps(answer), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1]))
