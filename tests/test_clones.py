"""Concurrent streams' predictors: Paddle's weight-sharing clone, or one of their own."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from portbench.backends.base import InferenceSession
from portbench.backends.cpu import CpuBackend

pytestmark = pytest.mark.fast


class FakePredictor:
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def get_input_names(self) -> list[str]:
        return ["x"]

    def get_output_names(self) -> list[str]:
        return ["y"]

    def get_input_handle(self, name: str) -> Any:
        return name

    def get_output_handle(self, name: str) -> Any:
        return name

    def clone(self) -> FakePredictor:
        return FakePredictor(f"clone of {self.origin}")


class SharingBackend(CpuBackend):
    independent_clones: ClassVar[bool] = False


def test_cpu_clones_are_predictors_of_their_own() -> None:
    built: list[str] = []

    def recreate() -> FakePredictor:
        built.append("new")
        return FakePredictor(f"fresh {len(built)}")

    backend = CpuBackend(flags=frozenset({"avx512f"}), arch="x86_64")
    session = InferenceSession(FakePredictor("original"), backend, model=None, recreate=recreate)  # type: ignore[arg-type]
    twin = session.clone()
    assert twin._predictor.origin == "fresh 1" and built == ["new"]
    assert twin.clone()._predictor.origin == "fresh 2"  # a clone's clone is fresh too


def test_backends_that_allow_sharing_use_paddles_clone() -> None:
    backend = SharingBackend(flags=frozenset(), arch="x86_64")
    session = InferenceSession(FakePredictor("original"), backend, model=None, recreate=lambda: 1 / 0)  # type: ignore[arg-type]
    assert session.clone()._predictor.origin == "clone of original"
