"""A third-party portbench backend: Paddle Inference on the CPU without oneDNN, FP32 only.

Written only against ``portbench.backends.base`` and registered through the ``portbench.backends``
entry-point group; portbench itself does not know this package.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping

from portbench.backends.base import (
    Availability,
    Backend,
    ConfigLike,
    DeviceInfo,
    Precision,
    PrecisionSupport,
    PredictorOptions,
)


class ToyCpuBackend(Backend):
    name = "toycpu"
    device_type = "cpu"
    description = "Paddle's native CPU kernels, no oneDNN (a third-party backend example)"

    def probe(self) -> Availability:
        return Availability.yes("native CPU kernels")

    def device_info(self) -> DeviceInfo:
        return DeviceInfo(self.name, self.device, platform.processor() or platform.machine(), "toy")

    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        return {
            p: PrecisionSupport.via("native FP32 kernels")
            if p is Precision.FP32
            else PrecisionSupport.unsupported("the toy backend runs FP32 only")
            for p in Precision
        }

    def configure(self, config: ConfigLike, options: PredictorOptions) -> None:
        config.disable_gpu()
        config.disable_onednn()
        config.switch_ir_optim(options.ir_optim)
        config.set_cpu_math_library_num_threads(options.cpu_threads or 1)
