"""Accelerator backends: vendor-tool parsing on recorded outputs, capability tables, and the exact
Paddle Inference Config calls (recorded on a fake Config). Hardware tests skip where probe says no.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
from paddle.inference import PrecisionType

from portbench import plugins
from portbench.backends import _tools, registry
from portbench.backends.base import (
    Availability,
    ModelFiles,
    Precision,
    PrecisionSupport,
    PredictorOptions,
)
from portbench.backends.cpu import CpuBackend
from portbench.backends.cuda import (
    CudaBackend,
    NvidiaGpu,
    TensorRTBackend,
    parse_nvidia_smi_csv,
    select_gpu,
)
from portbench.backends.custom_device import CustomDeviceBackend, ToolDevice, ToolReport
from portbench.backends.dcu import HygonDcuBackend, parse_dcu_smi
from portbench.backends.iluvatar import IluvatarGpuBackend, parse_ixsmi
from portbench.backends.mlu import CambriconMluBackend, parse_cnmon
from portbench.backends.npu import AscendNpuBackend, parse_npu_smi_info
from portbench.backends.xpu import KunlunXpuBackend, parse_xpu_smi
from portbench.errors import PortbenchError
from portbench.harness.measure import manifest_env_prefixes, performance_environment
from portbench.harness.platform_info import paddle_plugins

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

FIXTURES = Path(__file__).parent / "fixtures" / "devices"
MIB = 1 << 20
BUILTIN_ACCELERATORS = {"cuda", "tensorrt", "npu", "mlu", "xpu", "dcu", "iluvatar"}
# Every registered backend that needs hardware, third-party plugins included.
ACCELERATORS = tuple(
    name for name, cls in registry.backend_classes().items() if cls.hardware_kind is not None
)


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class RecordingConfig:
    """Stands in for paddle.inference.Config: every method call is recorded as (name, args, kwargs)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return record

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]


def configured(backend: Any, **options: Any) -> RecordingConfig:
    config = RecordingConfig()
    backend.configure(config, PredictorOptions(**options))
    return config


# -- nvidia-smi ----------------------------------------------------------------------------------


def test_nvidia_smi_csv_a100() -> None:
    (gpu,) = parse_nvidia_smi_csv(fixture("nvidia_smi_a100.csv"))
    assert gpu == NvidiaGpu(None, "NVIDIA A100-SXM4-40GB", "575.57.08", 40960 * MIB, (8, 0))


def test_nvidia_smi_csv_columns_in_any_order_select_by_index() -> None:
    gpus = parse_nvidia_smi_csv(fixture("nvidia_smi_two_gpus.csv"))
    assert [(g.index, g.name, g.compute_capability) for g in gpus] == [
        (0, "NVIDIA TITAN V", (7, 0)),
        (1, "NVIDIA RTX 5880 Ada Generation", (8, 9)),
    ]
    assert gpus[0].memory_total_bytes is None  # not queried in this recording
    selected = select_gpu(gpus, 1)
    assert selected is not None and selected.name == "NVIDIA RTX 5880 Ada Generation"
    assert select_gpu(gpus, 2) is None


def test_nvidia_smi_csv_unavailable_memory() -> None:
    (gpu,) = parse_nvidia_smi_csv(fixture("nvidia_smi_gb10.csv"))
    assert (gpu.name, gpu.memory_total_bytes, gpu.compute_capability) == ("NVIDIA GB10", None, None)


def test_cuda_precisions_follow_compute_capability() -> None:
    a100 = parse_nvidia_smi_csv(fixture("nvidia_smi_a100.csv"))[0]
    p100 = parse_nvidia_smi_csv(fixture("nvidia_smi_p100.csv"))[0]
    on_a100 = CudaBackend(gpu=a100).precisions()
    on_p100 = CudaBackend(gpu=p100).precisions()
    assert on_a100[Precision.BF16].supported and on_a100[Precision.FP16].supported
    assert not on_p100[Precision.BF16].supported
    assert "6.0" in on_p100[Precision.BF16].how and "8.0" in on_p100[Precision.BF16].how
    assert on_p100[Precision.FP16].supported  # sm_60 >= sm_53
    assert not on_a100[Precision.INT8].supported and "tensorrt" in on_a100[Precision.INT8].how
    trt = TensorRTBackend(gpu=p100).precisions()
    assert trt[Precision.INT8].supported is False  # TensorRT INT8 needs sm_61
    assert TensorRTBackend(gpu=a100).precisions()[Precision.INT8].supported
    assert not trt[Precision.BF16].supported


