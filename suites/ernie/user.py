"""A user's own ERNIE classifier: an inference export, or a PaddleNLP checkpoint exported on the fly.

Accepted directories:
- exported: ``inference.json`` or ``inference.pdmodel`` + ``inference.pdiparams`` + ``vocab.txt`` +
  ``labels.txt`` (one label per line, in class-index order);
- checkpoint: ``model_config.json`` + ``model_state.pdparams`` + ``vocab.txt`` (labels from
  ``labels.txt``, else ``id2label`` / ``label_list`` in the config, else the class indices ``0..n-1``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portbench.backends.base import ModelFiles
from portbench.errors import ModelError
from portbench.harness.artifacts import ArtifactStore, sha256_file
from portbench.harness.models import MODEL_FORMATS, check_model_files, find_model_files
from portbench.suites.ernie.checkpoint import (
    CONFIG_FILE_ALIASES,
    STATE_FILE,
    is_checkpoint_dir,
    load_checkpoint,
    read_checkpoint_config,
)
from portbench.suites.ernie.data import read_labels
from portbench.suites.ernie.export import export_inference
from portbench.suites.ernie.tokenizer import read_vocab

VOCAB_FILE = "vocab.txt"
LABELS_FILE = "labels.txt"
SOURCE_FILE = "source.json"
_DEFAULT_LABEL = re.compile(r"LABEL_\d+")


@dataclass(frozen=True)
class UserModel:
    source: Path
    model_files: ModelFiles
    vocab_file: Path
    labels: tuple[str, ...]
    max_position_embeddings: int | None  # known for checkpoints (and exports that keep their config)
    exported_on_the_fly: bool


def load_user_model(directory: Path, models_root: Path) -> UserModel:
    """Resolve ``directory`` to inference files + vocabulary + labels; raises :class:`ModelError`."""
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} does not exist")
    vocab_file = directory / VOCAB_FILE
    read_vocab(vocab_file)  # fails early, with a one-line reason, on a bad vocabulary
    has_export = any((directory / model).is_file() for model, _ in MODEL_FORMATS)
    if has_export:
        files = find_model_files(directory)
        check_model_files(files)
        labels = read_labels(directory / LABELS_FILE)
        config_path = next((directory / n for n in CONFIG_FILE_ALIASES if (directory / n).is_file()), None)
        max_positions = read_checkpoint_config(directory).max_position_embeddings if config_path else None
        return UserModel(directory, files, vocab_file, labels, max_positions, exported_on_the_fly=False)
    if is_checkpoint_dir(directory):
        config = read_checkpoint_config(directory)
        files, num_labels = _export_checkpoint(directory, models_root)
        labels = _checkpoint_labels(directory, config.labels, num_labels)
        return UserModel(
            directory, files, vocab_file, labels, config.max_position_embeddings, exported_on_the_fly=True
        )
    raise ModelError(
        f"{directory} is neither an ERNIE inference export (inference.json|pdmodel + inference.pdiparams) "
        f"nor a PaddleNLP checkpoint (model_config.json + {STATE_FILE})"
    )


def _export_checkpoint(directory: Path, models_root: Path) -> tuple[ModelFiles, int]:
    """Export once per distinct (config, weights) pair; later runs reuse the cached export.

    Returns the files and the classifier's class count (recorded next to the export)."""
    digest = checkpoint_digest(directory)

    def build(staging: Path) -> dict[str, Any]:
        model = load_checkpoint(directory)
        export_inference(model, staging)
        return {"checkpoint": str(directory.resolve()), "num_labels": model.config.num_labels}

    store = ArtifactStore(models_root, manifest=SOURCE_FILE, error=ModelError)
    artifact = store.build(f"ernie-user-{digest[:16]}", digest, build)
    return find_model_files(artifact.directory), int(artifact.manifest["num_labels"])


def checkpoint_digest(directory: Path) -> str:
    """sha256 over a checkpoint's config and weights: what its exports are keyed by."""
    digest = hashlib.sha256()
    for name in (*CONFIG_FILE_ALIASES, STATE_FILE):
        if (directory / name).is_file():
            digest.update(name.encode() + sha256_file(directory / name).encode())
    return digest.hexdigest()


def _checkpoint_labels(directory: Path, config_labels: tuple[str, ...], num_labels: int) -> tuple[str, ...]:
    if (directory / LABELS_FILE).is_file():
        labels = read_labels(directory / LABELS_FILE)
    elif config_labels and not all(_DEFAULT_LABEL.fullmatch(label) for label in config_labels):
        labels = config_labels
    else:
        labels = tuple(str(i) for i in range(num_labels))
    if len(labels) != num_labels:
        raise ModelError(f"{directory}: {len(labels)} labels for a classifier with {num_labels} classes")
    return labels
