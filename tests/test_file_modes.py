"""What portbench writes through tempfile gets the permissions of an ordinary file or directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from portbench.errors import PortbenchError
from portbench.harness.results import RunResults, save_results, write_atomic


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


# What `ls -l` shows a team for a new file / directory under each umask.
EXPECTED_FILE = {0o022: 0o644, 0o027: 0o640}
EXPECTED_DIR = {0o022: 0o755, 0o027: 0o750}


def test_atomic_writes_follow_the_umask(umask: int, tmp_path: Path) -> None:
    write_atomic(tmp_path / "summary.md", "# x\n")
    assert mode_of(tmp_path / "summary.md") == EXPECTED_FILE[umask]
    # the same as a plain open() under the same umask
    (tmp_path / "plain.md").write_text("# x\n")
    assert mode_of(tmp_path / "summary.md") == mode_of(tmp_path / "plain.md")


def test_rewriting_keeps_the_mode_the_file_already_has(umask: int, tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text("{}")
    target.chmod(0o604)  # set by hand, unlike anything the umask would give
    write_atomic(target, "{}\n")
    assert mode_of(target) == 0o604
    assert target.read_text() == "{}\n"


def minimal_results() -> RunResults:
    from portbench.harness.platform_info import describe_platform

    return RunResults(
        run_id="20260101T000000Z-abcdef", started_at="2026-01-01T00:00:00+00:00",
        portbench_version="0.1.0", suite="smoke", platform=describe_platform(),
    )


def test_results_json_and_report_files_follow_the_umask(umask: int, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    save_results(minimal_results(), run_dir)
    assert mode_of(run_dir / "results.json") == EXPECTED_FILE[umask]
    # `portbench report` writes summary.md in a child process, which inherits this umask.
    done = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "report", str(run_dir)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert mode_of(run_dir / "summary.md") == EXPECTED_FILE[umask]
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")]  # no temp files left


def test_published_cache_entries_follow_the_umask(umask: int, tmp_path: Path) -> None:
    from portbench.harness.artifacts import ArtifactStore

    def build(staging: Path) -> dict[str, str]:
        (staging / "weights.bin").write_bytes(b"\x00" * 8)
        return {}

    entry = ArtifactStore(tmp_path).build("model", "key-1", build)
    assert mode_of(entry.directory) == EXPECTED_DIR[umask]


def test_generated_dataset_directory_follows_the_umask(umask: int, tmp_path: Path) -> None:
    from portbench.suites.ocr.datagen import SynthSpec, ensure_dataset

    spec = SynthSpec(pages_clean=1, pages_degraded=0, lines_clean=1, lines_degraded=0)
    dataset = ensure_dataset(spec, tmp_path)
    assert mode_of(dataset.root) == EXPECTED_DIR[umask]


def test_a_path_that_cannot_be_written_is_a_portbench_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(PortbenchError, match=r"cannot write .*a-file/run/results\.json: Not a directory"):
        write_atomic(tmp_path / "a-file" / "run" / "results.json", "{}")
