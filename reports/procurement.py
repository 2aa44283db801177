"""The procurement view: throughput per 10,000 yuan and per watt, normalised to the baseline machine,
and a ranking that only orders machines whose 95% intervals separate.

Ranking rule (per cell key, on throughput per 10,000 yuan and, separately, per watt): a machine's rank
is 1 + the number of machines whose whole interval lies above its own. Machines whose intervals
overlap therefore share a rank (a tie, shown as ``=N``); price and power are the user's exact figures,
so the intervals are the throughput interval scaled. A machine is not ranked when its cell failed,
was skipped, fails parity, or has no interval (one trial) — each with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from portbench.harness.machines import Machine
from portbench.reports.frame import KEY

PER_YUAN = 10_000.0


def _excluded(row: Mapping[str, Any] | pd.Series, machine: Machine | None) -> str | None:
    """Why this row takes no part in the ranking (None: it does)."""
    if machine is None:
        return "no entry in the machines file"
    if row["status"] != "passed":
        return f"cell {row['status']}" + (f": {row['reason']}" if row.get("reason") else "")
    if row.get("parity_verdict") == "fail":
        return "fails parity" + (f": {row['parity_reason']}" if row.get("parity_reason") else "")
    if pd.isna(row.get("throughput_ci95_low")) or pd.isna(row.get("throughput_ci95_high")):
        return "no 95% interval (a single trial)"
    return None


def ranks(intervals: Mapping[str, tuple[float, float]]) -> dict[str, str]:
    """``"1"``, ``"=2"``, ...: 1 + how many intervals lie wholly above this one; a shared rank is a tie."""
    numbers = {
        name: 1 + sum(1 for other, (low, _) in intervals.items() if other != name and low > high)
        for name, (_, high) in intervals.items()
    }
    counts = {n: list(numbers.values()).count(n) for n in numbers.values()}
    return {name: (f"={n}" if counts[n] > 1 else str(n)) for name, n in numbers.items()}


def procurement_frame(cells: pd.DataFrame, machines: Mapping[str, Machine], baseline: str) -> pd.DataFrame:
    """One row per platform × cell key with price/power figures, their normalisation to the baseline
    machine, the two ranks and, for rows left out, the reason."""
    rows: list[dict[str, Any]] = []
    for _, group in cells.groupby(KEY, sort=False, dropna=False):
        base_row = group[group["platform"] == baseline]
        base_machine = machines.get(baseline)
        base_tp = base_row["throughput_samples_per_s"].iloc[0] if len(base_row) else None
        base_yuan = base_watt = None
        if base_machine is not None and base_tp is not None and _ok(base_tp):
            base_yuan = base_tp / base_machine.price_yuan * PER_YUAN
            base_watt = base_tp / base_machine.power_w
        entries: list[dict[str, Any]] = []
        for _, cell in group.iterrows():
            machine = machines.get(cell["platform"])
            throughput = cell["throughput_samples_per_s"]
            row: dict[str, Any] = {
                **{k: cell[k] for k in KEY},
                "platform": cell["column"],
                "throughput_samples_per_s": throughput,
                "price_yuan": machine.price_yuan if machine else None,
                "power_w": machine.power_w if machine else None,
                "power_source": machine.power_source if machine else None,
                "rack_units": machine.rack_units if machine else None,
                "per_10k_yuan": None,
                "per_10k_yuan_low": None,
                "per_10k_yuan_high": None,
                "per_watt": None,
                "per_watt_low": None,
                "per_watt_high": None,
                "per_10k_yuan_vs_baseline": None,
                "per_watt_vs_baseline": None,
                "rank_per_10k_yuan": None,
                "rank_per_watt": None,
                "excluded": _excluded(cell, machine),
            }
            if machine and _ok(throughput):
                scale_yuan, scale_watt = PER_YUAN / machine.price_yuan, 1.0 / machine.power_w
                row["per_10k_yuan"] = throughput * scale_yuan
                row["per_watt"] = throughput * scale_watt
                if not pd.isna(cell["throughput_ci95_low"]):
                    row["per_10k_yuan_low"] = cell["throughput_ci95_low"] * scale_yuan
                    row["per_10k_yuan_high"] = cell["throughput_ci95_high"] * scale_yuan
                    row["per_watt_low"] = cell["throughput_ci95_low"] * scale_watt
                    row["per_watt_high"] = cell["throughput_ci95_high"] * scale_watt
                if base_yuan and base_watt:
                    row["per_10k_yuan_vs_baseline"] = row["per_10k_yuan"] / base_yuan
                    row["per_watt_vs_baseline"] = row["per_watt"] / base_watt
            entries.append(row)
        ranked = [e for e in entries if e["excluded"] is None]
        for figure in ("per_10k_yuan", "per_watt"):
            order = ranks({e["platform"]: (e[f"{figure}_low"], e[f"{figure}_high"]) for e in ranked})
            for entry in ranked:
                entry[f"rank_{figure}"] = order[entry["platform"]]
        rows.extend(entries)
    return pd.DataFrame(rows)


def _ok(value: Any) -> bool:
    return value is not None and not pd.isna(value) and value > 0
