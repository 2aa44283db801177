"""One real smoke run (OCR det only, CPU) bundled, verified, tampered with, and printed by Chromium."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


def portbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portbench.harness.cli", *args],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def smoke_bundle(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("evidence-e2e")
    run = base / "run"
    result = portbench("run", "--suite", "smoke", "--backend", "cpu", "--only", "ocr/det",
                       "--out", str(run), "--cache-dir", str(cache_dir))  # fmt: skip
    assert result.returncode == 0, result.stderr
    bundle = base / "evidence.zip"
    made = portbench("evidence", str(run), "--out", str(bundle))
    # --only ocr/det leaves four of the suite's five cells out: the verdict is FAIL, bundle written.
    assert made.returncode == 1, made.stderr
    assert "verdict: 未通过 / FAIL" in made.stdout
    return run, bundle


def test_real_run_bundle_verifies_and_says_what_it_checked(smoke_bundle: tuple[Path, Path]) -> None:
    run, bundle = smoke_bundle
    with zipfile.ZipFile(bundle) as archive:
        document = json.loads(archive.read("evidence.json"))
        names = set(archive.namelist())
    results = {r["id"]: r for r in document["requirements"]}
    assert results["platform"]["result"] == "PASS"  # this Debian machine identifies itself fully
    assert sum("left out by --only ocr/det" in p for p in results["suite_complete"]["problems"]) == 4
    # The smoke dataset is 4 pages and 16 line crops plus their label files; every one was hashed.
    cell = json.loads((run / "results.json").read_text(encoding="utf-8"))["cells"][0]
    recorded = cell["dataset_sha256"]
    assert sum(path.endswith(".png") for path in recorded) >= 4 + 16
    assert any(path.endswith("det_gt.txt") for path in recorded)
    assert all(hashlib.sha256(Path(p).read_bytes()).hexdigest() == d for p, d in recorded.items())
    # The det model is two files (program and parameters), present here and unchanged since the run.
    assert results["file_digests"]["details"][0].startswith(
        f"{2 + len(recorded)} model and dataset file(s) re-hashed and matching"
    )
    expected = {"results.json", "evidence.json", "report.html", "SHA256SUMS"}
    expected |= {
        p.relative_to(run).as_posix() for folder in ("outputs", "logs") for p in (run / folder).iterdir()
    }
    assert names == expected
    verified = portbench("evidence", "verify", str(bundle))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "verdicts re-derived: 未通过 / FAIL" in verified.stdout


def test_one_byte_of_real_results_changed_fails_naming_it(
    smoke_bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    _, bundle = smoke_bundle
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bundle) as source, zipfile.ZipFile(bad, "w") as target:
        for name in source.namelist():
            data = bytearray(source.read(name))
            if name == "results.json":
                data[data.index(b'"passed"') + 1] ^= 0x20  # "passed" -> "Passed"
            target.writestr(name, bytes(data))
    result = portbench("evidence", "verify", str(bad))
    assert result.returncode == 1
    assert "results.json: altered" in result.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_report_prints_in_headless_chromium(smoke_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    _, bundle = smoke_bundle
    page = tmp_path / "report.html"
    with zipfile.ZipFile(bundle) as archive:
        page.write_bytes(archive.read("report.html"))
    pdf = tmp_path / "report.pdf"
    shot = tmp_path / "report.png"
    for flag in (f"--print-to-pdf={pdf}", f"--screenshot={shot}"):
        subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,2400", flag,
             page.as_uri()],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000
    assert shot.read_bytes().startswith(b"\x89PNG")
