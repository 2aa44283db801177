"""DB post-processing, reading order and line cropping on synthetic inputs."""

from __future__ import annotations

import numpy as np
import pytest

from portbench.suites.ocr.postprocess import (
    DBPostprocessConfig,
    DetectedBox,
    db_postprocess,
    get_rotate_crop_image,
    order_points_clockwise,
    sorted_boxes,
)

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

MAP_H, MAP_W = 200, 300
TEXT_PROB = 0.9


def prob_map(*blocks: tuple[int, int, int, int, float]) -> np.ndarray:
    """[1, 1, H, W] map with filled blocks (x0, y0, x1, y1 inclusive, probability)."""
    prob = np.zeros((1, 1, MAP_H, MAP_W), dtype=np.float32)
    for x0, y0, x1, y1, value in blocks:
        prob[0, 0, y0 : y1 + 1, x0 : x1 + 1] = value
    return prob


def expected_unclipped(x0: int, y0: int, x1: int, y1: int, ratio: float = 1.5) -> np.ndarray:
    """By hand: the contour runs through pixel centres, so the kernel is (x1-x0) by (y1-y0); DB grows
    it by area * ratio / perimeter on every side (round joins keep the bounding rectangle)."""
    width, height = x1 - x0, y1 - y0
    distance = width * height * ratio / (2 * (width + height))
    left, top, right, bottom = x0 - distance, y0 - distance, x1 + distance, y1 + distance
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]])


def test_two_rectangles_give_two_boxes_grown_by_the_unclip_distance() -> None:
    first, second = (30, 20, 129, 39), (50, 100, 249, 129)
    boxes = db_postprocess(prob_map((*first, TEXT_PROB), (*second, TEXT_PROB)), (MAP_H, MAP_W))
    assert len(boxes) == 2
    boxes = sorted(boxes, key=lambda b: float(b.points[0][1]))
    for box, block in zip(boxes, (first, second), strict=True):
        assert box.points.shape == (4, 2) and box.points.dtype == np.float32
        # distance for the first block: 99 * 19 * 1.5 / 236 = 11.96 px
        np.testing.assert_allclose(box.points, expected_unclipped(*block), atol=1.5)
        # Every pixel inside the shrunk box has the same probability.
        assert box.score == pytest.approx(TEXT_PROB, abs=1e-5)


def test_points_run_clockwise_from_top_left() -> None:
    [box] = db_postprocess(prob_map((100, 60, 199, 89, TEXT_PROB)), (MAP_H, MAP_W))
    top_left, top_right, bottom_right, bottom_left = box.points
    assert top_left[0] < top_right[0] and bottom_left[0] < bottom_right[0]
    assert top_left[1] < bottom_left[1] and top_right[1] < bottom_right[1]


def test_low_mean_probability_is_not_text() -> None:
    # Above the pixel threshold (0.3) but below box_thresh (0.6).
    assert db_postprocess(prob_map((30, 20, 129, 39, 0.5)), (MAP_H, MAP_W)) == []
    lenient = DBPostprocessConfig(box_thresh=0.4)
    assert len(db_postprocess(prob_map((30, 20, 129, 39, 0.5)), (MAP_H, MAP_W), lenient)) == 1


def test_tiny_blob_is_dropped() -> None:
    # A 2 x 2 blob: its minimum rectangle's short side is 1 px, below min_size 3.
    assert db_postprocess(prob_map((10, 10, 11, 11, 0.99)), (MAP_H, MAP_W)) == []


def test_rescaling_to_a_twice_larger_source_doubles_coordinates() -> None:
    block = (30, 20, 129, 39)
    prob = prob_map((*block, TEXT_PROB))
    [small] = db_postprocess(prob, (MAP_H, MAP_W))
    [large] = db_postprocess(prob, (2 * MAP_H, 2 * MAP_W))
    np.testing.assert_allclose(large.points, 2 * small.points, atol=1.0)
    np.testing.assert_allclose(large.points, 2 * expected_unclipped(*block), atol=3.0)


def test_boxes_are_clipped_to_the_image() -> None:
    # Touches the top-left corner; unclipping would push it to negative coordinates.
    [box] = db_postprocess(prob_map((0, 0, 99, 19, TEXT_PROB)), (MAP_H, MAP_W))
    assert box.points.min() == 0.0
    assert box.points[:, 0].max() <= MAP_W - 1 and box.points[:, 1].max() <= MAP_H - 1


def test_order_points_clockwise_from_any_order() -> None:
    shuffled = np.array([[10, 40], [50, 8], [12, 10], [52, 38]], dtype=np.float32)
    expected = np.array([[12, 10], [50, 8], [52, 38], [10, 40]], dtype=np.float32)
    np.testing.assert_array_equal(order_points_clockwise(shuffled), expected)


def box_at(x: float, y: float) -> DetectedBox:
    points = np.array([[x, y], [x + 30, y], [x + 30, y + 10], [x, y + 10]], dtype=np.float32)
    return DetectedBox(points=points, score=1.0)


def test_sorted_boxes_reads_rows_left_to_right() -> None:
    boxes = [box_at(100, 50), box_at(10, 200), box_at(10, 55), box_at(50, 10)]
    ordered = [tuple(b.points[0]) for b in sorted_boxes(boxes)]
    # (10, 55) is on the same row as (100, 50) (5 px apart) and to its left.
    assert ordered == [(50, 10), (10, 55), (100, 50), (10, 200)]
    # 10 px apart is a new row: plain top-to-bottom order.
    far = [tuple(b.points[0]) for b in sorted_boxes([box_at(100, 50), box_at(10, 60)])]
    assert far == [(100, 50), (10, 60)]


def gradient_image(height: int = 120, width: int = 200) -> np.ndarray:
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs % 256, ys % 256, (xs + ys) % 256], axis=2)
    return image.astype(np.uint8)


def test_axis_aligned_crop_is_the_pixels_inside() -> None:
    image = gradient_image()
    points = np.array([[10, 20], [110, 20], [110, 50], [10, 50]], dtype=np.float32)
    crop = get_rotate_crop_image(image, points)
    assert crop.shape == (30, 100, 3)
    np.testing.assert_allclose(crop.astype(int), image[20:50, 10:110].astype(int), atol=1)


def test_tall_crop_is_turned_to_a_row() -> None:
    image = np.full((120, 200, 3), 255, dtype=np.uint8)
    image[10:20, 40:60] = 0  # dark band across the top of a 20 x 60 vertical box
    points = np.array([[40, 10], [60, 10], [60, 70], [40, 70]], dtype=np.float32)
    crop = get_rotate_crop_image(image, points)
    assert crop.shape == (20, 60, 3)
    # Counter-clockwise turn: the box's top edge becomes the crop's left edge.
    assert crop[:, :8].mean() < 30
    assert crop[:, 12:].mean() > 225
