"""Errors a user can act on.

Anything raised as :class:`PortbenchError` reaches the user as one line on stderr and exit code 2
(see ``harness.cli``); everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PortbenchError(Exception):
    """A problem with the user's input or machine, explained in one line."""

    exit_code = 2


class UnknownNameError(PortbenchError):
    """An unknown backend, suite, model, workload or precision name."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]) -> None:
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(sorted(known)) or 'none'}")


class ModelError(PortbenchError):
    """A model directory is missing, incomplete, corrupt or fails its hash check."""


class DatasetError(PortbenchError):
    """A dataset is missing or not in the expected format."""


class BackendUnavailableError(PortbenchError):
    """A backend was requested explicitly but cannot run on this machine."""


class SessionUnavailableError(PortbenchError):
    """A runtime could not run a model the way a cell asks (an execution provider that is not in the
    installed build and would silently fall back to the CPU): the cell is skipped with this reason,
    never measured on something other than what its id says."""
