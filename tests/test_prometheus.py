"""Prometheus export: textfile content from hand-built results with known numbers, label escaping,
the atomic write, the CLI's one-line errors, a push to a real Pushgateway scraped back, and the
Grafana dashboard's queries against the metric names portbench really exports."""

from __future__ import annotations

import calendar
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portbench.errors import PortbenchError
from portbench.harness import reporting
from portbench.harness.results import (
    CellResult,
    LatencySummary,
    RunResults,
    Throughput,
    TrialSummary,
    save_results,
)
from portbench.harness.verdict import ParityVerdict
from portbench.reports.prometheus import platform_name, push, to_textfile, write_textfile

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "contrib" / "grafana" / "portbench.json"
PUSHGATEWAY = Path("/usr/bin/prometheus-pushgateway")
# A model name a user may really type (--model-dir), holding every character the format escapes.
ODD_MODEL = 'user:my "odd" \\ model\nv2'
FINISHED = "2026-12-01T20:00:00+00:00"

PLATFORM = {
    "cpu": {"vendor": "HiSilicon", "model_name": "Kunpeng-920", "architecture": "aarch64"},
    "memory_total_bytes": 512 * 2**30,
    "os": {"id": "kylin", "name": "Kylin Linux Advanced Server", "version_id": "V10"},
    "kernel": "4.19.90-24.4.v2101.ky10.aarch64",
    "machine_id_sha256": "0123456789abcdef" * 4,
    "python": {"version": "3.11.7", "implementation": "CPython"},
    "paddle": {"version": "3.2.2", "commit": "a1b2c3d4"},
}
PLATFORM_NAME = "Kunpeng-920/kylin-V10/01234567"


def det_cell() -> CellResult:
    return CellResult(
        cell_id="ocr/det/ppocrv4-mobile-det/cpu/paddle/int8/single-stream", workload="ocr", task="det",
        model="ppocrv4-mobile-det", backend="cpu", precision="int8", scenario="single-stream",
        dataset="synth-smoke", status="passed", device="cpu",
        metrics={"det_hmean": 0.9},
        # p99 withheld (too few samples): it must be absent, not 0.
        latency_ms=LatencySummary(n=50, mean=13.0, min=11.0, max=20.0, stdev=1.0, p50=12.5, p90=14.0,
                                  p99=None),
        throughput=Throughput(samples_per_s=80.0, queries_per_s=80.0),
        trials=TrialSummary(
            trials=2, p50_ms=(12.0, 13.0), samples_per_s=(81.0, 79.0), median_p50_ms=12.5,
            mean_p50_ms=12.5, ci95_low_ms=12.0, ci95_high_ms=13.0, cv=0.02, cv_threshold=0.05,
            unstable=False,
        ),
        stages_ms={"preprocess": LatencySummary(n=50, mean=2.5, min=2.0, max=3.0, stdev=0.1, p50=2.5,
                                                p90=2.9, p99=None)},
        parity=ParityVerdict(verdict="pass", speedup_vs_fp32=2.0),
        duration_s=10.0,
    )


def ernie_cell() -> CellResult:
    return CellResult(
        cell_id="ernie/cls/odd/cpu/paddle/int8/offline", workload="ernie", task="cls", model=ODD_MODEL,
        backend="cpu", precision="int8", scenario="offline", dataset="user.tsv", status="passed",
        metrics={"accuracy": 0.75},
        latency_ms=LatencySummary(n=400, mean=20.0, min=15.0, max=40.0, stdev=2.0, p50=19.0, p90=25.0,
                                  p99=31.0),
        throughput=Throughput(samples_per_s=400.0, queries_per_s=50.0),
        raw={"offline": [
            {"batch_size": 1, "throughput": {"samples_per_s": 100.0, "queries_per_s": 100.0}},
            {"batch_size": 8, "throughput": {"samples_per_s": 400.0, "queries_per_s": 50.0}},
        ]},
        parity=ParityVerdict(verdict="fail", reason="accuracy 96.8 % of FP32, gate 99 %",
                             speedup_vs_fp32=1.5),
    )


def skipped_cell() -> CellResult:
    return CellResult(
        cell_id="ocr/det/ppocrv4-mobile-det/npu/paddle/fp16/single-stream", workload="ocr", task="det",
        model="ppocrv4-mobile-det", backend="npu", precision="fp16", scenario="single-stream",
        dataset="synth-smoke", status="skipped", reason="no Ascend NPU",
    )


def make_results(*cells: CellResult, run_id: str = "20261201T190000Z-aaaaaa") -> RunResults:
    return RunResults(
        run_id=run_id, started_at="2026-12-01T19:00:00+00:00", finished_at=FINISHED,
        portbench_version="0.1.0", suite="smoke", platform=PLATFORM,
        cells=list(cells) or [det_cell(), ernie_cell(), skipped_cell()],
    )


