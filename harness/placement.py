"""Operator placement: which operators ran on the device, which fell back to the CPU, and their
share of time where Paddle's profiler reports it.

Three sources, all Paddle's own:

* the **optimized program** Paddle Inference saves with ``enable_save_optim_model`` (legacy
  ``_optimized.pdmodel`` protobuf, or PIR ``_optimized.json``): every operator that runs, after
  fusion, with its count;
* the **profiling report** ``enable_profile`` prints when the predictor is destroyed ("Event
  Summary": calls, total ms and ratio per operator, and the ``Place``);
* the **kernel-fallback log lines** Paddle writes when a device has no kernel for an operator
  (``missing NPU kernel: lookup_table, expected_kernel_key:..., fallbacking to CPU one!``; in phi,
  ``phi missing <backend> kernel: <op>, ... fallback to CPU one!``), read from the cell's log.

The pass runs after the timed loops on a predictor of its own (profiling slows every operator), so
no measured figure carries its cost. It runs once per model and predictor configuration in a run:
a later cell that loads the same files with the same options (the system task's det model after the
det task's, a scenario sweep over one model) records a copy marked ``measured_in`` that cell, since
the optimized program and the fallbacks follow from the files, the device and the options alone.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import json
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portbench.backends.base import Backend, ModelFiles, PredictorOptions
from portbench.harness.results import CellResult

PROFILE_RUNS = 2
OPTIMIZED_LEGACY = "_optimized.pdmodel"
OPTIMIZED_PIR = "_optimized.json"
# "missing NPU kernel: lookup_table, expected_kernel_key:...:place[Place(npu:0)]:..., fallbacking to CPU one!"
# "phi missing npu kernel: conv2d, expected_kernel_key:..., fallback to CPU one!"
FALLBACK_LINE = re.compile(
    r"missing (?P<device>[\w-]+) kernel: (?P<op>[\w.]+), expected_kernel_key:\s*(?P<key>.*?),\s*"
    r"fallback(?:ing)? to CPU"
)
EVENT_HEADER = re.compile(r"^Event\s+Calls\s+Total\s+")
PLACE_LINE = re.compile(r"^Place:\s*(\S+)")
# Profiler rows that are the executor's own work, not an operator.
NOT_OPERATORS = ("Executor::", "PhiKernelInstruction::", "load_combine", "save_combine", "feed", "fetch")


@dataclass(frozen=True)
class OpTime:
    name: str
    calls: int
    total_ms: float
    ratio: float  # share of the report's total, 0..1


@dataclass(frozen=True)
class Fallback:
    op: str
    device: str
    kernel_key: str


def parse_fallback_lines(text: str) -> list[Fallback]:
    """Every kernel-fallback line of a Paddle log, first occurrence per operator, in log order."""
    found: dict[str, Fallback] = {}
    for match in FALLBACK_LINE.finditer(text):
        found.setdefault(
            match.group("op"), Fallback(match.group("op"), match.group("device"), match.group("key"))
        )
    return list(found.values())


def parse_profile_report(text: str) -> tuple[str | None, list[OpTime]]:
    """``(place, operators)`` from the "Event Summary" of Paddle's profiling report. Indented rows
    (sub-events) and the executor's own rows are left out; ``thread0::`` prefixes are dropped."""
    place = None
    ops: list[OpTime] = []
    in_table = False
    for line in text.splitlines():
        if place is None and (found := PLACE_LINE.match(line.strip())):
            place = found.group(1)
        if not in_table:
            in_table = bool(EVENT_HEADER.match(line))
            continue
        if not line.strip() or line.startswith("-"):
            break  # the table ends at the next section
        if line.startswith(" "):
            continue  # a sub-event of the row above
        fields = line.split()
        if len(fields) < 7:
            continue
        name = (
            fields[0].split("::", 1)[1] if fields[0].startswith("thread") and "::" in fields[0] else fields[0]
        )
        if name.startswith(NOT_OPERATORS):
            continue
        try:
            ops.append(OpTime(name, int(fields[1]), float(fields[2]), float(fields[6])))
        except ValueError:
            continue
    return place, ops


def _pir_name(name: str) -> str:
    # PIR JSON names dialects by number in its own ops: 1 is pd_op; named dialects stay as written.
    dialect, _, op = name.partition(".")
    return f"pd_op.{op}" if dialect == "1" else name


def _pir_ops(node: Any, counts: Counter[str]) -> None:
    if isinstance(node, dict):
        for region in node.get("regions", []):
            for block in region.get("blocks", []):
                for op in block.get("ops", []):
                    name = op.get("#", "")
                    if name and name != "p" and not name.startswith("0."):
                        counts[_pir_name(name)] += 1
                    _pir_ops(op, counts)


def optimized_op_counts(directory: Path) -> Counter[str]:
    """Operator counts of the optimized program Paddle saved in ``directory`` (either format)."""
    counts: Counter[str] = Counter()
    legacy, pir = directory / OPTIMIZED_LEGACY, directory / OPTIMIZED_PIR
    if legacy.is_file():
        from paddle.base.proto import framework_pb2

        program = framework_pb2.ProgramDesc()  # type: ignore[attr-defined]
        program.ParseFromString(legacy.read_bytes())
        counts.update(op.type for block in program.blocks for op in block.ops)
    elif pir.is_file():
        _pir_ops(json.loads(pir.read_text(encoding="utf-8")).get("program", {}), counts)
    for bookkeeping in ("feed", "fetch", "pd_op.data", "pd_op.fetch"):
        counts.pop(bookkeeping, None)
    return counts


