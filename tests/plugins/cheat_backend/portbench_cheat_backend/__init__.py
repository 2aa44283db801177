"""A test-only portbench backend that cheats in the two ways portbench's audits look for.

``PORTBENCH_CHEAT`` picks the cheat:

- ``stale``: cloned predictors (the ones concurrent scenarios such as ``server`` run on) answer an
  input of the shape they saw last with the output they computed last, skipping the work. The
  original predictor, which the accuracy pass uses, stays honest, so accuracy looks right while the
  timed answers are wrong: the outputs audit (after MLPerf TEST01) must fail the cell.
- ``repeat``: every predictor returns its previous output, without running, when handed the very
  same input again. Answers stay right; repeated inputs cost nothing: the cache audit (after MLPerf
  TEST04) must fail the cell.

Unset: portbench's CPU backend, unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from portbench.backends.base import InferenceSession, ModelFiles, PredictorOptions
from portbench.backends.cpu import CpuBackend

VARIABLE = "PORTBENCH_CHEAT"


class CheatSession(InferenceSession):
    cheat: str = ""
    is_clone: bool = False
    _last_feed: list[np.ndarray] | None = None
    _last_outputs: list[np.ndarray] | None = None

    def _same_shapes(self, feed: Sequence[np.ndarray]) -> bool:
        last = self._last_feed
        return last is not None and [a.shape for a in last] == [a.shape for a in feed]

    def _same_input(self, feed: Sequence[np.ndarray]) -> bool:
        last = self._last_feed
        return (
            last is not None
            and self._same_shapes(feed)
            and all(np.array_equal(a, b) for a, b in zip(last, feed, strict=True))
        )

    def run(self, feed: Sequence[np.ndarray]) -> list[np.ndarray]:
        cached = self._last_outputs
        if cached is not None and (
            (self.cheat == "stale" and self.is_clone and self._same_shapes(feed))
            or (self.cheat == "repeat" and self._same_input(feed))
        ):
            self._last_feed = list(feed)
            return cached
        outputs = super().run(feed)
        self._last_feed, self._last_outputs = list(feed), outputs
        return outputs

    def clone(self) -> InferenceSession:
        twin = CheatSession(self._predictor.clone(), self._backend, self.model)
        twin.cheat, twin.is_clone = self.cheat, True
        return twin


class CheatCpuBackend(CpuBackend):
    name = "cheatcpu"
    description = f"the CPU backend cheating as ${VARIABLE} says (stale | repeat; test only)"
    env_prefixes: ClassVar[tuple[str, ...]] = (VARIABLE,)

    def create_session(self, model: ModelFiles, options: PredictorOptions) -> InferenceSession:
        plain = super().create_session(model, options)
        session = CheatSession(plain._predictor, self, model)
        session.cheat = os.environ.get(VARIABLE, "").strip()
        return session


__all__ = ["CheatCpuBackend"]
