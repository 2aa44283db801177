"""The peer benchmark's pure parts: RapidOCR settings, output adapter, scoring, verdict, table, input.

The benchmark itself (RapidOCR and portbench timed on real pages) is tests/bench_peers.py, ``tox -e peers``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from portbench.harness.results import CellResult, LatencySummary
from portbench.harness.suite import get_suite
from portbench.suites.ocr import peers
from portbench.suites.ocr.datasets import DetSample, TextLine
from portbench.suites.ocr.preprocess import DetPreprocessConfig, det_resize_hw

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast


def latency(p50: float, p90: float | None = None) -> LatencySummary:
    return LatencySummary(n=20, mean=p50, min=p50, max=p50, stdev=0.0, p50=p50, p90=p90, p99=None)


def row(
    engine: str, runtime: str, p50: float, hmean: float, char: float, dataset: str = "d"
) -> peers.PeerResult:
    return peers.PeerResult(
        engine=engine, runtime=runtime, dataset=dataset, pages=40, timed_pages=16,
        metrics={"e2e_hmean": hmean, "e2e_char_accuracy": char}, latency_ms=latency(p50, p50 * 1.1),
    )  # fmt: skip


def rect(x0: float, y0: float, x1: float, y1: float) -> tuple[tuple[float, float], ...]:
    return ((x0, y0), (x1, y0), (x1, y1), (x0, y1))


# --- RapidOCR settings ------------------------------------------------------------------------------


def test_matched_settings_are_paddleocr_system_defaults_and_the_engine_thread_option() -> None:
    ort = peers.matched_settings(peers.PEER_ENGINES["rapidocr-onnxruntime"], threads=2)
    # PaddleOCR predict_system defaults, which portbench's pipeline uses (independent of RapidOCR's own).
    assert ort["det_limit_side_len"] == 960 and ort["det_limit_type"] == "max"
    assert ort["det_mean"] == [0.485, 0.456, 0.406] and ort["det_std"] == [0.229, 0.224, 0.225]
    assert (ort["det_thresh"], ort["det_box_thresh"], ort["det_unclip_ratio"]) == (0.3, 0.6, 1.5)
    assert ort["det_use_dilation"] is False and ort["use_cls"] is False
    assert ort["text_score"] == 0.5 and ort["rec_batch_num"] == 6
    assert (ort["intra_op_num_threads"], ort["inter_op_num_threads"]) == (2, 1)
    paddle = peers.matched_settings(peers.PEER_ENGINES["rapidocr-paddle"], threads=3)
    assert paddle["cpu_math_library_num_threads"] == 3 and "intra_op_num_threads" not in paddle


def ladder(max_wh: int) -> SimpleNamespace:
    """RapidOCR 1.4's detector limit under limit_type "max", written out from its rule."""
    limit = 960 if max_wh < 960 else 1500 if max_wh < 1500 else 2000
    return SimpleNamespace(limit_side_len=limit, limit_type="max")


def fake_rapidocr(*, det_limit: int = 960, **overrides: object) -> SimpleNamespace:
    post = SimpleNamespace(thresh=0.3, box_thresh=0.6, unclip_ratio=1.5, max_candidates=1000,
                           dilation_kernel=None, score_mode="fast")  # fmt: skip
    det = SimpleNamespace(limit_side_len=960, limit_type="max", mean=np.array([0.485, 0.456, 0.406]),
                          std=np.array([0.229, 0.224, 0.225]), postprocess_op=post,
                          get_preprocess=lambda max_wh: SimpleNamespace(limit_side_len=det_limit,
                                                                         limit_type="max"))  # fmt: skip
    ocr = SimpleNamespace(use_cls=False, width_height_ratio=-1, text_score=0.5, text_det=det,
                          text_rec=SimpleNamespace(rec_batch_num=6))  # fmt: skip
    for key, value in overrides.items():
        setattr(post if hasattr(post, key) else det if hasattr(det, key) else ocr, key, value)
    return ocr


def test_effective_settings_read_back_match_what_was_asked() -> None:
    asked = peers.matched_settings(peers.PEER_ENGINES["rapidocr-onnxruntime"], threads=2)
    assert peers.settings_mismatch(asked, peers.effective_settings(fake_rapidocr())) == []


def test_a_setting_rapidocr_ignored_is_named() -> None:
    asked = peers.matched_settings(peers.PEER_ENGINES["rapidocr-paddle"], threads=2)
    ignored = peers.effective_settings(fake_rapidocr(box_thresh=0.5, dilation_kernel=np.ones((2, 2))))
    assert peers.settings_mismatch(asked, ignored) == [
        "det_box_thresh: asked 0.6, runs 0.5",
        "det_use_dilation: asked False, runs True",
    ]


