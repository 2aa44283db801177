"""Audits of the performance pass, after MLPerf's compliance tests TEST01 and TEST04.

- **outputs** (TEST01): a seeded sample of the timed queries is tapped during the performance pass —
  the tap keeps a reference to what ``run()`` returned, nothing is copied or compared in the timed
  section — and afterwards the task turns each kept output into its accuracy-pass form
  (``PreparedTask.audit_outputs``), which must equal the accuracy pass's output for the same samples
  within the backend's determinism tolerance (``Backend.determinism_atol``). A system that answers
  timed queries differently (cached, skipped or cheaper work) fails the cell, with the samples shown.
- **cache** (TEST04): the same inputs timed back to back (each input repeated) against the same inputs
  interleaved (each call follows a different input). A backend or cache that skips work on a repeated
  input is markedly faster on the first: the cell fails when the median over the sampled inputs of
  distinct-time / same-time exceeds ``audit_cache_ratio`` (default 3). Honest hardware is faster on
  a repeated input too (its data is still in the CPU caches): 1.4-1.8x measured here for a 1 ms ERNIE
  batch, about 1x for a 500 ms OCR page; skipping the work is a factor of a hundred or more.

Audits run where a cell sets ``params.audits = true`` and by default on ``server`` cells; their
verdicts and numbers are in ``CellResult.audits``.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from portbench.errors import PortbenchError
from portbench.harness.measure import Clock, Synchronize
from portbench.harness.workload import PreparedTask, Query, ScenarioUnsupported

DEFAULT_AUDIT_SEED = 1
DEFAULT_AUDIT_SAMPLES = 4
DEFAULT_AUDIT_REPEATS = 5
DEFAULT_CACHE_RATIO = 3.0
SHOWN_MISMATCHES = 3


def audits_enabled(params: Mapping[str, Any], scenario: str) -> bool:
    value = params.get("audits", scenario == "server")
    if not isinstance(value, bool):
        raise PortbenchError(f"parameter audits must be true or false, got {value!r}")
    return value


def _positive_int(params: Mapping[str, Any], key: str, default: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PortbenchError(f"parameter {key} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class AuditSettings:
    seed: int = DEFAULT_AUDIT_SEED
    samples: int = DEFAULT_AUDIT_SAMPLES
    repeats: int = DEFAULT_AUDIT_REPEATS
    cache_ratio: float = DEFAULT_CACHE_RATIO

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> AuditSettings:
        ratio = params.get("audit_cache_ratio", DEFAULT_CACHE_RATIO)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 1:
            raise PortbenchError(f"parameter audit_cache_ratio must be a number above 1, got {ratio!r}")
        return cls(
            seed=_positive_int(params, "audit_seed", DEFAULT_AUDIT_SEED),
            samples=_positive_int(params, "audit_samples", DEFAULT_AUDIT_SAMPLES),
            repeats=_positive_int(params, "audit_repeats", DEFAULT_AUDIT_REPEATS),
            cache_ratio=float(ratio),
        )


def sample_indices(count: int, samples: int, seed: int) -> list[int]:
    """A seeded sample of query positions, sorted."""
    chosen = np.random.default_rng(seed).choice(count, size=min(samples, count), replace=False)
    return sorted(int(i) for i in chosen)


@dataclass
class OutputTap:
    """Keeps what the sampled queries last returned. ``wrap`` swaps only the sampled queries for ones
    that store a reference to their output: one dict assignment per sampled call, nothing else."""

    indices: Sequence[int]
    kept: dict[int, object] = field(default_factory=dict)

    def wrap(self, queries: Sequence[Query]) -> list[Query]:
        chosen = set(self.indices)
        return [
            Query(run=functools.partial(self._keep, i, q.run), samples=q.samples) if i in chosen else q
            for i, q in enumerate(queries)
        ]

    def _keep(self, index: int, run: Any) -> object:
        output = run()
        self.kept[index] = output
        return output


# --- outputs audit (TEST01) ---------------------------------------------------------------------


def first_difference(reference: Any, observed: Any, atol: float, where: str = "") -> tuple[str, float] | None:
    """Where two JSON-like outputs first differ beyond ``atol`` (numbers) or at all (the rest), with
    the largest numeric difference seen up to there; None when they agree."""
    if isinstance(reference, bool) or isinstance(observed, bool) or isinstance(reference, str):
        return (
            None
            if reference == observed
            else (f"{where or 'value'}: {reference!r} != {observed!r}", math.inf)
        )
    if isinstance(reference, (int, float)) and isinstance(observed, (int, float)):
        diff = abs(float(reference) - float(observed))
        return None if diff <= atol else (f"{where or 'value'}: {reference!r} != {observed!r}", diff)
    if isinstance(reference, Mapping) and isinstance(observed, Mapping):
        if set(reference) != set(observed):
            return (f"{where or 'output'}: keys {sorted(reference)} != {sorted(observed)}", math.inf)
        for key in reference:
            found = first_difference(
                reference[key], observed[key], atol, f"{where}.{key}" if where else str(key)
            )
            if found:
                return found
        return None
    if isinstance(reference, (list, tuple)) and isinstance(observed, (list, tuple)):
        if len(reference) != len(observed):
            return (f"{where or 'output'}: {len(reference)} items != {len(observed)}", math.inf)
        for i, (a, b) in enumerate(zip(reference, observed, strict=True)):
            found = first_difference(a, b, atol, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if reference == observed else (f"{where or 'value'}: {reference!r} != {observed!r}", math.inf)


def _max_abs_difference(reference: Any, observed: Any) -> float:
    if (
        isinstance(reference, (int, float))
        and isinstance(observed, (int, float))
        and not isinstance(reference, bool)
    ):
        return abs(float(reference) - float(observed))
    if isinstance(reference, Mapping) and isinstance(observed, Mapping):
        return max(
            (_max_abs_difference(reference[k], observed[k]) for k in reference if k in observed), default=0.0
        )
    if isinstance(reference, (list, tuple)) and isinstance(observed, (list, tuple)):
        return max(
            (_max_abs_difference(a, b) for a, b in zip(reference, observed, strict=False)), default=0.0
        )
    return 0.0


def audit_outputs(
    prepared: PreparedTask,
    tap: OutputTap,
    accuracy_outputs: Mapping[str, Any] | None,
    atol: float,
) -> dict[str, Any]:
    """The outputs audit's verdict: ``passed``, ``failed`` (mismatches shown) or ``not_run`` (why)."""
    verdict: dict[str, Any] = {
        "name": "outputs",
        "after": "MLPerf TEST01",
        "atol": atol,
        "query_indices": list(tap.indices),
    }
    if accuracy_outputs is None:
        return {**verdict, "verdict": "not_run", "reason": "no accuracy pass in this run"}
    if not tap.kept:
        return {**verdict, "verdict": "not_run", "reason": "this scenario does not tap its timed queries"}
    compared: list[str] = []
    mismatches: list[dict[str, Any]] = []
    largest = 0.0
    try:
        for index in sorted(tap.kept):
            for sample_id, observed in prepared.audit_outputs(index, tap.kept[index]).items():
                if sample_id not in accuracy_outputs:
                    continue
                reference = accuracy_outputs[sample_id]
                compared.append(sample_id)
                largest = max(largest, _max_abs_difference(reference, observed))
                difference = first_difference(reference, observed, atol)
                if difference is not None:
                    mismatches.append(
                        {
                            "sample_id": sample_id,
                            "query_index": index,
                            "difference": difference[0],
                            "accuracy_output": reference,
                            "performance_output": observed,
                        }
                    )
    except ScenarioUnsupported as why:
        return {**verdict, "verdict": "not_run", "reason": str(why)}
    if not compared:
        return {
            **verdict,
            "verdict": "not_run",
            "reason": "no tapped sample is among the accuracy pass's outputs",
        }
    return {
        **verdict,
        "verdict": "failed" if mismatches else "passed",
        "compared_samples": len(compared),
        "mismatched_samples": len(mismatches),
        "max_abs_difference": largest,
        "mismatches": mismatches[:SHOWN_MISMATCHES],
    }


