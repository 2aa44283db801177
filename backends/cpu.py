"""CPU backend: Paddle Inference on the host processor.

x86 (Intel, AMD, Hygon, Zhaoxin) runs through oneDNN; ARM (Kunpeng, Phytium) and LoongArch Paddle
builds ship without oneDNN and run Paddle's native CPU kernels, so lower precisions there are skips.
"""

from __future__ import annotations

from collections.abc import Mapping

import psutil

from portbench.backends import cpuinfo
from portbench.backends.base import (
    Availability,
    Backend,
    ConfigLike,
    DeviceInfo,
    Precision,
    PrecisionSupport,
    PredictorOptions,
)

X86_ARCHITECTURES = frozenset({"x86_64", "amd64", "i686"})
# oneDNN keeps one primitive per input shape; detection sees a new shape per image, so bound it.
ONEDNN_SHAPE_CACHE = 20
MAX_DEFAULT_THREADS = 16
# Op types oneDNN may run in INT8: every type Paddle's cpu_quantize_pass handles except
# ``fused_matmul``. Its INT8 kernel (the attention matmuls of a Transformer, after the oneDNN fuse
# passes) gives different logits to identical rows of one batch and changes from one predictor to the
# next: the same INT8 ERNIE model scored 0.66-0.86 at batch 1 and 0.77-0.85 at batch 8 across fresh
# predictors, while every set without ``fused_matmul`` gives identical rows and batch-1 == batch-8
# logits (docs/quantization.md). Those matmuls stay FP32; ``fc`` and convolutions keep INT8.
ONEDNN_INT8_OP_TYPES = frozenset(
    {
        "conv2d", "depthwise_conv2d", "fused_conv2d", "pool2d", "concat", "prior_box", "fc",
        "matmul", "matmul_v2", "reshape2", "transpose2", "fused_transpose", "slice",
        "nearest_interp", "nearest_interp_v2", "split", "elementwise_add", "elementwise_mul",
        "elementwise_sub", "fused_elementwise_add", "fused_elementwise_mul", "fused_elementwise_sub",
        "fusion_gru", "multi_gru", "fusion_lstm",
    }
)  # fmt: skip


def default_threads() -> int:
    return max(1, min(psutil.cpu_count(logical=False) or 1, MAX_DEFAULT_THREADS))


class CpuBackend(Backend):
    name = "cpu"
    device_type = "cpu"
    description = "Host CPU through Paddle Inference (oneDNN on x86)"
    paddle_builds = ("paddlepaddle",)

    def __init__(self, device_id: int = 0, flags: frozenset[str] | None = None, arch: str | None = None):
        super().__init__(device_id)
        self._flags = cpuinfo.cpu_flags() if flags is None else flags
        self._arch = cpuinfo.machine_architecture() if arch is None else arch

    @property
    def uses_onednn(self) -> bool:
        return self._arch in X86_ARCHITECTURES

    @property
    def clones_share_weights(self) -> bool:
        # Paddle 3.2.2's oneDNN kernels rewrite shared weights in place: after weight-sharing clones
        # of the OCR det predictor served concurrently, the original predictor failed ("The Filter
        # tensor's layout should be ONEDNN, but got NCHW [operator < fused_conv2d > error]", three
        # runs of the scenarios suite's OCR server cell); with predictors of their own it passed.
        return not self.uses_onednn

    def probe(self) -> Availability:
        engine = "oneDNN" if self.uses_onednn else "native kernels"
        return Availability.yes(f"{self._arch}, {default_threads()} threads by default, {engine}")

    def device_info(self) -> DeviceInfo:
        cpu = cpuinfo.describe_cpu()
        return DeviceInfo(
            backend=self.name,
            device=self.device,
            name=cpu.model_name,
            vendor=cpu.vendor,
            memory_total_bytes=psutil.virtual_memory().total,
            extra={"architecture": self._arch, "family": cpu.family},
        )

    def precisions(self) -> Mapping[Precision, PrecisionSupport]:
        no_onednn = "this CPU build of Paddle has no oneDNN ({arch}); only FP32 kernels exist"
        if not self.uses_onednn:
            reason = no_onednn.format(arch=self._arch)
            return {
                Precision.FP32: PrecisionSupport.via("Paddle native CPU kernels"),
                Precision.FP16: PrecisionSupport.unsupported("Paddle Inference has no FP16 CPU kernels"),
                Precision.BF16: PrecisionSupport.unsupported(reason),
                Precision.INT8: PrecisionSupport.unsupported(reason),
            }
        has_bf16 = bool(self._flags & {"avx512_bf16", "amx_bf16"})
        has_int8 = bool(self._flags & {"avx512_vnni", "avx_vnni", "amx_int8", "avx512bw"})
        return {
            Precision.FP32: PrecisionSupport.via("oneDNN FP32"),
            Precision.FP16: PrecisionSupport.unsupported("Paddle Inference has no FP16 CPU kernels"),
            Precision.BF16: (
                PrecisionSupport.via("oneDNN BF16 (avx512_bf16/AMX)")
                if has_bf16
                else PrecisionSupport.unsupported("CPU lacks avx512_bf16 and amx_bf16")
            ),
            Precision.INT8: (
                PrecisionSupport.via("oneDNN INT8 on a quantized model")
                if has_int8
                else PrecisionSupport.unsupported("CPU lacks VNNI/AVX512BW for oneDNN INT8")
            ),
        }

    def configure(self, config: ConfigLike, options: PredictorOptions) -> None:
        config.disable_gpu()
        config.switch_ir_optim(options.ir_optim)
        config.enable_memory_optim()
        config.set_cpu_math_library_num_threads(options.cpu_threads or default_threads())
        if not self.uses_onednn:
            return
        config.enable_onednn()
        config.set_onednn_cache_capacity(ONEDNN_SHAPE_CACHE)
        if options.precision is Precision.BF16:
            config.enable_onednn_bfloat16()
        elif options.precision is Precision.INT8:
            config.enable_onednn_int8(set(ONEDNN_INT8_OP_TYPES))
