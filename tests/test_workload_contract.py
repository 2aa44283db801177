"""What the built-in workloads declare through the contract: task scoring, roles, cell naming, the
files a user supplied, and the shape ranges a compiled engine receives (hand-derived expectations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portbench.backends.base import Precision, PredictorOptions
from portbench.backends.cuda import TensorRTBackend
from portbench.harness.workload import TaskSpec, create_workload, workload_names

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast


class RecordingConfig:
    def __init__(self) -> None:
        self.calls: dict[str, tuple[object, ...]] = {}

    def __getattr__(self, name: str) -> object:
        def record(*args: object, **kwargs: object) -> None:
            self.calls[name] = args

        return record


def spec(workload: str, task: str, model: str = "m", **params: object) -> TaskSpec:
    return TaskSpec(workload, task, model, "d", params)


def test_built_in_workloads_are_registered_and_declare_every_task() -> None:
    assert {"ocr", "ernie"} <= set(workload_names())
    ocr, ernie = create_workload("ocr"), create_workload("ernie")
    assert set(ocr.tasks()) == {"det", "rec", "system"}
    assert set(ernie.tasks()) == {"cls", "perf"}
    assert ocr.tasks()["system"].headline == ("e2e_hmean",)
    assert ernie.tasks()["cls"].headline == ("accuracy", "macro_f1")
    assert ernie.tasks()["perf"].headline == ()  # synthetic weights: nothing to gate
    assert all(m.higher_is_better for t in ocr.tasks().values() for m in t.metrics)


def test_ocr_rec_shape_ranges_follow_paddleocr_and_the_cell_s_batches() -> None:
    ocr = create_workload("ocr")
    ranges = ocr.shape_ranges(spec("ocr", "rec", batch_size=6, batch_sizes=[1, 6, 12]), "rec")
    # Height 48; widths 10..2304 (PaddleOCR's TensorRT range); opt at the base width 320 and the cell's
    # own batch of 6, max at the offline sweep's largest batch of 12.
    assert ranges == {"x": ((1, 3, 48, 10), (6, 3, 48, 320), (12, 3, 48, 2304))}
    det = ocr.shape_ranges(spec("ocr", "system"), "det")
    assert det == {"x": ((1, 3, 32, 32), (1, 3, 640, 640), (1, 3, 960, 960))}


def test_ernie_shape_ranges_vary_only_the_batch() -> None:
    ernie = create_workload("ernie")
    ranges = ernie.shape_ranges(spec("ernie", "cls", seq_len=64, batch_size=8), "model")
    assert ranges == {
        "input_ids": ((1, 64), (8, 64), (8, 64)),
        "token_type_ids": ((1, 64), (8, 64), (8, 64)),
    }


def test_tensorrt_receives_the_workload_s_ranges() -> None:
    ranges = create_workload("ocr").shape_ranges(spec("ocr", "rec", batch_size=6), "rec")
    config = RecordingConfig()
    TensorRTBackend().configure(config, PredictorOptions(precision=Precision.FP16, dynamic_shapes=ranges))
    min_shapes, max_shapes, opt_shapes = config.calls["set_trt_dynamic_shape_info"]
    assert min_shapes == {"x": [1, 3, 48, 10]}
    assert opt_shapes == {"x": [6, 3, 48, 320]}
    assert max_shapes == {"x": [6, 3, 48, 2304]}


def test_cells_name_the_user_model_that_replaced_the_registered_one(tmp_path: Path) -> None:
    ocr, ernie = create_workload("ocr"), create_workload("ernie")
    mine = tmp_path / "my_rec_infer"
    system = TaskSpec("ocr", "system", "ppocrv4-mobile-system", "d", model_dirs={"rec": mine})
    assert ocr.model_label(system) == "ppocrv4-mobile-system+rec=user:my_rec_infer"
    rec = TaskSpec("ocr", "rec", "ppocrv4-mobile-rec", "d", model_dirs={"rec": mine})
    assert ocr.model_label(rec) == "user:my_rec_infer"
    # A det directory does not touch a rec-only cell.
    assert ocr.model_label(TaskSpec("ocr", "rec", "ppocrv4-mobile-rec", "d", model_dirs={"det": mine})) == (
        "ppocrv4-mobile-rec"
    )
    cls = TaskSpec("ernie", "cls", "ernie-sentiment", "d", model_dirs={"model": tmp_path / "ckpt"})
    assert ernie.model_label(cls) == "user:ckpt"


def test_supplied_files_are_the_user_s_directory_as_given(tmp_path: Path) -> None:
    ocr = create_workload("ocr")
    mine = tmp_path / "export"
    (mine / "nested").mkdir(parents=True)
    for name in ("inference.pdmodel", "inference.pdiparams", "README"):
        (mine / name).write_bytes(b"x")
    spec_ = TaskSpec("ocr", "system", "ppocrv4-mobile-system", "d", model_dirs={"rec": mine})
    assert [p.name for p in ocr.supplied_files(spec_, "rec")] == [
        "README",
        "inference.pdiparams",
        "inference.pdmodel",
    ]
    assert ocr.supplied_files(spec_, "det") == ()  # the registered det model: nothing supplied


def test_ernie_data_files_are_the_user_tsv_and_none_for_synthetic_tokens(tmp_path: Path) -> None:
    tsv = tmp_path / "eval.tsv"
    tsv.write_text("好\tpositive\n", encoding="utf-8")
    ernie = create_workload("ernie")
    assert list(ernie.data_files(TaskSpec("ernie", "cls", "m", "user", {}, dataset_dir=tsv))) == [tsv]
    assert list(ernie.data_files(spec("ernie", "perf", shape="pico"))) == []
