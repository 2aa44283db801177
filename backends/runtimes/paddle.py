"""Paddle Inference: the default runtime, and the only one every backend has.

It is exactly what portbench ran before runtimes existed: the backend builds the predictor
(``Backend.create_session``) and declares the precisions.
"""

from __future__ import annotations

from collections.abc import Mapping

from portbench.backends.base import (
    Availability,
    Backend,
    ModelFiles,
    Precision,
    PrecisionSupport,
    PredictorOptions,
    Session,
)
from portbench.backends.runtimes.base import OnnxModel, Runtime, Target


class PaddleRuntime(Runtime):
    name = "paddle"
    description = "Paddle Inference (the backend's own predictor: oneDNN, TensorRT, CustomDevice plugins)"
    distributions = ("paddlepaddle",)
    modules = ("paddle",)

    def targets(self) -> Mapping[str, Target]:
        from portbench.backends.registry import backend_names

        return {name: Target(name, "Paddle Inference") for name in backend_names()}

    def drives(self, backend: str) -> Availability:  # every backend is a Paddle platform
        return Availability.yes("Paddle Inference")

    def precisions(self, backend: Backend) -> Mapping[Precision, PrecisionSupport]:
        return backend.precisions()

    def create_session(
        self, backend: Backend, model: ModelFiles | OnnxModel, options: PredictorOptions
    ) -> Session:
        if isinstance(model, OnnxModel):
            raise TypeError("Paddle Inference runs Paddle models, not ONNX")
        return backend.create_session(model, options)