def samples_of(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(metric name, labels) -> value, as a Prometheus scraper would read the text."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def cell_labels(
    cell: CellResult, run_id: str = "20261201T190000Z-aaaaaa", **extra: str
) -> frozenset[tuple[str, str]]:
    labels = {
        "workload": cell.workload, "task": cell.task, "model": cell.model, "backend": cell.backend,
        "precision": cell.precision, "scenario": cell.scenario, "platform": PLATFORM_NAME,
        "suite": "smoke", "run_id": run_id, "cell": cell.cell_id, **extra,
    }
    return frozenset(labels.items())


def assert_run_values(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> None:
    """The values of make_results(), in seconds, worked out by hand from the milliseconds above."""
    det, ernie, skipped = det_cell(), ernie_cell(), skipped_cell()
    expected = {
        ("portbench_latency_seconds", cell_labels(det, quantile="0.5")): 0.0125,
        ("portbench_latency_seconds", cell_labels(det, quantile="0.9")): 0.014,
        ("portbench_latency_seconds", cell_labels(ernie, quantile="0.99")): 0.031,
        ("portbench_latency_mean_seconds", cell_labels(det)): 0.013,
        ("portbench_latency_samples", cell_labels(ernie)): 400,
        ("portbench_throughput_samples_per_second", cell_labels(det)): 80.0,
        ("portbench_throughput_queries_per_second", cell_labels(ernie)): 50.0,
        ("portbench_latency_median_ci95_seconds", cell_labels(det, bound="low")): 0.012,
        ("portbench_latency_median_ci95_seconds", cell_labels(det, bound="high")): 0.013,
        ("portbench_trials_cv_ratio", cell_labels(det)): 0.02,
        ("portbench_cell_unstable", cell_labels(det)): 0,
        ("portbench_stage_mean_seconds", cell_labels(det, stage="preprocess")): 0.0025,
        ("portbench_offline_throughput_samples_per_second", cell_labels(ernie, batch_size="1")): 100.0,
        ("portbench_offline_throughput_samples_per_second", cell_labels(ernie, batch_size="8")): 400.0,
        ("portbench_task_metric", cell_labels(det, metric="det_hmean")): 0.9,
        ("portbench_task_metric", cell_labels(ernie, metric="accuracy")): 0.75,
        ("portbench_parity_pass", cell_labels(det)): 1,
        ("portbench_parity_pass", cell_labels(ernie)): 0,
        ("portbench_speedup_vs_fp32_ratio", cell_labels(ernie)): 1.5,
        ("portbench_cell_duration_seconds", cell_labels(det)): 10.0,
        ("portbench_cell_status", cell_labels(det, status="passed")): 1,
        ("portbench_cell_status", cell_labels(det, status="failed")): 0,
        ("portbench_cell_status", cell_labels(skipped, status="skipped")): 1,
        ("portbench_cell_status", cell_labels(skipped, status="passed")): 0,
    }
    for key, value in expected.items():
        assert key in samples, key
        assert samples[key] == pytest.approx(value), key
    run = {"platform": PLATFORM_NAME, "run_id": "20261201T190000Z-aaaaaa", "suite": "smoke"}
    for status, count in (("passed", 2), ("failed", 0), ("skipped", 1)):
        assert samples[("portbench_run_cells", frozenset({**run, "status": status}.items()))] == count
    # 2026-12-01 20:00 UTC, from the calendar rather than the parser the code uses.
    success = ("portbench_last_success_timestamp_seconds",
               frozenset({"platform": PLATFORM_NAME, "suite": "smoke"}.items()))
    assert samples[success] == calendar.timegm((2026, 12, 1, 20, 0, 0))
    # Withheld or not judged: no series at all.
    assert ("portbench_latency_seconds", cell_labels(det, quantile="0.99")) not in samples
    npu_series = {name for name, labels in samples if ("backend", "npu") in labels}
    assert npu_series == {"portbench_cell_status"}  # a skipped cell has a status and nothing else


def test_platform_name_from_the_fingerprint() -> None:
    assert platform_name(PLATFORM) == PLATFORM_NAME
    assert platform_name({}) == "unknown-cpu"


def test_textfile_values_in_seconds() -> None:
    assert_run_values(samples_of(to_textfile(make_results())))


def test_textfile_escapes_label_values_and_has_no_timestamps() -> None:
    text = to_textfile(make_results())
    # Exposition format: backslash, double quote and newline escaped as \\, \" and \n.
    assert 'model="user:my \\"odd\\" \\\\ model\\nv2"' in text
    assert "\nv2" not in text  # the raw newline never reaches the file
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.fullmatch(r"# (HELP|TYPE) portbench_[a-z0-9_]+ .+", line), line
            continue
        # name{labels} value, and nothing after it: node_exporter refuses textfiles with timestamps.
        assert re.fullmatch(r'portbench_[a-z0-9_]+\{.*\} [-+0-9.e]+', line), line
    # Each family is declared exactly once, before its samples.
    types = re.findall(r"^# TYPE (\S+) gauge$", text, flags=re.M)
    assert len(types) == len(set(types))
    # And a parser gets the original name back.
    models = {s.labels.get("model") for f in text_string_to_metric_families(text) for s in f.samples}
    assert ODD_MODEL in models


def test_a_run_with_a_failed_cell_has_no_last_success() -> None:
    failed = CellResult(
        cell_id="ocr/rec/x/cpu/paddle/fp32/single-stream", workload="ocr", task="rec", model="x",
        backend="cpu",
        precision="fp32", scenario="single-stream", dataset="d", status="failed", reason="worker killed",
    )
    samples = samples_of(to_textfile(make_results(det_cell(), failed)))
    assert not any(name == "portbench_last_success_timestamp_seconds" for name, _ in samples)
    assert samples[("portbench_cell_status", cell_labels(failed, status="failed"))] == 1
    finished = [v for (name, _), v in samples.items() if name == "portbench_run_finished_timestamp_seconds"]
    assert finished == [calendar.timegm((2026, 12, 1, 20, 0, 0))]


def test_textfile_is_replaced_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "textfile" / "portbench.prom"
    path.parent.mkdir()
    path.write_text("stale content\n")
    write_textfile(make_results(), path)
    assert "stale" not in path.read_text()
    assert_run_values(samples_of(path.read_text()))
    assert sorted(p.name for p in path.parent.iterdir()) == ["portbench.prom"]


def test_textfile_needs_a_prom_name(tmp_path: Path) -> None:
    with pytest.raises(PortbenchError, match=r"reads only \*\.prom"):
        write_textfile(make_results(), tmp_path / "metrics.txt")
    (tmp_path / "dir.prom").mkdir()
    with pytest.raises(PortbenchError, match="is a directory"):
        write_textfile(make_results(), tmp_path / "dir.prom")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1:9091", "expected an http(s) URL"),
        ("127.0.0.1:9091", "expected an http(s) URL"),
        ("http://127.0.0.1:99999", "port is not a number"),
    ],
)
def test_bad_pushgateway_urls_are_one_line_errors(url: str, message: str) -> None:
    with pytest.raises(PortbenchError, match=re.escape(message)):
        reporting.create_report("pushgateway", url=url)


