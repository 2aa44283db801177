"""Monitoring export: a run's figures as Prometheus metrics, for Grafana dashboards.

Two destinations, one set of metrics:

- ``PrometheusTextfile`` writes node_exporter's textfile-collector format (``*.prom``, no timestamps),
  atomically (temporary file in the same folder, then rename), so node_exporter never scrapes half a
  file. That is the route for machine-bound jobs such as a benchmark host's nightly run.
- ``PushgatewayExport`` PUTs the same metrics to a Pushgateway (``prometheus_client.push_to_gateway``)
  under the grouping key job / suite / platform: a new run of the same suite on the same machine
  replaces its predecessor's series there instead of piling up beside them.

Names follow Prometheus' conventions: a ``portbench_`` prefix, base units spelled in the name
(seconds, not the milliseconds results keep), ratios 0-1 as ``_ratio``, ``_timestamp_seconds`` for
times, ``_info`` pseudo-metrics valued 1. Every cell series carries the labels
``workload, task, model, backend, precision, scenario, platform, suite, run_id`` and ``cell`` (the cell id:
two cells of one model that differ in their parameters, e.g. batch size, are told apart by it).
A percentile the run withheld (too few samples) is absent, never 0 or NaN.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from portbench.errors import PortbenchError
from portbench.harness.reporting import Report
from portbench.harness.results import CellResult, RunResults, write_atomic

CELL_LABELS = (
    "workload", "task", "model", "backend", "precision", "scenario", "platform", "suite", "run_id", "cell",
)
STATUSES = ("passed", "failed", "skipped")
# Results keep these percentiles (milliseconds) under these names; the quantile label is Prometheus'.
QUANTILES = (("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p999"))
DEFAULT_JOB = "portbench"


def platform_name(platform: Mapping[str, Any]) -> str:
    """A short, stable name of the machine from its fingerprint: CPU model, OS and release, and the
    first 8 hex digits of the machine-id hash (two identical boxes still get two names)."""
    cpu = platform.get("cpu") or {}
    os_release = platform.get("os") or {}
    parts = [str(cpu.get("model_name") or cpu.get("architecture") or "unknown-cpu")]
    os_name = "-".join(str(v) for v in (os_release.get("id"), os_release.get("version_id")) if v)
    if os_name:
        parts.append(os_name)
    machine = platform.get("machine_id_sha256")
    if machine:
        parts.append(str(machine)[:8])
    return "/".join(parts)


def _epoch_seconds(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


class _Family:
    """One metric family being filled: name, type, help, label names and (labels, value) samples."""

    def __init__(self, name: str, kind: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.kind, self.documentation, self.labels = name, kind, documentation, labels
        self.samples: list[tuple[tuple[str, ...], float]] = []

    def add(self, values: Iterable[str], value: float | None) -> None:
        # Nothing measured is no sample: a missing series reads as "no data" in Grafana, where a 0
        # would chart as a real latency or throughput.
        if value is None or not math.isfinite(float(value)):
            return
        self.samples.append((tuple(values), float(value)))


class RunCollector:
    """A prometheus_client collector yielding one run's metrics (a custom collector rather than
    Gauge objects: the values are fixed by the results, and none of the default process metrics join)."""

    def __init__(self, results: RunResults, platform: str | None = None) -> None:
        self.results = results
        self.platform = platform or platform_name(results.platform)

    def _cell_labels(self, cell: CellResult) -> tuple[str, ...]:
        return (
            cell.workload, cell.task, cell.model, cell.backend, cell.precision, cell.scenario,
            self.platform, self.results.suite, self.results.run_id, cell.cell_id,
        )

    def families(self) -> list[_Family]:
        results = self.results
        f = {
            "status": _Family("portbench_cell_status", "gauge",
                              "1 for the cell's status (passed, failed or skipped), 0 for the others.",
                              (*CELL_LABELS, "status")),
            "latency": _Family("portbench_latency_seconds", "gauge",
                               "Per-query latency percentile of the cell's timed pass, in seconds.",
                               (*CELL_LABELS, "quantile")),
            "latency_mean": _Family("portbench_latency_mean_seconds", "gauge",
                                    "Mean per-query latency of the timed pass, in seconds.", CELL_LABELS),
            "latency_n": _Family("portbench_latency_samples", "gauge",
                                 "Number of latency samples behind the percentiles.", CELL_LABELS),
            "samples": _Family("portbench_throughput_samples_per_second", "gauge",
                               "Samples (images, lines, texts) per second of the timed pass.", CELL_LABELS),
            "queries": _Family("portbench_throughput_queries_per_second", "gauge",
                               "Queries (batches) per second of the timed pass.", CELL_LABELS),
            "ci": _Family("portbench_latency_median_ci95_seconds", "gauge",
                          "95 % interval of the median latency across repeated trials, in seconds.",
                          (*CELL_LABELS, "bound")),
            "cv": _Family("portbench_trials_cv_ratio", "gauge",
                          "Coefficient of variation of the per-trial median latency.", CELL_LABELS),
            "unstable": _Family("portbench_cell_unstable", "gauge",
                                "1 when the trials varied more than the stability threshold.", CELL_LABELS),
            "stage": _Family("portbench_stage_mean_seconds", "gauge",
                             "Mean time per sample spent in one stage (pre-process, inference, ...).",
                             (*CELL_LABELS, "stage")),
            "offline": _Family("portbench_offline_throughput_samples_per_second", "gauge",
                               "Offline scenario: samples per second at each batch size of the sweep.",
                               (*CELL_LABELS, "batch_size")),
            "metric": _Family("portbench_task_metric", "gauge",
                              "A task's accuracy metric as the workload declares it (hmean, accuracy ...).",
                              (*CELL_LABELS, "metric")),
            "parity": _Family("portbench_parity_pass", "gauge",
                              "1 when the cell met its parity gates against the FP32 reference, 0 when it "
                              "missed one; absent when there was nothing to judge.", CELL_LABELS),
            "speedup": _Family("portbench_speedup_vs_fp32_ratio", "gauge",
                               "FP32 latency over this cell's latency on the same backend.", CELL_LABELS),
            "duration": _Family("portbench_cell_duration_seconds", "gauge",
                                "Wall time the cell's worker took, accuracy and timed passes together.",
                                CELL_LABELS),
            "cells": _Family("portbench_run_cells", "gauge", "Cells of the run by status.",
                             ("platform", "run_id", "suite", "status")),
            "info": _Family("portbench_run_info", "gauge", "The run's identity; always 1.",
                            ("platform", "run_id", "suite", "portbench_version", "paddle_version",
                             "git_sha")),
            "finished": _Family("portbench_run_finished_timestamp_seconds", "gauge",
                                "When the run finished, in seconds since the epoch.",
                                ("platform", "run_id", "suite")),
            "success": _Family("portbench_last_success_timestamp_seconds", "gauge",
                               "When the run finished with no failed cell, in seconds since the epoch.",
                               ("platform", "suite")),
        }
        for cell in results.cells:
            labels = self._cell_labels(cell)
            for status in STATUSES:
                f["status"].add((*labels, status), 1.0 if cell.status == status else 0.0)
            f["duration"].add(labels, cell.duration_s)
            if cell.status != "passed":
                continue
            if cell.latency_ms is not None:
                for quantile, key in QUANTILES:
                    value = getattr(cell.latency_ms, key)
                    f["latency"].add((*labels, quantile), None if value is None else value / 1e3)
                f["latency_mean"].add(labels, cell.latency_ms.mean / 1e3)
                f["latency_n"].add(labels, cell.latency_ms.n)
            if cell.throughput is not None:
                f["samples"].add(labels, cell.throughput.samples_per_s)
                f["queries"].add(labels, cell.throughput.queries_per_s)
            if cell.trials is not None:
                for bound, value in (("low", cell.trials.ci95_low_ms), ("high", cell.trials.ci95_high_ms)):
                    f["ci"].add((*labels, bound), None if value is None else value / 1e3)
                f["cv"].add(labels, cell.trials.cv)
                f["unstable"].add(labels, 1.0 if cell.trials.unstable else 0.0)
            for stage, summary in cell.stages_ms.items():
                f["stage"].add((*labels, stage), summary.mean / 1e3)
            for point in cell.raw.get("offline") or []:
                throughput = point.get("throughput") or {}
                f["offline"].add((*labels, str(point.get("batch_size"))), throughput.get("samples_per_s"))
            for name, value in cell.metrics.items():
                f["metric"].add((*labels, name), value)
            if cell.parity is not None and cell.parity.verdict in ("pass", "fail"):
                f["parity"].add(labels, 1.0 if cell.parity.verdict == "pass" else 0.0)
            if cell.parity is not None:
                f["speedup"].add(labels, cell.parity.speedup_vs_fp32)

        run = (self.platform, results.run_id, results.suite)
        counts = {status: sum(1 for c in results.cells if c.status == status) for status in STATUSES}
        for status, count in counts.items():
            f["cells"].add((*run, status), count)
        paddle = str((results.platform.get("paddle") or {}).get("version") or "")
        f["info"].add((*run, results.portbench_version, paddle, results.git_sha or ""), 1.0)
        finished = _epoch_seconds(results.finished_at)
        f["finished"].add(run, finished)
        if counts["failed"] == 0 and counts["passed"] > 0:
            f["success"].add((self.platform, results.suite), finished)
        return [family for family in f.values() if family.samples]

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        for family in self.families():
            metric = GaugeMetricFamily(family.name, family.documentation, labels=list(family.labels))
            for values, value in family.samples:
                metric.add_metric(list(values), value)
            yield metric


def registry_for(results: RunResults, platform: str | None = None) -> Any:
    """A fresh CollectorRegistry holding only this run's metrics (the default registry would add the
    exporting process's own CPU and memory series)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=True)
    registry.register(RunCollector(results, platform))
    return registry


