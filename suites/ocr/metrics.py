"""OCR accuracy: detection, recognition and end-to-end scores as counts that add up across images.

Conventions (chosen to match PaddleOCR's evaluators, so numbers are comparable with published ones):

- Detection follows ICDAR 2015 as PaddleOCR's ``DetectionIoUEvaluator`` does: a prediction that lies
  mostly (intersection over its own area > 0.5) inside a ground-truth region marked *ignore* is set
  aside, counted neither as a hit nor as a false positive; ignored regions never count as misses.
  Remaining predictions and ground truth are matched one-to-one, greedily by descending IoU, with
  IoU >= 0.5 (ties by input order, so the result is deterministic).
- Scores over a set of images come from summed counts (true positives, ground truth, predictions),
  never from averaging per-image ratios; an empty denominator gives 0.0, as ICDAR's totals do.
- Text is compared after ``normalize_text``: ASCII spaces are removed (PaddleOCR ``RecMetric`` with
  ``ignore_space=True``, its default). Nothing else is folded, in particular not full-width against
  half-width forms: the PP-OCR dictionary holds both, and telling "，" from "," is part of the task.
- Character accuracy is 1 - normalised Levenshtein distance (distance / length of the longer
  string), averaged over lines: PaddleOCR's ``norm_edit_dis``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Protocol, TypeVar

import numpy as np
from rapidfuzz.distance import Levenshtein
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from shapely.validation import make_valid

IOU_THRESHOLD = 0.5
IGNORE_OVERLAP = 0.5


class TextRegion(Protocol):
    """Anything with a polygon and a text (``OcrLine`` and ``GroundTruthLine`` both are)."""

    @property
    def points(self) -> np.ndarray: ...

    @property
    def text(self) -> str: ...


@dataclass(frozen=True, eq=False)
class GroundTruthLine:
    """A labelled line: polygon [N, 2] (N >= 3), its text, and whether it is a don't-care region."""

    points: np.ndarray
    text: str
    ignore: bool = False


def normalize_text(text: str, ignore_space: bool = True) -> str:
    return text.replace(" ", "") if ignore_space else text


def to_polygon(points: np.ndarray | Sequence[Sequence[float]]) -> BaseGeometry:
    """A valid shapely polygon; self-intersecting labels are repaired rather than rejected."""
    coords = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(coords) < 3:
        raise ValueError(f"a text polygon needs at least 3 points, got {len(coords)}")
    polygon = Polygon(coords)
    if polygon.is_valid:
        return polygon
    # make_valid splits a bow-tie into its two lobes; buffer(0) then drops stray line parts.
    return make_valid(polygon).buffer(0)


def polygon_iou(a: BaseGeometry, b: BaseGeometry) -> float:
    union = a.union(b).area
    return float(a.intersection(b).area / union) if union > 0 else 0.0


