"""What is installed here, read from the distributions' metadata: nothing is imported."""

from __future__ import annotations

import importlib.metadata


def distribution_version(name: str) -> str | None:
    """The installed version of the pip distribution ``name``; None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