def to_textfile(results: RunResults, platform: str | None = None) -> str:
    """The run in the Prometheus text exposition format 0.0.4 (what node_exporter's textfile
    collector reads): no timestamps, label values escaped by prometheus_client."""
    from prometheus_client import generate_latest

    return str(generate_latest(registry_for(results, platform)).decode("utf-8"))


def write_textfile(results: RunResults, path: Path, platform: str | None = None) -> Path:
    if path.suffix != ".prom":
        # node_exporter's textfile collector reads *.prom only: another name would be ignored silently.
        raise PortbenchError(f"--prometheus {path}: node_exporter's textfile collector reads only *.prom")
    if path.is_dir():
        raise PortbenchError(f"--prometheus {path} is a directory; give a file name ending in .prom")
    write_atomic(path, to_textfile(results, platform))
    return path


def check_gateway_url(url: str) -> str:
    """The Pushgateway address as prometheus_client expects it; a malformed one is one line, exit 2."""
    url = url.strip()
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise PortbenchError(f"--pushgateway {url!r}: expected an http(s) URL such as http://127.0.0.1:9091")
    try:
        parsed.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        raise PortbenchError(f"--pushgateway {url!r}: the port is not a number from 0 to 65535") from None
    return url.rstrip("/")


def check_job(job: str) -> str:
    # The job is a path segment of the push URL (/metrics/job/<JOB>): a '/' would change the group.
    if not job.strip() or "/" in job:
        raise PortbenchError(f"--pushgateway-job {job!r}: a job name must be non-empty and hold no '/'")
    return job


