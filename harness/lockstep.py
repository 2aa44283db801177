"""Lockstep A/B timing: a baseline and a candidate worker process take turns, trial by trial.

Why: on this project's 2-vCPU VM the speed of the host itself moves by a factor of two within
seconds (50-query blocks of ERNIE pico, 0.1 s each, ranged 1.7–4.3 ms in one process; episodes of a
slow host lasted tens of seconds and hit every cell timed then). Two runs timed at different
minutes, however many processes each, differ by whatever the host did in between, and no test on
the runs' own samples can tell that from a regression (``harness.compare``: 22 % between identical
runs). Timing both sides *interleaved*, a trial of one and then a trial of the other, puts both in
the same host state, and the ratio of adjacent trials cancels it. This is the randomised
interleaving that Abedi & Brecht recommend for clouds and what Chromium's Pinpoint does for A/B
jobs; here it is at the finest step that still keeps each trial whole.

How: the runner starts both worker processes of one cell together, with two semaphores between
them (``Turns``). Each process holds the turn for each of its steps (host probe, warm-up, every
trial, host probe again: the same count on both sides, as both run the same plan) and passes it
on in ABBA order, so that each side goes first in every other couple of trials and a steadily
drifting host favours neither; the parent lets the first side in, alternating which one, pair by
pair. Model loading and start-up overlap, timing never does. Each lockstep process times many
short trials (``PairTiming``: 20 of at least 0.2 s by default, not the suite's few long ones), so
adjacent trials meet nearly the same host. Each side's samples are pooled into its own run as one
more timing process, and ``raw.lockstep`` names the processes that were paired, so
``harness.compare`` can test the per-pair ratios (one draw per pair: the pair of processes, not
the trial, is the independent unit).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import multiprocessing.connection
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from portbench.errors import PortbenchError
from portbench.harness.config import CellPlan
from portbench.harness.measure import MeasureSettings
from portbench.harness.processes import pool_processes
from portbench.harness.results import CellResult, RunResults, save_results
from portbench.harness.runner import PlannedCell
from portbench.harness.scenarios import create_scenario
from portbench.harness.turns import Turns
from portbench.harness.worker import worker_main

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

ARMS = ("baseline", "candidate")


@dataclass(frozen=True)
class PairOutcome:
    """What each side's worker sent back: ("ok" | "skipped" | "input-error" | "error", payload)."""

    baseline: tuple[str, Any]
    candidate: tuple[str, Any]


def pair_cpus(pair: int, threads: int, available: Sequence[int]) -> tuple[int, ...]:
    """The CPUs both processes of lockstep pair ``pair`` are pinned to: as many as the predictor's
    ``threads`` (all of ``available`` for 0, the backend's default), a window that moves on by that
    many pair by pair, so the pairs visit every CPU. Both sides on the same CPUs: otherwise each
    process keeps to the vCPU it last ran on, and a vCPU whose physical core is busier for a minute
    makes one side of that pair slower throughout."""
    cpus = sorted(available)
    if threads <= 0 or threads >= len(cpus):
        return tuple(cpus)
    start = (pair * threads) % len(cpus)
    return tuple(sorted((cpus + cpus)[start : start + threads]))


def lockstep_pair(
    baseline: CellPlan, candidate: CellPlan, timeout_s: float, baseline_first: bool, cpus: tuple[int, ...]
) -> PairOutcome:
    """Run ``baseline`` and ``candidate`` (timing-only plans of the same cell) in two fresh worker
    processes that take turns; never raises for what the workers do. A side that fails stops the
    other at once (it would wait for its turn for ever), which then reports its partner's failure."""
    context = multiprocessing.get_context("spawn")
    first, second = context.Semaphore(0), context.Semaphore(0)
    sides = {}
    for arm, plan in zip(ARMS, (baseline, candidate), strict=True):
        goes_first = (arm == "baseline") == baseline_first
        turns = Turns(
            first if goes_first else second, second if goes_first else first, timeout_s,
            "first" if goes_first else "second", cpus,
        )
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=worker_main,
            args=(plan, sender, plan.environment, turns),
            name=f"portbench-{arm}-{plan.cell_id}",
        )
        process.start()
        sender.close()
        sides[arm] = (process, receiver)
    first.release()
    replies: dict[str, tuple[str, Any]] = {}
    try:
        waiting = {receiver: arm for arm, (_, receiver) in sides.items()}
        while waiting:
            ready = multiprocessing.connection.wait(list(waiting), timeout=timeout_s)
            if not ready:
                for arm in waiting.values():
                    replies[arm] = ("error", f"timed out after {timeout_s:g} s in lockstep")
                break
            for connection in ready:
                reply = cast("Connection[Any, Any]", connection)
                arm = waiting.pop(reply)
                try:
                    kind, payload, _ = reply.recv()
                except EOFError:
                    kind, payload = "error", f"worker exited ({sides[arm][0].exitcode})"
                replies[arm] = (kind, payload)
                if kind != "ok":
                    for other in waiting.values():
                        replies[other] = ("error", f"its lockstep partner ({arm}) failed: {payload}")
                    waiting.clear()
    finally:
        for process, receiver in sides.values():
            receiver.close()
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
    return PairOutcome(replies["baseline"], replies["candidate"])


