"""Cambricon MLU through the ``paddle-custom-mlu`` PaddleCustomDevice plugin.

Identity from ``cnmon`` (the table Paddle's MLU install guide shows). Device selection: the id goes
to ``enable_custom_device("mlu", id)``; MLU_VISIBLE_DEVICES is not set because it renumbers cards
and would make that id point elsewhere. ``FLAGS_selected_mlus`` only aligns Paddle's bare "mlu".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from portbench.backends import _tools
from portbench.backends.base import Precision, PrecisionSupport
from portbench.backends.custom_device import CustomDeviceBackend, ToolDevice, ToolReport
from portbench.backends.power import usage_cap_watts

PLUGIN = "paddle-custom-mlu"
CNMON_VERSION = re.compile(r"CNMON\s+v(\S+)")
HEADER_DRIVER = re.compile(r"Driver\s+v(\S+)")
# "0     /   MLU370-X8    v1.1.6": card, VF, product name, firmware.
CARD_CELL = re.compile(r"^(\d+)\s+(\S+)\s+(\S+)\s+v(\S+)$")
ROW_DRIVER = re.compile(r"\bv(\d+(?:\.\d+)+)\b")
MIB_PAIR = re.compile(r"(\d+)\s*MiB\s*/\s*(\d+)\s*MiB")
# PaddleX's predictor setting for MLU.
MLU_ENVIRONMENT = {"FLAGS_use_stride_kernel": "0"}


@dataclass(frozen=True)
class MluCard:
    card: int
    name: str
    firmware: str
    memory_total_bytes: int | None
    power_w: float | None = None  # "Pwr:Usage" of the card's second row


@dataclass(frozen=True)
class CnmonInfo:
    cnmon_version: str | None
    driver_version: str | None
    cards: tuple[MluCard, ...]


def parse_cnmon(text: str) -> CnmonInfo:
    """``cnmon``: each card is two rows (card/name/firmware, then fan/temp/power/memory)."""
    cnmon_version = driver_version = None
    cards: list[MluCard] = []
    lines = text.splitlines()
    for position, line in enumerate(lines):
        if cnmon_version is None and (version := CNMON_VERSION.search(line)):
            cnmon_version = version.group(1)
            if driver := HEADER_DRIVER.search(line):
                driver_version = driver.group(1)
            continue
        if "Processes" in line:
            break
        cells = _tools.table_cells(line)
        card = CARD_CELL.match(cells[0]) if len(cells) >= 3 else None
        if card is None:
            continue
        # Older cnmon prints the driver in the card row ("On  v4.20.11") instead of the header.
        if driver_version is None and (row_driver := ROW_DRIVER.search(cells[1])):
            driver_version = row_driver.group(1)
        detail = _tools.table_cells(lines[position + 1]) if position + 1 < len(lines) else []
        memory = MIB_PAIR.search(detail[1]) if len(detail) >= 2 else None
        cards.append(
            MluCard(
                card=int(card.group(1)),
                name=card.group(3),
                firmware=card.group(4),
                memory_total_bytes=int(memory.group(2)) * _tools.MIB if memory else None,
                power_w=usage_cap_watts(detail[0]) if detail else None,
            )
        )
    return CnmonInfo(cnmon_version, driver_version, tuple(cards))


def parse_cnmon_power(text: str) -> list[float | None]:
    """Power draw (W) per card, in ``cnmon`` order (Paddle's mlu ids)."""
    return [card.power_w for card in parse_cnmon(text).cards]


def mlu_tool_report(text: str) -> ToolReport:
    info = parse_cnmon(text)
    devices = tuple(
        ToolDevice(
            name=f"Cambricon {card.name}",
            memory_total_bytes=card.memory_total_bytes,
            extra={"firmware": card.firmware},
        )
        for card in info.cards
    )
    return ToolReport(
        info.driver_version, devices, {"cnmon": info.cnmon_version} if info.cnmon_version else {}
    )


class CambriconMluBackend(CustomDeviceBackend):
    name = "mlu"
    device_type = "mlu"
    description = "Cambricon MLU through the paddle-custom-mlu plugin"
    plugin = PLUGIN
    plugin_channel = "mlu"
    vendor = "Cambricon"
    unit = "MLU"
    fallback_name = "Cambricon MLU"
    tool_names = ("cnmon",)
    tool_parser = mlu_tool_report
    tool_hint = "install the Cambricon driver, or mount /usr/bin/cnmon into the container"
    environment = MLU_ENVIRONMENT
    power_parser = parse_cnmon_power
    # CN_ covers the Neuware runtime's CNCL_/CNNL_ families too.
    env_prefixes = ("MLU_", "CNRT_", "CN_")
    precision_table = MappingProxyType({
        Precision.FP32: PrecisionSupport.via("paddle-custom-mlu FP32 kernels"),
        Precision.FP16: PrecisionSupport.via("enable_custom_device precision=Half (conv registers float16)"),
        Precision.BF16: PrecisionSupport.unsupported(
            "paddle-custom-mlu conv kernels register float and float16 only (no bfloat16)"
        ),
        Precision.INT8: PrecisionSupport.unsupported("paddle-custom-mlu has no INT8 inference kernels"),
    })
