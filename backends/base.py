"""The contract every platform backend implements.

A backend knows one kind of device: whether it is present (and why not), what it is, which precisions
it can run and how, and the exact Paddle Inference ``Config`` calls that put a model on it. Nothing
else: workloads never see a device, and backends never see data.
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from portbench.backends.power import PowerSource


class Precision(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"

    @classmethod
    def parse(cls, text: str) -> Precision:
        from portbench.errors import UnknownNameError

        try:
            return cls(text.strip().lower())
        except ValueError:
            raise UnknownNameError("precision", text, [p.value for p in cls]) from None


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here; ``reason`` says why not (or what was found)."""

    available: bool
    reason: str = ""

    @classmethod
    def yes(cls, detail: str = "") -> Availability:
        return cls(True, detail)

    @classmethod
    def no(cls, reason: str) -> Availability:
        return cls(False, reason)


@dataclass(frozen=True)
class DeviceInfo:
    """What a cell ran on, as recorded in results (compliance evidence needs the exact identity)."""

    backend: str
    device: str  # Paddle's own device string: cpu, gpu:0, npu:0, mlu:0, xpu:0, dcu:0, iluvatar_gpu:0
    name: str  # e.g. "Ascend 910B3", "NVIDIA H100 80GB HBM3", "Kunpeng-920"
    vendor: str
    driver_version: str | None = None
    runtime_version: str | None = None  # CUDA / CANN / Neuware / XRE / DTK
    memory_total_bytes: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrecisionSupport:
    """How a backend runs one precision, or why it cannot."""

    supported: bool
    how: str  # "oneDNN bf16", "TensorRT FP16", or the reason it is unsupported

    @classmethod
    def via(cls, how: str) -> PrecisionSupport:
        return cls(True, how)

    @classmethod
    def unsupported(cls, reason: str) -> PrecisionSupport:
        return cls(False, reason)


@dataclass(frozen=True)
class ModelFiles:
    """A Paddle inference model on disk: legacy ``.pdmodel`` or Paddle 3 PIR ``.json`` + ``.pdiparams``."""

    model_file: Path
    params_file: Path

    @property
    def directory(self) -> Path:
        return self.model_file.parent

    @property
    def is_pir(self) -> bool:
        return self.model_file.suffix == ".json"


@dataclass(frozen=True)
class PredictorOptions:
    """Everything that shapes a predictor, recorded in the run manifest."""

    precision: Precision = Precision.FP32
    device_id: int = 0
    cpu_threads: int = 0  # 0: the backend picks (physical cores, capped)
    ir_optim: bool = True
    # Input shapes TensorRT must cover: name -> (min, opt, max). Ignored where unused.
    dynamic_shapes: Mapping[str, tuple[Sequence[int], Sequence[int], Sequence[int]]] = field(
        default_factory=dict
    )
    # Where an engine/compile cache may live (TensorRT serialized engines, etc.).
    cache_dir: Path | None = None


class ConfigLike(Protocol):
    """The part of ``paddle.inference.Config`` the backends call; lets tests record the calls."""

    def __getattr__(self, name: str) -> Any: ...


@dataclass
class StageTimes:
    """Per-call split of one inference: host-to-device, compute, device-to-host (seconds)."""

    h2d: float = 0.0
    compute: float = 0.0
    d2h: float = 0.0

    def add(self, start: float, copied_in: float, computed: float, copied_out: float) -> None:
        """Book one call from its four clock readings: before the inputs are copied in, once they
        are, once compute is done, and once the outputs are copied out."""
        self.h2d += copied_in - start
        self.compute += computed - copied_in
        self.d2h += copied_out - computed


class Session(Protocol):
    """One loaded model on one runtime, with named numpy inputs and outputs (in model order).

    ``run`` is the unit every timed loop measures: copy in, run, copy out; a returned ``run`` means
    the work is really done. ``run_staged`` adds the host-to-device / compute / device-to-host split
    where the runtime exposes it (a runtime that cannot separate them books everything as compute
    and says so in ``settings``). ``clone`` gives a session for another concurrent stream.
    ``settings`` is what the runtime was told and what it reports back, recorded in the manifest.
    """

    model: ModelFiles
    input_names: list[str]
    output_names: list[str]

    @property
    def settings(self) -> Mapping[str, Any]: ...

    def run(self, feed: Sequence[np.ndarray]) -> list[np.ndarray]: ...

    def run_staged(self, feed: Sequence[np.ndarray], times: StageTimes) -> list[np.ndarray]: ...

    def clone(self) -> Session: ...