def test_the_limit_read_back_is_the_one_the_detector_picks_for_a_large_page() -> None:
    # RapidOCR's attribute says 960, but its ladder detects a 1400 px page at 1500: that is named.
    asked = peers.matched_settings(peers.PEER_ENGINES["rapidocr-onnxruntime"], threads=2)
    native = peers.effective_settings(fake_rapidocr(get_preprocess=ladder))
    assert native["det_limit_side_len"] == 1500
    assert peers.settings_mismatch(asked, native) == ["det_limit_side_len: asked 960, runs 1500"]
    # The native policy knowingly leaves that limit to RapidOCR; everything else is still checked.
    assert peers.settings_mismatch(asked, native, unchecked=("det_limit_side_len",)) == []


def test_rapidocrs_own_detector_follows_the_ladder_and_pinning_fixes_the_limit() -> None:
    text_detect = pytest.importorskip("rapidocr_onnxruntime.ch_ppocr_det.text_detect")
    engine = peers.PEER_ENGINES["rapidocr-onnxruntime"]
    det = SimpleNamespace(limit_side_len=960, limit_type="max", mean=[0.485, 0.456, 0.406],
                          std=[0.229, 0.224, 0.225])  # fmt: skip
    det.get_preprocess = lambda max_wh: text_detect.TextDetector.get_preprocess(det, max_wh)
    assert [det.get_preprocess(side).limit_side_len for side in (900, 1300, 1600)] == [960, 1500, 2000]
    # A 1000 x 1300 page: the ladder leaves it at full size (rounded to 32: 992 x 1312).
    page = np.zeros((1000, 1300, 3), dtype=np.uint8)
    assert det.get_preprocess(1300).resize(page).shape[:2] == (992, 1312)

    peers.pin_det_resize(SimpleNamespace(text_det=det), engine, DetPreprocessConfig())
    assert [det.get_preprocess(side).limit_side_len for side in (900, 1300, 1600)] == [960, 960, 960]
    # Pinned: 1300 -> 960 (ratio 960/1300), 1000 -> int(738.46) = 738 -> 23 * 32 = 736, as portbench.
    assert det.get_preprocess(1300).resize(page).shape[:2] == (736, 960)
    assert det_resize_hw(1000, 1300, DetPreprocessConfig()) == (736, 960)


def test_an_unknown_resize_policy_is_refused_before_rapidocr_is_built() -> None:
    ghost = dataclasses.replace(peers.PEER_ENGINES["rapidocr-paddle"], module="no_such_rapidocr_module")
    with pytest.raises(peers.PeerSetupError, match="unknown detection resize policy 'ladder'; known: pinned"):
        peers.build_rapidocr(ghost, threads=2, det_resize="ladder")


# --- output and scoring -----------------------------------------------------------------------------


def test_rapidocr_output_becomes_pipeline_lines() -> None:
    assert peers.rapidocr_lines(None) == []
    [line] = peers.rapidocr_lines([[[[1, 2], [9, 2], [9, 6], [1, 6]], "发票", 0.93]])
    assert line.points.shape == (4, 2) and line.points.dtype == np.float32
    assert line.points[2].tolist() == [9.0, 6.0]
    assert (line.text, line.score) == ("发票", pytest.approx(0.93))


def test_score_pages_sums_counts_over_pages_and_subsets() -> None:
    page_a = DetSample("a", Path("a.png"), (TextLine(rect(0, 0, 100, 20), "合计"),
                                            TextLine(rect(0, 40, 100, 60), "电话")), "clean")  # fmt: skip
    page_b = DetSample("b", Path("b.png"), (TextLine(rect(0, 0, 100, 20), "订单"),), "degraded")
    predictions = [
        peers.rapidocr_lines([[rect(0, 0, 100, 20), "合计", 0.9], [rect(0, 40, 100, 60), "电活", 0.9]]),
        peers.rapidocr_lines([[rect(200, 200, 300, 220), "订单", 0.9]]),  # nowhere near the truth
    ]
    overall, by_subset = peers.score_pages([page_a, page_b], predictions)
    # 3 truths, 3 predictions, 2 position matches, 1 with the right text.
    assert overall["e2e_precision"] == pytest.approx(1 / 3)
    assert overall["e2e_recall"] == pytest.approx(1 / 3)
    assert overall["det_hmean"] == pytest.approx(2 / 3)
    # char accuracy over the two matched pairs: 1.0 and 1 - 1/2.
    assert overall["e2e_char_accuracy"] == pytest.approx(0.75)
    assert by_subset["e2e_recall"] == {"clean": pytest.approx(0.5), "degraded": 0.0}


