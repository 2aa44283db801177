"""Huawei Ascend NPU through the ``paddle-custom-npu`` PaddleCustomDevice plugin.

Identity from ``npu-smi info``. Device selection: the id goes to ``enable_custom_device("npu", id)``;
ASCEND_RT_VISIBLE_DEVICES is not set because it renumbers the chips and would make that id point
elsewhere. ``FLAGS_selected_npus`` only makes Paddle's bare "npu" strings mean the same chip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from portbench.backends import _tools
from portbench.backends.base import Precision, PrecisionSupport
from portbench.backends.custom_device import CustomDeviceBackend, ToolDevice, ToolReport
from portbench.backends.power import watts_or_none

PLUGIN = "paddle-custom-npu"
NPU_SMI_VERSION = re.compile(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)")
# "0     910B2C" (NPU id, chip name); the name always holds a letter, process rows never do.
NPU_NAME_CELL = re.compile(r"^(\d+)\s+([\w-]*[A-Za-z][\w-]*)$")
BUS_ID = re.compile(r"^[0-9A-Fa-fx]{4}:[0-9A-Fa-fx]{2}:[0-9A-Fa-fx]{2}\.\d$")
# PaddleX's predictor settings for NPU: no per-op JIT compile (minutes on first run), no stride kernels.
NPU_ENVIRONMENT = {"FLAGS_npu_jit_compile": "0", "FLAGS_use_stride_kernel": "0"}


@dataclass(frozen=True)
class AscendChip:
    npu_id: int
    chip: str  # "Chip" column (and Phy-ID on newer npu-smi), as printed
    name: str  # "910B2C", "Ascend910", "910B4-1"
    health: str
    bus_id: str | None
    memory_total_bytes: int | None  # HBM (or DDR on inference cards)
    power_w: float | None = None  # "Power(W)"; "-" on the second chip of a two-chip card


@dataclass(frozen=True)
class NpuSmiInfo:
    tool_version: str | None
    driver_version: str | None
    chips: tuple[AscendChip, ...]


def parse_npu_smi_info(text: str) -> NpuSmiInfo:
    """``npu-smi info``: each chip is two table rows (name/health, then chip/bus/memory)."""
    tool_version = driver_version = None
    chips: list[AscendChip] = []
    lines = text.splitlines()
    for position, line in enumerate(lines):
        version = NPU_SMI_VERSION.search(line)
        if version:
            tool_version, driver_version = version.group(1), version.group(2)
            continue
        if "Process" in line:
            break  # the process table follows; its rows are not chips
        cells = _tools.table_cells(line)
        name_match = NPU_NAME_CELL.match(cells[0]) if len(cells) >= 3 else None
        if name_match is None or position + 1 >= len(lines):
            continue
        detail = _tools.table_cells(lines[position + 1])
        if len(detail) < 3 or not BUS_ID.match(detail[1]):
            continue
        memory = _tools.used_total_mib(detail[2])
        chips.append(
            AscendChip(
                npu_id=int(name_match.group(1)),
                chip=detail[0],
                name=name_match.group(2),
                health=cells[1],
                bus_id=detail[1] or None,
                memory_total_bytes=memory[1] * _tools.MIB if memory else None,
                power_w=watts_or_none(cells[2].split()[0]) if cells[2].split() else None,
            )
        )
    return NpuSmiInfo(tool_version, driver_version, tuple(chips))


def _display_name(chip_name: str) -> str:
    return chip_name if chip_name.lower().startswith("ascend") else f"Ascend {chip_name}"


def parse_npu_smi_power(text: str) -> list[float | None]:
    """Power draw (W) per chip, in ``npu-smi info`` order (Paddle's npu ids)."""
    return [chip.power_w for chip in parse_npu_smi_info(text).chips]


def npu_tool_report(text: str) -> ToolReport:
    info = parse_npu_smi_info(text)
    devices = tuple(
        ToolDevice(
            name=_display_name(chip.name),
            memory_total_bytes=chip.memory_total_bytes,
            extra={"health": chip.health, **({"bus_id": chip.bus_id} if chip.bus_id else {})},
        )
        for chip in info.chips
    )
    return ToolReport(info.driver_version, devices)


class AscendNpuBackend(CustomDeviceBackend):
    name = "npu"
    device_type = "npu"
    description = "Huawei Ascend NPU through the paddle-custom-npu plugin"
    plugin = PLUGIN
    plugin_channel = "npu"
    vendor = "Huawei"
    unit = "NPU"
    fallback_name = "Ascend NPU"
    tool_names = ("npu-smi",)
    tool_args = ("info",)
    tool_parser = npu_tool_report
    tool_hint = (
        "install the Ascend driver, or mount /usr/local/bin/npu-smi and /usr/local/Ascend/driver "
        "into the container"
    )
    environment = NPU_ENVIRONMENT
    power_parser = parse_npu_smi_power
    env_prefixes = ("ASCEND_", "NPU_")
    precision_table = MappingProxyType({
        Precision.FP32: PrecisionSupport.via("paddle-custom-npu FP32 kernels"),
        Precision.FP16: PrecisionSupport.via(
            "enable_custom_device precision=Half (conv2d/matmul register float16)"
        ),
        Precision.BF16: PrecisionSupport.via(
            "enable_custom_device precision=Bfloat16 (conv2d/matmul register bfloat16)"
        ),
        Precision.INT8: PrecisionSupport.unsupported("paddle-custom-npu has no INT8 inference kernels"),
    })
