"""The turn a lockstep-timed worker process holds for each step it times (``harness.lockstep``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from portbench.errors import PortbenchError

Side = Literal["first", "second"]


class LockstepTimeout(PortbenchError):
    """The partner process did not hand the turn back within the cell's timeout."""


def owner_of_turn(turn: int) -> Side:
    """Who holds global turn ``turn`` (from 0): "first", "second", "second", "first", and again.
    This ABBA order makes each side go first in every other couple of steps, so a host whose speed
    drifts steadily favours neither side (with ABAB the side that goes second would see a host that
    has moved on by a step every time)."""
    return "first" if turn % 4 in (0, 3) else "second"


def turn_of_step(step: int, side: Side) -> int:
    """The global turn of a side's ``step``-th step (from 0) in the ABBA order."""
    offsets = (0, 3) if side == "first" else (1, 2)
    return 4 * (step // 2) + offsets[step % 2]


@dataclass(frozen=True)
class Turns:
    """One side of a lockstep pair: wait for ``mine``, do one step, then release whichever side
    holds the next turn (``owner_of_turn``).

    Built by ``lockstep_pair`` and handed to the worker process at spawn (multiprocessing
    semaphores travel only that way)."""

    mine: Any
    theirs: Any
    timeout_s: float
    side: Side = "first"  # which side the parent lets in first
    cpus: tuple[int, ...] = ()  # the CPUs both sides are pinned to (``lockstep.pair_cpus``); () = as is
    _steps: list[int] = field(default_factory=lambda: [0], repr=False, compare=False)

    @contextmanager
    def turn(self) -> Iterator[None]:
        if not self.mine.acquire(timeout=self.timeout_s):
            raise LockstepTimeout(f"the lockstep partner kept the turn for over {self.timeout_s:g} s")
        # A step that raises keeps the turn: its partner must not time alone while this process
        # dies; the parent stops the partner once this side's error arrives.
        yield
        step = self._steps[0]
        self._steps[0] = step + 1
        following = owner_of_turn(turn_of_step(step, self.side) + 1)
        (self.mine if following == self.side else self.theirs).release()
