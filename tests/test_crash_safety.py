"""A crash in one cell never costs the others, and an interrupted run resumes where it stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from portbench.harness.results import validate_document

CELLS = ("--only", "ocr/det", "--only", "ocr/rec")
DEADLINE_S = 300


def start_run(out: Path, cache_dir: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "portbench.harness.cli", "run", "--suite", "smoke", "--backend", "cpu",
         "--out", str(out), "--cache-dir", str(cache_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def wait_for(condition, what: str) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def workers(parent: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in parent.children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):  # not the resource tracker
                found.append(child)
        except psutil.Error:
            continue
    return found


def saved_cells(out: Path) -> list[dict[str, object]]:
    try:
        return list(json.loads((out / "results.json").read_text())["cells"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return []


def test_a_killed_worker_fails_only_its_cell(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "run"
    run = start_run(out, cache_dir, *CELLS)
    parent = psutil.Process(run.pid)
    worker = wait_for(lambda: next(iter(workers(parent)), None), "the first worker")
    time.sleep(1.0)  # let it get into the cell
    worker.send_signal(signal.SIGKILL)  # type: ignore[attr-defined]
    _, stderr = run.communicate(timeout=DEADLINE_S)

    assert run.returncode == 1, stderr  # a measurement failure, not a user error
    data = json.loads((out / "results.json").read_text())
    validate_document(data)
    statuses = {c["task"]: (c["status"], c["reason"]) for c in data["cells"]}
    assert statuses["det"][0] == "failed" and "SIGKILL" in str(statuses["det"][1])
    assert statuses["rec"][0] == "passed"
    assert data["finished_at"] is not None


def test_resume_finishes_only_the_missing_cells(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "run"
    run = start_run(out, cache_dir, *CELLS)
    wait_for(lambda: len(saved_cells(out)) == 1, "the first cell to be saved")
    os.killpg(run.pid, signal.SIGKILL)  # power loss: parent and worker gone at once
    run.wait(timeout=30)

    interrupted = json.loads((out / "results.json").read_text())
    validate_document(interrupted)  # the file on disk is whole, even after a hard kill
    assert interrupted["finished_at"] is None
    (first,) = interrupted["cells"]

    resumed = subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", "run", "--resume", str(out)],
        capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads((out / "results.json").read_text())
    validate_document(final)
    assert final["cells"][0]["cell_id"] == first["cell_id"]
    assert final["cells"][0]["started_at"] == first["started_at"]  # not re-run
    assert sorted(c["task"] for c in final["cells"]) == ["det", "rec"]
    assert all(c["status"] == "passed" for c in final["cells"])
    assert final["run_id"] == interrupted["run_id"]


@pytest.mark.parametrize("signal_name", ["SIGKILL"])
def test_describe_exit_names_the_signal(signal_name: str) -> None:
    from portbench.harness.runner import _describe_exit

    assert signal_name in _describe_exit(-getattr(signal, signal_name))
    assert _describe_exit(3) == "worker exited with code 3"
