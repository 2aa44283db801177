"""OCR metrics on hand-computed cases."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from portbench.suites.ocr.metrics import (
    DetectionCounts,
    EndToEndCounts,
    GroundTruthLine,
    RecognitionCounts,
    SystemCounts,
    char_accuracy,
    evaluate_detection,
    evaluate_end_to_end,
    evaluate_recognition,
    evaluate_system,
    match_one_to_one,
    normalize_text,
    polygon_iou,
    to_polygon,
)

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


@dataclass(frozen=True)
class Pred:
    points: np.ndarray
    text: str


def test_iou_of_overlapping_squares() -> None:
    # 2x2 squares sharing a 1x2 strip: intersection 2, union 6.
    assert polygon_iou(to_polygon(rect(0, 0, 2, 2)), to_polygon(rect(1, 0, 3, 2))) == pytest.approx(1 / 3)
    # 10x10 squares offset by (5, 5): intersection 25, union 175.
    assert polygon_iou(to_polygon(rect(0, 0, 10, 10)), to_polygon(rect(5, 5, 15, 15))) == pytest.approx(1 / 7)
    assert polygon_iou(to_polygon(rect(0, 0, 1, 1)), to_polygon(rect(5, 5, 6, 6))) == 0.0


def test_bow_tie_label_is_repaired_not_rejected() -> None:
    # Corners in crossing order: each lobe is a triangle of area 1 (2 wide, 1 tall), total 2.
    bow_tie = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], dtype=np.float32)
    assert to_polygon(bow_tie).area == pytest.approx(2.0)


def test_two_of_three_found_gives_two_thirds() -> None:
    truths = [
        GroundTruthLine(rect(0, 0, 100, 20), "a"),
        GroundTruthLine(rect(0, 40, 100, 60), "b"),
        GroundTruthLine(rect(0, 80, 100, 100), "c"),
    ]
    predictions = [rect(1, 1, 99, 19), rect(2, 41, 100, 60), rect(300, 300, 400, 320)]
    counts = evaluate_detection(predictions, truths)
    assert counts == DetectionCounts(true_positives=2, gt_count=3, pred_count=3)
    assert counts.precision == pytest.approx(2 / 3)
    assert counts.recall == pytest.approx(2 / 3)
    assert counts.hmean == pytest.approx(2 / 3)


def test_iou_threshold_is_inclusive() -> None:
    # The prediction covers exactly half of the truth and nothing else: IoU = 4 / 8 = 0.5.
    truths = [GroundTruthLine(rect(0, 0, 4, 2), "x")]
    assert evaluate_detection([rect(0, 0, 2, 2)], truths).true_positives == 1
    # Slightly less than half: IoU = 3.9 / 8 < 0.5.
    assert evaluate_detection([rect(0, 0, 1.95, 2)], truths).true_positives == 0


def test_matching_is_one_to_one() -> None:
    truths = [GroundTruthLine(rect(0, 0, 100, 20), "a")]
    counts = evaluate_detection([rect(0, 0, 100, 20), rect(1, 0, 100, 20)], truths)
    assert counts == DetectionCounts(true_positives=1, gt_count=1, pred_count=2)
    assert counts.precision == 0.5


def test_greedy_matching_prefers_the_higher_iou() -> None:
    # Truth 0 overlaps both predictions; prediction 1 fits it better (IoU 1.0 vs 0.8), so prediction 0
    # must not take it, leaving prediction 0 free for truth 1 (IoU 0.8 there too).
    truths = [to_polygon(rect(0, 0, 10, 10)), to_polygon(rect(2, 0, 12, 10))]
    predictions = [to_polygon(rect(1, 0, 11, 10)), to_polygon(rect(0, 0, 10, 10))]
    # pred0 vs truth0: inter 9x10=90, union 110 -> 0.818; pred0 vs truth1: same 0.818;
    # pred1 vs truth0: 1.0; pred1 vs truth1: inter 80, union 120 -> 0.667.
    assert sorted(match_one_to_one(predictions, truths)) == [(0, 1), (1, 0)]


def test_ignored_truth_is_neither_missed_nor_a_false_positive() -> None:
    truths = [GroundTruthLine(rect(0, 0, 100, 20), "a"), GroundTruthLine(rect(0, 50, 100, 70), "###", True)]
    # The second prediction lies inside the ignored region: set aside, not a false positive.
    counts = evaluate_detection([rect(0, 0, 100, 20), rect(10, 52, 90, 68)], truths)
    assert counts == DetectionCounts(true_positives=1, gt_count=1, pred_count=1)
    assert counts.precision == 1.0 and counts.recall == 1.0
    # A prediction only a quarter inside the ignored region still counts (as a false positive).
    outside = evaluate_detection([rect(0, 0, 100, 20), rect(0, 65, 100, 85)], truths)
    assert outside == DetectionCounts(true_positives=1, gt_count=1, pred_count=2)


def test_totals_sum_counts_instead_of_averaging_images() -> None:
    first = DetectionCounts(true_positives=1, gt_count=1, pred_count=1)  # hmean 1.0
    second = DetectionCounts(true_positives=0, gt_count=3, pred_count=1)  # hmean 0.0
    total = DetectionCounts.total([first, second])
    assert total == DetectionCounts(1, 4, 2)
    # P = 1/2, R = 1/4, H = 2 * (1/8) / (3/4) = 1/3; the per-image mean would be 0.5.
    assert total.hmean == pytest.approx(1 / 3)
    assert DetectionCounts().precision == 0.0 and DetectionCounts().hmean == 0.0


def test_text_normalisation_removes_ascii_spaces_only() -> None:
    assert normalize_text("a b  c") == "abc"
    assert normalize_text("a b", ignore_space=False) == "a b"
    assert normalize_text("全\u3000角") == "全\u3000角"
    assert normalize_text("，") != normalize_text(",")


def test_char_accuracy_is_one_minus_normalised_edit_distance() -> None:
    assert char_accuracy("abcd", "abed") == pytest.approx(0.75)  # one substitution in 4
    assert char_accuracy("abc", "") == 0.0
    assert char_accuracy("", "") == 1.0
    assert char_accuracy("a b c", "abc") == 1.0
    assert char_accuracy("a b c", "abc", ignore_space=False) == pytest.approx(1 - 2 / 5)
    assert char_accuracy("中国人", "中国") == pytest.approx(1 - 1 / 3)


def test_recognition_counts() -> None:
    counts = evaluate_recognition(["你好", "世介", "abd", "x y"], ["你好", "世界", "abc", "xy"])
    assert counts.lines == 4
    assert counts.exact == 2
    assert counts.line_accuracy == 0.5
    assert counts.char_accuracy == pytest.approx((1 + 0.5 + 2 / 3 + 1) / 4)
    merged = counts + RecognitionCounts(lines=1, exact=1, char_accuracy_sum=1.0)
    assert merged.line_accuracy == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="2 predictions for 1 labels"):
        evaluate_recognition(["a", "b"], ["a"])


def test_end_to_end_needs_position_and_text() -> None:
    truths = [GroundTruthLine(rect(0, 0, 100, 20), "价格12元"), GroundTruthLine(rect(0, 40, 100, 60), "abcd")]
    predictions = [
        Pred(rect(0, 0, 100, 20), "价格 12元"),  # right place, right text once spaces go
        Pred(rect(0, 40, 100, 60), "abed"),  # right place, one character wrong
        Pred(rect(0, 200, 100, 220), "abcd"),  # right text, wrong place
    ]
    counts = evaluate_end_to_end(predictions, truths)
    assert counts == EndToEndCounts(
        correct=1, matched=2, gt_count=2, pred_count=3, char_accuracy_sum=pytest.approx(1.75)
    )
    assert counts.precision == pytest.approx(1 / 3)
    assert counts.recall == pytest.approx(1 / 2)
    assert counts.hmean == pytest.approx(2 * (1 / 6) / (5 / 6))
    assert counts.char_accuracy == pytest.approx(0.875)


def test_system_counts_merge_per_subset() -> None:
    truths = [GroundTruthLine(rect(0, 0, 100, 20), "甲")]
    hit = evaluate_system([Pred(rect(0, 0, 100, 20), "甲")], truths)
    miss = evaluate_system([Pred(rect(0, 0, 100, 20), "乙")], truths)
    assert hit.detection == miss.detection == DetectionCounts(1, 1, 1)
    total = SystemCounts.total([hit, miss])
    assert total.detection == DetectionCounts(2, 2, 2)
    assert total.end_to_end.correct == 1
    metrics = total.as_dict()
    assert metrics["det_hmean"] == 1.0
    assert metrics["e2e_hmean"] == pytest.approx(0.5)
    assert metrics["e2e_char_accuracy"] == pytest.approx(0.5)
