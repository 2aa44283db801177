"""Several runs as pandas frames: the one place comparisons (HTML, CSV, Parquet, terminal) get their
numbers from.

* :func:`cells_frame`: tidy, one row per run × cell (the columns are documented in README "Comparing
  runs"); ``key`` columns identify a cell across runs: workload × task × model × runtime × precision
  × scenario.
* :func:`wide_frame`: the same keyed rows, one column group per platform.
* :func:`samples_frame`: long, one row per raw latency sample.
* :func:`manifest_differences`: settings (threads, Paddle build, flags) that differ between runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from portbench.errors import PortbenchError
from portbench.harness.reporting import LabelledRun
from portbench.harness.results import CellResult
from portbench.harness.stats import mean_ci95

KEY = ["workload", "task", "model", "runtime", "precision", "scenario"]
# Manifest entries that are part of the key or differ by nature (every run has its own): not a
# difference worth warning about.
MANIFEST_IGNORED = {"backend", "runtime", "precision", "scenario"}
LOWER_PRECISIONS = ("int8", "fp16", "bf16")


def key_values(cell: CellResult) -> dict[str, Any]:
    """The cell's comparison key. ``model`` is the model as the cell id names it, with the suite's
    label (``ernie-sentiment@s64-b8``): two cells of one model at other batch sizes or sequence
    lengths are different rows, never one row that keeps whichever came first."""
    values = {k: getattr(cell, k) for k in KEY}
    parts = cell.cell_id.split("/")
    # workload/task/MODEL/backend/runtime/precision/scenario; a model label may itself hold a "/".
    if len(parts) >= 7 and parts[0] == cell.workload and parts[1] == cell.task:
        values["model"] = "/".join(parts[2:-4])
    return values


def throughput_interval(cell: CellResult) -> tuple[float, float] | None:
    """95% interval of the mean throughput over the cell's timed trials (Student's t, as the trial
    latency interval is); None with a single trial."""
    if cell.trials is None:
        return None
    interval = mean_ci95(cell.trials.samples_per_s)
    return (max(0.0, interval[0]), interval[1]) if interval else None


def model_sha256(cell: CellResult) -> str:
    """Every model file digest, ``model/file=sha256`` joined by ``;`` in a fixed order."""
    return ";".join(
        f"{m.name}/{name}={digest}" for m in cell.models for name, digest in sorted(m.sha256.items())
    )


def platform_columns(run: LabelledRun) -> dict[str, Any]:
    platform = run.results.platform
    cpu = platform.get("cpu") or {}
    os_info = platform.get("os") or {}
    paddle = platform.get("paddle") or {}
    return {
        "platform": run.label,
        "run_id": run.results.run_id,
        "run_dir": str(run.path),
        "schema_version": run.results.schema_version,
        "started_at": run.results.started_at,
        "portbench_version": run.results.portbench_version,
        "cpu_model": cpu.get("model_name"),
        "cpu_architecture": cpu.get("architecture"),
        "os": os_info.get("pretty_name") or os_info.get("name"),
        "kernel": platform.get("kernel"),
        "paddle_version": paddle.get("version"),
    }


def _column_group(run: LabelledRun, cell: CellResult) -> str:
    """The platform's column group; a run that measured one key on two backends gets one per backend."""
    backends = {c.backend for c in run.results.cells}
    return run.label if len(backends) == 1 else f"{run.label} [{cell.backend}]"


