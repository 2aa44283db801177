"""Permissions for what portbench writes through tempfile (atomic writes, staged builds).

``tempfile.mkstemp`` and ``mkdtemp`` create their file or directory private (0600 / 0700) whatever the
umask, so anything renamed into place from them would be unreadable on a team share. These helpers
give such paths the mode an ordinary ``open()`` or ``mkdir()`` would have given them.
"""

from __future__ import annotations

import os
from pathlib import Path

from portbench.errors import PortbenchError


def current_umask() -> int:
    # The umask can only be read by setting it; the private value in between means a file another
    # thread creates in that instant errs on the side of being too private, never too open.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    return 0o666 & ~current_umask()


def default_dir_mode() -> int:
    return 0o777 & ~current_umask()


def publish_dir_mode(directory: Path) -> None:
    """Give a ``mkdtemp`` staging directory the mode ``mkdir`` would have, before it is renamed."""
    directory.chmod(default_dir_mode())


def ensure_directory(path: Path, what: str) -> Path:
    """Create ``path`` now, so a file in the way or a missing permission fails before any work."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PortbenchError(f"cannot use {path} as the {what}: {error.strerror or error}") from None
    return path
