"""Static INT8 (QDQ) quantization of ONNX models with ONNX Runtime, the second INT8 route beside Paddle's.

``quantize_onnx`` takes an FP32 ``.onnx`` file and a :class:`CalibrationSet` (feeds of the
workload's calibration split, never its test split) and writes a QDQ model with
``onnxruntime.quantization.quantize_static``: per-channel weights, activations calibrated by MinMax,
Entropy or Percentile. ``nodes_to_exclude`` keeps named nodes in FP32; :func:`node_sensitivity` ranks
the quantizable nodes by the output error each adds when it alone is quantized (no labels), and
:func:`exclusion_search` keeps the most sensitive ones in FP32 until a caller-supplied metric passes.

Artifacts live in ``<cache_root>/quantized-onnx/<label>-<key[:16]>/`` beside ``quantization.json``
(source digest, settings, calibration ids and tensor digest, onnxruntime/onnx versions, which nodes
were quantized and which kept FP32), reused only while every file matches its recorded digest.

``onnxruntime`` and ``onnx`` are the optional ``onnxruntime`` extra; nothing here imports them at
module import time, so the harness stays importable without them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from portbench.errors import UnknownNameError
from portbench.harness.artifacts import CachedBuild, canonical_sha256, sha256_file
from portbench.harness.quantize import (
    CalibrationError,
    CalibrationSet,
    QuantizationError,
    SearchResult,
    ids_digest,
    leading_batches,
    quantization_store,
    search_kept_fp32,
    selected_batches,
)
from portbench.installed import distribution_version

METHODS = ("MinMax", "Entropy", "Percentile")
DEFAULT_OP_TYPES = ("MatMul", "Gemm", "Conv")
MODEL_FILE = "model.int8.onnx"
QUANTIZED_DIR = "quantized-onnx"
PROVENANCE_FORMAT = 1
INSTALL_HINT = "pip install 'portbench[onnxruntime]'"


@dataclass(frozen=True)
class OnnxQuantizeSettings:
    """How to quantize. Weights are symmetric INT8 (per output channel by default), activations INT8."""

    method: str = "MinMax"
    per_channel: bool = True
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    nodes_to_exclude: tuple[str, ...] = ()
    calibration_samples: int = 256
    batch_size: int = 8
    percentile: float = 99.999  # Percentile only

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UnknownNameError("ONNX calibration method", self.method, METHODS)
        if self.calibration_samples < 1:
            raise QuantizationError(f"calibration_samples must be at least 1, got {self.calibration_samples}")
        if self.batch_size < 1:
            raise QuantizationError(f"batch_size must be at least 1, got {self.batch_size}")
        if not self.op_types:
            raise QuantizationError("op_types is empty; name at least one ONNX op type, e.g. MatMul")
        if not 0.0 < self.percentile <= 100.0:
            raise QuantizationError(f"percentile must be in (0, 100], got {self.percentile}")


@dataclass(frozen=True)
class OnnxQuantized(CachedBuild):
    """A QDQ model in the cache; ``provenance`` is its ``quantization.json``."""

    model_file: Path


OnnxSearchResult = SearchResult[OnnxQuantized]


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime.quantization as quantization
    except ImportError as error:
        raise QuantizationError(
            f"ONNX Runtime quantization needs onnxruntime and onnx ({error}): {INSTALL_HINT}"
        ) from None
    return quantization


def _versions() -> dict[str, str]:
    return {name: distribution_version(name) or "not installed" for name in ("onnxruntime", "onnx")}


def quantizable_nodes(model_file: Path, op_types: Sequence[str] = DEFAULT_OP_TYPES) -> list[tuple[str, str]]:
    """(name, op type) of the nodes of ``op_types`` in graph order. Unnamed nodes cannot be excluded."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    unnamed = [node.op_type for node in graph.node if node.op_type in op_types and not node.name]
    if unnamed:
        raise QuantizationError(
            f"{model_file} has {len(unnamed)} unnamed {', '.join(sorted(set(unnamed)))} node(s); "
            "give every node a name (paddle2onnx does) so nodes can be kept in FP32 by name"
        )
    return [(node.name, node.op_type) for node in graph.node if node.op_type in op_types]


