"""Run against baseline, for nightly regression gates: loud and precise on a regression, quiet on noise.

Speed is judged on the raw per-query latencies that results keep (``raw["latency_ms"]``), not on
the trial medians: the smoke suite's two trials give a Student-t interval of about ±35 %, which
hid a +63 % slowdown. Two questions are asked of the two samples, as the reference's gate section
(Kalibera & Jones; Criterion; Pinpoint) recommends:

1. Is the current run slower at all? A one-sided Mann–Whitney U test (``scipy.stats.mannwhitneyu``),
   p < ``alpha``. It makes no normality assumption, and latency distributions are skewed.
2. By how much? The ratio of medians (current / baseline) with a 95 % bootstrap interval
   (``scipy.stats.bootstrap``, BCa). A significant but tiny change is not worth a red build.

Verdicts, with ``t`` = ``max_slowdown``:

- ``regressed``: slower (p < alpha, and the interval's lower end above 1) and the median ratio
  itself above ``1 + t``;
- ``improved``: the mirror image (faster, p < alpha, the interval's upper end below 1, and the ratio
  below ``1 / (1 + t)``), so swapping the runs swaps the verdicts;
- ``no change``: the whole interval inside ``[1 / (1 + t), 1 + t]``;
- ``inconclusive``: anything else (a ratio inside the limits whose interval straddles one, or one
  beyond a limit that the test cannot tell from noise), or too few samples for the U test to reach
  p < alpha at all (``1 / C(n1 + n2, n1)`` is the smallest one-sided p there is), never silently a
  pass.

When both runs measured the cell in several worker processes (``suite.processes``, pyperf's
design), the unit of the test is the process, not the query: on this project's 2-vCPU VM two
identical runs differed by up to 40 % in median latency while the queries inside one process agreed
within a few per cent, so queries are not independent draws and a test on them is sure of a
difference that the next run does not repeat (2 of 10 identical pairs were flagged). The process
medians are compared with Welch's t-test on their logarithms (``scipy.stats.ttest_ind``,
``equal_var=False``); the ratio is the geometric-mean ratio of the process medians, with Welch's
95 % interval. An inconclusive verdict then says how many processes per side the measured spread
would need (Kalibera & Jones: repeat at the level where the variance is).

When both runs are the two sides of one ``portbench ab`` (``raw.lockstep``: the same id, opposite
sides), they were timed together, trial for trial, in pairs of processes that took turns
(``harness.lockstep``), and that pairing is what is tested: per pair, the mean log ratio of the
two sides' adjacent trial medians is one draw, and a one-sample t-test on the draws
(``scipy.stats.ttest_1samp``) with its interval gives the verdict by the rules above. This is the
only test here that a host changing speed between two runs cannot fool.

The limit is judged on the point estimate, as asv and Pinpoint do, not on the interval's far end:
the interval is of *within-run* query noise, and requiring all of it beyond ``1 + t`` detected a
true 15 % slowdown only 3 to 6 times in 10 (``tests/bench_gate.py``); the run-to-run drift it
misses is what ``t`` is there to absorb.

Accuracy metric drops beyond ``max_metric_drop`` (absolute, in the metric's own better direction), a
parity verdict that now fails, a cell that passed and now fails, and a cell that disappeared are
regressions too; each problem carries its kind, so the CLI's exit code says which. Cells whose run
manifests differ (threads, Paddle build, flags, governor …) are not measured the same way: their
differences are listed, and ``strict_manifest`` refuses them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from portbench.errors import PortbenchError
from portbench.harness.measure import compare_manifests
from portbench.harness.results import CellResult, RunResults

DEFAULT_MAX_SLOWDOWN = 0.10
DEFAULT_MAX_METRIC_DROP = 0.005
# One-sided, per cell: with the smoke suite's five cells a nightly run then raises a false alarm
# from the test alone about once in twenty nights, and the effect-size rule removes most of those.
DEFAULT_ALPHA = 0.01
CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 4999
# Fixed, so the same two results files always get the same verdict.
BOOTSTRAP_SEED = 20261201

SpeedVerdict = Literal["regressed", "improved", "no change", "inconclusive"]
ProblemKind = Literal["performance", "accuracy", "infrastructure", "manifest"]


@dataclass(frozen=True)
class SpeedJudgement:
    """The latency verdict of one cell; ``ratio`` is current / baseline median (1.15 = 15 % slower)."""

    verdict: SpeedVerdict
    baseline_n: int
    current_n: int
    ratio: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None
    p_slower: float | None = None
    p_faster: float | None = None
    reason: str | None = None  # why inconclusive
    # What the test treats as independent draws: every query ("queries"), or each worker process's
    # median ("processes", when both runs kept more than one process).
    # ("lockstep pairs", when both runs were timed together by ``portbench ab``: the unit is each
    # pair of processes' mean log ratio of adjacent trials).
    unit: Literal["queries", "processes", "lockstep pairs"] = "queries"
    host_normalised: bool = False  # latencies divided by each process's host probe first

    def describe(self) -> str:
        if self.ratio is None or self.ratio_low is None or self.ratio_high is None:
            return f"{self.verdict}: {self.reason}"
        p = self.p_slower if self.ratio >= 1 else self.p_faster
        what = {"processes": "process medians", "lockstep pairs": "lockstep trials"}.get(self.unit, "median")
        text = (
            f"{what} {self.ratio - 1:+.1%} (95% CI {self.ratio_low - 1:+.1%} … {self.ratio_high - 1:+.1%}), "
            f"p={p:.2g}, n={self.baseline_n}/{self.current_n}"
            + (f" {self.unit}" if self.unit != "queries" else "")
            + (", host-normalised" if self.host_normalised else "")
        )
        return f"{text}; {self.reason}" if self.reason else text


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class CellComparison:
    cell_id: str
    baseline_p50_ms: float | None
    current_p50_ms: float | None
    speed: SpeedJudgement | None  # None: a cell with no latency samples on either side
    problems: tuple[Problem, ...]  # one per regression found
    manifest_differences: tuple[str, ...] = ()

    @property
    def regressed(self) -> bool:
        return bool(self.problems)

    @property
    def slowdown(self) -> float | None:
        """Current / baseline median latency - 1, from the raw samples."""
        return self.speed.ratio - 1.0 if self.speed and self.speed.ratio is not None else None

    def kinds(self) -> set[ProblemKind]:
        return {p.kind for p in self.problems}


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

    def kinds(self) -> set[ProblemKind]:
        found: set[ProblemKind] = set().union(*(c.kinds() for c in self.cells))
        if self.missing:
            found.add("infrastructure")
        return found


def smallest_one_sided_p(n1: int, n2: int) -> float:
    """The smallest p an exact one-sided U test can give: total separation, 1 / C(n1 + n2, n1)."""
    return 1.0 / math.comb(n1 + n2, n1)


def _median_ratio(current: np.ndarray, baseline: np.ndarray, axis: int = -1) -> Any:
    return np.median(current, axis=axis) / np.median(baseline, axis=axis)


def _ratio_interval(current: np.ndarray, baseline: np.ndarray, resamples: int) -> tuple[float, float]:
    from scipy import stats

    interval = None
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            # BCa's jackknife degenerates when many latencies tie; the percentile interval is the fallback.
            warnings.simplefilter("ignore")
            result = stats.bootstrap(
                (current, baseline),
                _median_ratio,
                n_resamples=resamples,
                confidence_level=CONFIDENCE,
                method=method,
                vectorized=True,
                rng=np.random.default_rng(BOOTSTRAP_SEED),
            )
        interval = (float(result.confidence_interval.low), float(result.confidence_interval.high))
        if all(math.isfinite(v) for v in interval):
            return interval
    assert interval is not None
    return interval


def judge_latency(
    baseline_ms: Sequence[float],
    current_ms: Sequence[float],
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
) -> SpeedJudgement:
    """Three-way (plus inconclusive) verdict on two samples of per-query latencies."""
    from scipy import stats

    n1, n2 = len(baseline_ms), len(current_ms)
    if n1 < 2 or n2 < 2 or smallest_one_sided_p(n1, n2) >= alpha:
        return SpeedJudgement(
            "inconclusive",
            n1,
            n2,
            reason=f"too few samples ({n1} vs {n2}): the U test cannot reach p < {alpha:g}; "
            "run more queries or trials",
        )
    base, now = np.asarray(baseline_ms, dtype=float), np.asarray(current_ms, dtype=float)
    if not (np.all(np.isfinite(base)) and np.all(np.isfinite(now))) or np.median(base) <= 0:
        raise PortbenchError("latency samples must be finite and positive")
    p_slower = float(stats.mannwhitneyu(now, base, alternative="greater").pvalue)
    p_faster = float(stats.mannwhitneyu(now, base, alternative="less").pvalue)
    ratio = float(_median_ratio(now, base))
    low, high = _ratio_interval(now, base, resamples)
    upper, lower = 1.0 + max_slowdown, 1.0 / (1.0 + max_slowdown)
    reason = None
    verdict = _verdict(ratio, low, high, p_slower, p_faster, max_slowdown, alpha)
    if verdict == "inconclusive":
        rerun = "rerun with more queries or trials"
        if lower <= ratio <= upper:
            reason = f"the interval straddles the ±{max_slowdown:.0%} limit; {rerun}"
        else:
            reason = f"beyond the limit but not distinguishable from noise; {rerun}"
    return SpeedJudgement(verdict, n1, n2, ratio, low, high, p_slower, p_faster, reason)


POWER = 0.9


def processes_needed(spread: float, max_slowdown: float, alpha: float = DEFAULT_ALPHA) -> int:
    """Processes per side for a one-sided two-sample test on log medians to see a change of
    ``max_slowdown`` at p < ``alpha`` with 90 % power, given the between-process spread (the SD of
    the log medians); the normal approximation, so a lower bound for small counts."""
    from scipy import stats

    z = float(stats.norm.ppf(1 - alpha) + stats.norm.ppf(POWER))
    return max(2, math.ceil(2 * (z * spread / math.log1p(max_slowdown)) ** 2))


def judge_process_medians(
    baseline_ms: Sequence[float],
    current_ms: Sequence[float],
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    alpha: float = DEFAULT_ALPHA,
) -> SpeedJudgement:
    """The verdict on per-process median latencies (one value per worker process and run side)."""
    from scipy import stats

    n1, n2 = len(baseline_ms), len(current_ms)
    if n1 < 2 or n2 < 2:
        raise ValueError("need at least two processes on each side")
    base, now = np.log(np.asarray(baseline_ms, dtype=float)), np.log(np.asarray(current_ms, dtype=float))
    if not (np.all(np.isfinite(base)) and np.all(np.isfinite(now))):
        raise PortbenchError("process median latencies must be finite and positive")
    difference = float(now.mean() - base.mean())
    spread = math.sqrt((float(np.var(base, ddof=1)) + float(np.var(now, ddof=1))) / 2)
    if spread == 0.0:
        # Identical values on each side: no noise to test against; the ratio alone decides.
        p_slower = 0.0 if difference > 0 else 1.0
        p_faster = 0.0 if difference < 0 else 1.0
        low = high = difference
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns about precision loss on near-equal samples
            p_slower = float(stats.ttest_ind(now, base, equal_var=False, alternative="greater").pvalue)
            p_faster = float(stats.ttest_ind(now, base, equal_var=False, alternative="less").pvalue)
            interval = stats.ttest_ind(now, base, equal_var=False).confidence_interval(CONFIDENCE)
        low, high = float(interval.low), float(interval.high)
    ratio, ratio_low, ratio_high = math.exp(difference), math.exp(low), math.exp(high)
    verdict = _verdict(ratio, ratio_low, ratio_high, p_slower, p_faster, max_slowdown, alpha)
    reason = None
    if verdict == "inconclusive":
        needed = processes_needed(spread, max_slowdown, alpha)
        reason = (
            f"between-process spread {spread:.1%}: telling a {max_slowdown:.0%} change from it needs "
            f"about {needed} processes per side (--set suite.processes={needed})"
        )
    return SpeedJudgement(
        verdict, n1, n2, ratio, ratio_low, ratio_high, p_slower, p_faster, reason, unit="processes"
    )


def _pairs_needed(spread: float, effect: float, alpha: float, most: int = 1000) -> int:
    """The fewest pairs whose one-sided t-test at ``alpha`` has power ``POWER`` against ``effect``
    given the spread between pairs: the usual normal approximation with t quantiles, found by
    counting up, since the quantiles depend on the count."""
    from scipy import stats

    for n in range(2, most):
        t_sum = float(stats.t.ppf(1 - alpha, n - 1) + stats.t.ppf(POWER, n - 1))
        if n >= (t_sum * spread / effect) ** 2:
            return n
    return most


def judge_lockstep(
    pair_log_ratios: Sequence[Sequence[float]],
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    alpha: float = DEFAULT_ALPHA,
) -> SpeedJudgement:
    """The verdict on lockstep pairs (``portbench ab``): for each pair of processes, the log ratios
    current / baseline of its adjacent trials' medians. Each pair's mean is one draw (the pair, not
    the trial, is the independent unit: a process may be slow as a whole); a one-sample t-test on
    them, one-sided, and its 95 % interval. With a single pair the trials are the draws, which
    cannot see a difference between processes, and the reason says so."""
    from scipy import stats

    if not pair_log_ratios or any(len(pair) == 0 for pair in pair_log_ratios):
        raise ValueError("need at least one lockstep pair with trials")
    draws = (
        np.asarray([float(np.mean(pair)) for pair in pair_log_ratios])
        if len(pair_log_ratios) > 1
        else np.asarray(pair_log_ratios[0], dtype=float)
    )
    if not np.all(np.isfinite(draws)):
        raise PortbenchError("lockstep trial medians must be finite and positive")
    n = len(pair_log_ratios)
    difference = float(draws.mean())
    if len(draws) < 2 or float(np.std(draws)) == 0.0:
        p_slower = 0.0 if difference > 0 else 1.0
        p_faster = 0.0 if difference < 0 else 1.0
        low = high = difference
    else:
        p_slower = float(stats.ttest_1samp(draws, 0.0, alternative="greater").pvalue)
        p_faster = float(stats.ttest_1samp(draws, 0.0, alternative="less").pvalue)
        interval = stats.ttest_1samp(draws, 0.0).confidence_interval(CONFIDENCE)
        low, high = float(interval.low), float(interval.high)
    ratio, ratio_low, ratio_high = math.exp(difference), math.exp(low), math.exp(high)
    verdict = _verdict(ratio, ratio_low, ratio_high, p_slower, p_faster, max_slowdown, alpha)
    reason = None
    if n == 1:
        reason = "one lockstep pair: its trials are the draws, so a slow process is not seen (--pairs 5)"
    elif verdict == "inconclusive":
        spread = float(np.std(draws, ddof=1))
        needed = _pairs_needed(spread, math.log1p(max_slowdown), alpha)
        reason = (
            f"spread between lockstep pairs {spread:.1%}: telling a {max_slowdown:.0%} change from it "
            f"needs about {needed} pairs (--pairs {needed})"
        )
    return SpeedJudgement(
        verdict, n, n, ratio, ratio_low, ratio_high, p_slower, p_faster, reason, unit="lockstep pairs"
    )


def _trial_medians_of(cell: CellResult, samples: Sequence[float], process: int) -> list[float]:
    """The median of each trial of timing process ``process`` (``raw.latency_trial_sizes`` split by
    ``raw.latency_process_sizes``; trials never straddle two processes)."""
    process_sizes = list(cell.raw.get("latency_process_sizes") or [len(samples)])
    trial_sizes = list(cell.raw.get("latency_trial_sizes") or [len(samples)])
    if not 0 <= process < len(process_sizes):
        raise PortbenchError(f"{cell.cell_id}: raw.lockstep names process {process}, which is not stored")
    start = sum(process_sizes[:process])
    end = start + process_sizes[process]
    medians, position = [], 0
    for size in trial_sizes:
        if start <= position and position + size <= end:
            medians.append(float(np.median(samples[position : position + size])))
        elif position < end and position + size > start:
            raise PortbenchError(f"{cell.cell_id}: a trial straddles two timing processes")
        position += size
    return medians


def lockstep_log_ratios(
    baseline: CellResult, current: CellResult, before_ms: Sequence[float], after_ms: Sequence[float]
) -> list[list[float]] | None:
    """Per lockstep pair, the log ratios current / baseline of its trials' medians, trial by trial;
    None unless both cells were timed together (the same ``raw.lockstep`` id, opposite sides)."""
    if not _timed_together(baseline, current):
        return None
    first, second = baseline.raw["lockstep"], current.raw["lockstep"]
    if first.get("arm") == second.get("arm"):
        raise PortbenchError(f"{current.cell_id}: both runs are the {first.get('arm')} side of one A/B pair")
    pairs_before, pairs_now = list(first.get("processes") or []), list(second.get("processes") or [])
    if len(pairs_before) != len(pairs_now) or not pairs_before:
        raise PortbenchError(
            f"{current.cell_id}: the two sides kept {len(pairs_before)} and {len(pairs_now)} "
            "lockstep processes"
        )
    ratios = []
    for a, b in zip(pairs_before, pairs_now, strict=True):
        trials_before = _trial_medians_of(baseline, before_ms, int(a))
        trials_now = _trial_medians_of(current, after_ms, int(b))
        if len(trials_before) != len(trials_now):
            raise PortbenchError(
                f"{current.cell_id}: lockstep processes {a} and {b} kept different trial counts"
            )
        ratios.append([math.log(n / o) for o, n in zip(trials_before, trials_now, strict=True)])
    return ratios


def _verdict(
    ratio: float, low: float, high: float, p_slower: float, p_faster: float, max_slowdown: float, alpha: float
) -> SpeedVerdict:
    upper, lower = 1.0 + max_slowdown, 1.0 / (1.0 + max_slowdown)
    if p_slower < alpha and low > 1.0 and ratio > upper:
        return "regressed"
    if p_faster < alpha and high < 1.0 and ratio < lower:
        return "improved"
    if low >= lower and high <= upper:
        return "no change"
    return "inconclusive"


def process_medians(cell: CellResult, samples: Sequence[float]) -> list[float] | None:
    """The median latency of each worker process that measured the cell (``raw.latency_process_sizes``,
    sample counts per process in order); None for a cell measured in one process."""
    sizes = cell.raw.get("latency_process_sizes")
    if sizes is None:
        return None
    if (
        not isinstance(sizes, list)
        or not all(isinstance(v, int) and v > 0 for v in sizes)
        or sum(sizes) != len(samples)
    ):
        raise PortbenchError(
            f"{cell.cell_id}: raw.latency_process_sizes {sizes} does not add up to the "
            f"{len(samples)} latency samples stored"
        )
    if len(sizes) < 2:
        return None
    return [float(np.median(part)) for part in _per_process(samples, sizes)]


def _per_process(samples: Sequence[float], sizes: Sequence[int]) -> list[Sequence[float]]:
    """The samples split into each timing process's, by the stored per-process counts."""
    bounds = np.cumsum([0, *sizes])
    return [samples[a:b] for a, b in itertools.pairwise(bounds)]


