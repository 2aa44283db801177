"""Statistics over repeated trials: spread, a 95% confidence interval, and the instability flag.

Why Student's t and not a bootstrap: a cell runs a handful of trials (3 to 10). A percentile
bootstrap over five values can only recombine those five, and at that size it is known to
under-cover (its interval is too narrow by roughly sqrt((n - 1) / n) and the t/z gap). Each trial's
median is itself the median of hundreds of latencies, so it is close to normally distributed, which
is what the t-interval assumes. The critical values come from ``scipy.stats.t`` (exact for every
degree of freedom, where a hand-typed table had to round down between rows).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from portbench.harness.results import TrialSummary

DEFAULT_CV_THRESHOLD = 0.05


def t_critical_95(degrees_of_freedom: int) -> float:
    """Two-sided 95% critical value of Student's t: the 97.5th percentile of t(df)."""
    if degrees_of_freedom < 1:
        raise ValueError("degrees of freedom must be at least 1")
    # Imported here: scipy.stats costs every worker process half a second at start-up.
    from scipy import stats as scipy_stats

    return float(scipy_stats.t.ppf(0.975, degrees_of_freedom))


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
