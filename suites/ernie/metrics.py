"""Classification scores: accuracy and macro-F1 (sklearn's definition, without sklearn)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(labels: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray) -> float:
    truth, predicted = _as_pair(labels, predictions)
    return float(np.mean(truth == predicted))


def macro_f1(labels: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray) -> float:
    """Unweighted mean of per-class F1 over every class seen in the labels or the predictions.

    A class with no true positive scores 0 (precision or recall is 0 or undefined), as in sklearn's
    ``f1_score(average="macro", zero_division=0)``.
    """
    truth, predicted = _as_pair(labels, predictions)
    scores = []
    for cls in np.union1d(truth, predicted):
        true_positive = np.sum((predicted == cls) & (truth == cls))
        denominator = np.sum(predicted == cls) + np.sum(truth == cls)
        scores.append(2.0 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores))


def _as_pair(
    labels: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    truth, predicted = np.asarray(labels), np.asarray(predictions)
    if truth.shape != predicted.shape or truth.ndim != 1:
        raise ValueError(f"labels {truth.shape} and predictions {predicted.shape} must be equal-length 1-D")
    if truth.size == 0:
        raise ValueError("no samples to score")
    return truth, predicted
