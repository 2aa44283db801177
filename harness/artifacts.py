"""One store for everything portbench builds or caches: datasets, exported and quantized models.

An entry is a directory ``<root>/<name>/`` holding the built files and a JSON manifest: the builder's
metadata, the entry's key (a digest of everything that determines its content) and the sha256 of
every other file in the directory. :meth:`ArtifactStore.build` builds into a private staging
directory beside the target, writes the manifest, and publishes by one ``rename``; readers therefore
see either no entry or a complete one. Every fetch re-hashes the files, and an entry that fails
(missing, edited, truncated, manifest unreadable, another key) is rebuilt, the reason returned as
``rebuilt_because``.

Two processes building the same key do not lock each other out: both build, the first rename wins,
and the loser keeps the winner's entry when it verifies (identical inputs give identical content).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portbench.errors import PortbenchError
from portbench.files import publish_dir_mode

HASH_CHUNK = 1 << 20
KEY_FIELD = "artifact_key"
DEFAULT_MANIFEST = "manifest.json"
DEFAULT_FILES_FIELD = "sha256"

Builder = Callable[[Path], Mapping[str, Any] | None]


def canonical_sha256(value: Mapping[str, Any]) -> str:
    """sha256 of ``value`` as JSON with sorted keys: equal mappings, equal digests. Of everything an
    entry is built from, it is the entry's key."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(directory: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under ``directory`` by POSIX relative path, in sorted order."""
    return {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.relative_to(directory).as_posix() not in exclude
    }


def write_manifest(
    directory: Path,
    metadata: Mapping[str, Any],
    manifest: str = DEFAULT_MANIFEST,
    files_field: str = DEFAULT_FILES_FIELD,
    key: str | None = None,
) -> dict[str, Any]:
    """Hash every file in ``directory`` and write ``metadata`` + digests (+ key) as its manifest.

    A ``files_field`` already in ``metadata`` keeps its place in the key order (and gets the
    recomputed digests), so a builder that lists its files itself keeps its manifest's layout.
    """
    record = dict(metadata)
    record[files_field] = hash_tree(directory, exclude=(manifest,))
    if key is not None:
        record[KEY_FIELD] = key
    text = json.dumps(record, ensure_ascii=False, indent=1) + "\n"
    (directory / manifest).write_text(text, encoding="utf-8")
    return record


def verify_manifest(
    directory: Path,
    manifest: str = DEFAULT_MANIFEST,
    files_field: str = DEFAULT_FILES_FIELD,
    key: str | None = None,
    required: tuple[str, ...] = (),
) -> tuple[dict[str, Any] | None, str | None]:
    """(manifest, None) when ``directory`` is intact, else (None, what is wrong, one phrase)."""
    path = directory / manifest
    if not directory.is_dir():
        return None, f"{directory.name} is missing"
    if not path.is_file():
        return None, f"{manifest} is missing"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        files = record[files_field]
        if not isinstance(files, dict) or not all(
            isinstance(n, str) and isinstance(d, str) for n, d in files.items()
        ):
            raise TypeError(files_field)
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{manifest} is unreadable"
    if key is not None and record.get(KEY_FIELD) != key:
        return None, f"{manifest} records another key"
    for name in required:
        if name not in files:
            return None, f"{manifest} does not record {name}"
    for name, digest in files.items():
        file_path = directory / name
        if not file_path.is_file():
            return None, f"{name} is missing"
        if sha256_file(file_path) != digest:
            return None, f"{name} fails its sha256 check (corrupted or edited)"
    return record, None


@dataclass(frozen=True)
class Artifact:
    """A verified store entry. ``built``: this call's build is the one published.
    ``rebuilt_because``: why an entry that was already there got replaced (None when none was)."""

    directory: Path
    key: str
    manifest: Mapping[str, Any]
    built: bool
    rebuilt_because: str | None = None