PairRunner = Callable[[CellPlan, CellPlan, float, bool, tuple[int, ...]], PairOutcome]


@dataclass(frozen=True)
class PairTiming:
    """How each lockstep process times: ``trials`` trials of at least ``trial_s`` and one query.
    Many short trials, not the suite's few long ones: adjacent trials of the two sides then meet
    nearly the same host, and each pair's mean ratio rests on many of them."""

    trials: int = 20
    trial_s: float = 0.2

    def __post_init__(self) -> None:
        if self.trials < 2:
            raise PortbenchError(f"--trials must be at least 2, got {self.trials}")
        if not 0 < self.trial_s <= 60:
            raise PortbenchError(f"--trial-seconds must lie in (0, 60], got {self.trial_s:g}")

    def settings(self, measure: MeasureSettings) -> MeasureSettings:
        return dataclasses.replace(
            measure,
            min_queries=1,
            max_queries=max(measure.max_queries, 1),
            min_duration_s=self.trial_s,
            max_duration_s=max(measure.max_duration_s, self.trial_s),
            target_percentile=None,  # the pairs are judged on trial medians
        )


DEFAULT_PAIR_TIMING = PairTiming()


def arm_plan(plan: CellPlan, repeat: int, timing: PairTiming) -> CellPlan:
    """The plan one side runs in a pair: its own plan of the cell (its environment included), as a
    timing process with the pairs' trials."""
    return dataclasses.replace(
        plan, repeat=repeat, trials=timing.trials, measure=timing.settings(plan.measure)
    )


@dataclass
class Side:
    """One run of an A/B pair: its results (updated in place, saved after each pair), its directory,
    and its own plan of each cell (the side's environment already in it), by cell id."""

    results: RunResults
    run_dir: Path
    plans: Mapping[str, CellPlan]


def lockstep_cells(planned: Sequence[PlannedCell], sides: Sequence[Side]) -> list[PlannedCell]:
    """The cells both runs passed whose scenario can be timed in lockstep (single-stream)."""
    wanted = []
    for cell in planned:
        scenario = create_scenario(cell.plan.scenario)
        if cell.skip_reason is not None or cell.plan.mode == "accuracy" or not scenario.lockstep:
            continue
        done = [side.results.cell(cell.plan.cell_id) for side in sides]
        if all(result is not None and result.status == "passed" for result in done):
            wanted.append(cell)
    return wanted


def time_in_lockstep(
    planned: Sequence[PlannedCell],
    baseline: Side,
    candidate: Side,
    pairs: int,
    lockstep_id: str,
    timeout_s: float,
    timing: PairTiming = DEFAULT_PAIR_TIMING,
    pair_runner: PairRunner = lockstep_pair,
    started: Callable[[PlannedCell], None] | None = None,
) -> None:
    """Time every lockstep-able cell in ``pairs`` pairs of processes, round-robin over the cells as
    ``Runner._repeat_timing`` does, the starting side alternating pair by pair (so neither side is
    always the one that runs right after a wait). Each side's samples are pooled into its run as one
    more timing process, and ``raw.lockstep`` lists which processes were paired. A side that fails
    fails its cell with the reason (its partner reports "its lockstep partner failed"), keeping
    what was measured before; the cell gets no more pairs."""
    sides = (baseline, candidate)
    cells = lockstep_cells(planned, sides)
    available = sorted(os.sched_getaffinity(0))
    for pair in range(pairs):
        for cell in cells:
            cell_id = cell.plan.cell_id
            results = [side.results.cell(cell_id) for side in sides]
            if any(r is None or r.status != "passed" for r in results):
                continue
            if started is not None:
                started(cell)
            plans = [arm_plan(side.plans[cell_id], pair + 1, timing) for side in sides]
            cpus = pair_cpus(pair, cell.plan.cpu_threads, available)
            outcome = pair_runner(plans[0], plans[1], timeout_s, pair % 2 == 0, cpus)
            replies = (outcome.baseline, outcome.candidate)
            # Half a pair is pooled nowhere: each side's pairs must stay matched one to one.
            both_ok = all(kind == "ok" for kind, _ in replies)
            for arm, side, result, (kind, payload) in zip(ARMS, sides, results, replies, strict=True):
                assert result is not None
                if both_ok:
                    pool_processes(result, [CellResult.from_dict(payload)])
                    record = result.raw.setdefault(
                        "lockstep", {"id": lockstep_id, "arm": arm, "processes": [], "cpus": []}
                    )
                    record["processes"].append(len(result.raw["latency_process_sizes"]) - 1)
                    record["cpus"].append(list(cpus))
                elif kind != "ok":
                    result.status = "failed"
                    result.reason = f"lockstep pair {pair + 1} of {pairs} ({arm}): {kind}: {payload}"
                save_results(side.results, side.run_dir)
