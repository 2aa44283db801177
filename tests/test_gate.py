"""The nightly gate: the rank test and ratio interval on raw samples, exit codes, JUnit XML, step summary."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped
from test_compare import cell, run_with, spread

from portbench.harness import ci_outputs
from portbench.harness.cli import main
from portbench.harness.compare import compare_cell, compare_runs, judge_latency, smallest_one_sided_p
from portbench.harness.results import CellResult, RunResults, save_results
from portbench.harness.verdict import ParityVerdict

pytestmark = pytest.mark.fast


def test_smallest_one_sided_p_is_one_over_the_number_of_orderings() -> None:
    # C(6, 3) = 20, C(10, 5) = 252, C(12, 6) = 924.
    assert smallest_one_sided_p(3, 3) == pytest.approx(1 / 20)
    assert smallest_one_sided_p(5, 5) == pytest.approx(1 / 252)
    assert smallest_one_sided_p(6, 6) == pytest.approx(1 / 924)


def test_exact_u_test_on_totally_separated_small_samples() -> None:
    # Every current value above every baseline value: exactly one of C(10, 5) = 252 orderings is as
    # extreme, so the exact one-sided p is 1/252; the median ratio is 22 / 12.
    judged = judge_latency([10.0, 11.0, 12.0, 13.0, 14.0], [20.0, 21.0, 22.0, 23.0, 24.0])
    assert judged.p_slower == pytest.approx(1 / 252)
    assert judged.p_faster == pytest.approx(1.0)
    assert judged.ratio == pytest.approx(22 / 12)
    assert judged.verdict == "regressed"


def test_too_few_samples_are_inconclusive_never_a_pass() -> None:
    # 3 against 3: the smallest one-sided p is 1/20 = 0.05, which can never be below alpha 0.01.
    judged = judge_latency([10.0, 10.1, 10.2], [30.0, 30.1, 30.2])
    assert judged.verdict == "inconclusive" and "too few samples (3 vs 3)" in (judged.reason or "")
    # At alpha 0.1 the same samples can be judged: 1/20 < 0.1.
    assert judge_latency([10.0, 10.1, 10.2], [30.0, 30.1, 30.2], alpha=0.1).verdict == "regressed"


def test_improvement_is_the_mirror_of_a_regression() -> None:
    # 10 / 12 = 0.833; every resampled ratio is within [10 / 12.348, 10.29 / 12] = [0.810, 0.858],
    # below 1 / 1.1 = 0.909.
    judged = judge_latency(spread(12.0), spread(10.0))
    assert judged.verdict == "improved"
    assert judged.ratio == pytest.approx(10 / 12)
    assert 0.809 <= judged.ratio_low <= judged.ratio_high <= 0.859  # type: ignore[operator]


def test_a_ratio_straddling_the_limit_is_inconclusive() -> None:
    # +10 % exactly: half the resampled ratios fall each side of the limit.
    judged = judge_latency(spread(10.0), spread(11.0))
    assert judged.verdict == "inconclusive"
    assert judged.ratio_low < 1.1 < judged.ratio_high  # type: ignore[operator]
    # A looser limit turns the same samples into "no change", a stricter one into "regressed".
    assert judge_latency(spread(10.0), spread(11.0), max_slowdown=0.2).verdict == "no change"
    assert judge_latency(spread(10.0), spread(11.0), max_slowdown=0.05).verdict == "regressed"


def test_a_clear_slowdown_beyond_the_limit_regresses_though_its_interval_reaches_below() -> None:
    # Baseline 10.0, 10.1, …, 12.9 ms (30 values, median 11.45); current the same times 1.15, so the
    # median ratio is exactly 1.15. A median of 30 such values wanders by about 0.27 ms, which makes
    # the ratio's 95 % interval roughly 1.15 ± 0.065: its low end falls below the 1.10 limit. The shift
    # (1.7 ms on a 3 ms spread) is far beyond noise for the U test, so the point estimate decides.
    baseline = [10.0 + 0.1 * i for i in range(30)]
    judged = judge_latency(baseline, [v * 1.15 for v in baseline])
    assert judged.ratio == pytest.approx(1.15)
    assert judged.p_slower is not None and judged.p_slower < 0.01
    assert 1.0 < judged.ratio_low < 1.10  # type: ignore[operator]
    assert judged.verdict == "regressed"


def test_a_ratio_beyond_the_limit_that_noise_explains_is_inconclusive() -> None:
    # Medians 15 and 18 (ratio 1.2), but 10 and 14 sit among the baseline's values: of the 36 pairs at
    # most 27 have current > baseline, and an exact one-sided p below 0.01 for 6 against 6 needs
    # nearly total separation (p = 1/924 at 36 of 36). So: not a regression, and not a pass either.
    judged = judge_latency([10.0, 12.0, 14.0, 16.0, 18.0, 20.0], [10.0, 14.0, 17.0, 19.0, 21.0, 24.0])
    assert judged.ratio == pytest.approx(18 / 15)
    assert judged.p_slower is not None and judged.p_slower > 0.01
    assert judged.verdict == "inconclusive"
    assert "not distinguishable from noise" in (judged.reason or "")


def test_lower_is_better_metrics_regress_upwards() -> None:
    tasks = {"ocr/rec": {"metrics": [{"name": "rmse", "higher_is_better": False}]}}
    before, after = cell(spread(10.0)), cell(spread(10.0))
    before.metrics, after.metrics = {"rmse": 0.10}, {"rmse": 0.12}
    worse = compare_cell(before, after, tasks=tasks)
    assert [str(p) for p in worse.problems] == ["rmse 0.1000 -> 0.1200 (+0.0200)"]
    before.metrics, after.metrics = {"rmse": 0.12}, {"rmse": 0.10}
    assert not compare_cell(before, after, tasks=tasks).regressed


def failing_parity() -> ParityVerdict:
    return ParityVerdict("fail", reason="rec_char_accuracy 0.91 below gate 0.99 of the reference")


def test_parity_that_now_fails_is_an_accuracy_regression() -> None:
    result = compare_cell(cell(spread(10.0)), cell(spread(10.0), parity=failing_parity()))
    assert result.kinds() == {"accuracy"}
    assert "parity now fails: rec_char_accuracy 0.91 below gate" in str(result.problems[0])
    # Failing already in the baseline is not news.
    assert not compare_cell(cell(spread(10.0), parity=failing_parity()),
                            cell(spread(10.0), parity=failing_parity())).regressed


def test_exit_code_precedence() -> None:
    slow = compare_runs(run_with([cell(spread(10.0))]), run_with([cell(spread(12.0))]))
    assert ci_outputs.compare_exit_code(slow) == 3
    slow_and_worse = compare_runs(
        run_with([cell(spread(10.0), metric=0.95)]), run_with([cell(spread(12.0), metric=0.90)])
    )
    assert ci_outputs.compare_exit_code(slow_and_worse) == 4
    other = cell(spread(10.0), cell_id="ernie/cls/x/cpu/paddle/fp32/single-stream")
    missing_too = compare_runs(
        run_with([cell(spread(10.0), metric=0.95), other]), run_with([cell(spread(12.0), metric=0.90)])
    )
    assert ci_outputs.compare_exit_code(missing_too) == 1


def test_run_exit_codes() -> None:
    assert ci_outputs.run_exit_code(run_with([cell(spread(10.0))])) == 0
    assert ci_outputs.run_exit_code(run_with([cell(spread(10.0), parity=failing_parity())])) == 4
    broken = cell(
        spread(10.0), status="failed", reason="timed out", cell_id="ocr/det/x/cpu/paddle/fp32/single-stream"
    )
    assert ci_outputs.run_exit_code(run_with([cell(spread(10.0), parity=failing_parity()), broken])) == 1


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
        raise SystemExit(0)
    out, err = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 0), out, err


def saved(tmp_path: Path, name: str, cells: list[CellResult]) -> str:
    save_results(run_with(cells), tmp_path / name)
    return str(tmp_path / name)


def test_compare_exit_codes_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = saved(tmp_path, "base", [cell(spread(10.0), metric=0.95)])
    same = saved(tmp_path, "same", [cell(spread(10.02), metric=0.95)])
    slow = saved(tmp_path, "slow", [cell(spread(11.5), metric=0.95)])
    worse = saved(tmp_path, "worse", [cell(spread(10.0), metric=0.90)])
    broken = saved(tmp_path, "broken", [cell(spread(10.0), metric=0.95, status="failed", reason="timed out")])
    code, out, _ = cli(["compare", base, same], capsys)
    assert code == 0 and "0 regression(s)" in out
    code, out, _ = cli(["compare", base, slow], capsys)
    assert code == 3 and "REGRESSION" in out and "median +15.0%" in out
    code, out, _ = cli(["compare", base, worse], capsys)
    assert code == 4 and "rec_char_accuracy 0.9500 -> 0.9000" in out
    code, out, _ = cli(["compare", base, broken], capsys)
    assert code == 1 and "now failed: timed out" in out


def test_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = saved(tmp_path, "base", [cell(spread(10.0))])
    torn = cell(spread(10.0))
    torn.raw["latency_trial_sizes"] = [15, 14]  # 29 claimed, 30 stored
    bad = saved(tmp_path, "bad", [torn])
    code, _, err = cli(["compare", base, bad], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not add up to the 30 latency samples" in err
    code, _, err = cli(["compare", base, base, "--alpha", "0"], capsys)
    assert code == 2 and "--alpha" in err and "Traceback" not in err
    code, _, err = cli(["compare", base, base, "--junit", str(tmp_path)], capsys)
    assert code == 2 and err == f"portbench: error: cannot write {tmp_path}: it is a directory\n"


def test_compare_junit_read_by_a_junit_parser(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [f"ocr/rec/m{i}/cpu/paddle/fp32/single-stream" for i in range(4)]
    base = saved(tmp_path, "base", [cell(spread(10.0), cell_id=i) for i in ids])
    current = saved(tmp_path, "now", [
        cell(spread(10.0), cell_id=ids[0]),  # no change: passes
        cell(spread(12.0), cell_id=ids[1]),  # +20 %: failure
        cell(spread(11.0), cell_id=ids[2]),  # +10 % on the limit: inconclusive, skipped
    ])  # ids[3] missing: error
    junit = tmp_path / "reports" / "compare.xml"
    code, _, _ = cli(["compare", base, current, "--junit", str(junit)], capsys)
    assert code == 1  # the missing cell is an infrastructure failure, and wins
    xml = JUnitXml.fromfile(str(junit))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 1, 1)
    cases = {case.name: case for case in suite}
    assert set(cases) == set(ids)
    assert cases[ids[0]].is_passed
    (failure,) = cases[ids[1]].result
    assert isinstance(failure, Failure) and failure.type == "performance"
    assert "median +20.0%" in (failure.message or "") and "p=" in (failure.message or "")
    (skipped,) = cases[ids[2]].result
    assert isinstance(skipped, Skipped) and "straddles" in (skipped.message or "")
    (error,) = cases[ids[3]].result
    assert isinstance(error, Error) and "missing from this run" in (error.message or "")
    assert all(case.classname == "portbench.cpu" for case in suite)
    assert {p.name: p.value for p in suite.properties()}["baseline_run_id"] == "r"


def test_run_junit_one_case_per_cell() -> None:
    results = run_with([
        cell(spread(10.0), cell_id="a/b/m/cpu/paddle/fp32/single-stream", duration_s=1.5),
        cell(spread(10.0), cell_id="a/b/n/cpu/paddle/fp32/single-stream", status="failed",
             reason="worker killed"),
        cell(spread(10.0), cell_id="a/b/o/cpu/paddle/int8/single-stream", parity=failing_parity(),
             duration_s=2.0),
        cell(spread(10.0), cell_id="a/b/p/cpu/paddle/bf16/single-stream", status="skipped", reason="no AMX"),
    ])
    xml = JUnitXml.fromstring(ci_outputs.run_junit(results))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 1, 1)
    assert math.isclose(suite.time, 3.5)
    kinds = {case.name: [type(r).__name__ for r in case.result] for case in suite}
    assert kinds == {
        "a/b/m/cpu/paddle/fp32/single-stream": [],
        "a/b/n/cpu/paddle/fp32/single-stream": ["Error"],
        "a/b/o/cpu/paddle/int8/single-stream": ["Failure"],
        "a/b/p/cpu/paddle/bf16/single-stream": ["Skipped"],
    }


def test_step_summary_file_and_github_append(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = "ocr/rec/m|<b>x</b>/cpu/paddle/fp32/single-stream"
    base = saved(tmp_path, "base", [cell(spread(10.0), cell_id=odd)])
    slow = saved(tmp_path, "slow", [cell(spread(12.0), cell_id=odd)])
    github = tmp_path / "github_summary.md"
    github.write_text("earlier step output\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(github))
    summary = tmp_path / "summary.md"
    code, _, _ = cli(["compare", base, slow, "--step-summary", str(summary)], capsys)
    assert code == 3
    text = summary.read_text(encoding="utf-8")
    assert "**PERFORMANCE REGRESSION** (exit 3)" in text
    row = next(line for line in text.splitlines() if "regressed" in line)
    # The pipe is escaped (one cell id, not two columns), the tag is text, not HTML.
    assert row.startswith(
        "| ocr/rec/m\\|&lt;b&gt;x&lt;/b&gt;/cpu/paddle/fp32/single-stream | regressed | +20.0% |"
    )
    assert github.read_text(encoding="utf-8") == "earlier step output\n" + text
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "no" / "such" / "dir" / "f.md"))
    code, _, err = cli(["compare", base, slow], capsys)
    assert code == 2 and err.startswith("portbench: error: cannot append to $GITHUB_STEP_SUMMARY")


def test_run_summary_counts_cells() -> None:
    results: RunResults = run_with([
        cell(spread(10.0)),
        cell(spread(10.0), cell_id="x/y/z/cpu/paddle/fp32/single-stream", status="failed",
             reason="timed out"),
    ])
    text = ci_outputs.run_summary(results)
    assert "**INFRASTRUCTURE FAILURE** (exit 1): 1 passed, 1 failed, 0 skipped" in text
    # p50: the median of spread(10.0), its 16th of 30 values, 10 * 1.015.
    assert "| x/y/z/cpu/paddle/fp32/single-stream | failed | 10.150 | – | timed out |" in text


def test_compare_judges_process_medians_and_notes_single_process_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def five_processes(scale: float) -> CellResult:
        # Five processes of six queries each, process medians 100, 102, 98, 101, 99 ms × scale.
        samples = [v * scale for v in (100.0, 102.0, 98.0, 101.0, 99.0) for _ in range(6)]
        result = cell(samples)
        result.raw["latency_trial_sizes"] = [6] * 5
        result.raw["latency_process_sizes"] = [6] * 5
        return result

    base = saved(tmp_path, "base", [five_processes(1.0)])
    slow = saved(tmp_path, "slow", [five_processes(1.15)])
    code, out, _ = cli(["compare", base, slow], capsys)
    # Every process 15 % slower: the geometric-mean ratio of the process medians is exactly 1.15.
    assert code == 3 and "process medians +15.0%" in out and "n=5/5 processes" in out
    assert "one worker process per run" not in out
    one = saved(tmp_path, "one", [cell(spread(10.0))])
    code, out, _ = cli(["compare", one, one], capsys)
    assert code == 0 and "1 cell(s) judged on queries of one worker process per run" in out


def test_normalise_host_without_probes_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = saved(tmp_path, "base", [cell(spread(10.0))])
    code, _, err = cli(["compare", base, base, "--normalise-host"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "needs a host probe for each timing process" in err and "Traceback" not in err