# -- vendor tables -------------------------------------------------------------------------------


def test_npu_smi_info_910b() -> None:
    info = parse_npu_smi_info(fixture("npu_smi_info_910b2c.txt"))
    assert (info.tool_version, info.driver_version) == ("23.0.3", "23.0.3")
    assert [(c.npu_id, c.name, c.health, c.bus_id) for c in info.chips] == [
        (0, "910B2C", "OK", "0000:5A:00.0"),
        (1, "910B2C", "OK", "0000:29:00.0"),
    ]
    assert {c.memory_total_bytes for c in info.chips} == {65536 * MIB}


def test_npu_smi_info_two_chips_per_npu() -> None:
    info = parse_npu_smi_info(fixture("npu_smi_info_ascend910_two_chips.txt"))
    assert info.driver_version == "26.0.rc2"
    assert [(c.npu_id, c.chip, c.bus_id) for c in info.chips] == [
        (0, "0     0", "0000:9D:00.0"),
        (0, "1     1", "0000:9F:00.0"),
    ]


def test_cnmon_both_layouts() -> None:
    new = parse_cnmon(fixture("cnmon_mlu370_x8.txt"))
    assert (new.cnmon_version, new.driver_version) == ("5.10.13", "5.10.13")
    assert [(c.card, c.name, c.firmware, c.memory_total_bytes) for c in new.cards] == [
        (0, "MLU370-X8", "1.1.6", 23374 * MIB),
        (1, "MLU370-X8", "1.1.6", 23374 * MIB),
    ]
    old = parse_cnmon(fixture("cnmon_mlu370_x4_v4.txt"))
    assert (old.cnmon_version, old.driver_version) == ("4.20.11", "4.20.11")
    assert [(c.name, c.memory_total_bytes) for c in old.cards] == [("MLU370-X4", 23308 * MIB)] * 2


def test_xpu_smi_reads_devices_table_only() -> None:
    info = parse_xpu_smi(fixture("xpu_smi_r300.txt"))
    assert (info.runtime_version, info.driver_version) == ("4.31", "4.0")
    assert [(c.dev_id, c.model, c.pci_address, c.memory_total_bytes) for c in info.cards] == [
        (0, "R300", "0000:53:00.0", 32768 * MIB),
        (1, "R300", "0000:56:00.0", 32768 * MIB),
    ]


def test_rocm_smi_dcu_ids() -> None:
    assert parse_dcu_smi(fixture("rocm_smi_dcu.txt")).device_ids == (0, 1, 2, 3)
    assert parse_dcu_smi("").device_ids == ()


def test_ixsmi_sixteen_chips_on_eight_boards() -> None:
    report = parse_ixsmi(fixture("ixsmi_bi_v150_16_chips.txt"))
    assert report.driver_version == "4.3.0"
    assert report.extra == {"ix_ml": "4.3.0", "cuda_compat": "10.2"}
    assert len(report.devices) == 16  # GPU 0..15; the process table adds none
    assert {d.name for d in report.devices} == {"Iluvatar BI-V150"}
    assert {d.memory_total_bytes for d in report.devices} == {32768 * MIB}
    assert [d.extra["index"] for d in report.devices] == [str(i) for i in range(16)]
    assert (report.devices[0].extra["bus_id"], report.devices[15].extra["bus_id"]) == (
        "00000000:13:00.0",
        "00000000:67:00.0",
    )


