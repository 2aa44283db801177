"""The parity verdict of one cell, as a typed object: what ``harness.parity`` judges, what results
store (``CellResult.parity``) and what every report reads.

Stored as a JSON object (``to_dict`` / ``from_dict``); documents written before this type existed
carry the same keys, so they load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

Verdict = Literal["pass", "fail", "skipped"]
VERDICTS: tuple[Verdict, ...] = ("pass", "fail", "skipped")
REFERENCE_ROLE = "reference"


@dataclass(frozen=True)
class MetricCheck:
    """One task metric against the reference. ``gate``/``passed`` are None for ungated metrics."""

    reference: float
    value: float
    ratio: float | None
    delta: float
    gate: float | None = None
    passed: bool | None = None


@dataclass(frozen=True)
class ReferenceInfo:
    """The cell a verdict was judged against; ``run_id`` names the run it came from."""

    cell_id: str
    backend: str
    precision: str
    run_id: str | None = None
    runtime: str = "paddle"  # verdicts written before runtimes were judged against Paddle cells


@dataclass(frozen=True)
class ParityVerdict:
    """``pass`` (every gate met), ``fail`` (a gate missed; ``reason`` says by how much) or ``skipped``
    (nothing to judge; ``reason`` says why). ``task``: per-metric numbers, gated metrics first.
    ``output``: output-level agreement (see ``harness.parity.OutputAgreement.to_dict``).
    ``worst_samples``: the most different samples first, each with ``sample_id`` and ``difference``."""

    verdict: Verdict
    reason: str | None = None
    role: str | None = None
    reference: ReferenceInfo | None = None
    task: Mapping[str, MetricCheck] = field(default_factory=dict)
    output: Mapping[str, Any] = field(default_factory=dict)
    worst_samples: tuple[Mapping[str, Any], ...] = ()
    speedup_vs_fp32: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def is_reference(self) -> bool:
        return self.role == REFERENCE_ROLE

    @property
    def headline_metric(self) -> str | None:
        """The first gated metric (gated metrics come first), else the first compared one."""
        gated = [name for name, check in self.task.items() if check.gate is not None]
        return gated[0] if gated else next(iter(self.task), None)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"verdict": self.verdict, "reason": self.reason}
        if self.role is not None:
            data["role"] = self.role
        if self.notes:
            data["notes"] = list(self.notes)
        if self.reference is not None:
            data["reference"] = {
                k: v for k, v in vars(self.reference).items() if v is not None or k != "run_id"
            }
        if self.output or (self.reference is not None and not self.is_reference):
            data["output"] = dict(self.output)
            data["worst_samples"] = [dict(sample) for sample in self.worst_samples]
        if self.task:
            data["task"] = {name: dict(vars(check)) for name, check in self.task.items()}
        data["speedup_vs_fp32"] = self.speedup_vs_fp32
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParityVerdict:
        verdict = str(data.get("verdict"))
        if verdict not in VERDICTS:
            raise ValueError(f"unknown parity verdict {verdict!r}")
        reference = data.get("reference")
        speed = data.get("speedup_vs_fp32")
        return cls(
            verdict=cast(Verdict, verdict),
            reason=data.get("reason"),
            role=data.get("role"),
            reference=ReferenceInfo(**reference) if isinstance(reference, Mapping) else None,
            task={name: MetricCheck(**numbers) for name, numbers in (data.get("task") or {}).items()},
            output=dict(data.get("output") or {}),
            worst_samples=tuple(dict(s) for s in data.get("worst_samples") or () if isinstance(s, Mapping)),
            speedup_vs_fp32=float(speed) if isinstance(speed, (int, float)) else None,
            notes=tuple(str(n) for n in data.get("notes") or ()),
        )
