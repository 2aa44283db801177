"""Explicit backend registry: the built-ins below plus the ``portbench.backends`` entry-point group.

Backends are imported lazily so a machine without an accelerator SDK can still list and run others.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from portbench.backends.base import Backend
from portbench.errors import UnknownNameError

BUILTIN_BACKENDS: dict[str, str] = {
    "cpu": "portbench.backends.cpu:CpuBackend",
    "cuda": "portbench.backends.cuda:CudaBackend",
    "tensorrt": "portbench.backends.cuda:TensorRTBackend",
    "npu": "portbench.backends.npu:AscendNpuBackend",
    "mlu": "portbench.backends.mlu:CambriconMluBackend",
    "xpu": "portbench.backends.xpu:KunlunXpuBackend",
    "dcu": "portbench.backends.dcu:HygonDcuBackend",
    "iluvatar": "portbench.backends.iluvatar:IluvatarGpuBackend",
}

ENTRY_POINT_GROUP = "portbench.backends"


def backend_targets() -> dict[str, str]:
    """Every backend name with its ``module:Class`` target; built-ins win over plugins."""
    targets = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    targets.update(BUILTIN_BACKENDS)
    return targets


def backend_names() -> list[str]:
    return list(backend_targets())


def backend_class(name: str) -> type[Backend]:
    targets = backend_targets()
    if name not in targets:
        raise UnknownNameError("backend", name, list(targets))
    module_name, _, class_name = targets[name].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise TypeError(f"{targets[name]} is not a portbench Backend")
    return cls


def backend_classes() -> dict[str, type[Backend]]:
    """Every backend class that imports, by name, for registries reading class declarations.

    A third-party backend that fails to import (a missing SDK, a broken plugin) is left out rather
    than raised: recording a run or listing platforms must not depend on it. ``backend_class``
    still raises for it, which is where ``portbench backends`` reports the error.
    """
    classes: dict[str, type[Backend]] = {}
    for name in backend_targets():
        try:
            classes[name] = backend_class(name)
        except Exception:  # any import-time failure of a plugin module, including TypeError above
            continue
    return classes


def create_backend(name: str, device_id: int = 0) -> Backend:
    return backend_class(name)(device_id=device_id)