def test_ixsmi_driver_differs_from_ix_ml_and_no_cuda_version() -> None:
    report = parse_ixsmi(fixture("ixsmi_bi_v150s.txt"))
    assert report.driver_version == "4.1.0"  # the IX-ML library is 4.0.0 in the same header
    assert report.extra == {"ix_ml": "4.0.0"}  # "CUDA Version: N/A" is not recorded
    assert report.devices == (
        ToolDevice("Iluvatar BI-V150S", 32768 * MIB, {"index": "0", "bus_id": "00000000:8A:00.0"}),
    )
    assert parse_ixsmi("") == ToolReport(None, ())


# -- Config calls ----------------------------------------------------------------------------------


def test_cuda_configure_fp32_and_fp16() -> None:
    fp32 = configured(CudaBackend(device_id=1), device_id=1)
    assert fp32.calls == [
        ("enable_use_gpu", (256, 1, PrecisionType.Float32), {}),
        ("switch_ir_optim", (True,), {}),
        ("enable_memory_optim", (), {}),
    ]
    fp16 = configured(CudaBackend(), precision=Precision.FP16)
    assert fp16.calls[0] == ("enable_use_gpu", (256, 0, PrecisionType.Half), {})
    assert fp16.calls[1] == ("exp_disable_mixed_precision_ops", ({"feed", "fetch"},), {})
    bf16 = configured(CudaBackend(), precision=Precision.BF16)
    assert bf16.calls[0][1][2] == PrecisionType.Bfloat16


def test_tensorrt_configure_int8_with_shapes_and_cache(tmp_path: Path) -> None:
    config = configured(
        TensorRTBackend(),
        precision=Precision.INT8,
        ir_optim=False,
        dynamic_shapes={"x": ((1, 3, 48, 32), (8, 3, 48, 320), (16, 3, 48, 1280))},
        cache_dir=tmp_path,
    )
    assert config.names == [
        "enable_use_gpu",
        "switch_ir_optim",
        "enable_memory_optim",
        "enable_tensorrt_engine",
        "set_trt_dynamic_shape_info",
        "set_optim_cache_dir",
    ]
    assert config.calls[0][1] == (256, 0, PrecisionType.Float32)
    assert config.calls[1][1] == (True,)  # forced: TensorRT subgraphs come from an IR pass
    assert config.calls[3][2] == {
        "workspace_size": 1 << 30,
        "max_batch_size": 1,
        "min_subgraph_size": 3,
        "precision_mode": PrecisionType.Int8,
        "use_static": True,
        "use_calib_mode": False,
    }
    assert config.calls[4][1] == (
        {"x": [1, 3, 48, 32]},
        {"x": [16, 3, 48, 1280]},
        {"x": [8, 3, 48, 320]},
    )
    assert config.calls[5][1] == (str(tmp_path),)


def test_tensorrt_without_cache_or_shapes() -> None:
    config = configured(TensorRTBackend(), precision=Precision.FP16)
    assert config.names[-1] == "enable_tensorrt_engine"
    assert config.calls[-1][2]["use_static"] is False
    assert config.calls[-1][2]["precision_mode"] == PrecisionType.Half


def test_tensorrt_refuses_pir_models(tmp_path: Path) -> None:
    model = ModelFiles(tmp_path / "inference.json", tmp_path / "inference.pdiparams")
    with pytest.raises(PortbenchError, match=r"paddle\.tensorrt\.convert"):
        TensorRTBackend().create_session(model, PredictorOptions())


@pytest.mark.parametrize(
    ("backend_class", "device_type"),
    [(AscendNpuBackend, "npu"), (CambriconMluBackend, "mlu"), (IluvatarGpuBackend, "iluvatar_gpu")],
)
@pytest.mark.parametrize(
    ("precision", "precision_type"),
    [(Precision.FP32, PrecisionType.Float32), (Precision.FP16, PrecisionType.Half)],
)
def test_custom_device_configure(
    backend_class: Any, device_type: str, precision: Precision, precision_type: Any
) -> None:
    config = configured(backend_class(device_id=3), device_id=3, precision=precision)
    assert config.calls == [
        ("enable_custom_device", (device_type, 3, precision_type), {}),
        ("switch_ir_optim", (True,), {}),
        ("enable_memory_optim", (), {}),
    ]