class _Feeds:
    """A ``CalibrationDataReader`` over fixed feeds (built lazily: the base class needs onnxruntime)."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
        self._feeds = feeds
        self._iterator: Iterator[Mapping[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._iterator, None)
        return None if feed is None else {name: np.asarray(array) for name, array in feed.items()}

    def rewind(self) -> None:
        self._iterator = iter(self._feeds)


def _reader(feeds: Sequence[Mapping[str, np.ndarray]]) -> Any:
    quantization = _require_onnxruntime()

    reader_type = type("CalibrationFeeds", (_Feeds, quantization.CalibrationDataReader), {})
    return reader_type(feeds)


def _check_feeds(model_file: Path, feeds: Sequence[Mapping[str, np.ndarray]]) -> None:
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    initialisers = {init.name for init in graph.initializer}
    expected = {value.name for value in graph.input if value.name not in initialisers}
    for index, feed in enumerate(feeds):
        if set(feed) != expected:
            raise CalibrationError(
                f"calibration batch {index} has inputs {sorted(feed)}, the model expects {sorted(expected)}"
            )


def quantize_onnx_file(
    source: Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    settings: OnnxQuantizeSettings,
    out_file: Path,
    nodes_to_quantize: Sequence[str] | None = None,
) -> list[str]:
    """Write the QDQ model of ``source`` to ``out_file``; returns the names of the nodes quantized."""
    quantization = _require_onnxruntime()
    if not source.is_file():
        raise QuantizationError(f"ONNX model {source} does not exist")
    present = quantizable_nodes(source, settings.op_types)
    names = {name for name, _ in present}
    unknown = sorted(set(settings.nodes_to_exclude) - names)
    if unknown:
        raise QuantizationError(
            f"node(s) to keep in FP32 not found among the model's {', '.join(settings.op_types)} nodes: "
            + ", ".join(unknown[:5])
            + (" …" if len(unknown) > 5 else "")
        )
    targets = [n for n, _ in present if n not in settings.nodes_to_exclude]
    if nodes_to_quantize is not None:
        targets = [n for n in targets if n in set(nodes_to_quantize)]
    if not targets:
        raise QuantizationError(f"no {', '.join(settings.op_types)} node left to quantize in {source}")
    _check_feeds(source, feeds)
    extra: dict[str, Any] = {}
    if settings.method == "Percentile":
        extra["CalibPercentile"] = settings.percentile
    try:
        quantization.quantize_static(
            str(source),
            str(out_file),
            _reader(feeds),
            quant_format=quantization.QuantFormat.QDQ,
            op_types_to_quantize=list(settings.op_types),
            per_channel=settings.per_channel,
            activation_type=quantization.QuantType.QInt8,
            weight_type=quantization.QuantType.QInt8,
            nodes_to_quantize=targets,
            calibrate_method=getattr(quantization.CalibrationMethod, settings.method),
            extra_options=extra,
        )
    except ValueError as exc:
        if settings.method == "MinMax" or "inhomogeneous" not in str(exc):
            raise
        # Histogram calibrators stack each activation over all batches (onnxruntime 1.32); OCR lines
        # of different widths make activations of different shapes.
        raise CalibrationError(
            f"{settings.method} calibration needs calibration batches of one shape (ONNX Runtime "
            "stacks every activation across batches) and these differ; use MinMax"
        ) from None
    return targets


def qdq_fed_nodes(model_file: Path, op_types: Sequence[str] = DEFAULT_OP_TYPES) -> list[str]:
    """Nodes of ``op_types`` with an input from a DequantizeLinear: those ONNX Runtime runs in INT8."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    dequantized = {out for node in graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    return [
        node.name
        for node in graph.node
        if node.op_type in op_types and any(name in dequantized for name in node.input)
    ]


def _cache_key(source_sha256: str, settings: OnnxQuantizeSettings, ids: Sequence[str], digest: str) -> str:
    identity = {
        "format": PROVENANCE_FORMAT,
        "source_sha256": source_sha256,
        "settings": {**asdict(settings), "nodes_to_exclude": sorted(settings.nodes_to_exclude)},
        "calibration_ids_sha256": ids_digest(ids),
        "calibration_feeds_sha256": digest,
        "versions": _versions(),
    }
    return canonical_sha256(identity)


def quantize_onnx(
    source: Path,
    calibration: CalibrationSet,
    settings: OnnxQuantizeSettings,
    cache_root: Path,
    model_name: str = "model",
) -> OnnxQuantized:
    """The QDQ model of ``source`` calibrated on the leading batches of ``calibration``, cached."""
    used = leading_batches(calibration, settings.calibration_samples, settings.batch_size)
    source_sha256 = sha256_file(source) if source.is_file() else ""
    if not source_sha256:
        raise QuantizationError(f"ONNX model {source} does not exist")
    key = _cache_key(source_sha256, settings, used.sample_ids, used.feeds_sha256)
    store = quantization_store(cache_root / QUANTIZED_DIR, (MODEL_FILE,))

    def build(staging: Path) -> dict[str, Any]:
        started = time.time()
        targets = quantize_onnx_file(source, used.feeds, settings, staging / MODEL_FILE)
        return {
            "format": PROVENANCE_FORMAT,
            "route": "onnxruntime quantize_static (QDQ)",
            "cache_key": key,
            "source": {"name": model_name, "model_file": str(source), "sha256": source_sha256},
            "settings": asdict(settings),
            "calibration": used.record(),
            "versions": _versions(),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "build_seconds": round(time.time() - started, 2),
            "quantized_nodes": qdq_fed_nodes(staging / MODEL_FILE, settings.op_types),
            "requested_nodes": targets,
            "kept_fp32_nodes": sorted(settings.nodes_to_exclude),
        }

    label = "".join(c if c.isalnum() or c in "._-" else "-" for c in model_name)[:48] or "model"
    artifact = store.build(f"{label}-{key[:16]}", key, build)
    return OnnxQuantized(
        artifact.directory / MODEL_FILE,
        cache_key=key,
        provenance=dict(artifact.manifest),
        from_cache=not artifact.built,
        rebuilt_because=artifact.rebuilt_because,
    )