@dataclass(frozen=True, kw_only=True)
class CachedBuild:
    """What a cached builder hands its caller, beside the built files (a subclass names those):
    the entry's key, its manifest (the provenance), and how this call got it: from the cache, or
    built, with why a cached copy was replaced."""

    cache_key: str
    provenance: dict[str, Any]
    from_cache: bool = False
    rebuilt_because: str | None = None

    def recorded(self, **extra: Any) -> dict[str, Any]:
        """The provenance as a cell's results store it: the manifest, ``extra``, and how this call
        got the entry."""
        return {
            **self.provenance,
            **extra,
            "from_cache": self.from_cache,
            "rebuilt_because": self.rebuilt_because,
        }


class ArtifactStore:
    """Entries under ``root``; ``manifest`` / ``files_field`` name the manifest file and its digest map.

    ``error`` is the one-line error class raised when the store cannot be written.
    """

    def __init__(
        self,
        root: Path,
        manifest: str = DEFAULT_MANIFEST,
        files_field: str = DEFAULT_FILES_FIELD,
        required: tuple[str, ...] = (),
        error: type[PortbenchError] = PortbenchError,
    ) -> None:
        self.root = root
        self.manifest = manifest
        self.files_field = files_field
        self.required = required
        self.error = error

    def path(self, name: str) -> Path:
        return self.root / name

    def check(self, name: str, key: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """(manifest, None) for an intact entry of ``key``, else (None, why not)."""
        return verify_manifest(self.path(name), self.manifest, self.files_field, key, self.required)

    def fetch(self, name: str, key: str | None) -> Artifact | None:
        record, _ = self.check(name, key)
        if record is None:
            return None
        return Artifact(self.path(name), key or str(record.get(KEY_FIELD, "")), record, built=False)

    def build(
        self,
        name: str,
        key: str,
        builder: Builder,
        *,
        rebuild: bool = False,
        on_rebuild: Callable[[str], None] | None = None,
    ) -> Artifact:
        """The intact entry ``name`` for ``key``, built first when missing, damaged or ``rebuild``.

        ``builder(staging)`` writes the files into ``staging`` and returns metadata for the manifest.
        If it raises, nothing is published and the staging directory is removed.
        """
        target = self.path(name)
        rebuilt_because = None
        if target.exists():
            record, problem = self.check(name, key)
            if record is not None and not rebuild:
                return Artifact(target, key, record, built=False)
            rebuilt_because = "rebuild requested" if record is not None else problem
            if on_rebuild is not None and rebuilt_because is not None:
                on_rebuild(rebuilt_because)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=self.root))
        except OSError as error:
            raise self.error(f"cannot write the cache {self.root} ({error.strerror or error})") from None
        try:
            metadata = builder(staging) or {}
            record = write_manifest(staging, metadata, self.manifest, self.files_field, key)
            publish_dir_mode(staging)  # mkdtemp made it private; the cache is shared as the umask allows
            won = self._publish(staging, name, key, replace=rebuild)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if not won:
            theirs, _ = self.check(name, key)
            return Artifact(target, key, theirs or record, built=False, rebuilt_because=rebuilt_because)
        return Artifact(target, key, record, built=True, rebuilt_because=rebuilt_because)

    def _publish(self, staging: Path, name: str, key: str, replace: bool) -> bool:
        """Rename ``staging`` to the entry; False when a concurrent builder's intact entry is kept."""
        target = self.path(name)
        if target.exists():
            if not replace and self.check(name, key)[0] is not None:
                return False
            self._discard(target)
        try:
            staging.rename(target)
        except OSError:
            # Someone published between the discard and the rename; theirs is as good as ours.
            if self.check(name, key)[0] is None:
                raise self.error(f"cannot publish {target}: another process left a damaged copy") from None
            return False
        return True

    def _discard(self, target: Path) -> None:
        # Moved aside first, so a concurrent reader never sees a half-deleted entry under its name.
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-stale-", dir=target.parent))
        with contextlib.suppress(OSError):  # a concurrent rebuild may have moved it already
            target.rename(stale / "old")
        shutil.rmtree(stale, ignore_errors=True)
