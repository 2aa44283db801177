"""DB (Differentiable Binarization) post-processing and text-line geometry, as PaddleOCR does it.

``db_postprocess`` turns the detector's probability map into quadrilaterals in source-image pixels
(PaddleOCR's ``DBPostProcess`` followed by ``TextDetector.filter_tag_det_res``); ``sorted_boxes`` puts
them in reading order and ``get_rotate_crop_image`` cuts one line out for recognition
(``tools/infer/predict_system.py`` and ``tools/infer/utility.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import pyclipper
from shapely.geometry import Polygon

# Boxes no wider or taller than this after clipping are dropped (PaddleOCR filter_tag_det_res).
MIN_BOX_SIDE_PX = 3
# Boxes whose top-left corners differ by less than this in y are one text row (PaddleOCR sorted_boxes).
SAME_ROW_PX = 10
# Crops at least this much taller than wide are vertical text and get turned 90 degrees.
VERTICAL_ASPECT = 1.5


@dataclass(frozen=True)
class DBPostprocessConfig:
    """PaddleOCR ``predict_det`` defaults for DB models (PP-OCRv4 mobile included)."""

    thresh: float = 0.3  # pixel probability that counts as text
    box_thresh: float = 0.6  # minimum mean probability inside a box
    unclip_ratio: float = 1.5  # how far shrunk text kernels are grown back
    max_candidates: int = 1000
    min_size: int = 3  # shortest side of a candidate box, in probability-map pixels
    use_dilation: bool = False
    score_mode: Literal["fast", "slow"] = "fast"

    def __post_init__(self) -> None:
        if not 0.0 <= self.thresh < 1.0 or not 0.0 <= self.box_thresh <= 1.0:
            raise ValueError(f"thresholds must lie in [0, 1): {self.thresh}, {self.box_thresh}")
        if self.unclip_ratio <= 0:
            raise ValueError(f"unclip_ratio must be positive, got {self.unclip_ratio}")
        if self.score_mode not in ("fast", "slow"):
            raise ValueError(f"score_mode must be 'fast' or 'slow', got {self.score_mode!r}")


@dataclass(frozen=True, eq=False)
class DetectedBox:
    """A text line: ``points`` float32 [4, 2] (x, y), clockwise from top-left, source pixels."""

    points: np.ndarray
    score: float


def _probability_map(prob_map: np.ndarray) -> np.ndarray:
    squeezed = np.asarray(prob_map, dtype=np.float32)
    while squeezed.ndim > 2 and squeezed.shape[0] == 1:
        squeezed = squeezed[0]
    if squeezed.ndim != 2:
        raise ValueError(f"expected one probability map [H, W] (or [1, 1, H, W]), got {prob_map.shape}")
    return squeezed


def mini_box(contour: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of ``contour`` as [4, 2] (tl, tr, br, bl by PaddleOCR's rule) + short side."""
    rect = cv2.minAreaRect(contour)
    corners = sorted(cv2.boxPoints(rect).tolist(), key=lambda p: p[0])
    # Of the two left-most corners the upper is top-left; equal heights resolve as in PaddleOCR.
    top_left, bottom_left = (
        (corners[0], corners[1]) if corners[1][1] > corners[0][1] else (corners[1], corners[0])
    )
    top_right, bottom_right = (
        (corners[2], corners[3]) if corners[3][1] > corners[2][1] else (corners[3], corners[2])
    )
    box = np.array([top_left, top_right, bottom_right, bottom_left], dtype=np.float32)
    return box, float(min(rect[1]))


def box_score_fast(prob: np.ndarray, box: np.ndarray) -> float:
    """Mean probability inside the quadrilateral ``box`` (rasterised with integer corners)."""
    height, width = prob.shape
    x_min = int(np.clip(np.floor(box[:, 0].min()), 0, width - 1))
    x_max = int(np.clip(np.ceil(box[:, 0].max()), 0, width - 1))
    y_min = int(np.clip(np.floor(box[:, 1].min()), 0, height - 1))
    y_max = int(np.clip(np.ceil(box[:, 1].max()), 0, height - 1))
    mask = np.zeros((y_max - y_min + 1, x_max - x_min + 1), dtype=np.uint8)
    shifted = box - np.array([x_min, y_min], dtype=np.float32)
    cv2.fillPoly(mask, [shifted.astype(np.int32)], 1)
    return float(cv2.mean(prob[y_min : y_max + 1, x_min : x_max + 1], mask)[0])


def box_score_slow(prob: np.ndarray, contour: np.ndarray) -> float:
    """Mean probability inside the contour itself (slower, tighter for curved text)."""
    return box_score_fast(prob, contour.reshape(-1, 2).astype(np.float32))


def unclip_distance(box: np.ndarray, unclip_ratio: float) -> float:
    """DB's offset: area * ratio / perimeter of the shrunk polygon."""
    polygon = Polygon(box)
    return float(polygon.area * unclip_ratio / polygon.length)