def match_one_to_one(
    predictions: Sequence[BaseGeometry], truths: Sequence[BaseGeometry], iou_threshold: float = IOU_THRESHOLD
) -> list[tuple[int, int]]:
    """(prediction index, truth index) pairs: greedy by descending IoU, each index used once."""
    candidates: list[tuple[float, int, int]] = []
    for p, prediction in enumerate(predictions):
        for t, truth in enumerate(truths):
            if not prediction.intersects(truth):
                continue
            iou = polygon_iou(prediction, truth)
            if iou >= iou_threshold:
                candidates.append((-iou, p, t))
    candidates.sort()
    used_p: set[int] = set()
    used_t: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for _, p, t in candidates:
        if p not in used_p and t not in used_t:
            used_p.add(p)
            used_t.add(t)
            pairs.append((p, t))
    return pairs


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def _hmean(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


CountsT = TypeVar("CountsT", bound="_Counts")


@dataclass(frozen=True)
class _Counts:
    """Integer/float tallies that add field by field."""

    def __add__(self: CountsT, other: CountsT) -> CountsT:
        return type(self)(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @classmethod
    def total(cls: type[CountsT], items: Iterable[CountsT]) -> CountsT:
        result = cls()
        for item in items:
            result = result + item
        return result


@dataclass(frozen=True)
class DetectionCounts(_Counts):
    true_positives: int = 0
    gt_count: int = 0  # ground truth not marked ignore
    pred_count: int = 0  # predictions not set aside by an ignored region

    @property
    def precision(self) -> float:
        return _ratio(self.true_positives, self.pred_count)

    @property
    def recall(self) -> float:
        return _ratio(self.true_positives, self.gt_count)

    @property
    def hmean(self) -> float:
        return _hmean(self.precision, self.recall)

    def as_dict(self) -> dict[str, float]:
        return {"det_precision": self.precision, "det_recall": self.recall, "det_hmean": self.hmean}


@dataclass(frozen=True)
class RecognitionCounts(_Counts):
    lines: int = 0
    exact: int = 0
    char_accuracy_sum: float = 0.0  # sum over lines of 1 - normalised edit distance

    @property
    def line_accuracy(self) -> float:
        return _ratio(self.exact, self.lines)

    @property
    def char_accuracy(self) -> float:
        return _ratio(self.char_accuracy_sum, self.lines)

    def as_dict(self) -> dict[str, float]:
        return {"rec_line_accuracy": self.line_accuracy, "rec_char_accuracy": self.char_accuracy}


@dataclass(frozen=True)
class EndToEndCounts(_Counts):
    correct: int = 0  # matched and text equal
    matched: int = 0  # matched by position, whatever the text
    gt_count: int = 0
    pred_count: int = 0
    char_accuracy_sum: float = 0.0  # over matched pairs

    @property
    def precision(self) -> float:
        return _ratio(self.correct, self.pred_count)

    @property
    def recall(self) -> float:
        return _ratio(self.correct, self.gt_count)

    @property
    def hmean(self) -> float:
        return _hmean(self.precision, self.recall)

    @property
    def char_accuracy(self) -> float:
        """Mean character accuracy over position-matched pairs (0.0 when none matched)."""
        return _ratio(self.char_accuracy_sum, self.matched)

    def as_dict(self) -> dict[str, float]:
        return {
            "e2e_precision": self.precision,
            "e2e_recall": self.recall,
            "e2e_hmean": self.hmean,
            "e2e_char_accuracy": self.char_accuracy,
        }


def char_accuracy(predicted: str, expected: str, ignore_space: bool = True) -> float:
    """1 - normalised edit distance after ``normalize_text`` (1.0 for two empty strings)."""
    a, b = normalize_text(predicted, ignore_space), normalize_text(expected, ignore_space)
    return 1.0 - float(Levenshtein.normalized_distance(a, b))


def evaluate_recognition(
    predicted: Sequence[str], expected: Sequence[str], ignore_space: bool = True
) -> RecognitionCounts:
    """Line and character accuracy of recognised crops against their labels, pairwise."""
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} labels")
    exact = sum(
        normalize_text(p, ignore_space) == normalize_text(e, ignore_space)
        for p, e in zip(predicted, expected, strict=True)
    )
    accuracy = sum(char_accuracy(p, e, ignore_space) for p, e in zip(predicted, expected, strict=True))
    return RecognitionCounts(lines=len(expected), exact=exact, char_accuracy_sum=accuracy)


@dataclass(frozen=True)
class _Matching:
    pairs: list[tuple[int, int]]  # indices into the cared-for predictions / truths
    care_predictions: list[int]
    care_truths: list[int]


def _match_image(
    predicted: Sequence[np.ndarray], truths: Sequence[GroundTruthLine], iou_threshold: float
) -> _Matching:
    pred_polygons = [to_polygon(p) for p in predicted]
    truth_polygons = [to_polygon(t.points) for t in truths]
    ignored = [truth_polygons[i] for i, t in enumerate(truths) if t.ignore]
    care_truths = [i for i, t in enumerate(truths) if not t.ignore]
    care_predictions = []
    for index, polygon in enumerate(pred_polygons):
        inside_ignored = polygon.area > 0 and any(
            polygon.intersection(region).area / polygon.area > IGNORE_OVERLAP for region in ignored
        )
        if not inside_ignored:
            care_predictions.append(index)
    pairs = match_one_to_one(
        [pred_polygons[i] for i in care_predictions],
        [truth_polygons[i] for i in care_truths],
        iou_threshold,
    )
    return _Matching(pairs, care_predictions, care_truths)


def evaluate_detection(
    predicted: Sequence[np.ndarray],
    truths: Sequence[GroundTruthLine],
    iou_threshold: float = IOU_THRESHOLD,
) -> DetectionCounts:
    """Detection counts for one image; ``predicted`` are polygons [N, 2]."""
    matching = _match_image(predicted, truths, iou_threshold)
    return DetectionCounts(
        true_positives=len(matching.pairs),
        gt_count=len(matching.care_truths),
        pred_count=len(matching.care_predictions),
    )


def evaluate_end_to_end(
    predicted: Sequence[TextRegion],
    truths: Sequence[GroundTruthLine],
    iou_threshold: float = IOU_THRESHOLD,
    ignore_space: bool = True,
) -> EndToEndCounts:
    """End-to-end counts for one image: a hit needs a position match and equal normalised text."""
    matching = _match_image([p.points for p in predicted], truths, iou_threshold)
    correct = 0
    accuracy = 0.0
    for p, t in matching.pairs:
        text = predicted[matching.care_predictions[p]].text
        label = truths[matching.care_truths[t]].text
        correct += normalize_text(text, ignore_space) == normalize_text(label, ignore_space)
        accuracy += char_accuracy(text, label, ignore_space)
    return EndToEndCounts(
        correct=correct,
        matched=len(matching.pairs),
        gt_count=len(matching.care_truths),
        pred_count=len(matching.care_predictions),
        char_accuracy_sum=accuracy,
    )


@dataclass(frozen=True)
class SystemCounts:
    """Detection and end-to-end counts of one image (or, summed, of a set of images)."""

    detection: DetectionCounts = DetectionCounts()
    end_to_end: EndToEndCounts = EndToEndCounts()

    def __add__(self, other: SystemCounts) -> SystemCounts:
        return SystemCounts(self.detection + other.detection, self.end_to_end + other.end_to_end)

    @classmethod
    def total(cls, items: Iterable[SystemCounts]) -> SystemCounts:
        result = cls()
        for item in items:
            result = result + item
        return result

    def as_dict(self) -> dict[str, float]:
        return {**self.detection.as_dict(), **self.end_to_end.as_dict()}


def evaluate_system(
    predicted: Sequence[TextRegion],
    truths: Sequence[GroundTruthLine],
    iou_threshold: float = IOU_THRESHOLD,
    ignore_space: bool = True,
) -> SystemCounts:
    """Detection and end-to-end counts of one image's pipeline output (one matching serves both)."""
    end_to_end = evaluate_end_to_end(predicted, truths, iou_threshold, ignore_space)
    detection = DetectionCounts(end_to_end.matched, end_to_end.gt_count, end_to_end.pred_count)
    return SystemCounts(detection=detection, end_to_end=end_to_end)