# --- same-input versus distinct-input audit (TEST04) ---------------------------------------------


def _time(query: Query, clock: Clock, synchronize: Synchronize | None) -> float:
    t0 = clock()
    query.run()
    if synchronize is not None:
        synchronize()
    return (clock() - t0) / 1e6


def audit_cache(
    queries: Sequence[Query],
    settings: AuditSettings,
    *,
    clock: Clock = time.perf_counter_ns,
    synchronize: Synchronize | None = None,
) -> dict[str, Any]:
    """Time each sampled input interleaved with the others (distinct) and repeated back to back
    (same); flag when distinct is markedly slower than same."""
    verdict: dict[str, Any] = {
        "name": "cache",
        "after": "MLPerf TEST04",
        "threshold_ratio": settings.cache_ratio,
    }
    if len(queries) < 2:
        return {**verdict, "verdict": "not_run", "reason": "the task has a single timed input"}
    indices = sample_indices(len(queries), max(settings.samples, 2), settings.seed + 1)
    distinct: dict[int, list[float]] = {i: [] for i in indices}
    for _ in range(settings.repeats):
        for i in indices:  # each call follows a different input
            distinct[i].append(_time(queries[i], clock, synchronize))
    same: dict[int, list[float]] = {}
    for i in indices:
        queries[i].run()  # the repeats all follow this same input
        same[i] = [_time(queries[i], clock, synchronize) for _ in range(settings.repeats)]
    ratios = {i: statistics.median(distinct[i]) / max(statistics.median(same[i]), 1e-9) for i in indices}
    ratio = statistics.median(ratios.values())
    return {
        **verdict,
        "verdict": "failed" if ratio > settings.cache_ratio else "passed",
        "ratio": ratio,
        "query_indices": indices,
        "repeats": settings.repeats,
        "distinct_ms": {str(i): distinct[i] for i in indices},
        "same_ms": {str(i): same[i] for i in indices},
        "ratio_by_query": {str(i): r for i, r in ratios.items()},
    }


def failure_reason(audits: Mapping[str, Mapping[str, Any]]) -> str | None:
    """One line for the cell's ``reason`` when an audit failed."""
    parts = []
    outputs = audits.get("outputs", {})
    if outputs.get("verdict") == "failed":
        first = outputs["mismatches"][0]
        parts.append(
            f"output audit: {outputs['mismatched_samples']} of {outputs['compared_samples']} sampled outputs "
            f"differ from the accuracy pass (sample {first['sample_id']}: {first['difference']})"
        )
    cache = audits.get("cache", {})
    if cache.get("verdict") == "failed":
        parts.append(
            f"cache audit: repeated inputs ran {cache['ratio']:.2f}x faster than distinct ones "
            f"(limit {cache['threshold_ratio']:g}x): the backend skips work on repeated inputs"
        )
    return "; ".join(parts) or None
