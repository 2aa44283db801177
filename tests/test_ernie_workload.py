"""ERNIE reference build (tiny recipe), workload tasks, synthetic shapes and user models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from ernie_fixtures import TINY_RECIPE, make_spec

from portbench.backends.base import InferenceSession, PredictorOptions
from portbench.backends.cpu import CpuBackend
from portbench.errors import DatasetError, ModelError, PortbenchError
from portbench.harness.suite import get_suite
from portbench.suites.ernie.reference import (
    DEFAULT_RECIPE,
    MANIFEST,
    build_reference_model,
    build_with_report,
    corpus_examples,
    ensure_reference_model,
    load_reference,
)
from portbench.suites.ernie.workload import REFERENCE_DATASET, SYNTHETIC_DATASET, ErnieWorkload


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("portbench_cache")


@pytest.fixture(scope="module")
def tiny_build(cache_dir: Path):  # type: ignore[no-untyped-def]
    return ensure_reference_model(cache_dir / "models", TINY_RECIPE)


def session_for(files) -> InferenceSession:  # type: ignore[no-untyped-def]
    return CpuBackend().create_session(files, PredictorOptions(cpu_threads=1))


def test_build_layout_manifest_and_hashes(tiny_build) -> None:  # type: ignore[no-untyped-def]
    directory = tiny_build.directory
    names = {p.name for p in directory.iterdir()}
    assert {
        "inference.json",
        "inference.pdiparams",
        "vocab.txt",
        "labels.txt",
        "model_config.json",
        "model_state.pdparams",
        MANIFEST,
    } <= names
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    assert set(manifest["sha256"]) == names - {MANIFEST}
    assert manifest["synthetic_weights"] is False
    splits = manifest["splits"]
    assert len(splits["test"]) == 300 and len(splits["calib"]) == 100 and len(splits["train"]) == 1000
    assert not set(splits["train"]) & set(splits["test"]) and not set(splits["calib"]) & set(splits["test"])
    assert 0.0 <= manifest["test"]["accuracy"] <= 1.0 and manifest["build_seconds"] > 0
    assert directory.name.startswith("ernie-sentiment-") and directory.parent == tiny_build.directory.parent
    # Cached: a second ensure reuses the directory (same build time recorded, no rebuild).
    again = ensure_reference_model(directory.parent, TINY_RECIPE)
    assert again.build_seconds == tiny_build.build_seconds
    assert TINY_RECIPE.digest() != DEFAULT_RECIPE.digest()


def test_corrupted_build_fails_its_hash_check(tiny_build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    copy = tmp_path / tiny_build.directory.name
    shutil.copytree(tiny_build.directory, copy)
    (copy / "vocab.txt").write_text("[PAD]\n", encoding="utf-8")
    with pytest.raises(ModelError, match="sha256"):
        load_reference(copy)


def test_same_seed_builds_identical_weights(tiny_build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    second = build_reference_model(tmp_path / "models", TINY_RECIPE)
    assert second.accuracy == tiny_build.accuracy and second.macro_f1 == tiny_build.macro_f1
    first_state = paddle.load(str(tiny_build.directory / "model_state.pdparams"), return_numpy=True)
    second_state = paddle.load(str(second.directory / "model_state.pdparams"), return_numpy=True)
    assert first_state.keys() == second_state.keys()
    for key in first_state:
        np.testing.assert_array_equal(first_state[key], second_state[key], err_msg=key)
    assert second.manifest["splits"] == tiny_build.manifest["splits"]


def test_cls_task_scores_exported_model_like_the_build(cache_dir: Path, tiny_build) -> None:  # type: ignore[no-untyped-def]
    workload = ErnieWorkload(reference_recipe=TINY_RECIPE)
    spec = make_spec(
        "ernie",
        "cls",
        "ernie-sentiment",
        REFERENCE_DATASET,
        {"cache_dir": str(cache_dir), "seq_len": 32, "batch_size": 16},
    )
    assert not workload.synthetic_weights(spec) and workload.model_name(spec, "model") == "ernie-sentiment"
    files = workload.models_for(spec)["model"]
    assert files.directory == tiny_build.directory
    task = workload.prepare(spec, {"model": session_for(files)})
    result = task.evaluate()
    assert result.samples == 300 and len(result.outputs) == 300
    # The build scored the dygraph model; the workload scores the export through Paddle Inference.
    assert result.metrics["accuracy"] == pytest.approx(tiny_build.accuracy, abs=1 / 300)
    assert result.metrics["macro_f1"] == pytest.approx(tiny_build.macro_f1, abs=0.01)
    first_id = tiny_build.split_ids("test")[0]
    assert len(result.outputs[first_id]) == 2
    assert len(result.stage_samples_s["inference"]) == -(-300 // 16)
    queries = task.queries()
    assert queries and queries[0].samples == 16
    logits = queries[0].run()
    assert isinstance(logits, list) and logits[0].shape == (16, 2)
    assert task.query_description()["seq_len"] == 32


def test_seq_len_beyond_model_positions_is_an_error(cache_dir: Path, tiny_build) -> None:  # type: ignore[no-untyped-def]
    workload = ErnieWorkload(reference_recipe=TINY_RECIPE)
    spec = make_spec(
        "ernie", "cls", "ernie-sentiment", REFERENCE_DATASET, {"cache_dir": str(cache_dir), "seq_len": 64}
    )
    with pytest.raises(Exception, match="exceeds the 32 positions"):
        workload.prepare(spec, {"model": session_for(tiny_build.model_files)})


def test_perf_task_on_synthetic_shape(cache_dir: Path) -> None:
    workload = ErnieWorkload(reference_recipe=TINY_RECIPE)
    spec = make_spec(
        "ernie",
        "perf",
        "ernie-3.0-pico",
        SYNTHETIC_DATASET,
        {"cache_dir": str(cache_dir), "shape": "pico", "seq_len": 48, "batch_size": 3},
    )
    assert workload.synthetic_weights(spec)
    files = workload.models_for(spec)["model"]
    manifest = json.loads((files.directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["synthetic_weights"] is True and manifest["config"]["hidden_size"] == 128
    assert workload.models_for(spec)["model"] == files  # cached, not rebuilt
    task = workload.prepare(spec, {"model": session_for(files)})
    assert task.evaluate().metrics == {}
    outputs = task.queries()[0].run()
    assert isinstance(outputs, list) and outputs[0].shape == (3, 2)
    assert task.query_description()["synthetic_weights"] is True


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{text}\t{label}\n" for text, label in rows), encoding="utf-8")
    return path


def test_user_checkpoint_is_exported_on_the_fly(cache_dir: Path, tiny_build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    checkpoint = tmp_path / "my_checkpoint"
    checkpoint.mkdir()
    for name in ("model_config.json", "model_state.pdparams", "vocab.txt"):
        shutil.copy(tiny_build.directory / name, checkpoint / name)
    examples = corpus_examples(tiny_build.split_ids("test")[:20])
    labels = tiny_build.labels
    tsv = write_tsv(tmp_path / "dev.tsv", [(e.text, labels[e.label]) for e in examples])
    workload = ErnieWorkload(reference_recipe=TINY_RECIPE)
    params = {
        "cache_dir": str(cache_dir),
        "seq_len": 32,
        "batch_size": 4,
        "model_dirs": {"model": str(checkpoint)},
        "dataset_dir": str(tsv),
    }
    spec = make_spec("ernie", "cls", "user", "user", params)
    assert workload.model_name(spec, "model") == f"user:{checkpoint}"
    files = workload.models_for(spec)["model"]
    assert files.directory != checkpoint and files.is_pir  # exported into the cache
    user_result = workload.prepare(spec, {"model": session_for(files)}).evaluate()
    reference_spec = make_spec(
        "ernie",
        "cls",
        "ernie-sentiment",
        REFERENCE_DATASET,
        {"cache_dir": str(cache_dir), "seq_len": 32, "batch_size": 4},
    )
    reference_result = workload.prepare(
        reference_spec, {"model": session_for(tiny_build.model_files)}
    ).evaluate()
    for number, example in enumerate(examples, start=1):
        np.testing.assert_allclose(
            user_result.outputs[f"dev.tsv:{number}"], reference_result.outputs[example.sample_id], atol=1e-5
        )


def test_user_model_errors(cache_dir: Path, tiny_build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    workload = ErnieWorkload(reference_recipe=TINY_RECIPE)
    export = tmp_path / "export"
    shutil.copytree(tiny_build.directory, export)
    params = {"cache_dir": str(cache_dir), "seq_len": 32, "model_dirs": {"model": str(export)}}
    session = session_for(tiny_build.model_files)
    with pytest.raises(DatasetError, match="needs evaluation data"):
        workload.prepare(make_spec("ernie", "cls", "user", "user", params), {"model": session})
    bad_tsv = write_tsv(tmp_path / "bad.tsv", [("很好", "positive"), ("一般", "neutral")])
    with pytest.raises(DatasetError, match="'neutral' is not in the label list"):
        workload.prepare(
            make_spec("ernie", "cls", "user", "user", {**params, "dataset_dir": str(bad_tsv)}),
            {"model": session},
        )
    (export / "vocab.txt").unlink()
    with pytest.raises(ModelError, match="vocabulary file not found"):
        workload.models_for(make_spec("ernie", "cls", "user", "user", params))
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(tiny_build.directory / "vocab.txt", empty / "vocab.txt")
    with pytest.raises(ModelError, match="neither an ERNIE inference export"):
        workload.models_for(
            make_spec("ernie", "cls", "user", "user", {**params, "model_dirs": {"model": str(empty)}})
        )


def test_smoke_recipe_builds_in_seconds_and_learns(cache_dir: Path) -> None:
    workload = ErnieWorkload()
    spec = make_spec(
        "ernie",
        "cls",
        "ernie-sentiment-smoke",
        REFERENCE_DATASET,
        {"cache_dir": str(cache_dir), "recipe": "smoke", "seq_len": 32, "batch_size": 8, "max_samples": 200},
    )
    assert workload.model_name(spec, "model") == "ernie-sentiment-smoke"
    files = workload.models_for(spec)["model"]
    result = workload.prepare(spec, {"model": session_for(files)}).evaluate()
    assert result.samples == 200
    # Balanced-ish reviews: a model that learned nothing sits near 0.5.
    assert result.metrics["accuracy"] > 0.6
    with pytest.raises(PortbenchError, match="unknown ERNIE reference recipe 'huge'"):
        workload.models_for(
            make_spec("ernie", "cls", "x", REFERENCE_DATASET, {"cache_dir": str(cache_dir), "recipe": "huge"})
        )


def test_build_with_report_states_scores_and_time(tmp_path: Path) -> None:
    lines: list[str] = []
    build = build_with_report(tmp_path / "models", TINY_RECIPE, lines.append)
    assert len(lines) == 1
    assert f"held-out accuracy {build.accuracy:.4f}" in lines[0] and "built in" in lines[0]


def test_suite_cells_cover_shapes_lengths_and_batches() -> None:
    sweep = get_suite("ernie-shapes").cells
    standard = [c for c in get_suite("standard").cells if c.workload == "ernie"]
    perf = [c for c in sweep if c.task == "perf"]
    assert {(c.params["shape"], c.params["seq_len"], c.params["batch_size"]) for c in perf} == {
        (shape, seq, batch)
        for shape in ("nano", "micro", "mini", "medium", "base")
        for seq in (32, 64, 128)
        for batch in (1, 8)
    }
    assert all(c.model.endswith("-synthetic") for c in perf)
    for cells in (sweep, standard):
        cls = [c for c in cells if c.task == "cls"]
        assert cls and all(c.params["seq_len"] <= DEFAULT_RECIPE.max_seq_len for c in cls)
        ids = [c.cell_id("cpu", "fp32") for c in cells]
        assert len(set(ids)) == len(ids)
    # The default suite keeps every ERNIE 3.0 size, at one length, so it stays minutes long.
    standard_perf = {c.params["shape"] for c in standard if c.task == "perf"}
    assert standard_perf == {"nano", "micro", "mini", "medium", "base"}
    assert {c.task for c in get_suite("smoke").cells if c.workload == "ernie"} == {"cls", "perf"}


@pytest.mark.slow
def test_full_reference_build_reaches_target_accuracy(tmp_path: Path) -> None:
    build = build_reference_model(tmp_path / "models")
    assert build.accuracy >= 0.85
    assert build.manifest["test"]["samples"] == DEFAULT_RECIPE.test_size
