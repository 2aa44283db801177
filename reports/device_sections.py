"""What reports show of energy, first-shape cost and operator placement: rows built from results
only (``CellResult.energy``, ``first_shape``, ``placement``), laid out by each renderer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portbench.harness.results import RunResults

TOP_OPERATORS = 6


def _number(value: float | None) -> str:
    """Three significant figures below 1, two decimals below 100, whole numbers above."""
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


@dataclass(frozen=True)
class EnergyRow:
    cell_id: str
    source: str
    scope: str
    domain: str
    method: str
    energy_j: str
    mean_power_w: str
    energy_per_sample_j: str
    samples_per_j: str


def unavailable_text(record: Mapping[str, Any]) -> str:
    """Why a cell has no energy figure, every source's reason."""
    reasons = [f"{p['source']}: {p['reason']}" for p in record.get("unavailable", [])]
    return "unavailable: " + ("; ".join(reasons) if reasons else "no power source declared")


def energy_rows(results: RunResults) -> tuple[list[EnergyRow], dict[str, list[str]]]:
    """Readings, and the cells without any grouped by their (identical) reason line."""
    rows: list[EnergyRow] = []
    absent: dict[str, list[str]] = {}
    for cell in results.cells:
        record = cell.energy
        if not record:
            continue
        if not record.get("readings"):
            absent.setdefault(unavailable_text(record), []).append(cell.cell_id)
            continue
        for reading in record["readings"]:
            rows.append(
                EnergyRow(
                    cell_id=cell.cell_id,
                    source=reading["source"],
                    scope=reading["scope"],
                    domain=reading["domain"],
                    method=reading["method"],
                    energy_j=_number(reading["energy_j"]),
                    mean_power_w=_number(reading["mean_power_w"]),
                    energy_per_sample_j=_number(reading.get("energy_per_sample_j")),
                    samples_per_j=_number(reading.get("samples_per_j")),
                )
            )
    return rows, absent


@dataclass(frozen=True)
class FirstShapeRow:
    cell_id: str
    kind: str
    label: str
    first_ms: str
    steady_ms: str
    extra_ms: str
    first_of_session: bool


def first_shape_rows(results: RunResults) -> list[FirstShapeRow]:
    return [
        FirstShapeRow(
            cell_id=cell.cell_id,
            kind=shape["kind"],
            label=shape["label"],
            first_ms=f"{shape['first_ms']:.1f}",
            steady_ms=f"{shape['steady_ms']:.1f}",
            extra_ms=f"{shape['first_ms'] - shape['steady_ms']:+.1f}",
            first_of_session=bool(shape.get("first_of_session")),
        )
        for cell in results.cells
        if cell.first_shape
        for shape in cell.first_shape.get("shapes", [])
    ]


def first_shape_kind_lines(results: RunResults) -> list[str]:
    """Per cell and kind: how many new shapes and what meeting one cost beyond a steady call."""
    lines = []
    for cell in results.cells:
        for kind, stats in ((cell.first_shape or {}).get("by_kind") or {}).items():
            extra = stats["extra_ms"]
            lines.append(
                f"{cell.cell_id}: {extra['n']} new {kind} shape(s) after the first, extra cost "
                f"median {extra['median']:.1f} ms, max {extra['max']:.1f} ms"
            )
    return lines


@dataclass(frozen=True)
class PlacementRow:
    cell_id: str
    role: str
    device: str
    op_total: int
    ops_on_device: int
    ops_on_cpu: int
    cpu_time_share: str
    top_operators: str
    fallbacks: str
    note: str


def _top_operators(operators: Sequence[Mapping[str, Any]]) -> str:
    timed = [o for o in operators if o.get("time_share") is not None]
    if timed:
        timed.sort(key=lambda o: -float(o["time_share"]))
        return ", ".join(
            f"{o['op']} ×{o['count']} {float(o['time_share']):.0%}" for o in timed[:TOP_OPERATORS]
        )
    return ", ".join(f"{o['op']} ×{o['count']}" for o in operators[:TOP_OPERATORS])


def _placement_note(role: Mapping[str, Any]) -> str:
    if role["device"] == "cpu":
        note = f"all {role['op_total']} operators run on the CPU"
    elif role["ops_on_cpu"]:
        note = f"{role['ops_on_cpu']} of {role['op_total']} operators fell back to the CPU"
    else:
        note = f"no kernel-fallback line in the log: all {role['op_total']} operators ran on {role['device']}"
    # Profiled once per model and options in a run: later cells carry that cell's record.
    return f"{note} (profiled in {role['measured_in']})" if role.get("measured_in") else note


def placement_rows(results: RunResults) -> tuple[list[PlacementRow], list[str]]:
    """One row per cell and model role, and one line per cell or role without a placement."""
    rows: list[PlacementRow] = []
    missing: list[str] = []
    for cell in results.cells:
        record = cell.placement
        if not record:
            continue
        if "unavailable" in record:
            missing.append(f"{cell.cell_id}: {record['unavailable']}")
            continue
        for role_name, role in record.get("roles", {}).items():
            if "error" in role:
                missing.append(f"{cell.cell_id} ({role_name}): profiling failed: {role['error']}")
                continue
            if "op_total" not in role:  # a reference whose measuring cell is not in these results
                missing.append(f"{cell.cell_id} ({role_name}): profiled in {role.get('measured_in')}")
                continue
            share = role.get("time_share_on_cpu")
            rows.append(
                PlacementRow(
                    cell_id=cell.cell_id,
                    role=role_name,
                    device=role["device"],
                    op_total=role["op_total"],
                    ops_on_device=role["ops_on_device"],
                    ops_on_cpu=role["ops_on_cpu"],
                    cpu_time_share="—" if share is None else f"{share:.0%}",
                    top_operators=_top_operators(role.get("operators", [])),
                    fallbacks=", ".join(f["op"] for f in role.get("fallbacks", [])) or "none",
                    note=_placement_note(role),
                )
            )
    return rows, missing
