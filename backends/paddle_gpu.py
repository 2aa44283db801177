"""What Paddle's own GPU builds share: NVIDIA CUDA (``paddlepaddle-gpu``) and Hygon DCU (the ROCm/HIP
build, which Paddle also calls "gpu").

Both reach the device through ``enable_use_gpu`` and the ``gpu:N`` place, so the Config calls live
here once; a backend declares only what differs: the passes its build must drop and the flags its
workers need.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from portbench.backends import _tools
from portbench.backends.base import Backend, ConfigLike, Precision, PredictorOptions

# Initial pool only; Paddle grows it on demand (auto_growth allocator).
GPU_MEMORY_POOL_MB = 256
# Feed and fetch stay FP32 so the harness hands in and reads back float32 arrays at every precision.
FP32_IO_OPS = frozenset({"feed", "fetch"})
MIXED_PRECISIONS = frozenset({Precision.FP16, Precision.BF16})


class PaddleGpuBackend(Backend):
    # IR passes this build cannot run (PaddleX deletes them on ROCm).
    deleted_passes: ClassVar[tuple[str, ...]] = ()
    # Flags applied in the worker only, next to the device selection.
    environment: ClassVar[Mapping[str, str]] = {}

    @property
    def paddle_device(self) -> str:
        """Paddle's place string: "gpu:N" on CUDA and ROCm builds alike."""
        return f"gpu:{self.device_id}"

    def enable_gpu(self, config: ConfigLike, device_id: int, precision: Precision) -> None:
        config.enable_use_gpu(GPU_MEMORY_POOL_MB, device_id, _tools.precision_type(precision.value))
        if precision in MIXED_PRECISIONS:
            config.exp_disable_mixed_precision_ops(set(FP32_IO_OPS))

    def configure(self, config: ConfigLike, options: PredictorOptions) -> None:
        self.enable_gpu(config, options.device_id, options.precision)
        config.switch_ir_optim(options.ir_optim)
        config.enable_memory_optim()
        for pass_name in self.deleted_passes:
            config.delete_pass(pass_name)

    def worker_environment(self) -> Mapping[str, str]:
        # Bare "gpu" device strings inside Paddle resolve to this id; visibility stays untouched so
        # the vendor tool's indices and Paddle ids keep meaning the same card.
        return {"FLAGS_selected_gpus": str(self.device_id), **self.environment}

    def synchronize(self) -> None:
        _tools.paddle_synchronize(self.paddle_device)

    def memory_used_bytes(self) -> int | None:
        return _tools.paddle_memory_reserved(self.paddle_device)
