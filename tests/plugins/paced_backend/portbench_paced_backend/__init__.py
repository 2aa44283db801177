"""A test-only portbench backend: portbench's CPU backend, slowed down by a known fraction.

The gate benchmark (``tests/bench_gate.py``) needs runs that are slower by exactly 15 % and
otherwise the same. Every ``run`` of a session here times the real predictor call and then waits a
further ``PORTBENCH_PACED_SLOWDOWN`` times that long (0.15 = 15 % slower; unset or 0 = not at all),
so each query takes (1 + fraction) times its own real cost, whatever the machine's load. The wait
spins on ``perf_counter`` instead of ``time.sleep``: a sleep of a tenth of a millisecond overshoots
by about half that on Linux, which would inject more slowdown than claimed on the sub-millisecond
ERNIE cells. The variable is one of ``env_prefixes``, so each run's manifest records its fraction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from portbench.backends.base import InferenceSession, ModelFiles, PredictorOptions, StageTimes
from portbench.backends.cpu import CpuBackend

VARIABLE = "PORTBENCH_PACED_SLOWDOWN"


def slowdown_fraction() -> float:
    text = os.environ.get(VARIABLE, "").strip()
    return float(text) if text else 0.0


def spin(seconds: float) -> None:
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


class PacedSession(InferenceSession):
    fraction: float = 0.0

    def run(self, feed: Sequence[np.ndarray]) -> list[np.ndarray]:
        start = time.perf_counter()
        outputs = super().run(feed)
        spin((time.perf_counter() - start) * self.fraction)
        return outputs

    def run_staged(self, feed: Sequence[np.ndarray], times: StageTimes) -> list[np.ndarray]:
        start = time.perf_counter()
        outputs = super().run_staged(feed, times)
        extra = (time.perf_counter() - start) * self.fraction
        spin(extra)
        times.compute += extra  # the added time is "device work" in the stage split
        return outputs

    def clone(self) -> InferenceSession:
        twin = PacedSession(self._predictor.clone(), self._backend, self.model)
        twin.fraction = self.fraction
        return twin


class PacedCpuBackend(CpuBackend):
    name = "pacedcpu"
    description = f"the CPU backend, each query slowed by ${VARIABLE} (a fraction; test only)"
    env_prefixes: ClassVar[tuple[str, ...]] = (VARIABLE,)

    def create_session(self, model: ModelFiles, options: PredictorOptions) -> InferenceSession:
        plain = super().create_session(model, options)
        session = PacedSession(plain._predictor, self, model)
        session.fraction = slowdown_fraction()
        return session


__all__ = ["PacedCpuBackend"]
