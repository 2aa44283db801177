"""The user's machines file for the procurement view: what each compared machine costs, draws and
occupies.

TOML, one table per machine under ``[machines]``, keyed by the platform label a comparison shows or
by the run directory it came from::

    [machines."Kunpeng-920 · Ascend 910B · Kylin V10"]
    price_yuan = 185000
    power_w = 1350
    power_source = "nameplate"   # or "measured"
    rack_units = 2

Parsed here, in the harness, so every mistake is one PortbenchError before anything is rendered.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from portbench.errors import PortbenchError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, which Paddle's CUDA, XPU and DCU images ship
    import tomli as tomllib  # type: ignore[no-redef]

PowerSource = Literal["nameplate", "measured"]
POWER_SOURCES: tuple[PowerSource, ...] = ("nameplate", "measured")
FIELDS = ("price_yuan", "power_w", "power_source", "rack_units")


@dataclass(frozen=True)
class Machine:
    key: str  # as written in the file
    price_yuan: float
    power_w: float
    power_source: PowerSource
    rack_units: int | None = None


def _positive(where: str, name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise PortbenchError(f"{where}: {name} must be a positive number, got {value!r}")
    return float(value)


def parse_machine(key: str, table: Any, where: str) -> Machine:
    where = f"{where}: machine {key!r}"
    if not isinstance(table, Mapping):
        raise PortbenchError(f"{where} must be a table of {', '.join(FIELDS)}")
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise PortbenchError(f"{where}: unknown key {unknown[0]!r}; known: {', '.join(FIELDS)}")
    for required in ("price_yuan", "power_w", "power_source"):
        if required not in table:
            raise PortbenchError(f"{where}: {required} is missing")
    source = table["power_source"]
    if source not in POWER_SOURCES:
        raise PortbenchError(f"{where}: power_source must be nameplate or measured, got {source!r}")
    units = table.get("rack_units")
    if units is not None and (isinstance(units, bool) or not isinstance(units, int) or units < 1):
        raise PortbenchError(f"{where}: rack_units must be a positive integer, got {units!r}")
    return Machine(
        key=key,
        price_yuan=_positive(where, "price_yuan", table["price_yuan"]),
        power_w=_positive(where, "power_w", table["power_w"]),
        power_source=cast(PowerSource, source),
        rack_units=units,
    )


def load_machines(path: Path) -> dict[str, Machine]:
    """Every machine of the file, by its key; PortbenchError (one line) for any mistake."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PortbenchError(f"no machines file at {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PortbenchError(f"cannot read machines file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise PortbenchError(f"machines file {path} is not valid TOML: {error}") from None
    extra = sorted(set(data) - {"machines"})
    if extra:
        raise PortbenchError(f"{path}: unknown top-level key {extra[0]!r}; machines go under [machines.NAME]")
    machines = data.get("machines")
    if not isinstance(machines, Mapping) or not machines:
        raise PortbenchError(f"{path}: no [machines.NAME] tables")
    return {key: parse_machine(key, table, str(path)) for key, table in machines.items()}


def match_machines(
    machines: Mapping[str, Machine], runs: Sequence[tuple[str, Path]], where: str
) -> dict[str, Machine]:
    """Machines by run label: a key names a label or a run directory. A key that names no run is a
    mistake (a typo would otherwise silently drop a machine from the ranking)."""
    by_label: dict[str, Machine] = {}
    for key, machine in machines.items():
        label = next((lbl for lbl, _ in runs if lbl == key), None)
        if label is None:
            label = next((lbl for lbl, path in runs if _same_path(Path(key), path)), None)
        if label is None:
            known = ", ".join(repr(lbl) for lbl, _ in runs)
            raise PortbenchError(f"{where}: machine {key!r} names no compared run (labels: {known})")
        if label in by_label:
            raise PortbenchError(f"{where}: run {label!r} has two machines entries")
        by_label[label] = machine
    return by_label


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