def push(
    results: RunResults,
    url: str,
    job: str = DEFAULT_JOB,
    platform: str | None = None,
    timeout_s: float = 30.0,
) -> dict[str, str]:
    """PUT the run's metrics to the Pushgateway at ``url``; returns the grouping key used."""
    from prometheus_client import push_to_gateway

    gateway, job = check_gateway_url(url), check_job(job)
    collector_platform = platform or platform_name(results.platform)
    grouping_key = {"suite": results.suite, "platform": collector_platform}
    try:
        push_to_gateway(
            gateway, job=job, registry=registry_for(results, collector_platform),
            grouping_key=grouping_key, timeout=timeout_s,
        )
    except urllib.error.HTTPError as error:
        lines = error.read().decode("utf-8", "replace").strip().splitlines()
        detail = lines[0] if lines else error.reason
        raise PortbenchError(f"Pushgateway {gateway} refused the push: HTTP {error.code} {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise PortbenchError(f"cannot push to Pushgateway {gateway}: {reason}") from None
    return grouping_key


class PrometheusTextfile(Report):
    """node_exporter textfile (``destination``, a ``*.prom`` file), written atomically."""

    name = "prometheus"
    description = "Prometheus text format for node_exporter's textfile collector"

    def __init__(self, platform: str | None = None) -> None:
        self.platform = platform

    def render(self, results: RunResults, destination: Path | None, console: Console) -> Path | None:
        if destination is None:
            raise PortbenchError("the Prometheus export needs a file name ending in .prom")
        return write_textfile(results, destination, self.platform)


class PushgatewayExport(Report):
    """The same metrics pushed (PUT) to a Pushgateway; the URL is a constructor option, not a path."""

    name = "pushgateway"
    description = "push the Prometheus metrics to a Pushgateway"

    def __init__(self, url: str | None = None, job: str = DEFAULT_JOB, platform: str | None = None) -> None:
        self.url = None if url is None else check_gateway_url(url)
        self.job = check_job(job)
        self.platform = platform

    def render(self, results: RunResults, destination: Path | None, console: Console) -> Path | None:
        if self.url is None:
            raise PortbenchError("the Pushgateway export needs a URL (--pushgateway http://HOST:9091)")
        push(results, self.url, self.job, self.platform)
        return None
