"""The compliance evidence bundle, on hand-built runs with known files, digests and verdicts."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from portbench.harness.cli import main
from portbench.harness.results import (
    CellResult,
    LatencySummary,
    ModelRecord,
    RunResults,
    TrialSummary,
    save_results,
)
from portbench.harness.verdict import MetricCheck, ParityVerdict, ReferenceInfo
from portbench.reports.evidence import VerificationError, verify_bundle, write_bundle

pytestmark = pytest.mark.fast  # no Paddle: hand-built results, files made by the test

# sha256 of b"abc" and of b"" (FIPS 180-2 test vector; the empty-string digest), not computed here.
SHA_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
SHA_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

PLATFORM: dict[str, Any] = {
    "cpu": {
        "vendor": "HiSilicon",
        "model_name": "Kunpeng-920",
        "architecture": "aarch64",
        "cores_physical": 96,
        "cores_logical": 96,
    },
    "memory_total_bytes": 512 * 2**30,
    "os": {
        "id": "kylin",
        "name": "Kylin Linux Advanced Server",
        "version_id": "V10",
        "pretty_name": "Kylin Linux Advanced Server V10 (Lance)",
    },
    "kernel": "4.19.90-24.4.v2101.ky10.aarch64",
    "python": {"version": "3.11.7"},
    "paddle": {"distribution": "paddlepaddle", "version": "3.2.2", "commit": "a1b2c3d4", "plugins": {}},
}

SUITE: dict[str, Any] = {
    "suite": {"name": "mini", "description": "", "precisions": ["fp32", "int8"], "trials": 3},
    "measure": {},
    "gates": {},
    "cells": [
        {
            "workload": "ocr",
            "task": "det",
            "model": "det-m",
            "dataset": "synth",
            "scenario": "single-stream",
            "label": "",
            "params": {},
        },
        {
            "workload": "ernie",
            "task": "cls",
            "model": "ernie-m",
            "dataset": "toks",
            "scenario": "single-stream",
            "label": "s32",
            "params": {},
        },
    ],
}


def stable_trials(unstable: bool = False) -> TrialSummary:
    return TrialSummary(
        trials=3,
        p50_ms=(10.0, 10.1, 10.2),
        samples_per_s=(99.0, 98.0, 97.0),
        median_p50_ms=10.1,
        mean_p50_ms=10.1,
        ci95_low_ms=9.85,
        ci95_high_ms=10.35,
        cv=0.3 if unstable else 0.0099,
        cv_threshold=0.05,
        unstable=unstable,
    )


def make_cell(
    workload: str, task: str, model: str, label: str, precision: str, model_dir: Path
) -> CellResult:
    model_part = f"{model}@{label}" if label else model
    return CellResult(
        cell_id=f"{workload}/{task}/{model_part}/cpu/paddle/{precision}/single-stream",
        workload=workload,
        task=task,
        model=model,
        backend="cpu",
        precision=precision,
        scenario="single-stream",
        dataset="synth",
        status="passed",
        device="cpu",
        device_info={"backend": "cpu", "device": "cpu", "name": "Kunpeng-920", "vendor": "HiSilicon"},
        models=[
            ModelRecord(role="det", name=model, path=str(model_dir), sha256={"inference.pdiparams": SHA_ABC})
        ],
        latency_ms=LatencySummary(
            n=30, mean=10.0, min=9.0, max=12.0, stdev=0.5, p50=10.1, p90=11.0, p99=None
        ),
        trials=stable_trials(),
    )


def parity_pass(reference_cell: str, run_id: str | None = None) -> ParityVerdict:
    return ParityVerdict(
        verdict="pass",
        reference=ReferenceInfo(cell_id=reference_cell, backend="cpu", precision="fp32", run_id=run_id),
        task={
            "det_hmean": MetricCheck(
                reference=0.80, value=0.796, ratio=0.995, delta=-0.004, gate=0.99, passed=True
            )
        },
    )


def make_results(model_dir: Path) -> RunResults:
    cells = []
    for workload, task, model, label in (("ocr", "det", "det-m", ""), ("ernie", "cls", "ernie-m", "s32")):
        fp32 = make_cell(workload, task, model, label, "fp32", model_dir)
        int8 = make_cell(workload, task, model, label, "int8", model_dir)
        int8.parity = parity_pass(fp32.cell_id)
        cells += [fp32, int8]
    return RunResults(
        run_id="run-a",
        started_at="2026-01-01T12:00:00+08:00",
        finished_at="2026-01-01T12:30:00+08:00",
        portbench_version="0.1.0",
        suite="mini",
        platform=PLATFORM,
        git_sha="482a48a",
        command=["portbench", "run"],
        request={"backends": ["cpu"], "precisions": ["fp32", "int8"], "only": []},
        suite_definition=SUITE,
        cells=cells,
    )


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "inference.pdiparams").write_bytes(b"abc")
    return directory


def write_run(run_dir: Path, results: RunResults) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    save_results(results, run_dir)
    (run_dir / "outputs").mkdir(exist_ok=True)
    (run_dir / "outputs" / "det.json").write_bytes(b"abc")
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "det.log").write_bytes(b"")
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path, model_dir: Path) -> Path:
    return write_run(tmp_path / "run", make_results(model_dir))


def requirement_results(document: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["result"] for r in document["requirements"]}


def problems_of(document: dict[str, Any], requirement: str) -> list[str]:
    return next(r["problems"] for r in document["requirements"] if r["id"] == requirement)


def rewrite(bundle: Path, out: Path, change: dict[str, bytes | None], resum: bool = False) -> Path:
    """Copy ``bundle`` to ``out`` with members replaced (bytes), dropped (None) or added; ``resum``
    writes a SHA256SUMS that matches the changed members (a forger who updates the sums too)."""
    with zipfile.ZipFile(bundle) as source:
        members = {name: source.read(name) for name in source.namelist()}
    for name, data in change.items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    if resum:
        members["SHA256SUMS"] = "".join(
            f"{hashlib.sha256(d).hexdigest()}  {n}\n" for n, d in sorted(members.items()) if n != "SHA256SUMS"
        ).encode()
    with zipfile.ZipFile(out, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    return out


def run_cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
        raise SystemExit(0)
    return int(exit_info.value.code or 0)


# --- a bundle that passes --------------------------------------------------------------------------


def test_a_complete_stable_run_passes_every_requirement(
    run_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    document = write_bundle(run_dir, make_results(model_dir), None, tmp_path / "e.zip")
    assert requirement_results(document) == {
        "platform": "PASS",
        "suite_complete": "PASS",
        "parity": "PASS",
        "file_digests": "PASS",
        "stability": "PASS",
    }
    assert (document["verdict"], document["verdict_zh"]) == ("PASS", "适配通过")
    # Four model records (two cells × two precisions), each one file with content b"abc".
    assert [c["state"] for c in document["file_checks"]] == ["match"] * 4
    assert {c["observed"] for c in document["file_checks"]} == {SHA_ABC}


def test_bundle_members_and_sha256sums_in_sha256sum_format(
    run_dir: Path, model_dir: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "e.zip"
    write_bundle(run_dir, make_results(model_dir), None, bundle)
    with zipfile.ZipFile(bundle) as archive:
        names = sorted(archive.namelist())
        sums = archive.read("SHA256SUMS").decode()
        results_bytes = archive.read("results.json")
    assert names == sorted(
        ["SHA256SUMS", "evidence.json", "report.html", "results.json", "outputs/det.json", "logs/det.log"]
    )
    lines = sums.splitlines()
    assert f"{SHA_ABC}  outputs/det.json" in lines
    assert f"{SHA_EMPTY}  logs/det.log" in lines
    # The run's results.json travels byte for byte.
    assert results_bytes == (run_dir / "results.json").read_bytes()
    assert len(lines) == 5 and all(not line.endswith("SHA256SUMS") for line in lines)


def test_an_intact_bundle_verifies(run_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "e.zip"
    write_bundle(run_dir, make_results(model_dir), None, bundle)
    report = verify_bundle(bundle)
    assert report.verdict == "PASS"
    assert report.signature == "absent"
    assert len(report.checked) == 5


# --- tampering -----------------------------------------------------------------------------------


@pytest.fixture
def bundle(run_dir: Path, model_dir: Path, tmp_path: Path) -> Path:
    path = tmp_path / "e.zip"
    write_bundle(run_dir, make_results(model_dir), None, path)
    return path


def test_one_changed_byte_of_results_json_names_it(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        data = bytearray(archive.read("results.json"))
    position = data.index(b"Kunpeng")
    data[position] = ord("k")  # one byte, still valid JSON
    bad = rewrite(bundle, tmp_path / "bad.zip", {"results.json": bytes(data)})
    with pytest.raises(VerificationError, match=r"^results\.json: altered"):
        verify_bundle(bad)
    assert run_cli(["evidence", "verify", str(bad)]) == 1


def test_a_missing_member_is_named(bundle: Path, tmp_path: Path) -> None:
    bad = rewrite(bundle, tmp_path / "bad.zip", {"logs/det.log": None})
    with pytest.raises(VerificationError, match=r"^logs/det\.log: listed in SHA256SUMS, missing"):
        verify_bundle(bad)


def test_an_added_member_is_named(bundle: Path, tmp_path: Path) -> None:
    bad = rewrite(bundle, tmp_path / "bad.zip", {"outputs/extra.json": b"{}"})
    with pytest.raises(VerificationError, match=r"^outputs/extra\.json: in the bundle, not listed"):
        verify_bundle(bad)


def test_a_missing_sha256sums_is_named(bundle: Path, tmp_path: Path) -> None:
    bad = rewrite(bundle, tmp_path / "bad.zip", {"SHA256SUMS": None})
    with pytest.raises(VerificationError, match=r"^SHA256SUMS: missing"):
        verify_bundle(bad)


def test_a_forged_verdict_with_matching_sums_is_caught_by_re_deriving(bundle: Path, tmp_path: Path) -> None:
    # Make the run fail (one unstable cell) but leave evidence.json saying PASS, sums updated to match.
    with zipfile.ZipFile(bundle) as archive:
        results = json.loads(archive.read("results.json"))
    results["cells"][0]["trials"]["unstable"] = True
    changed = json.dumps(results).encode()
    bad = rewrite(bundle, tmp_path / "bad.zip", {"results.json": changed}, resum=True)
    with pytest.raises(
        VerificationError, match=r"^evidence\.json: requirement stability .* says PASS, .* give FAIL"
    ):
        verify_bundle(bad)


def test_forged_file_checks_are_caught(bundle: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(bundle) as archive:
        document = json.loads(archive.read("evidence.json"))
    document["file_checks"] = document["file_checks"][1:]
    bad = rewrite(bundle, tmp_path / "bad.zip", {"evidence.json": json.dumps(document).encode()}, resum=True)
    with pytest.raises(VerificationError, match=r"^evidence\.json: file_checks do not match"):
        verify_bundle(bad)


# --- each requirement failing ------------------------------------------------------------------------


def test_a_failing_int8_cell_fails_parity_and_the_verdict(model_dir: Path, tmp_path: Path) -> None:
    results = make_results(model_dir)
    results.cells[1].parity = ParityVerdict(verdict="fail", reason="det_hmean 0.70 < 0.99 × 0.80")
    run = write_run(tmp_path / "run", results)
    document = write_bundle(run, results, None, tmp_path / "e.zip")
    assert requirement_results(document)["parity"] == "FAIL"
    assert problems_of(document, "parity") == [
        "ocr/det/det-m/cpu/paddle/int8/single-stream: parity fail (det_hmean 0.70 < 0.99 × 0.80)"
    ]
    assert (document["verdict"], document["verdict_zh"]) == ("FAIL", "未通过")
    # A FAIL bundle is still intact: verify reproduces the FAIL.
    assert verify_bundle(tmp_path / "e.zip").verdict == "FAIL"


def test_a_pass_against_a_non_fp32_cell_does_not_count(model_dir: Path, tmp_path: Path) -> None:
    results = make_results(model_dir)
    results.cells[1].parity = parity_pass("ocr/det/det-m/cpu/paddle/int8/single-stream")  # itself
    document = write_bundle(write_run(tmp_path / "run", results), results, None, tmp_path / "e.zip")
    assert problems_of(document, "parity") == [
        "ocr/det/det-m/cpu/paddle/int8/single-stream: reference ocr/det/det-m/cpu/paddle/int8/single-stream "
        "is not a passed FP32 cell of run run-a"
    ]


def test_a_missing_and_a_failed_cell_fail_suite_complete(model_dir: Path, tmp_path: Path) -> None:
    results = make_results(model_dir)
    left_out = "ernie/cls/ernie-m@s32/cpu/paddle/int8/single-stream"
    results.cells = [c for c in results.cells if c.cell_id != left_out]
    results.cells[0].status = "failed"
    results.cells[0].reason = "worker crashed\n  [Hint: out of memory]"
    document = write_bundle(write_run(tmp_path / "run", results), results, None, tmp_path / "e.zip")
    assert problems_of(document, "suite_complete") == [
        "ocr/det/det-m/cpu/paddle/fp32/single-stream: failed (worker crashed [Hint: out of memory])",
        "ernie/cls/ernie-m@s32/cpu/paddle/int8/single-stream: not run",
    ]
    results.request["only"] = ["ocr/", "/fp32/"]
    document = write_bundle(tmp_path / "run", results, None, tmp_path / "e.zip")
    assert problems_of(document, "suite_complete")[1] == (
        "ernie/cls/ernie-m@s32/cpu/paddle/int8/single-stream: not run (left out by --only ocr/, /fp32/)"
    )
    assert (
        "2 of 4 cells passed"
        in next(r for r in document["requirements"] if r["id"] == "suite_complete")["details"][0]
    )


def test_an_unstable_cell_fails_stability(model_dir: Path, tmp_path: Path) -> None:
    results = make_results(model_dir)
    results.cells[2].trials = stable_trials(unstable=True)
    document = write_bundle(write_run(tmp_path / "run", results), results, None, tmp_path / "e.zip")
    assert problems_of(document, "stability") == [
        "ernie/cls/ernie-m@s32/cpu/paddle/fp32/single-stream: "
        "unstable, trial-median CV 0.300 > 0.05 over 3 trials"
    ]


def test_a_changed_model_file_fails_and_an_absent_one_is_said(model_dir: Path, tmp_path: Path) -> None:
    results = make_results(model_dir)
    (model_dir / "inference.pdiparams").write_bytes(b"")  # now hashes to SHA_EMPTY, registered SHA_ABC
    document = write_bundle(write_run(tmp_path / "run", results), results, None, tmp_path / "e.zip")
    path = str(model_dir / "inference.pdiparams")
    assert problems_of(document, "file_digests")[0] == (
        f"ocr/det/det-m/cpu/paddle/fp32/single-stream det: {path} has sha256 {SHA_EMPTY}, "
        f"registered {SHA_ABC}"
    )
    (model_dir / "inference.pdiparams").unlink()
    document = write_bundle(tmp_path / "run", results, None, tmp_path / "e2.zip")
    files = next(r for r in document["requirements"] if r["id"] == "file_digests")
    assert files["result"] == "PASS"
    # Four records of one file: counted once, as not present.
    assert files["details"][0] == (
        "0 model and dataset file(s) re-hashed and matching, 1 not present on the bundling machine "
        "(recorded digest only)"
    )


def test_dataset_files_are_re_hashed_and_a_changed_page_fails(model_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "data" / "page_0.png"
    page.parent.mkdir()
    page.write_bytes(b"abc")
    results = make_results(model_dir)
    for cell in results.cells:
        cell.dataset_sha256 = {str(page): SHA_ABC}
    document = write_bundle(write_run(tmp_path / "run", results), results, None, tmp_path / "e.zip")
    assert requirement_results(document)["file_digests"] == "PASS"
    dataset_checks = [c for c in document["file_checks"] if c["kind"] == "dataset"]
    assert [(c["path"], c["state"]) for c in dataset_checks] == [(str(page), "match")] * 4
    page.write_bytes(b"")  # one page re-rendered after the run
    document = write_bundle(tmp_path / "run", results, None, tmp_path / "e2.zip")
    assert problems_of(document, "file_digests")[0] == (
        f"ocr/det/det-m/cpu/fp32/single-stream data: {page} has sha256 {SHA_EMPTY}, registered {SHA_ABC}"
    )


def test_scored_accuracy_without_dataset_digests_fails(model_dir: Path, tmp_path: Path) -> None:
    results = make_results(model_dir)
    results.cells[0].metrics = {"det_hmean": 0.8}  # accuracy scored, but no dataset file hashed
    document = write_bundle(write_run(tmp_path / "run", results), results, None, tmp_path / "e.zip")
    assert problems_of(document, "file_digests") == [
        "ocr/det/det-m/cpu/fp32/single-stream: no dataset file digests recorded"
    ]


def test_platform_gaps_fail_by_name(model_dir: Path, tmp_path: Path) -> None:
    results = make_results(model_dir)
    results.platform = {**PLATFORM, "kernel": "", "cpu": {**PLATFORM["cpu"], "vendor": "unknown"}}
    results.cells[0].device_info = {
        "backend": "npu",
        "device": "npu:0",
        "name": "Ascend 910B3",
        "vendor": "Huawei",
        "driver_version": None,
        "runtime_version": "8.0.RC3",
    }
    results.cells[0].backend = "npu"
    document = write_bundle(write_run(tmp_path / "run", results), results, None, tmp_path / "e.zip")
    assert problems_of(document, "platform") == [
        "CPU vendor not recorded",
        "kernel not recorded",
        "npu: driver version not recorded",
        "npu: no Paddle device build or plugin recorded",
    ]


# --- the reference run ---------------------------------------------------------------------------


def test_a_reference_run_is_bundled_and_checked(model_dir: Path, tmp_path: Path) -> None:
    reference = make_results(model_dir)
    reference.run_id = "ref-run"
    reference.cells = [c for c in reference.cells if c.precision == "fp32"]
    results = make_results(model_dir)
    for cell in results.cells:
        if cell.precision == "int8":
            cell.parity = parity_pass(cell.cell_id.replace("/int8/", "/fp32/"), run_id="ref-run")
    run = write_run(tmp_path / "run", results)
    document = write_bundle(run, results, reference, tmp_path / "e.zip")
    assert requirement_results(document)["parity"] == "PASS"
    assert document["reference_run_id"] == "ref-run"
    assert verify_bundle(tmp_path / "e.zip").verdict == "PASS"
    other = dataclasses.replace(reference, run_id="another-run")
    document = write_bundle(run, results, other, tmp_path / "e2.zip")
    assert problems_of(document, "parity")[0] == (
        "ocr/det/det-m/cpu/paddle/int8/single-stream: judged against run ref-run, not another-run"
    )


# --- signatures ------------------------------------------------------------------------------------


def write_keys(directory: Path, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    return private, public


def test_sign_and_verify(run_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    private, public = write_keys(tmp_path, "signer")
    bundle = tmp_path / "signed.zip"
    write_bundle(run_dir, make_results(model_dir), None, bundle, signing_key=private)
    assert verify_bundle(bundle, public).signature == "valid"
    assert verify_bundle(bundle).signature == "present, not checked (no --public-key)"
    with zipfile.ZipFile(bundle) as archive:
        assert len(archive.read("SHA256SUMS.sig")) == 64  # a raw Ed25519 signature


def test_a_tampered_signature_or_another_key_fails(run_dir: Path, model_dir: Path, tmp_path: Path) -> None:
    private, public = write_keys(tmp_path, "signer")
    _, stranger = write_keys(tmp_path, "stranger")
    bundle = tmp_path / "signed.zip"
    write_bundle(run_dir, make_results(model_dir), None, bundle, signing_key=private)
    with zipfile.ZipFile(bundle) as archive:
        signature = bytearray(archive.read("SHA256SUMS.sig"))
    signature[0] ^= 1
    bad = rewrite(bundle, tmp_path / "bad.zip", {"SHA256SUMS.sig": bytes(signature)})
    with pytest.raises(VerificationError, match=r"^SHA256SUMS\.sig: signature does not match"):
        verify_bundle(bad, public)
    with pytest.raises(VerificationError, match=r"^SHA256SUMS\.sig: signature does not match"):
        verify_bundle(bundle, stranger)


def test_a_public_key_without_a_signature_fails(bundle: Path, tmp_path: Path) -> None:
    _, public = write_keys(tmp_path, "signer")
    with pytest.raises(VerificationError, match=r"^SHA256SUMS\.sig: missing"):
        verify_bundle(bundle, public)


# --- the HTML ------------------------------------------------------------------------------------


def test_html_is_bilingual_self_contained_and_escaped(model_dir: Path, tmp_path: Path) -> None:
    results = make_results(model_dir)
    results.platform = {**PLATFORM, "cpu": {**PLATFORM["cpu"], "model_name": "<script>alert(1)</script>"}}
    write_bundle(write_run(tmp_path / "run", results), results, None, tmp_path / "e.zip")
    with zipfile.ZipFile(tmp_path / "e.zip") as archive:
        page = archive.read("report.html").decode()
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for text in (
        "适配通过 / PASS",
        "测试项 Requirements",
        "测试环境 Environment",
        "测试人 Tester",
        "@media print",
    ):
        assert text in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from a network


# --- the command line ---------------------------------------------------------------------------


def test_cli_writes_verifies_and_exits_by_verdict(run_dir: Path, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "cli.zip"
    assert run_cli(["evidence", str(run_dir), "--out", str(out)]) == 0
    assert "verdict: 适配通过 / PASS" in capsys.readouterr().out
    assert run_cli(["evidence", "verify", str(out)]) == 0
    results = json.loads((run_dir / "results.json").read_text())
    results["cells"][0]["trials"]["unstable"] = True
    (run_dir / "results.json").write_text(json.dumps(results))
    assert run_cli(["evidence", str(run_dir), "--out", str(out)]) == 1
    assert out.is_file()  # a FAIL bundle is still written


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evidence", "{tmp}/nowhere", "--out", "{tmp}/e.zip"], "no results at"),
        (["evidence", "{run}", "--out", "{tmp}"], "is a directory; name the .zip file"),
        (
            ["evidence", "{run}", "--out", "{tmp}/e.zip", "--sign", "{tmp}/nokey.pem"],
            "cannot read signing key",
        ),
        (
            ["evidence", "{run}", "--out", "{tmp}/e.zip", "--sign", "{run}/logs/det.log"],
            "is not an unencrypted PEM",
        ),
        (["evidence", "verify", "{run}/outputs/det.json"], "is not a zip file"),
        (["evidence", "verify", "{tmp}/none.zip"], "no evidence bundle at"),
        (
            ["evidence", "verify", "{tmp}/e.zip", "--public-key", "{run}/outputs/det.json"],
            "is not a PEM or OpenSSH",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, run_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "e.zip").write_bytes(b"")
    argv = [a.format(tmp=tmp_path, run=run_dir) for a in args]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("portbench: error: ")


def test_a_non_ed25519_key_is_refused(run_dir: Path, tmp_path: Path, capsys: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "ec.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert run_cli(["evidence", str(run_dir), "--out", str(tmp_path / "e.zip"), "--sign", str(pem)]) == 2
    assert "is not an Ed25519 private key" in capsys.readouterr().err
