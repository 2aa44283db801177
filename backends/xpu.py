"""Kunlunxin XPU through the ``paddlepaddle-xpu`` build (not a plugin).

Identity from ``xpu_smi`` (``xpu-smi`` on P800 images). The id goes to ``set_xpu_device_id``;
XPU_VISIBLE_DEVICES is not set because it renumbers cards. ``FLAGS_selected_xpus`` aligns bare "xpu".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from portbench.backends import _tools
from portbench.backends.base import (
    Availability,
    Backend,
    ConfigLike,
    DeviceInfo,
    Precision,
    PrecisionSupport,
    PredictorOptions,
)
from portbench.backends.power import PowerSource, UnsupportedPowerSource

XPU_TOOLS = ("xpu_smi", "xpu-smi")
RUNTIME_VERSION = re.compile(r"Runtime Version:\s*(\S+)")
DRIVER_VERSION = re.compile(r"Driver Version:\s*(\S+)")
XPU_INSTALL_HINT = (
    "install paddlepaddle-xpu (pip install paddlepaddle-xpu -i "
    "https://www.paddlepaddle.org.cn/packages/stable/xpu/ ; P800: nightly/xpu-p800)"
)
# Weight-only INT8 for quant_post_dynamic_weight_precision (0: int8, 1: int16, 2: float).
XPU_WEIGHT_INT8 = 0
# PaddleX 3.x removes these passes on XPU; follow the vendor-tested predictor configuration.
XPU_DELETED_PASSES = ("conv2d_bn_xpu_fuse_pass", "transfer_layout_pass")
XPU_ENVIRONMENT = {"FLAGS_use_stride_kernel": "0"}


@dataclass(frozen=True)
class KunlunCard:
    dev_id: int
    model: str
    pci_address: str | None
    memory_total_bytes: int | None


@dataclass(frozen=True)
class XpuSmiInfo:
    runtime_version: str | None
    driver_version: str | None
    cards: tuple[KunlunCard, ...]


def parse_xpu_smi(text: str) -> XpuSmiInfo:
    """``xpu_smi``: version lines, then a DEVICES table read by its header (VIDEO etc. are skipped)."""
    runtime = RUNTIME_VERSION.search(text)
    driver = DRIVER_VERSION.search(text)
    header: list[str] = []
    cards: list[KunlunCard] = []
    for line in text.splitlines():
        cells = _tools.table_cells(line)
        if not cells:
            continue
        if "DevID" in cells:
            header = cells
            continue
        if "Memory" not in header or "PCI Addr" not in header or len(cells) != len(header):
            continue
        row = dict(zip(header, cells, strict=True))
        if not row["DevID"].isdigit():
            continue
        memory = _tools.used_total_mib(row["Memory"])
        cards.append(
            KunlunCard(
                dev_id=int(row["DevID"]),
                model=row.get("Model", "XPU"),
                pci_address=row["PCI Addr"] or None,
                memory_total_bytes=memory[1] * _tools.MIB if memory else None,
            )
        )
    return XpuSmiInfo(
        runtime.group(1) if runtime else None, driver.group(1) if driver else None, tuple(cards)
    )


class KunlunXpuBackend(Backend):
    # XpuConfig quantizes weights when the predictor is built: INT8 takes the FP32 model.
    int8_needs_quantized_model = False
    name = "xpu"
    device_type = "xpu"
    description = "Kunlunxin XPU through the paddlepaddle-xpu build"
    paddle_builds = ("paddlepaddle-xpu",)
    tool_names = XPU_TOOLS
    # BKCL_ is Kunlunxin's collective library (PaddleX sets BKCL_FORCE_SYNC, BKCL_TIMEOUT).
    env_prefixes = ("XPU_", "BKCL_")
    hardware_kind = "xpu"

    def _read_xpu_smi(self) -> tuple[XpuSmiInfo | None, str]:
        output = _tools.run_first_tool(XPU_TOOLS)
        if output.text is None:
            return None, output.problem
        return parse_xpu_smi(output.text), ""

    def probe(self) -> Availability:
        paddle, problem = _tools.import_paddle()
        if paddle is None:
            return Availability.no(problem)
        if not _tools.guarded(paddle.device.is_compiled_with_xpu, False):
            return Availability.no(f"installed Paddle is not an XPU build; {XPU_INSTALL_HINT}")
        info, problem = self._read_xpu_smi()
        if info is None:
            return Availability.no(f"Kunlunxin driver tool unusable ({problem}); install the XPU driver")
        count = _tools.guarded(lambda: int(paddle.device.device_count("xpu")), len(info.cards))
        if count <= self.device_id:
            return Availability.no(f"xpu:{self.device_id} requested but Paddle sees {count} XPU(s)")
        card = self._card(info)
        return Availability.yes(f"Kunlunxin {card.model if card else 'XPU'}, {count} XPU(s) visible")

    def _card(self, info: XpuSmiInfo) -> KunlunCard | None:
        return next((card for card in info.cards if card.dev_id == self.device_id), None)

    def device_info(self) -> DeviceInfo:
        info, _ = self._read_xpu_smi()
        card = self._card(info) if info else None
        extra = {"pci_address": card.pci_address} if card and card.pci_address else {}
        return DeviceInfo(
            backend=self.name,
            device=self.device,
            name=f"Kunlunxin {card.model}" if card else "Kunlunxin XPU",
            vendor="Kunlunxin",
            driver_version=info.driver_version if info else None,
            runtime_version=info.runtime_version if info else None,
            memory_total_bytes=card.memory_total_bytes if card else None,
            extra=extra,
        )

    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        return {
            Precision.FP32: PrecisionSupport.via("XPU kernels (enable_xpu)"),
            Precision.FP16: PrecisionSupport.unsupported(
                "Paddle Inference has no runtime FP16 switch for XPU; it needs a model converted "
                "offline with paddle.inference.convert_to_mixed_precision"
            ),
            Precision.BF16: PrecisionSupport.unsupported("Paddle Inference has no BF16 switch for XPU"),
            Precision.INT8: PrecisionSupport.via(
                "XPU weight-only INT8 (XpuConfig.quant_post_dynamic_weight_precision=0)"
            ),
        }

    def configure(self, config: ConfigLike, options: PredictorOptions) -> None:
        config.enable_xpu()
        config.set_xpu_device_id(options.device_id)
        if options.precision is Precision.INT8:
            from paddle.inference import XpuConfig

            xpu_config = XpuConfig()
            xpu_config.device_id = options.device_id
            xpu_config.quant_post_dynamic_weight_precision = XPU_WEIGHT_INT8
            config.set_xpu_config(xpu_config)
        config.switch_ir_optim(options.ir_optim)
        for pass_name in XPU_DELETED_PASSES:
            config.delete_pass(pass_name)

    def worker_environment(self) -> Mapping[str, str]:
        return {"FLAGS_selected_xpus": str(self.device_id), **XPU_ENVIRONMENT}

    def synchronize(self) -> None:
        _tools.paddle_synchronize(self.device)

    def memory_used_bytes(self) -> int | None:
        return _tools.paddle_memory_reserved(self.device)

    def power_sources(self) -> Sequence[PowerSource]:
        # The recorded default table (tests/fixtures/devices/xpu_smi_r300.txt) has no power
        # column; no real output of a power query has been recorded to test a parser on yet.
        return [
            UnsupportedPowerSource(
                XPU_TOOLS[0], "card",
                "xpu_smi's default table prints no power column; its power query is not parsed yet",
            )
        ]
