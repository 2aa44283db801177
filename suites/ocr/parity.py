"""How two runs' OCR outputs are compared for parity: boxes matched one-to-one at IoU 0.5, texts
compared raw (spaces included), so any change in what the models emit shows.

Outputs as the OCR tasks store them (``workload.py``): det ``{"boxes": [[[x, y], ...], ...]}``, rec
``{"text": str}``, system ``[{"box": [[x, y], ...], "text": str}, ...]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry

from portbench.harness.workload import Metric, OutputComparison, OutputsMalformed, SampleDiff, TaskInfo
from portbench.suites.ocr.metrics import char_accuracy, match_one_to_one, polygon_iou, to_polygon

BOX_IOU_THRESHOLD = 0.5


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
        raise OutputsMalformed(sample_id, "a list of boxes")
    try:
        return [to_polygon(box) for box in boxes]
    except (ValueError, TypeError):
        raise OutputsMalformed(sample_id, "a list of polygons of at least 3 [x, y] points") from None


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


def _det_diff(sample_id: str, reference: Any, value: Any) -> tuple[SampleDiff, _BoxMatch]:
    if not isinstance(reference, dict) or not isinstance(value, dict):
        raise OutputsMalformed(sample_id, "a detection output {'boxes': [...]}")
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
    return SampleDiff(1.0 - match.agreement * mean_iou, detail), match


def compare_det(pairs: Sequence[tuple[str, Any, Any]]) -> OutputComparison:
    diffs, matches = [], []
    for sample_id, reference, value in pairs:
        diff, match = _det_diff(sample_id, reference, value)
        diffs.append(diff)
        matches.append(match)
    return OutputComparison(_box_totals(matches), diffs)


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
        raise OutputsMalformed(sample_id, "a recognition output {'text': str}")
    return str(output["text"])


def compare_rec(pairs: Sequence[tuple[str, Any, Any]]) -> OutputComparison:
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
        diffs.append(SampleDiff(0.0 if got == expected else 1.0 - similarity + 1e-9, detail))
    count = len(pairs)
    return OutputComparison({"text_exact_match": exact / count, "char_agreement": agreement / count}, diffs)


def _lines_of(sample_id: str, output: Any) -> tuple[list[BaseGeometry], list[str]]:
    if not isinstance(output, list) or not all(isinstance(line, dict) for line in output):
        raise OutputsMalformed(sample_id, "a list of OCR lines [{'box', 'text'}]")
    texts = []
    for line in output:
        if not isinstance(line.get("text"), str):
            raise OutputsMalformed(sample_id, "a list of OCR lines with texts")
        texts.append(str(line["text"]))
    return _polygons(sample_id, [line.get("box") for line in output]), texts


def compare_system(pairs: Sequence[tuple[str, Any, Any]]) -> OutputComparison:
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
        diffs.append(SampleDiff((1.0 - text_agreement) + iou_shift * 1e-3, detail))
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
    return OutputComparison(metrics, diffs)




# --- what the OCR tasks declare ---------------------------------------------------------------------

_BOX_AGREEMENT = (
    Metric("box_agreement", description="Dice of the matched box sets (IoU >= 0.5)"),
    Metric("mean_iou", description="mean IoU of matched boxes"),
    Metric("unmatched_reference_boxes", higher_is_better=False),
    Metric("unmatched_cell_boxes", higher_is_better=False),
)

TASK_INFO: dict[str, TaskInfo] = {
    "det": TaskInfo(
        "det", "text detection (DB) on page images",
        metrics=(Metric("det_precision"), Metric("det_recall"), Metric("det_hmean")),
        headline=("det_hmean",), output_metrics=_BOX_AGREEMENT, compare_outputs=compare_det,
    ),
    "rec": TaskInfo(
        "rec", "text line recognition (CTC) on line crops",
        metrics=(Metric("rec_char_accuracy"), Metric("rec_line_accuracy")),
        headline=("rec_char_accuracy",),
        shown=("rec_char_accuracy", "rec_line_accuracy"),
        output_metrics=(Metric("text_exact_match"), Metric("char_agreement")),
        compare_outputs=compare_rec,
    ),
    "system": TaskInfo(
        "system", "detection, crops and recognition end to end on page images",
        # The pipeline's detection is scored too (one matching serves both): compared side by side.
        metrics=(
            Metric("det_precision"), Metric("det_recall"), Metric("det_hmean"),
            Metric("e2e_hmean"), Metric("e2e_precision"), Metric("e2e_recall"), Metric("e2e_char_accuracy"),
        ),
        headline=("e2e_hmean",),
        shown=("det_hmean", "e2e_hmean"),
        output_metrics=(
            Metric("line_agreement"), Metric("text_agreement"), Metric("text_exact_match"),
            Metric("mean_iou"),
            Metric("unmatched_reference_lines", higher_is_better=False),
            Metric("unmatched_cell_lines", higher_is_better=False),
        ),
        compare_outputs=compare_system,
    ),
}
