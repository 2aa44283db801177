"""Harness overhead: portbench's timed loop against a bare predictor loop, same predictor, one process.

Run with ``tox -e bench`` or ``pytest -m bench tests/bench_overhead.py -s``. PP-OCRv4 rec at batch 1
(input 1x3x48x320) on the CPU backend. Bare and portbench loops are interleaved, alternating which
goes first, so machine drift hits both alike; the headline is the median of the per-round ratios
(portbench time per query / bare time per query), with the ratio of the medians beside it.
A second, finer figure times portbench's loop around a query that does nothing: that is the loop's
own cost per query, divided by the bare inference time.

Nothing about speed is asserted: the figures are printed, recorded as test properties, and written
to the JSON file named by ``PORTBENCH_OVERHEAD_JSON`` when set.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from portbench.backends.base import PredictorOptions
from portbench.backends.cpu import CpuBackend
from portbench.harness.measure import MeasureSettings, single_stream
from portbench.harness.models import resolve
from portbench.harness.workload import Query
from portbench.suites.ocr.models import PPOCRV4_REC

# Many short rounds: on a shared machine the load changes within seconds, and a paired per-round
# ratio cancels what both loops of one round saw.
ROUNDS = 31
QUERIES_PER_ROUND = 20
NULL_QUERIES = 100_000


def count_based(queries: int) -> MeasureSettings:
    # Warm-up happens once before the rounds; each round is a pure count-based timed loop.
    return MeasureSettings(
        warmup_queries=0,
        min_queries=queries,
        max_queries=queries,
        min_duration_s=0.0,
        max_duration_s=1e6,
        warmup_stable_windows=0,
    )


@pytest.mark.bench
def test_timed_loop_overhead_against_bare_predictor_loop(
    record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    files, _ = resolve(PPOCRV4_REC)
    session = CpuBackend().create_session(files, PredictorOptions())
    feed = [np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 320)).astype(np.float32)]

    # The bare loop: Paddle's own handle calls, no wrapper, no per-query clock.
    predictor = session._predictor
    input_handle = predictor.get_input_handle(session.input_names[0])
    output_handles = [predictor.get_output_handle(name) for name in session.output_names]

    def bare_loop(n: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            input_handle.reshape(feed[0].shape)
            input_handle.copy_from_cpu(feed[0])
            predictor.run()
            for handle in output_handles:
                handle.copy_to_cpu()
        return (time.perf_counter_ns() - start) / n

    queries = [Query(run=lambda: session.run(feed))]

    def portbench_loop(n: int) -> float:
        measurement = single_stream(queries, count_based(n))
        # wall_s runs from before the first query to after the last: every query's loop bookkeeping
        # except the last one's is inside it.
        return measurement.wall_s * 1e9 / n

    bare_loop(30)  # first-run compile and allocator warm-up, outside every figure
    bare_ns: list[float] = []
    portbench_ns: list[float] = []
    for round_index in range(ROUNDS):
        if round_index % 2:
            portbench_ns.append(portbench_loop(QUERIES_PER_ROUND))
            bare_ns.append(bare_loop(QUERIES_PER_ROUND))
        else:
            bare_ns.append(bare_loop(QUERIES_PER_ROUND))
            portbench_ns.append(portbench_loop(QUERIES_PER_ROUND))

    null = single_stream([Query(run=lambda: None)], count_based(NULL_QUERIES))
    loop_cost_ns = null.wall_s * 1e9 / NULL_QUERIES

    bare_median = statistics.median(bare_ns)
    portbench_median = statistics.median(portbench_ns)
    per_round_ratio = [p / b for p, b in zip(portbench_ns, bare_ns, strict=True)]
    figures = {
        "model": PPOCRV4_REC.name,
        "input_shape": list(feed[0].shape),
        "rounds": ROUNDS,
        "queries_per_round": QUERIES_PER_ROUND,
        "bare_ms_per_query_median": bare_median / 1e6,
        "portbench_ms_per_query_median": portbench_median / 1e6,
        "ratio_median_of_rounds": statistics.median(per_round_ratio),
        "ratio_of_medians": portbench_median / bare_median,
        "per_round_ratio": per_round_ratio,
        "loop_cost_ns_per_query": loop_cost_ns,
        "loop_cost_fraction_of_bare_query": loop_cost_ns / bare_median,
    }
    for key in ("ratio_median_of_rounds", "ratio_of_medians", "loop_cost_ns_per_query"):
        record_property(key, figures[key])
    if target := os.environ.get("PORTBENCH_OVERHEAD_JSON"):
        Path(target).write_text(json.dumps(figures, indent=1), encoding="utf-8")
    with capsys.disabled():
        print(
            f"\nharness overhead, {PPOCRV4_REC.name} batch 1: bare {bare_median / 1e6:.3f} ms/query, "
            f"portbench {portbench_median / 1e6:.3f} ms/query, ratio {figures['ratio_median_of_rounds']:.4f} "
            f"(median of {ROUNDS} paired rounds; ratio of medians {figures['ratio_of_medians']:.4f}); "
            f"loop cost {loop_cost_ns:.0f} ns/query = {100 * loop_cost_ns / bare_median:.4f}% of a query"
        )

    assert len(bare_ns) == len(portbench_ns) == ROUNDS
