"""First-shape cost: what the first call of each new input shape costs against its steady state.

Runs in its own pass, first thing after the sessions are bound to data (before the accuracy pass,
the cold-start figure and the timed loops, all of which would warm the shapes up), so every probe
meets its shape for the first time in this process — as a server does after a deploy. A device that
compiles per shape (Ascend CANN, TensorRT without a profile for it, oneDNN primitive creation on the
CPU) pays it in the first call. The first probe also carries whatever the predictor does on its very
first run, which is why results keep the order and mark it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from portbench.harness.workload import ShapeProbe

Clock = Callable[[], int]  # monotonic nanoseconds
Synchronize = Callable[[], None]
STEADY_REPEATS = 5


@dataclass(frozen=True)
class FirstShapeCost:
    kind: str
    label: str
    shape: tuple[int, ...]
    samples: int
    first_ms: float
    steady_samples_ms: tuple[float, ...]
    first_of_session: bool  # the predictor's first run of any shape

    @property
    def steady_ms(self) -> float:
        return statistics.median(self.steady_samples_ms)

    @property
    def extra_ms(self) -> float:
        """What meeting the shape cost beyond a steady call."""
        return self.first_ms - self.steady_ms


def measure_first_shapes(
    probes: Sequence[ShapeProbe],
    *,
    repeats: int = STEADY_REPEATS,
    clock: Clock = time.perf_counter_ns,
    synchronize: Synchronize | None = None,
    already_run: frozenset[int] = frozenset(),
) -> list[FirstShapeCost]:
    """Each probe's first call, then ``repeats`` more of the same shape (their median is its steady
    state). ``already_run`` holds sessions (``id``) that ran before, so no probe claims their first
    run; by default the first probe is the session's first."""
    if repeats < 1:
        raise ValueError("need at least one steady-state repeat")

    def timed(run: Callable[[], object]) -> float:
        t0 = clock()
        run()
        if synchronize is not None:
            synchronize()
        return (clock() - t0) / 1e6

    costs = []
    for position, probe in enumerate(probes):
        first = timed(probe.run)
        steady = tuple(timed(probe.run) for _ in range(repeats))
        costs.append(
            FirstShapeCost(
                kind=probe.kind,
                label=probe.label,
                shape=tuple(probe.shape),
                samples=probe.samples,
                first_ms=first,
                steady_samples_ms=steady,
                first_of_session=position == 0 and not already_run,
            )
        )
    return costs


def _distribution(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def first_shape_record(costs: Sequence[FirstShapeCost], repeats: int = STEADY_REPEATS) -> dict[str, Any]:
    """What results store: every shape (first call, steady median and its samples, the extra), and
    per kind the distribution of the extra cost over the shapes that were not the session's first."""
    shapes = []
    for cost in costs:
        entry: dict[str, Any] = asdict(cost)
        entry["shape"] = list(cost.shape)
        entry["steady_samples_ms"] = list(cost.steady_samples_ms)
        entry["steady_ms"] = cost.steady_ms
        entry["extra_ms"] = cost.extra_ms
        shapes.append(entry)
    by_kind: dict[str, Any] = {}
    for kind in dict.fromkeys(c.kind for c in costs):
        of_kind = [c for c in costs if c.kind == kind and not c.first_of_session]
        if of_kind:
            by_kind[kind] = {
                "extra_ms": _distribution([c.extra_ms for c in of_kind]),
                "first_ms": _distribution([c.first_ms for c in of_kind]),
                "steady_ms": _distribution([c.steady_ms for c in of_kind]),
            }
    return {
        "pass": "own pass before any other inference of the cell, shapes in data order",
        "repeats": repeats,
        "shapes": shapes,
        "by_kind": by_kind,
    }
