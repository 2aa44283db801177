"""The FP32-exclusion selection both INT8 routes (Paddle PTQ, ONNX Runtime QDQ) share, on a
hand-built sensitivity table."""

from __future__ import annotations

import pytest

from portbench.harness.quantize import QuantizationError, keep_fp32_until_passing

# Sensitivity (higher = worse under INT8) and what keeping each op in FP32 gives back, by hand:
# all-INT8 scores 0.90; "b" restores 0.05, "c" 0.04, "a" 0.01. Gate 0.98 needs b and c, in that order.
TABLE = [("a", 0.1), ("b", 0.5), ("c", 0.3)]
GAIN = {"a": 0.01, "b": 0.05, "c": 0.04}


def scored(kept: tuple[str, ...]) -> float:
    return 0.90 + sum(GAIN[name] for name in kept)


@pytest.mark.fast
def test_selection_keeps_the_most_sensitive_ops_until_the_gate_passes() -> None:
    kept, trials = keep_fp32_until_passing(lambda: TABLE, (), scored, 0.98, max_kept=3)
    assert kept == ("b", "c")
    assert [t.kept_fp32 for t in trials] == [(), ("b",), ("b", "c")]
    assert [t.passed for t in trials] == [False, False, True]
    assert trials[-1].metric == pytest.approx(0.99)


@pytest.mark.fast
def test_selection_stops_at_its_budget_and_reports_the_miss() -> None:
    kept, trials = keep_fp32_until_passing(lambda: TABLE, (), scored, 0.98, max_kept=1)
    assert kept == ("b",)
    assert not trials[-1].passed and trials[-1].metric == pytest.approx(0.95)


@pytest.mark.fast
def test_selection_ranks_only_when_needed_and_skips_ops_already_kept() -> None:
    def never() -> list[tuple[str, float]]:
        raise AssertionError("ranking computed although the first model passed")

    kept, trials = keep_fp32_until_passing(never, (), scored, 0.90, max_kept=3)
    assert kept == () and len(trials) == 1 and trials[0].passed
    kept, _ = keep_fp32_until_passing(lambda: TABLE, ("b",), scored, 0.99, max_kept=3)
    assert kept == ("b", "c")  # "b" is not tried twice


@pytest.mark.fast
def test_selection_refuses_a_negative_budget() -> None:
    with pytest.raises(QuantizationError, match="must not be negative"):
        keep_fp32_until_passing(lambda: TABLE, (), scored, 0.9, max_kept=-1)
