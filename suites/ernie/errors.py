"""Errors specific to ERNIE inputs, all one-line :class:`PortbenchError` subclasses."""

from __future__ import annotations

from portbench.errors import DatasetError, ModelError


class VocabError(ModelError):
    """A ``vocab.txt`` is missing, empty or not one token per line."""


class CheckpointError(ModelError):
    """A PaddleNLP checkpoint (config + state dict) is missing, inconsistent or malformed."""


class EvalDataError(DatasetError):
    """An evaluation TSV is missing or malformed, or uses labels outside the label list."""
