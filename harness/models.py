"""Named models: files with sha256 digests, verified before use.

A model entry says where its files come from (an installed package, the portbench cache, or a user
directory), what they must hash to, and what goes in and comes out. ``resolve`` returns verified
``ModelFiles`` or raises ``ModelError`` with one line the user can act on.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from portbench.backends.base import ModelFiles
from portbench.errors import ModelError

# Re-exported: the one digest function stays importable from here.
from portbench.harness.artifacts import sha256_file as sha256_file

MODEL_FORMATS = (("inference.pdmodel", "inference.pdiparams"), ("inference.json", "inference.pdiparams"))


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str
    shape: tuple[int | str, ...]  # -1 or a symbolic name for dynamic axes
    description: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """A registered model. ``package`` + ``subdir`` locate files shipped inside an installed package."""

    name: str
    workload: str
    task: str
    description: str
    source: str  # human-readable provenance for reports
    package: str | None = None
    subdir: str = ""
    sha256: Mapping[str, str] = field(default_factory=dict)  # file name -> digest
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    synthetic_weights: bool = False

    def directory(self) -> Path:
        if self.package is None:
            raise ModelError(f"model {self.name!r} has no installed location; pass --model-dir")
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ModelError(
                f"model {self.name!r} needs the Python package {self.package!r}, which is not installed"
            )
        return Path(spec.origin).parent / self.subdir


def find_model_files(directory: Path) -> ModelFiles:
    """The inference files in ``directory``: legacy ``inference.pdmodel`` or PIR ``inference.json``."""
    if not directory.is_dir():
        raise ModelError(f"model directory {directory} does not exist")
    for model_name, params_name in MODEL_FORMATS:
        model_file, params_file = directory / model_name, directory / params_name
        if model_file.is_file():
            if not params_file.is_file():
                raise ModelError(f"model directory {directory} has {model_name} but no {params_name}")
            return ModelFiles(model_file, params_file)
    raise ModelError(
        f"model directory {directory} holds no Paddle inference model "
        "(expected inference.pdmodel or inference.json with inference.pdiparams)"
    )


def verify_digests(directory: Path, expected: Mapping[str, str], model_name: str) -> dict[str, str]:
    """Hash every expected file; raise on a missing file or a mismatch. Returns the digests."""
    actual: dict[str, str] = {}
    for file_name, digest in expected.items():
        path = directory / file_name
        if not path.is_file():
            raise ModelError(f"model {model_name!r}: {path} is missing")
        actual[file_name] = sha256_file(path)
        if actual[file_name] != digest:
            raise ModelError(
                f"model {model_name!r}: {path} fails its sha256 check "
                f"(expected {digest[:12]}…, got {actual[file_name][:12]}…); the file is corrupt or replaced"
            )
    return actual


def hash_model_files(files: ModelFiles) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in (files.model_file, files.params_file)}


def resolve(entry: ModelEntry, override_dir: Path | None = None) -> tuple[ModelFiles, dict[str, str]]:
    """Verified files for ``entry`` and their digests.

    With ``override_dir`` the user's own export is used; it is hashed and recorded, not checked
    against the registry (it is a different model by definition).
    """
    if override_dir is not None:
        files = find_model_files(override_dir)
        check_params_readable(files)
        return files, hash_model_files(files)
    directory = entry.directory()
    digests = verify_digests(directory, entry.sha256, entry.name)
    return find_model_files(directory), digests


def check_params_readable(files: ModelFiles) -> None:
    """Catch the common corruptions (empty or truncated files) before Paddle aborts on them."""
    for path in (files.model_file, files.params_file):
        if path.stat().st_size == 0:
            raise ModelError(f"{path} is empty")
