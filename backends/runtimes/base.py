"""The contract every inference runtime implements.

A backend knows a device; a runtime knows how to execute a model there: whether it is installed (and
how to install it), which backends it can drive and through what (an execution provider, a device
name), which precisions it runs on each, and how to build a :class:`~portbench.backends.base.Session`.
Probing never imports the runtime: ONNX Runtime's spinning thread pool must not live in the parent
process that times other cells, so only worker processes load it.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from portbench.backends.base import (
    Availability,
    Backend,
    ModelFiles,
    Precision,
    PrecisionSupport,
    PredictorOptions,
    Session,
)
from portbench.installed import distribution_version

ModelFormat = Literal["paddle", "onnx"]
# Where a runtime's INT8 model comes from: Paddle's static PTQ (when the backend needs a quantized
# model, ``Backend.int8_needs_quantized_model``), or a static QDQ quantization of the FP32 ONNX
# conversion (``harness.onnx_quantize``), calibrated on the workload's calibration split.
Int8Route = Literal["paddle-ptq", "onnx-qdq"]
ONNX_QDQ_INT8 = "ONNX Runtime QDQ (static, calibrated)"


def no_precisions(reason: str) -> dict[Precision, PrecisionSupport]:
    """The precision table for a backend a runtime does not drive: every precision refused."""
    return {p: PrecisionSupport.unsupported(reason) for p in Precision}


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX conversion of a Paddle model (built and cached by ``harness.onnx_export``)."""

    path: Path
    source: ModelFiles  # the Paddle model it was converted from
    provenance: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """How a runtime drives one portbench backend: the provider or device it asks for, and the
    options it passes there (the runtime's documented names)."""

    backend: str
    how: str  # "CUDAExecutionProvider", "OpenVINO device CPU", "Paddle Inference"
    options: Mapping[str, Any] = field(default_factory=dict)


class Runtime(ABC):
    """One inference runtime. Class-level declarations are read without probing or importing it."""

    name: ClassVar[str]
    description: ClassVar[str]
    # pip distributions it runs on; their installed versions go into every cell's manifest.
    distributions: ClassVar[tuple[str, ...]]
    # Import names that must be findable for the runtime to be available.
    modules: ClassVar[tuple[str, ...]]
    # The portbench extra that installs it (None: part of the default install).
    extra: ClassVar[str | None] = None
    # How INT8 cells get their model (read by the worker; the precision table says whether INT8 runs).
    int8_route: ClassVar[Int8Route] = "paddle-ptq"

    def probe(self) -> Availability:
        """Installed here? Looks the modules up without importing them; never raises."""
        missing = []
        for module in self.modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                missing.append(module)
        if missing:
            how = f"pip install portbench[{self.extra}]" if self.extra else "reinstall portbench"
            return Availability.no(f"{', '.join(missing)} not installed: {how}")
        versions = ", ".join(f"{d} {v}" for d, v in self.versions().items() if v)
        return Availability.yes(versions)

    def versions(self) -> dict[str, str | None]:
        return {distribution: distribution_version(distribution) for distribution in self.distributions}

    @abstractmethod
    def targets(self) -> Mapping[str, Target]:
        """Backend name -> how this runtime drives it, for every backend it can drive."""

    def drives(self, backend: str) -> Availability:
        target = self.targets().get(backend)
        if target is None:
            known = ", ".join(self.targets()) or "none"
            return Availability.no(f"{self.name} does not drive backend {backend} (it drives: {known})")
        return Availability.yes(target.how)

    @abstractmethod
    def precisions(self, backend: Backend) -> Mapping[Precision, PrecisionSupport]:
        """Every precision on ``backend``, with how this runtime runs it or why it cannot."""

    def model_format(self, model: ModelFiles) -> ModelFormat:
        """What this runtime loads for ``model``: the Paddle files, or an ONNX conversion of them."""
        return "paddle"

    @abstractmethod
    def create_session(
        self, backend: Backend, model: ModelFiles | OnnxModel, options: PredictorOptions
    ) -> Session:
        """Load ``model`` on ``backend``'s device. Raises SessionUnavailableError when the runtime
        would run it elsewhere than asked (e.g. a provider that fell back to the CPU)."""

    def check_precision(self, backend: Backend, precision: Precision) -> None:
        support = self.precisions(backend).get(precision)
        if support is None or not support.supported:
            from portbench.errors import PortbenchError

            reason = support.how if support else "not declared"
            raise PortbenchError(f"{self.name} on {backend.name} cannot run {precision.value}: {reason}")