def test_xpu_configure_fp32_and_int8() -> None:
    fp32 = configured(KunlunXpuBackend(device_id=2), device_id=2)
    assert fp32.calls == [
        ("enable_xpu", (), {}),
        ("set_xpu_device_id", (2,), {}),
        ("switch_ir_optim", (True,), {}),
        ("delete_pass", ("conv2d_bn_xpu_fuse_pass",), {}),
        ("delete_pass", ("transfer_layout_pass",), {}),
    ]
    int8 = configured(KunlunXpuBackend(device_id=2), device_id=2, precision=Precision.INT8)
    assert int8.names[:3] == ["enable_xpu", "set_xpu_device_id", "set_xpu_config"]
    xpu_config = int8.calls[2][1][0]
    assert (xpu_config.device_id, xpu_config.quant_post_dynamic_weight_precision) == (2, 0)


def test_dcu_configure_fp16() -> None:
    config = configured(HygonDcuBackend(), precision=Precision.FP16)
    assert config.calls == [
        ("enable_use_gpu", (256, 0, PrecisionType.Half), {}),
        ("exp_disable_mixed_precision_ops", ({"feed", "fetch"},), {}),
        ("switch_ir_optim", (True,), {}),
        ("enable_memory_optim", (), {}),
        ("delete_pass", ("conv2d_add_act_fuse_pass",), {}),
        ("delete_pass", ("conv2d_add_fuse_pass",), {}),
    ]


# -- capability tables and environments ----------------------------------------------------------


def test_plugin_int8_cells_carry_the_spec_reason() -> None:
    assert (
        AscendNpuBackend().precisions()[Precision.INT8].how
        == "paddle-custom-npu has no INT8 inference kernels"
    )
    assert (
        CambriconMluBackend().precisions()[Precision.INT8].how
        == "paddle-custom-mlu has no INT8 inference kernels"
    )
    assert AscendNpuBackend().precisions()[Precision.BF16].supported
    assert not CambriconMluBackend().precisions()[Precision.BF16].supported


@pytest.mark.parametrize("name", ACCELERATORS)
def test_every_precision_is_declared_with_a_reason(name: str) -> None:
    table = registry.create_backend(name).precisions()
    assert set(table) == set(Precision)
    assert all(support.how for support in table.values())
    assert table[Precision.FP32].supported


SELECTION_VARIABLES = {
    "cuda": "FLAGS_selected_gpus",
    "tensorrt": "FLAGS_selected_gpus",
    "npu": "FLAGS_selected_npus",
    "mlu": "FLAGS_selected_mlus",
    "xpu": "FLAGS_selected_xpus",
    "dcu": "FLAGS_selected_gpus",
    "iluvatar": "FLAGS_selected_iluvatar_gpus",
}


@pytest.mark.parametrize(("name", "variable"), sorted(SELECTION_VARIABLES.items()))
def test_worker_environment_selects_the_device_without_renumbering(name: str, variable: str) -> None:
    environment = registry.create_backend(name, device_id=5).worker_environment()
    assert environment[variable] == "5"
    renumbering = {
        "CUDA_VISIBLE_DEVICES",
        "ASCEND_RT_VISIBLE_DEVICES",
        "MLU_VISIBLE_DEVICES",
        "XPU_VISIBLE_DEVICES",
        "HIP_VISIBLE_DEVICES",
    }
    assert not renumbering & set(environment)




def test_builtin_backends_are_registered_and_covered_here() -> None:
    assert set(registry.BUILTIN_BACKENDS) == BUILTIN_ACCELERATORS | {"cpu"}
    assert set(ACCELERATORS) >= BUILTIN_ACCELERATORS
    assert set(SELECTION_VARIABLES) == BUILTIN_ACCELERATORS


# -- the custom-device template, probed with the vendor tool and Paddle injected --------------------


