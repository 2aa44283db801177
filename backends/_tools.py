"""Shared plumbing for the accelerator backends: vendor tools, table parsing, guarded Paddle calls.

Everything here is defensive on purpose: ``probe`` must never raise, and a machine without an
accelerator (or with a half-installed SDK) is the normal case, not an error.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from portbench.installed import distribution_version  # re-exported: backends read it from here

TOOL_TIMEOUT_S = 15.0
MIB = 1 << 20

T = TypeVar("T")


@dataclass(frozen=True)
class ToolOutput:
    """What a vendor tool printed, or why it printed nothing usable."""

    text: str | None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.text is not None


def run_tool(argv: Sequence[str], timeout_s: float = TOOL_TIMEOUT_S) -> ToolOutput:
    """Run a vendor tool and return its stdout; never raises."""
    executable = shutil.which(argv[0])
    if executable is None:
        return ToolOutput(None, f"{argv[0]} not found on PATH")
    try:
        completed = subprocess.run(
            [executable, *argv[1:]],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ToolOutput(None, f"{argv[0]} did not answer within {timeout_s:.0f} s")
    except OSError as error:
        return ToolOutput(None, f"{argv[0]} could not run: {error}")
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()
        reason = detail[-1] if detail else f"exit status {completed.returncode}"
        return ToolOutput(None, f"{argv[0]} failed: {reason}")
    return ToolOutput(completed.stdout)


def run_first_tool(names: Sequence[str], args: Sequence[str] = ()) -> ToolOutput:
    """The output of the first of ``names`` that runs with ``args`` (vendors renamed their tools
    across driver releases); otherwise every tool's problem, joined."""
    if not names:
        return ToolOutput(None, "no device tool declared")
    problems = []
    for name in names:
        output = run_tool((name, *args))
        if output.text is not None:
            return output
        problems.append(output.problem)
    return ToolOutput(None, "; ".join(problems))


def table_cells(line: str) -> list[str]:
    """Cells of one ``| a | b |`` row of a box-drawn table (vendor ``*-smi`` tools)."""
    stripped = line.strip()
    if not stripped.startswith("|"):
        return []
    return [cell.strip() for cell in stripped.strip("|").split("|")]


USED_TOTAL = re.compile(r"(\d+(?:\.\d+)?)\s*(?:MiB|MB)?\s*/\s*(\d+(?:\.\d+)?)\s*(?:MiB|MB)?")


def used_total_mib(cell: str) -> tuple[int, int] | None:
    """The last ``used / total`` pair in a table cell, in MiB (vendor tools print MiB as "MB")."""
    pairs = USED_TOTAL.findall(cell)
    if not pairs:
        return None
    used, total = pairs[-1]
    return int(float(used)), int(float(total))


def device_nodes(pattern: str, root: Path = Path("/dev")) -> list[Path]:
    try:
        return sorted(root.glob(pattern))
    except OSError:
        return []


def import_paddle() -> tuple[ModuleType | None, str]:
    """``(paddle, "")`` or ``(None, why)``; importing paddle can fail in many ways on a broken SDK."""
    try:
        return importlib.import_module("paddle"), ""
    except Exception as error:  # a broken plugin raises anything from ImportError to RuntimeError
        return None, f"importing paddle failed: {type(error).__name__}: {error}"


def guarded(call: Callable[[], T], default: T) -> T:
    """``call()``, or ``default`` when the Paddle build lacks the API or the runtime errors."""
    try:
        return call()
    except Exception:  # probing an SDK: any failure means "not available", never a crash
        return default


def paddle_device_call(paddle: Any, name: str, *args: Any) -> Any:
    """``paddle.device.<name>(*args)``; raises AttributeError where this Paddle build lacks it."""
    return getattr(paddle.device, name)(*args)


def precision_type(precision_value: str) -> Any:
    """``paddle.inference.PrecisionType`` for a portbench precision value (imported lazily)."""
    from paddle.inference import PrecisionType

    return {
        "fp32": PrecisionType.Float32,
        "fp16": PrecisionType.Half,
        "bf16": PrecisionType.Bfloat16,
        "int8": PrecisionType.Int8,
    }[precision_value]


def paddle_synchronize(device: str) -> None:
    paddle, _ = import_paddle()
    if paddle is not None:
        guarded(lambda: paddle.device.synchronize(device), None)


def paddle_memory_reserved(device: str) -> int | None:
    """Device memory Paddle's allocator holds for this process, or ``None`` where unsupported."""
    paddle, _ = import_paddle()
    if paddle is None:
        return None
    return guarded(lambda: int(paddle.device.memory_reserved(device)), None)


def custom_device_probe(paddle: Any, device_type: str, plugin: str, index_channel: str) -> str:
    """Why a PaddleCustomDevice plugin cannot run, or ``""`` when Paddle has it loaded."""
    types: list[str] = guarded(lambda: list(paddle.device.get_all_custom_device_type() or []), [])
    if device_type in types:
        return ""
    installed = distribution_version(plugin)
    if installed is None:
        return (
            f"{plugin} plugin not installed (pip install {plugin} -i "
            f"https://www.paddlepaddle.org.cn/packages/stable/{index_channel}/ , matching the "
            f"paddlepaddle CPU wheel's version)"
        )
    return (
        f"{plugin} {installed} is installed but Paddle did not load it (check CUSTOM_DEVICE_ROOT, "
        f"the vendor runtime libraries and that the paddlepaddle version matches the plugin)"
    )