def host_normalised(cell: CellResult, samples: Sequence[float]) -> list[float]:
    """Each sample divided by the host probe of the process that took it (``harness.host_probe``):
    latency in units of the host's speed at that minute. A clear error where the cell kept no probe."""
    probes = cell.raw.get("host_probe")
    sizes = cell.raw.get("latency_process_sizes") or [len(samples)]
    if not isinstance(probes, list) or len(probes) != len(sizes) or not all(
        isinstance(p, Mapping) and isinstance(p.get("probe_ms"), (int, float)) and p["probe_ms"] > 0
        for p in probes
    ):
        raise PortbenchError(
            f"{cell.cell_id}: --normalise-host needs a host probe for each timing process "
            "(raw.host_probe, recorded by single-stream cells since results schema 1.2 of portbench 0.1)"
        )
    return [
        v / float(probe["probe_ms"])
        for part, probe in zip(_per_process(samples, sizes), probes, strict=True)
        for v in part
    ]


def _timed_together(baseline: CellResult, current: CellResult) -> bool:
    """Both cells come from one ``portbench ab`` run: the pairing already cancels the host's
    drift, so ``--normalise-host`` leaves them as measured."""
    first, second = baseline.raw.get("lockstep"), current.raw.get("lockstep")
    return isinstance(first, Mapping) and isinstance(second, Mapping) and first.get("id") == second.get("id")