def fake_paddle(custom_types: Sequence[str], device_count: int | None = None) -> Any:
    """What the template reads from paddle; without ``device_count`` it falls back to the tool."""
    device = SimpleNamespace(get_all_custom_device_type=lambda: list(custom_types))
    if device_count is not None:
        device.device_count = lambda device_type: device_count
    return SimpleNamespace(device=device)


def install_tool(directory: Path, name: str, output: Path) -> None:
    """A stand-in vendor tool on PATH that prints a recorded output, whatever its arguments."""
    tool = directory / name
    tool.write_text(f"#!/bin/sh\nexec /bin/cat '{output}'\n")
    tool.chmod(0o755)


@pytest.fixture
def only_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory as the whole PATH: no real vendor tool on this host is visible."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


# (backend, recorded tool output, expected probe detail and identity, read from the recordings)
TEMPLATE_CASES = [
    (AscendNpuBackend, "npu_smi_info_910b2c.txt", "Ascend 910B2C, 2 NPU(s) visible",
     ("Ascend 910B2C", "Huawei", "23.0.3", 65536 * MIB)),
    (CambriconMluBackend, "cnmon_mlu370_x8.txt", "Cambricon MLU370-X8, 2 MLU(s) visible",
     ("Cambricon MLU370-X8", "Cambricon", "5.10.13", 23374 * MIB)),
    (IluvatarGpuBackend, "ixsmi_bi_v150_16_chips.txt", "Iluvatar BI-V150, 16 GPU(s) visible",
     ("Iluvatar BI-V150", "Iluvatar CoreX", "4.3.0", 32768 * MIB)),
]


@pytest.mark.parametrize(("backend_class", "recording", "detail", "identity"), TEMPLATE_CASES)
def test_template_probe_reads_the_vendor_tool(
    backend_class: type[CustomDeviceBackend],
    recording: str,
    detail: str,
    identity: tuple[str, str, str, int],
    only_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_tool(only_path, backend_class.tool_names[0], FIXTURES / recording)
    paddle = fake_paddle([backend_class.device_type])
    monkeypatch.setattr(_tools, "import_paddle", lambda: (paddle, ""))
    backend = backend_class(device_id=1)
    assert backend.probe() == Availability.yes(detail)
    info = backend.device_info()
    assert (info.name, info.vendor, info.driver_version, info.memory_total_bytes) == identity
    assert info.device == f"{backend_class.device_type}:1"
    assert info.extra["plugin"].startswith(backend_class.plugin + " ")


def test_template_probe_device_beyond_what_paddle_sees(
    only_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_tool(only_path, "ixsmi", FIXTURES / "ixsmi_bi_v150s.txt")
    monkeypatch.setattr(_tools, "import_paddle", lambda: (fake_paddle(["iluvatar_gpu"], 1), ""))
    assert IluvatarGpuBackend(device_id=0).probe().available
    assert IluvatarGpuBackend(device_id=1).probe() == Availability.no(
        "iluvatar_gpu:1 requested but Paddle sees 1 GPU(s)"
    )


@pytest.mark.parametrize("backend_class", [AscendNpuBackend, CambriconMluBackend, IluvatarGpuBackend])
def test_template_probe_without_the_vendor_tool(
    backend_class: type[CustomDeviceBackend], only_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_tools, "import_paddle", lambda: (fake_paddle([backend_class.device_type]), ""))
    availability = backend_class().probe()
    assert not availability.available
    assert f"{backend_class.tool_names[0]} not found on PATH" in availability.reason
    assert backend_class.tool_hint in availability.reason


def test_template_probe_names_the_missing_plugin_and_its_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tools, "import_paddle", lambda: (fake_paddle([]), ""))
    monkeypatch.setattr(_tools, "distribution_version", lambda name: None)
    npu = AscendNpuBackend().probe().reason
    assert "paddle-custom-npu plugin not installed" in npu and "packages/stable/npu/" in npu
    iluvatar = IluvatarGpuBackend().probe().reason
    # Paddle's index serves the Iluvatar plugin from the "ixuca" channel, not one named after the type.
    assert "paddle-iluvatar-gpu plugin not installed" in iluvatar and "packages/stable/ixuca/" in iluvatar


def test_template_probe_plugin_installed_but_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tools, "import_paddle", lambda: (fake_paddle(["npu"]), ""))
    monkeypatch.setattr(_tools, "distribution_version", lambda name: "3.1.0")
    reason = IluvatarGpuBackend().probe().reason
    assert "paddle-iluvatar-gpu 3.1.0 is installed but Paddle did not load it" in reason


