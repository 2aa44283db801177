"""NVIDIA GPUs through Paddle Inference: plain CUDA kernels (``cuda``) and TensorRT subgraphs (``tensorrt``).

Device identity comes from ``nvidia-smi --query-gpu ... --format=csv``; runtime versions from the
Paddle build (``paddle.version.cuda()``). Paddle device ids are passed straight to
``enable_use_gpu``; CUDA_VISIBLE_DEVICES is left alone so nvidia-smi indices and Paddle ids agree.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from portbench.backends import _tools
from portbench.backends.base import (
    Availability,
    ConfigLike,
    DeviceInfo,
    InferenceSession,
    ModelFiles,
    Precision,
    PrecisionSupport,
    PredictorOptions,
)
from portbench.backends.paddle_gpu import PaddleGpuBackend
from portbench.backends.power import (
    PowerDomain,
    PowerSource,
    SourceKind,
    ToolPowerSource,
    watts_or_none,
)
from portbench.errors import PortbenchError

NVIDIA_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=index,name,driver_version,memory.total,compute_cap",
    "--format=csv",
)
GPU_INSTALL_HINT = (
    "install paddlepaddle-gpu 3.x from Paddle's package index "
    "(pip install paddlepaddle-gpu -i https://www.paddlepaddle.org.cn/packages/stable/cu126/)"
)
TRT_WORKSPACE_BYTES = 1 << 30
TRT_MIN_SUBGRAPH_SIZE = 3
# Hardware FP16 arithmetic starts at sm_53; BF16 tensor cores at Ampere (sm_80); TensorRT INT8 at sm_61.
FP16_MIN_CAPABILITY = (5, 3)
BF16_MIN_CAPABILITY = (8, 0)
INT8_MIN_CAPABILITY = (6, 1)


@dataclass(frozen=True)
class NvidiaGpu:
    index: int | None
    name: str
    driver_version: str | None
    memory_total_bytes: int | None
    compute_capability: tuple[int, int] | None


def _column_key(header: str) -> str:
    """``"memory.total [MiB]"`` -> ``"memory.total"``."""
    return header.split("[", 1)[0].strip().lower()


def _mib_bytes(value: str) -> int | None:
    number = value.replace("MiB", "").strip()
    return int(float(number)) * _tools.MIB if number.replace(".", "", 1).isdigit() else None


def _capability(value: str) -> tuple[int, int] | None:
    major, sep, minor = value.strip().partition(".")
    return (int(major), int(minor)) if sep and major.isdigit() and minor.isdigit() else None


def _optional(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if not value or value.startswith("[") or value in ("N/A", "[N/A]") else value


def parse_nvidia_smi_csv(text: str) -> list[NvidiaGpu]:
    """GPUs from ``nvidia-smi --query-gpu=... --format=csv`` (with header; columns in any order)."""
    rows = list(csv.reader(io.StringIO(text.strip()), skipinitialspace=True))
    if len(rows) < 2:
        return []
    keys = [_column_key(header) for header in rows[0]]
    gpus = []
    for row in rows[1:]:
        if len(row) != len(keys):
            continue
        field = dict(zip(keys, (cell.strip() for cell in row), strict=True))
        index = field.get("index", "")
        gpus.append(
            NvidiaGpu(
                index=int(index) if index.isdigit() else None,
                name=field.get("name") or field.get("gpu_name") or "unknown NVIDIA GPU",
                driver_version=_optional(field.get("driver_version")),
                memory_total_bytes=_mib_bytes(field.get("memory.total", "")),
                compute_capability=_capability(field.get("compute_cap", "")),
            )
        )
    return gpus


NVIDIA_SMI_POWER_QUERY = ("nvidia-smi", "--query-gpu=index,power.draw", "--format=csv")


def parse_nvidia_smi_power(text: str) -> list[float | None]:
    """Board power draw (W) per GPU from ``nvidia-smi --query-gpu=...,power.draw --format=csv``,
    by ``index`` where the query has it (else row order); ``[N/A]`` on boards without a sensor."""
    rows = list(csv.reader(io.StringIO(text.strip()), skipinitialspace=True))
    if len(rows) < 2:
        return []
    keys = [_column_key(header) for header in rows[0]]
    if "power.draw" not in keys:
        return []
    by_index: dict[int, float | None] = {}
    for position, row in enumerate(rows[1:]):
        if len(row) != len(keys):
            continue
        field = dict(zip(keys, (cell.strip() for cell in row), strict=True))
        index = field.get("index", "")
        by_index[int(index) if index.isdigit() else position] = watts_or_none(field["power.draw"])
    return [by_index.get(i) for i in range(max(by_index, default=-1) + 1)]


class NvmlPowerSource(PowerSource):
    """NVML through ``pynvml`` (``pip install nvidia-ml-py``): the board's total-energy counter
    (Volta and newer, millijoules since driver load), else its power draw (milliwatts)."""

    name = "nvml"
    poll_interval_s = 0.1

    def __init__(self, device_index: int = 0) -> None:
        self.device_index = device_index
        self.kind: SourceKind = "counter"
        self._nvml: Any = None
        self._handle: Any = None

    @property
    def scopes(self) -> tuple[Any, ...]:
        return ("card",)

    def probe(self) -> Availability:
        try:
            import pynvml
        except ImportError:
            return Availability.no("pynvml not installed (pip install 'portbench[nvml]')")
        try:
            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.device_index)
        except Exception as error:  # NVMLError subclasses per cause; any of them means no NVML here
            return Availability.no(f"NVML unusable: {error}")
        self._nvml, self._handle = pynvml, handle
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            self.kind = "counter"
            return Availability.yes("total energy counter")
        except Exception:  # pre-Volta boards: only the power draw
            pass
        try:
            pynvml.nvmlDeviceGetPowerUsage(handle)
        except Exception as error:
            return Availability.no(f"NVML reports no power for GPU {self.device_index}: {error}")
        self.kind = "draw"
        return Availability.yes("power draw")

    def domains(self) -> Sequence[PowerDomain]:
        return [PowerDomain(f"gpu:{self.device_index}", "card")]

    def read(self) -> Mapping[str, float]:
        domain = f"gpu:{self.device_index}"
        if self.kind == "counter":
            return {domain: self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3}
        return {domain: self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1e3}


def select_gpu(gpus: list[NvidiaGpu], device_id: int) -> NvidiaGpu | None:
    """The GPU with nvidia-smi ``index == device_id``, else the ``device_id``-th row."""
    for gpu in gpus:
        if gpu.index == device_id:
            return gpu
    return gpus[device_id] if 0 <= device_id < len(gpus) and all(g.index is None for g in gpus) else None


def _capability_text(capability: tuple[int, int]) -> str:
    return f"{capability[0]}.{capability[1]}"


def _precision_type(precision: Precision) -> Any:
    return _tools.precision_type(precision.value)


class CudaBackend(PaddleGpuBackend):
    name = "cuda"
    device_type = "gpu"
    description = "NVIDIA GPU through Paddle Inference CUDA/cuDNN kernels"
    paddle_builds = ("paddlepaddle-gpu",)
    tool_names = (NVIDIA_SMI_QUERY[0],)
    env_prefixes: ClassVar[tuple[str, ...]] = ("CUDA_", "CUDNN_", "NVIDIA_TF32")
    hardware_kind = "gpu"

    def __init__(self, device_id: int = 0, gpu: NvidiaGpu | None = None) -> None:
        super().__init__(device_id)
        self._known_gpu = gpu

    # -- discovery -------------------------------------------------------------------------------

    def _query_gpus(self) -> tuple[list[NvidiaGpu], str]:
        output = _tools.run_tool(NVIDIA_SMI_QUERY)
        if not output.ok or output.text is None:
            return [], output.problem
        return parse_nvidia_smi_csv(output.text), ""

    @functools.cached_property
    def gpu(self) -> NvidiaGpu | None:
        if self._known_gpu is not None:
            return self._known_gpu
        gpus, _ = self._query_gpus()
        return select_gpu(gpus, self.device_id)

    def probe(self) -> Availability:
        paddle, problem = _tools.import_paddle()
        if paddle is None:
            return Availability.no(problem)
        if not _tools.guarded(paddle.device.is_compiled_with_cuda, False):
            if _tools.guarded(paddle.device.is_compiled_with_rocm, False):
                return Availability.no("installed Paddle is a ROCm (DCU) build; use --backend dcu")
            return Availability.no(f"installed Paddle is a CPU-only build; {GPU_INSTALL_HINT}")
        gpus, problem = self._query_gpus()
        if problem:
            return Availability.no(f"NVIDIA driver not usable ({problem}); install the NVIDIA driver")
        count = _tools.guarded(lambda: int(paddle.device.cuda.device_count()), len(gpus))
        if count <= self.device_id:
            return Availability.no(f"gpu:{self.device_id} requested but Paddle sees {count} GPU(s)")
        extra = self._extra_probe(paddle)
        if extra is not None:
            return extra
        gpu = select_gpu(gpus, self.device_id)
        name = gpu.name if gpu else "GPU"
        return Availability.yes(f"{name}, {count} GPU(s) visible")

    def _extra_probe(self, paddle: Any) -> Availability | None:
        """Further checks a subclass needs once CUDA itself is usable."""
        return None

    def device_info(self) -> DeviceInfo:
        gpu = self.gpu
        paddle, _ = _tools.import_paddle()
        cuda_version = _tools.guarded(lambda: str(paddle.version.cuda()), None) if paddle else None
        extra: dict[str, str] = {}
        if gpu is not None and gpu.compute_capability is not None:
            extra["compute_capability"] = _capability_text(gpu.compute_capability)
        if paddle is not None:
            cudnn = _tools.guarded(lambda: str(paddle.version.cudnn()), None)
            if cudnn:
                extra["cudnn"] = cudnn
        extra.update(self._extra_info(paddle))
        return DeviceInfo(
            backend=self.name,
            device=self.device,
            name=gpu.name if gpu else "unknown NVIDIA GPU",
            vendor="NVIDIA",
            driver_version=gpu.driver_version if gpu else None,
            runtime_version=cuda_version if cuda_version not in (None, "False") else None,
            memory_total_bytes=gpu.memory_total_bytes if gpu else None,
            extra=extra,
        )

    def _extra_info(self, paddle: Any) -> dict[str, str]:
        return {}

    def power_sources(self) -> Sequence[PowerSource]:
        # NVML first: an energy counter needs no sampling and costs no process per reading.
        return [
            NvmlPowerSource(self.device_id),
            ToolPowerSource(
                "nvidia-smi",
                NVIDIA_SMI_POWER_QUERY,
                parse_nvidia_smi_power,
                device_index=self.device_id,
                domain=f"gpu:{self.device_id}",
            ),
        ]

    # -- capabilities ----------------------------------------------------------------------------

    def _capability(self) -> tuple[int, int] | None:
        gpu = self.gpu
        return gpu.compute_capability if gpu else None

    def _needs(self, minimum: tuple[int, int], how: str, what: str) -> PrecisionSupport:
        capability = self._capability()
        if capability is None:
            return PrecisionSupport.unsupported(f"{what} needs compute capability >= "
                                                f"{_capability_text(minimum)}; this GPU's is unknown")
        if capability < minimum:
            return PrecisionSupport.unsupported(
                f"{what} needs compute capability >= {_capability_text(minimum)}; "
                f"this GPU has {_capability_text(capability)}"
            )
        return PrecisionSupport.via(how)

    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        return {
            Precision.FP32: PrecisionSupport.via("CUDA/cuDNN FP32 kernels"),
            Precision.FP16: self._needs(
                FP16_MIN_CAPABILITY, "GPU mixed precision (enable_use_gpu precision_mode=Half)", "FP16"
            ),
            Precision.BF16: self._needs(
                BF16_MIN_CAPABILITY, "GPU mixed precision (enable_use_gpu precision_mode=Bfloat16)", "BF16"
            ),
            Precision.INT8: PrecisionSupport.unsupported(
                "Paddle runs INT8 on NVIDIA only through TensorRT; use --backend tensorrt"
            ),
        }

class TensorRTBackend(CudaBackend):
    name = "tensorrt"
    description = "NVIDIA GPU with TensorRT subgraphs through Paddle Inference (legacy .pdmodel models)"
    env_prefixes = (*CudaBackend.env_prefixes, "TRT_")
    hardware_kind = "tensorrt"

    def _extra_probe(self, paddle: Any) -> Availability | None:
        compiled = _tools.guarded(lambda: tuple(paddle.inference.get_trt_compile_version()), ())
        if not compiled or not any(compiled):
            return Availability.no("this paddlepaddle-gpu build has no TensorRT support; "
                                   "install a Paddle GPU wheel built with TensorRT")
        runtime = _tools.guarded(lambda: tuple(paddle.inference.get_trt_runtime_version()), ())
        if not runtime or not any(runtime):
            return Availability.no(
                f"TensorRT runtime libraries (libnvinfer) not found; install TensorRT "
                f"{'.'.join(map(str, compiled))} and add it to LD_LIBRARY_PATH"
            )
        return None

    def _extra_info(self, paddle: Any) -> dict[str, str]:
        if paddle is None:
            return {}
        runtime = _tools.guarded(lambda: tuple(paddle.inference.get_trt_runtime_version()), ())
        return {"tensorrt": ".".join(map(str, runtime))} if runtime else {}

    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        return {
            Precision.FP32: PrecisionSupport.via("TensorRT FP32 subgraphs"),
            Precision.FP16: self._needs(FP16_MIN_CAPABILITY, "TensorRT FP16 subgraphs", "TensorRT FP16"),
            Precision.BF16: PrecisionSupport.unsupported(
                "Paddle's TensorRT subgraph engine documents Float32/Half/Int8 only; "
                "use --backend cuda for BF16"
            ),
            Precision.INT8: self._needs(
                INT8_MIN_CAPABILITY,
                "TensorRT INT8 on a quantized (QDQ) model, use_calib_mode=False",
                "TensorRT INT8",
            ),
        }

    def configure(self, config: ConfigLike, options: PredictorOptions) -> None:
        # TensorRT owns the precision; the surrounding GPU ops stay FP32.
        self.enable_gpu(config, options.device_id, Precision.FP32)
        # TensorRT subgraphs are built by an IR pass: without ir_optim nothing would run in TensorRT.
        config.switch_ir_optim(True)
        config.enable_memory_optim()
        config.enable_tensorrt_engine(
            workspace_size=TRT_WORKSPACE_BYTES,
            max_batch_size=1,
            min_subgraph_size=TRT_MIN_SUBGRAPH_SIZE,
            precision_mode=_precision_type(options.precision),
            use_static=options.cache_dir is not None,
            use_calib_mode=False,
        )
        if options.dynamic_shapes:
            names = sorted(options.dynamic_shapes)
            min_shapes = {n: list(options.dynamic_shapes[n][0]) for n in names}
            opt_shapes = {n: list(options.dynamic_shapes[n][1]) for n in names}
            max_shapes = {n: list(options.dynamic_shapes[n][2]) for n in names}
            config.set_trt_dynamic_shape_info(min_shapes, max_shapes, opt_shapes)
        if options.cache_dir is not None:
            config.set_optim_cache_dir(str(options.cache_dir))

    def create_session(self, model: ModelFiles, options: PredictorOptions) -> InferenceSession:
        if model.is_pir:
            raise PortbenchError(
                f"{model.model_file.name}: the tensorrt backend runs legacy .pdmodel models "
                "(enable_tensorrt_engine); convert PIR .json models with paddle.tensorrt.convert first"
            )
        return super().create_session(model, options)
