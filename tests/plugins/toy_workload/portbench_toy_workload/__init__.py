"""A third-party portbench workload: seeded linear regression, scored by RMSE (lower is better).

Written only against ``portbench.harness.workload`` (the contract) and registered through the
``portbench.workloads`` entry-point group; portbench itself does not know this package.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from portbench.backends.base import InferenceSession, ModelFiles
from portbench.harness.workload import (
    AccuracyResult,
    Metric,
    OutputComparison,
    OutputsMalformed,
    PreparedTask,
    Query,
    SampleDiff,
    TaskInfo,
    TaskSpec,
    Workload,
)

IN_FEATURES, OUT_FEATURES = 8, 4
SEED = 7
NOISE = 0.05
EVAL_SAMPLES = 64
BATCH = 8


def _weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    return (
        rng.normal(size=(IN_FEATURES, OUT_FEATURES)).astype(np.float32),
        rng.normal(size=(OUT_FEATURES,)).astype(np.float32),
    )


def _eval_set() -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets: the true map plus Gaussian noise, so the model's RMSE is about NOISE."""
    rng = np.random.default_rng(SEED + 1)
    weight, bias = _weights()
    x = rng.normal(size=(EVAL_SAMPLES, IN_FEATURES)).astype(np.float32)
    y = x @ weight + bias + rng.normal(scale=NOISE, size=(EVAL_SAMPLES, OUT_FEATURES)).astype(np.float32)
    return x, y


def export_model(directory: Path) -> ModelFiles:
    """``paddle.jit.save`` of the seeded linear layer (once per cache)."""
    model_file = directory / "inference.json"
    if model_file.is_file():
        return ModelFiles(model_file, directory / "inference.pdiparams")
    import paddle

    layer = paddle.nn.Linear(IN_FEATURES, OUT_FEATURES)
    weight, bias = _weights()
    layer.weight.set_value(weight)
    layer.bias.set_value(bias)
    layer.eval()
    spec = [paddle.static.InputSpec([None, IN_FEATURES], "float32", name="x")]
    directory.mkdir(parents=True, exist_ok=True)
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec), str(directory / "inference"))
    return ModelFiles(model_file, directory / "inference.pdiparams")


def compare_predictions(pairs: Sequence[tuple[str, Any, Any]]) -> OutputComparison:
    diffs, close, worst = [], 0, 0.0
    for sample_id, reference, value in pairs:
        if not isinstance(value, list) or not isinstance(reference, list) or len(value) != len(reference):
            raise OutputsMalformed(sample_id, f"a list of {OUT_FEATURES} predictions")
        delta = float(np.max(np.abs(np.asarray(value) - np.asarray(reference))))
        close += delta < 1e-3
        worst = max(worst, delta)
        diffs.append(SampleDiff(delta, {"max_abs_diff": delta, "difference": f"max |Δ| {delta:.3g}"}))
    return OutputComparison({"close_fraction": close / len(pairs), "max_abs_diff": worst}, diffs)


TASKS = {
    "regress": TaskInfo(
        "regress", "linear regression on seeded data",
        metrics=(Metric("rmse", higher_is_better=False), Metric("r2")),
        headline=("rmse",),
        output_metrics=(Metric("close_fraction"), Metric("max_abs_diff", higher_is_better=False)),
        compare_outputs=compare_predictions,
    ),
}


class RegressionTask(PreparedTask):
    task_label = "toy regression"

    def __init__(self, session: InferenceSession) -> None:
        self.session = session
        self.x, self.y = _eval_set()

    def evaluate(self) -> AccuracyResult:
        batches = [self.session.run([self.x[i : i + BATCH]])[0] for i in range(0, EVAL_SAMPLES, BATCH)]
        predicted = np.concatenate(batches)
        error = predicted - self.y
        rmse = float(np.sqrt(np.mean(error**2)))
        r2 = 1.0 - float(np.sum(error**2) / np.sum((self.y - self.y.mean(axis=0)) ** 2))
        outputs = {f"v{i}": [float(v) for v in row] for i, row in enumerate(predicted)}
        return AccuracyResult({"rmse": rmse, "r2": r2}, outputs=outputs, samples=EVAL_SAMPLES)

    def queries(self) -> Sequence[Query]:
        return [
            Query(run=functools.partial(self.session.run, [self.x[i : i + BATCH]]), samples=BATCH)
            for i in range(0, EVAL_SAMPLES, BATCH)
        ]

    def query_description(self) -> Mapping[str, Any]:
        return {"batch_size": BATCH, "input_shapes": {"x": [BATCH, IN_FEATURES]}}


class ToyWorkload(Workload):
    name = "toy"
    description = "Seeded linear regression (a third-party workload example)"

    def tasks(self) -> Mapping[str, TaskInfo]:
        return TASKS

    def roles(self, spec: TaskSpec) -> Sequence[str]:
        return ("model",)

    def models_for(self, spec: TaskSpec) -> Mapping[str, ModelFiles]:
        user = spec.model_dirs.get("model")
        if user is not None:
            return {"model": ModelFiles(user / "inference.json", user / "inference.pdiparams")}
        return {"model": export_model(spec.cache_dir / "models" / f"toy-linear-{SEED}")}

    def model_source(self, spec: TaskSpec, role: str) -> str | None:
        return json.dumps({"seed": SEED, "shape": [IN_FEATURES, OUT_FEATURES]})

    def prepare(self, spec: TaskSpec, sessions: Mapping[str, InferenceSession]) -> PreparedTask:
        return RegressionTask(sessions["model"])
