"""Identity of the machine a run happened on (CPU, OS, Python, Paddle).

Kept free of paddle imports at module level: the runner's parent process describes the platform
without loading Paddle.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

PROC_CPUINFO = Path("/proc/cpuinfo")


def parse_cpu_flags(cpuinfo_text: str) -> frozenset[str]:
    """Feature flags from ``/proc/cpuinfo`` text (x86 ``flags`` or ARM ``Features``)."""
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        return parse_cpu_flags(PROC_CPUINFO.read_text(errors="replace"))
    except OSError:
        return frozenset()


def machine_architecture() -> str:
    return platform.machine().lower() or "unknown"
