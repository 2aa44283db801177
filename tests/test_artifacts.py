"""The artifact store: publish, verification, rebuild with a reason, failed builds, concurrent builders."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from portbench.errors import DatasetError
from portbench.harness.artifacts import KEY_FIELD, ArtifactStore, sha256_file, verify_manifest

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

# sha256 of b"abc" and b"" (FIPS 180-2 test vector and the well-known empty digest).
ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class Builder:
    """Writes weights.bin = b"abc" and sub/empty.txt = b"", counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, staging: Path) -> dict[str, Any]:
        self.calls += 1
        (staging / "weights.bin").write_bytes(b"abc")
        (staging / "sub").mkdir()
        (staging / "sub" / "empty.txt").write_bytes(b"")
        return {"what": "toy", "calls": self.calls}


def test_sha256_file_matches_known_vectors(tmp_path: Path) -> None:
    (tmp_path / "abc").write_bytes(b"abc")
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "abc") == ABC_SHA256
    assert sha256_file(tmp_path / "empty") == EMPTY_SHA256
    big = bytes(range(256)) * 5000  # spans more than one read chunk
    (tmp_path / "big").write_bytes(big)
    assert sha256_file(tmp_path / "big") == hashlib.sha256(big).hexdigest()


def test_build_publishes_files_and_manifest_then_reuses(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "cache")
    builder = Builder()
    first = store.build("toy-1", "k" * 64, builder)
    assert first.built and first.rebuilt_because is None
    assert first.directory == tmp_path / "cache" / "toy-1"
    manifest = json.loads((first.directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest == {
        "what": "toy",
        "calls": 1,
        "sha256": {"sub/empty.txt": EMPTY_SHA256, "weights.bin": ABC_SHA256},
        KEY_FIELD: "k" * 64,
    }
    assert (first.directory.stat().st_mode & 0o777) == 0o755
    second = store.build("toy-1", "k" * 64, builder)
    assert builder.calls == 1 and not second.built and second.manifest["calls"] == 1
    assert store.fetch("toy-1", "k" * 64) is not None
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["toy-1"]  # no staging litter


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("edit", "weights.bin fails its sha256 check"),
        ("truncate", "weights.bin fails its sha256 check"),
        ("delete", "sub/empty.txt is missing"),
        ("manifest", "manifest.json is unreadable"),
        ("no-manifest", "manifest.json is missing"),
        ("other-key", "manifest.json records another key"),
    ],
)
def test_damaged_entry_is_detected_and_rebuilt_with_its_reason(
    tmp_path: Path, damage: str, reason: str
) -> None:
    store = ArtifactStore(tmp_path)
    builder = Builder()
    entry = store.build("toy", "key-1", builder).directory
    if damage == "edit":
        (entry / "weights.bin").write_bytes(b"abd")
    elif damage == "truncate":
        (entry / "weights.bin").write_bytes(b"ab")
    elif damage == "delete":
        (entry / "sub" / "empty.txt").unlink()
    elif damage == "manifest":
        (entry / "manifest.json").write_text("{not json", encoding="utf-8")
    elif damage == "no-manifest":
        (entry / "manifest.json").unlink()
    else:
        record = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
        record[KEY_FIELD] = "key-0"
        (entry / "manifest.json").write_text(json.dumps(record), encoding="utf-8")
    assert store.fetch("toy", "key-1") is None
    notes: list[str] = []
    rebuilt = store.build("toy", "key-1", builder, on_rebuild=notes.append)
    assert builder.calls == 2 and rebuilt.built
    assert rebuilt.rebuilt_because is not None and rebuilt.rebuilt_because.startswith(reason)
    assert notes == [rebuilt.rebuilt_because]
    assert (entry / "weights.bin").read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]  # the damaged copy is gone too
    assert store.build("toy", "key-1", builder).built is False


def test_required_files_must_be_recorded(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path, required=("model.bin",))
    store.build("toy", "k", Builder())
    assert store.check("toy", "k") == (None, "manifest.json does not record model.bin")


def test_a_failing_builder_publishes_nothing_and_leaves_no_litter(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "cache")

    def crash(staging: Path) -> dict[str, Any]:
        (staging / "half.bin").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.build("toy", "k", crash)
    assert list((tmp_path / "cache").iterdir()) == []


def test_a_failing_rebuild_leaves_no_staging_litter(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    entry = store.build("toy", "k", Builder()).directory
    (entry / "weights.bin").write_bytes(b"broken")

    def crash(staging: Path) -> dict[str, Any]:
        raise RuntimeError("compiler exploded")

    with pytest.raises(RuntimeError, match="compiler exploded"):
        store.build("toy", "k", crash)
    # The damaged entry is still detected as damaged; no staging directory is left.
    assert store.fetch("toy", "k") is None
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]


def test_rebuild_replaces_an_intact_entry(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    builder = Builder()
    store.build("toy", "k", builder)
    again = store.build("toy", "k", builder, rebuild=True)
    assert again.built and again.manifest["calls"] == 2 and again.rebuilt_because == "rebuild requested"
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]


def test_a_concurrent_builder_that_finishes_first_wins(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    inner = Builder()

    def slow(staging: Path) -> dict[str, Any]:
        # While this build runs, another builder of the same key publishes its entry.
        store.build("toy", "k", inner)
        (staging / "weights.bin").write_bytes(b"abc")
        (staging / "sub").mkdir()
        (staging / "sub" / "empty.txt").write_bytes(b"")
        return {"what": "toy", "calls": "outer"}

    result = store.build("toy", "k", slow)
    assert not result.built and result.manifest["calls"] == 1  # the winner's manifest
    assert verify_manifest(tmp_path / "toy", key="k")[1] is None
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]


def _build_in_process(root: str, queue: Any) -> None:
    store = ArtifactStore(Path(root))
    artifact = store.build("toy", "k", Builder())
    queue.put((artifact.built, artifact.manifest["sha256"]["weights.bin"]))


def test_two_processes_building_one_key_leave_one_intact_entry(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_build_in_process, args=(str(tmp_path), queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    answers = [queue.get(timeout=5) for _ in workers]
    assert {digest for _, digest in answers} == {ABC_SHA256}
    assert sum(built for built, _ in answers) >= 1
    assert verify_manifest(tmp_path / "toy", key="k")[1] is None
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]


def test_an_unwritable_root_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = ArtifactStore(blocker / "cache", error=DatasetError)
    with pytest.raises(DatasetError, match="cannot write the cache"):
        store.build("toy", "k", Builder())
