"""The template every PaddleCustomDevice plugin backend is declared on (Ascend ``npu``, Cambricon
``mlu``, Iluvatar ``iluvatar_gpu``).

A plugin registers its device type with Paddle; a predictor reaches it with one Config call, and the
device is chosen by index (``FLAGS_selected_<type>s`` keeps Paddle's bare device strings on the same
card). Everything else is the same sequence for every vendor, so a backend only declares what
differs, as class attributes:

=================== ===========================================================================
``name``            portbench's backend name (``--backend``)
``device_type``     the type string the plugin registers (``get_all_custom_device_type()``)
``plugin``          the pip distribution of the plugin
``plugin_channel``  its channel on Paddle's package index (``/packages/stable/<channel>/``)
``vendor``          vendor name recorded in results; ``unit`` the device noun in messages
``fallback_name``   device name when the tool prints none
``tool_names``      the vendor tool's executables, preferred first; ``tool_args`` its arguments
``tool_parser``     ``text -> ToolReport`` for that tool's output
``tool_hint``       how to make the tool usable when it is missing
``environment``     vendor flags set in the worker only (PaddleX's predictor settings)
``env_prefixes``    environment prefixes recorded in the run manifest
``precision_table`` every ``Precision`` with how it runs or why it cannot
``power_parser``    ``text -> watts per device`` for the same tool's output (None: no power column)
=================== ===========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
from portbench.backends.power import PowerParser, PowerSource, ToolPowerSource


@dataclass(frozen=True)
class ToolDevice:
    """One device as a vendor tool lists it, in the order Paddle numbers them."""

    name: str  # display name recorded in results, vendor prefix included ("Ascend 910B2C")
    memory_total_bytes: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)  # health, bus id, firmware, ...


@dataclass(frozen=True)
class ToolReport:
    """What the template needs from any vendor tool: the driver and the devices."""

    driver_version: str | None
    devices: tuple[ToolDevice, ...]
    extra: Mapping[str, str] = field(default_factory=dict)  # tool version and the like

    def device(self, device_id: int) -> ToolDevice | None:
        return self.devices[device_id] if 0 <= device_id < len(self.devices) else None


class CustomDeviceBackend(Backend):
    plugin: ClassVar[str]
    plugin_channel: ClassVar[str]
    vendor: ClassVar[str]
    unit: ClassVar[str]
    fallback_name: ClassVar[str]
    tool_args: ClassVar[tuple[str, ...]] = ()
    tool_parser: ClassVar[Callable[[str], ToolReport]]
    tool_hint: ClassVar[str]
    environment: ClassVar[Mapping[str, str]] = {}
    precision_table: ClassVar[Mapping[Precision, PrecisionSupport]]
    power_parser: ClassVar[PowerParser | None] = None
    # Plugins install into the CPU wheel of paddlepaddle ([CD] backends/<type>/README.md).
    paddle_builds = ("paddlepaddle",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        plugin = cls.__dict__.get("plugin")
        if plugin is not None and "paddle_plugins" not in cls.__dict__:
            cls.paddle_plugins = (plugin,)
        if "name" in cls.__dict__ and "hardware_kind" not in cls.__dict__:
            cls.hardware_kind = cls.name

    # -- discovery -------------------------------------------------------------------------------

    def read_tool(self) -> tuple[ToolReport | None, str]:
        """The parsed vendor tool output, or ``(None, why)``."""
        output = _tools.run_first_tool(self.tool_names, self.tool_args)
        if output.text is None:
            return None, output.problem
        return type(self).tool_parser(output.text), ""

    def probe(self) -> Availability:
        paddle, problem = _tools.import_paddle()
        if paddle is None:
            return Availability.no(problem)
        problem = _tools.custom_device_probe(paddle, self.device_type, self.plugin, self.plugin_channel)
        if problem:
            return Availability.no(problem)
        report, problem = self.read_tool()
        if report is None:
            return Availability.no(f"{self.vendor} driver tool unusable ({problem}); {self.tool_hint}")
        device_type = self.device_type
        count = _tools.guarded(lambda: int(paddle.device.device_count(device_type)), len(report.devices))
        if count <= self.device_id:
            return Availability.no(
                f"{self.device} requested but Paddle sees {count} {self.unit}(s)"
            )
        device = report.device(self.device_id)
        name = device.name if device else self.fallback_name
        return Availability.yes(f"{name}, {count} {self.unit}(s) visible")

    def device_info(self) -> DeviceInfo:
        report, _ = self.read_tool()
        device = report.device(self.device_id) if report else None
        version = _tools.distribution_version(self.plugin) or "unknown"
        extra = {"plugin": f"{self.plugin} {version}"}
        if report is not None:
            extra.update(report.extra)
        if device is not None:
            extra.update(device.extra)
        return DeviceInfo(
            backend=self.name,
            device=self.device,
            name=device.name if device else self.fallback_name,
            vendor=self.vendor,
            driver_version=report.driver_version if report else None,
            memory_total_bytes=device.memory_total_bytes if device else None,
            extra=extra,
        )

    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        return dict(self.precision_table)

    # -- predictor -------------------------------------------------------------------------------

    def configure(self, config: ConfigLike, options: PredictorOptions) -> None:
        config.enable_custom_device(
            self.device_type, options.device_id, _tools.precision_type(options.precision.value)
        )
        config.switch_ir_optim(options.ir_optim)
        config.enable_memory_optim()

    def worker_environment(self) -> Mapping[str, str]:
        return {f"FLAGS_selected_{self.device_type}s": str(self.device_id), **self.environment}

    def synchronize(self) -> None:
        _tools.paddle_synchronize(self.device)

    def memory_used_bytes(self) -> int | None:
        return _tools.paddle_memory_reserved(self.device)

    def power_sources(self) -> Sequence[PowerSource]:
        parser = type(self).power_parser
        if parser is None or not self.tool_names:
            return ()
        return [
            ToolPowerSource(
                self.tool_names[0],
                (self.tool_names[0], *self.tool_args),
                parser,
                device_index=self.device_id,
                domain=self.device,
            )
        ]