def _probe_version(cell: CellResult) -> set[Any]:
    return {p.get("version") for p in cell.raw.get("host_probe") or [] if isinstance(p, Mapping)}


def latency_samples(cell: CellResult) -> list[float]:
    """The raw per-query latencies (ms) of all trials, checked against the stored trial sizes."""
    samples = cell.raw.get("latency_ms") or []
    if not isinstance(samples, list) or not all(isinstance(v, (int, float)) for v in samples):
        raise PortbenchError(f"{cell.cell_id}: raw.latency_ms must be a list of numbers")
    sizes = cell.raw.get("latency_trial_sizes")
    if sizes is not None and (not isinstance(sizes, list) or sum(sizes) != len(samples)):
        raise PortbenchError(
            f"{cell.cell_id}: raw.latency_trial_sizes {sizes} does not add up to the "
            f"{len(samples)} latency samples stored"
        )
    return [float(v) for v in samples]


def _p50(cell: CellResult) -> float | None:
    if cell.trials is not None:
        return cell.trials.median_p50_ms
    return cell.latency_ms.p50 if cell.latency_ms else None


def _higher_is_better(tasks: Mapping[str, Any], cell: CellResult) -> dict[str, bool]:
    declared = tasks.get(f"{cell.workload}/{cell.task}") or {}
    return {
        str(m["name"]): bool(m.get("higher_is_better", True))
        for m in declared.get("metrics", [])
        if isinstance(m, Mapping) and "name" in m
    }


