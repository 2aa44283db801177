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


# The names the rest of portbench calls; the behaviour is the Registry's.
backend_targets = BACKENDS.targets
backend_names = BACKENDS.names
backend_class = BACKENDS.load
backend_classes = BACKENDS.loadable
create_backend = BACKENDS.create
