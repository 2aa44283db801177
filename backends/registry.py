"""Explicit backend registry: the built-ins below plus the ``portbench.backends`` entry-point group.

Backends are imported lazily so a machine without an accelerator SDK can still list and run others.
"""

from __future__ import annotations

from portbench.backends.base import Backend
from portbench.plugins import Registry

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
BACKENDS = Registry[Backend]("backend", Backend, BUILTIN_BACKENDS, ENTRY_POINT_GROUP)


def backend_targets() -> dict[str, str]:
    """Every backend name with its ``module:Class`` target; built-ins win over plugins."""
    return BACKENDS.targets()


def backend_names() -> list[str]:
    return BACKENDS.names()


def backend_class(name: str) -> type[Backend]:
    return BACKENDS.load(name)


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
