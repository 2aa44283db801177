"""PP-OCRv4 input pre-processing, matching PaddleOCR's inference tools.

Detection follows ``DetResizeForTest`` (limit type 0) + ``NormalizeImage`` + ``ToCHWImage`` as used by
``tools/infer/predict_det.py``; recognition follows ``resize_norm_img`` and the width-sorted batching
of ``tools/infer/predict_rec.py``. Images are OpenCV-style BGR ``uint8`` arrays throughout, as
PaddleOCR reads them with ``cv2.imread``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from portbench.errors import DatasetError

DET_STRIDE = 32
# PaddleOCR applies the ImageNet RGB statistics to BGR channels as they come; the models were
# trained that way, so the order is kept on purpose.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

REC_HEIGHT = 48
REC_BASE_WIDTH = 320
REC_BATCH_SIZE = 6


@dataclass(frozen=True)
class DetPreprocessConfig:
    """Detection resize policy; PaddleOCR's ``predict_det`` defaults for PP-OCRv4 mobile."""

    limit_side_len: int = 960
    # "max": shrink so the longer side is at most the limit; "min": grow so the shorter side is at least it.
    limit_type: Literal["max", "min"] = "max"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.limit_side_len <= 0:
            raise ValueError(f"limit_side_len must be positive, got {self.limit_side_len}")
        if self.limit_type not in ("max", "min"):
            raise ValueError(f"limit_type must be 'max' or 'min', got {self.limit_type!r}")


@dataclass(frozen=True)
class DetInputMeta:
    """How a source image maps onto the detection tensor."""

    source_hw: tuple[int, int]
    resized_hw: tuple[int, int]

    @property
    def ratio_h(self) -> float:
        return self.resized_hw[0] / self.source_hw[0]

    @property
    def ratio_w(self) -> float:
        return self.resized_hw[1] / self.source_hw[1]


@dataclass(frozen=True)
class RecBatch:
    """One recognition batch: ``tensor`` [B, 3, 48, W] and the crop index of each row."""

    tensor: np.ndarray
    indices: tuple[int, ...]


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel BGR ``uint8`` view of ``image`` (grey and BGRA are converted)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = image.dtype if isinstance(image, np.ndarray) else type(image).__name__
        raise DatasetError(f"images must be uint8 numpy arrays, got {kind}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise DatasetError(f"images must be H x W (grey) or H x W x 3 (BGR), got shape {image.shape}")


def det_resize_hw(height: int, width: int, config: DetPreprocessConfig) -> tuple[int, int]:
    """Target (height, width) of the detection input: limited, then rounded to multiples of 32."""
    if height <= 0 or width <= 0:
        raise DatasetError(f"image has no pixels (shape {height} x {width})")
    limit = config.limit_side_len
    if config.limit_type == "max":
        longer = max(height, width)
        ratio = limit / longer if longer > limit else 1.0
    else:
        shorter = min(height, width)
        ratio = limit / shorter if shorter < limit else 1.0
    resized_h = max(round(int(height * ratio) / DET_STRIDE) * DET_STRIDE, DET_STRIDE)
    resized_w = max(round(int(width * ratio) / DET_STRIDE) * DET_STRIDE, DET_STRIDE)
    return resized_h, resized_w


def preprocess_det(
    image: np.ndarray, config: DetPreprocessConfig | None = None
) -> tuple[np.ndarray, DetInputMeta]:
    """BGR image -> float32 tensor [1, 3, H', W'] normalised with ImageNet statistics."""
    config = config or DetPreprocessConfig()
    bgr = as_bgr(image)
    height, width = bgr.shape[:2]
    resized_h, resized_w = det_resize_hw(height, width, config)
    resized = cv2.resize(bgr, (resized_w, resized_h))
    scale = np.float32(1.0 / 255.0)
    mean = np.asarray(config.mean, dtype=np.float32)
    std = np.asarray(config.std, dtype=np.float32)
    normalised = (resized.astype(np.float32) * scale - mean) / std
    tensor = np.ascontiguousarray(normalised.transpose(2, 0, 1)[np.newaxis], dtype=np.float32)
    return tensor, DetInputMeta(source_hw=(height, width), resized_hw=(resized_h, resized_w))


def rec_target_width(max_wh_ratio: float) -> int:
    """Batch width for the widest crop's aspect ratio; never narrower than 320 (ratio 320/48)."""
    return int(REC_HEIGHT * max(max_wh_ratio, REC_BASE_WIDTH / REC_HEIGHT))


def preprocess_rec(crop: np.ndarray, target_width: int) -> np.ndarray:
    """One crop -> float32 [3, 48, target_width] in [-1, 1], resized keeping aspect, zero-padded right."""
    bgr = as_bgr(crop)
    height, width = bgr.shape[:2]
    if height == 0 or width == 0:
        raise DatasetError(f"text crop has no pixels (shape {height} x {width})")
    resized_w = min(math.ceil(REC_HEIGHT * width / height), target_width)
    resized = cv2.resize(bgr, (resized_w, REC_HEIGHT)).astype(np.float32)
    padded = np.zeros((3, REC_HEIGHT, target_width), dtype=np.float32)
    padded[:, :, :resized_w] = (resized.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return padded


def rec_batches(crops: Sequence[np.ndarray], batch_size: int = REC_BATCH_SIZE) -> list[RecBatch]:
    """Crops grouped as PaddleOCR does: sorted by aspect ratio, ``batch_size`` per batch.

    Each batch is as wide as its widest crop needs, so sorting keeps padding (and compute) small;
    ``RecBatch.indices`` maps rows back to the caller's order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    ratios = [crop.shape[1] / crop.shape[0] if crop.shape[0] else 0.0 for crop in crops]
    # numpy's default argsort, as PaddleOCR: ties then fall into the same batches as the reference.
    order = [int(i) for i in np.argsort(np.asarray(ratios, dtype=np.float64))]
    batches: list[RecBatch] = []
    for start in range(0, len(order), batch_size):
        members = order[start : start + batch_size]
        width = rec_target_width(max(ratios[i] for i in members))
        tensor = np.stack([preprocess_rec(crops[i], width) for i in members])
        batches.append(RecBatch(tensor=tensor, indices=tuple(members)))
    return batches
