"""Suites: named sets of cells, written as TOML files. A suite × backends × precisions expands into
the run's cells.

The built-in suites are TOML files shipped in ``portbench.suites`` (package data, no Python); a
user's own file has the same format (README "Suite files"). :meth:`Suite.to_dict` is that format with
every matrix expanded and every default filled in, so the *resolved* suite stored in results.json
reads back through the same checks (:meth:`Suite.from_dict`) and a resumed run repeats exactly the
cells it started with, whatever happened to the file since.

Every problem with a suite document is a :class:`SuiteFileError`: one line naming the file, the key
and what was expected there.
"""

from __future__ import annotations

import dataclasses
import itertools
import string
import typing
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from portbench.backends.base import Precision
from portbench.backends.runtimes.registry import DEFAULT_RUNTIME, runtime_names
from portbench.errors import PortbenchError, UnknownNameError
from portbench.harness.measure import MeasureSettings, MeasureSettingsError
from portbench.harness.parity import ParityError, ParityGates
from portbench.harness.scenarios import scenario_names

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, which Paddle's CUDA, XPU and DCU images ship
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_SUITE = "standard"
BUILTIN_PACKAGE = "portbench.suites"
SUITE_SUFFIXES = (".toml", ".json")

SECTIONS = ("suite", "measure", "gates", "cells")
SUITE_KEYS = ("name", "description", "precisions", "runtimes", "trials", "processes")
CELL_KEYS = ("workload", "task", "model", "dataset", "scenario", "label", "params", "matrix")
# Params and matrix values may be named in these strings as {key}; workload and task stay literal so a
# typo in them is caught before any expansion.
TEMPLATED_CELL_KEYS = ("model", "dataset", "label")
# --set reaches run-wide settings only: cells are what a suite *is*, so they change in the file.
SETTABLE_SECTIONS = ("suite", "measure", "gates")


class SuiteFileError(PortbenchError):
    """A suite file or ``--set`` value that cannot be used; the message names file, key, expectation."""


def frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class CellTemplate:
    """One row of a suite: a task on a model and dataset, before a backend and precision are chosen."""

    workload: str
    task: str
    model: str
    dataset: str
    scenario: str = "single-stream"
    label: str = ""  # tells apart cells of one task/model, e.g. an ERNIE shape "medium-s128-b8"
    params: Mapping[str, Any] = field(default_factory=frozen)

    def cell_id(
        self, backend: str, precision: str, model: str | None = None, runtime: str = DEFAULT_RUNTIME
    ) -> str:
        """``workload/task/model[@label]/backend/runtime/precision/scenario``; ``model`` replaces the
        template's (a user's own model)."""
        model = model or self.model
        model = f"{model}@{self.label}" if self.label else model
        return f"{self.workload}/{self.task}/{model}/{backend}/{runtime}/{precision}/{self.scenario}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "task": self.task,
            "model": self.model,
            "dataset": self.dataset,
            "scenario": self.scenario,
            "label": self.label,
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
        }


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    cells: tuple[CellTemplate, ...]
    measure: MeasureSettings
    precisions: tuple[str, ...] = ("fp32",)
    trials: int = 3  # timed loops per cell; their spread decides whether a cell is stable
    # Fresh worker processes that time each single-stream cell (pyperf's design): run-to-run noise
    # lives between processes, so the nightly gate tests process medians when there are several.
    processes: int = 1
    # Parity marks against the FP32 reference: INT8 >= 99 %, FP16/BF16 >= 99.9 % of FP32 by default.
    gates: ParityGates = field(default_factory=ParityGates)
    # Inference runtimes every cell runs on (``--runtimes`` overrides); Paddle Inference by default.
    runtimes: tuple[str, ...] = (DEFAULT_RUNTIME,)

    def to_dict(self) -> dict[str, Any]:
        """The suite-file format, resolved: matrices expanded, every default written out."""
        return {
            "suite": {
                "name": self.name,
                "description": self.description,
                "precisions": list(self.precisions),
                "runtimes": list(self.runtimes),
                "trials": self.trials,
                "processes": self.processes,
            },
            "measure": dataclasses.asdict(self.measure),
            "gates": {
                "task_ratio": dict(self.gates.task_ratio),
                "per_metric": {m: dict(r) for m, r in self.gates.per_metric.items()},
                "min_output": dict(self.gates.min_output),
                "worst_samples": self.gates.worst_samples,
            },
            "cells": [cell.to_dict() for cell in self.cells],
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], source: str = "suite", workloads: Collection[str] | None = None
    ) -> Suite:
        return parse_suite(data, source, workloads)


