"""ONNX Runtime on a paddle2onnx conversion of the Paddle model (``harness.onnx_export`` builds it).

Each backend maps to one execution provider (ONNX Runtime's documented option names):

* ``cpu`` -> ``CPUExecutionProvider`` (the only one in the ``onnxruntime`` wheel),
* ``cuda`` -> ``CUDAExecutionProvider`` and ``tensorrt`` -> ``TensorrtExecutionProvider`` (with CUDA
  for the nodes TensorRT refuses), both from ``onnxruntime-gpu``,
* ``npu`` -> ``CANNExecutionProvider`` (Ascend, ``onnxruntime-cann``).

``OpenVINOExecutionProvider`` (``onnxruntime-openvino``) is declared with its options too, but no
backend maps to it: the ``openvino`` runtime runs OpenVINO itself.

ONNX Runtime quietly runs a session on the CPU when a requested provider is not in the installed
wheel; every session is therefore checked with ``get_providers()`` and a fallback is a
SessionUnavailableError (the cell is skipped), never a CPU number under another backend's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from portbench.backends.base import (
    Backend,
    ModelFiles,
    Precision,
    PrecisionSupport,
    PredictorOptions,
    Session,
    StageTimes,
)
from portbench.backends.cpu import default_threads
from portbench.backends.runtimes.base import (
    ONNX_QDQ_INT8,
    ModelFormat,
    OnnxModel,
    Runtime,
    Target,
    no_precisions,
)
from portbench.errors import SessionUnavailableError

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CANN = "CANNExecutionProvider"
OPENVINO_EP = "OpenVINOExecutionProvider"
# Where each provider's tensors live, as OrtValue / IO binding name devices.
PROVIDER_DEVICE = {CPU: "cpu", CUDA: "cuda", TENSORRT: "cuda", CANN: "cann", OPENVINO_EP: "cpu"}
# The wheel that carries each provider (the fallback error says what to install).
PROVIDER_WHEEL = {
    CUDA: "onnxruntime-gpu",
    TENSORRT: "onnxruntime-gpu",
    CANN: "onnxruntime-cann",
    OPENVINO_EP: "onnxruntime-openvino",
    CPU: "onnxruntime",
}
BACKEND_PROVIDER = {"cpu": CPU, "cuda": CUDA, "tensorrt": TENSORRT, "npu": CANN}
# QDQ models run as INT8 kernels on the CPU provider (measured here); other providers are declared
# but their INT8 parity has not been measured, so their cells skip rather than report unchecked INT8.
INT8_UNMEASURED = "QDQ INT8 is measured on CPUExecutionProvider only; {provider} INT8 is not verified yet"
# Recorded with every session: the choices below, and why.
SESSION_CONFIG = {
    # A provider that cannot take a node would hand it to the CPU EP: that split is legitimate for
    # CUDA/TensorRT (shape arithmetic on the host), so it stays allowed; the provider check after
    # creation is what guarantees the requested provider really runs the session.
    "session.disable_cpu_ep_fallback": "0",
}


def provider_options(provider: str, options: PredictorOptions, threads: int) -> dict[str, Any]:
    """The options passed to ``provider`` for one session."""
    if provider == CUDA:
        return {
            "device_id": options.device_id,
            "arena_extend_strategy": "kNextPowerOfTwo",
            "cudnn_conv_algo_search": "EXHAUSTIVE",
            "do_copy_in_default_stream": True,
        }
    if provider == TENSORRT:
        cache = options.cache_dir / "ort-tensorrt" if options.cache_dir else None
        return {
            "device_id": options.device_id,
            "trt_max_workspace_size": 2 << 30,
            "trt_fp16_enable": options.precision is Precision.FP16,
            "trt_engine_cache_enable": cache is not None,
            **({"trt_engine_cache_path": str(cache)} if cache else {}),
        }
    if provider == CANN:
        mode = "force_fp16" if options.precision is Precision.FP16 else "must_keep_origin_dtype"
        return {
            "device_id": options.device_id,
            "arena_extend_strategy": "kNextPowerOfTwo",
            "enable_cann_graph": True,
            "precision_mode": mode,
        }
    if provider == OPENVINO_EP:
        return {"device_type": "CPU", "precision": "FP32", "num_of_threads": threads}
    return {}


class OnnxRuntimeSession:
    """An ``onnxruntime.InferenceSession`` as a :class:`Session`.

    ``run_staged`` uses IO binding: inputs are copied into OrtValues on the provider's device (h2d),
    ``run_with_iobinding`` computes, and outputs are copied back (d2h). On the CPU provider the copies
    are host memcpy, so nearly everything is compute, which is what it is.
    """

    def __init__(self, session: Any, model: ModelFiles, provider: str, settings: Mapping[str, Any]) -> None:
        self._session = session
        self.model = model
        self._provider = provider
        self._device = PROVIDER_DEVICE.get(provider, "cpu")
        self._device_id = int(settings.get("provider_options", {}).get("device_id", 0))
        self._settings = dict(settings)
        self.input_names: list[str] = [i.name for i in session.get_inputs()]
        self.output_names: list[str] = [o.name for o in session.get_outputs()]

    @property
    def settings(self) -> Mapping[str, Any]:
        return self._settings

    def run(self, feed: Sequence[np.ndarray]) -> list[np.ndarray]:
        outputs = self._session.run(self.output_names, dict(zip(self.input_names, feed, strict=True)))
        return [np.asarray(o) for o in outputs]

    def run_staged(self, feed: Sequence[np.ndarray], times: StageTimes) -> list[np.ndarray]:
        import time

        import onnxruntime as ort

        clock = time.perf_counter
        binding = self._session.io_binding()
        t0 = clock()
        for name, array in zip(self.input_names, feed, strict=True):
            value = ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(array), self._device, self._device_id
            )
            binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self._device, self._device_id)
        binding.synchronize_inputs()
        t1 = clock()
        self._session.run_with_iobinding(binding)
        binding.synchronize_outputs()
        t2 = clock()
        outputs = [np.asarray(o) for o in binding.copy_outputs_to_cpu()]
        times.add(t0, t1, t2, clock())
        return outputs

    def clone(self) -> Session:
        # ONNX Runtime documents Run() as thread-safe on one session; streams share its weights
        # (and its intra-op thread pool) as Paddle clones share theirs.
        return OnnxRuntimeSession(self._session, self.model, self._provider, self._settings)


class OnnxRuntimeRuntime(Runtime):
    name = "onnxruntime"
    description = "ONNX Runtime on a paddle2onnx conversion (CPU, CUDA, TensorRT, CANN providers)"
    distributions = ("onnxruntime", "paddle2onnx", "onnx")
    modules = ("onnxruntime", "paddle2onnx", "onnx")
    extra = "onnxruntime"
    int8_route = "onnx-qdq"

    def targets(self) -> Mapping[str, Target]:
        declared = PredictorOptions()
        return {
            backend: Target(backend, provider, provider_options(provider, declared, default_threads()))
            for backend, provider in BACKEND_PROVIDER.items()
        }

    def declared_providers(self) -> dict[str, dict[str, Any]]:
        """Every provider portbench knows, with its default options (OpenVINO EP included)."""
        declared = PredictorOptions()
        return {
            p: provider_options(p, declared, default_threads())
            for p in (*BACKEND_PROVIDER.values(), OPENVINO_EP)
        }

    def precisions(self, backend: Backend) -> Mapping[Precision, PrecisionSupport]:
        provider = BACKEND_PROVIDER.get(backend.name)
        if provider is None:
            reason = f"onnxruntime does not drive backend {backend.name}"
            return no_precisions(reason)
        no_fp16 = "the FP32 ONNX conversion has no FP16 variant here (only TensorRT/CANN cast it)"
        table = {
            Precision.FP32: PrecisionSupport.via(f"{provider} FP32"),
            Precision.FP16: PrecisionSupport.unsupported(no_fp16),
            Precision.BF16: PrecisionSupport.unsupported(f"{provider} has no BF16 mode for these models"),
            Precision.INT8: (
                PrecisionSupport.via(ONNX_QDQ_INT8)
                if provider == CPU
                else PrecisionSupport.unsupported(INT8_UNMEASURED.format(provider=provider))
            ),
        }
        if provider == TENSORRT:
            table[Precision.FP16] = PrecisionSupport.via("TensorRT FP16 (trt_fp16_enable)")
        if provider == CANN:
            table[Precision.FP16] = PrecisionSupport.via("CANN precision_mode force_fp16")
        return table

    def model_format(self, model: ModelFiles) -> ModelFormat:
        return "onnx"

    def create_session(
        self, backend: Backend, model: ModelFiles | OnnxModel, options: PredictorOptions
    ) -> Session:
        if not isinstance(model, OnnxModel):
            raise TypeError("onnxruntime runs the ONNX conversion (harness.onnx_export), not Paddle files")
        self.check_precision(backend, options.precision)
        import onnxruntime as ort

        provider = BACKEND_PROVIDER[backend.name]
        threads = options.cpu_threads or default_threads()
        session_options = ort.SessionOptions()
        # The same thread budget Paddle gets (set_cpu_math_library_num_threads); one inter-op thread
        # because the graph runs sequentially, as Paddle's executor does.
        session_options.intra_op_num_threads = threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.log_severity_level = 3  # the provider-missing warning is checked, not printed
        for key, value in SESSION_CONFIG.items():
            session_options.add_session_config_entry(key, value)
        chain = [provider] + ([CUDA] if provider == TENSORRT else [])
        chosen = [(p, provider_options(p, options, threads)) for p in chain]
        if provider != CPU:
            chosen.append((CPU, {}))
        session = ort.InferenceSession(
            str(model.path),
            sess_options=session_options,
            providers=[p for p, _ in chosen],
            provider_options=[o for _, o in chosen],
        )
        running = list(session.get_providers())
        if provider not in running:
            raise SessionUnavailableError(
                f"onnxruntime {ort.__version__} ran this session on {', '.join(running)} instead of "
                f"{provider} (available here: {', '.join(ort.get_available_providers())}); "
                f"install {PROVIDER_WHEEL.get(provider, 'a build with it')} for backend {backend.name}"
            )
        settings = {
            "provider": provider,
            "providers": running,
            "provider_options": chosen[0][1],
            "intra_op_num_threads": threads,
            "inter_op_num_threads": 1,
            "execution_mode": "ORT_SEQUENTIAL",
            "graph_optimization_level": "ORT_ENABLE_ALL",
            # Spinning (ONNX Runtime's default) trades idle CPU for latency; kept, as users run it.
            "session.intra_op.allow_spinning": "1",
            **SESSION_CONFIG,
            "model": model.path.name,
            "conversion": dict(model.provenance),
        }
        return OnnxRuntimeSession(session, model.source, provider, settings)
