"""Workloads by name. Imported lazily: listing suites must not load Paddle."""

from __future__ import annotations

import importlib

from portbench.errors import UnknownNameError
from portbench.harness.workload import Workload

WORKLOADS: dict[str, str] = {
    "ocr": "portbench.suites.ocr.workload:OcrWorkload",
    "ernie": "portbench.suites.ernie.workload:ErnieWorkload",
}


def create_workload(name: str) -> Workload:
    if name not in WORKLOADS:
        raise UnknownNameError("workload", name, list(WORKLOADS))
    module_name, _, class_name = WORKLOADS[name].partition(":")
    workload: Workload = getattr(importlib.import_module(module_name), class_name)()
    return workload
