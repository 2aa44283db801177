"""The results model: one versioned JSON document per run, written atomically after every cell.

Reports only read this file. Raw latency samples are kept so numbers can be re-derived later.
The published JSON Schema sits beside this module (``results.schema.json``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from portbench.errors import PortbenchError
from portbench.files import default_file_mode
from portbench.harness.verdict import ParityVerdict

# 1.1: suite_definition, the resolved suite (1.0 documents still load: they name a built-in suite).
# 1.2: the inference runtime of every cell (``runtime``, and in the cell id between backend and
# precision; older documents load as Paddle Inference cells with their ids migrated);
# CellResult.server (server scenario: rate at the bound, search, early stopping), audits (output and
# cache audits), energy, first_shape and placement (absent in older documents).
SCHEMA_VERSION = "1.2"
RUNTIME_SINCE = (1, 2)
LEGACY_RUNTIME = "paddle"
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
RESULTS_FILENAME = "results.json"

CellStatus = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True)
class LatencySummary:
    """Milliseconds. Percentiles are ``None`` when there are too few samples to support them."""

    n: int
    mean: float
    min: float
    max: float
    stdev: float
    p50: float
    p90: float | None
    p99: float | None
    # Optional so documents written before p99.9 existed still load; withheld like the others.
    p999: float | None = None


@dataclass(frozen=True)
class Throughput:
    samples_per_s: float
    queries_per_s: float


@dataclass(frozen=True)
class TrialSummary:
    """Repeated timed trials of one cell: how far the per-trial median latency (ms) moved.

    The 95% interval is Student's t for the mean of the trial medians (few trials: a bootstrap would
    be too narrow); ``unstable`` is set when their coefficient of variation exceeds ``cv_threshold``.
    """

    trials: int
    p50_ms: tuple[float, ...]  # one per trial, in order
    samples_per_s: tuple[float, ...]  # one per trial, in order
    median_p50_ms: float
    mean_p50_ms: float
    ci95_low_ms: float | None  # None with a single trial: no spread to estimate
    ci95_high_ms: float | None
    cv: float | None
    cv_threshold: float
    unstable: bool

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSummary:
        values = dict(data)
        values["p50_ms"] = tuple(values["p50_ms"])
        values["samples_per_s"] = tuple(values["samples_per_s"])
        return cls(**values)


@dataclass(frozen=True)
class ModelRecord:
    role: str
    name: str
    path: str
    sha256: Mapping[str, str]  # file name -> digest
    synthetic_weights: bool = False
    source: str | None = None  # provenance: the package or build that produced the files
    # The user's own directory for this role (--model-dir) and the digest of every file in it as
    # given: a checkpoint exported on the fly runs other files than the user handed in.
    supplied_path: str | None = None
    supplied_sha256: Mapping[str, str] = field(default_factory=dict)


@dataclass
class CellResult:
    cell_id: str
    workload: str
    task: str
    model: str
    backend: str
    precision: str
    scenario: str
    dataset: str
    status: CellStatus
    reason: str | None = None
    runtime: str = LEGACY_RUNTIME
    device: str | None = None
    device_info: dict[str, Any] | None = None
    models: list[ModelRecord] = field(default_factory=list)
    # Every file the evaluation data was read from (absolute path -> sha256), hashed after loading.
    dataset_sha256: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    metrics_by_subset: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: LatencySummary | None = None
    throughput: Throughput | None = None
    trials: TrialSummary | None = None  # stability across repeated timed loops
    stages_ms: dict[str, LatencySummary] = field(default_factory=dict)
    cold_start: dict[str, float] = field(default_factory=dict)
    warmup: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)  # peak RSS, device memory, CPU use
    # Every performance-relevant setting (threads, env flags, Paddle build, governor, shapes):
    # comparisons refuse or warn when two cells' manifests differ.
    manifest: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)  # raw samples: latency_ms, stages_ms
    # Per-sample outputs (boxes, texts, logits) live beside results.json, not in it: path relative
    # to the run directory. They are what parity checks compare against a reference.
    outputs_file: str | None = None
    quantization: dict[str, Any] | None = None  # provenance of an INT8 model (source, algo, samples)
    # Energy of the timed loops by power source and scope, or why there is none (harness.energy).
    energy: dict[str, Any] | None = None
    # First call of each distinct input shape against its steady state, measured in its own pass.
    first_shape: dict[str, Any] | None = None
    # Which operators ran on the device and which fell back to the CPU, per model role.
    placement: dict[str, Any] | None = None
    parity: ParityVerdict | None = None  # verdict against the FP32 reference, with the evidence
    # Server scenario only: latency_bound_ms, percentile, rate_at_bound_qps (None when no rate met
    # the bound), valid, tail_ms / p99_ms of the final run, early_stopping, every probe; the final
    # run's raw scheduled / issued / completed times are in raw["server_final"].
    server: dict[str, Any] | None = None
    # Audit name ("outputs", "cache") -> verdict ("passed", "failed", "not_run") with its numbers.
    audits: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    duration_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["parity"] = self.parity.to_dict() if self.parity else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CellResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["models"] = [ModelRecord(**m) for m in data.get("models", [])]
        if data.get("latency_ms"):
            values["latency_ms"] = LatencySummary(**data["latency_ms"])
        if data.get("throughput"):
            values["throughput"] = Throughput(**data["throughput"])
        if data.get("trials"):
            values["trials"] = TrialSummary.from_dict(data["trials"])
        values["stages_ms"] = {k: LatencySummary(**v) for k, v in data.get("stages_ms", {}).items()}
        if data.get("parity"):
            values["parity"] = ParityVerdict.from_dict(data["parity"])
        return cls(**values)


@dataclass
class RunResults:
    run_id: str
    started_at: str
    portbench_version: str
    suite: str
    platform: dict[str, Any]
    git_sha: str | None = None
    command: list[str] = field(default_factory=list)
    # What was asked for (suite, backends, precisions, options): lets --resume rebuild the same cells.
    request: dict[str, Any] = field(default_factory=dict)
    # "workload/task" -> what the workload declares of it (metrics in reading order, their direction,
    # headline and shown metrics): reports lay cells out from this, with no workload installed.
    tasks: dict[str, Any] = field(default_factory=dict)
    # The resolved suite (portbench.harness.suite.Suite.to_dict): the cells, measure settings, trials
    # and gates this run was started with, whatever the suite file says later.
    suite_definition: dict[str, Any] | None = None
    finished_at: str | None = None
    cells: list[CellResult] = field(default_factory=list)
    schema_version: str = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cells"] = [c.to_dict() for c in self.cells]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResults:
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise PortbenchError(
                f"results schema {version or '(none)'} is not readable by this portbench "
                f"(schema {SCHEMA_VERSION})"
            )
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        cells = data.get("cells", [])
        if _version_tuple(version) < RUNTIME_SINCE:
            cells = [migrate_cell_to_runtime(c) for c in cells]
        values["cells"] = [CellResult.from_dict(c) for c in cells]
        return cls(**values)

    def upsert(self, cell: CellResult) -> None:
        """Add a cell, replacing an earlier result with the same id (a resumed cell)."""
        self.cells = [c for c in self.cells if c.cell_id != cell.cell_id] + [cell]

    def cell(self, cell_id: str) -> CellResult | None:
        return next((c for c in self.cells if c.cell_id == cell_id), None)


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


def migrate_cell_to_runtime(cell: Mapping[str, Any]) -> dict[str, Any]:
    """A cell written before runtimes existed (schema < 1.2): it ran on Paddle Inference, and its id
    ``.../backend/precision/scenario`` gains the runtime before the precision."""
    migrated = dict(cell)
    migrated.setdefault("runtime", LEGACY_RUNTIME)
    parts = str(cell.get("cell_id", "")).split("/")
    if len(parts) >= 6 and parts[-3] == cell.get("backend") and parts[-2] == cell.get("precision"):
        migrated["cell_id"] = "/".join([*parts[:-2], migrated["runtime"], *parts[-2:]])
    return migrated


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and rename: readers never see half a file.

    The file gets the mode a plain ``open(path, "w")`` would leave: an existing file keeps its own,
    a new one follows the umask (mkstemp alone would make it 0600). A path that cannot be written
    (a parent that is a file, no permission, a full disk) is a PortbenchError naming it.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = default_file_mode()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise PortbenchError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise PortbenchError(f"cannot write {path}: {error.strerror or error}") from None
        raise


def save_results(results: RunResults, run_dir: Path) -> Path:
    path = run_dir / RESULTS_FILENAME
    write_atomic(path, json.dumps(results.to_dict(), ensure_ascii=False, indent=1, allow_nan=False))
    return path


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def validate_document(data: Any) -> None:
    """Raise PortbenchError naming the first place where ``data`` breaks the published schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema())
    error = next(iter(sorted(validator.iter_errors(data), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise PortbenchError(f"results do not match schema {SCHEMA_VERSION} at {where}: {error.message}")


def load_results(path: Path) -> RunResults:
    """Read ``results.json`` (or a run directory holding one), validated against the schema."""
    file = path / RESULTS_FILENAME if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PortbenchError(f"no results at {file}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PortbenchError(f"cannot read results {file}: {exc}") from None
    validate_document(data)
    return RunResults.from_dict(data)