def compare_cell(
    baseline: CellResult,
    current: CellResult,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    max_metric_drop: float = DEFAULT_MAX_METRIC_DROP,
    strict_manifest: bool = False,
    alpha: float = DEFAULT_ALPHA,
    tasks: Mapping[str, Any] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    normalise_host: bool = False,
) -> CellComparison:
    problems: list[Problem] = []
    if baseline.status == "passed" and current.status != "passed":
        reason = current.reason or "no reason recorded"
        problems.append(Problem("infrastructure", f"was passed, now {current.status}: {reason}"))
    higher_is_better = _higher_is_better(tasks or {}, current)
    for metric, before in baseline.metrics.items():
        after = current.metrics.get(metric)
        if after is None:
            if current.status == "passed":
                problems.append(Problem("accuracy", f"{metric} missing (was {before:.4f})"))
            continue
        # A drop is in the metric's worse direction: lower for accuracy, higher for an error (RMSE).
        drop = before - after if higher_is_better.get(metric, True) else after - before
        if drop > max_metric_drop:
            change = f"{metric} {before:.4f} -> {after:.4f} ({after - before:+.4f})"
            problems.append(Problem("accuracy", change))
    was = baseline.parity.verdict if baseline.parity else None
    if current.parity is not None and current.parity.verdict == "fail" and was != "fail":
        reason = current.parity.reason or "no reason recorded"
        problems.append(Problem("accuracy", f"parity now fails: {reason}"))
    differences = tuple(compare_manifests(baseline.manifest, current.manifest))
    if differences and strict_manifest:
        count = len(differences)
        problems.append(Problem("manifest", f"measured differently ({count} manifest differences)"))

    speed = None
    before_ms, after_ms = latency_samples(baseline), latency_samples(current)
    together = _timed_together(baseline, current)
    if normalise_host and current.status == "passed" and before_ms and after_ms and not together:
        if _probe_version(baseline) != _probe_version(current):
            raise PortbenchError(f"{current.cell_id}: the two runs' host probes are of different versions")
        before_ms, after_ms = host_normalised(baseline, before_ms), host_normalised(current, after_ms)
    passed = current.status == "passed"
    paired = lockstep_log_ratios(baseline, current, before_ms, after_ms) if passed else None
    processes_before, processes_now = process_medians(baseline, before_ms), process_medians(current, after_ms)
    if passed and paired:
        speed = judge_lockstep(paired, max_slowdown, alpha)
    elif passed and processes_before and processes_now:
        speed = judge_process_medians(processes_before, processes_now, max_slowdown, alpha)
    elif passed and (before_ms or after_ms):
        speed = judge_latency(before_ms, after_ms, max_slowdown, alpha, resamples)
    if speed is not None and normalise_host and not together:
        speed = dataclasses.replace(speed, host_normalised=True)
    if speed is not None and speed.verdict == "regressed":
        problems.append(Problem("performance", f"latency {speed.describe()}, limit +{max_slowdown:.0%}"))
    return CellComparison(current.cell_id, _p50(baseline), _p50(current), speed, tuple(problems), differences)


def compare_runs(
    baseline: RunResults,
    current: RunResults,
    max_slowdown: float = DEFAULT_MAX_SLOWDOWN,
    max_metric_drop: float = DEFAULT_MAX_METRIC_DROP,
    strict_manifest: bool = False,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
    normalise_host: bool = False,
) -> RunComparison:
    now = {c.cell_id: c for c in current.cells}
    before = {c.cell_id: c for c in baseline.cells}
    tasks = {**baseline.tasks, **current.tasks}
    compared = tuple(
        compare_cell(
            cell, now[cell_id], max_slowdown, max_metric_drop, strict_manifest, alpha, tasks, resamples,
            normalise_host,
        )
        for cell_id, cell in before.items()
        if cell_id in now and cell.status != "skipped"
    )
    missing = tuple(
        cell_id for cell_id, cell in before.items() if cell_id not in now and cell.status != "skipped"
    )
    return RunComparison(compared, missing, tuple(cell_id for cell_id in now if cell_id not in before))
