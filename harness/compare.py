"""Run against baseline, for nightly regression gates: loud and precise on a regression, quiet on noise.

A slowdown counts only when it is both larger than ``max_slowdown`` and outside the noise the runs
themselves measured (their 95 % trial intervals do not overlap). Metric drops beyond
``max_metric_drop`` (absolute), a cell that passed and now fails, and a cell that disappeared are
regressions too. Cells whose run manifests differ (threads, Paddle build, flags, governor …) are
not measured the same way: their differences are listed, and ``strict_manifest`` refuses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from portbench.harness.measure import compare_manifests
from portbench.harness.results import CellResult, RunResults

DEFAULT_MAX_SLOWDOWN = 0.10
DEFAULT_MAX_METRIC_DROP = 0.005


@dataclass(frozen=True)
class CellComparison:
    cell_id: str
    baseline_p50_ms: float | None
    current_p50_ms: float | None
    slowdown: float | None  # current / baseline p50 - 1
    beyond_noise: bool  # the trial intervals do not overlap (or no intervals to judge by)
    problems: tuple[str, ...]  # one line per regression found
    manifest_differences: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class RunComparison:
    cells: tuple[CellComparison, ...]
    missing: tuple[str, ...]  # in the baseline, not in this run
    new: tuple[str, ...] = field(default=())  # in this run only

    @property
    def regressions(self) -> list[CellComparison]:
        return [c for c in self.cells if c.regressed]

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.missing)


def _interval(cell: CellResult) -> tuple[float, float] | None:
    trials = cell.trials
    if trials is None or trials.ci95_low_ms is None or trials.ci95_high_ms is None:
        return None
    return trials.ci95_low_ms, trials.ci95_high_ms


def _p50(cell: CellResult) -> float | None:
    if cell.trials is not None:
        return cell.trials.median_p50_ms
    return cell.latency_ms.p50 if cell.latency_ms else None


def compare_cell(
    baseline: CellResult,
    current: CellResult,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    max_metric_drop: float = DEFAULT_MAX_METRIC_DROP,
    strict_manifest: bool = False,
) -> CellComparison:
    problems: list[str] = []
    if baseline.status == "passed" and current.status != "passed":
        problems.append(f"was passed, now {current.status}: {current.reason or 'no reason recorded'}")
    for metric, before in baseline.metrics.items():
        after = current.metrics.get(metric)
        if after is None:
            problems.append(f"{metric} missing (was {before:.4f})")
        elif before - after > max_metric_drop:
            problems.append(f"{metric} {before:.4f} -> {after:.4f} ({after - before:+.4f})")
    differences = tuple(compare_manifests(baseline.manifest, current.manifest))
    if differences and strict_manifest:
        problems.append(f"measured differently ({len(differences)} manifest differences)")

    before_ms, after_ms = _p50(baseline), _p50(current)
    slowdown = after_ms / before_ms - 1.0 if before_ms and after_ms else None
    first, second = _interval(baseline), _interval(current)
    beyond_noise = first is None or second is None or second[0] > first[1]
    if slowdown is not None and slowdown > max_slowdown and beyond_noise:
        assert before_ms is not None and after_ms is not None
        problems.append(
            f"p50 {before_ms:.2f} ms -> {after_ms:.2f} ms ({slowdown:+.1%}, limit +{max_slowdown:.0%})"
        )
    return CellComparison(
        current.cell_id, before_ms, after_ms, slowdown, beyond_noise, tuple(problems), differences
    )


def compare_runs(
    baseline: RunResults,
    current: RunResults,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    max_metric_drop: float = DEFAULT_MAX_METRIC_DROP,
    strict_manifest: bool = False,
) -> RunComparison:
    now = {c.cell_id: c for c in current.cells}
    before = {c.cell_id: c for c in baseline.cells}
    compared = tuple(
        compare_cell(cell, now[cell_id], max_slowdown, max_metric_drop, strict_manifest)
        for cell_id, cell in before.items()
        if cell_id in now and cell.status != "skipped"
    )
    missing = tuple(
        cell_id for cell_id, cell in before.items() if cell_id not in now and cell.status != "skipped"
    )
    return RunComparison(compared, missing, tuple(cell_id for cell_id in now if cell_id not in before))
