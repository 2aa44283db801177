"""Explicit runtime registry: the built-ins plus the ``portbench.runtimes`` entry-point group.

Runtime classes import nothing heavy at module level; the runtime library itself is imported only
inside ``create_session``, i.e. in a cell's worker process.
"""

from __future__ import annotations

from portbench.backends.runtimes.base import Runtime
from portbench.plugins import Registry

DEFAULT_RUNTIME = "paddle"
BUILTIN_RUNTIMES: dict[str, str] = {
    "paddle": "portbench.backends.runtimes.paddle:PaddleRuntime",
    "onnxruntime": "portbench.backends.runtimes.onnxruntime:OnnxRuntimeRuntime",
    "openvino": "portbench.backends.runtimes.openvino:OpenVinoRuntime",
}
ENTRY_POINT_GROUP = "portbench.runtimes"
RUNTIMES = Registry[Runtime]("runtime", Runtime, BUILTIN_RUNTIMES, ENTRY_POINT_GROUP)


runtime_names = RUNTIMES.names
create_runtime = RUNTIMES.create
