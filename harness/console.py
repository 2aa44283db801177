"""The one place portbench makes a rich Console: terminals get rich's layout, logs get whole lines.

Off a terminal (a CI log, a pipe, a file) rich would lay everything out at 80 columns, breaking long
cell ids and reasons mid-word, so there text is never wrapped, tables are as wide as their content
(or ``COLUMNS``, when the environment sets it) and no colour codes are written.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console

# Wider than any table portbench prints, so a table off a terminal is laid out at its natural width.
LOG_WIDTH = 10_000


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def log_width() -> int:
    columns = os.environ.get("COLUMNS", "").strip()
    return int(columns) if columns.isdigit() and int(columns) > 0 else LOG_WIDTH


def make_console(*, stderr: bool = False) -> Console:
    """A Console on stdout (or stderr) suited to where that stream goes."""
    stream = sys.stderr if stderr else sys.stdout
    if _is_terminal(stream):
        return Console(stderr=stderr)
    return Console(
        stderr=stderr, width=log_width(), soft_wrap=True, color_system=None, force_terminal=False
    )
