"""Parity checks and the parity matrix, on hand-built outputs and results with hand-computed numbers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from portbench.harness.parity import (
    ParityError,
    ParityGates,
    TaskCatalog,
    apply_parity,
    compare_outputs,
    evaluate_parity,
    load_reference,
    read_outputs,
    reference_key,
)
from portbench.harness.results import (
    CellResult,
    CellStatus,
    LatencySummary,
    ModelRecord,
    RunResults,
    load_results,
    save_results,
    validate_document,
)
from portbench.harness.runner import save_outputs
from portbench.harness.verdict import ReferenceInfo
from portbench.harness.workload import Metric, TaskInfo, create_workload
from portbench.reports.markdown import render_markdown
from portbench.reports.parity import parity_matrix
from portbench.reports.tables import format_delta, format_speedup
from portbench.reports.terminal import print_summary

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

DET_MODEL = "ppocrv4-mobile-det"
PLATFORM = {
    "cpu": {
        "vendor": "AuthenticAMD",
        "model_name": "AMD EPYC",
        "family": "x86",
        "architecture": "x86_64",
        "cores_physical": 2,
        "cores_logical": 2,
        "flags_of_interest": ["avx512f"],
    },
    "memory_total_bytes": 24 * 2**30,
    "os": {"id": "debian", "name": "Debian GNU/Linux", "version_id": "12"},
    "kernel": "6.1.0",
    "python": {"version": "3.11.7", "implementation": "CPython"},
    "paddle": {"version": "3.2.2", "commit": None},
}


def square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def make_cell(
    backend: str = "cpu",
    precision: str = "fp32",
    *,
    workload: str = "ocr",
    task: str = "det",
    model: str = DET_MODEL,
    metrics: dict[str, float] | None = None,
    p50: float | None = 10.0,
    status: CellStatus = "passed",
    params: dict[str, Any] | None = None,
    synthetic: bool = False,
    label: str = "",
) -> CellResult:
    model_part = f"{model}@{label}" if label else model
    return CellResult(
        cell_id=f"{workload}/{task}/{model_part}/{backend}/paddle/{precision}/single-stream",
        workload=workload,
        task=task,
        model=model,
        backend=backend,
        precision=precision,
        scenario="single-stream",
        dataset="synth-smoke",
        status=status,
        models=[
            ModelRecord(
                role=task,
                name=model,
                path="/nonexistent/models/never-read",
                sha256={"inference.pdmodel": "0" * 64},
                synthetic_weights=synthetic,
            )
        ],
        params=dict(params or {}),
        metrics=dict(metrics or {}),
        latency_ms=(
            LatencySummary(n=50, mean=p50, min=p50, max=p50, stdev=0.0, p50=p50, p90=p50, p99=p50)
            if p50 is not None
            else None
        ),
    )


def make_run(cells: list[CellResult], run_id: str = "run-now") -> RunResults:
    return RunResults(
        run_id=run_id,
        started_at="2026-01-02T03:04:05+00:00",
        portbench_version="0.1.0",
        suite="smoke",
        platform=PLATFORM,
        cells=cells,
    )


# --- output level ---------------------------------------------------------------------------------


def test_ernie_logits_agreement_by_hand() -> None:
    reference = {"a": [1.0, 0.0], "b": [0.0, 2.0], "c": [3.0, 1.0], "d": [1.0, 1.0]}
    # b drifts by 0.5 keeping its class; c flips from class 0 to class 1 (|Δ| = 2).
    cell = {"a": [1.0, 0.0], "b": [0.0, 1.5], "c": [1.0, 3.0], "d": [1.0, 1.0]}
    agreement = compare_outputs("ernie", "cls", reference, cell)
    assert agreement.compared == 4
    assert agreement.metrics["top1_agreement"] == pytest.approx(0.75)
    assert agreement.metrics["max_abs_diff"] == pytest.approx(2.0)
    # cosines: a 1, b (0*0 + 2*1.5) / (2 * 1.5) = 1, c (3 + 3) / (√10 * √10) = 0.6, d 1
    assert agreement.metrics["mean_cosine"] == pytest.approx(3.6 / 4)
    assert agreement.metrics["min_cosine"] == pytest.approx(0.6)
    assert [s["sample_id"] for s in agreement.worst_samples] == ["c", "b"]
    flipped = agreement.worst_samples[0]
    assert (flipped["reference_top1"], flipped["top1"]) == (0, 1)
    assert "top-1 0 → 1" in flipped["difference"]


def test_a_flipped_prediction_ranks_above_larger_drift() -> None:
    reference = {"drift": [0.0, 2.0], "flip": [0.1, 0.0]}
    cell = {"drift": [0.0, 1.5], "flip": [0.0, 0.1]}  # |Δ| 0.5 kept class 1; |Δ| 0.1 flipped 0 → 1
    agreement = compare_outputs("ernie", "cls", reference, cell)
    assert [s["sample_id"] for s in agreement.worst_samples] == ["flip", "drift"]
    assert compare_outputs("ernie", "cls", reference, cell, worst=1).worst_samples[0]["sample_id"] == "flip"


def test_rec_text_exact_match_and_worst_sample() -> None:
    reference = {"s1": {"text": "你好"}, "s2": {"text": "世界"}, "s3": {"text": "你好"}}
    cell = {"s1": {"text": "你好"}, "s2": {"text": "世界"}, "s3": {"text": "你奸"}}
    agreement = compare_outputs("ocr", "rec", reference, cell)
    assert agreement.metrics["text_exact_match"] == pytest.approx(2 / 3)
    # s3 differs in 1 of 2 characters: agreement 0.5; mean over three lines (1 + 1 + 0.5) / 3
    assert agreement.metrics["char_agreement"] == pytest.approx(2.5 / 3)
    assert len(agreement.worst_samples) == 1
    worst = agreement.worst_samples[0]
    assert (worst["sample_id"], worst["reference"], worst["value"]) == ("s3", "你好", "你奸")


def test_rec_counts_a_changed_space_as_a_difference() -> None:
    agreement = compare_outputs("ocr", "rec", {"s": {"text": "a b"}}, {"s": {"text": "ab"}})
    assert agreement.metrics["text_exact_match"] == 0.0
    assert agreement.metrics["char_agreement"] == pytest.approx(1 - 1 / 3)  # one edit over 3 characters


def test_invisible_characters_are_shown_escaped_in_the_difference() -> None:
    agreement = compare_outputs("ocr", "rec", {"s": {"text": "书。"}}, {"s": {"text": "书。\u3000"}})
    assert agreement.worst_samples[0]["difference"] == 'text "书。" → "书。\\u3000"'
    assert agreement.worst_samples[0]["value"] == "书。\u3000"  # the stored value stays exact


def test_det_boxes_with_known_ious() -> None:
    reference = {
        "img1": {"boxes": [square(0, 0, 10, 10), square(20, 0, 30, 10)]},
        "img2": {"boxes": [square(0, 0, 10, 10)]},
    }
    cell = {
        # first box shrunk to 80% of its area (IoU 0.8); second box missed; one extra box far away
        "img1": {"boxes": [square(0, 0, 10, 8), square(50, 50, 60, 60)]},
        "img2": {"boxes": [square(0, 0, 10, 10)]},
    }
    agreement = compare_outputs("ocr", "det", reference, cell)
    # matched 2 of 3 reference and 3 cell boxes: Dice 2*2 / 6
    assert agreement.metrics["box_agreement"] == pytest.approx(4 / 6)
    assert agreement.metrics["mean_iou"] == pytest.approx((0.8 + 1.0) / 2)
    assert agreement.metrics["unmatched_reference_boxes"] == 1
    assert agreement.metrics["unmatched_cell_boxes"] == 1
    assert [s["sample_id"] for s in agreement.worst_samples] == ["img1"]
    assert agreement.worst_samples[0]["matched"] == 1


def test_det_box_below_iou_threshold_is_unmatched() -> None:
    # [0,10] vs [6,16] horizontally: intersection 40, union 160, IoU 0.25 < 0.5
    agreement = compare_outputs(
        "ocr", "det", {"i": {"boxes": [square(0, 0, 10, 10)]}}, {"i": {"boxes": [square(6, 0, 16, 10)]}}
    )
    assert agreement.metrics["box_agreement"] == 0.0
    assert agreement.metrics["unmatched_reference_boxes"] == 1


def test_system_lines_matched_by_iou_then_text() -> None:
    reference = {
        "A": [{"box": square(0, 0, 10, 10), "text": "甲"}, {"box": square(20, 0, 30, 10), "text": "乙"}],
        "B": [{"box": square(0, 0, 10, 10), "text": "丁"}],
    }
    cell = {
        "A": [{"box": square(0, 0, 10, 10), "text": "甲"}, {"box": square(20, 0, 30, 8), "text": "丙"}],
        "B": [],
    }
    agreement = compare_outputs("ocr", "system", reference, cell)
    # 2 of 3 reference lines matched by position (2 cell lines): 2*2 / 5; one of them with equal text
    assert agreement.metrics["line_agreement"] == pytest.approx(4 / 5)
    assert agreement.metrics["text_agreement"] == pytest.approx(2 / 5)
    assert agreement.metrics["text_exact_match"] == pytest.approx(1 / 2)
    assert agreement.metrics["mean_iou"] == pytest.approx(0.9)
    assert agreement.metrics["unmatched_reference_lines"] == 1
    assert [s["sample_id"] for s in agreement.worst_samples] == ["B", "A"]
    assert agreement.worst_samples[1]["text_changed"] == [{"reference": "乙", "value": "丙"}]
    assert '"乙" → "丙"' in agreement.worst_samples[1]["difference"]


def test_samples_on_one_side_only_are_counted_not_compared() -> None:
    agreement = compare_outputs(
        "ocr", "rec", {"x": {"text": "a"}, "y": {"text": "b"}}, {"y": {"text": "b"}, "z": {"text": "c"}}
    )
    assert agreement.compared == 1
    assert agreement.only_in_reference == ("x",)
    assert agreement.only_in_cell == ("z",)
    assert agreement.metrics["text_exact_match"] == 1.0
    assert agreement.to_dict()["only_in_reference_ids"] == ["x"]


def test_malformed_outputs_are_a_one_line_error() -> None:
    with pytest.raises(ParityError, match="sample 'a'"):
        compare_outputs("ernie", "cls", {"a": [1.0, 2.0]}, {"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ParityError, match="recognition output"):
        compare_outputs("ocr", "rec", {"a": {"text": "x"}}, {"a": "x"})


# --- task level and verdicts ----------------------------------------------------------------------


def det_pair(precision: str, ratio: float) -> tuple[CellResult, CellResult]:
    reference = make_cell(metrics={"det_hmean": 0.9})
    return make_cell("cpu", precision, metrics={"det_hmean": 0.9 * ratio}, p50=5.0), reference


@pytest.mark.parametrize(
    ("precision", "ratio", "verdict"),
    [
        ("int8", 0.985, "fail"),
        ("int8", 0.995, "pass"),
        ("int8", 0.99, "pass"),  # exactly on the gate
        ("bf16", 0.9995, "pass"),
        ("bf16", 0.998, "fail"),
        ("fp16", 0.998, "fail"),
    ],
)
def test_task_gate_per_precision(precision: str, ratio: float, verdict: str) -> None:
    cell, reference = det_pair(precision, ratio)
    parity = evaluate_parity(cell, reference, None, None, ParityGates(), reference)
    assert parity.verdict == verdict
    assert parity.task["det_hmean"].ratio == pytest.approx(ratio)
    assert parity.task["det_hmean"].delta == pytest.approx(0.9 * ratio - 0.9)


def test_failed_gate_says_by_how_much() -> None:
    cell, reference = det_pair("int8", 0.985)
    parity = evaluate_parity(cell, reference, None, None, ParityGates(), reference)
    assert parity.reason == "det_hmean 0.8865 is 98.5% of FP32 0.9000; gate 99%"
    assert parity.task["det_hmean"].gate == 0.99
    assert parity.task["det_hmean"].passed is False
    assert parity.speedup_vs_fp32 == pytest.approx(10.0 / 5.0)


def test_per_metric_override_wins_over_precision_gate() -> None:
    gates = ParityGates(per_metric={"det_hmean": {"int8": 0.98}})
    assert gates.gate_for("det_hmean", "int8") == 0.98
    assert gates.gate_for("det_hmean", "fp16") == 0.999
    cell, reference = det_pair("int8", 0.985)
    assert evaluate_parity(cell, reference, None, None, gates, reference).verdict == "pass"


def test_per_metric_gate_makes_an_informational_metric_gated() -> None:
    reference = make_cell(metrics={"det_hmean": 0.9, "det_recall": 0.8})
    cell = make_cell("cpu", "int8", metrics={"det_hmean": 0.9, "det_recall": 0.7})
    default = evaluate_parity(cell, reference, None, None, ParityGates(), None)
    assert default.verdict == "pass"
    assert default.task["det_recall"].gate is None
    gated = evaluate_parity(
        cell, reference, None, None, ParityGates(per_metric={"det_recall": {"int8": 0.99}}), None
    )
    assert gated.verdict == "fail"
    assert "det_recall 0.7000 is 87.5% of FP32 0.8000" in (gated.reason or "")


def test_output_floor_fails_a_cell_only_when_configured() -> None:
    reference = make_cell(workload="ernie", task="cls", metrics={"accuracy": 0.8, "macro_f1": 0.8})
    cell = make_cell("cpu", "int8", workload="ernie", task="cls", metrics={"accuracy": 0.8, "macro_f1": 0.8})
    ref_out, cell_out = {"a": [1.0, 0.0], "b": [0.0, 1.0]}, {"a": [1.0, 0.0], "b": [1.0, 0.0]}
    assert evaluate_parity(cell, reference, cell_out, ref_out, ParityGates(), None).verdict == "pass"
    strict = ParityGates(min_output={"top1_agreement": 0.99})
    parity = evaluate_parity(cell, reference, cell_out, ref_out, strict, None)
    assert parity.verdict == "fail"
    assert parity.reason == "top1 agreement 0.5000 below 0.99"
    assert parity.worst_samples[0]["sample_id"] == "b"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"task_ratio": {"int8": 1.5}}, "int8 must be a ratio"),
        ({"gates": {}}, "unknown parity setting 'gates'"),
        ({"task_ratio": 0.99}, "must map names to ratios"),
        ({"per_metric": {"det_hmean": 0.99}}, "det_hmean must map names to ratios"),
        ({"per_metric": [1]}, "per_metric must be a mapping"),
    ],
)
def test_bad_gate_settings_are_one_line_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ParityError, match=message):
        ParityGates.from_mapping(settings)


def test_output_gates_must_name_a_number_the_run_s_workloads_declare() -> None:
    ocr, ernie = create_workload("ocr"), create_workload("ernie")
    ParityGates(min_output={"top1_agreement": 0.99}).check_names([ernie])
    ParityGates(min_output={"box_agreement": 0.99}).check_names([ocr, ernie])
    with pytest.raises(ParityError, match="unknown output-level parity gate 'top5'"):
        ParityGates(min_output={"top5": 0.9}).check_names([ocr, ernie])
    # A box floor means nothing to a run of ERNIE cells only.
    only_logits = r"'box_agreement'; known: mean_cosine, min_cosine, top1_agreement$"
    with pytest.raises(ParityError, match=only_logits):
        ParityGates(min_output={"box_agreement": 0.9}).check_names([ernie])
    # Lower-is-better numbers cannot take a floor.
    with pytest.raises(ParityError, match="'max_abs_diff'"):
        ParityGates(min_output={"max_abs_diff": 0.9}).check_names([ernie])


def test_a_lower_is_better_headline_metric_is_gated_the_other_way() -> None:
    error_rate = TaskInfo(
        "cer", "character error rate", metrics=(Metric("cer", higher_is_better=False),), headline=("cer",)
    )
    reference = make_cell(metrics={"cer": 0.10})
    # INT8 gate 99%: the cell may reach 0.10 / 0.99 = 0.10101 at most.
    within = make_cell("cpu", "int8", metrics={"cer": 0.1010})
    beyond = make_cell("cpu", "int8", metrics={"cer": 0.1020})
    catalog = StaticCatalog(error_rate)
    passed = evaluate_parity(within, reference, None, None, ParityGates(), None, catalog=catalog)
    assert passed.verdict == "pass"
    failed = evaluate_parity(beyond, reference, None, None, ParityGates(), None, catalog=catalog)
    assert failed.verdict == "fail"
    assert failed.reason == "cer 0.1020 keeps 98.04% of FP32 0.1000; gate 99%"


class StaticCatalog(TaskCatalog):
    """Answers every (workload, task) with one hand-written TaskInfo."""

    def __init__(self, task: TaskInfo) -> None:
        super().__init__()
        self._task = task

    def task(self, workload: str, task: str) -> TaskInfo | None:
        return self._task


def test_from_mapping_keeps_defaults_for_unnamed_precisions() -> None:
    gates = ParityGates.from_mapping({"task_ratio": {"int8": 0.97}})
    assert gates.gate_for("accuracy", "int8") == 0.97
    assert gates.gate_for("accuracy", "bf16") == 0.999


def test_skipped_verdicts_say_why() -> None:
    reference = make_cell(metrics={"det_hmean": 0.9})
    no_reference = evaluate_parity(make_cell("gpu", "fp16"), None, None, None, ParityGates(), None)
    assert no_reference.verdict == "skipped"
    assert "no FP32 cpu reference" in no_reference.reason
    failed = make_cell("gpu", "fp16", status="failed")
    assert "cell failed" in evaluate_parity(failed, reference, None, None, ParityGates(), None).reason
    no_metric = make_cell("gpu", "fp16", metrics={"det_recall": 0.5})
    parity = evaluate_parity(no_metric, reference, None, None, ParityGates(), None)
    assert (parity.verdict, parity.reason) == (
        "skipped",
        "gated metric det_hmean missing from the cell",
    )


def test_synthetic_weights_are_skipped_but_outputs_still_compared() -> None:
    reference = make_cell(workload="ernie", task="perf", synthetic=True)
    cell = make_cell("cpu", "bf16", workload="ernie", task="perf", synthetic=True, p50=4.0)
    parity = evaluate_parity(
        cell, reference, {"synthetic:0": [1.0, 2.5]}, {"synthetic:0": [1.0, 2.0]}, ParityGates(), reference
    )
    assert parity.verdict == "skipped"
    assert "synthetic weights" in parity.reason
    assert parity.output["metrics"]["max_abs_diff"] == pytest.approx(0.5)
    assert parity.speedup_vs_fp32 == pytest.approx(2.5)


# --- reference identity, whole runs and external references ---------------------------------------


def test_reference_key_ignores_backend_precision_and_paths_only() -> None:
    base = make_cell(params={"batch_size": 6, "dataset_dir": "/a", "timed_inputs": 5})
    same = make_cell("gpu", "int8", params={"batch_size": 6, "dataset_dir": "/b", "timed_inputs": 9})
    other_batch = make_cell("gpu", "int8", params={"batch_size": 8})
    other_label = make_cell(label="s128-b8", params={"batch_size": 6})
    assert reference_key(base) == reference_key(same)
    assert reference_key(base) != reference_key(other_batch)
    assert reference_key(base) != reference_key(other_label)


REC_REFERENCE = {"s1": {"text": "你好", "score": 0.9}, "s2": {"text": "世界", "score": 0.8}}


def rec_cell(backend: str, precision: str, accuracy: float, p50: float) -> CellResult:
    return make_cell(
        backend, precision, task="rec", model="ppocrv4-mobile-rec",
        metrics={"rec_char_accuracy": accuracy, "rec_line_accuracy": accuracy}, p50=p50,
        params={"batch_size": 6},
    )  # fmt: skip


def test_apply_parity_within_one_run(tmp_path: Path) -> None:
    fp32 = rec_cell("cpu", "fp32", 0.96, 20.0)
    int8 = rec_cell("cpu", "int8", 0.90, 8.0)  # 0.90 / 0.96 = 93.75%: fails the 99% gate
    failed = make_cell("cpu", "int8", status="failed", p50=None)
    fp32.outputs_file = save_outputs(tmp_path, fp32.cell_id, REC_REFERENCE)
    int8.outputs_file = save_outputs(
        tmp_path, int8.cell_id, {**REC_REFERENCE, "s2": {"text": "世", "score": 0.5}}
    )
    results = make_run([fp32, int8, failed])
    apply_parity(results, tmp_path)

    assert fp32.parity is not None and int8.parity is not None and failed.parity is not None
    assert (fp32.parity.verdict, fp32.parity.role) == ("pass", "reference")
    assert int8.parity.verdict == "fail"
    assert int8.parity.reason == "rec_char_accuracy 0.9000 is 93.75% of FP32 0.9600; gate 99%"
    assert int8.parity.reference == ReferenceInfo(fp32.cell_id, "cpu", "fp32", "run-now")
    assert int8.parity.output["metrics"]["text_exact_match"] == pytest.approx(0.5)
    assert int8.parity.worst_samples[0]["sample_id"] == "s2"
    assert int8.parity.speedup_vs_fp32 == pytest.approx(20.0 / 8.0)
    assert failed.parity.verdict == "skipped"
    validate_document(json.loads(json.dumps(results.to_dict(), allow_nan=False)))


def test_performance_only_reference_is_not_a_pass(tmp_path: Path) -> None:
    fp32 = make_cell(p50=10.0)
    int8 = make_cell("cpu", "int8", p50=4.0)
    apply_parity(make_run([fp32, int8]), tmp_path)
    assert fp32.parity is not None and int8.parity is not None
    assert (fp32.parity.verdict, fp32.parity.role) == ("skipped", "reference")
    assert int8.parity.verdict == "skipped"
    assert int8.parity.speedup_vs_fp32 == pytest.approx(2.5)


def test_missing_outputs_file_keeps_task_level(tmp_path: Path) -> None:
    fp32 = rec_cell("cpu", "fp32", 0.96, 20.0)
    bf16 = rec_cell("cpu", "bf16", 0.96, 15.0)
    bf16.outputs_file = "outputs/gone.json"
    apply_parity(make_run([fp32, bf16]), tmp_path)
    assert bf16.parity is not None
    assert bf16.parity.verdict == "pass"
    assert "no stored outputs for reference" in bf16.parity.output["note"]
    assert any("gone.json is missing" in note for note in bf16.parity.notes)


def write_reference_run(run_dir: Path) -> CellResult:
    reference = rec_cell("cpu", "fp32", 0.96, 20.0)
    reference.outputs_file = save_outputs(run_dir, reference.cell_id, REC_REFERENCE)
    det_reference = make_cell(metrics={"det_hmean": 0.9})
    det_reference.outputs_file = "outputs/deleted.json"
    not_a_reference = rec_cell("cpu", "int8", 0.5, 5.0)
    save_results(make_run([reference, det_reference, not_a_reference], run_id="run-earlier"), run_dir)
    return reference


def test_external_reference_loads_without_models(tmp_path: Path) -> None:
    write_reference_run(tmp_path / "earlier")
    reference = load_reference(tmp_path / "earlier")
    assert reference.run_id == "run-earlier"
    assert len(reference.cells) == 2  # the INT8 cell of that run is not a reference
    assert any("deleted.json is missing" in note for note in reference.notes)

    run_dir = tmp_path / "now"
    gpu = rec_cell("gpu", "fp16", 0.9595, 6.0)  # 99.948% of 0.96: passes 99.9%
    gpu.outputs_file = save_outputs(
        run_dir, gpu.cell_id, {**REC_REFERENCE, "s1": {"text": "你奸", "score": 0.4}}
    )
    det_gpu = make_cell("gpu", "fp16", metrics={"det_hmean": 0.85})  # 94.4% of 0.9: fails
    results = make_run([gpu, det_gpu])
    apply_parity(results, run_dir, reference)

    assert gpu.parity is not None and det_gpu.parity is not None
    assert gpu.parity.verdict == "pass"
    assert gpu.parity.reference.run_id == "run-earlier"
    assert gpu.parity.output["metrics"]["text_exact_match"] == pytest.approx(0.5)
    assert gpu.parity.speedup_vs_fp32 is None  # no FP32 on this backend in this run
    assert det_gpu.parity.verdict == "fail"
    assert det_gpu.parity.reason == "det_hmean 0.8500 is 94.44% of FP32 0.9000; gate 99.9%"
    assert "no stored outputs for reference" in det_gpu.parity.output["note"]

    save_results(results, run_dir)
    reloaded = load_results(run_dir)
    assert reloaded.cells[1].parity == det_gpu.parity


def test_external_reference_without_reference_cells_is_an_error(tmp_path: Path) -> None:
    save_results(make_run([rec_cell("cpu", "int8", 0.5, 5.0)]), tmp_path)
    with pytest.raises(ParityError, match="no passed FP32 cpu cell"):
        load_reference(tmp_path)


def test_corrupt_outputs_file_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ParityError, match="sample id -> output"):
        read_outputs(tmp_path / "bad.json")


# --- reports --------------------------------------------------------------------------------------


def test_delta_and_speedup_formats() -> None:
    assert format_delta(-0.00314) == "−0.0031"
    assert format_delta(0.0012) == "+0.0012"
    assert format_delta(-0.00001) == "±0.0000"
    assert format_speedup(1.8) == "1.80×"
    assert format_speedup(None) == ""


def reported_run(tmp_path: Path) -> RunResults:
    fp32 = rec_cell("cpu", "fp32", 0.96, 20.0)
    int8 = rec_cell("cpu", "int8", 0.90, 8.0)
    bf16 = rec_cell("cpu", "bf16", 0.9597, 10.0)
    fp32.outputs_file = save_outputs(tmp_path, fp32.cell_id, REC_REFERENCE)
    int8.outputs_file = save_outputs(
        tmp_path, int8.cell_id, {**REC_REFERENCE, "s2": {"text": "世", "score": 0.5}}
    )
    det = make_cell("gpu", "fp16", metrics={"det_hmean": 0.9})  # no FP32 CPU det cell: skipped
    results = make_run([fp32, int8, bf16, det])
    apply_parity(results, tmp_path)
    return results


def test_parity_matrix_rows_columns_and_entries(tmp_path: Path) -> None:
    matrix = parity_matrix(reported_run(tmp_path))
    assert matrix is not None
    assert matrix.columns == (
        ("cpu", "paddle", "fp32"), ("cpu", "paddle", "int8"), ("cpu", "paddle", "bf16"),
        ("gpu", "paddle", "fp16"),
    )
    rec, det = matrix.rows
    assert (rec.label, rec.metric) == ("ocr/rec/ppocrv4-mobile-rec", "rec_char_accuracy")
    assert rec.entries[("cpu", "paddle", "fp32")].text == "✓ ref 1.00×"
    assert rec.entries[("cpu", "paddle", "int8")].text == "✗ −0.0600 2.50×"
    assert rec.entries[("cpu", "paddle", "bf16")].text == "✓ −0.0003 2.00×"
    assert det.entries[("gpu", "paddle", "fp16")].text == "–"
    assert ("cpu", "int8") not in det.entries


def test_markdown_parity_section(tmp_path: Path) -> None:
    text = render_markdown(reported_run(tmp_path))
    section = text[text.index("## Accuracy parity") :]
    assert "Reference: FP32 on CPU in this run." in section
    assert "| Workload / model | Metric | cpu fp32 | cpu int8 | cpu bf16 | gpu fp16 |" in section
    row = (
        "| ocr/rec/ppocrv4-mobile-rec | rec_char_accuracy "
        "| ✓ ref 1.00× | ✗ −0.0600 2.50× | ✓ −0.0003 2.00× |  |"
    )
    assert row in section
    assert "rec_char_accuracy 0.9000 is 93.75% of FP32 0.9600; gate 99%" in section
    assert '  - `s2: text "世界" → "世"`' in section
    assert (
        "- **skipped** `ocr/det/ppocrv4-mobile-det/gpu/paddle/fp16/single-stream`: "
        "no FP32 cpu reference" in section
    )


def test_reports_without_parity_have_no_parity_section() -> None:
    results = make_run([rec_cell("cpu", "fp32", 0.96, 20.0)])
    assert parity_matrix(results) is None
    assert "Accuracy parity" not in render_markdown(results)


def test_terminal_shows_matrix_and_failures(tmp_path: Path) -> None:
    console = Console(file=io.StringIO(), record=True, width=120)
    print_summary(reported_run(tmp_path), console)
    text = console.export_text()
    assert "Accuracy parity" in text
    matrix_line = next(line for line in text.splitlines() if "✗ −0.0600 2.50×" in line)
    assert "ocr/rec/ppocrv4-mobile-rec" in matrix_line
    assert "✓ ref 1.00×" in matrix_line
    assert (
        "fail ocr/rec/ppocrv4-mobile-rec/cpu/paddle/int8/single-stream: "
        "rec_char_accuracy 0.9000 is 93.75%" in text
    )
    assert '  s2: text "世界" → "世"' in text


# --- portbench parity: judging a finished run again -----------------------------------------------


def _judged_again(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "parity", str(run_dir), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )


def _det_run_on_disk(run_dir: Path) -> None:
    """FP32 and INT8 det cells; INT8 keeps 0.8865 / 0.9 = 98.5% of the hmean (default gate: 99%)."""
    fp32 = make_cell(metrics={"det_hmean": 0.9})
    int8 = make_cell("cpu", "int8", metrics={"det_hmean": 0.8865}, p50=5.0)
    boxes = {"p1": {"boxes": [square(0, 0, 10, 10)]}}
    fp32.outputs_file = save_outputs(run_dir, fp32.cell_id, boxes)
    int8.outputs_file = save_outputs(run_dir, int8.cell_id, boxes)
    results = make_run([fp32, int8])
    results.request = {"suite": "smoke", "backends": ["cpu"], "precisions": ["fp32", "int8"]}
    save_results(results, run_dir)


def test_parity_command_judges_stored_outputs_with_the_suite_gates_or_a_gates_file(tmp_path: Path) -> None:
    _det_run_on_disk(tmp_path)
    default = _judged_again(tmp_path)
    assert default.returncode == 4, default.stderr  # the accuracy/parity regression exit code
    assert "1 pass, 1 fail, 0 skipped" in default.stderr
    int8 = load_results(tmp_path).cell("ocr/det/ppocrv4-mobile-det/cpu/paddle/int8/single-stream")
    assert int8 is not None and int8.parity is not None
    assert int8.parity.verdict == "fail"
    assert int8.parity.output["metrics"]["box_agreement"] == 1.0  # same box on both sides
    assert (tmp_path / "summary.md").is_file()

    gates = tmp_path / "gates.toml"
    gates.write_text("[gates]\ntask_ratio = { int8 = 0.98 }\n")
    relaxed = _judged_again(tmp_path, "--gates", str(gates))
    assert relaxed.returncode == 0, relaxed.stderr
    int8 = load_results(tmp_path).cell("ocr/det/ppocrv4-mobile-det/cpu/paddle/int8/single-stream")
    assert int8 is not None and int8.parity is not None
    assert (int8.parity.verdict, int8.parity.task["det_hmean"].gate) == ("pass", 0.98)


@pytest.mark.parametrize(
    ("gates_text", "fragment"),
    [
        ("[gates\n", "cannot read gates file"),
        ("[gates]\ntask_ratio = { int8 = 2.0 }\n", "int8 must be a ratio in (0, 1]"),
        # A floor on logit agreement means nothing to a run of OCR cells only.
        ("[gates]\nmin_output = { top1_agreement = 0.9 }\n", "unknown output-level parity gate"),
    ],
)
def test_parity_command_bad_gates_are_one_line_errors(tmp_path: Path, gates_text: str, fragment: str) -> None:
    _det_run_on_disk(tmp_path)
    gates = tmp_path / "gates.toml"
    gates.write_text(gates_text)
    before = (tmp_path / "results.json").read_bytes()
    result = _judged_again(tmp_path, "--gates", str(gates))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("portbench: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "results.json").read_bytes() == before  # nothing measured is touched