def cells_frame(runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """One row per run × cell; a ``metric_<name>`` column per task metric seen in any run."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        base = platform_columns(run)
        for cell in run.results.cells:
            latency = cell.latency_ms
            interval = throughput_interval(cell)
            parity = cell.parity
            row: dict[str, Any] = {
                **base,
                "column": _column_group(run, cell),
                "cell_id": cell.cell_id,
                **key_values(cell),
                "backend": cell.backend,
                "device": cell.device or (cell.device_info or {}).get("name"),
                "accelerator": (cell.device_info or {}).get("name") if cell.backend != "cpu" else None,
                "dataset": cell.dataset,
                "status": cell.status,
                "reason": cell.reason,
                "cpu_threads": cell.manifest.get("cpu_threads"),
                "latency_n": latency.n if latency else None,
                "mean_ms": latency.mean if latency else None,
                "p50_ms": latency.p50 if latency else None,
                "p90_ms": latency.p90 if latency else None,
                "p99_ms": latency.p99 if latency else None,
                "throughput_samples_per_s": cell.throughput.samples_per_s if cell.throughput else None,
                "throughput_queries_per_s": cell.throughput.queries_per_s if cell.throughput else None,
                "throughput_ci95_low": interval[0] if interval else None,
                "throughput_ci95_high": interval[1] if interval else None,
                "trials": cell.trials.trials if cell.trials else None,
                "unstable": cell.trials.unstable if cell.trials else None,
                "parity_verdict": parity.verdict if parity else None,
                "parity_reason": parity.reason if parity else None,
                "speedup_vs_fp32": parity.speedup_vs_fp32 if parity else None,
                "model_sha256": model_sha256(cell),
            }
            row.update({f"metric_{name}": value for name, value in cell.metrics.items()})
            rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise PortbenchError("the compared runs hold no cells")
    return frame


def with_baseline_speedup(frame: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Adds ``speedup_vs_baseline``: throughput over the baseline platform's for the same key (None
    where either side has no throughput). The baseline's own cells read 1.0."""
    base = (
        frame[frame["platform"] == baseline].drop_duplicates(KEY).set_index(KEY)["throughput_samples_per_s"]
    )
    out = frame.copy()
    reference = [base.get(tuple(row), None) for row in out[KEY].itertuples(index=False)]
    out["speedup_vs_baseline"] = [
        (value / ref) if _number(value) and ref is not None and _number(ref) and ref > 0 else None
        for value, ref in zip(out["throughput_samples_per_s"], reference, strict=True)
    ]
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def wide_frame(
    frame: pd.DataFrame, values: Sequence[str] = ("p50_ms", "throughput_samples_per_s")
) -> pd.DataFrame:
    """Rows keyed by workload × task × model × runtime × precision × scenario; one column group per platform
    (``column``), each holding ``values``."""
    wide = frame.pivot_table(index=KEY, columns="column", values=list(values), aggfunc="first")
    wide = wide.swaplevel(0, 1, axis=1)
    order = list(dict.fromkeys(frame["column"]))
    return wide.reindex(columns=pd.MultiIndex.from_product([order, list(values)]))


def samples_frame(runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """One row per raw latency sample: the headline loop's (``batch_size`` empty, ``trial`` from the
    stored trial sizes) and each offline batch size's."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        for cell in run.results.cells:
            common = {
                "platform": run.label,
                "run_id": run.results.run_id,
                "cell_id": cell.cell_id,
                **key_values(cell),
                "backend": cell.backend,
            }
            latencies = cell.raw.get("latency_ms") or []
            trials = _trial_numbers(cell.raw.get("latency_trial_sizes"), len(latencies))
            process_sizes = cell.raw.get("latency_process_sizes", [len(latencies)])
            processes = _trial_numbers(process_sizes, len(latencies))
            for index, (value, trial, process) in enumerate(zip(latencies, trials, processes, strict=True)):
                rows.append(
                    {
                        **common,
                        "loop": "headline",
                        "batch_size": None,
                        "process": process,
                        "trial": trial,
                        "iteration": index,
                        "latency_ms": float(value),
                    }
                )
            for sweep in cell.raw.get("offline") or []:
                for index, value in enumerate(sweep.get("latencies_ms") or []):
                    rows.append(
                        {
                            **common,
                            "loop": "offline",
                            "batch_size": sweep.get("batch_size"),
                            "process": None,
                            "trial": None,
                            "iteration": index,
                            "latency_ms": float(value),
                        }
                    )
    columns = [
        "platform",
        "run_id",
        "cell_id",
        *KEY,
        "backend",
        "loop",
        "batch_size",
        "process",
        "trial",
        "iteration",
        "latency_ms",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["batch_size"] = frame["batch_size"].astype("Int64")
    frame["trial"] = frame["trial"].astype("Int64")
    frame["process"] = frame["process"].astype("Int64")
    return frame


def _trial_numbers(sizes: Any, total: int) -> list[int | None]:
    """Trial (or worker process) number of each pooled sample, from the stored sizes; None for all
    when the sizes do not add up to the pool."""
    if not isinstance(sizes, list) or sum(int(s) for s in sizes) != total:
        return [None] * total
    return [trial for trial, size in enumerate(sizes, start=1) for _ in range(int(size))]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): json.dumps(value, sort_keys=True) if isinstance(value, list) else value}


def manifest_differences(runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """Settings that differ between runs, for cells of the same key: one row per (key, setting),
    one column per platform with its value ("(absent)" where a run does not record it)."""
    by_key: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for run in runs:
        for cell in run.results.cells:
            if not cell.manifest:
                continue
            key = tuple(key_values(cell).values())
            flat = {k: v for k, v in _flatten(cell.manifest).items() if k not in MANIFEST_IGNORED}
            by_key.setdefault(key, {})[_column_group(run, cell)] = flat
    rows: list[dict[str, Any]] = []
    for key, per_platform in by_key.items():
        if len(per_platform) < 2:
            continue
        settings = sorted({name for flat in per_platform.values() for name in flat})
        for setting in settings:
            values = {p: flat.get(setting, "(absent)") for p, flat in per_platform.items()}
            if len({json.dumps(v, sort_keys=True, default=str) for v in values.values()}) > 1:
                rows.append(
                    {
                        **dict(zip(KEY, key, strict=True)),
                        "setting": setting,
                        **{p: _text(v) for p, v in values.items()},
                    }
                )
    return pd.DataFrame(rows)


def _text(value: Any) -> str:
    return "null" if value is None else str(value)


def stages_frame(runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """Mean time (ms) of each pipeline stage, per platform × cell, from the raw stage samples (the
    stored summary where a run kept no raw ones). ``inference_*`` (the separately timed
    host-to-device / compute / device-to-host split) and ``end_to_end`` (a total) are marked
    ``part_of_pipeline=False`` so a stacked bar does not count them twice."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        for cell in run.results.cells:
            raw = cell.raw.get("stages_ms") or {}
            names = list(dict.fromkeys([*raw, *cell.stages_ms]))
            for stage in names:
                values = raw.get(stage)
                if values:
                    mean = sum(float(v) for v in values) / len(values)
                elif stage in cell.stages_ms:
                    mean = cell.stages_ms[stage].mean
                else:
                    continue
                rows.append(
                    {
                        "platform": _column_group(run, cell),
                        **key_values(cell),
                        "stage": stage,
                        "mean_ms": mean,
                        "part_of_pipeline": not (stage.startswith("inference_") or stage == "end_to_end"),
                    }
                )
    return pd.DataFrame(rows, columns=["platform", *KEY, "stage", "mean_ms", "part_of_pipeline"])


def offline_frame(runs: Sequence[LabelledRun]) -> pd.DataFrame:
    """Throughput and p50 per batch size of every offline sweep (``raw["offline"]``)."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        for cell in run.results.cells:
            for sweep in cell.raw.get("offline") or []:
                throughput = sweep.get("throughput") or {}
                latency = sweep.get("latency_ms") or {}
                rows.append(
                    {
                        "platform": _column_group(run, cell),
                        **key_values(cell),
                        "batch_size": int(sweep["batch_size"]),
                        "samples_per_s": throughput.get("samples_per_s"),
                        "p50_ms": latency.get("p50"),
                    }
                )
    return pd.DataFrame(rows, columns=["platform", *KEY, "batch_size", "samples_per_s", "p50_ms"])
