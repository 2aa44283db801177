from __future__ import annotations

import math

import numpy as np
import pytest

from portbench.harness.results import TrialSummary
from portbench.harness.stats import (
    coefficient_of_variation,
    mean_ci95,
    summarize_trials,
    t_critical_95,
)

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast


def student_t_cdf_mass(t: float, df: int) -> float:
    """P(0 <= T <= t) by integrating the Student-t density numerically: an independent check."""
    grid = np.linspace(0.0, t, 200_001)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_norm) * (1 + grid**2 / df) ** (-(df + 1) / 2)
    return float(np.trapezoid(density, grid))


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 17, 30, 35, 100, 500])
def test_every_critical_value_leaves_2_5_percent_in_each_tail(df: int) -> None:
    assert student_t_cdf_mass(t_critical_95(df), df) == pytest.approx(0.475, abs=2e-5)


def test_closed_forms_for_one_and_two_degrees_of_freedom() -> None:
    # df 1 is the Cauchy distribution: tan(pi * (0.975 - 0.5)); df 2: (2p - 1) / sqrt(2 p (1 - p)).
    assert t_critical_95(1) == pytest.approx(math.tan(math.pi * 0.475), abs=1e-4)
    assert t_critical_95(2) == pytest.approx(0.95 / math.sqrt(2 * 0.975 * 0.025), abs=1e-4)


def test_standard_table_values_and_the_normal_limit() -> None:
    # Printed t-tables (4 decimals): t(4) = 2.7764, t(30) = 2.0423, t(120) = 1.9799; z(0.975) = 1.95996.
    assert t_critical_95(4) == pytest.approx(2.7764, abs=1e-4)
    assert t_critical_95(30) == pytest.approx(2.0423, abs=1e-4)
    assert t_critical_95(120) == pytest.approx(1.9799, abs=1e-4)
    # Between the old table's rows the value is exact now, not the wider row's: 30 > 35 > 40.
    assert 2.0211 < t_critical_95(35) < 2.0423
    assert t_critical_95(100_000) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ValueError):
        t_critical_95(0)


def test_mean_ci95_of_known_samples() -> None:
    # mean 12, sample sd 2, standard error 2 / sqrt(3), t(2) = 4.3027 -> half width 4.96833
    low, high = mean_ci95([10.0, 12.0, 14.0]) or (0.0, 0.0)
    assert low == pytest.approx(12 - 4.96833, abs=1e-4)
    assert high == pytest.approx(12 + 4.96833, abs=1e-4)
    assert mean_ci95([5.0]) is None
    assert mean_ci95([]) is None


def test_coefficient_of_variation() -> None:
    assert coefficient_of_variation([10.0, 12.0, 14.0]) == pytest.approx(2 / 12)
    assert coefficient_of_variation([4.0, 4.0]) == 0.0
    assert coefficient_of_variation([4.0]) is None
    assert coefficient_of_variation([-1.0, 1.0]) is None  # mean zero: undefined


def test_summarize_trials_flags_instability_above_the_threshold() -> None:
    # p50s 9, 10, 11: sd 1, mean 10 -> cv 0.1
    summary = summarize_trials([9.0, 10.0, 11.0], [100.0, 90.0, 80.0], cv_threshold=0.05)
    assert summary.cv == pytest.approx(0.1)
    assert summary.unstable is True
    assert summary.median_p50_ms == 10.0 and summary.mean_p50_ms == pytest.approx(10.0)
    assert summary.p50_ms == (9.0, 10.0, 11.0)
    assert summarize_trials([9.0, 10.0, 11.0], [1.0] * 3, cv_threshold=0.1).unstable is False
    assert summarize_trials([9.0, 10.0, 11.0], [1.0] * 3, cv_threshold=0.099).unstable is True


def test_median_differs_from_mean_for_skewed_trials() -> None:
    summary = summarize_trials([10.0, 10.0, 10.0, 10.0, 20.0], [1.0] * 5)
    assert summary.median_p50_ms == 10.0
    assert summary.mean_p50_ms == pytest.approx(12.0)
    # sd sqrt(20) ~ 4.4721, se 2.0, t(4) = 2.7764 -> 12 -/+ 5.5528
    assert summary.ci95_low_ms == pytest.approx(12 - 5.5528, abs=1e-3)
    assert summary.ci95_high_ms == pytest.approx(12 + 5.5528, abs=1e-3)


def test_single_trial_has_no_interval_and_is_not_flagged() -> None:
    summary = summarize_trials([7.0], [3.0])
    assert summary.ci95_low_ms is None and summary.ci95_high_ms is None
    assert summary.cv is None and summary.unstable is False


def test_summarize_trials_refuses_inconsistent_input() -> None:
    with pytest.raises(ValueError):
        summarize_trials([], [])
    with pytest.raises(ValueError):
        summarize_trials([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        summarize_trials([1.0], [1.0], cv_threshold=-0.1)


def test_trial_summary_round_trips_through_json_shape() -> None:
    import json
    from dataclasses import asdict

    summary = summarize_trials([9.0, 10.0, 11.0], [100.0, 90.0, 80.0])
    data = json.loads(json.dumps(asdict(summary)))
    assert TrialSummary.from_dict(data) == summary


def test_trial_summary_matches_its_schema_definition() -> None:
    import json
    from dataclasses import asdict, fields

    import jsonschema

    from portbench.harness.results import load_schema

    schema = load_schema()
    definition = schema["$defs"]["trial_summary"]
    assert set(definition["properties"]) == {f.name for f in fields(TrialSummary)}
    validator = jsonschema.Draft202012Validator({**definition, "$defs": schema["$defs"]})
    for summary in (summarize_trials([9.0, 10.0, 11.0], [1.0] * 3), summarize_trials([7.0], [3.0])):
        validator.validate(json.loads(json.dumps(asdict(summary))))
    broken = json.loads(json.dumps(asdict(summarize_trials([7.0], [3.0]))))
    broken["unstable"] = "no"
    assert not validator.is_valid(broken)


def test_latency_interval_never_reaches_below_zero() -> None:
    # Two trials 10 ms apart: mean 105 ± t(1) * s / sqrt(2) = 12.706 * 7.071 / 1.414 = ±63.53 -> 41.47;
    # 1 and 200 ms: 100.5 ± 12.706 * 140.7 / 1.414 = ±1264 -> clamped to 0.
    from portbench.harness.stats import summarize_trials

    wide = summarize_trials([1.0, 200.0], [1.0, 1.0])
    assert wide.ci95_low_ms == 0.0
    assert wide.ci95_high_ms is not None and wide.ci95_high_ms > 1000
    narrow = summarize_trials([100.0, 110.0], [1.0, 1.0])
    assert narrow.ci95_low_ms is not None and 41.4 < narrow.ci95_low_ms < 41.6
