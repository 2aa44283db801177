"""Energy over a timed window: counters read at its edges, power draws sampled in between.

The meter probes its sources once (in preference order: a later source whose scopes an earlier
available one already covers is not read), then measures any number of windows — the timed loops
of a cell. A background thread per source reads it every ``poll_interval_s``: power draws are
integrated with the trapezoidal rule over those samples, energy counters are differenced read by
read so a counter that wraps (RAPL's ``max_energy_range_uj``) is counted once per wrap. With no
available source nothing runs: the window costs nothing and the result says why there is no number.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from portbench.backends.power import PowerDomain, PowerSource

Clock = Callable[[], float]  # monotonic seconds


@dataclass(frozen=True)
class EnergyReading:
    """Energy one domain of one source used over one window."""

    source: str
    scope: str
    domain: str
    method: str  # "counter" (differenced) or "sampled" (power draw integrated)
    energy_j: float
    seconds: float
    mean_power_w: float
    readings: int  # reads the figure rests on (2 for a counter read only at the edges)


@dataclass(frozen=True)
class SourceProblem:
    source: str
    scopes: tuple[str, ...]
    reason: str


@dataclass
class EnergyWindow:
    seconds: float
    readings: list[EnergyReading] = field(default_factory=list)
    errors: list[SourceProblem] = field(default_factory=list)  # sources that failed mid-window


def counter_delta(before: float, after: float, wrap: float | None) -> float:
    """Energy between two counter reads; a counter that went down wrapped once at ``wrap``."""
    if after >= before:
        return after - before
    if wrap is None or wrap <= 0:
        raise ValueError(f"energy counter went down ({before} -> {after}) and has no wrap range")
    return after + wrap - before


def trapezoid_j(samples: Sequence[tuple[float, float]]) -> float:
    """Integral of power (W) over time (s) through ``(t, watts)`` samples in time order."""
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in itertools.pairwise(samples))


class _SourceRecorder:
    """Reads one source during one window (its own thread, so a slow tool delays no other)."""

    def __init__(self, source: PowerSource, clock: Clock) -> None:
        self.source = source
        self.clock = clock
        self.domains = {d.name: d for d in source.domains()}
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in self.domains}
        self.energy: dict[str, float] = dict.fromkeys(self.domains, 0.0)
        self.reads: dict[str, int] = dict.fromkeys(self.domains, 0)
        self._last: dict[str, float] = {}
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read_once(self) -> None:
        try:
            values = self.source.read()
        except Exception as error:  # a tool that fails mid-run loses this source, not the cell
            self.error = self.error or f"{type(error).__name__}: {error}"
            return
        now = self.clock()
        for name, value in values.items():
            if name not in self.domains:
                continue
            self.reads[name] += 1
            if self.source.kind == "counter":
                if name in self._last:
                    try:
                        self.energy[name] += counter_delta(self._last[name], value, self.domains[name].wrap_j)
                    except ValueError as error:
                        self.error = self.error or str(error)
                self._last[name] = value
            else:
                self.samples[name].append((now, value))

    def _poll(self) -> None:
        while not self._stop.wait(self.source.poll_interval_s):
            self.read_once()

    def start(self) -> None:
        self.read_once()
        self._thread = threading.Thread(
            target=self._poll, name=f"portbench-power-{self.source.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.read_once()

    def results(self, seconds: float) -> list[EnergyReading]:
        readings = []
        for name, domain in self.domains.items():
            if self.source.kind == "counter":
                if self.reads[name] < 2:
                    continue
                energy, span = self.energy[name], seconds
            else:
                points = self.samples[name]
                if len(points) < 2:
                    continue
                energy, span = trapezoid_j(points), points[-1][0] - points[0][0]
            readings.append(_reading(self.source, domain, energy, span, self.reads[name]))
        return readings


def _reading(
    source: PowerSource, domain: PowerDomain, energy: float, seconds: float, reads: int
) -> EnergyReading:
    return EnergyReading(
        source=source.name,
        scope=domain.scope,
        domain=domain.name,
        method="counter" if source.kind == "counter" else "sampled",
        energy_j=energy,
        seconds=seconds,
        mean_power_w=energy / seconds if seconds > 0 else 0.0,
        readings=reads,
    )


class EnergyMeter:
    """Probes ``sources`` once; ``window()`` measures the code inside it."""

    def __init__(self, sources: Sequence[PowerSource], clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.active: list[PowerSource] = []
        self.unavailable: list[SourceProblem] = []
        self.windows: list[EnergyWindow] = []
        covered: set[str] = set()
        for source in sources:
            scopes = tuple(source.scopes)
            if scopes and covered.issuperset(scopes):
                continue  # a better source for the same thing is already being read
            availability = source.probe()
            if not availability.available:
                self.unavailable.append(SourceProblem(source.name, scopes, availability.reason))
                continue
            self.active.append(source)
            covered.update(d.scope for d in source.domains())
        # A source skipped early may be covered later (nvidia-smi after NVML): drop its problem line.
        self.unavailable = [p for p in self.unavailable if not covered.issuperset(p.scopes)]

    @property
    def available(self) -> bool:
        return bool(self.active)

    @contextmanager
    def window(self) -> Iterator[None]:
        if not self.active:
            start = self.clock()
            yield
            self.windows.append(EnergyWindow(self.clock() - start))
            return
        recorders = [_SourceRecorder(source, self.clock) for source in self.active]
        for recorder in recorders:
            recorder.start()
        start = self.clock()
        try:
            yield
        finally:
            seconds = self.clock() - start
            for recorder in recorders:
                recorder.stop()
        window = EnergyWindow(seconds)
        for recorder in recorders:
            if recorder.error is not None:
                window.errors.append(
                    SourceProblem(recorder.source.name, recorder.source.scopes, recorder.error)
                )
                continue
            window.readings.extend(recorder.results(seconds))
        self.windows.append(window)


def energy_record(
    meter: EnergyMeter,
    window: EnergyWindow | None,
    samples: int,
    *,
    queries: int | None = None,
    absent_reason: str | None = None,
) -> dict[str, Any]:
    """What results store for a cell: every reading with energy per sample and samples per joule
    (and per query and queries per joule where ``queries`` is given: the server scenario's unit),
    and every source that gave none with its reason. Never a 0 standing in for "not measured".
    ``absent_reason``: why there is no window to read (the sources themselves may be fine)."""
    readings: list[dict[str, Any]] = []
    problems = [*meter.unavailable, *(window.errors if window else [])]
    if absent_reason is not None:
        problems.append(SourceProblem("portbench", (), absent_reason))
    for reading in window.readings if window else []:
        entry: dict[str, Any] = asdict(reading)
        entry.update(_per_unit(reading.energy_j, samples, "sample"))
        if queries is not None:
            entry.update(_per_unit(reading.energy_j, queries, "query", plural="queries"))
        readings.append(entry)
    record: dict[str, Any] = {
        "available": bool(readings),
        "samples": samples,
        "window_s": window.seconds if window else None,
        "readings": readings,
        "unavailable": [{"source": p.source, "scopes": list(p.scopes), "reason": p.reason} for p in problems],
    }
    if queries is not None:
        record["queries"] = queries
    return record


def _per_unit(energy_j: float, count: int, unit: str, plural: str | None = None) -> dict[str, float | None]:
    per, each = f"energy_per_{unit}_j", f"{plural or unit + 's'}_per_j"
    if energy_j > 0 and count > 0:
        return {per: energy_j / count, each: count / energy_j}
    return {per: None, each: None}


def describe_unavailable(record: Mapping[str, Any]) -> str:
    """One line for reports: why a cell has no energy figure."""
    reasons = [f"{p['source']}: {p['reason']}" for p in record.get("unavailable", [])]
    return "unavailable: " + ("; ".join(reasons) if reasons else "no power source declared")
