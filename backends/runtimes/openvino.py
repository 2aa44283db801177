"""OpenVINO: reads the legacy Paddle ``.pdmodel`` directly; a Paddle 3 PIR export (``inference.json``,
the ERNIE models) it cannot read (2026.4: "model format .json is not supported"), so those run on the
same ONNX conversion ONNX Runtime uses.

Devices: ``CPU`` here; OpenVINO's ``GPU`` (Intel graphics) and ``NPU`` (Intel NPU) are declared in
:data:`DEVICES` but no portbench backend stands for them yet, so only ``cpu`` is driven.

Its CPU plugin picks **bf16** by itself on CPUs with avx512_bf16 or AMX: every FP32 cell therefore
sets ``INFERENCE_PRECISION_HINT=f32``, and BF16 is its own cell (hint ``bf16``). The hint, the thread
count and the performance hint are read back from the compiled model into the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from portbench.backends import cpuinfo
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
from portbench.backends.runtimes.base import ModelFormat, OnnxModel, Runtime, Target, no_precisions

# OpenVINO device names; only CPU has a portbench backend to stand for it.
DEVICES = {"CPU": "cpu", "GPU": None, "NPU": None}
# INT8 cells load a QDQ model: OpenVINO runs its quantized nodes in INT8 and, with hint f32, keeps the
# rest in FP32 (on AMX CPUs its default would be bf16).
PRECISION_HINT = {Precision.FP32: "f32", Precision.BF16: "bf16", Precision.FP16: "f16", Precision.INT8: "f32"}
# Read back from the compiled model: what OpenVINO really applied.
REPORTED_PROPERTIES = (
    "INFERENCE_PRECISION_HINT",
    "INFERENCE_NUM_THREADS",
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "ENABLE_CPU_PINNING",
    "EXECUTION_DEVICES",
)
OPENVINO_QDQ_INT8 = "OpenVINO CPU on the ONNX Runtime QDQ model (static, calibrated), hint f32"


def _plain(value: Any) -> Any:
    """A compiled-model property as JSON: ov.Type -> "f32", PerformanceMode.LATENCY -> "LATENCY"."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "to_string"):
        return str(value.to_string())
    return str(value).rsplit(".", 1)[-1]


class OpenVinoSession:
    """One OpenVINO infer request on a compiled model, as a :class:`Session`.

    ``clone`` makes another infer request on the same compiled model (OpenVINO's own way to run
    streams concurrently). On the CPU, ``run_staged`` books wrapping the inputs as h2d and the output
    copy as d2h; there is no device transfer to separate.
    """

    def __init__(self, compiled: Any, model: ModelFiles, settings: Mapping[str, Any]) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self.model = model
        self._settings = dict(settings)
        self.input_names: list[str] = [port.get_any_name() for port in compiled.inputs]
        self.output_names: list[str] = [port.get_any_name() for port in compiled.outputs]

    @property
    def settings(self) -> Mapping[str, Any]:
        return self._settings

    def run(self, feed: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(feed) != len(self.input_names):
            raise ValueError(f"expected {len(self.input_names)} inputs, got {len(feed)}")
        results = self._request.infer(dict(enumerate(feed)))
        # The request's output tensors are reused by the next infer: hand out copies.
        return [np.array(results[port]) for port in self._compiled.outputs]

    def run_staged(self, feed: Sequence[np.ndarray], times: StageTimes) -> list[np.ndarray]:
        import time

        import openvino as ov

        clock = time.perf_counter
        t0 = clock()
        for index, array in enumerate(feed):
            self._request.set_input_tensor(index, ov.Tensor(np.ascontiguousarray(array)))
        t1 = clock()
        self._request.infer()
        t2 = clock()
        outputs = [np.array(self._request.get_output_tensor(i).data) for i in range(len(self.output_names))]
        times.add(t0, t1, t2, clock())
        return outputs

    def clone(self) -> Session:
        return OpenVinoSession(self._compiled, self.model, self._settings)


class OpenVinoRuntime(Runtime):
    name = "openvino"
    description = "OpenVINO (Paddle frontend for .pdmodel, ONNX for PIR exports); CPU here, GPU/NPU declared"
    distributions = ("openvino",)
    modules = ("openvino",)
    extra = "openvino"
    int8_route = "onnx-qdq"

    def __init__(self, flags: frozenset[str] | None = None) -> None:
        self._flags = cpuinfo.cpu_flags() if flags is None else flags

    def targets(self) -> Mapping[str, Target]:
        return {
            "cpu": Target(
                "cpu",
                "OpenVINO device CPU",
                {
                    "INFERENCE_PRECISION_HINT": "f32",
                    "INFERENCE_NUM_THREADS": default_threads(),
                    "PERFORMANCE_HINT": "LATENCY",
                },
            )
        }

    def precisions(self, backend: Backend) -> Mapping[Precision, PrecisionSupport]:
        if backend.name != "cpu":
            reason = "openvino drives only backend cpu here (its GPU/NPU devices have no portbench backend)"
            return no_precisions(reason)
        has_bf16 = bool(self._flags & {"avx512_bf16", "amx_bf16"})
        return {
            Precision.FP32: PrecisionSupport.via("OpenVINO CPU, INFERENCE_PRECISION_HINT=f32"),
            Precision.FP16: PrecisionSupport.unsupported(
                "OpenVINO's CPU plugin computes f16 only on ARM / AMX-FP16"
            ),
            Precision.BF16: (
                PrecisionSupport.via("OpenVINO CPU, INFERENCE_PRECISION_HINT=bf16")
                if has_bf16
                else PrecisionSupport.unsupported("CPU lacks avx512_bf16 and amx_bf16")
            ),
            Precision.INT8: PrecisionSupport.via(OPENVINO_QDQ_INT8),
        }

    def model_format(self, model: ModelFiles) -> ModelFormat:
        return "onnx" if model.is_pir else "paddle"

    def create_session(
        self, backend: Backend, model: ModelFiles | OnnxModel, options: PredictorOptions
    ) -> Session:
        self.check_precision(backend, options.precision)
        import openvino as ov

        threads = options.cpu_threads or default_threads()
        config = {
            "INFERENCE_PRECISION_HINT": PRECISION_HINT[options.precision],
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY",
        }
        core = ov.Core()
        if isinstance(model, OnnxModel):
            read = core.read_model(str(model.path))
            source, conversion = model.source, dict(model.provenance)
        else:
            # Paddle frontend: the .pdiparams beside the .pdmodel are found by name.
            read = core.read_model(str(model.model_file))
            source, conversion = model, {}
        compiled = core.compile_model(read, "CPU", config)
        applied = {}
        for key in REPORTED_PROPERTIES:
            try:
                value = compiled.get_property(key)
            except Exception:  # a property this OpenVINO build does not report
                continue
            applied[key] = _plain(value)
        settings = {
            "device": "CPU",
            "config": config,
            "applied": applied,
            "frontend": "onnx" if isinstance(model, OnnxModel) else "paddle",
            **({"conversion": conversion} if conversion else {}),
        }
        return OpenVinoSession(compiled, source, settings)
