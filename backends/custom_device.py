"""What every PaddleCustomDevice plugin backend shares (Ascend ``npu``, Cambricon ``mlu``).

A plugin registers its device type with Paddle; a predictor reaches it with one Config call, and the
device is chosen by index (``FLAGS_selected_<type>s`` keeps Paddle's bare device strings on the same
card). Subclasses add what differs: the vendor tool, identity parsing and the precision table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from portbench.backends import _tools
from portbench.backends.base import Backend, ConfigLike, PredictorOptions


class CustomDeviceBackend(Backend):
    plugin: ClassVar[str]  # the pip distribution, e.g. paddle-custom-npu
    # Vendor flags the plugin's own predictors set (PaddleX), applied in the worker only.
    environment: ClassVar[Mapping[str, str]] = {}

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