class InferenceSession:
    """One Paddle predictor with named numpy inputs and outputs (the Paddle Inference :class:`Session`).

    ``run`` is the unit every timed loop measures: copy in, run, copy out. The copies are where an
    asynchronous device is synchronised, so a returned ``run`` means the work is really done.
    """

    def __init__(
        self, predictor: Any, backend: Backend, model: ModelFiles, options: PredictorOptions | None = None
    ) -> None:
        self._predictor = predictor
        self._backend = backend
        self.model = model
        self._options = options  # what built it, for a clone of its own (Backend.clones_share_weights)
        self.input_names: list[str] = list(predictor.get_input_names())
        self.output_names: list[str] = list(predictor.get_output_names())
        self._inputs = [predictor.get_input_handle(n) for n in self.input_names]
        self._outputs = [predictor.get_output_handle(n) for n in self.output_names]

    @property
    def settings(self) -> Mapping[str, Any]:
        # Paddle's own settings (threads, oneDNN, flags) are already in the run manifest.
        return {}

    def run(self, feed: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run on positional inputs (in ``input_names`` order); returns outputs in order."""
        for handle, array in zip(self._inputs, feed, strict=True):
            handle.reshape(array.shape)
            handle.copy_from_cpu(array)
        self._predictor.run()
        return [handle.copy_to_cpu() for handle in self._outputs]

    def run_staged(self, feed: Sequence[np.ndarray], times: StageTimes) -> list[np.ndarray]:
        """``run`` with the host-to-device / compute / device-to-host split added to ``times``."""
        clock = time.perf_counter
        t0 = clock()
        for handle, array in zip(self._inputs, feed, strict=True):
            handle.reshape(array.shape)
            handle.copy_from_cpu(array)
        self._backend.synchronize()
        t1 = clock()
        self._predictor.run()
        self._backend.synchronize()
        t2 = clock()
        outputs = [handle.copy_to_cpu() for handle in self._outputs]
        times.add(t0, t1, t2, clock())
        return outputs

    def clone(self) -> InferenceSession:
        """A predictor for another concurrent stream: Paddle's ``clone()``, which shares the weights,
        or, where the backend says shared weights are unsafe, a predictor of its own built the same
        way from the same files."""
        if not self._backend.clones_share_weights and self._options is not None:
            return self._backend.create_session(self.model, self._options)
        return InferenceSession(self._predictor.clone(), self._backend, self.model, self._options)


class Backend(ABC):
    """One platform. Subclasses set ``name`` and ``device_type`` and build their own Config.

    The class-level declarations below are read without instantiating or probing the backend, by
    the registries that must know every platform: the run manifest's environment prefixes
    (``harness.measure``), the plugin versions recorded with a run (``harness.platform_info``) and
    the test suite's ``hardware(kind)`` marker.
    """

    name: ClassVar[str]
    device_type: ClassVar[str]  # Paddle's device prefix: cpu, gpu, npu, mlu, xpu, dcu, iluvatar_gpu
    description: ClassVar[str]
    # Prefixes of environment variables that change how fast this platform runs (read into the
    # run manifest, never set).
    env_prefixes: ClassVar[tuple[str, ...]] = ()
    # How far two runs of the same input may differ on this backend (output audits): exact on the
    # CPU for equal shapes and threads; a backend with non-deterministic kernels widens it.
    determinism_atol: ClassVar[float] = 1e-6
    # pip distributions of the Paddle build this backend runs on ("paddlepaddle-gpu", ...).
    paddle_builds: ClassVar[tuple[str, ...]] = ()
    # PaddleCustomDevice plugin distributions it loads ("paddle-custom-npu", ...).
    paddle_plugins: ClassVar[tuple[str, ...]] = ()
    # The vendor device tool's executable names, preferred first (vendors renamed them over time).
    tool_names: ClassVar[tuple[str, ...]] = ()
    # Kind in the tests' ``hardware(kind)`` marker whose skip this backend's probe decides.
    hardware_kind: ClassVar[str | None] = None
    # INT8 through oneDNN or TensorRT runs a model that PTQ has already quantized; a backend that
    # quantizes weights itself at load time (XPU) takes the FP32 model.
    int8_needs_quantized_model: ClassVar[bool] = True

    @property
    def clones_share_weights(self) -> bool:
        """Whether a session's ``clone()`` for a concurrent stream may be Paddle's weight-sharing
        ``predictor.clone()``; False builds each stream a predictor of its own."""
        return True

    def __init__(self, device_id: int = 0) -> None:
        self.device_id = device_id

    @property
    def device(self) -> str:
        return "cpu" if self.device_type == "cpu" else f"{self.device_type}:{self.device_id}"

    @abstractmethod
    def probe(self) -> Availability:
        """Whether this backend can run here; cheap, never raises."""

    @abstractmethod
    def device_info(self) -> DeviceInfo:
        """Identity of the device; only called when ``probe`` says available."""

    @abstractmethod
    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        """Every precision, with how it runs here or why it cannot."""

    @abstractmethod
    def configure(self, config: ConfigLike, options: PredictorOptions) -> None:
        """Apply this platform's Paddle Inference calls to a Config that already holds the model."""

    def worker_environment(self) -> Mapping[str, str]:
        """Environment a worker process needs before importing paddle (device selection etc.).

        Applied in the worker only, never in the parent process.
        """
        return {}

    def synchronize(self) -> None:
        """Block until queued device work is done; the CPU has nothing to wait for."""
        return None

    def memory_used_bytes(self) -> int | None:
        """Device memory in use now, or ``None`` where the backend has no such notion (the CPU)."""
        return None

    def power_sources(self) -> Sequence[PowerSource]:
        """Where this device's own power or energy can be read (its card). Host sources (RAPL, the
        BMC's wall power) apply to every backend and are added by the harness; the CPU has none of
        its own beyond those."""
        return ()

    def new_config(self, model: ModelFiles) -> Any:
        import paddle.inference as paddle_infer

        config = paddle_infer.Config(str(model.model_file), str(model.params_file))
        # The IR pass log is hundreds of lines per predictor on stderr.
        config.disable_glog_info()
        if model.is_pir:
            # Paddle 3.2.2 fails to build a predictor for a PIR (inference.json) program with
            # memory optimisation on ("Not find predictor_id 0 and pass_name memory_optimize_pass")
            # unless the new executor runs it.
            config.enable_new_executor(True)
        return config

    def create_session(self, model: ModelFiles, options: PredictorOptions) -> InferenceSession:
        import paddle.inference as paddle_infer

        support = self.precisions().get(options.precision)
        if support is None or not support.supported:
            from portbench.errors import PortbenchError

            reason = support.how if support else "not declared"
            raise PortbenchError(f"{self.name} cannot run {options.precision.value}: {reason}")
        config = self.new_config(model)
        self.configure(config, options)
        predictor = paddle_infer.create_predictor(config)
        return InferenceSession(predictor, self, model, options)
