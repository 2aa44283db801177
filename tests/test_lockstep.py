"""Lockstep A/B timing (``portbench ab``): turns between two processes, pooling, and the paired verdict."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_compare import cell
from test_processes import _trials

from portbench.errors import PortbenchError
from portbench.harness.compare import compare_cell, judge_lockstep
from portbench.harness.lockstep import pair_cpus
from portbench.harness.measure import MeasureSettings, run_trials
from portbench.harness.results import CellResult, LatencySummary, Throughput, load_results, validate_document
from portbench.harness.turns import LockstepTimeout, Turns, owner_of_turn, turn_of_step
from portbench.harness.workload import Query

# ---------------------------------------------------------------------------------------- turns


@pytest.mark.fast
def test_run_trials_holds_a_turn_for_the_warm_up_and_for_each_trial() -> None:
    events: list[str] = []

    @contextmanager
    def turn() -> Iterator[None]:
        events.append("take")
        yield
        events.append("give")

    queries = [Query(run=lambda: events.append("q"))]
    settings = MeasureSettings(
        warmup_queries=1, min_queries=2, max_queries=2, min_duration_s=0.0, max_duration_s=10.0,
        warmup_stable_windows=0,
    )
    run_trials(queries, settings, trials=3, turn=turn)
    # One warm-up query, then three trials of two queries, each inside its own turn, then the
    # summary in one more: no query ever runs while the partner could hold the turn.
    assert events == ["take", "q", "give"] + ["take", "q", "q", "give"] * 3 + ["take", "give"]


def _take_turns(name: int, turns: Turns, steps: int, log: Any, length: Any) -> None:
    for _ in range(steps):
        with turns.turn():
            # Unlocked on purpose: only the turn keeps the two writers apart.
            log[length.value] = name
            length.value += 1


@pytest.mark.fast
def test_two_processes_with_crossed_semaphores_take_turns_in_abba_order() -> None:
    context = multiprocessing.get_context("spawn")
    first, second = context.Semaphore(0), context.Semaphore(0)
    log, length = context.Array("i", 8, lock=False), context.Value("i", 0, lock=False)
    workers = [
        context.Process(target=_take_turns, args=(1, Turns(first, second, 30.0, "first"), 4, log, length)),
        context.Process(target=_take_turns, args=(2, Turns(second, first, 30.0, "second"), 4, log, length)),
    ]
    for worker in workers:
        worker.start()
    first.release()  # process 1 starts
    for worker in workers:
        worker.join(60)
    assert all(worker.exitcode == 0 for worker in workers)
    assert length.value == 8
    assert list(log) == [1, 2, 2, 1, 1, 2, 2, 1]


@pytest.mark.fast
def test_abba_turn_numbers_by_hand() -> None:
    # Order of turns: F S S F F S S F ...
    assert [turn_of_step(k, "first") for k in range(4)] == [0, 3, 4, 7]
    assert [turn_of_step(k, "second") for k in range(4)] == [1, 2, 5, 6]
    assert [owner_of_turn(t) for t in range(8)] == ["first", "second", "second", "first"] * 2


@pytest.mark.fast
def test_both_sides_of_a_pair_share_cpus_that_move_on_pair_by_pair() -> None:
    # One thread on four CPUs: pairs on CPU 0, 1, 2, 3, then 0 again.
    assert [pair_cpus(k, 1, [0, 1, 2, 3]) for k in range(5)] == [(0,), (1,), (2,), (3,), (0,)]
    # Three threads on four CPUs: windows 0-2, 3-0-1 (wrapping), 2-3-0.
    assert [pair_cpus(k, 3, [0, 1, 2, 3]) for k in range(3)] == [(0, 1, 2), (0, 1, 3), (0, 2, 3)]
    # The backend's default threads, or as many threads as CPUs: every CPU, unpinned in effect.
    assert pair_cpus(4, 0, [3, 1]) == (1, 3) == pair_cpus(0, 2, [1, 3])


@pytest.mark.fast
def test_a_turn_never_handed_over_times_out_and_a_failing_step_keeps_the_turn() -> None:
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Semaphore(0), context.Semaphore(0)
    with pytest.raises(LockstepTimeout, match=r"over 0\.05 s"), Turns(mine, theirs, 0.05).turn():
        pass
    mine.release()
    with pytest.raises(RuntimeError), Turns(mine, theirs, 1.0).turn():
        raise RuntimeError("the step failed")
    # The partner must not be let in to time alone while this side dies.
    assert not theirs.acquire(timeout=0.01)


# ------------------------------------------------------------------------------ paired verdict


def _logs(*ratios: float) -> list[float]:
    return [math.log(r) for r in ratios]


@pytest.mark.fast
def test_five_pairs_of_a_15_percent_slowdown_regress_with_the_hand_computed_interval() -> None:
    # Pair means of the log ratios: 0.15 + (-0.01, 0, 0.01, -0.02, 0.02); SD 0.0158, SE 0.00707,
    # t(0.975, 4) = 2.776, so the interval is 0.15 ± 0.0196 in logs.
    offsets = (-0.01, 0.0, 0.01, -0.02, 0.02)
    pairs = [[0.15 + d - 0.05, 0.15 + d + 0.05] for d in offsets]  # the trials differ, the means do not
    judged = judge_lockstep(pairs)
    assert judged.verdict == "regressed" and judged.unit == "lockstep pairs"
    assert judged.baseline_n == judged.current_n == 5
    assert judged.ratio == pytest.approx(math.exp(0.15))
    assert judged.ratio_low == pytest.approx(math.exp(0.15 - 0.01963), rel=1e-3)
    assert judged.ratio_high == pytest.approx(math.exp(0.15 + 0.01963), rel=1e-3)
    assert judged.p_slower is not None and judged.p_slower < 1e-4
    assert "n=5/5 lockstep pairs" in judged.describe()


@pytest.mark.fast
def test_identical_sides_are_no_change_and_swapping_them_mirrors_the_ratio() -> None:
    pairs = [[d] for d in (0.02, -0.01, 0.0, 0.01, -0.02)]  # mean 0, interval ± 0.0196
    judged = judge_lockstep(pairs)
    assert judged.verdict == "no change"
    assert judged.ratio == pytest.approx(1.0)
    mirrored = judge_lockstep([[-v for v in pair] for pair in pairs])
    assert mirrored.ratio_low == pytest.approx(1 / (judged.ratio_high or 0))


@pytest.mark.fast
def test_a_wide_spread_is_inconclusive_and_names_the_pairs_it_would_take() -> None:
    # Spread between pairs equal to the effect (log 1.1): the smallest n with
    # n >= (t(0.99, n-1) + t(0.90, n-1))^2 is 16 (n = 15: (2.624 + 1.345)^2 = 15.75 > 15;
    # n = 16: (2.602 + 1.341)^2 = 15.55 <= 16), from the printed t table.
    effect = math.log(1.1)
    pairs = [[0.05 + effect * z] for z in (-1.0, 1.0, -1.0, 1.0, 0.0)]
    spread = effect * math.sqrt(4 / 4)  # deviations ±1, ±1, 0: sum of squares 4, over n-1 = 4
    judged = judge_lockstep(pairs)
    assert judged.verdict == "inconclusive"
    assert judged.reason is not None and f"{spread:.1%}" in judged.reason
    assert "about 16 pairs (--pairs 16)" in judged.reason


@pytest.mark.fast
def test_one_pair_judges_its_trials_and_says_it_cannot_see_a_slow_process() -> None:
    judged = judge_lockstep([_logs(1.30, 1.32, 1.28, 1.31, 1.29)])
    assert judged.baseline_n == 1 and judged.verdict == "regressed"
    assert judged.reason is not None and "one lockstep pair" in judged.reason


# -------------------------------------------------------------------- lockstep data in results


def _lockstep_cell(arm: str, pairs: list[list[float]], lockstep_id: str = "ab-1") -> CellResult:
    """A cell whose process 0 is its own run's timing (unpaired, 50 ms: far from the pairs, so any
    use of it shows) and processes 1.. are lockstep pairs; each trial is three samples around its
    median m: m * 0.99, m, m * 1.01."""
    processes = [[[50.0, 50.0, 50.0]]] + [[[m * 0.99, m, m * 1.01] for m in pair] for pair in pairs]
    samples = [v for process in processes for trial in process for v in trial]
    result = cell(samples)
    result.raw["latency_trial_sizes"] = [len(trial) for process in processes for trial in process]
    result.raw["latency_process_sizes"] = [sum(len(t) for t in process) for process in processes]
    result.raw["lockstep"] = {"id": lockstep_id, "arm": arm, "processes": list(range(1, len(processes)))}
    return result


BASE_PAIRS = [[10.0, 12.0], [11.0, 9.0], [10.0, 10.0], [12.0, 11.0], [9.0, 10.0]]


@pytest.mark.fast
def test_compare_cell_judges_adjacent_trials_of_each_pair_and_ignores_unpaired_processes() -> None:
    # Trial by trial the candidate is 1.2/1.1 (pair 1), 1.1/1.2, 1.15/1.15, 1.16/1.14, 1.14/1.16 times
    # the baseline, however much the baseline itself moves: pair means of the logs are close to
    # log 1.15, and the geometric mean of all ten ratios is the verdict's ratio.
    ratios = [[1.2, 1.1], [1.1, 1.2], [1.15, 1.15], [1.16, 1.14], [1.14, 1.16]]
    current = [
        [b * r for b, r in zip(base, ratio, strict=True)]
        for base, ratio in zip(BASE_PAIRS, ratios, strict=True)
    ]
    compared = compare_cell(_lockstep_cell("baseline", BASE_PAIRS), _lockstep_cell("candidate", current))
    judged = compared.speed
    assert judged is not None and judged.unit == "lockstep pairs" and judged.baseline_n == 5
    expected = math.exp(sum(math.log(r) for pair in ratios for r in pair) / 10)
    assert judged.ratio == pytest.approx(expected)
    assert judged.verdict == "regressed" and [p.kind for p in compared.problems] == ["performance"]


@pytest.mark.fast
def test_lockstep_data_that_does_not_pair_is_a_clear_error_or_ignored() -> None:
    base = _lockstep_cell("baseline", BASE_PAIRS)
    with pytest.raises(PortbenchError, match="both runs are the baseline side"):
        compare_cell(base, _lockstep_cell("baseline", BASE_PAIRS))
    with pytest.raises(PortbenchError, match="kept 5 and 4 lockstep processes"):
        compare_cell(base, _lockstep_cell("candidate", BASE_PAIRS[:4]))
    # Timed in different A/B runs: not paired; the per-process test applies instead.
    other = compare_cell(base, _lockstep_cell("candidate", BASE_PAIRS, lockstep_id="ab-2")).speed
    assert other is not None and other.unit == "processes"


@pytest.mark.fast
def test_a_candidate_that_failed_in_a_pair_is_an_infrastructure_problem_not_a_pairing_error() -> None:
    failed = _lockstep_cell("candidate", BASE_PAIRS[:2])
    failed.status, failed.reason = "failed", "lockstep pair 3 of 5 (candidate): error: worker exited (-9)"
    compared = compare_cell(_lockstep_cell("baseline", BASE_PAIRS), failed)
    assert compared.speed is None
    assert [p.kind for p in compared.problems] == ["infrastructure"]


# -------------------------------------------------------------------------- the A/B run itself


def _fake_result(plan: Any, value: float) -> CellResult:
    from portbench.harness.worker import new_cell_result

    result = new_cell_result(plan, "passed")
    result.raw = {"latency_ms": [value] * 4, "latency_trial_sizes": [2, 2]}
    result.latency_ms = LatencySummary(n=4, mean=value, min=value, max=value, stdev=0.0, p50=value,
                                       p90=value, p99=None)
    result.throughput = Throughput(samples_per_s=1000 / value, queries_per_s=1000 / value)
    result.trials = _trials((value, value), (1000 / value, 1000 / value))
    return result


@pytest.mark.fast
def test_execute_ab_pairs_every_cell_round_robin_and_a_failed_pair_keeps_what_was_measured(
    tmp_path: Path,
) -> None:
    from portbench.backends.base import Precision
    from portbench.harness import api
    from portbench.harness.config import RunOptions
    from portbench.harness.lockstep import PairOutcome
    from portbench.harness.runner import CellOutcome
    from portbench.harness.suite import get_suite

    suite = get_suite("smoke", [])
    options = RunOptions(
        suite="smoke", backends=("cpu",), precisions=(Precision.FP32,), cache_dir=tmp_path / "cache",
        only=("ernie/",), mode="performance",
    )
    plans = [api.plan_run(suite, options, tmp_path / side) for side in ("baseline", "candidate")]
    ids = [c.plan.cell_id for c in plans[0].cells]
    assert len(ids) == 2
    full_runs: list[tuple[str, str | None]] = []

    def cell_runner(plan, timeout_s):  # type: ignore[no-untyped-def]
        full_runs.append((plan.cell_id, plan.environment.get("SIDE")))
        return CellOutcome(_fake_result(plan, 10.0))

    pairs_run: list[tuple[str, int, bool, str | None, str | None]] = []

    def pair_runner(baseline, candidate, timeout_s, baseline_first, cpus):  # type: ignore[no-untyped-def]
        pairs_run.append((baseline.cell_id, baseline.repeat, baseline_first,
                          baseline.environment.get("SIDE"), candidate.environment.get("SIDE")))
        assert baseline.environment.get("ONLY_BASELINE") == "1"
        assert "ONLY_BASELINE" not in candidate.environment  # one side's environment stays its own
        if baseline.cell_id == ids[1] and baseline.repeat == 2:
            killed = ("error", "worker exited (-9)")
            return PairOutcome(("ok", _fake_result(baseline, 10.0).to_dict()), killed)
        return PairOutcome(
            ("ok", _fake_result(baseline, 10.0).to_dict()),
            ("ok", _fake_result(candidate, 11.5).to_dict()),
        )

    api.execute_ab(
        plans[0], plans[1], ({"SIDE": "A", "ONLY_BASELINE": "1"}, {"SIDE": "B"}), 3,
        cell_runner=cell_runner, pair_runner=pair_runner,
    )
    # Each side's own run first, in its own environment; then the pairs, round-robin over the
    # cells, the first side alternating pair by pair; the failed cell gets no third pair.
    assert full_runs == [(ids[0], "A"), (ids[1], "A"), (ids[0], "B"), (ids[1], "B")]
    assert pairs_run == [
        (ids[0], 1, True, "A", "B"), (ids[1], 1, True, "A", "B"),
        (ids[0], 2, False, "A", "B"), (ids[1], 2, False, "A", "B"),
        (ids[0], 3, True, "A", "B"),
    ]
    base, cand = (
        {c.cell_id: c for c in load_results(tmp_path / side).cells} for side in ("baseline", "candidate")
    )
    for document in (tmp_path / "baseline", tmp_path / "candidate"):
        validate_document(json.loads((document / "results.json").read_text(encoding="utf-8")))
    good_base, good_cand = base[ids[0]], cand[ids[0]]
    assert good_base.raw["lockstep"]["arm"] == "baseline" and good_cand.raw["lockstep"]["arm"] == "candidate"
    assert good_base.raw["lockstep"]["id"] == good_cand.raw["lockstep"]["id"]
    assert good_cand.raw["lockstep"]["processes"] == [1, 2, 3]
    assert good_cand.raw["latency_process_sizes"] == [4, 4, 4, 4]
    # The second cell: the candidate failed in pair 2 and says so; the baseline's half of that pair
    # is pooled nowhere, so both sides keep exactly one matched pair.
    assert cand[ids[1]].status == "failed"
    assert "lockstep pair 2 of 3 (candidate)" in (cand[ids[1]].reason or "")
    assert "worker exited (-9)" in (cand[ids[1]].reason or "")
    assert base[ids[1]].status == "passed"
    assert base[ids[1]].raw["lockstep"]["processes"] == [1] == cand[ids[1]].raw["lockstep"]["processes"]


# ------------------------------------------------------------------------------------ the CLI


def _ab(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "ab", *args], capture_output=True, text=True,
        timeout=600, cwd=tmp_path,
    )


@pytest.mark.fast
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--candidate-env", "NOEQUALS"], "--candidate-env 'NOEQUALS': expected NAME=VALUE"),
        (["--baseline-env", "1X=2"], "--baseline-env '1X=2': expected NAME=VALUE"),
        (["--pairs", "0"], "--pairs"),
        (["--trials", "1"], "--trials"),
        (["--trial-seconds", "0"], "--trial-seconds"),
        (["--candidate-env", "PYTHONPATH=/opt/other"], "--candidate-env PYTHONPATH: read only when"),
    ],
)
def test_ab_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = _ab([*args, "--out", str(tmp_path / "out")], tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.fast
def test_ab_refuses_an_out_directory_that_holds_a_run(tmp_path: Path) -> None:
    (tmp_path / "out" / "candidate").mkdir(parents=True)
    (tmp_path / "out" / "candidate" / "results.json").write_text("{}", encoding="utf-8")
    done = _ab(["--out", str(tmp_path / "out")], tmp_path)
    assert done.returncode == 2
    assert "already holds a run" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert (tmp_path / "out" / "candidate" / "results.json").read_text(encoding="utf-8") == "{}"


def test_ab_on_the_real_ernie_cell_pairs_two_processes_and_passes(tmp_path: Path, cache_dir: Path) -> None:
    """Two real lockstep pairs of the synthetic ERNIE cell, identical sides but for an unused
    variable: both runs valid, the pairs recorded on both sides, and no regression."""
    out = tmp_path / "ab"
    done = _ab(
        [
            "--only", "ernie/perf", "--threads", "1", "--pairs", "2", "--set", "suite.trials=3",
            "--trials", "4", "--trial-seconds", "0.05",
            "--candidate-env", "PORTBENCH_AB_TEST=1", "--cache-dir", str(cache_dir), "--out", str(out),
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "REGRESSION" not in done.stdout
    sides = {}
    for side in ("baseline", "candidate"):
        document = json.loads((out / side / "results.json").read_text(encoding="utf-8"))
        validate_document(document)
        (sides[side],) = document["cells"]
    base, cand = sides["baseline"]["raw"], sides["candidate"]["raw"]
    assert base["lockstep"]["id"] == cand["lockstep"]["id"]
    assert (base["lockstep"]["arm"], cand["lockstep"]["arm"]) == ("baseline", "candidate")
    # Its own run's timing process (the suite's three trials), then one per pair (four trials each).
    assert base["lockstep"]["processes"] == [1, 2] == cand["lockstep"]["processes"]
    assert len(base["latency_process_sizes"]) == 3 == len(cand["latency_process_sizes"])
    assert len(base["latency_trial_sizes"]) == 3 + 2 * 4 == len(cand["latency_trial_sizes"])
    # One thread: both sides of each pair pinned to the same single CPU, the next pair to the next.
    available = sorted(os.sched_getaffinity(0))
    expected_cpus = [[available[0]], [available[1 % len(available)]]]
    assert base["lockstep"]["cpus"] == cand["lockstep"]["cpus"] == expected_cpus
    # compare finds the pairs again (its printed lines name only cells outside the limits).
    from portbench.harness.compare import compare_runs

    (compared,) = compare_runs(load_results(out / "baseline"), load_results(out / "candidate")).cells
    assert compared.speed is not None and compared.speed.unit == "lockstep pairs"
    assert compared.speed.baseline_n == compared.speed.current_n == 2
