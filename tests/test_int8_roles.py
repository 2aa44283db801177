"""Per-role INT8 (the ``int8_roles`` cell parameter): which roles an INT8 cell quantizes, what its
predictors are told, what its ``quantization`` record says, and misspelt roles refused before any
cell runs. Fakes stand in for Paddle, so nothing here quantizes a real model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from test_cli import assert_one_line_error, portbench

from portbench.backends.base import ModelFiles, Precision, PredictorOptions, Session
from portbench.errors import PortbenchError
from portbench.harness import api, worker
from portbench.harness.config import CellPlan, RunOptions
from portbench.harness.measure import MeasureSettings
from portbench.harness.suite import parse_suite, read_document
from portbench.harness.workload import PreparedTask, TaskInfo, TaskSpec, Workload, create_workload

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast


def ocr_system(**params: object) -> TaskSpec:
    return TaskSpec("ocr", "system", "ppocrv4-mobile-system", "synth-smoke", params)


def test_default_is_every_role_of_the_task() -> None:
    ocr = create_workload("ocr")
    assert ocr.int8_roles(ocr_system()) == ("det", "rec")
    assert ocr.int8_roles(TaskSpec("ocr", "rec", "m", "d")) == ("rec",)
    assert create_workload("ernie").int8_roles(TaskSpec("ernie", "cls", "m", "d")) == ("model",)


def test_chosen_roles_come_back_in_the_task_s_order() -> None:
    ocr = create_workload("ocr")
    assert ocr.int8_roles(ocr_system(int8_roles=["rec"])) == ("rec",)
    assert ocr.int8_roles(ocr_system(int8_roles=["rec", "det"])) == ("det", "rec")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (["cls"], "unknown ocr system role (in int8_roles) 'cls'; known: det, rec"),
        ("rec", "must be a non-empty list of distinct role names (det, rec), got 'rec'"),
        ([], "must be a non-empty list"),
        (["rec", "rec"], "must be a non-empty list of distinct role names"),
        ([1], "must be a non-empty list"),
    ],
)
def test_bad_int8_roles_are_one_line_errors(value: object, fragment: str) -> None:
    with pytest.raises(PortbenchError) as caught:
        create_workload("ocr").int8_roles(ocr_system(int8_roles=value))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


# --- the worker: which roles get INT8 models and INT8 predictors ------------------------------------


class TwoRoleWorkload(Workload):
    name = "two-roles"
    description = "det and rec, no data"

    def tasks(self) -> Mapping[str, TaskInfo]:
        return {"system": TaskInfo("system", "two models")}

    def roles(self, spec: TaskSpec) -> Sequence[str]:
        return ("det", "rec")

    def models_for(self, spec: TaskSpec) -> Mapping[str, ModelFiles]:
        return {role: ModelFiles(Path(f"/fp32/{role}.pdmodel"), Path(f"/fp32/{role}.pdiparams"))
                for role in ("det", "rec")}

    def prepare(self, spec: TaskSpec, sessions: Mapping[str, Session]) -> PreparedTask:
        raise AssertionError("not reached")


class FakeBackend:
    name = "cpu"
    int8_needs_quantized_model = True


class RecordingRuntime:
    name = "paddle"
    int8_route = "paddle-ptq"

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[ModelFiles, Precision]] = {}

    def model_format(self, files: ModelFiles) -> str:
        return "paddle"

    def create_session(self, backend: object, model: ModelFiles, options: PredictorOptions) -> str:
        self.sessions[model.model_file.stem] = (model, options.precision)
        return f"session:{model.model_file}"


def open_system(
    monkeypatch: pytest.MonkeyPatch, precision: Precision, **params: object
) -> tuple[worker.OpenedModels, RecordingRuntime, list[str]]:
    quantized: list[str] = []

    def fake_quantized(
        workload: Workload, plan: CellPlan, role: str, files: ModelFiles
    ) -> tuple[ModelFiles, dict[str, Any]]:
        quantized.append(role)
        int8 = ModelFiles(Path(f"/int8/{role}.pdmodel"), Path(f"/int8/{role}.pdiparams"))
        return int8, {"settings": {"algo": "avg"}, "key": f"k-{role}"}

    monkeypatch.setattr(worker, "_quantized", fake_quantized)
    monkeypatch.setattr(worker, "hash_model_files", lambda files: {files.model_file.name: "0" * 64})
    spec = TaskSpec("two-roles", "system", "pipeline", "d", params)
    plan = CellPlan(
        cell_id="c", spec=spec, backend="cpu", device_id=0, precision=precision, scenario="single-stream",
        measure=MeasureSettings(), trials=1, mode="accuracy", cpu_threads=1,
    )
    runtime = RecordingRuntime()
    opened = worker._open_sessions(FakeBackend(), TwoRoleWorkload(), plan, runtime)  # type: ignore[arg-type]
    return opened, runtime, quantized


def test_int8_rec_only_keeps_det_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    opened, runtime, quantized = open_system(monkeypatch, Precision.INT8, int8_roles=["rec"])
    assert quantized == ["rec"]
    assert runtime.sessions["det"] == (
        ModelFiles(Path("/fp32/det.pdmodel"), Path("/fp32/det.pdiparams")), Precision.FP32
    )
    assert runtime.sessions["rec"] == (
        ModelFiles(Path("/int8/rec.pdmodel"), Path("/int8/rec.pdiparams")), Precision.INT8
    )
    assert opened.quantization is not None
    assert opened.quantization["rec"] == {"precision": "int8", "settings": {"algo": "avg"}, "key": "k-rec"}
    assert opened.quantization["det"]["precision"] == "fp32"
    names = {record.role: record.name for record in opened.records}
    assert names == {"det": "pipeline", "rec": "pipeline-int8-avg"}
    assert "det_quantize_s" not in opened.cold_start and "rec_quantize_s" in opened.cold_start


def test_int8_without_the_parameter_quantizes_every_role(monkeypatch: pytest.MonkeyPatch) -> None:
    opened, runtime, quantized = open_system(monkeypatch, Precision.INT8)
    assert quantized == ["det", "rec"]
    assert {role: precision for role, (_, precision) in runtime.sessions.items()} == {
        "det": Precision.INT8, "rec": Precision.INT8,
    }
    assert opened.quantization is not None
    assert {role: record["precision"] for role, record in opened.quantization.items()} == {
        "det": "int8", "rec": "int8",
    }


def test_fp32_cells_ignore_int8_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    opened, runtime, quantized = open_system(monkeypatch, Precision.FP32, int8_roles=["rec"])
    assert quantized == [] and opened.quantization is None
    assert {precision for _, precision in runtime.sessions.values()} == {Precision.FP32}


# --- planning: a misspelt role fails before any cell runs ---------------------------------------------

SUITE = """
[suite]
name = "int8-roles"
description = "OCR system with det FP32"
precisions = ["int8"]

[[cells]]
workload = "ocr"
task = "system"
model = "ppocrv4-mobile-system"
dataset = "synth-smoke"
label = "int8-rec"
params = { int8_roles = ["recognition"] }
"""


def test_plan_refuses_an_unknown_role_naming_the_cell(tmp_path: Path) -> None:
    suite = parse_suite(read_document(SUITE, "s.toml"), "s.toml")
    options = RunOptions(suite="int8-roles", backends=("cpu",), cache_dir=tmp_path / "cache")
    with pytest.raises(PortbenchError) as caught:
        api.plan_run(suite, options, tmp_path / "run")
    message = str(caught.value)
    assert message.startswith("cell ocr/system/ppocrv4-mobile-system@int8-rec/cpu/paddle/int8/single-stream:")
    assert "'recognition'; known: det, rec" in message
    assert not (tmp_path / "run").exists()


def test_cli_refuses_an_unknown_role_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SUITE, encoding="utf-8")
    result = portbench("run", "--suite", str(path), "--backend", "cpu", "--out", str(tmp_path / "run"),
                       "--cache-dir", str(tmp_path / "cache"))
    assert_one_line_error(result, "int8_roles", "'recognition'", "det, rec")
    assert not (tmp_path / "run").exists()