def test_score_pages_refuses_a_prediction_count_that_does_not_match() -> None:
    page = DetSample("a", Path("a.png"), (), "clean")
    with pytest.raises(ValueError, match="1 predictions for 2 pages"):
        peers.score_pages([page, page], [[]])


# --- the comparison ---------------------------------------------------------------------------------


def test_best_runtime_is_the_fastest_at_the_reference_accuracy() -> None:
    results = [
        row(peers.RAPIDOCR, "onnxruntime", 400, 0.90, 0.95),
        row(peers.PORTBENCH, "paddle", 440, 0.905, 0.951),
        row(peers.PORTBENCH, "openvino", 300, 0.85, 0.95),  # faster, but 0.05 less hmean
    ]
    [verdict] = peers.judge(results)
    assert verdict.best == "portbench / paddle"
    assert verdict.ratio == pytest.approx(1.1)
    assert verdict.same_accuracy and not verdict.as_fast and not verdict.met


def test_target_met_when_a_runtime_is_as_fast_at_the_same_accuracy() -> None:
    results = [
        row(peers.RAPIDOCR, "onnxruntime", 400, 0.90, 0.95),
        row(peers.RAPIDOCR, "paddle", 600, 0.90, 0.95),
        row(peers.PORTBENCH, "paddle", 440, 0.90, 0.95),
        row(peers.PORTBENCH, "openvino", 300, 0.895, 0.946),  # within the 0.01 tolerance
    ]
    [verdict] = peers.judge(results)
    assert verdict.best == "portbench / openvino" and verdict.met
    assert verdict.ratio == pytest.approx(0.75)
    assert verdict.hmean_gap == pytest.approx(-0.005)


def test_without_an_accurate_runtime_the_fastest_is_judged_and_misses() -> None:
    results = [
        row(peers.RAPIDOCR, "onnxruntime", 400, 0.90, 0.95),
        row(peers.PORTBENCH, "paddle", 300, 0.80, 0.95),
    ]
    [verdict] = peers.judge(results)
    assert verdict.as_fast and not verdict.same_accuracy and not verdict.met


def test_one_verdict_per_dataset_and_none_without_the_reference() -> None:
    results = [
        row(peers.RAPIDOCR, "onnxruntime", 400, 0.9, 0.95, dataset="std"),
        row(peers.PORTBENCH, "paddle", 380, 0.9, 0.95, dataset="std"),
        row(peers.RAPIDOCR, "paddle", 600, 0.9, 0.95, dataset="unseen"),
        row(peers.PORTBENCH, "paddle", 380, 0.9, 0.95, dataset="unseen"),
    ]
    assert [v.dataset for v in peers.judge(results)] == ["std"]


def test_table_shows_each_row_its_ratio_and_the_verdict() -> None:
    results = [
        row(peers.RAPIDOCR, "onnxruntime", 400, 0.9, 0.95),
        row(peers.PORTBENCH, "paddle", 440, 0.9, 0.96),
    ]
    table = peers.format_table(results, peers.judge(results))
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["dataset", "engine"]
    assert lines[1].split() == [
        "d",
        "RapidOCR",
        "/",
        "onnxruntime",
        "40",
        "0.900",
        "0.950",
        "400",
        "440",
        "1.00x",
    ]
    assert lines[2].split() == [
        "d",
        "portbench",
        "/",
        "paddle",
        "40",
        "0.900",
        "0.960",
        "440",
        "484",
        "1.10x",
    ]
    assert lines[3].startswith(
        "target on d: MISSED — portbench / paddle p50 440 ms vs RapidOCR / onnxruntime 400"
    )


# --- portbench's side -------------------------------------------------------------------------------


def test_only_the_standard_suites_ocr_system_cell_is_kept() -> None:
    suite = peers.system_cells_only(get_suite("standard"))
    assert [(c.workload, c.task) for c in suite.cells] == [("ocr", "system")]


def test_a_suite_without_an_ocr_system_cell_is_refused() -> None:
    standard = get_suite("standard")
    ernie_only = dataclasses.replace(
        standard, cells=tuple(c for c in standard.cells if c.workload == "ernie")
    )
    with pytest.raises(peers.PeerSetupError, match="no OCR system cell"):
        peers.system_cells_only(ernie_only)