@contextlib.contextmanager
def captured_stdout_fd(into: Path) -> Iterator[None]:
    """C++ prints the profiling report on file descriptor 1: point it at ``into`` meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(into, "wb") as target:
        os.dup2(target.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def profile_model(
    backend: Backend, files: ModelFiles, options: PredictorOptions, feeds: Sequence[Sequence[np.ndarray]]
) -> tuple[Counter[str], str | None, list[OpTime]]:
    """Op counts of the optimized program, and the profiler's place and per-op times over
    ``PROFILE_RUNS`` runs of every feed, on a predictor made only for this."""
    import paddle.inference as paddle_infer

    with tempfile.TemporaryDirectory(prefix="portbench-placement-") as scratch:
        work = Path(scratch)
        config = backend.new_config(files)
        backend.configure(config, options)
        config.enable_save_optim_model(True)
        config.set_optim_cache_dir(str(work / "optimized"))
        config.enable_profile()
        report = work / "profile.txt"
        with captured_stdout_fd(report):
            predictor = paddle_infer.create_predictor(config)
            inputs = [predictor.get_input_handle(n) for n in predictor.get_input_names()]
            for _ in range(PROFILE_RUNS):
                for feed in feeds:
                    for handle, array in zip(inputs, feed, strict=True):
                        handle.reshape(array.shape)
                        handle.copy_from_cpu(array)
                    predictor.run()
            backend.synchronize()
            # The report is printed when the predictor goes, and the legacy profiler also writes
            # ./profile.log then: let that land in the scratch folder, not the user's directory.
            with _working_directory(work):
                del inputs, predictor
                gc.collect()
        place, ops = parse_profile_report(report.read_text(encoding="utf-8", errors="replace"))
        return optimized_op_counts(work / "optimized"), place, ops


def placement_for_role(
    device: str,
    counts: Mapping[str, int],
    place: str | None,
    times: Sequence[OpTime],
    fallbacks: Sequence[Fallback],
) -> dict[str, Any]:
    """One role's record. On the CPU every operator runs on the CPU; elsewhere an operator the log
    names as fallen back ran on the CPU and every other one on the device."""
    fallen = {f.op for f in fallbacks}
    on_cpu_device = device == "cpu"

    def where(op: str) -> str:
        bare = op.split(".", 1)[1] if "." in op else op
        if on_cpu_device:
            return "cpu"
        return "cpu (fallback)" if op in fallen or bare in fallen else device

    by_op = {t.name: t for t in times}
    operators = [
        {
            "op": op,
            "count": count,
            "placement": where(op),
            "calls": by_op[op].calls if op in by_op else None,
            "total_ms": by_op[op].total_ms if op in by_op else None,
            "time_share": by_op[op].ratio if op in by_op else None,
        }
        for op, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
    timed_share = {"device": 0.0, "cpu": 0.0}
    for t in times:
        timed_share["cpu" if where(t.name).startswith("cpu") else "device"] += t.ratio
    return {
        "device": device,
        "profiler_place": place,
        "op_total": sum(counts.values()),
        "ops_on_device": 0
        if on_cpu_device
        else sum(o["count"] for o in operators if o["placement"] == device),
        "ops_on_cpu": sum(o["count"] for o in operators if str(o["placement"]).startswith("cpu")),
        # Shares of the operators' own time (the report's total also holds executor overhead).
        "time_share_on_cpu": timed_share["cpu"] / sum(timed_share.values()) if times else None,
        "operators": operators,
        "fallbacks": [asdict(f) for f in fallbacks],
    }


def placement_key(
    backend: str, device: str, model_sha256: Mapping[str, str], options: PredictorOptions
) -> str:
    """What decides a role's placement: the backend and device, the model files' digests and every
    predictor option that changes the optimized program (the engine cache folder does not)."""
    identity = {
        "backend": backend,
        "device": device,
        "model_sha256": dict(sorted(model_sha256.items())),
        "precision": options.precision.value,
        "cpu_threads": options.cpu_threads,
        "ir_optim": options.ir_optim,
        "dynamic_shapes": {
            name: [list(bound) for bound in bounds] for name, bounds in sorted(options.dynamic_shapes.items())
        },
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def measured_placements(cells: Sequence[CellResult]) -> dict[str, str]:
    """``placement key -> cell id`` of every role profiled by one of ``cells`` (copies excluded)."""
    measured: dict[str, str] = {}
    for cell in cells:
        for role in ((cell.placement or {}).get("roles") or {}).values():
            if "key" in role and "measured_in" not in role and "error" not in role:
                measured.setdefault(role["key"], cell.cell_id)
    return measured


def fill_shared_placements(result: CellResult, cells: Sequence[CellResult]) -> None:
    """Replace each ``{"key", "measured_in"}`` stub of ``result`` by a copy of the role record it
    names, so every cell carries its placement in full; a stub whose source is gone stays a stub."""
    roles = (result.placement or {}).get("roles") or {}
    by_id = {cell.cell_id: cell for cell in cells}
    for name, role in roles.items():
        source_cell = by_id.get(role.get("measured_in", ""))
        if source_cell is None or "op_total" in role:
            continue
        for source in ((source_cell.placement or {}).get("roles") or {}).values():
            if source.get("key") == role["key"] and "measured_in" not in source:
                roles[name] = {**copy.deepcopy(source), "measured_in": source_cell.cell_id}
                break
