"""Three hand-built runs from differently configured hosts, with numbers chosen so the comparison's
results can be worked out by hand (see the comments by each figure and tests/test_comparison.py).

* kunpeng: Kunpeng-920 + Ascend 910B on Kylin V10, 4 threads, Paddle 3.2.2: the baseline.
* xeon: Xeon Gold 6330 + A100 on Ubuntu 22.04, 8 threads, Paddle 3.2.2 with a flag set.
* hygon: Hygon C86 7285 on UOS 20, 4 threads, Paddle 3.1.0, CPU only.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from portbench.harness.results import (
    CellResult,
    LatencySummary,
    ModelRecord,
    RunResults,
    Throughput,
    TrialSummary,
    save_results,
)
from portbench.harness.verdict import ParityVerdict

DET_SHA = "2ad68ed2768fe6c41166a5bc64680cc9f445390acb6528da449a4db2f7b90e14"
DET_TASK = {
    "metrics": [{"name": "det_hmean", "higher_is_better": True}],
    "headline": ["det_hmean"],
    "shown": ["det_hmean"],
}


def platform(cpu: str, arch: str, os_name: str, version: str, paddle: str) -> dict[str, Any]:
    return {
        "cpu": {"vendor": cpu.split()[0], "model_name": cpu, "architecture": arch},
        "os": {
            "id": os_name.lower(),
            "name": os_name,
            "version_id": version,
            "pretty_name": f"{os_name} {version}",
        },
        "kernel": "5.10.0",
        "memory_total_bytes": 256 * 2**30,
        "python": {"version": "3.11.7", "implementation": "CPython"},
        "paddle": {"version": paddle, "commit": None},
    }


def trials(samples_per_s: Sequence[float], p50_ms: float) -> TrialSummary:
    return TrialSummary(
        trials=len(samples_per_s),
        p50_ms=tuple(p50_ms for _ in samples_per_s),
        samples_per_s=tuple(samples_per_s),
        median_p50_ms=p50_ms,
        mean_p50_ms=p50_ms,
        ci95_low_ms=p50_ms,
        ci95_high_ms=p50_ms,
        cv=0.0,
        cv_threshold=0.05,
        unstable=False,
    )


def cell(
    *,
    task: str = "det",
    workload: str = "ocr",
    model: str = "ppocrv4-mobile-det",
    backend: str = "cpu",
    precision: str = "fp32",
    scenario: str = "single-stream",
    latencies: Sequence[float] = (10.0, 11.0, 12.0, 13.0, 14.0, 15.0),
    trial_sizes: Sequence[int] = (2, 2, 2),
    samples_per_s: Sequence[float] = (100.0, 102.0, 104.0),
    device_name: str | None = None,
    threads: int = 4,
    flags: dict[str, str] | None = None,
    parity: ParityVerdict | None = None,
    status: str = "passed",
    reason: str | None = None,
    raw_extra: dict[str, Any] | None = None,
) -> CellResult:
    ordered = sorted(latencies)
    result = CellResult(
        cell_id=f"{workload}/{task}/{model}/{backend}/paddle/{precision}/{scenario}",
        workload=workload,
        task=task,
        model=model,
        backend=backend,
        precision=precision,
        scenario=scenario,
        dataset="synth-ocr-v1",
        status=status,
        reason=reason,
        device=backend,
        device_info={"name": device_name} if device_name else None,
        models=[ModelRecord(role=task, name=model, path="/m", sha256={"inference.pdmodel": DET_SHA})],
        metrics={"det_hmean": 0.9} if status == "passed" else {},
        manifest={
            "backend": backend,
            "precision": precision,
            "scenario": scenario,
            "cpu_threads": threads,
            "environment": flags or {},
        },
        parity=parity,
    )
    if status == "passed":
        result.latency_ms = LatencySummary(
            n=len(ordered),
            mean=statistics.fmean(ordered),
            min=ordered[0],
            max=ordered[-1],
            stdev=statistics.stdev(ordered),
            p50=statistics.median(ordered),
            p90=None,
            p99=None,
        )
        mean_tp = statistics.fmean(samples_per_s)
        result.throughput = Throughput(samples_per_s=mean_tp, queries_per_s=mean_tp)
        result.trials = trials(samples_per_s, statistics.median(ordered))
        result.raw = {
            "latency_ms": list(latencies),
            "latency_trial_sizes": list(trial_sizes),
            **(raw_extra or {}),
        }
    return result


def ernie_cell(**kwargs: Any) -> CellResult:
    return cell(workload="ernie", task="cls", model="ernie-3.0-mini", scenario="offline", **kwargs)


def passing(speedup: float) -> ParityVerdict:
    return ParityVerdict(verdict="pass", reason="within gates", speedup_vs_fp32=speedup)


def failing(speedup: float) -> ParityVerdict:
    return ParityVerdict(verdict="fail", reason="det_hmean dropped 0.05 (gate 0.01)", speedup_vs_fp32=speedup)


def system_stages(det_pre: Sequence[float], det_infer: Sequence[float]) -> dict[str, Any]:
    return {
        "stages_ms": {"det_preprocess": list(det_pre), "det_inference": list(det_infer), "end_to_end": [99.0]}
    }


def offline_sweep(throughputs: dict[int, float]) -> dict[str, Any]:
    return {
        "offline": [
            {
                "batch_size": b,
                "throughput": {"samples_per_s": t, "queries_per_s": t / b},
                "latency_ms": {"p50": 1000.0 * b / t},
                "latencies_ms": [1000.0 * b / t] * 3,
            }
            for b, t in throughputs.items()
        ]
    }


def run(run_id: str, plat: dict[str, Any], cells: list[CellResult]) -> RunResults:
    return RunResults(
        run_id=run_id,
        started_at="2026-12-01T10:00:00+08:00",
        portbench_version="0.1.0",
        suite="smoke",
        platform=plat,
        cells=cells,
        tasks={"ocr/det": DET_TASK},
    )


def three_hosts(model: str = "ppocrv4-mobile-det") -> list[RunResults]:
    """Per ocr/det fp32: kunpeng 100/102/104 samples/s, xeon 104/106/108 (intervals overlap: a tie at
    equal prices), hygon 50/51/52 (separate, last). ernie/cls offline: kunpeng 200/201/202 against
    100/101/102 and 100/100.5/101 (a clear winner). ocr/det int8: kunpeng passes parity at 1.5×,
    xeon is 2.1× but fails parity."""
    kunpeng = run(
        "run-kunpeng",
        platform("Kunpeng-920", "aarch64", "Kylin Linux Advanced Server", "V10", "3.2.2"),
        [
            cell(model=model, backend="npu", device_name="Ascend 910B"),
            cell(
                model=model,
                backend="npu",
                device_name="Ascend 910B",
                precision="int8",
                latencies=(6.0, 7.0, 8.0),
                trial_sizes=(1, 1, 1),
                samples_per_s=(150.0, 153.0, 156.0),
                parity=passing(1.5),
            ),
            ernie_cell(
                backend="npu",
                device_name="Ascend 910B",
                samples_per_s=(200.0, 201.0, 202.0),
                raw_extra=offline_sweep({1: 50.0, 8: 160.0, 32: 201.0}),
            ),
            cell(
                task="system",
                model="ppocrv4-mobile-system",
                backend="npu",
                device_name="Ascend 910B",
                raw_extra=system_stages([1.0, 3.0], [10.0, 12.0]),
            ),
        ],
    )
    xeon = run(
        "run-xeon",
        platform("Intel(R) Xeon(R) Gold 6330", "x86_64", "Ubuntu", "22.04", "3.2.2"),
        [
            cell(
                model=model,
                backend="gpu",
                device_name="NVIDIA A100",
                threads=8,
                flags={"FLAGS_use_cudnn": "1"},
                latencies=(9.0, 9.5, 10.0, 10.5),
                trial_sizes=(2, 2),
                samples_per_s=(104.0, 106.0, 108.0),
            ),
            cell(
                model=model,
                backend="gpu",
                device_name="NVIDIA A100",
                precision="int8",
                threads=8,
                samples_per_s=(220.0, 222.0, 224.0),
                parity=failing(2.1),
            ),
            ernie_cell(
                backend="gpu",
                device_name="NVIDIA A100",
                threads=8,
                samples_per_s=(100.0, 101.0, 102.0),
                raw_extra=offline_sweep({1: 40.0, 8: 90.0, 32: 101.0}),
            ),
            cell(
                task="system",
                model="ppocrv4-mobile-system",
                backend="gpu",
                device_name="NVIDIA A100",
                threads=8,
                raw_extra=system_stages([2.0, 2.0], [4.0, 6.0]),
            ),
        ],
    )
    hygon = run(
        "run-hygon",
        platform("Hygon C86 7285", "x86_64", "UOS", "20", "3.1.0"),
        [
            cell(model=model, samples_per_s=(50.0, 51.0, 52.0)),
            ernie_cell(
                samples_per_s=(100.0, 100.5, 101.0),
                raw_extra=offline_sweep({1: 30.0, 8: 80.0, 32: 100.5}),
            ),
            cell(task="rec", model="ppocrv4-mobile-rec", status="failed", reason="worker crashed"),
        ],
    )
    return [kunpeng, xeon, hygon]


def write_three_hosts(base: Path, model: str = "ppocrv4-mobile-det") -> list[Path]:
    dirs = []
    for results in three_hosts(model):
        directory = base / results.run_id
        directory.mkdir(parents=True)
        save_results(results, directory)
        dirs.append(directory)
    return dirs
