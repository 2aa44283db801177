"""Hygon DCU through Paddle's ROCm/DTK build (``paddlepaddle-dcu``, formerly ``paddlepaddle-rocm``).

Paddle calls the DCU "gpu": the same ``enable_use_gpu`` path as CUDA, compiled for HIP, and no
TensorRT. ``rocm-smi`` (``hy-smi`` on newer DTK) lists the cards; its default table has no name or
memory size, so those come from Paddle's device properties.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from portbench.backends import _tools
from portbench.backends.base import Availability, DeviceInfo, Precision, PrecisionSupport
from portbench.backends.paddle_gpu import PaddleGpuBackend
from portbench.backends.power import PowerSource, ToolPowerSource, watts_or_none

DCU_TOOLS = ("hy-smi", "rocm-smi")
DCU_ROW = re.compile(r"^(\d+)\s+\S+c\s+")  # "0    30.0c  38.0W ..." (id, temperature, ...)
DCU_INSTALL_HINT = (
    "install paddlepaddle-dcu (pip install paddlepaddle-dcu -i "
    "https://www.paddlepaddle.org.cn/packages/stable/dcu/) with the matching DTK"
)
# PaddleX deletes these fusions on ROCm builds and raises the conv workspace limit.
ROCM_DELETED_PASSES = ("conv2d_add_act_fuse_pass", "conv2d_add_fuse_pass")
DCU_ENVIRONMENT = {"FLAGS_conv_workspace_size_limit": "2000"}


@dataclass(frozen=True)
class DcuSmiInfo:
    device_ids: tuple[int, ...]


def parse_dcu_smi(text: str) -> DcuSmiInfo:
    """Card ids from the default ``rocm-smi`` / ``hy-smi`` table (header ``DCU  Temp ...``)."""
    ids: list[int] = []
    in_table = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("DCU ", "GPU ")) and "Temp" in stripped:
            in_table = True
            continue
        if in_table and (row := DCU_ROW.match(stripped)):
            ids.append(int(row.group(1)))
    return DcuSmiInfo(tuple(ids))


POWER_COLUMNS = ("AvgPwr", "Power")


def parse_dcu_smi_power(text: str) -> list[float | None]:
    """Average power (W) per card from the default ``rocm-smi`` / ``hy-smi`` table's ``AvgPwr``
    column, read by the header's position (``38.0W``)."""
    watts: list[float | None] = []
    column: int | None = None
    for line in text.splitlines():
        tokens = line.split()
        if tokens and tokens[0] in ("DCU", "GPU") and "Temp" in tokens:
            column = next((tokens.index(c) for c in POWER_COLUMNS if c in tokens), None)
            continue
        if column is not None and DCU_ROW.match(line.strip()):
            watts.append(watts_or_none(tokens[column]) if column < len(tokens) else None)
    return watts


class HygonDcuBackend(PaddleGpuBackend):
    name = "dcu"
    device_type = "dcu"
    description = "Hygon DCU through Paddle's ROCm/DTK build (enable_use_gpu on HIP)"
    paddle_builds = ("paddlepaddle-dcu", "paddlepaddle-rocm")
    tool_names = DCU_TOOLS
    # MIOPEN_ covers MIOpen's find/tuning modes, which change convolution speed on ROCm.
    env_prefixes = ("HIP_", "ROCR_", "HSA_", "MIOPEN_")
    hardware_kind = "dcu"
    deleted_passes = ROCM_DELETED_PASSES
    environment = DCU_ENVIRONMENT

    def _read_smi(self) -> tuple[DcuSmiInfo | None, str]:
        output = _tools.run_first_tool(DCU_TOOLS)
        if output.text is None:
            return None, output.problem
        return parse_dcu_smi(output.text), ""

    def probe(self) -> Availability:
        paddle, problem = _tools.import_paddle()
        if paddle is None:
            return Availability.no(problem)
        if not _tools.guarded(paddle.device.is_compiled_with_rocm, False):
            return Availability.no(f"installed Paddle is not a ROCm/DTK build; {DCU_INSTALL_HINT}")
        info, problem = self._read_smi()
        if info is None:
            return Availability.no(f"DCU driver tool unusable ({problem}); install the DCU driver and DTK")
        count = _tools.guarded(lambda: int(paddle.device.cuda.device_count()), len(info.device_ids))
        if count <= self.device_id:
            return Availability.no(f"dcu:{self.device_id} requested but Paddle sees {count} DCU(s)")
        return Availability.yes(f"{count} DCU(s) visible")

    def device_info(self) -> DeviceInfo:
        paddle, _ = _tools.import_paddle()
        properties = (
            _tools.guarded(lambda: paddle.device.cuda.get_device_properties(self.device_id), None)
            if paddle
            else None
        )
        name = getattr(properties, "name", None) or "Hygon DCU"
        memory = getattr(properties, "total_memory", None)
        return DeviceInfo(
            backend=self.name,
            device=self.device,
            name=name if "hygon" in name.lower() or "dcu" in name.lower() else f"Hygon DCU {name}",
            vendor="Hygon",
            memory_total_bytes=int(memory) if memory else None,
            extra={"paddle_device": self.paddle_device},
        )

    def power_sources(self) -> Sequence[PowerSource]:
        return [
            ToolPowerSource(tool, (tool,), parse_dcu_smi_power, device_index=self.device_id,
                            domain=self.device)
            for tool in DCU_TOOLS
        ]

    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        return {
            Precision.FP32: PrecisionSupport.via("HIP/MIOpen FP32 kernels (enable_use_gpu on ROCm)"),
            Precision.FP16: PrecisionSupport.via("GPU mixed precision on ROCm (precision_mode=Half)"),
            Precision.BF16: PrecisionSupport.unsupported(
                "Paddle's ROCm build documents no BF16 inference on DCU"
            ),
            Precision.INT8: PrecisionSupport.unsupported(
                "no TensorRT on DCU and Paddle's ROCm build has no INT8 inference path"
            ),
        }
