"""Huawei Ascend NPU through the ``paddle-custom-npu`` PaddleCustomDevice plugin.

Identity from ``npu-smi info``. Device selection: the id goes to ``enable_custom_device("npu", id)``;
ASCEND_RT_VISIBLE_DEVICES is not set because it renumbers the chips and would make that id point
elsewhere. ``FLAGS_selected_npus`` only makes Paddle's bare "npu" strings mean the same chip.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from portbench.backends import _tools
from portbench.backends.base import (
    Availability,
    DeviceInfo,
    Precision,
    PrecisionSupport,
)
from portbench.backends.custom_device import CustomDeviceBackend

PLUGIN = "paddle-custom-npu"
NPU_SMI_INFO = ("npu-smi", "info")
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
            )
        )
    return NpuSmiInfo(tool_version, driver_version, tuple(chips))


def _display_name(chip_name: str) -> str:
    return chip_name if chip_name.lower().startswith("ascend") else f"Ascend {chip_name}"


class AscendNpuBackend(CustomDeviceBackend):
    plugin = PLUGIN
    environment = NPU_ENVIRONMENT
    name = "npu"
    device_type = "npu"
    description = "Huawei Ascend NPU through the paddle-custom-npu plugin"

    def _read_npu_smi(self) -> tuple[NpuSmiInfo | None, str]:
        output = _tools.run_tool(NPU_SMI_INFO)
        if output.text is None:
            return None, output.problem
        return parse_npu_smi_info(output.text), ""

    def probe(self) -> Availability:
        paddle, problem = _tools.import_paddle()
        if paddle is None:
            return Availability.no(problem)
        problem = _tools.custom_device_probe(paddle, "npu", PLUGIN, "npu")
        if problem:
            return Availability.no(problem)
        info, problem = self._read_npu_smi()
        if info is None:
            return Availability.no(
                f"Ascend driver tool unusable ({problem}); install the Ascend driver, or mount "
                "/usr/local/bin/npu-smi and /usr/local/Ascend/driver into the container"
            )
        count = _tools.guarded(lambda: int(paddle.device.device_count("npu")), len(info.chips))
        if count <= self.device_id:
            return Availability.no(f"npu:{self.device_id} requested but Paddle sees {count} NPU(s)")
        chip = info.chips[self.device_id] if self.device_id < len(info.chips) else None
        name = _display_name(chip.name) if chip else "Ascend NPU"
        return Availability.yes(f"{name}, {count} NPU(s) visible")

    def device_info(self) -> DeviceInfo:
        info, _ = self._read_npu_smi()
        chips = info.chips if info else ()
        chip = chips[self.device_id] if self.device_id < len(chips) else None
        extra = {"plugin": f"{PLUGIN} {_tools.distribution_version(PLUGIN) or 'unknown'}"}
        if chip is not None:
            extra["health"] = chip.health
            if chip.bus_id:
                extra["bus_id"] = chip.bus_id
        return DeviceInfo(
            backend=self.name,
            device=self.device,
            name=_display_name(chip.name) if chip else "Ascend NPU",
            vendor="Huawei",
            driver_version=info.driver_version if info else None,
            memory_total_bytes=chip.memory_total_bytes if chip else None,
            extra=extra,
        )

    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        return {
            Precision.FP32: PrecisionSupport.via("paddle-custom-npu FP32 kernels"),
            Precision.FP16: PrecisionSupport.via(
                "enable_custom_device precision=Half (conv2d/matmul register float16)"
            ),
            Precision.BF16: PrecisionSupport.via(
                "enable_custom_device precision=Bfloat16 (conv2d/matmul register bfloat16)"
            ),
            Precision.INT8: PrecisionSupport.unsupported("paddle-custom-npu has no INT8 inference kernels"),
        }
