"""Post-training INT8 quantization: settings, cache keys and reuse, bad input, and a real PP-OCRv4 run."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portbench.backends.base import ModelFiles, Precision, PredictorOptions
from portbench.errors import PortbenchError, UnknownNameError
from portbench.harness import quantize
from portbench.harness.models import resolve, sha256_file
from portbench.harness.quantize import (
    CalibrationError,
    CalibrationSet,
    QuantizationError,
    QuantizeSettings,
    cache_key_for,
    last_meaningful_line,
    quantizable_ops,
    quantize_model,
    sensitive_ops_search,
)
from portbench.suites.ocr import datagen
from portbench.suites.ocr.calibration import ocr_calibration_set
from portbench.suites.ocr.datasets import load_image
from portbench.suites.ocr.models import PPOCRV4_REC
from portbench.suites.ocr.preprocess import preprocess_det, preprocess_rec, rec_target_width

SOURCE_DIGESTS = {"inference.pdmodel": "a" * 64, "inference.pdiparams": "b" * 64}
IDS = ("calib-line-0000-clean", "calib-line-0001-clean")


def _feeds(rows: Sequence[int], value: float = 0.5) -> list[dict[str, np.ndarray]]:
    return [{"x": np.full((count, 3, 4, 4), value, dtype=np.float32)} for count in rows]


def _legacy_model(directory: Path) -> ModelFiles:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "inference.pdmodel").write_bytes(b"program")
    (directory / "inference.pdiparams").write_bytes(b"weights")
    return ModelFiles(directory / "inference.pdmodel", directory / "inference.pdiparams")


# Settings


def test_unknown_algorithm_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as raised:
        QuantizeSettings(algo="minmax")
    message = str(raised.value)
    assert "minmax" in message
    assert all(algo in message for algo in ("avg", "hist", "KL", "mse"))


@pytest.mark.parametrize(
    "kwargs",
    [{"calibration_samples": 0}, {"batch_size": 0}, {"op_types": ()}, {"skip_ops": ("",)}],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(QuantizationError):
        QuantizeSettings(**kwargs)


def test_every_known_algorithm_is_accepted() -> None:
    assert [QuantizeSettings(algo=a).algo for a in quantize.ALGORITHMS] == ["avg", "hist", "KL", "mse"]


# Cache key


def test_cache_key_is_stable_for_equal_inputs() -> None:
    settings = QuantizeSettings()
    first = cache_key_for(SOURCE_DIGESTS, settings, IDS, "f" * 64, "paddlepaddle==3.2.2")
    again = cache_key_for(
        dict(SOURCE_DIGESTS), QuantizeSettings(), list(IDS), "f" * 64, "paddlepaddle==3.2.2"
    )
    assert first == again
    # The cap and batch size act only through the ids they select.
    assert first == cache_key_for(
        SOURCE_DIGESTS,
        QuantizeSettings(calibration_samples=2, batch_size=1),
        IDS,
        "f" * 64,
        "paddlepaddle==3.2.2",
    )


@pytest.mark.parametrize(
    "change",
    ["algo", "sample_ids", "source", "paddle", "feeds", "skip_ops", "op_types"],
)
def test_cache_key_changes_with_what_shapes_the_artifact(change: str) -> None:
    base = {
        "source_digests": SOURCE_DIGESTS,
        "settings": QuantizeSettings(),
        "sample_ids": IDS,
        "feeds_digest": "f" * 64,
        "version": "paddlepaddle==3.2.2",
    }
    changed = dict(base)
    if change == "algo":
        changed["settings"] = QuantizeSettings(algo="KL")
    elif change == "sample_ids":
        changed["sample_ids"] = (*IDS[:1], "calib-line-0002-clean")
    elif change == "source":
        changed["source_digests"] = {**SOURCE_DIGESTS, "inference.pdiparams": "c" * 64}
    elif change == "paddle":
        changed["version"] = "paddlepaddle==3.3.1"
    elif change == "feeds":
        changed["feeds_digest"] = "e" * 64
    elif change == "skip_ops":
        changed["settings"] = QuantizeSettings(skip_ops=("conv2d_1.tmp_0",))
    else:
        changed["settings"] = QuantizeSettings(op_types=("conv2d",))
    assert cache_key_for(**base) != cache_key_for(**changed)


# Cache reuse and rebuild (the child replaced by a stand-in that writes files, so only caching is tested)


class FakeChild:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], int]] = []

    def __call__(
        self,
        command: str,
        source: ModelFiles,
        arguments: Mapping[str, Any],
        feeds: Sequence[Mapping[str, np.ndarray]],
        timeout_s: float,
    ) -> dict[str, Any]:
        self.calls.append((command, dict(arguments), len(feeds)))
        out = Path(arguments["out_dir"])
        (out / "inference.pdmodel").write_bytes(b"int8 program " + arguments["algo"].encode())
        (out / "inference.pdiparams").write_bytes(b"int8 weights " * 100)
        return {"quantized_ops": ["conv2d_0.tmp_0"], "skipped_ops": list(arguments["skip_ops"])}


@pytest.fixture
def fake_child(monkeypatch: pytest.MonkeyPatch) -> FakeChild:
    child = FakeChild()
    monkeypatch.setattr(quantize, "_run_child", child)
    return child


def test_second_call_reuses_the_cached_artifact(tmp_path: Path, fake_child: FakeChild) -> None:
    source = _legacy_model(tmp_path / "model")
    calibration = CalibrationSet(tuple(f"s{i}" for i in range(8)), _feeds([4, 4]), source="unit")
    settings = QuantizeSettings(batch_size=4)
    first = quantize_model(source, calibration, settings, tmp_path / "cache", model_name="toy/rec")
    second = quantize_model(source, calibration, settings, tmp_path / "cache", model_name="toy/rec")
    assert len(fake_child.calls) == 1
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.files == first.files
    assert first.files.directory.name == f"toy-rec-{first.cache_key[:16]}"
    assert first.files.directory.parent == tmp_path / "cache" / "quantized"
    record = json.loads((first.files.directory / quantize.PROVENANCE_FILE).read_text())
    assert record["files"]["inference.pdiparams"] == sha256_file(first.files.params_file)
    assert record["source"]["sha256"]["inference.pdmodel"] == sha256_file(source.model_file)
    assert record["calibration"]["sample_ids"] == [f"s{i}" for i in range(8)]
    assert record["algo"] == "avg"
    # No staging directories are left behind.
    assert [p.name for p in (tmp_path / "cache" / "quantized").iterdir()] == [first.files.directory.name]


@pytest.mark.parametrize("damage", ["truncate", "edit", "delete", "record"])
def test_corrupted_artifact_is_detected_and_rebuilt(
    tmp_path: Path, fake_child: FakeChild, damage: str
) -> None:
    source = _legacy_model(tmp_path / "model")
    calibration = CalibrationSet(tuple(f"s{i}" for i in range(4)), _feeds([4]))
    settings = QuantizeSettings(batch_size=4)
    built = quantize_model(source, calibration, settings, tmp_path / "cache")
    intact = built.files.params_file.read_bytes()
    if damage == "truncate":
        built.files.params_file.write_bytes(intact[:10])
    elif damage == "edit":
        built.files.params_file.write_bytes(b"X" + intact[1:])
    elif damage == "delete":
        built.files.params_file.unlink()
    else:
        (built.files.directory / quantize.PROVENANCE_FILE).write_text("{not json")
    notes: list[str] = []
    rebuilt = quantize_model(source, calibration, settings, tmp_path / "cache", log=notes.append)
    assert len(fake_child.calls) == 2
    assert rebuilt.from_cache is False
    assert rebuilt.rebuilt_because is not None
    assert notes == [rebuilt.rebuilt_because]
    assert rebuilt.files.params_file.read_bytes() == intact
    assert quantize_model(source, calibration, settings, tmp_path / "cache").from_cache is True


def test_only_whole_batches_up_to_the_sample_cap_are_used(tmp_path: Path, fake_child: FakeChild) -> None:
    source = _legacy_model(tmp_path / "model")
    ids = tuple(f"s{i}" for i in range(12))
    calibration = CalibrationSet(ids, _feeds([4, 4, 4]))
    built = quantize_model(source, calibration, QuantizeSettings(calibration_samples=5), tmp_path / "cache")
    assert fake_child.calls[0][2] == 2  # 4 rows, then 4 more to reach 5
    assert built.provenance["calibration"]["sample_ids"] == list(ids[:8])


# Bad input, refused before any child process starts


@pytest.fixture
def no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> dict[str, Any]:
        raise AssertionError("a child process was started")

    monkeypatch.setattr(quantize, "_run_child", refuse)


def test_calibration_smaller_than_one_batch_is_refused(tmp_path: Path, no_child: None) -> None:
    source = _legacy_model(tmp_path / "model")
    calibration = CalibrationSet(("s0", "s1", "s2"), _feeds([3]))
    with pytest.raises(CalibrationError, match=r"3 sample.*fewer than one batch of 4"):
        quantize_model(source, calibration, QuantizeSettings(batch_size=4), tmp_path / "cache")


def test_empty_calibration_set_is_refused(tmp_path: Path, no_child: None) -> None:
    source = _legacy_model(tmp_path / "model")
    with pytest.raises(CalibrationError, match="0 sample"):
        quantize_model(source, CalibrationSet((), []), QuantizeSettings(batch_size=1), tmp_path / "cache")


def test_ids_must_match_the_rows(tmp_path: Path, no_child: None) -> None:
    source = _legacy_model(tmp_path / "model")
    with pytest.raises(CalibrationError, match="names 3 samples but its feeds hold 4 rows"):
        quantize_model(source, CalibrationSet(("a", "b", "c"), _feeds([4])), QuantizeSettings(), tmp_path)


def test_pir_model_is_refused_with_a_way_out(tmp_path: Path, no_child: None) -> None:
    directory = tmp_path / "pir"
    directory.mkdir()
    (directory / "inference.json").write_text("{}")
    (directory / "inference.pdiparams").write_bytes(b"w")
    source = ModelFiles(directory / "inference.json", directory / "inference.pdiparams")
    calibration = CalibrationSet(("s0",), _feeds([1]))
    with pytest.raises(QuantizationError, match=r"legacy inference\.pdmodel") as raised:
        quantize_model(source, calibration, QuantizeSettings(batch_size=1), tmp_path / "cache")
    assert "FLAGS_enable_pir_api=0" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_child_error_line_is_the_exception_not_the_noise() -> None:
    stderr = (
        "Sampling stage, Run batch:|████| 1/2\rSampling stage, Run batch:|████| 2/2\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "ValueError: (InvalidArgument) The shape of input x is wrong\n"
        "  [Hint: Expected dims == 4] (at /paddle/phi/infermeta.cc:12)\n"
        "I1123 13:45:08.519331 15496 program_interpreter.cc:257] New Executor is Running.\n"
    )
    assert last_meaningful_line(stderr) == "ValueError: (InvalidArgument) The shape of input x is wrong"
    assert last_meaningful_line("Segmentation fault\n\n") == "Segmentation fault"
    assert last_meaningful_line("") == "no error output"


# Sensitivity search logic, with a stand-in quantizer and evaluation


def test_search_keeps_the_most_sensitive_ops_until_the_gate_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[tuple[str, ...]] = []

    def fake_quantize(
        source: ModelFiles,
        calibration: CalibrationSet,
        settings: QuantizeSettings,
        cache_root: Path,
        **_: object,
    ) -> quantize.QuantizedModel:
        built.append(settings.skip_ops)
        return quantize.QuantizedModel(
            ModelFiles(Path(",".join(settings.skip_ops) or "all"), Path("p")), cache_key="k", provenance={}
        )

    ranking = [("op_b", 0.9), ("op_a", 0.5), ("op_c", 0.1)]
    monkeypatch.setattr(quantize, "quantize_model", fake_quantize)
    monkeypatch.setattr(quantize, "op_sensitivity", lambda *a, **k: ranking)
    # Each op left in FP32 recovers a known amount of accuracy.
    recovery = {"op_b": 0.05, "op_a": 0.04, "op_c": 0.01}

    def evaluate(files: ModelFiles) -> float:
        kept = [] if files.model_file.name == "all" else files.model_file.name.split(",")
        return 0.85 + sum(recovery[name] for name in kept)

    result = sensitive_ops_search(
        ModelFiles(Path("m.pdmodel"), Path("m.pdiparams")),
        CalibrationSet(("s",), _feeds([1])),
        QuantizeSettings(batch_size=1),
        evaluate,
        reference_metric=1.0,
        gate=0.93,
        max_skipped=3,
        cache_root=tmp_path,
    )
    assert built == [(), ("op_b",), ("op_b", "op_a")]
    assert result.passed is True
    assert result.kept_fp32 == ["op_b", "op_a"]
    assert result.metric == pytest.approx(0.94)
    assert [t.passed for t in result.trials] == [False, False, True]


def test_search_stops_at_max_skipped_and_reports_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_quantize(
        source: ModelFiles,
        calibration: CalibrationSet,
        settings: QuantizeSettings,
        cache_root: Path,
        **_: object,
    ) -> quantize.QuantizedModel:
        return quantize.QuantizedModel(ModelFiles(Path("m"), Path("p")), cache_key="k", provenance={})

    monkeypatch.setattr(quantize, "quantize_model", fake_quantize)
    monkeypatch.setattr(quantize, "op_sensitivity", lambda *a, **k: [("x", 1.0), ("y", 0.5), ("z", 0.1)])
    result = sensitive_ops_search(
        ModelFiles(Path("m.pdmodel"), Path("m.pdiparams")),
        CalibrationSet(("s",), _feeds([1])),
        QuantizeSettings(batch_size=1),
        lambda _: 0.5,
        reference_metric=1.0,
        gate=0.99,
        max_skipped=2,
        cache_root=tmp_path,
    )
    assert result.passed is False
    assert result.kept_fp32 == ["x", "y"]
    assert len(result.trials) == 3


# OCR calibration sets


def test_calibration_ids_never_overlap_evaluation_ids(cache_dir: Path) -> None:
    evaluation = datagen.ensure_dataset(datagen.SYNTH_SMOKE, cache_dir / "datasets")
    eval_ids = {s.sample_id for s in evaluation.det} | {s.sample_id for s in evaluation.rec}
    rec = ocr_calibration_set("rec", datagen.SYNTH_SMOKE, cache_dir, samples=16, batch_size=4)
    det = ocr_calibration_set("det", datagen.SYNTH_SMOKE, cache_dir, samples=16, batch_size=4)
    calibration = datagen.ensure_dataset(datagen.calibration(datagen.SYNTH_SMOKE), cache_dir / "datasets")
    assert len(rec.sample_ids) == datagen.SYNTH_SMOKE.lines_clean + datagen.SYNTH_SMOKE.lines_degraded
    assert len(det.sample_ids) == datagen.SYNTH_SMOKE.pages_clean + datagen.SYNTH_SMOKE.pages_degraded
    assert not (set(rec.sample_ids) | set(det.sample_ids)) & eval_ids
    assert set(rec.sample_ids) == {s.sample_id for s in calibration.rec}
    assert set(det.sample_ids) == {s.sample_id for s in calibration.det}
    assert rec.source == calibration.name != evaluation.name


def test_calibration_rows_follow_sample_ids_and_pipeline_preprocessing(cache_dir: Path) -> None:
    calibration = datagen.ensure_dataset(datagen.calibration(datagen.SYNTH_SMOKE), cache_dir / "datasets")
    by_id = {s.sample_id: s for s in (*calibration.rec, *calibration.det)}
    rec = ocr_calibration_set("rec", datagen.SYNTH_SMOKE, cache_dir, samples=6, batch_size=4)
    assert [len(feed["x"]) for feed in rec.feeds] == [4, 2]
    first_batch = rec.feeds[0]["x"]
    crops = [load_image(by_id[i].image_path) for i in rec.sample_ids[:4]]
    width = rec_target_width(max(c.shape[1] / c.shape[0] for c in crops))
    for row, crop in enumerate(crops):
        np.testing.assert_array_equal(first_batch[row], preprocess_rec(crop, width))
    det = ocr_calibration_set("det", datagen.SYNTH_SMOKE, cache_dir, samples=2, batch_size=4)
    assert [feed["x"].shape[0] for feed in det.feeds] == [1, 1]
    expected = preprocess_det(load_image(by_id[det.sample_ids[1]].image_path))[0]
    np.testing.assert_array_equal(det.feeds[1]["x"], expected)


def test_unknown_calibration_role_is_refused(cache_dir: Path) -> None:
    with pytest.raises(PortbenchError, match="cls"):
        ocr_calibration_set("cls", datagen.SYNTH_SMOKE, cache_dir, samples=4, batch_size=4)


# Real PP-OCRv4 quantization in a child process


@pytest.fixture(scope="module")
def rec_int8(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelFiles, Any, Path]:
    cache = tmp_path_factory.mktemp("quantize")
    calibration = ocr_calibration_set("rec", datagen.SYNTH_SMOKE, cache, samples=8, batch_size=4)
    source, _ = resolve(PPOCRV4_REC)
    flag_before = os.environ.get(quantize.PIR_FLAG)
    model = quantize_model(
        source, calibration, QuantizeSettings(batch_size=4), cache, model_name=PPOCRV4_REC.name
    )
    assert os.environ.get(quantize.PIR_FLAG) == flag_before  # the child's flag never reaches us
    return source, model, cache


def _read_lines(
    files: ModelFiles, precision: Precision, cache: Path
) -> tuple[list[str], list[str], np.ndarray]:
    from portbench.backends.cpu import CpuBackend
    from portbench.suites.ocr.ctc import CTCDecoder
    from portbench.suites.ocr.models import ppocr_keys_path
    from portbench.suites.ocr.preprocess import rec_batches

    evaluation = datagen.ensure_dataset(datagen.SYNTH_SMOKE, cache / "datasets")
    lines = [s for s in evaluation.rec if s.subset == datagen.CLEAN]
    session = CpuBackend().create_session(files, PredictorOptions(precision=precision, cpu_threads=2))
    decoder = CTCDecoder.from_dictionary(ppocr_keys_path())
    texts = [""] * len(lines)
    first_probs = np.empty(0)
    for batch in rec_batches([load_image(s.image_path) for s in lines], 4):
        probs = session.run([batch.tensor])[0]
        if first_probs.size == 0:
            first_probs = probs
        for index, (text, _) in zip(batch.indices, decoder.decode(probs), strict=True):
            texts[index] = text
    return texts, [s.text for s in lines], first_probs


def test_real_int8_rec_reads_crisp_text_about_as_well_as_fp32(rec_int8: tuple[ModelFiles, Any, Path]) -> None:
    import paddle

    from portbench.suites.ocr.metrics import evaluate_recognition

    source, model, cache = rec_int8
    fp32_texts, truth, fp32_probs = _read_lines(source, Precision.FP32, cache)
    int8_texts, _, int8_probs = _read_lines(model.files, Precision.INT8, cache)
    fp32 = evaluate_recognition(fp32_texts, truth).char_accuracy
    int8 = evaluate_recognition(int8_texts, truth).char_accuracy
    assert fp32 > 0.8  # the comparison means something only if FP32 reads these lines
    assert int8 >= fp32 - 0.05
    # INT8 really ran: the probabilities moved, yet the model is the same shape of thing.
    assert int8_probs.shape == fp32_probs.shape
    assert not np.allclose(int8_probs, fp32_probs, atol=1e-4)
    assert paddle.in_dynamic_mode()  # enable_static() stayed in the child


def test_real_int8_rec_provenance_matches_the_program(rec_int8: tuple[ModelFiles, Any, Path]) -> None:
    source, model, _ = rec_int8
    ops = quantizable_ops(source)
    assert ops and all(op.op_type in quantize.DEFAULT_OP_TYPES for op in ops)
    assert sorted(model.provenance["quantized_ops"]) == sorted(op.name for op in ops)
    assert model.provenance["calibration"]["sample_count"] == 8
    assert all(i.startswith("calib-") for i in model.provenance["calibration"]["sample_ids"])
    for name, digest in model.provenance["files"].items():
        assert sha256_file(model.files.directory / name) == digest
    int8_ops = quantizable_ops(model.files, ("quantize_linear",))
    assert len(int8_ops) > 0  # the saved program really holds quantize ops


def test_unknown_skip_op_is_a_one_line_error(rec_int8: tuple[ModelFiles, Any, Path]) -> None:
    source, _, cache = rec_int8
    calibration = CalibrationSet(("s0",), [{"x": np.zeros((1, 3, 48, 320), dtype=np.float32)}])
    with pytest.raises(QuantizationError, match=r"not found.*no_such_op\.tmp_0") as raised:
        quantize_model(
            source, calibration, QuantizeSettings(batch_size=1, skip_ops=("no_such_op.tmp_0",)), cache
        )
    assert "\n" not in str(raised.value)


def test_model_without_quantizable_ops_is_a_clear_error(rec_int8: tuple[ModelFiles, Any, Path]) -> None:
    source, _, cache = rec_int8
    assert quantizable_ops(source, ("mul",)) == []  # PP-OCRv4 rec uses matmul_v2, not mul
    calibration = CalibrationSet(("s0",), [{"x": np.zeros((1, 3, 48, 320), dtype=np.float32)}])
    with pytest.raises(QuantizationError, match="no op of type mul left to quantize"):
        quantize_model(source, calibration, QuantizeSettings(batch_size=1, op_types=("mul",)), cache)


def test_wrong_feed_names_are_a_calibration_error(rec_int8: tuple[ModelFiles, Any, Path]) -> None:
    source, _, cache = rec_int8
    calibration = CalibrationSet(("s0",), [{"image": np.zeros((1, 3, 48, 320), dtype=np.float32)}])
    with pytest.raises(CalibrationError, match="model expects \\['x'\\]"):
        quantize_model(source, calibration, QuantizeSettings(batch_size=1), cache)


@pytest.mark.slow
def test_skipped_op_stays_fp32_in_the_real_model(rec_int8: tuple[ModelFiles, Any, Path]) -> None:
    source, _, cache = rec_int8
    calibration = ocr_calibration_set("rec", datagen.SYNTH_SMOKE, cache, samples=8, batch_size=4)
    first = quantizable_ops(source)[0].name
    model = quantize_model(source, calibration, QuantizeSettings(skip_ops=(first,)), cache)
    assert first not in model.provenance["quantized_ops"]
    assert model.provenance["kept_fp32_ops"] == [first]
    assert len(model.provenance["quantized_ops"]) == len(quantizable_ops(source)) - 1


# Transformer route: legacy export of a paddle.nn model, then static PTQ, then oneDNN INT8


def test_transformer_exports_to_legacy_program_and_runs_int8(tmp_path: Path) -> None:
    import paddle

    from portbench.backends.cpu import CpuBackend

    paddle.seed(7)
    layer = paddle.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.0)
    layer.eval()
    state_file = tmp_path / "layer.pdparams"
    paddle.save(layer.state_dict(), str(state_file))
    rng = np.random.default_rng(0)
    probe = rng.standard_normal((2, 10, 32)).astype(np.float32)
    expected = layer(paddle.to_tensor(probe)).numpy()

    legacy = quantize.export_legacy_program(
        "paddle.nn:TransformerEncoderLayer",
        {"d_model": 32, "nhead": 4, "dim_feedforward": 64, "dropout": 0.0},
        state_file,
        [("src", "float32", [-1, -1, 32])],
        tmp_path / "legacy",
    )
    assert legacy.model_file.name == "inference.pdmodel"
    assert {op.op_type for op in quantizable_ops(legacy)} == {"matmul_v2"}
    backend = CpuBackend()
    fp32 = backend.create_session(legacy, PredictorOptions(cpu_threads=2)).run([probe])[0]
    np.testing.assert_allclose(fp32, expected, atol=1e-4)  # the export is the same function

    feeds = [{"src": rng.standard_normal((4, 10, 32)).astype(np.float32)} for _ in range(2)]
    calibration = CalibrationSet(tuple(f"r{i}" for i in range(8)), feeds)
    model = quantize_model(legacy, calibration, QuantizeSettings(batch_size=4), tmp_path / "cache")
    assert model.provenance["quantized_op_count"] > 0
    int8 = backend.create_session(model.files, PredictorOptions(precision=Precision.INT8, cpu_threads=2))
    output = int8.run([probe])[0]
    assert output.shape == expected.shape
    # Layer-normed outputs (unit scale): INT8 moves them a little, not wholesale.
    assert 0 < float(np.abs(output - expected).mean()) < 0.1


def test_legacy_export_refuses_a_bad_factory(tmp_path: Path) -> None:
    state_file = tmp_path / "s.pdparams"
    state_file.write_bytes(b"")
    with pytest.raises(QuantizationError, match="module:callable"):
        quantize.export_legacy_program("no_colon", {}, state_file, [], tmp_path / "out")
    with pytest.raises(QuantizationError, match="cannot import factory"):
        quantize.export_legacy_program("no_such_module_xyz:f", {}, state_file, [], tmp_path / "out")
