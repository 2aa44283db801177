"""Accuracy parity: how far a cell's accuracy and outputs are from the FP32 reference.

FP32 on the CPU backend is the reference. Each cell is compared with the FP32 CPU cell that ran the
same workload, task, model, dataset and parameters (:func:`reference_key`), taken from the same run
or from an earlier run's directory (``--reference RUN_DIR``, :func:`load_reference`), which needs only
that run's ``results.json`` and outputs files, never its models.

Two levels, in the spirit of MLPerf's accuracy targets:

- task level (gated): the cell's headline metric divided by the reference's must reach the gate for
  its precision (default INT8 >= 99%, FP16 / BF16 / FP32 >= 99.9%), overridable per metric;
- output level: per-sample agreement with the reference outputs (OCR boxes and texts, ERNIE logits)
  and the worst samples. These numbers are informational by default, because a quantized model
  legitimately changes some outputs while keeping its task accuracy; a minimum can be set per number
  (``ParityGates.min_output``), and then a miss fails the cell too.

Verdicts: ``pass`` (every gate met), ``fail`` (a gate missed; the reason says by how much) or
``skipped`` (the cell did not pass, has synthetic weights, or a reference or metric is missing; the
reason says which). The FP32 CPU cell that serves as the in-run reference gets ``pass`` with
``"role": "reference"``; with an external reference it is compared like any other cell.

Outputs files are JSON objects ``{sample_id: output}`` beside ``results.json`` (the runner's
``save_outputs``; ``CellResult.outputs_file`` holds the relative path). Everything here is pure
Python on dicts: no Paddle.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from portbench.errors import PortbenchError
from portbench.harness.results import CellResult, RunResults, load_results
from portbench.suites.ocr.metrics import char_accuracy, match_one_to_one, polygon_iou, to_polygon

REFERENCE_BACKEND = "cpu"
REFERENCE_PRECISION = "fp32"
BOX_IOU_THRESHOLD = 0.5
# Absolute slack on gate comparisons so a metric at exactly 99% of the reference is not failed by
# floating-point rounding of the product.
GATE_TOLERANCE = 1e-12

# The metrics that decide a verdict, per (workload, task); every other shared metric is reported
# without a gate. ERNIE's "perf" task has synthetic weights and so no task metrics at all.
HEADLINE_METRICS: Mapping[tuple[str, str], tuple[str, ...]] = MappingProxyType(
    {
        ("ocr", "det"): ("det_hmean",),
        ("ocr", "rec"): ("rec_char_accuracy",),
        ("ocr", "system"): ("e2e_hmean",),
        ("ernie", "cls"): ("accuracy", "macro_f1"),
    }
)

DEFAULT_TASK_RATIO: Mapping[str, float] = MappingProxyType(
    {"int8": 0.99, "fp16": 0.999, "bf16": 0.999, "fp32": 0.999}
)
# A precision missing from ``task_ratio`` gets the strictest usual gate.
FALLBACK_TASK_RATIO = 0.999

# Parameters that say where files are or how timing was arranged, not what was computed: two cells
# that differ only in these share a reference (the dataset directory differs between machines).
NON_IDENTIFYING_PARAMS = frozenset(
    {
        "cache_dir",
        "dataset_dir",
        "model_dirs",
        "timed_inputs",
        "distinct_input_shapes",
        "query_unit",
        "stage_unit",
    }
)

# Output-level numbers that ``ParityGates.min_output`` may put a floor under (higher is better).
OUTPUT_GATEABLE = frozenset(
    {
        "box_agreement",
        "mean_iou",
        "text_exact_match",
        "char_agreement",
        "line_agreement",
        "text_agreement",
        "top1_agreement",
        "mean_cosine",
        "min_cosine",
    }
)


class ParityError(PortbenchError):
    """Parity gates or stored outputs that cannot be used (bad configuration, corrupt file)."""


def _frozen_ratios(values: Any, where: str) -> Mapping[str, float]:
    if not isinstance(values, Mapping):
        raise ParityError(f"parity gates {where.rstrip('/ ') or 'setting'} must map names to ratios")
    checked: dict[str, float] = {}
    for name, ratio in values.items():
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise ParityError(f"parity gate {where}{name} must be a ratio in (0, 1], got {ratio!r}")
        checked[name] = float(ratio)
    return MappingProxyType(checked)


def _frozen_mapping(values: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise ParityError(f"parity setting {name} must be a mapping, got {values!r}")
    return values


@dataclass(frozen=True)
class ParityGates:
    """Pass marks for parity.

    ``task_ratio``: precision -> minimum (cell metric / reference metric) for the headline metrics.
    ``per_metric``: metric -> precision -> ratio, overriding ``task_ratio``; naming a metric here also
    gates it when it is not a headline metric. ``min_output``: output-level number (see
    ``OUTPUT_GATEABLE``) -> minimum value; empty by default (output agreement is informational).
    ``worst_samples``: how many of the most different samples to keep.

    Example::

        ParityGates(per_metric={"det_hmean": {"int8": 0.98}}, min_output={"top1_agreement": 0.99})
    """

    task_ratio: Mapping[str, float] = field(default_factory=lambda: DEFAULT_TASK_RATIO)
    per_metric: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    min_output: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    worst_samples: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "task_ratio", _frozen_ratios(self.task_ratio, "for "))
        object.__setattr__(
            self,
            "per_metric",
            MappingProxyType(
                {
                    metric: _frozen_ratios(ratios, f"{metric}/")
                    for metric, ratios in _frozen_mapping(self.per_metric, "per_metric").items()
                }
            ),
        )
        unknown = sorted(set(self.min_output) - OUTPUT_GATEABLE)
        if unknown:
            raise ParityError(
                f"unknown output-level parity gate {unknown[0]!r}; "
                f"known: {', '.join(sorted(OUTPUT_GATEABLE))}"
            )
        object.__setattr__(self, "min_output", _frozen_ratios(self.min_output, "min_output/"))
        if (
            isinstance(self.worst_samples, bool)
            or not isinstance(self.worst_samples, int)
            or self.worst_samples < 0
        ):
            raise ParityError(f"worst_samples must be a whole number >= 0, got {self.worst_samples!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ParityGates:
        """Gates from suite or user configuration; omitted keys keep their defaults."""
        known = {"task_ratio", "per_metric", "min_output", "worst_samples"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParityError(f"unknown parity setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        task_ratio = {**DEFAULT_TASK_RATIO, **_frozen_ratios(data.get("task_ratio", {}), "for ")}
        return cls(
            task_ratio=task_ratio,
            per_metric=data.get("per_metric", {}),
            min_output=data.get("min_output", {}),
            worst_samples=data.get("worst_samples", 5),
        )

    def gate_for(self, metric: str, precision: str) -> float:
        """Minimum ratio of ``metric`` to its reference value for a cell of ``precision``."""
        override = self.per_metric.get(metric, {})
        if precision in override:
            return override[precision]
        return self.task_ratio.get(precision, FALLBACK_TASK_RATIO)

    def gated_metrics(self, workload: str, task: str) -> tuple[str, ...]:
        headline = HEADLINE_METRICS.get((workload, task), ())
        return headline + tuple(sorted(m for m in self.per_metric if m not in headline))


# --- identity of a cell across backends and precisions -------------------------------------------


def model_label(cell: CellResult) -> str:
    """The model as the cell id names it (``model@label``), falling back to ``cell.model``."""
    parts = cell.cell_id.split("/")
    if len(parts) >= 6 and parts[-3] == cell.backend and parts[-2] == cell.precision:
        return "/".join(parts[2:-3])
    return cell.model


ReferenceKey = tuple[str, str, str, str, str, str]


def reference_key(cell: CellResult) -> ReferenceKey:
    """Same workload, task, model (with label), dataset, scenario and parameters; any backend/precision."""
    params = {k: v for k, v in cell.params.items() if k not in NON_IDENTIFYING_PARAMS}
    return (
        cell.workload,
        cell.task,
        model_label(cell),
        cell.dataset,
        cell.scenario,
        json.dumps(params, sort_keys=True, default=str),
    )


def is_reference_cell(cell: CellResult) -> bool:
    return cell.backend == REFERENCE_BACKEND and cell.precision == REFERENCE_PRECISION


def has_synthetic_weights(cell: CellResult) -> bool:
    return any(record.synthetic_weights for record in cell.models)


# --- outputs files --------------------------------------------------------------------------------


def read_outputs(path: Path) -> dict[str, Any]:
    """The sample id -> output mapping of an outputs file (``harness.runner.save_outputs`` writes them)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParityError(f"outputs file {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParityError(f"cannot read outputs file {path}: {exc}") from None
    if not isinstance(document, dict):
        raise ParityError(f"outputs file {path} does not hold a sample id -> output object")
    return document


# --- output-level comparison ----------------------------------------------------------------------


@dataclass(frozen=True)
class OutputAgreement:
    """How closely a cell's per-sample outputs agree with the reference's.

    ``metrics``: agreement numbers (names in ``OUTPUT_GATEABLE`` are higher-is-better, in [0, 1];
    ``max_abs_diff`` and the ``unmatched_*`` counts are lower-is-better). ``worst_samples``: the most
    different samples first, each a dict with ``sample_id``, a one-line ``difference`` and the numbers.
    """

    compared: int
    metrics: Mapping[str, float]
    worst_samples: tuple[Mapping[str, Any], ...] = ()
    only_in_reference: tuple[str, ...] = ()
    only_in_cell: tuple[str, ...] = ()
    note: str | None = None

    def to_dict(self, listed_ids: int = 10) -> dict[str, Any]:
        data: dict[str, Any] = {
            "compared_samples": self.compared,
            "metrics": dict(self.metrics),
            "only_in_reference": len(self.only_in_reference),
            "only_in_cell": len(self.only_in_cell),
        }
        if self.only_in_reference:
            data["only_in_reference_ids"] = list(self.only_in_reference[:listed_ids])
        if self.only_in_cell:
            data["only_in_cell_ids"] = list(self.only_in_cell[:listed_ids])
        if self.note:
            data["note"] = self.note
        return data


@dataclass(frozen=True)
class _SampleDiff:
    score: float  # 0 when identical; larger is more different
    detail: Mapping[str, Any]


def _malformed(sample_id: str, what: str) -> ParityError:
    return ParityError(f"output of sample {sample_id!r} is not {what}")


def _visible(char: str) -> str:
    # A trailing ideographic space (U+3000) is a real change a reader could not otherwise see.
    if char.isprintable() and (char == " " or not char.isspace()):
        return char
    return f"\\u{ord(char):04x}"


def _quote(text: str, limit: int = 40) -> str:
    """``text`` in double quotes, shortened, with invisible characters written as ``\\uXXXX``."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(_visible(char) for char in json.dumps(short, ensure_ascii=False))


def _polygons(sample_id: str, boxes: Any) -> list[BaseGeometry]:
    if not isinstance(boxes, list):
        raise _malformed(sample_id, "a list of boxes")
    try:
        return [to_polygon(box) for box in boxes]
    except (ValueError, TypeError):
        raise _malformed(sample_id, "a list of polygons of at least 3 [x, y] points") from None


@dataclass(frozen=True)
class _BoxMatch:
    pairs: list[tuple[int, int]]  # (cell index, reference index)
    ious: list[float]
    reference_count: int
    cell_count: int

    @property
    def agreement(self) -> float:
        """Dice of the two box sets: 1.0 when every box has a partner (and when both are empty)."""
        total = self.reference_count + self.cell_count
        return 2 * len(self.pairs) / total if total else 1.0


def _match_boxes(cell: Sequence[BaseGeometry], reference: Sequence[BaseGeometry]) -> _BoxMatch:
    pairs = match_one_to_one(cell, reference, BOX_IOU_THRESHOLD)
    ious = [polygon_iou(cell[c], reference[r]) for c, r in pairs]
    return _BoxMatch(pairs, ious, len(reference), len(cell))


def _det_diff(sample_id: str, reference: Any, value: Any) -> tuple[_SampleDiff, _BoxMatch]:
    if not isinstance(reference, dict) or not isinstance(value, dict):
        raise _malformed(sample_id, "a detection output {'boxes': [...]}")
    match = _match_boxes(
        _polygons(sample_id, value.get("boxes")), _polygons(sample_id, reference.get("boxes"))
    )
    mean_iou = (
        sum(match.ious) / len(match.ious) if match.ious else (1.0 if not match.reference_count else 0.0)
    )
    detail = {
        "reference_boxes": match.reference_count,
        "boxes": match.cell_count,
        "matched": len(match.pairs),
        "mean_iou": round(mean_iou, 4),
        "difference": (
            f"{len(match.pairs)} of {match.reference_count} reference boxes matched "
            f"({match.cell_count} found), mean IoU {mean_iou:.3f}"
        ),
    }
    return _SampleDiff(1.0 - match.agreement * mean_iou, detail), match


def _compare_det(pairs: Sequence[tuple[str, Any, Any]]) -> tuple[dict[str, float], list[_SampleDiff]]:
    diffs, matches = [], []
    for sample_id, reference, value in pairs:
        diff, match = _det_diff(sample_id, reference, value)
        diffs.append(diff)
        matches.append(match)
    return _box_totals(matches), diffs


def _box_totals(matches: Sequence[_BoxMatch]) -> dict[str, float]:
    matched = sum(len(m.pairs) for m in matches)
    reference_boxes = sum(m.reference_count for m in matches)
    cell_boxes = sum(m.cell_count for m in matches)
    ious = [iou for m in matches for iou in m.ious]
    total = reference_boxes + cell_boxes
    return {
        "box_agreement": 2 * matched / total if total else 1.0,
        "mean_iou": sum(ious) / len(ious) if ious else (1.0 if not total else 0.0),
        "unmatched_reference_boxes": float(reference_boxes - matched),
        "unmatched_cell_boxes": float(cell_boxes - matched),
    }


def _text_of(sample_id: str, output: Any) -> str:
    if not isinstance(output, dict) or not isinstance(output.get("text"), str):
        raise _malformed(sample_id, "a recognition output {'text': str}")
    return str(output["text"])


def _compare_rec(pairs: Sequence[tuple[str, Any, Any]]) -> tuple[dict[str, float], list[_SampleDiff]]:
    diffs = []
    exact = 0
    agreement = 0.0
    for sample_id, reference, value in pairs:
        expected, got = _text_of(sample_id, reference), _text_of(sample_id, value)
        # Raw strings, spaces included: any change in what the model emits is a difference here.
        similarity = char_accuracy(got, expected, ignore_space=False)
        exact += got == expected
        agreement += similarity
        detail = {
            "reference": expected,
            "value": got,
            "char_agreement": round(similarity, 4),
            "difference": f"text {_quote(expected)} → {_quote(got)}",
        }
        diffs.append(_SampleDiff(0.0 if got == expected else 1.0 - similarity + 1e-9, detail))
    count = len(pairs)
    return {"text_exact_match": exact / count, "char_agreement": agreement / count}, diffs


def _lines_of(sample_id: str, output: Any) -> tuple[list[BaseGeometry], list[str]]:
    if not isinstance(output, list) or not all(isinstance(line, dict) for line in output):
        raise _malformed(sample_id, "a list of OCR lines [{'box', 'text'}]")
    texts = []
    for line in output:
        if not isinstance(line.get("text"), str):
            raise _malformed(sample_id, "a list of OCR lines with texts")
        texts.append(str(line["text"]))
    return _polygons(sample_id, [line.get("box") for line in output]), texts


def _compare_system(pairs: Sequence[tuple[str, Any, Any]]) -> tuple[dict[str, float], list[_SampleDiff]]:
    diffs, matches = [], []
    same_text = 0
    for sample_id, reference, value in pairs:
        ref_boxes, ref_texts = _lines_of(sample_id, reference)
        cell_boxes, cell_texts = _lines_of(sample_id, value)
        match = _match_boxes(cell_boxes, ref_boxes)
        matches.append(match)
        changed = [(ref_texts[r], cell_texts[c]) for c, r in match.pairs if ref_texts[r] != cell_texts[c]]
        agreeing = len(match.pairs) - len(changed)
        same_text += agreeing
        total = match.reference_count + match.cell_count
        text_agreement = 2 * agreeing / total if total else 1.0
        parts = [f"{_quote(a)} → {_quote(b)}" for a, b in changed[:3]]
        if len(changed) > 3:
            parts.append(f"{len(changed) - 3} more texts changed")
        if match.reference_count - len(match.pairs):
            parts.append(f"{match.reference_count - len(match.pairs)} reference lines not found")
        if match.cell_count - len(match.pairs):
            parts.append(f"{match.cell_count - len(match.pairs)} extra lines")
        detail = {
            "reference_lines": match.reference_count,
            "lines": match.cell_count,
            "matched": len(match.pairs),
            "text_changed": [{"reference": a, "value": b} for a, b in changed],
            "difference": "; ".join(parts) or "same lines and texts",
        }
        iou_shift = 1.0 - (sum(match.ious) / len(match.ious) if match.ious else 1.0)
        # Text and line differences rank first; box drift only orders otherwise identical images.
        diffs.append(_SampleDiff((1.0 - text_agreement) + iou_shift * 1e-3, detail))
    totals = _box_totals(matches)
    matched = sum(len(m.pairs) for m in matches)
    lines = sum(m.reference_count + m.cell_count for m in matches)
    metrics = {
        "line_agreement": totals["box_agreement"],
        "text_agreement": 2 * same_text / lines if lines else 1.0,
        "text_exact_match": same_text / matched if matched else (1.0 if not lines else 0.0),
        "mean_iou": totals["mean_iou"],
        "unmatched_reference_lines": totals["unmatched_reference_boxes"],
        "unmatched_cell_lines": totals["unmatched_cell_boxes"],
    }
    return metrics, diffs


def _logits_of(sample_id: str, output: Any) -> np.ndarray:
    try:
        array = np.asarray(output, dtype=np.float64)
    except (TypeError, ValueError):
        raise _malformed(sample_id, "a list of logits") from None
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise _malformed(sample_id, "a non-empty list of finite logits")
    return array


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norms)


def _compare_logits(pairs: Sequence[tuple[str, Any, Any]]) -> tuple[dict[str, float], list[_SampleDiff]]:
    diffs = []
    agree = 0
    cosines = []
    max_abs = 0.0
    for sample_id, reference, value in pairs:
        expected, got = _logits_of(sample_id, reference), _logits_of(sample_id, value)
        if expected.shape != got.shape:
            raise ParityError(
                f"sample {sample_id!r} has {got.size} logits against {expected.size} in the reference"
            )
        abs_diff = float(np.max(np.abs(got - expected)))
        cosine = _cosine(got, expected)
        reference_top1, top1 = int(np.argmax(expected)), int(np.argmax(got))
        flipped = reference_top1 != top1
        agree += not flipped
        cosines.append(cosine)
        max_abs = max(max_abs, abs_diff)
        difference = f"max |Δlogit| {abs_diff:.4g}, cosine {cosine:.6f}"
        if flipped:
            difference = f"top-1 {reference_top1} → {top1}, " + difference
        detail = {
            "reference_top1": reference_top1,
            "top1": top1,
            "max_abs_diff": abs_diff,
            "cosine": cosine,
            "difference": difference,
        }
        # A flipped prediction outranks any logit drift that kept the prediction.
        diffs.append(_SampleDiff(abs_diff + (math.inf if flipped else 0.0), detail))
    count = len(pairs)
    metrics = {
        "top1_agreement": agree / count,
        "max_abs_diff": max_abs,
        "mean_cosine": sum(cosines) / count,
        "min_cosine": min(cosines),
    }
    return metrics, diffs


Comparer = Callable[[Sequence[tuple[str, Any, Any]]], tuple[dict[str, float], list[_SampleDiff]]]


def _comparer(workload: str, task: str) -> Comparer | None:
    if workload == "ocr":
        return {"det": _compare_det, "rec": _compare_rec, "system": _compare_system}.get(task)
    if workload == "ernie":
        return _compare_logits  # every ERNIE task stores logits per sample
    return None


def compare_outputs(
    workload: str,
    task: str,
    reference_outputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    worst: int = 5,
) -> OutputAgreement:
    """Per-sample agreement of ``outputs`` with ``reference_outputs`` (both sample id -> output).

    Samples present on one side only are counted and listed, not compared. Raises ParityError when an
    output does not have the shape this workload and task store.
    """
    only_reference = tuple(sorted(set(reference_outputs) - set(outputs)))
    only_cell = tuple(sorted(set(outputs) - set(reference_outputs)))
    shared = [sid for sid in reference_outputs if sid in outputs]
    comparer = _comparer(workload, task)
    if comparer is None:
        return OutputAgreement(
            0, {}, (), only_reference, only_cell, note=f"no output comparison for {workload}/{task}"
        )
    if not shared:
        return OutputAgreement(
            0, {}, (), only_reference, only_cell, note="no sample in common with the reference"
        )
    metrics, diffs = comparer([(sid, reference_outputs[sid], outputs[sid]) for sid in shared])
    ranked = sorted((d for d in zip(shared, diffs, strict=True) if d[1].score > 0), key=lambda d: -d[1].score)
    worst_samples = tuple({"sample_id": sid, **diff.detail} for sid, diff in ranked[:worst])
    return OutputAgreement(len(shared), metrics, worst_samples, only_reference, only_cell)


# --- verdicts -------------------------------------------------------------------------------------


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _task_checks(
    cell: CellResult, reference: CellResult, gates: ParityGates
) -> tuple[dict[str, dict[str, Any]], list[str], list[str]]:
    """(per-metric numbers, failure messages, gated metrics missing from either cell)."""
    gated = gates.gated_metrics(cell.workload, cell.task)
    checks: dict[str, dict[str, Any]] = {}
    failures: list[str] = []
    missing = [m for m in gated if m not in cell.metrics or m not in reference.metrics]
    shared = [m for m in reference.metrics if m in cell.metrics]
    for metric in [*[m for m in gated if m in shared], *sorted(m for m in shared if m not in gated)]:
        expected, value = float(reference.metrics[metric]), float(cell.metrics[metric])
        entry: dict[str, Any] = {
            "reference": expected,
            "value": value,
            "ratio": value / expected if expected else None,
            "delta": value - expected,
            "gate": None,
            "passed": None,
        }
        if metric in gated:
            gate = gates.gate_for(metric, cell.precision)
            passed = value >= gate * expected - GATE_TOLERANCE
            entry.update(gate=gate, passed=passed)
            if not passed:
                failures.append(
                    f"{metric} {value:.4f} is {_percent(value / expected)} of {reference.precision.upper()} "
                    f"{expected:.4f}; gate {_percent(gate)}"
                )
        checks[metric] = entry
    return checks, failures, missing


def _output_failures(agreement: OutputAgreement, gates: ParityGates) -> list[str]:
    failures = []
    for name, minimum in gates.min_output.items():
        if name in agreement.metrics and agreement.metrics[name] < minimum - GATE_TOLERANCE:
            failures.append(f"{name.replace('_', ' ')} {agreement.metrics[name]:.4f} below {minimum:g}")
    return failures


def speedup(cell: CellResult, fp32: CellResult | None) -> float | None:
    """p50 latency of the FP32 cell divided by this cell's (2.0: twice as fast)."""
    if fp32 is None or fp32.latency_ms is None or cell.latency_ms is None or cell.latency_ms.p50 <= 0:
        return None
    return fp32.latency_ms.p50 / cell.latency_ms.p50


def _reference_info(reference: CellResult, run_id: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cell_id": reference.cell_id,
        "backend": reference.backend,
        "precision": reference.precision,
    }
    if run_id is not None:
        info["run_id"] = run_id
    return info


def _skipped(reason: str, speedup_vs_fp32: float | None, **extra: Any) -> dict[str, Any]:
    return {"verdict": "skipped", "reason": reason, **extra, "speedup_vs_fp32": speedup_vs_fp32}


def evaluate_parity(
    cell: CellResult,
    reference: CellResult | None,
    cell_outputs: Mapping[str, Any] | None,
    reference_outputs: Mapping[str, Any] | None,
    gates: ParityGates,
    fp32_same_backend: CellResult | None,
    *,
    reference_run_id: str | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``parity`` entry of ``cell`` against ``reference`` (see the module docstring for verdicts).

    ``cell_outputs`` / ``reference_outputs`` may be None (not stored or not readable): the output
    level is then left out with a note and the task level still decides. ``notes`` are kept as
    ``notes`` in the entry (e.g. why an outputs file could not be read).
    """
    speed = speedup(cell, fp32_same_backend)
    extra: dict[str, Any] = {"notes": list(notes)} if notes else {}
    if cell.status != "passed":
        return _skipped(f"cell {cell.status}: nothing to compare", speed, **extra)
    if reference is None:
        return _skipped(
            f"no {REFERENCE_PRECISION.upper()} {REFERENCE_BACKEND} reference cell for this "
            "workload, model, dataset and parameters",
            speed,
            **extra,
        )
    extra["reference"] = _reference_info(reference, reference_run_id)
    output: dict[str, Any] = {}
    worst: list[Mapping[str, Any]] = []
    agreement: OutputAgreement | None = None
    if cell_outputs is None or reference_outputs is None:
        missing = "reference" if reference_outputs is None else "this cell"
        output["note"] = f"no output-level comparison: no stored outputs for {missing}"
    else:
        agreement = compare_outputs(
            cell.workload, cell.task, reference_outputs, cell_outputs, gates.worst_samples
        )
        output = agreement.to_dict()
        worst = list(agreement.worst_samples)
    extra.update(output=output, worst_samples=worst)

    if has_synthetic_weights(cell) or has_synthetic_weights(reference):
        return _skipped("synthetic weights: no task accuracy to gate", speed, **extra)
    checks, task_failures, missing_metrics = _task_checks(cell, reference, gates)
    extra["task"] = checks
    if missing_metrics:
        where = "cell" if any(m not in cell.metrics for m in missing_metrics) else "reference"
        return _skipped(f"gated metric {', '.join(missing_metrics)} missing from the {where}", speed, **extra)
    if not gates.gated_metrics(cell.workload, cell.task):
        return _skipped(f"no gated metric defined for {cell.workload}/{cell.task}", speed, **extra)

    failures = task_failures + (_output_failures(agreement, gates) if agreement else [])
    if failures:
        return {"verdict": "fail", "reason": "; ".join(failures), **extra, "speedup_vs_fp32": speed}
    return {"verdict": "pass", "reason": None, **extra, "speedup_vs_fp32": speed}


def reference_parity(cell: CellResult, run_id: str | None = None) -> dict[str, Any]:
    """The entry of the in-run FP32 CPU cell that serves as everybody's reference."""
    if not cell.metrics and not cell.outputs_file:
        return _skipped(
            "reference cell has neither accuracy metrics nor stored outputs (performance-only run?)",
            1.0 if cell.latency_ms else None,
            role="reference",
        )
    return {
        "verdict": "pass",
        "reason": "reference: FP32 on CPU",
        "role": "reference",
        "reference": _reference_info(cell, run_id),
        "speedup_vs_fp32": 1.0 if cell.latency_ms else None,
    }


# --- references and whole runs --------------------------------------------------------------------


@dataclass
class ReferenceCell:
    """A reference cell with its outputs (None when its outputs file is absent or unreadable)."""

    cell: CellResult
    outputs: Mapping[str, Any] | None
    note: str | None = None


@dataclass
class ReferenceSet:
    """FP32 CPU cells of an earlier run, keyed by :func:`reference_key`."""

    run_id: str
    run_dir: Path
    cells: dict[ReferenceKey, ReferenceCell]
    notes: list[str] = field(default_factory=list)

    def find(self, cell: CellResult) -> ReferenceCell | None:
        return self.cells.get(reference_key(cell))


def _load_cell_outputs(run_dir: Path, cell: CellResult) -> tuple[Mapping[str, Any] | None, str | None]:
    if not cell.outputs_file:
        return None, f"{cell.cell_id}: no outputs file recorded"
    try:
        return read_outputs(run_dir / cell.outputs_file), None
    except ParityError as exc:
        return None, f"{cell.cell_id}: {exc}"


def load_reference(run_dir: Path) -> ReferenceSet:
    """The passed FP32 CPU cells of the run in ``run_dir`` and their stored outputs.

    Only ``results.json`` is required (PortbenchError otherwise); a missing outputs file only takes
    the output-level comparison away from that cell, with a note. No model is read.
    """
    results = load_results(run_dir)
    base = run_dir if run_dir.is_dir() else run_dir.parent
    cells: dict[ReferenceKey, ReferenceCell] = {}
    notes: list[str] = []
    for cell in results.cells:
        if not is_reference_cell(cell) or cell.status != "passed":
            continue
        outputs, note = _load_cell_outputs(base, cell)
        if note:
            notes.append(note)
        cells[reference_key(cell)] = ReferenceCell(cell, outputs, note)
    if not cells:
        raise ParityError(
            f"reference run {run_dir} has no passed {REFERENCE_PRECISION.upper()} {REFERENCE_BACKEND} cell"
        )
    return ReferenceSet(results.run_id, base, cells, notes)


def _in_run_references(results: RunResults) -> dict[ReferenceKey, CellResult]:
    return {
        reference_key(cell): cell
        for cell in results.cells
        if is_reference_cell(cell) and cell.status == "passed"
    }


def _fp32_by_backend(results: RunResults) -> dict[tuple[str, ReferenceKey], CellResult]:
    return {
        (cell.backend, reference_key(cell)): cell
        for cell in results.cells
        if cell.precision == REFERENCE_PRECISION and cell.status == "passed"
    }


def apply_parity(
    results: RunResults,
    run_dir: Path,
    reference: ReferenceSet | None = None,
    gates: ParityGates | None = None,
) -> None:
    """Fill ``cell.parity`` for every cell of ``results``.

    The reference for a cell is the passed FP32 CPU cell with the same :func:`reference_key`: from
    ``reference`` when given (an earlier run), otherwise from this run. Outputs files are read from
    ``run_dir``. A problem with one cell's outputs makes that cell ``skipped`` with the reason, never
    stops the others.
    """
    gates = gates or ParityGates()
    in_run = _in_run_references(results)
    fp32 = _fp32_by_backend(results)
    outputs_cache: dict[str, tuple[Mapping[str, Any] | None, str | None]] = {}

    def outputs_of(cell: CellResult) -> tuple[Mapping[str, Any] | None, str | None]:
        if cell.cell_id not in outputs_cache:
            outputs_cache[cell.cell_id] = _load_cell_outputs(run_dir, cell)
        return outputs_cache[cell.cell_id]

    for cell in results.cells:
        key = reference_key(cell)
        same_backend_fp32 = fp32.get((cell.backend, key))
        notes: list[str] = []
        reference_cell: CellResult | None
        reference_outputs: Mapping[str, Any] | None
        if reference is not None:
            found = reference.find(cell)
            reference_cell = found.cell if found else None
            reference_outputs = found.outputs if found else None
            if found and found.note:
                notes.append(f"reference {found.note}")
            run_id: str | None = reference.run_id
        else:
            reference_cell = in_run.get(key)
            if reference_cell is not None and reference_cell.cell_id == cell.cell_id:
                cell.parity = reference_parity(cell, results.run_id)
                continue
            reference_outputs, note = outputs_of(reference_cell) if reference_cell else (None, None)
            if note:
                notes.append(f"reference {note}")
            run_id = results.run_id
        cell_outputs, note = outputs_of(cell) if cell.status == "passed" else (None, None)
        if note and reference_cell is not None:
            notes.append(note)
        try:
            cell.parity = evaluate_parity(
                cell,
                reference_cell,
                cell_outputs,
                reference_outputs,
                gates,
                same_backend_fp32,
                reference_run_id=run_id,
                notes=notes,
            )
        except ParityError as exc:
            cell.parity = {
                "verdict": "skipped",
                "reason": f"outputs cannot be compared: {exc}",
                "speedup_vs_fp32": speedup(cell, same_backend_fp32),
            }


def verdict_counts(cells: Iterable[CellResult]) -> dict[str, int]:
    """How many cells got each verdict (cells without a parity entry are not counted)."""
    counts = {"pass": 0, "fail": 0, "skipped": 0}
    for cell in cells:
        if cell.parity:
            verdict = str(cell.parity.get("verdict"))
            counts[verdict] = counts.get(verdict, 0) + 1
    return counts
