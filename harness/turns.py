"""The turn a lockstep-timed worker process holds for each step it times (``harness.lockstep``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from portbench.errors import PortbenchError


class LockstepTimeout(PortbenchError):
    """The partner process did not hand the turn back within the cell's timeout."""


@dataclass(frozen=True)
class Turns:
    """One side of a lockstep pair: wait for ``mine``, do one step, release ``theirs``.

    Built by ``lockstep_pair`` and handed to the worker process at spawn (multiprocessing
    semaphores travel only that way)."""

    mine: Any
    theirs: Any
    timeout_s: float

    @contextmanager
    def turn(self) -> Iterator[None]:
        if not self.mine.acquire(timeout=self.timeout_s):
            raise LockstepTimeout(f"the lockstep partner kept the turn for over {self.timeout_s:g} s")
        # A step that raises keeps the turn: its partner must not time alone while this process
        # dies; the parent stops the partner once this side's error arrives.
        yield
        self.theirs.release()
