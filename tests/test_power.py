"""Power and energy: vendor-tool power parsers on recorded real outputs (sources in
tests/fixtures/devices/README.md), RAPL maths on a fake powercap tree, the meter's integration and
source preference, and the "absent with a reason, never 0" rule."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest

from portbench.backends import _tools
from portbench.backends.base import Availability
from portbench.backends.cpu import CpuBackend
from portbench.backends.cuda import CudaBackend, NvmlPowerSource, parse_nvidia_smi_power
from portbench.backends.dcu import HygonDcuBackend, parse_dcu_smi_power
from portbench.backends.iluvatar import parse_ixsmi_power
from portbench.backends.mlu import CambriconMluBackend, parse_cnmon_power
from portbench.backends.npu import AscendNpuBackend, parse_npu_smi_power
from portbench.backends.power import (
    PowerDomain,
    PowerSource,
    RaplSource,
    ToolPowerSource,
    host_power_sources,
    parse_ipmi_dcmi_power,
    usage_cap_watts,
    watts_or_none,
)
from portbench.backends.xpu import KunlunXpuBackend
from portbench.harness.energy import (
    EnergyMeter,
    counter_delta,
    describe_unavailable,
    energy_record,
    trapezoid_j,
)

pytestmark = pytest.mark.fast

FIXTURES = Path(__file__).parent / "fixtures" / "devices"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- parsers on recorded outputs ------------------------------------------------------------------


def test_nvidia_smi_power_by_row_order_and_by_index() -> None:
    assert parse_nvidia_smi_power(fixture("nvidia_smi_power_gtx1060.csv")) == [68.54, 70.50]
    assert parse_nvidia_smi_power(fixture("nvidia_smi_power_rtx4070.csv")) == [85.23]
    # A query without power.draw gives no readings rather than a wrong column.
    assert parse_nvidia_smi_power(fixture("nvidia_smi_a100.csv")) == []


def test_nvidia_smi_power_not_available_is_none() -> None:
    text = "index, power.draw [W]\n0, [N/A]\n1, 31.50 W\n"
    assert parse_nvidia_smi_power(text) == [None, 31.5]


def test_npu_smi_power_per_chip() -> None:
    assert parse_npu_smi_power(fixture("npu_smi_info_910b2c.txt")) == [89.9, 93.8]
    # The second chip of a two-chip card prints "-": no reading, not 0.
    assert parse_npu_smi_power(fixture("npu_smi_info_ascend910_two_chips.txt")) == [162.6, None]


def test_cnmon_power_both_layouts() -> None:
    assert parse_cnmon_power(fixture("cnmon_mlu370_x8.txt")) == [106.0, 106.0]
    assert parse_cnmon_power(fixture("cnmon_mlu370_x4_v4.txt")) == [30.0, 25.0]


def test_ixsmi_power_with_na_chips() -> None:
    watts = parse_ixsmi_power(fixture("ixsmi_bi_v150_16_chips.txt"))
    assert len(watts) == 16
    assert watts[:4] == [None, 103.0, None, 106.0]
    assert watts[15] == 107.0
    assert parse_ixsmi_power(fixture("ixsmi_bi_v150s.txt")) == [None]


def test_rocm_smi_dcu_average_power() -> None:
    assert parse_dcu_smi_power(fixture("rocm_smi_dcu.txt")) == [38.0, 41.0, 38.0, 39.0]


def test_ipmitool_dcmi_power_reading() -> None:
    assert parse_ipmi_dcmi_power(fixture("ipmitool_dcmi_power_activated.txt")) == [215.0]
    # A deactivated state with a real number (OpenBMC) is still a reading ...
    assert parse_ipmi_dcmi_power(fixture("ipmitool_dcmi_power_openbmc.txt")) == [319.0]
    # ... but 0 W while deactivated means the BMC measures nothing.
    assert parse_ipmi_dcmi_power(fixture("ipmitool_dcmi_power_deactivated.txt")) == [None]
    assert parse_ipmi_dcmi_power("Error: no response from BMC") == [None]


@pytest.mark.parametrize(
    ("cell", "watts"),
    [("30 W/ 150 W", 30.0), ("103W / 350W", 103.0), ("N/A / N/A", None), ("0%   32C  106 W/ 250 W", 106.0)],
)
def test_usage_cap_cells(cell: str, watts: float | None) -> None:
    assert usage_cap_watts(cell) == watts


@pytest.mark.parametrize(
    ("text", "watts"),
    [("38.0W", 38.0), ("68.54 W", 68.54), ("89.9", 89.9), ("-", None), ("[N/A]", None), ("N/A", None)],
)
def test_watts_or_none(text: str, watts: float | None) -> None:
    assert watts_or_none(text) == watts


# --- which sources a backend declares ---------------------------------------------------------------


def test_backends_declare_their_device_sources() -> None:
    assert list(CpuBackend(flags=frozenset(), arch="x86_64").power_sources()) == []
    assert [s.name for s in CudaBackend(1).power_sources()] == ["nvml", "nvidia-smi"]
    (npu,) = AscendNpuBackend(1).power_sources()
    assert isinstance(npu, ToolPowerSource) and npu.argv == ("npu-smi", "info") and npu.device_index == 1
    assert [s.name for s in CambriconMluBackend().power_sources()] == ["cnmon"]
    assert [s.name for s in HygonDcuBackend().power_sources()] == ["hy-smi", "rocm-smi"]
    (xpu,) = KunlunXpuBackend().power_sources()
    assert not xpu.probe().available and "no power column" in xpu.probe().reason
    assert [s.name for s in host_power_sources()] == ["rapl", "ipmitool-dcmi"]


def test_tool_source_reads_the_cells_device_from_recorded_output() -> None:
    text = fixture("npu_smi_info_910b2c.txt")
    source = ToolPowerSource(
        "npu-smi",
        ("npu-smi", "info"),
        parse_npu_smi_power,
        device_index=1,
        domain="npu:1",
        runner=lambda argv: _tools.ToolOutput(text),
    )
    assert source.probe().available
    assert source.read() == {"npu:1": 93.8}
    beyond = ToolPowerSource(
        "npu-smi",
        ("npu-smi", "info"),
        parse_npu_smi_power,
        device_index=5,
        runner=lambda argv: _tools.ToolOutput(text),
    )
    assert "lists 2 device(s)" in beyond.probe().reason


def test_missing_tool_is_unavailable_with_its_reason() -> None:
    source = ToolPowerSource(
        "ipmitool-dcmi",
        ("ipmitool", "dcmi", "power", "reading"),
        parse_ipmi_dcmi_power,
        runner=lambda argv: _tools.ToolOutput(None, "ipmitool not found on PATH"),
    )
    availability = source.probe()
    assert not availability.available and availability.reason == "ipmitool not found on PATH"


# --- RAPL on a fake powercap tree -------------------------------------------------------------------


def _zone(root: Path, name: str, zone: str, energy_uj: int, wrap_uj: int) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "name").write_text(f"{zone}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{wrap_uj}\n")
    return path


def test_rapl_absent_here_says_why(tmp_path: Path) -> None:
    availability = RaplSource(tmp_path / "powercap").probe()
    assert not availability.available
    assert availability.reason == f"{tmp_path / 'powercap'} not present"
    (tmp_path / "empty").mkdir()
    assert "no intel-rapl zones" in RaplSource(tmp_path / "empty").probe().reason


def test_rapl_zones_and_scopes(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", 1_000, 262_143_328_850)
    _zone(tmp_path, "intel-rapl:0:0", "dram", 5, 65_712_999_613)
    _zone(tmp_path, "intel-rapl:1", "package-1", 7, 262_143_328_850)
    source = RaplSource(tmp_path)
    assert source.probe().available
    domains = {d.name: d for d in source.domains()}
    assert domains["package-0"] == PowerDomain("package-0", "cpu-package", 262_143.32885)
    assert domains["0:dram"].scope == "dram"
    assert domains["package-1"].scope == "cpu-package"
    assert source.read() == {"package-0": 0.001, "0:dram": 5e-6, "package-1": 7e-6}


def test_counter_delta_wraps_once() -> None:
    assert counter_delta(10.0, 25.5, 100.0) == 15.5
    # 262143.0 J -> wrapped at 262143.32885 J -> 0.5 J: 0.32885 + 0.5 J were used.
    assert counter_delta(262_143.0, 0.5, 262_143.32885) == pytest.approx(0.82885)
    with pytest.raises(ValueError, match="went down"):
        counter_delta(5.0, 1.0, None)


def test_meter_on_rapl_with_wrap_around(tmp_path: Path) -> None:
    package = _zone(tmp_path, "intel-rapl:0", "package-0", 262_143_000_000, 262_143_328_850)
    dram = _zone(tmp_path, "intel-rapl:0:0", "dram", 1_000_000, 65_712_999_613)
    now = [10.0]
    meter = EnergyMeter([RaplSource(tmp_path)], clock=lambda: now[0])
    with meter.window():
        (package / "energy_uj").write_text("500000\n")  # wrapped: 328850 + 500000 uJ used
        (dram / "energy_uj").write_text("3500000\n")
        now[0] = 12.0
    (window,) = meter.windows
    readings = {r.domain: r for r in window.readings}
    assert readings["package-0"].energy_j == pytest.approx(0.82885)
    assert readings["package-0"].mean_power_w == pytest.approx(0.82885 / 2)
    assert readings["package-0"].scope == "cpu-package" and readings["package-0"].method == "counter"
    assert readings["0:dram"].energy_j == pytest.approx(2.5)
    record = energy_record(meter, window, samples=10)
    package_record = next(r for r in record["readings"] if r["domain"] == "package-0")
    assert package_record["energy_per_sample_j"] == pytest.approx(0.082885)
    assert package_record["samples_per_j"] == pytest.approx(10 / 0.82885)


# --- power-draw sources are integrated ---------------------------------------------------------------


def test_trapezoid_hand_computed() -> None:
    # 0-1 s at 100->110 W: 105 J; 1-3 s at 110->90 W: 200 J.
    assert trapezoid_j([(0.0, 100.0), (1.0, 110.0), (3.0, 90.0)]) == pytest.approx(305.0)
    assert trapezoid_j([(0.0, 100.0)]) == 0.0


class _ScriptedDraw(PowerSource):
    """Watts from a script, one value per read; the poll interval is too long to add reads."""

    kind = "draw"
    poll_interval_s = 3600.0

    def __init__(
        self, name: str, watts: Sequence[float], scope: str = "card", available: bool = True
    ) -> None:
        self.name = name
        self._watts = list(watts)
        self._scope = scope
        self._available = available
        self.reads = 0

    @property
    def scopes(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self._scope,)

    def probe(self) -> Availability:
        return Availability.yes() if self._available else Availability.no(f"{self.name} absent")

    def domains(self) -> Sequence[PowerDomain]:
        return [PowerDomain(f"{self.name}:0", self._scope)]  # type: ignore[arg-type]

    def read(self) -> Mapping[str, float]:
        value = self._watts[min(self.reads, len(self._watts) - 1)]
        self.reads += 1
        return {f"{self.name}:0": value}


def test_meter_integrates_a_draw_source() -> None:
    now = [0.0]
    source = _ScriptedDraw("tool", [100.0, 120.0])
    meter = EnergyMeter([source], clock=lambda: now[0])
    with meter.window():
        now[0] = 2.0
    (reading,) = meter.windows[0].readings
    assert reading.method == "sampled" and reading.readings == 2
    assert reading.energy_j == pytest.approx(220.0)  # 2 s at a mean of 110 W
    assert reading.mean_power_w == pytest.approx(110.0)


def test_meter_prefers_the_first_available_source_per_scope() -> None:
    better = _ScriptedDraw("nvml", [50.0])
    worse = _ScriptedDraw("nvidia-smi", [60.0])
    meter = EnergyMeter([better, worse])
    assert [s.name for s in meter.active] == ["nvml"] and meter.unavailable == []
    fallback = EnergyMeter([_ScriptedDraw("nvml", [1.0], available=False), worse])
    assert [s.name for s in fallback.active] == ["nvidia-smi"]
    assert fallback.unavailable == []  # the card is covered, nvml's absence is not a gap
    wall = EnergyMeter([_ScriptedDraw("nvml", [1.0]), _ScriptedDraw("ipmi", [300.0], scope="wall")])
    assert [s.name for s in wall.active] == ["nvml", "ipmi"]


def test_no_source_means_absent_with_reason_never_zero(tmp_path: Path) -> None:
    meter = EnergyMeter(
        [RaplSource(tmp_path / "powercap"), _ScriptedDraw("ipmi", [0.0], "wall", available=False)]
    )
    with meter.window():
        pass
    record = energy_record(meter, meter.windows[0], samples=100)
    assert record["available"] is False and record["readings"] == []
    reasons = {p["source"]: p["reason"] for p in record["unavailable"]}
    assert reasons == {"rapl": f"{tmp_path / 'powercap'} not present", "ipmi": "ipmi absent"}
    assert describe_unavailable(record).startswith("unavailable: rapl: ")


def test_this_machine_has_no_powercap() -> None:
    if Path("/sys/class/powercap").exists():
        pytest.skip("this host exposes powercap")
    assert RaplSource().probe().reason == "/sys/class/powercap not present"


# --- NVML through a stand-in for pynvml (the API, not an output format) ---------------------------


def _fake_pynvml(energy_mj: list[int] | None, power_mw: int) -> SimpleNamespace:
    readings = iter(energy_mj or [])

    def total_energy(handle: object) -> int:
        if energy_mj is None:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return next(readings)

    return SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: f"handle-{index}",
        nvmlDeviceGetTotalEnergyConsumption=total_energy,
        nvmlDeviceGetPowerUsage=lambda handle: power_mw,
    )


def test_nvml_energy_counter_in_joules(monkeypatch: pytest.MonkeyPatch) -> None:
    # Read by this probe and the meter's, then at the window's start and end.
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([1_000, 1_000, 1_000, 4_500], 0))
    source = NvmlPowerSource(0)
    assert source.probe().available and source.kind == "counter"
    now = [0.0]
    meter = EnergyMeter([source], clock=lambda: now[0])
    with meter.window():
        now[0] = 1.0
    (reading,) = meter.windows[0].readings
    assert reading.energy_j == pytest.approx(3.5)  # 4500 mJ - 1000 mJ
    assert reading.domain == "gpu:0" and reading.scope == "card" and reading.method == "counter"


def test_nvml_without_energy_counter_samples_power(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(None, 61_250))
    source = NvmlPowerSource(1)
    assert source.probe().available and source.kind == "draw"
    assert source.read() == {"gpu:1": 61.25}


def test_nvml_absent_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert "portbench[nvml]" in NvmlPowerSource().probe().reason
