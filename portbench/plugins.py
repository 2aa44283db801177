"""One registry shape for everything third parties extend (backends, workloads, reports): built-in
``module:Class`` targets plus an entry-point group, imported only when asked for, built-ins winning
over plugins of the same name."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Generic, TypeVar, cast

from portbench.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Registry(Generic[T]):
    kind: str  # "backend", "workload", "report": how errors name it
    # The contract's (abstract) class; typed plain ``type`` because mypy refuses an abstract class
    # where ``type[T]`` is expected, and these bases are abstract by design.
    base: type
    builtins: Mapping[str, str]
    group: str  # the entry-point group, e.g. "portbench.backends"

    def targets(self) -> dict[str, str]:
        """Every name with its ``module:Class`` target."""
        targets = {ep.name: ep.value for ep in entry_points(group=self.group)}
        targets.update(self.builtins)
        return targets

    def names(self) -> list[str]:
        return list(self.targets())

    def load(self, name: str) -> type[T]:
        """The class registered as ``name``; UnknownNameError (one line, exit 2) for another name."""
        targets = self.targets()
        if name not in targets:
            raise UnknownNameError(self.kind, name, list(targets))
        module_name, _, class_name = targets[name].partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{targets[name]} is not a portbench {self.base.__name__}")
        return cast("type[T]", cls)
