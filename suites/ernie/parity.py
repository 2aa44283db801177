"""How two runs' ERNIE outputs (per-sample logits) are compared for parity: top-1 agreement, cosine
and the largest logit change; a flipped prediction ranks above any drift that kept the prediction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from portbench.harness.workload import Metric, OutputComparison, OutputsMalformed, SampleDiff, TaskInfo


def _logits_of(sample_id: str, output: Any) -> np.ndarray:
    try:
        array = np.asarray(output, dtype=np.float64)
    except (TypeError, ValueError):
        raise OutputsMalformed(sample_id, "a list of logits") from None
    if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
        raise OutputsMalformed(sample_id, "a non-empty list of finite logits")
    return array


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / norms)


def compare_logits(pairs: Sequence[tuple[str, Any, Any]]) -> OutputComparison:
    diffs = []
    agree = 0
    cosines = []
    max_abs = 0.0
    for sample_id, reference, value in pairs:
        expected, got = _logits_of(sample_id, reference), _logits_of(sample_id, value)
        if expected.shape != got.shape:
            raise OutputsMalformed(
                sample_id, f"{expected.size} logits like the reference's (it has {got.size})"
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
        diffs.append(SampleDiff(abs_diff + (math.inf if flipped else 0.0), detail))
    count = len(pairs)
    metrics = {
        "top1_agreement": agree / count,
        "max_abs_diff": max_abs,
        "mean_cosine": sum(cosines) / count,
        "min_cosine": min(cosines),
    }
    return OutputComparison(metrics, diffs)




_LOGIT_AGREEMENT = (
    Metric("top1_agreement", description="share of samples whose predicted class is the reference's"),
    Metric("mean_cosine"),
    Metric("min_cosine"),
    Metric("max_abs_diff", higher_is_better=False, description="largest logit change"),
)

TASK_INFO: dict[str, TaskInfo] = {
    "cls": TaskInfo(
        "cls", "sentence classification on labelled texts",
        metrics=(Metric("accuracy"), Metric("macro_f1")),
        headline=("accuracy", "macro_f1"),
        output_metrics=_LOGIT_AGREEMENT,
        compare_outputs=compare_logits,
    ),
    # Synthetic weights: speed only, but the logits still show whether two platforms compute alike.
    "perf": TaskInfo(
        "perf", "ERNIE 3.0 shapes with synthetic weights (speed only)",
        output_metrics=_LOGIT_AGREEMENT, compare_outputs=compare_logits,
    ),
}