def unclip(box: np.ndarray, unclip_ratio: float) -> np.ndarray | None:
    """Grow ``box`` by the DB offset with rounded joins; ``None`` if it does not stay one polygon."""
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(box.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    expanded = offset.Execute(unclip_distance(box, unclip_ratio))
    if len(expanded) != 1:
        return None
    return np.asarray(expanded[0], dtype=np.float32).reshape(-1, 1, 2)


def order_points_clockwise(points: np.ndarray) -> np.ndarray:
    """Four points as top-left, top-right, bottom-right, bottom-left (by x + y and y - x extremes)."""
    ordered = np.zeros((4, 2), dtype=np.float32)
    sums = points.sum(axis=1)
    first, third = int(np.argmin(sums)), int(np.argmax(sums))
    ordered[0], ordered[2] = points[first], points[third]
    rest = np.delete(points, (first, third), axis=0)
    differences = np.diff(rest, axis=1).ravel()
    ordered[1], ordered[3] = rest[int(np.argmin(differences))], rest[int(np.argmax(differences))]
    return ordered


def db_postprocess(
    prob_map: np.ndarray, source_hw: tuple[int, int], config: DBPostprocessConfig | None = None
) -> list[DetectedBox]:
    """Text boxes from a DB probability map, in the coordinates of a ``source_hw`` image."""
    config = config or DBPostprocessConfig()
    prob = _probability_map(prob_map)
    map_h, map_w = prob.shape
    source_h, source_w = source_hw
    bitmap: np.ndarray = (prob > config.thresh).astype(np.uint8)
    if config.use_dilation:
        bitmap = cv2.dilate(bitmap, np.ones((2, 2), dtype=np.uint8))
    contours, _ = cv2.findContours(bitmap * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)

    boxes: list[DetectedBox] = []
    for contour in contours[: config.max_candidates]:
        points, short_side = mini_box(contour)
        if short_side < config.min_size:
            continue
        fast = config.score_mode == "fast"
        score = box_score_fast(prob, points) if fast else box_score_slow(prob, contour)
        if score < config.box_thresh:
            continue
        expanded = unclip(points, config.unclip_ratio)
        if expanded is None:
            continue
        box, short_side = mini_box(expanded)
        if short_side < config.min_size + 2:
            continue
        box[:, 0] = np.clip(np.round(box[:, 0] / map_w * source_w), 0, source_w)
        box[:, 1] = np.clip(np.round(box[:, 1] / map_h * source_h), 0, source_h)
        box = order_points_clockwise(box.astype(np.int32).astype(np.float32))
        # Integer pixel positions inside the image, as PaddleOCR's clip_det_res.
        box[:, 0] = np.trunc(np.clip(box[:, 0], 0, source_w - 1))
        box[:, 1] = np.trunc(np.clip(box[:, 1], 0, source_h - 1))
        width = int(np.linalg.norm(box[0] - box[1]))
        height = int(np.linalg.norm(box[0] - box[3]))
        if width <= MIN_BOX_SIDE_PX or height <= MIN_BOX_SIDE_PX:
            continue
        boxes.append(DetectedBox(points=box, score=score))
    return boxes


def sorted_boxes(boxes: Sequence[DetectedBox]) -> list[DetectedBox]:
    """Reading order: by top-left y then x, then left-to-right among boxes within one 10 px row."""
    ordered = sorted(boxes, key=lambda b: (float(b.points[0][1]), float(b.points[0][0])))
    # PaddleOCR's insertion pass: a box moves left past neighbours on the same row that lie to its right.
    for i in range(len(ordered) - 1):
        for j in range(i, -1, -1):
            upper, lower = ordered[j].points[0], ordered[j + 1].points[0]
            if abs(lower[1] - upper[1]) < SAME_ROW_PX and lower[0] < upper[0]:
                ordered[j], ordered[j + 1] = ordered[j + 1], ordered[j]
            else:
                break
    return ordered


def get_rotate_crop_image(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The quadrilateral ``points`` (tl, tr, br, bl) warped to an upright rectangle.

    Crops at least 1.5 times taller than wide are vertical text and are turned 90 degrees
    counter-clockwise so recognition reads them as a row.
    """
    quad = np.asarray(points, dtype=np.float32).reshape(4, 2)
    crop_w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    crop_h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    if crop_w < 1 or crop_h < 1:
        raise ValueError(f"text box {quad.tolist()} encloses no pixels")
    target = np.array([[0, 0], [crop_w, 0], [crop_w, crop_h], [0, crop_h]], dtype=np.float32)
    transform = cv2.getPerspectiveTransform(quad, target)
    crop = cv2.warpPerspective(
        image, transform, (crop_w, crop_h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if crop.shape[0] / crop.shape[1] >= VERTICAL_ASPECT:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)