def test_options_run_the_cpu_backend_at_the_peer_thread_count_on_the_given_pages() -> None:
    suite = peers.system_cells_only(get_suite("standard"))
    unseen = peers.PeerDataset("unseen-40", Path("/data/unseen"), 40, override=True)
    options = peers.portbench_options(suite, "paddle", 2, unseen)
    assert options.backends == ("cpu",) and options.cpu_threads == 2
    assert dict(options.dataset_dirs) == {"ocr": Path("/data/unseen")}
    own = peers.PeerDataset("synth-standard", Path("/cache/x"), 80, override=False)
    assert dict(peers.portbench_options(suite, "paddle", 2, own).dataset_dirs) == {}


def test_each_portbench_run_asks_for_exactly_one_runtime() -> None:
    suite = peers.system_cells_only(get_suite("standard"))
    dataset = peers.PeerDataset("d", Path("/d"), 1, override=False)
    assert peers.portbench_options(suite, "openvino", 2, dataset).runtimes == ("openvino",)


def cell(status: str, task: str = "system", runtime: str = "paddle") -> CellResult:
    return CellResult(cell_id=f"ocr/{task}", workload="ocr", task=task, model="m", backend="cpu",
                      runtime=runtime, precision="fp32", scenario="single-stream", dataset="d", status=status,  # type: ignore[arg-type]
                      reason="boom" if status == "failed" else None,
                      latency_ms=latency(450.0) if status == "passed" else None)  # fmt: skip


def test_the_runs_system_cell_is_found_and_must_have_passed() -> None:
    found = peers.system_cell(
        [cell("passed", "det"), cell("passed", runtime="openvino"), cell("passed")], "paddle"
    )
    assert (found.task, found.runtime) == ("system", "paddle")
    with pytest.raises(peers.PeerSetupError, match="failed: boom"):
        peers.system_cell([cell("failed")], "paddle")
    with pytest.raises(peers.PeerSetupError, match="found 0"):
        peers.system_cell([cell("passed", "det"), cell("passed", runtime="openvino")], "paddle")


# --- settings from the environment ------------------------------------------------------------------


def test_environment_defaults() -> None:
    config = peers.PeerConfig.from_environment({})
    assert config.runtimes == ("paddle",) and config.threads == 2
    assert config.engines == ("rapidocr-onnxruntime", "rapidocr-paddle")
    assert config.datasets == ("standard", "unseen")
    assert config.det_resize == "pinned"


def test_environment_chooses_rapidocrs_native_resize() -> None:
    assert peers.PeerConfig.from_environment({"PORTBENCH_PEER_DET_RESIZE": " native"}).det_resize == "native"


def test_environment_lists_are_stripped_and_deduplicated() -> None:
    config = peers.PeerConfig.from_environment(
        {"PORTBENCH_PEER_RUNTIMES": " paddle, openvino ,paddle,", "PORTBENCH_PEER_DATASETS": "unseen"}
    )
    assert config.runtimes == ("paddle", "openvino") and config.datasets == ("unseen",)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PORTBENCH_PEER_RUNTIMES", " , ", "names nothing"),
        (
            "PORTBENCH_PEER_ENGINES",
            "rapidocr-tensorrt",
            "unknown rapidocr-tensorrt; known: rapidocr-onnxruntime",
        ),
        ("PORTBENCH_PEER_DATASETS", "icdar", "unknown icdar"),
        ("PORTBENCH_PEER_THREADS", "two", "whole number"),
        ("PORTBENCH_PEER_THREADS", "0", "at least 1"),
        ("PORTBENCH_PEER_DET_RESIZE", "full", "must be one of pinned, native, got 'full'"),
    ],
)
def test_bad_environment_is_one_clear_error(variable: str, value: str, message: str) -> None:
    with pytest.raises(peers.PeerSetupError, match=message):
        peers.PeerConfig.from_environment({variable: value})


def test_unknown_dataset_is_refused_before_anything_is_generated(tmp_path: Path) -> None:
    with pytest.raises(peers.PeerSetupError, match="unknown peer dataset 'icdar'"):
        peers.prepare_datasets(["icdar"], get_suite("standard"), tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_missing_engine_package_is_named_with_its_install_command() -> None:
    ghost = dataclasses.replace(peers.PEER_ENGINES["rapidocr-paddle"], module="no_such_rapidocr_module")
    assert ghost.missing_reason() == (
        "no_such_rapidocr_module is not installed: pip install 'portbench[peers]' (rapidocr-paddle==1.4.5)"
    )
