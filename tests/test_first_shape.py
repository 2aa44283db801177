"""First-shape cost pass and the timed window energy is measured over, on scripted clocks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from portbench.harness.first_shape import first_shape_record, measure_first_shapes
from portbench.harness.measure import MeasureSettings, multi_stream, offline, run_trials
from portbench.harness.workload import Query, ShapeProbe, distinct_by_shape

pytestmark = pytest.mark.fast


class ScriptedClock:
    """Nanoseconds that advance only when a probe runs, by the next scripted duration (ms)."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def runner(self, durations_ms: list[float]) -> object:
        script = iter(durations_ms)

        def run() -> None:
            self.now += int(next(script) * 1e6)

        return run


def test_first_call_against_steady_median() -> None:
    clock = ScriptedClock()
    probes = [
        ShapeProbe("det page", "640x640", (1, 3, 640, 640), clock.runner([50, 10, 12, 11])),  # type: ignore[arg-type]
        ShapeProbe("det page", "960x736", (1, 3, 960, 736), clock.runner([30, 10, 10, 14])),  # type: ignore[arg-type]
        ShapeProbe("rec width", "w=320", (6, 3, 48, 320), clock.runner([8, 4, 5, 6]), samples=6),  # type: ignore[arg-type]
    ]
    costs = measure_first_shapes(probes, repeats=3, clock=clock)
    assert [c.first_ms for c in costs] == [50, 30, 8]
    assert [c.steady_ms for c in costs] == [11, 10, 5]
    assert [c.extra_ms for c in costs] == [39, 20, 3]
    assert [c.first_of_session for c in costs] == [True, False, False]

    record = first_shape_record(costs, repeats=3)
    assert [s["label"] for s in record["shapes"]] == ["640x640", "960x736", "w=320"]
    assert record["shapes"][2]["samples"] == 6 and record["shapes"][2]["shape"] == [6, 3, 48, 320]
    # The session's first call carries predictor start-up: it stays out of the per-kind figures.
    assert record["by_kind"]["det page"]["extra_ms"]["n"] == 1
    assert record["by_kind"]["det page"]["extra_ms"]["median"] == 20
    assert record["by_kind"]["rec width"]["first_ms"]["max"] == 8


def test_synchronize_is_inside_each_timed_call() -> None:
    clock = ScriptedClock()
    calls: list[str] = []
    probe = ShapeProbe("seq len", "L=64", (8, 64), lambda: calls.append("run"))
    measure_first_shapes([probe], repeats=2, clock=clock, synchronize=lambda: calls.append("sync"))
    assert calls == ["run", "sync"] * 3


def test_distinct_by_shape_keeps_first_of_each_in_order() -> None:
    items = [(2, 3), (4, 5), (2, 3), (6, 7), (4, 5), (8, 9)]
    assert distinct_by_shape(items, lambda t: t, limit=10) == [(2, 3), (4, 5), (6, 7), (8, 9)]
    assert distinct_by_shape(items, lambda t: t, limit=2) == [(2, 3), (4, 5)]


# --- the window energy is measured over holds the timed loops and nothing else ------------------------


class WindowLog:
    def __init__(self) -> None:
        self.inside = False
        self.opened = 0
        self.calls_inside = 0
        self.calls_outside = 0

    @contextmanager
    def window(self) -> Iterator[None]:
        self.inside = True
        self.opened += 1
        try:
            yield
        finally:
            self.inside = False

    def query(self) -> Query:
        def run() -> None:
            if self.inside:
                self.calls_inside += 1
            else:
                self.calls_outside += 1

        return Query(run=run)


SETTINGS = MeasureSettings(
    warmup_queries=3,
    min_queries=5,
    max_queries=5,
    min_duration_s=0.0,
    max_duration_s=60.0,
    warmup_stable_windows=0,
)


def test_trials_window_excludes_warm_up() -> None:
    log = WindowLog()
    result = run_trials([log.query()], SETTINGS, trials=2, window=log.window)
    assert log.opened == 1
    assert log.calls_inside == sum(len(t.latencies_ns) for t in result.trials) == 10
    assert log.calls_outside == result.warmup.queries == 3


def test_offline_has_one_window_per_batch_size() -> None:
    log = WindowLog()
    offline(lambda batch: [log.query()], [1, 4], SETTINGS, window=log.window)
    assert log.opened == 2 and log.calls_inside == 10 and log.calls_outside == 6


def test_multi_stream_window_opens_after_every_stream_warmed_up() -> None:
    log = WindowLog()
    measured = multi_stream([[log.query()], [log.query()]], SETTINGS, window=log.window)
    assert log.opened == 1
    assert log.calls_inside == len(measured.latencies_ns) == 10
    assert log.calls_outside == 6