# ONNX TensorProto element types of the inputs these models take (onnx.TensorProto enum values).
_ONNX_DTYPES = {1: np.float32, 6: np.int32, 7: np.int64, 10: np.float16, 11: np.float64, 9: np.bool_}


def onnx_calibration(model_file: Path, calibration: CalibrationSet) -> CalibrationSet:
    """``calibration`` (feeds keyed by the Paddle model's input names) keyed by ``model_file``'s
    input names and cast to their element types. Names that match are kept; otherwise the feeds'
    inputs are taken in order, which is the order paddle2onnx writes the Paddle inputs in."""
    import onnx

    graph = onnx.load(str(model_file), load_external_data=False).graph
    initialisers = {init.name for init in graph.initializer}
    inputs = [
        (value.name, _ONNX_DTYPES.get(value.type.tensor_type.elem_type))
        for value in graph.input
        if value.name not in initialisers
    ]
    names = [name for name, _ in inputs]
    feeds = []
    for index, feed in enumerate(calibration.feeds):
        if set(feed) == set(names):
            arrays = [feed[name] for name in names]
        elif len(feed) == len(names):
            arrays = list(feed.values())
        else:
            raise CalibrationError(
                f"calibration batch {index} has {len(feed)} input(s) {sorted(feed)}, "
                f"the ONNX model {model_file.name} takes {len(names)}: {names}"
            )
        feeds.append(
            {
                name: np.asarray(array, dtype=dtype) if dtype is not None else np.asarray(array)
                for (name, dtype), array in zip(inputs, arrays, strict=True)
            }
        )
    return CalibrationSet(calibration.sample_ids, feeds, calibration.source)


def _run(model_file: Path, feeds: Sequence[Mapping[str, np.ndarray]], threads: int) -> list[list[np.ndarray]]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    return [session.run(None, dict(feed)) for feed in feeds]


def _relative_error(reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> float:
    total = 0.0
    for ref, cand in zip(reference, candidate, strict=True):
        ref64 = np.asarray(ref, dtype=np.float64)
        energy = float(np.mean(ref64 * ref64)) or 1.0
        total += float(np.mean((np.asarray(cand, dtype=np.float64) - ref64) ** 2)) / energy
    return total


def node_sensitivity(
    source: Path,
    calibration: CalibrationSet,
    settings: OnnxQuantizeSettings,
    probe_batches: int = 4,
    threads: int = 2,
) -> list[tuple[str, float]]:
    """Quantizable nodes ranked by the relative squared output error when *only* that node is INT8
    (calibrated as ``settings`` says, measured on the first ``probe_batches`` calibration batches),
    most sensitive first. Nodes already in ``nodes_to_exclude`` are not ranked."""
    batches, _ = selected_batches(calibration, settings.calibration_samples, settings.batch_size)
    feeds = list(calibration.feeds[:batches])
    probes = feeds[: max(1, min(probe_batches, len(feeds)))]
    reference = _run(source, probes, threads)
    scores = []
    with tempfile.TemporaryDirectory(prefix="portbench-qdq-") as work:
        for name, _ in quantizable_nodes(source, settings.op_types):
            if name in settings.nodes_to_exclude:
                continue
            single = Path(work) / "single.onnx"
            quantize_onnx_file(source, feeds, settings, single, nodes_to_quantize=[name])
            candidate = _run(single, probes, threads)
            error = sum(_relative_error(r, c) for r, c in zip(reference, candidate, strict=True))
            scores.append((name, error / len(probes)))
    return sorted(scores, key=lambda item: item[1], reverse=True)


def exclusion_search(
    source: Path,
    calibration: CalibrationSet,
    settings: OnnxQuantizeSettings,
    evaluate: Callable[[Path], float],
    reference_metric: float,
    gate: float,
    max_excluded: int,
    cache_root: Path,
    model_name: str = "model",
    log: Callable[[str], None] | None = None,
) -> OnnxSearchResult:
    """Quantize everything; while ``evaluate(model) < gate * reference_metric`` keep the next most
    sensitive node (:func:`node_sensitivity`) in FP32. ``evaluate`` must score a split other than
    the one parity gates (the calibration or a validation split)."""
    if not 0.0 < gate <= 1.0:
        raise QuantizationError(f"gate must be in (0, 1], got {gate}")

    def build(excluded: tuple[str, ...]) -> OnnxQuantized:
        current = OnnxQuantizeSettings(**{**asdict(settings), "nodes_to_exclude": excluded})
        return quantize_onnx(source, calibration, current, cache_root, model_name)

    def note(excluded: tuple[str, ...], metric: float) -> None:
        if log is not None:
            log(f"ONNX INT8 with {len(excluded)} node(s) in FP32: metric {metric:.4f}")

    return search_kept_fp32(
        build,
        lambda model: evaluate(model.model_file),
        lambda: node_sensitivity(source, calibration, settings),
        tuple(settings.nodes_to_exclude),
        gate * reference_metric,
        max_excluded,
        note,
    )
