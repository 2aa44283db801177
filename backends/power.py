"""Power and energy sources: the contract, the host sources (RAPL, IPMI DCMI) and the generic
vendor-tool source the accelerator backends declare theirs with.

A source either exposes a cumulative **energy counter** (RAPL ``energy_uj``, NVML total energy),
read at the start and end of a timed window (and polled often enough to catch a wrap-around), or an
instantaneous **power draw** (``nvidia-smi power.draw``, ``npu-smi``, ``cnmon``, ``ipmitool``),
sampled in the background and integrated over time by the harness. Every domain carries its
**scope** — what the number covers — because a CPU package, a DRAM rail, an accelerator card and
the wall socket are not comparable figures. ``probe`` never raises: no source is the normal case
and its reason is recorded instead of a number.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from portbench.backends import _tools
from portbench.backends.base import Availability

Scope = Literal["cpu-package", "cpu-core", "uncore", "dram", "platform", "card", "wall"]
SourceKind = Literal["counter", "draw"]

POWERCAP_ROOT = Path("/sys/class/powercap")
# Zone names the RAPL driver gives (Intel and, since Linux 5.8, AMD Zen) -> scope.
RAPL_SCOPES: Mapping[str, Scope] = {
    "package": "cpu-package",
    "core": "cpu-core",
    "uncore": "uncore",
    "dram": "dram",
    "psys": "platform",
}
# A RAPL counter wraps after max_energy_range_uj (about 262 kJ on many parts: ~20 min at 200 W);
# polling every few seconds sees at most one wrap between two reads.
RAPL_POLL_S = 5.0
TOOL_POLL_S = 0.25
IPMI_POLL_S = 1.0


@dataclass(frozen=True)
class PowerDomain:
    """One thing a source measures: ``name`` unique within the source (``package-0``, ``gpu:0``)."""

    name: str
    scope: Scope
    # Counter sources: the value after which the counter restarts from 0 (joules); None: no wrap.
    wrap_j: float | None = None


class PowerSource(ABC):
    """A place power or energy can be read from. ``read`` returns joules (``kind == "counter"``)
    or watts (``kind == "draw"``) by domain name; a domain missing from one read has no value then."""

    name: str
    kind: SourceKind
    poll_interval_s: float

    @abstractmethod
    def probe(self) -> Availability:
        """Whether this source gives readings here (with why not); cheap, never raises."""

    @abstractmethod
    def domains(self) -> Sequence[PowerDomain]:
        """What it measures; only called after ``probe`` says available."""

    @abstractmethod
    def read(self) -> Mapping[str, float]:
        """One reading of every domain (joules or watts, see ``kind``); may raise OSError."""

    @property
    def scopes(self) -> tuple[Scope, ...]:
        """The scopes this source would cover, for the reason line when it is unavailable."""
        return ()


# --- RAPL through the powercap sysfs tree ---------------------------------------------------------


@dataclass(frozen=True)
class RaplZone:
    path: Path
    domain: PowerDomain


def _zone_scope(zone_name: str) -> Scope | None:
    base = zone_name.split("-", 1)[0]  # "package-0" -> "package"
    return RAPL_SCOPES.get(base)


def rapl_zones(root: Path = POWERCAP_ROOT) -> tuple[list[RaplZone], str]:
    """RAPL zones under ``root`` (``intel-rapl:N`` packages and ``intel-rapl:N:M`` sub-zones), or
    why there are none."""
    if not root.is_dir():
        return [], f"{root} not present"
    zones: list[RaplZone] = []
    problems: list[str] = []
    for path in sorted(root.glob("intel-rapl:*")):
        try:
            zone_name = (path / "name").read_text(encoding="ascii").strip()
            wrap_uj = int((path / "max_energy_range_uj").read_text(encoding="ascii").strip())
            (path / "energy_uj").read_text(encoding="ascii")
        except PermissionError:
            problems.append(f"{path / 'energy_uj'} is not readable (root only since Linux 5.10)")
            continue
        except (OSError, ValueError) as error:
            problems.append(f"{path.name}: {error}")
            continue
        scope = _zone_scope(zone_name)
        if scope is None:
            continue
        # Sub-zones share names across packages ("dram" in each); the path keeps them apart.
        label = zone_name if path.name.count(":") == 1 else f"{path.name.split(':')[1]}:{zone_name}"
        zones.append(RaplZone(path, PowerDomain(label, scope, wrap_uj / 1e6)))
    if zones:
        return zones, ""
    if problems:
        return [], problems[0]
    return [], f"no intel-rapl zones in {root} (RAPL not exposed here, e.g. inside a VM)"


class RaplSource(PowerSource):
    """Intel/AMD RAPL energy counters (microjoules, wrapping at ``max_energy_range_uj``)."""

    name = "rapl"
    kind: SourceKind = "counter"
    poll_interval_s = RAPL_POLL_S

    def __init__(self, root: Path = POWERCAP_ROOT) -> None:
        self.root = root
        self._zones: list[RaplZone] = []

    @property
    def scopes(self) -> tuple[Scope, ...]:
        return ("cpu-package", "dram")

    def probe(self) -> Availability:
        zones, problem = rapl_zones(self.root)
        self._zones = zones
        if not zones:
            return Availability.no(problem)
        return Availability.yes(", ".join(z.domain.name for z in zones))

    def domains(self) -> Sequence[PowerDomain]:
        return [zone.domain for zone in self._zones]

    def read(self) -> Mapping[str, float]:
        return {
            zone.domain.name: int((zone.path / "energy_uj").read_text(encoding="ascii")) / 1e6
            for zone in self._zones
        }


# --- tools that print a power draw ------------------------------------------------------------------

# Watts per device, in the order Paddle numbers the devices; None where the tool printed no value.
PowerParser = Callable[[str], list[float | None]]


class ToolPowerSource(PowerSource):
    """A vendor tool whose output holds each device's current power draw, parsed by ``parser``.

    ``device_index`` picks the cell's device from the parsed list.
    """

    kind: SourceKind = "draw"

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        parser: PowerParser,
        *,
        scope: Scope = "card",
        device_index: int = 0,
        domain: str | None = None,
        poll_interval_s: float = TOOL_POLL_S,
        runner: Callable[[Sequence[str]], _tools.ToolOutput] = _tools.run_tool,
    ) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.parser = parser
        self.scope: Scope = scope
        self.device_index = device_index
        self.domain = domain or f"{name} device {device_index}"
        self.poll_interval_s = poll_interval_s
        self._runner = runner

    @property
    def scopes(self) -> tuple[Scope, ...]:
        return (self.scope,)

    def _watts(self) -> tuple[float | None, str]:
        output = self._runner(self.argv)
        if output.text is None:
            return None, output.problem
        values = self.parser(output.text)
        if not 0 <= self.device_index < len(values):
            return None, f"{self.argv[0]} lists {len(values)} device(s), none with index {self.device_index}"
        value = values[self.device_index]
        if value is None:
            return None, f"{self.argv[0]} prints no power reading for device {self.device_index}"
        return value, ""

    def probe(self) -> Availability:
        try:
            watts, problem = self._watts()
        except Exception as error:  # a parser meeting an unknown layout must not crash the cell
            return Availability.no(f"{self.argv[0]} output not understood: {error}")
        if watts is None:
            return Availability.no(problem)
        return Availability.yes(f"{watts:g} W now")

    def domains(self) -> Sequence[PowerDomain]:
        return [PowerDomain(self.domain, self.scope)]

    def read(self) -> Mapping[str, float]:
        watts, _ = self._watts()
        return {} if watts is None else {self.domain: watts}


class UnsupportedPowerSource(PowerSource):
    """A source a backend knows of but portbench cannot read yet: always unavailable, with why."""

    kind: SourceKind = "draw"
    poll_interval_s = TOOL_POLL_S

    def __init__(self, name: str, scope: Scope, reason: str) -> None:
        self.name = name
        self._scope: Scope = scope
        self.reason = reason

    @property
    def scopes(self) -> tuple[Scope, ...]:
        return (self._scope,)

    def probe(self) -> Availability:
        return Availability.no(self.reason)

    def domains(self) -> Sequence[PowerDomain]:
        return []

    def read(self) -> Mapping[str, float]:
        return {}


# --- IPMI DCMI: wall power from the BMC (Kunpeng, Phytium and other servers without RAPL) ----------

IPMI_DCMI_COMMAND = ("ipmitool", "dcmi", "power", "reading")
IPMI_INSTANT = re.compile(r"Instantaneous power reading:\s*(\d+(?:\.\d+)?)\s*Watts", re.IGNORECASE)
IPMI_STATE = re.compile(r"Power reading state is:\s*(\w+)", re.IGNORECASE)


def parse_ipmi_dcmi_power(text: str) -> list[float | None]:
    """``ipmitool dcmi power reading``: the instantaneous reading, one "device" (the system).

    A BMC that has power reading deactivated and reports 0 W has no reading (openbmc
    phosphor-host-ipmid #167): 0 there means "not measured", not an idle server.
    """
    instant = IPMI_INSTANT.search(text)
    if instant is None:
        return [None]
    watts = float(instant.group(1))
    state = IPMI_STATE.search(text)
    if watts == 0 and state is not None and state.group(1).lower() == "deactivated":
        return [None]
    return [watts]


def ipmi_dcmi_source() -> ToolPowerSource:
    return ToolPowerSource(
        "ipmitool-dcmi",
        IPMI_DCMI_COMMAND,
        parse_ipmi_dcmi_power,
        scope="wall",
        domain="system",
        poll_interval_s=IPMI_POLL_S,
    )


def host_power_sources(powercap_root: Path = POWERCAP_ROOT) -> list[PowerSource]:
    """Sources that apply whatever the backend: the CPU package (RAPL) and the wall (BMC)."""
    return [RaplSource(powercap_root), ipmi_dcmi_source()]


# --- helpers the vendor parsers share ----------------------------------------------------------------

WATTS = re.compile(r"^(\d+(?:\.\d+)?)\s*W?$")


def watts_or_none(text: str) -> float | None:
    """``"38.0W"``, ``"68.54 W"``, ``"89.9"`` -> watts; ``"N/A"``, ``"-"``, ``"[N/A]"`` -> None."""
    match = WATTS.match(text.strip())
    return float(match.group(1)) if match else None


# "30 W/ 150 W" (cnmon), "103W / 350W" or "N/A / N/A" (ixsmi): the draw before the cap.
USAGE_CAP = re.compile(r"(N/A|\d+(?:\.\d+)?)\s*W?\s*/\s*(?:N/A|\d+(?:\.\d+)?\s*W)\s*$")


def usage_cap_watts(cell: str) -> float | None:
    """The draw of a ``Pwr:Usage/Cap`` table cell, or None where the tool prints N/A."""
    match = USAGE_CAP.search(cell.strip())
    return None if match is None or match.group(1) == "N/A" else float(match.group(1))
