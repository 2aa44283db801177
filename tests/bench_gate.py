"""The nightly gate on real smoke runs: does it flag a 15 % slowdown, and does it stay quiet on noise?

Run with ``tox -e bench -- tests/bench_gate.py -s`` (about 13 minutes on 2 shared cores). Twenty-one
``portbench run --suite smoke`` runs on the test-only ``pacedcpu`` backend (``tests/plugins/
paced_backend``: the CPU backend whose every query also waits 15 % of its own measured time when
``PORTBENCH_PACED_SLOWDOWN=0.15``), alternating plain and slowed so machine drift hits both alike:
plain_0, slowed_0, plain_1, slowed_1, …, plain_10.

- detections: ``compare(plain_i, slowed_i)`` for i = 0..9; a cell counts when its verdict is
  ``regressed``; target ≥ 9 of 10 for every cell;
- false alarms: ``compare(plain_i, plain_{i+1})``, ten pairs of identical runs; any cell that is
  ``regressed`` is a false alarm; target 0 of 10.

To stay affordable on a shared machine the runs are ``--mode performance --threads 1`` and limited
to the cells named in ``PORTBENCH_GATE_ONLY`` (comma-separated ``--only`` filters; default: OCR rec
and both ERNIE cells). ``PORTBENCH_GATE_PROCESSES`` (default 1) times every cell in that many worker
processes (``--set suite.processes=N``), so the gate tests process medians instead of queries;
``PORTBENCH_GATE_PAIRS`` (default 10) sets the number of pairs. Every pair is judged twice: as
recorded, and with ``normalise_host`` (each process's latencies over its host probe; the figures
under ``host_normalised``); the assertions are on the first. The figures are printed and written
to ``PORTBENCH_GATE_JSON`` when set.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from portbench.harness.compare import compare_runs
from portbench.harness.results import load_results

pytestmark = pytest.mark.bench

PAIRS = int(os.environ.get("PORTBENCH_GATE_PAIRS", "10"))
PROCESSES = int(os.environ.get("PORTBENCH_GATE_PROCESSES", "1"))
SLOWDOWN = 0.15
PLUGIN = Path(__file__).parent / "plugins" / "paced_backend"
DEFAULT_ONLY = "ocr/rec,ernie"


def smoke_run(out: Path, slowdown: float, only: list[str]) -> None:
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(PLUGIN), environment.get("PYTHONPATH", "")])
    environment["PORTBENCH_PACED_SLOWDOWN"] = str(slowdown)
    command = [
        sys.executable, "-m", "portbench.harness.cli", "run", "--suite", "smoke", "--backend", "pacedcpu",
        "--mode", "performance", "--threads", "1", "--out", str(out),
        "--set", f"suite.processes={PROCESSES}",
        *(arg for text in only for arg in ("--only", text)),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_gate_flags_a_15_percent_slowdown_and_stays_quiet_on_reruns(tmp_path: Path) -> None:
    only = [t for t in os.environ.get("PORTBENCH_GATE_ONLY", DEFAULT_ONLY).split(",") if t]
    plain = [tmp_path / f"plain_{i}" for i in range(PAIRS + 1)]
    slowed = [tmp_path / f"slowed_{i}" for i in range(PAIRS)]
    for i in range(PAIRS + 1):
        smoke_run(plain[i], 0.0, only)
        if i < PAIRS:
            smoke_run(slowed[i], SLOWDOWN, only)

    figures = gate_figures(plain, slowed, only, normalise_host=False)
    # The same pairs judged again with each process's latencies divided by its host probe.
    figures["host_normalised"] = gate_figures(plain, slowed, only, normalise_host=True)
    print(json.dumps(figures, indent=1, ensure_ascii=False))
    if os.environ.get("PORTBENCH_GATE_JSON"):
        Path(os.environ["PORTBENCH_GATE_JSON"]).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    cells = list(figures["detections"])
    assert cells, "no cells compared"
    assert all(figures["detections"][c] >= math.ceil(0.9 * PAIRS) for c in cells), figures["detections"]
    assert figures["false_alarm_pairs"] == 0, figures["false_alarms"]


def gate_figures(
    plain: list[Path], slowed: list[Path], only: list[str], normalise_host: bool
) -> dict[str, Any]:
    detected: Counter[str] = Counter()
    false_alarms: Counter[str] = Counter()
    verdicts: dict[str, list[str]] = {"slowed": [], "rerun": []}
    ratios: dict[str, list[float]] = {}
    for i in range(PAIRS):
        base = load_results(plain[i])
        slow = compare_runs(base, load_results(slowed[i]), normalise_host=normalise_host)
        rerun = compare_runs(base, load_results(plain[i + 1]), normalise_host=normalise_host)
        for cell in slow.cells:
            assert cell.speed is not None
            ratios.setdefault(cell.cell_id, []).append(round(cell.speed.ratio or 0.0, 4))
            verdicts["slowed"].append(f"{i} {cell.cell_id}: {cell.speed.verdict} {cell.speed.describe()}")
            detected[cell.cell_id] += cell.speed.verdict == "regressed"
        for cell in rerun.cells:
            assert cell.speed is not None
            verdicts["rerun"].append(f"{i} {cell.cell_id}: {cell.speed.verdict} {cell.speed.describe()}")
            false_alarms[cell.cell_id] += cell.speed.verdict == "regressed"
        assert not slow.missing and not rerun.missing

    cells = sorted(ratios)
    figures = {
        "pairs": PAIRS,
        "processes": PROCESSES,
        "slowdown": SLOWDOWN,
        "only": only,
        "detections": {c: detected[c] for c in cells},
        "false_alarms": {c: false_alarms[c] for c in cells},
        "false_alarm_pairs": sum(
            any(line.startswith(f"{i} ") and ": regressed" in line for line in verdicts["rerun"])
            for i in range(PAIRS)
        ),
        "median_ratios_slowed": ratios,
        "verdicts": verdicts,
    }
    return figures
