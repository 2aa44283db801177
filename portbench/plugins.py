"""One registry shape for everything third parties extend (backends, runtimes, workloads, scenarios,
reports): built-in ``module:Class`` targets plus an entry-point group, imported only when asked for,
built-ins winning over plugins of the same name.

The modules that own a registry only declare it (its built-ins and group); looking a name up, listing,
checking names and creating instances are the methods below, so every kind answers an unknown name
with the same one-line error.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar, cast

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
        """Every registered name, without importing any of them."""
        return list(self.targets())

    def check(self, names: Iterable[str]) -> None:
        """UnknownNameError (one line, exit 2) for the first of ``names`` that is not registered;
        nothing is imported."""
        known = self.names()
        for name in names:
            if name not in known:
                raise UnknownNameError(self.kind, name, known)

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

    def create(self, name: str, *args: Any, **kwargs: Any) -> T:
        """An instance of the class registered as ``name``; the arguments go to its constructor."""
        return self.load(name)(*args, **kwargs)

    def loadable(self) -> dict[str, type[T]]:
        """Every class that imports, by name, for code reading class declarations.

        A plugin that fails to import (a missing SDK, a broken package, a class of the wrong kind) is
        left out rather than raised: recording a run or listing what exists must not depend on it.
        ``load`` still raises for it, which is where a listing command reports the error.
        """
        classes: dict[str, type[T]] = {}
        for name in self.targets():
            try:
                classes[name] = self.load(name)
            except Exception:  # any import-time failure of a plugin module, including TypeError above
                continue
        return classes