# --- checking a document -------------------------------------------------------------------------


class _Checker:
    """Builds the one-line errors; keys set by --set say so, since the file does not hold them."""

    def __init__(self, source: str, overridden: Collection[str] = ()) -> None:
        self.source = source
        self.overridden = frozenset(overridden)

    def error(self, key: str, problem: str) -> SuiteFileError:
        suffix = " (from --set)" if key in self.overridden else ""
        return SuiteFileError(f"{self.source}: {key}: {problem}{suffix}")

    def table(self, value: Any, key: str, known: Sequence[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected a table, got {_show(value)}")
        for name in value:
            if name not in known:
                where = f"{key}.{name}" if key else name
                raise self.error(where, f"unknown key; expected one of {', '.join(known)}")
        return value

    def string(self, table: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = self._get(table, key, where, default, "a string")
        if not isinstance(value, str):
            raise self.error(where, f"expected a string, got {_show(value)}")
        return value

    def whole(self, table: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
        value = self._get(table, key, where, default, "a whole number")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(where, f"expected a whole number, got {_show(value)}")
        return value

    def names(
        self, table: Mapping[str, Any], key: str, where: str, default: str, known: Sequence[str]
    ) -> list[str]:
        """A non-empty array of names out of ``known`` (``[default]`` when the key is absent)."""
        value = table.get(key, [default])
        if not isinstance(value, list) or not value or any(name not in known for name in value):
            raise self.error(where, f"expected a non-empty array of {', '.join(known)}, got {_show(value)}")
        return value

    def _get(self, table: Mapping[str, Any], key: str, where: str, default: Any, what: str) -> Any:
        if key in table:
            return table[key]
        if default is None:
            raise self.error(where, f"missing; expected {what}")
        return default


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _measure_types() -> dict[str, type]:
    """Field -> int or float, read from MeasureSettings itself so a new setting needs no edit here."""
    hints = typing.get_type_hints(MeasureSettings)
    return {
        f.name: float if hints[f.name] is float or float in typing.get_args(hints[f.name]) else int
        for f in dataclasses.fields(MeasureSettings)
    }


def _parse_measure(value: Any, check: _Checker) -> MeasureSettings:
    types = _measure_types()
    table = check.table(value, "measure", tuple(types))
    optional = {f.name for f in dataclasses.fields(MeasureSettings) if f.default is None}
    values: dict[str, Any] = {}
    for name, setting in table.items():
        if setting is None and name in optional:
            values[name] = None  # JSON null in a stored suite; TOML leaves the key out instead
            continue
        # TOML writes 5 for 5.0: a whole number is a fine float, but a float is no count.
        accepted = (int, float) if types[name] is float else (int,)
        if isinstance(setting, bool) or not isinstance(setting, accepted):
            what = "a number" if types[name] is float else "a whole number"
            raise check.error(f"measure.{name}", f"expected {what}, got {_show(setting)}")
        values[name] = types[name](setting)
    try:
        return MeasureSettings(**values)
    except MeasureSettingsError as exc:
        raise check.error("measure", str(exc)) from None


def _parse_gates(value: Any, check: _Checker) -> ParityGates:
    if not isinstance(value, Mapping):
        raise check.error("gates", f"expected a table, got {_show(value)}")
    try:
        return ParityGates.from_mapping(value)
    except ParityError as exc:
        raise check.error("gates", str(exc)) from None


def _param_value(value: Any, where: str, check: _Checker) -> Any:
    scalar = (str, int, float, bool)
    if isinstance(value, scalar):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, scalar) for v in value):
        return tuple(value)  # immutable like the template; workers see JSON lists either way
    raise check.error(where, f"expected a string, number, boolean or an array of them, got {_show(value)}")


def _format(template: str, values: Mapping[str, Any], where: str, check: _Checker) -> str:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise check.error(where, f"bad placeholder ({exc}); write a literal brace as {{{{ or }}}}") from None
    for name in names:
        if name not in values:
            known = ", ".join(values) or "none (the cell has no params or matrix)"
            raise check.error(where, f"unknown placeholder {{{name}}}; params and matrix keys: {known}")
    return template.format(**values)


def _parse_cells(value: Any, check: _Checker, workloads: Collection[str] | None) -> tuple[CellTemplate, ...]:
    if not isinstance(value, list) or not value:
        raise check.error("cells", "expected at least one [[cells]] table")
    cells: list[CellTemplate] = []
    seen: dict[str, str] = {}
    for number, raw in enumerate(value, start=1):
        prefix = f"cells[{number}]"
        table = check.table(raw, prefix, CELL_KEYS)
        fields_ = {key: check.string(table, key, f"{prefix}.{key}") for key in
                   ("workload", "task", "model", "dataset")}
        fields_["scenario"] = check.string(table, "scenario", f"{prefix}.scenario", "single-stream")
        fields_["label"] = check.string(table, "label", f"{prefix}.label", "")
        if workloads is not None and fields_["workload"] not in workloads:
            raise check.error(f"{prefix}.workload",
                              f"expected one of {', '.join(sorted(workloads))}, got {fields_['workload']!r}")
        known_scenarios = scenario_names()
        if fields_["scenario"] not in known_scenarios:
            raise check.error(f"{prefix}.scenario",
                              f"expected one of {', '.join(known_scenarios)}, got {fields_['scenario']!r}")
        params_table = table.get("params", {})
        if not isinstance(params_table, Mapping):
            raise check.error(f"{prefix}.params", f"expected a table, got {_show(params_table)}")
        params = {k: _param_value(v, f"{prefix}.params.{k}", check) for k, v in params_table.items()}
        matrix_table = table.get("matrix", {})
        if not isinstance(matrix_table, Mapping):
            raise check.error(f"{prefix}.matrix", f"expected a table, got {_show(matrix_table)}")
        axes: dict[str, tuple[Any, ...]] = {}
        for key, values in matrix_table.items():
            where = f"{prefix}.matrix.{key}"
            if not isinstance(values, list) or not values:
                raise check.error(where, f"expected a non-empty array of values, got {_show(values)}")
            if key in params:
                raise check.error(where, "also given in params; a key is either fixed or swept")
            axes[key] = tuple(_param_value(v, where, check) for v in values)
        # itertools.product varies the last key fastest: the order nested for-loops would give.
        for combination in itertools.product(*axes.values()):
            chosen = dict(zip(axes, combination, strict=True))
            cell = CellTemplate(
                workload=fields_["workload"],
                task=fields_["task"],
                scenario=fields_["scenario"],
                params=frozen({**params, **chosen}),
                **{key: _format(fields_[key], {**params, **chosen}, f"{prefix}.{key}", check)
                   for key in TEMPLATED_CELL_KEYS},
            )
            cell_id = cell.cell_id("BACKEND", "PRECISION", runtime="RUNTIME")
            if cell_id in seen:
                where = "twice" if seen[cell_id] == prefix else f"again (first in {seen[cell_id]})"
                raise check.error(prefix, f"cell {cell_id} appears {where}; give each cell its own "
                                          "label (with a matrix, name the swept keys in it)")
            seen[cell_id] = prefix
            cells.append(cell)
    return tuple(cells)


def parse_suite(
    data: Mapping[str, Any],
    source: str,
    workloads: Collection[str] | None = None,
    overridden: Collection[str] = (),
) -> Suite:
    """Check a suite document (a loaded TOML file, or a stored ``to_dict``) and build the suite.

    ``workloads``: the workload names that exist (the registry lives in ``portbench.suites``, which the
    harness does not import); None skips that check. ``overridden``: keys that came from ``--set``.
    """
    check = _Checker(source, overridden)
    document = check.table(data, "", SECTIONS)
    header = check.table(document.get("suite"), "suite", SUITE_KEYS) if "suite" in document else None
    if header is None:
        raise check.error("suite", "missing; expected a [suite] table with at least name")
    name = check.string(header, "name", "suite.name")
    if not name.strip():
        raise check.error("suite.name", "expected a non-empty string")
    known_precisions = [p.value for p in Precision]
    precisions_value = check.names(header, "precisions", "suite.precisions", "fp32", known_precisions)
    runtimes_value = check.names(header, "runtimes", "suite.runtimes", DEFAULT_RUNTIME, runtime_names())
    trials = check.whole(header, "trials", "suite.trials", 3)
    if trials < 1:
        raise check.error("suite.trials", f"expected a whole number >= 1, got {trials}")
    processes = check.whole(header, "processes", "suite.processes", 1)
    if processes < 1:
        raise check.error("suite.processes", f"expected a whole number >= 1, got {processes}")
    return Suite(
        name=name,
        description=check.string(header, "description", "suite.description", ""),
        cells=_parse_cells(document.get("cells"), check, workloads),
        measure=_parse_measure(document.get("measure", {}), check),
        precisions=tuple(dict.fromkeys(precisions_value)),
        trials=trials,
        processes=processes,
        runtimes=tuple(dict.fromkeys(runtimes_value)),
        gates=_parse_gates(document.get("gates", {}), check),
    )


# --- files, built-ins and --set ------------------------------------------------------------------


def read_document(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteFileError(f"{source}: not valid TOML: {exc}") from None


def parse_set(assignment: str) -> tuple[str, Any]:
    """``measure.min_duration_s=5`` -> ("measure.min_duration_s", 5.0 or 5): values are TOML, so
    types are checked like the file's; anything that is not a TOML value is taken as a string."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SuiteFileError(f"--set expects KEY=VALUE (e.g. measure.min_duration_s=5), got {assignment!r}")
    try:
        value = tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return key, value


def apply_sets(document: Mapping[str, Any], assignments: Sequence[str], source: str) -> dict[str, Any]:
    """A copy of ``document`` with each ``--set KEY=VALUE`` applied; the result is checked by
    :func:`parse_suite` like any file, so a mistyped key or value is reported, not ignored."""
    updated = _deep_copy(document)
    for assignment in assignments:
        key, value = parse_set(assignment)
        parts = key.split(".")
        if parts[0] not in SETTABLE_SECTIONS or len(parts) < 2:
            raise SuiteFileError(
                f"{source}: {key}: --set cannot change this; it sets a key under "
                f"{', '.join(SETTABLE_SECTIONS)} (e.g. measure.min_duration_s=5); cells change in the file"
            )
        table = updated
        for depth, part in enumerate(parts[:-1]):
            nested = table.setdefault(part, {})
            if not isinstance(nested, dict):
                raise SuiteFileError(f"{source}: {'.'.join(parts[: depth + 1])}: is not a table (from --set)")
            table = nested
        table[parts[-1]] = value
    return updated


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def builtin_suite_names() -> list[str]:
    files = resources.files(BUILTIN_PACKAGE)
    return sorted(p.name.removesuffix(".toml") for p in files.iterdir() if p.name.endswith(".toml"))


def _load(text: str, source: str, sets: Sequence[str], workloads: Collection[str] | None) -> Suite:
    document = read_document(text, source)
    if sets:
        document = apply_sets(document, sets, source)
    overridden = [parse_set(s)[0] for s in sets]
    return parse_suite(document, source, workloads, overridden)


def get_suite(name: str, sets: Sequence[str] = (), workloads: Collection[str] | None = None) -> Suite:
    """A built-in suite by name."""
    names = builtin_suite_names()
    if name not in names:
        raise UnknownNameError("suite", name, names)
    text = resources.files(BUILTIN_PACKAGE).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return _load(text, f"built-in suite {name}", sets, workloads)


def load_suite_file(path: Path, sets: Sequence[str] = (), workloads: Collection[str] | None = None) -> Suite:
    """A user's suite file: TOML, or JSON in the same layout (e.g. a stored resolved suite)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteFileError(f"suite file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteFileError(f"{source}: cannot read: {exc}") from None
    if path.suffix == ".json":
        import json

        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SuiteFileError(f"{source}: not valid JSON: {exc}") from None
        if sets:
            document = apply_sets(document, sets, source)
        return parse_suite(document, source, workloads, [parse_set(s)[0] for s in sets])
    return _load(text, source, sets, workloads)


def is_suite_path(text: str) -> bool:
    """``--suite`` takes a built-in name or a path; anything with a separator or suffix is a path."""
    return "/" in text or "\\" in text or text.endswith(SUITE_SUFFIXES)


def resolve_suite(
    name_or_path: str, sets: Sequence[str] = (), workloads: Collection[str] | None = None
) -> Suite:
    if is_suite_path(name_or_path):
        return load_suite_file(Path(name_or_path).expanduser(), sets, workloads)
    return get_suite(name_or_path, sets, workloads)
