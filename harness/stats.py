"""Statistics over repeated trials: spread, a 95% confidence interval, and the instability flag.

Why Student's t and not a bootstrap: a cell runs a handful of trials (3 to 10). A percentile
bootstrap over five values can only recombine those five, and at that size it is known to
under-cover (its interval is too narrow by roughly sqrt((n - 1) / n) and the t/z gap). Each trial's
median is itself the median of hundreds of latencies, so it is close to normally distributed, which
is what the t-interval assumes. scipy is not a dependency, so the two-sided 95% critical values are
tabulated below (standard t-table values, 4 decimals).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from portbench.harness.results import TrialSummary

# Two-sided 95% critical values of Student's t, by degrees of freedom.
T_CRITICAL_95: dict[int, float] = {
    1: 12.7062,
    2: 4.3027,
    3: 3.1824,
    4: 2.7764,
    5: 2.5706,
    6: 2.4469,
    7: 2.3646,
    8: 2.3060,
    9: 2.2622,
    10: 2.2281,
    11: 2.2010,
    12: 2.1788,
    13: 2.1604,
    14: 2.1448,
    15: 2.1314,
    16: 2.1199,
    17: 2.1098,
    18: 2.1009,
    19: 2.0930,
    20: 2.0860,
    21: 2.0796,
    22: 2.0739,
    23: 2.0687,
    24: 2.0639,
    25: 2.0595,
    26: 2.0555,
    27: 2.0518,
    28: 2.0484,
    29: 2.0452,
    30: 2.0423,
    40: 2.0211,
    60: 2.0003,
    120: 1.9799,
}
Z_95 = 1.9600

DEFAULT_CV_THRESHOLD = 0.05


def t_critical_95(degrees_of_freedom: int) -> float:
    """Two-sided 95% t critical value. Between table rows the smaller df is used: a wider interval."""
    if degrees_of_freedom < 1:
        raise ValueError("degrees of freedom must be at least 1")
    if degrees_of_freedom in T_CRITICAL_95:
        return T_CRITICAL_95[degrees_of_freedom]
    if degrees_of_freedom > max(T_CRITICAL_95):
        return Z_95 if degrees_of_freedom > 1000 else T_CRITICAL_95[120]
    return T_CRITICAL_95[max(df for df in T_CRITICAL_95 if df <= degrees_of_freedom)]


def mean_ci95(values: Sequence[float]) -> tuple[float, float] | None:
    """95% confidence interval of the mean (Student's t); None with fewer than two values."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half_width = t_critical_95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half_width, mean + half_width


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample standard deviation over mean; None with fewer than two values or a zero mean."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    if mean == 0:
        return None
    return statistics.stdev(values) / abs(mean)


def summarize_trials(
    p50_ms: Sequence[float],
    samples_per_s: Sequence[float],
    cv_threshold: float = DEFAULT_CV_THRESHOLD,
) -> TrialSummary:
    """Aggregate per-trial medians (ms) and throughputs into a :class:`TrialSummary`."""
    if not p50_ms:
        raise ValueError("no trials to summarise")
    if len(samples_per_s) != len(p50_ms):
        raise ValueError("need one throughput per trial")
    if cv_threshold < 0:
        raise ValueError("cv_threshold must not be negative")
    interval = mean_ci95(p50_ms)
    cv = coefficient_of_variation(p50_ms)
    return TrialSummary(
        trials=len(p50_ms),
        p50_ms=tuple(float(v) for v in p50_ms),
        samples_per_s=tuple(float(v) for v in samples_per_s),
        median_p50_ms=float(statistics.median(p50_ms)),
        mean_p50_ms=statistics.fmean(p50_ms),
        # A latency cannot be negative: with two or three noisy trials the t-interval can reach below 0.
        ci95_low_ms=max(0.0, interval[0]) if interval else None,
        ci95_high_ms=interval[1] if interval else None,
        cv=cv,
        cv_threshold=cv_threshold,
        unstable=cv is not None and cv > cv_threshold,
    )