def test_a_job_name_with_a_slash_is_refused() -> None:
    with pytest.raises(PortbenchError, match="--pushgateway-job"):
        reporting.create_report("pushgateway", url="http://127.0.0.1:9091", job="nightly/x")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_pushgateway_is_one_line_error() -> None:
    with pytest.raises(PortbenchError, match=re.escape("cannot push to Pushgateway http://127.0.0.1:")):
        push(make_results(), f"http://127.0.0.1:{free_port()}", timeout_s=5)


def portbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "portbench.harness.cli", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def test_report_command_writes_the_textfile_and_refuses_bad_options(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    save_results(make_results(), run_dir)
    prom = tmp_path / "node" / "portbench.prom"
    ok = portbench("report", str(run_dir), "--prometheus", str(prom))
    assert ok.returncode == 0, ok.stderr
    assert_run_values(samples_of(prom.read_text()))
    for args, fragment in (
        (("--prometheus", str(tmp_path / "x.txt")), "reads only *.prom"),
        (("--pushgateway", "localhost:9091"), "expected an http(s) URL"),
        (("--pushgateway", f"http://127.0.0.1:{free_port()}"), "cannot push to Pushgateway"),
    ):
        bad = portbench("report", str(run_dir), *args)
        assert bad.returncode == 2, bad.stderr
        assert "Traceback" not in bad.stderr
        errors = [line for line in bad.stderr.splitlines() if line.startswith("portbench: error:")]
        assert len(errors) == 1 and fragment in errors[0], bad.stderr


def test_run_refuses_a_bad_export_before_any_cell(tmp_path: Path) -> None:
    result = portbench("run", "--suite", "smoke", "--out", str(tmp_path / "run"),
                       "--pushgateway", "not a url")
    assert result.returncode == 2, result.stderr
    assert "expected an http(s) URL" in result.stderr
    assert not (tmp_path / "run" / "results.json").exists()


# ---- a real Pushgateway --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushgateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PUSHGATEWAY.exists() and shutil.which("prometheus-pushgateway") is None:
        pytest.skip("prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway)")
    binary = str(PUSHGATEWAY if PUSHGATEWAY.exists() else shutil.which("prometheus-pushgateway"))
    port = free_port()
    folder = tmp_path_factory.mktemp("pushgateway")
    process = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}",
         f"--persistence.file={folder / 'pushgateway.data'}"],
        stdout=(folder / "log").open("w"), stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Pushgateway did not start: {(folder / 'log').read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        return str(response.read().decode("utf-8"))


def portbench_samples(text: str, job: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """portbench's series of one job on the gateway's page, less the labels the gateway adds to every
    series of a group (job, and an empty instance); the grouping key's suite and platform are labels
    portbench's series carry already, with the same values."""
    samples = {}
    for (name, labels), value in samples_of(text).items():
        if name.startswith("portbench_") and ("job", job) in labels:
            samples[(name, labels - {("job", job), ("instance", "")})] = value
    return samples


def test_push_scraped_back_from_a_real_pushgateway(pushgateway: str) -> None:
    grouping = push(make_results(), pushgateway, job="nightly")
    assert grouping == {"suite": "smoke", "platform": PLATFORM_NAME}
    text = scrape(pushgateway)
    assert_run_values(portbench_samples(text, "nightly"))
    # The gateway stamps the push itself, for the group named by job, suite and platform.
    pushed = [s for f in text_string_to_metric_families(text) for s in f.samples
              if s.name == "push_time_seconds"]
    assert any(s.labels.get("job") == "nightly" and s.labels.get("platform") == PLATFORM_NAME for s in pushed)


def test_a_new_run_replaces_the_previous_one_in_its_group(pushgateway: str) -> None:
    push(make_results(run_id="run-old"), pushgateway, job="replace")
    push(make_results(det_cell(), run_id="run-new"), pushgateway, job="replace")
    samples = samples_of(scrape(pushgateway))
    run_ids = {dict(labels).get("run_id") for (name, labels) in samples
               if name == "portbench_throughput_samples_per_second" and ("job", "replace") in labels}
    assert run_ids == {"run-new"}  # PUT replaced the group: the old run's series are gone


def test_cli_pushes_to_a_real_pushgateway(pushgateway: str, tmp_path: Path) -> None:
    save_results(make_results(), tmp_path)
    result = portbench("report", str(tmp_path), "--pushgateway", pushgateway, "--pushgateway-job", "cli")
    assert result.returncode == 0, result.stderr
    assert_run_values(portbench_samples(scrape(pushgateway), "cli"))


# ---- the Grafana dashboard -----------------------------------------------------------------------

# PromQL words that are not metric names: functions, aggregations, keywords and range units.
PROMQL_WORDS = {
    "sum", "avg", "min", "max", "count", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "topk", "bottomk", "rate", "increase", "time", "label_values", "max_over_time",
    "min_over_time", "avg_over_time", "last_over_time", "sort", "sort_desc", "clamp_min", "bool", "offset",
    "vector",
}


def metric_names_in(expr: str) -> set[str]:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, regexes)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping label lists
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables ($__range, ${platform})
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors [1d]
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {w for w in words if w not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]?", w)}


def dashboard_expressions(dashboard: dict[str, object]) -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "datasource":  # the data-source picker: its query names a plugin
                return
            for key, value in node.items():
                if key in ("expr", "query", "definition") and isinstance(value, str):
                    found.append(value)
                elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                    found.append(value["query"])
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    return found


def test_metric_names_in_handles_labels_and_functions() -> None:
    expr = 'max by (cell) (portbench_latency_seconds{quantile="0.99", platform=~"$platform"}) / 1'
    assert metric_names_in(expr) == {"portbench_latency_seconds"}
    assert metric_names_in("label_values(portbench_run_info, platform)") == {"portbench_run_info", "platform"}


def test_grafana_dashboard_charts_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    exported = {family.name for family in text_string_to_metric_families(to_textfile(make_results()))}
    exported_labels = {k for f in text_string_to_metric_families(to_textfile(make_results()))
                       for s in f.samples for k in s.labels}
    expressions = dashboard_expressions(dashboard)
    assert len(expressions) >= 6
    used: set[str] = set()
    for expr in expressions:
        names = metric_names_in(expr)
        if expr.startswith("label_values("):
            names -= exported_labels  # label_values(metric, label): the second word is a label
        assert names, expr
        assert names <= exported, f"{expr}: {names - exported} not exported"
        used |= names
    # The headline figures each have a panel.
    assert {"portbench_latency_seconds", "portbench_throughput_samples_per_second",
            "portbench_cell_status", "portbench_parity_pass"} <= used
    for panel in dashboard["panels"]:
        assert panel.get("title"), panel
        if panel.get("type") == "row":
            continue
        assert panel.get("targets"), panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
