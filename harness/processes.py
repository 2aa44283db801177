"""Pooling a cell's timing from several worker processes (``suite.processes``).

Why more than one process: on this project's 2-vCPU VM the queries of one worker process agree
within a few per cent, while two identical runs, each one process, differed by up to 40 % in median
latency. The noise that matters for a run-to-run comparison lives between processes (memory layout,
which host core, what the neighbours do), so a run that wants its comparison to be judged fairly
measures it there, as pyperf does by default. The first process does everything a cell does; the
others only repeat the timed scenario, a round at a time over every cell of the run
(``Runner._repeat_timing``), so a cell's processes are minutes apart, not seconds. Their samples
are appended in process order and ``raw.latency_process_sizes`` says how many came from each, so
``harness.compare`` can test process medians instead of queries.
"""

from __future__ import annotations

from collections.abc import Sequence

from portbench.harness.measure import summarize_ms
from portbench.harness.results import CellResult, Throughput
from portbench.harness.stats import summarize_trials


def _samples_and_wall(cell: CellResult, queries: int) -> tuple[float, float]:
    """(samples, wall seconds) of one process's ``queries`` timed queries, from its throughput."""
    if cell.throughput is None or cell.throughput.queries_per_s <= 0:
        raise ValueError(f"{cell.cell_id}: a timed process without a throughput")
    wall = queries / cell.throughput.queries_per_s
    return cell.throughput.samples_per_s * wall, wall


def pool_processes(primary: CellResult, repeats: Sequence[CellResult]) -> None:
    """Fold the repeat processes' single-stream timing into ``primary`` in place (``primary`` may
    already pool earlier processes): latencies and trials appended in order; the headline latency
    summary, throughput and trial statistics taken over all of them. Energy, audits, stages and
    placement stay the first process's own."""
    if not repeats:
        return
    cells = [primary, *repeats]
    latencies: list[float] = []
    trial_sizes: list[int] = []
    process_sizes: list[int] = []
    probes: list[object] = []
    p50s: list[float] = []
    rates: list[float] = []
    total_samples = total_wall = 0.0
    for cell in cells:
        samples = [float(v) for v in cell.raw.get("latency_ms") or []]
        if not samples or cell.trials is None:
            raise ValueError(f"{cell.cell_id}: a timed process kept no latency samples or trials")
        latencies += samples
        trial_sizes += list(cell.raw.get("latency_trial_sizes") or [len(samples)])
        # The primary may already hold earlier rounds' processes: pooling is done a round at a time.
        process_sizes += list(cell.raw.get("latency_process_sizes") or [len(samples)])
        probes += list(cell.raw.get("host_probe") or [None])
        p50s += cell.trials.p50_ms
        rates += cell.trials.samples_per_s
        samples_done, wall = _samples_and_wall(cell, len(samples))
        total_samples += samples_done
        total_wall += wall
    primary.raw["latency_ms"] = latencies
    primary.raw["latency_trial_sizes"] = trial_sizes
    primary.raw["latency_process_sizes"] = process_sizes
    if any(probe is not None for probe in probes):
        primary.raw["host_probe"] = probes  # one per process, None where a process kept none
    primary.latency_ms = summarize_ms(latencies)
    primary.throughput = Throughput(
        samples_per_s=total_samples / total_wall, queries_per_s=len(latencies) / total_wall
    )
    assert primary.trials is not None
    primary.trials = summarize_trials(p50s, rates, primary.trials.cv_threshold)
