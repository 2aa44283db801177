"""Peer benchmark: RapidOCR on ONNX Runtime and on Paddle beside portbench's OCR system task.

Run with ``tox -e peers`` or ``pytest -m peers tests/bench_peers.py -s`` (needs ``portbench[peers]``).
Every engine reads the same generated pages (the standard suite's set and 40 pages no built-in set
holds), is scored by portbench's end-to-end metrics and timed by portbench's measurement engine with
the standard suite's settings, each in its own process, one after another (see
:mod:`portbench.suites.ocr.peers`). portbench's side is its public run API on every runtime named in
``PORTBENCH_PEER_RUNTIMES`` (default ``paddle``); the target compares its fastest runtime at the same
accuracy with RapidOCR on ONNX Runtime.

Environment: ``PORTBENCH_PEER_RUNTIMES``, ``PORTBENCH_PEER_ENGINES``, ``PORTBENCH_PEER_DATASETS``
(``standard,unseen``), ``PORTBENCH_PEER_THREADS`` (2), ``PORTBENCH_PEER_DET_RESIZE`` (``pinned``:
RapidOCR's detector on portbench's resize; ``native``: RapidOCR's own ladder),
``PORTBENCH_PEERS_JSON=FILE`` (the table and verdicts as JSON). The speed target is reported, pass
or miss; it is asserted only with ``PORTBENCH_PEERS_ASSERT_TARGET=1``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from portbench.errors import PortbenchError
from portbench.harness.platform_info import describe_platform
from portbench.harness.suite import get_suite
from portbench.harness.workload import default_cache_dir
from portbench.suites.ocr import peers

# Accuracies every working engine reaches on these pages (portbench's FP32 run scores about 0.96
# end-to-end character accuracy); far below means a broken adapter or mis-set engine, not a slower one.
MIN_E2E_HMEAN = 0.7
MIN_E2E_CHAR_ACCURACY = 0.9


@pytest.mark.peers
def test_peer_benchmark_against_rapidocr(
    tmp_path: Path, record_property: Callable[[str, object], None], capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        config = peers.PeerConfig.from_environment(os.environ)
    except peers.PeerSetupError as error:
        pytest.fail(str(error), pytrace=False)
    for name in config.engines:
        if reason := peers.PEER_ENGINES[name].missing_reason():
            pytest.skip(reason)
    suite = get_suite("standard")
    datasets = peers.prepare_datasets(config.datasets, suite, default_cache_dir())

    results: list[peers.PeerResult] = []
    for dataset in datasets:
        # One after another, each in its own process: RapidOCR here, portbench's cells in its workers.
        for name in config.engines:
            results.append(
                peers.run_in_own_process(
                    peers.measure_rapidocr,
                    name,
                    dataset,
                    suite.measure,
                    suite.trials,
                    config.threads,
                    config.det_resize,
                )
            )
        for runtime in config.runtimes:
            out_dir = tmp_path / f"{dataset.name}-{runtime}"
            try:
                results.append(peers.measure_portbench(suite, runtime, config.threads, dataset, out_dir))
            except PortbenchError as error:  # an unknown or uninstalled runtime, a failed cell
                pytest.fail(str(error), pytrace=False)
    verdicts = peers.judge(results)

    table = peers.format_table(results, verdicts)
    with capsys.disabled():
        print(f"\npeer benchmark, {config.threads} threads, load average {os.getloadavg()}:\n{table}")
        print(f"detection resize ({config.det_resize}): {peers.DET_RESIZE_POLICIES[config.det_resize]}")
        print("remaining differences:\n- " + "\n- ".join(peers.REMAINING_DIFFERENCES))
    for verdict in verdicts:
        record_property(f"ratio_{verdict.dataset}", verdict.ratio)
        record_property(f"target_met_{verdict.dataset}", verdict.met)
    if target := os.environ.get("PORTBENCH_PEERS_JSON"):
        report = {
            "benchmark": "portbench-peers",
            "version": 1,
            "threads": config.threads,
            "measure": dataclasses.asdict(suite.measure),
            "trials": suite.trials,
            "accuracy_tolerance": peers.ACCURACY_TOLERANCE,
            "platform": describe_platform(),
            "load_average_end": list(os.getloadavg()),
            "det_resize": config.det_resize,
            "det_resize_policy": peers.DET_RESIZE_POLICIES[config.det_resize],
            "remaining_differences": list(peers.REMAINING_DIFFERENCES),
            "results": [r.to_dict() for r in results],
            "verdicts": [v.to_dict() for v in verdicts],
            "table": table,
        }
        Path(target).write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")

    expected = len(datasets) * (len(config.engines) + len(config.runtimes))
    assert len(results) == expected
    for row in results:
        assert row.pages == next(d.pages for d in datasets if d.name == row.dataset)
        assert row.latency_ms.n > 0 and row.latency_ms.p50 > 0
        assert row.metrics["e2e_hmean"] >= MIN_E2E_HMEAN, row.label
        assert row.metrics["e2e_char_accuracy"] >= MIN_E2E_CHAR_ACCURACY, row.label
    if peers.REFERENCE_ENGINE in config.engines:
        assert len(verdicts) == len(datasets)
    if os.environ.get("PORTBENCH_PEERS_ASSERT_TARGET") == "1":
        missed = [v for v in verdicts if not v.met]
        assert not missed, "target missed:\n" + table
