"""Frozen descriptions of what to run. Building them has no side effects (no environment changes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from portbench.backends.base import Precision
from portbench.backends.runtimes.registry import DEFAULT_RUNTIME
from portbench.harness.measure import MeasureSettings
from portbench.harness.workload import TaskSpec, default_cache_dir

Mode = Literal["both", "accuracy", "performance"]
DEFAULT_CELL_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class RunOptions:
    """Run-wide settings, recorded in results so ``--resume`` can rebuild the same cells.

    Asked for, ``backends`` empty means every available backend and ``precisions`` empty the suite's
    own; a plan (``harness.api.plan_run``) records what was chosen."""

    suite: str
    backends: tuple[str, ...] = ()
    # Empty: the suite's own (Paddle Inference unless the suite says otherwise).
    runtimes: tuple[str, ...] = ()
    precisions: tuple[Precision, ...] = ()
    mode: Mode = "both"
    cpu_threads: int = 0
    device_id: int = 0
    cache_dir: Path = field(default_factory=default_cache_dir)
    cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S
    # role -> user model directory, e.g. {"det": Path(...)}; replaces the registered model
    model_dirs: Mapping[str, Path] = field(default_factory=dict)
    # workload -> a user dataset replacing the suite's own data for that workload's cells
    dataset_dirs: Mapping[str, Path] = field(default_factory=dict)
    only: tuple[str, ...] = ()  # keep only cells whose id contains one of these
    reference_dir: Path | None = None  # an earlier run whose FP32 CPU cells are the parity reference

    def selects(self, cell_id: str) -> bool:
        return not self.only or any(text in cell_id for text in self.only)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "backends": list(self.backends),
            "runtimes": list(self.runtimes),
            "precisions": [p.value for p in self.precisions],
            "mode": self.mode,
            "cpu_threads": self.cpu_threads,
            "device_id": self.device_id,
            "cache_dir": str(self.cache_dir),
            "cell_timeout_s": self.cell_timeout_s,
            "model_dirs": {k: str(v) for k, v in self.model_dirs.items()},
            "dataset_dirs": {k: str(v) for k, v in self.dataset_dirs.items()},
            "only": list(self.only),
            "reference_dir": str(self.reference_dir) if self.reference_dir else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunOptions:
        return cls(
            suite=data["suite"],
            backends=tuple(data["backends"]),
            # Requests from before runtimes (results schema < 1.2) ran Paddle Inference only.
            runtimes=tuple(data.get("runtimes") or (DEFAULT_RUNTIME,)),
            precisions=tuple(Precision(p) for p in data["precisions"]),
            mode=data.get("mode", "both"),
            cpu_threads=int(data.get("cpu_threads", 0)),
            device_id=int(data.get("device_id", 0)),
            cache_dir=Path(data["cache_dir"]) if data.get("cache_dir") else default_cache_dir(),
            cell_timeout_s=float(data.get("cell_timeout_s", DEFAULT_CELL_TIMEOUT_S)),
            model_dirs={k: Path(v) for k, v in (data.get("model_dirs") or {}).items()},
            dataset_dirs={k: Path(v) for k, v in (data.get("dataset_dirs") or {}).items()},
            only=tuple(data.get("only") or ()),
            reference_dir=Path(data["reference_dir"]) if data.get("reference_dir") else None,
        )


@dataclass(frozen=True)
class CellPlan:
    """Everything a worker process needs to run one cell (picklable)."""

    cell_id: str
    spec: TaskSpec
    backend: str
    device_id: int
    precision: Precision
    scenario: str
    measure: MeasureSettings
    trials: int
    mode: Mode
    cpu_threads: int
    # What cell ids, results and reports call the model: the registered name, or the user's own
    # directory when ``--model-dir`` replaced it (``Workload.model_label``).
    model_label: str = ""
    # The backend's environment for this device, applied in the worker process only.
    environment: Mapping[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    runtime: str = DEFAULT_RUNTIME
    # Worker processes that time this cell (``Suite.processes``); ``repeat`` > 0 marks one of the
    # extra ones, which only repeat the timed scenario (no accuracy pass, audits, stages or placement).
    processes: int = 1
    repeat: int = 0
    # Placement keys an earlier cell of this run already profiled -> that cell's id (the worker
    # then records a reference instead of profiling the same model and options again).
    placement_measured: Mapping[str, str] = field(default_factory=dict)