# -- the real probe, on whatever host runs the tests ------------------------------------------------


@pytest.mark.parametrize("name", ACCELERATORS)
def test_real_probe_is_consistent_with_what_this_host_has(name: str) -> None:
    backend = registry.create_backend(name)
    availability = backend.probe()
    tool_present = any(shutil.which(tool) for tool in backend.tool_names)
    plugins_present = all(_tools.distribution_version(p) for p in backend.paddle_plugins)
    build_present = any(_tools.distribution_version(b) for b in backend.paddle_builds)
    if availability.available:
        assert tool_present and plugins_present and build_present, availability.reason
        return
    assert availability.reason
    if not plugins_present:
        missing = next(p for p in backend.paddle_plugins if not _tools.distribution_version(p))
        assert f"{missing} plugin not installed" in availability.reason


def test_synchronize_and_memory_never_raise() -> None:
    for name in ACCELERATORS:
        backend = registry.create_backend(name)
        backend.synchronize()
        used = backend.memory_used_bytes()
        assert used is None or used >= 0


# -- registries that read the declarations -----------------------------------------------------------


class DemoPluginBackend(CustomDeviceBackend):
    """A third-party plugin backend, declared on the template the way an entry point ships one."""

    name = "demo"
    device_type = "demo_npu"
    description = "demo"
    plugin = "paddle-custom-demo"
    plugin_channel = "demo"
    vendor = "Demo"
    unit = "NPU"
    fallback_name = "Demo NPU"
    tool_names = ("demo-smi",)
    tool_parser = staticmethod(lambda text: ToolReport(None, ()))
    tool_hint = "install the demo driver"
    env_prefixes = ("DEMO_",)
    precision_table = MappingProxyType({p: PrecisionSupport.via("demo") for p in Precision})


