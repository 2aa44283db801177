"""Iluvatar CoreX GPUs (BI-V100, BI-V150, MR-V100) through the ``paddle-iluvatar-gpu`` PaddleCustomDevice
plugin.

Sources for the declarations below:

- Device type ``iluvatar_gpu``: the plugin's runtime registers ``DeviceType = "iluvatar_gpu"``
  (PaddlePaddle/PaddleCustomDevice ``backends/iluvatar_gpu/runtime/runtime.cc``); PaddleX's predictor
  calls ``config.enable_custom_device("iluvatar_gpu", device_id)`` (PaddleX
  ``paddlex/inference/models/common/static_infer.py``, [PX-SI] in the reference notes).
- Distribution and index channel: ``pip install paddle-iluvatar-gpu -i
  https://www.paddlepaddle.org.cn/packages/stable/ixuca/`` on top of the ``paddlepaddle`` CPU wheel
  (PaddlePaddle/ERNIE ``docs/devices/README_ILUVATAR_GPU.md``).
- Tool: ``ixsmi``, installed as ``/usr/local/corex/bin/ixsmi`` (Deep-Spark/ix-device-plugin README,
  PaddleCustomDevice ``backends/iluvatar_gpu/README.md`` puts ``/usr/local/corex/bin`` on PATH).
- Precisions: the plugin registers ``matmul`` for float, float16, bfloat16 and int8
  (``backends/iluvatar_gpu/kernels/cuda_kernels/matmul_kernel_register.cc`` @a9a6b18).

ixsmi imitates nvidia-smi's table; a BI-V150 board holds two chips and lists each as its own GPU, in
the order Paddle numbers them.
"""

from __future__ import annotations

import re
from types import MappingProxyType

from portbench.backends import _tools
from portbench.backends.base import Precision, PrecisionSupport
from portbench.backends.custom_device import CustomDeviceBackend, ToolDevice, ToolReport
from portbench.backends.power import usage_cap_watts

PLUGIN = "paddle-iluvatar-gpu"
# "|  IX-ML: 4.0.0       Driver Version: 4.1.0       CUDA Version: N/A           |"
IXSMI_HEADER = re.compile(
    r"IX-ML:\s*(?P<ixml>\S+)\s+Driver Version:\s*(?P<driver>\S+)(?:\s+CUDA Version:\s*(?P<cuda>\S+))?"
)
# First cell of a GPU's first row: "0    Iluvatar BI-V150S" (index, product name).
GPU_CELL = re.compile(r"^(\d+)\s+(\S.*)$")
BUS_ID = re.compile(r"^[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d$")


def parse_ixsmi(text: str) -> ToolReport:
    """Default ``ixsmi`` table: per GPU, a name/bus row then a fan/temperature/memory row."""
    header = IXSMI_HEADER.search(text)
    devices: list[ToolDevice] = []
    lines = text.splitlines()
    for position, line in enumerate(lines):
        if "Processes:" in line:
            break  # the process table reuses the "| <GPU> ..." shape
        cells = _tools.table_cells(line)
        gpu = GPU_CELL.match(cells[0]) if len(cells) >= 3 else None
        if gpu is None or not BUS_ID.match(cells[1]):
            continue
        detail = _tools.table_cells(lines[position + 1]) if position + 1 < len(lines) else []
        memory = _tools.used_total_mib(detail[1]) if len(detail) >= 2 else None
        name = gpu.group(2).strip()
        devices.append(
            ToolDevice(
                name=name if name.lower().startswith("iluvatar") else f"Iluvatar {name}",
                memory_total_bytes=memory[1] * _tools.MIB if memory else None,
                extra={"index": gpu.group(1), "bus_id": cells[1]},
            )
        )
    extra: dict[str, str] = {}
    if header is not None:
        extra["ix_ml"] = header.group("ixml")
        if header.group("cuda") not in (None, "N/A"):
            extra["cuda_compat"] = header.group("cuda")
    return ToolReport(header.group("driver") if header else None, tuple(devices), extra)


def parse_ixsmi_power(text: str) -> list[float | None]:
    """Power draw (W) per GPU from the ``Pwr:Usage/Cap`` column of the default ``ixsmi`` table;
    None where it prints ``N/A`` (the second chip of a BI-V150 board)."""
    watts: list[float | None] = []
    lines = text.splitlines()
    for position, line in enumerate(lines):
        if "Processes:" in line:
            break
        cells = _tools.table_cells(line)
        if len(cells) < 3 or GPU_CELL.match(cells[0]) is None or not BUS_ID.match(cells[1]):
            continue
        detail = _tools.table_cells(lines[position + 1]) if position + 1 < len(lines) else []
        watts.append(usage_cap_watts(detail[0]) if detail else None)
    return watts


class IluvatarGpuBackend(CustomDeviceBackend):
    name = "iluvatar"
    device_type = "iluvatar_gpu"
    description = "Iluvatar CoreX GPU through the paddle-iluvatar-gpu plugin"
    plugin = PLUGIN
    plugin_channel = "ixuca"
    vendor = "Iluvatar CoreX"
    unit = "GPU"
    fallback_name = "Iluvatar GPU"
    tool_names = ("ixsmi",)
    tool_parser = parse_ixsmi
    power_parser = parse_ixsmi_power
    tool_hint = "install the Iluvatar CoreX driver and put /usr/local/corex/bin on PATH"
    # IX_VISIBLE_DEVICES is how Iluvatar's container toolkit hands chips to a container.
    env_prefixes = ("IX_",)
    precision_table = MappingProxyType({
        Precision.FP32: PrecisionSupport.via("paddle-iluvatar-gpu FP32 kernels"),
        Precision.FP16: PrecisionSupport.via(
            "enable_custom_device precision=Half (matmul registers float16)"
        ),
        Precision.BF16: PrecisionSupport.via(
            "enable_custom_device precision=Bfloat16 (matmul registers bfloat16)"
        ),
        Precision.INT8: PrecisionSupport.unsupported(
            "no INT8 inference path is documented for paddle-iluvatar-gpu (only int8 matmul kernels)"
        ),
    })