@pytest.fixture
def plugin_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two third-party backends on the entry-point group: one imports, one does not."""
    group = registry.ENTRY_POINT_GROUP
    fakes = [
        importlib.metadata.EntryPoint("demo", f"{__name__}:DemoPluginBackend", group),
        importlib.metadata.EntryPoint("broken", "portbench_no_such_module:Backend", group),
    ]
    real = plugins.entry_points

    def entry_points(group: str) -> Any:
        return fakes if group == registry.ENTRY_POINT_GROUP else real(group=group)

    monkeypatch.setattr(plugins, "entry_points", entry_points)


def test_backend_classes_skip_a_plugin_that_fails_to_import(plugin_entry_points: None) -> None:
    classes = registry.backend_classes()
    assert classes["demo"] is DemoPluginBackend
    assert "broken" not in classes
    assert set(registry.BUILTIN_BACKENDS) <= set(classes)
    with pytest.raises(ModuleNotFoundError):
        registry.backend_class("broken")


def test_plugin_versions_list_reads_backend_declarations(plugin_entry_points: None) -> None:
    plugins = paddle_plugins()
    for plugin in ("paddle-custom-npu", "paddle-custom-mlu", "paddle-iluvatar-gpu", "paddle-custom-demo"):
        assert plugin in plugins
    assert "paddlepaddle-gpu" not in plugins  # a Paddle build, not a plugin
    assert len(plugins) == len(set(plugins))


def test_manifest_env_prefixes_read_backend_declarations(plugin_entry_points: None) -> None:
    prefixes = manifest_env_prefixes()
    assert {"ASCEND_", "MLU_", "XPU_", "HIP_", "IX_", "DEMO_", "TRT_", "OMP_"} <= set(prefixes)
    environ = {
        "IX_VISIBLE_DEVICES": "0,1",
        "ASCEND_RT_VISIBLE_DEVICES": "2",
        "DEMO_MODE": "fast",
        "TRT_LOGGER": "1",
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }
    assert performance_environment(environ) == {
        "ASCEND_RT_VISIBLE_DEVICES": "2",
        "DEMO_MODE": "fast",
        "IX_VISIBLE_DEVICES": "0,1",
        "TRT_LOGGER": "1",
    }


def test_hardware_marker_kinds_come_from_declarations(plugin_entry_points: None) -> None:
    from conftest import hardware_backends

    assert hardware_backends() == {
        "gpu": "cuda",
        "tensorrt": "tensorrt",
        "npu": "npu",
        "mlu": "mlu",
        "xpu": "xpu",
        "dcu": "dcu",
        "iluvatar": "iluvatar",
        "demo": "demo",
    }


def test_cli_lists_every_registered_backend_with_its_reason() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "backends"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "400"},  # one table row per line, reasons unwrapped
    )
    assert result.returncode == 0, result.stderr
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if line.startswith("│") and len(cells := [c.strip() for c in line.strip("│").split("│")]) == 4
    }
    assert set(rows) == set(registry.backend_names())
    for name in registry.backend_names():
        available, reason, _ = rows[name]
        assert available in ("yes", "no") and reason, (name, rows[name])
        status = registry.create_backend(name).probe()
        assert available == ("yes" if status.available else "no")
        if not status.available:
            assert reason == status.reason
    if rows["iluvatar"][0] == "no":
        assert "iluvatar" in rows["iluvatar"][1] or "ixsmi" in rows["iluvatar"][1]


# -- hardware ----------------------------------------------------------------------------------------


def _tiny_model(directory: Path) -> ModelFiles:
    """A one-layer Paddle model exported for inference (PIR .json on Paddle 3)."""
    import paddle

    layer = paddle.nn.Linear(4, 2)
    paddle.jit.save(
        paddle.jit.to_static(layer, input_spec=[paddle.static.InputSpec([None, 4], "float32", "x")]),
        str(directory / "inference"),
    )
    model_file = next(p for p in directory.iterdir() if p.suffix in (".json", ".pdmodel"))
    return ModelFiles(model_file, directory / "inference.pdiparams")


def require(name: str) -> Any:
    backend = registry.create_backend(name)
    availability = backend.probe()
    if not availability.available:
        pytest.skip(f"{name}: {availability.reason}")
    return backend


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.hardware(cls.hardware_kind))
        for name, cls in registry.backend_classes().items()
        if cls.hardware_kind is not None
    ],
)
def test_tiny_model_runs_on_device(name: str, tmp_path: Path) -> None:
    backend = require(name)
    info = backend.device_info()
    assert info.name and info.vendor
    model = _tiny_model(tmp_path)
    if name == "tensorrt" and model.is_pir:
        pytest.skip("tensorrt runs legacy .pdmodel models; this Paddle exports PIR")
    session = backend.create_session(model, PredictorOptions())
    feed = np.arange(8, dtype=np.float32).reshape(2, 4)
    (out,) = session.run([feed])
    cpu_session = registry.create_backend("cpu").create_session(model, PredictorOptions())
    (expected,) = cpu_session.run([feed])
    np.testing.assert_allclose(out, expected, rtol=1e-3, atol=1e-4)


# -- CPU INT8 op set -----------------------------------------------------------------------------


def test_cpu_int8_keeps_fused_matmul_out_of_onednn_int8() -> None:
    # Paddle's oneDNN INT8 fused_matmul gives identical rows of a batch different logits
    # (docs/quantization.md); the CPU backend must name its INT8 op types without it.
    backend = CpuBackend(flags=frozenset({"avx512_vnni"}), arch="x86_64")
    config = configured(backend, precision=Precision.INT8, cpu_threads=2)
    (args,) = [args for name, args, _ in config.calls if name == "enable_onednn_int8"]
    (op_types,) = args
    assert "fused_matmul" not in op_types
    assert {"conv2d", "fc", "depthwise_conv2d"} <= set(op_types)  # OCR and ERNIE's Linear layers stay INT8
