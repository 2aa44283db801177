"""The compliance evidence bundle (xinchuang 信创 adaptation evidence): one zip an auditor can check.

The bundle holds a bilingual (中文 / English) printable HTML report, a machine-readable
``evidence.json`` with one PASS/FAIL line per requirement and the overall verdict (适配通过 / 未通过),
the run's ``results.json``, ``outputs/`` and ``logs/`` (and the reference run's results under
``reference/``), and a ``SHA256SUMS`` in ``sha256sum`` format over every other member. An optional
detached Ed25519 signature over ``SHA256SUMS`` lies in ``SHA256SUMS.sig`` (64 raw bytes, so
``openssl pkeyutl -verify -rawin`` checks it too).

``verify`` never extracts the zip: it re-hashes every member in memory, names the first one that was
altered, is missing or was added, checks the signature, then re-derives every requirement from the
included results and compares it with ``evidence.json``.

The requirements are derived from the results alone, with one exception: model files are re-hashed
where they still exist when the bundle is written, and what was seen is recorded in ``evidence.json``
(``file_checks``); ``verify`` checks that record against the digests in ``results.json``.
"""

from __future__ import annotations

import hashlib
import html
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console

from portbench import __version__
from portbench.errors import PortbenchError
from portbench.harness.artifacts import sha256_file
from portbench.harness.reporting import EvidenceBundler
from portbench.harness.results import RESULTS_FILENAME, CellResult, RunResults

FORMAT = "portbench-evidence/1"
EVIDENCE_JSON = "evidence.json"
REPORT_HTML = "report.html"
SUMS = "SHA256SUMS"
SIGNATURE = "SHA256SUMS.sig"
REFERENCE_RESULTS = f"reference/{RESULTS_FILENAME}"
RUN_FOLDERS = ("outputs", "logs")
LOW_PRECISIONS = ("int8", "fp16", "bf16")
PASS, FAIL = "PASS", "FAIL"
VERDICT_ZH = {PASS: "适配通过", FAIL: "未通过"}
# Fixed member timestamp: the same run bundled twice gives the same member bytes and digests.
ZIP_DATE = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Requirement:
    """One line of the verdict: ``details`` say what was checked, ``problems`` why it failed."""

    id: str
    title_zh: str
    title_en: str
    details: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def result(self) -> str:
        return FAIL if self.problems else PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title_zh": self.title_zh,
            "title_en": self.title_en,
            "result": self.result,
            "details": list(self.details),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class FileCheck:
    """One model or dataset file: the digest the run recorded and what re-hashing it found when
    bundling (``observed`` None: the file is not present on the bundling machine)."""

    cell_id: str
    role: str
    # "model" (the files that ran), "supplied" (the user's --model-dir as given) or "dataset" (the
    # files the evaluation data was read from; role "data")
    kind: str
    path: str
    recorded: str
    observed: str | None

    @property
    def state(self) -> str:
        if self.observed is None:
            return "absent"
        return "match" if self.observed == self.recorded else "mismatch"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state}


# --- requirements ---------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """A usable identity value: a non-blank string or number, else None."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text if text and text.lower() not in ("unknown", "none", "n/a") else None


def _get(data: Mapping[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def check_platform(results: RunResults) -> Requirement:
    platform = results.platform
    wanted = [
        ("CPU vendor", _get(platform, "cpu", "vendor")),
        ("CPU model", _get(platform, "cpu", "model_name")),
        ("CPU architecture", _get(platform, "cpu", "architecture")),
        ("OS", _get(platform, "os", "name")),
        ("OS release", _get(platform, "os", "version_id")),
        ("kernel", platform.get("kernel")),
        ("Paddle", _get(platform, "paddle", "version")),
    ]
    details = [f"{label}: {_text(value)}" for label, value in wanted if _text(value)]
    problems = [f"{label} not recorded" for label, value in wanted if not _text(value)]
    plugins = _get(platform, "paddle", "plugins") or {}
    distribution = _text(_get(platform, "paddle", "distribution"))
    for name, version in sorted(plugins.items()):
        details.append(f"plugin {name}: {_text(version) or 'version not recorded'}")
        if not _text(version):
            problems.append(f"plugin {name}: version not recorded")
    accelerators: dict[str, dict[str, Any]] = {}
    for cell in results.cells:
        info = cell.device_info
        if cell.status == "passed" and info and str(info.get("device", "cpu")).split(":")[0] != "cpu":
            accelerators.setdefault(cell.backend, info)
    for backend, info in sorted(accelerators.items()):
        fields = [
            ("accelerator", info.get("name")),
            ("vendor", info.get("vendor")),
            ("driver", info.get("driver_version")),
            ("runtime", info.get("runtime_version")),
        ]
        details.append(f"{backend}: " + ", ".join(f"{k} {_text(v) or '-'}" for k, v in fields))
        problems += [f"{backend}: {k} version not recorded" if k in ("driver", "runtime")
                     else f"{backend}: {k} not recorded" for k, v in fields if not _text(v)]  # fmt: skip
        # An accelerator runs either a device build of Paddle (paddlepaddle-gpu, -xpu, ...) or the
        # CPU build plus a custom-device plugin; with neither recorded the stack is not identified.
        if distribution == "paddlepaddle" and not plugins:
            problems.append(f"{backend}: no Paddle device build or plugin recorded")
    if not accelerators:
        details.append("accelerator: none (CPU-only run)")
    return Requirement("platform", "平台信息已识别", "Platform identified", tuple(details), tuple(problems))


CellKey = tuple[str, str, str, str, str, str, str]


def expected_cells(results: RunResults) -> list[tuple[CellKey, str]]:
    """Every cell the stored suite asks for, on the backends and precisions the run was started with:
    its key (workload, task, label, backend, runtime, precision, scenario) and its id as the suite
    names it.
    The model name is not part of the key: a user's own model (--model-dir) renames the cell."""
    suite = results.suite_definition
    if suite is None:
        return []
    backends = results.request.get("backends") or sorted({c.backend for c in results.cells})
    precisions = results.request.get("precisions") or _get(suite, "suite", "precisions") or ["fp32"]
    # Runs from before runtimes (schema < 1.2) ran Paddle Inference only.
    runtimes = results.request.get("runtimes") or _get(suite, "suite", "runtimes") or ["paddle"]
    expected: list[tuple[CellKey, str]] = []
    for backend in backends:
        for runtime in runtimes:
            for precision in precisions:
                for t in suite.get("cells", []):
                    label, scenario = t.get("label", ""), t.get("scenario", "single-stream")
                    model = f"{t['model']}@{label}" if label else t["model"]
                    key = (t["workload"], t["task"], label, backend, runtime, precision, scenario)
                    where = f"{backend}/{runtime}/{precision}/{scenario}"
                    cell_id = f"{t['workload']}/{t['task']}/{model}/{where}"
                    expected.append((key, cell_id))
    return expected


def _cell_key(cell: CellResult) -> CellKey:
    model_part = cell.cell_id.split("/")[2] if cell.cell_id.count("/") >= 6 else cell.model
    label = model_part.partition("@")[2]
    return (cell.workload, cell.task, label, cell.backend, cell.runtime, cell.precision, cell.scenario)


def _one_line(text: str) -> str:
    """Worker errors span lines (Paddle's hints); a requirement line is one line."""
    return " ".join(text.split())


def check_cells_ran(results: RunResults) -> Requirement:
    title = ("测试套件全部用例已运行", "Every cell of the suite ran")
    if results.suite_definition is None:
        return Requirement("suite_complete", *title, problems=("results store no resolved suite",))
    expected = expected_cells(results)
    by_key: dict[CellKey, CellResult] = {_cell_key(c): c for c in results.cells}
    only = [str(text) for text in results.request.get("only") or []]
    problems: list[str] = []
    passed = 0
    for key, name in expected:
        cell = by_key.get(key)
        if cell is None:
            # --only leaves cells out on purpose; the suite is still not fully run, but say why.
            selected = not only or any(text in name for text in only)
            problems.append(
                f"{name}: not run" + ("" if selected else f" (left out by --only {', '.join(only)})")
            )
        elif cell.status != "passed":
            problems.append(
                f"{cell.cell_id}: {cell.status} ({_one_line(cell.reason or 'no reason recorded')})"
            )
        else:
            passed += 1
    backends = ", ".join(results.request.get("backends") or sorted({c.backend for c in results.cells}))
    suite_name = _get(results.suite_definition, "suite", "name") or results.suite
    details = [f"{passed} of {len(expected)} cells passed ({suite_name} suite on {backends})"]
    if not expected:
        problems.append("the stored suite has no cells")
    return Requirement("suite_complete", *title, tuple(details), tuple(problems))


def check_parity(results: RunResults, reference: RunResults | None) -> Requirement:
    title = (
        "INT8/FP16/BF16 精度与 FP32 基准一致",
        "Every INT8/FP16/BF16 cell within its parity gate vs FP32",
    )
    low = [c for c in results.cells if c.precision in LOW_PRECISIONS]
    details: list[str] = []
    problems: list[str] = []
    if reference is not None:
        details.append(f"reference run {reference.run_id}")
    if not low:
        details.append("no INT8/FP16/BF16 cell in this run: nothing to judge")
    for cell in low:
        verdict = cell.parity
        if cell.status != "passed":
            problems.append(f"{cell.cell_id}: {cell.status}, not judged")
            continue
        if verdict is None:
            problems.append(f"{cell.cell_id}: no parity verdict")
            continue
        if verdict.verdict != "pass":
            problems.append(
                f"{cell.cell_id}: parity {verdict.verdict} ({_one_line(verdict.reason or 'no reason')})"
            )
            continue
        ref = verdict.reference
        source = reference if reference is not None else results
        # The verdict names its FP32 reference cell; it must be a passed FP32 cell of the run it
        # claims (this run, or the --reference run), or the "pass" is not against FP32 at all.
        if ref is None:
            problems.append(f"{cell.cell_id}: verdict names no reference cell")
            continue
        if reference is not None and ref.run_id != reference.run_id:
            problems.append(f"{cell.cell_id}: judged against run {ref.run_id}, not {reference.run_id}")
            continue
        judged = source.cell(ref.cell_id)
        if judged is None or judged.precision != "fp32" or judged.status != "passed":
            problems.append(f"{cell.cell_id}: reference {ref.cell_id} is not a passed FP32 cell of run "
                            f"{source.run_id}")  # fmt: skip
            continue
        headline = verdict.headline_metric
        check = verdict.task.get(headline) if headline else None
        numbers = (f", {headline} {check.value:.4g} vs {check.reference:.4g}"
                   + (f" (ratio {check.ratio:.4f}, gate {check.gate})" if check.ratio is not None else "")
                   if check else "")  # fmt: skip
        details.append(f"{cell.cell_id}: pass vs {ref.cell_id}{numbers}")
    return Requirement("parity", *title, tuple(details), tuple(problems))


def recorded_file_digests(results: RunResults) -> list[FileCheck]:
    """Every file digest the results record (the model files that ran, a user's own files as given,
    the dataset files read), not yet re-hashed."""
    records: list[FileCheck] = []
    for cell in results.cells:
        for path, digest in sorted(cell.dataset_sha256.items()):
            records.append(FileCheck(cell.cell_id, "data", "dataset", path, digest, None))
        for record in cell.models:
            groups = [("model", record.path, record.sha256)]
            if record.supplied_sha256:
                groups.append(("supplied", record.supplied_path or "", record.supplied_sha256))
            for kind, directory, digests in groups:
                for name, digest in sorted(digests.items()):
                    records.append(
                        FileCheck(cell.cell_id, record.role, kind, str(Path(directory) / name), digest, None)
                    )
    return records


def hash_recorded_files(results: RunResults) -> list[FileCheck]:
    """Every recorded model file, re-hashed where it still exists on this machine."""
    return [
        replace(check, observed=sha256_file(Path(check.path)) if Path(check.path).is_file() else None)
        for check in recorded_file_digests(results)
    ]


def _record_key(check: FileCheck) -> tuple[str, str, str, str, str]:
    return (check.cell_id, check.role, check.kind, check.path, check.recorded)


def check_files(results: RunResults, checks: Sequence[FileCheck]) -> Requirement:
    title = ("模型与数据文件 sha256 校验一致", "Every model and dataset file matches its registered sha256")
    problems = [f"{c.cell_id} {c.role}: {c.path} has sha256 {c.observed}, registered {c.recorded}"
                for c in checks if c.state == "mismatch"]  # fmt: skip
    unique = {(c.path, c.recorded): c.state for c in checks}
    states = list(unique.values())
    details = [
        f"{states.count('match')} model and dataset file(s) re-hashed and matching, "
        f"{states.count('absent')} not present on the bundling machine (recorded digest only)"
    ]
    dataset_files = {c.path for c in checks if c.kind == "dataset"}
    details.append(f"datasets: {len(dataset_files)} file(s) of "
                   + ", ".join(sorted({c.dataset for c in results.cells})))  # fmt: skip
    for cell in results.cells:
        if cell.status != "passed":
            continue
        if not cell.models:
            problems.append(f"{cell.cell_id}: no model file digests recorded")
        # Accuracy was scored on data whose files the run did not hash (results from before
        # portbench recorded them): the data cannot be verified, so the requirement is not met.
        if cell.metrics and not cell.dataset_sha256:
            problems.append(f"{cell.cell_id}: no dataset file digests recorded")
    return Requirement("file_digests", *title, tuple(details), tuple(problems))


def check_stability(results: RunResults) -> Requirement:
    title = ("性能测量稳定", "Measurements stable")
    problems: list[str] = []
    stable = 0
    for cell in results.cells:
        if cell.status != "passed" or cell.latency_ms is None:
            continue
        trials = cell.trials
        if trials is None:
            problems.append(f"{cell.cell_id}: no repeated trials recorded, stability unknown")
        elif trials.unstable:
            cv = f"{trials.cv:.3f}" if trials.cv is not None else "?"
            problems.append(f"{cell.cell_id}: unstable, trial-median CV {cv} > {trials.cv_threshold} "
                            f"over {trials.trials} trials")  # fmt: skip
        else:
            stable += 1
    details = (f"{stable} timed cell(s) stable (trial-median coefficient of variation within threshold)",)
    return Requirement("stability", *title, details, tuple(problems))


def evaluate(
    results: RunResults, reference: RunResults | None, file_checks: Sequence[FileCheck]
) -> list[Requirement]:
    return [
        check_platform(results),
        check_cells_ran(results),
        check_parity(results, reference),
        check_files(results, file_checks),
        check_stability(results),
    ]


def overall(requirements: Iterable[Requirement]) -> str:
    return PASS if all(r.result == PASS for r in requirements) else FAIL


# --- the HTML report ------------------------------------------------------------------------------

CSS = """
body{font-family:"Noto Sans CJK SC","Noto Sans SC","Source Han Sans SC","PingFang SC","Microsoft YaHei",
"WenQuanYi Micro Hei",system-ui,sans-serif;margin:2em auto;max-width:60em;color:#111;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.2em;border-bottom:1px solid #999;margin-top:1.6em}
table{border-collapse:collapse;width:100%;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #aaa;padding:.3em .5em;text-align:left;vertical-align:top;overflow-wrap:break-word}
th{background:#eee} .PASS{color:#0a6b0a;font-weight:bold} .FAIL{color:#b00000;font-weight:bold}
.verdict{font-size:1.5em;padding:.5em;border:3px solid currentColor;display:inline-block}
code{font-family:"Noto Sans Mono CJK SC",monospace;font-size:.9em;overflow-wrap:anywhere}
.PASS,.FAIL{white-space:nowrap} th.req{width:14em}
ul{margin:.2em 0;padding-left:1.2em} .sign td{height:3em}
@media print{body{margin:0;max-width:none;font-size:10pt} h2{break-after:avoid} tr{break-inside:avoid}
th{background:#eee !important;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _list(items: Iterable[str]) -> str:
    items = list(items)
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>" if items else ""


def _rows(rows: Iterable[Sequence[Any]]) -> str:
    return "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in rows)


def render_html(document: Mapping[str, Any], results: RunResults) -> str:
    verdict = document["verdict"]
    platform = results.platform
    requirement_rows = "".join(
        f"<tr><td>{_e(r['title_zh'])}<br>{_e(r['title_en'])}</td>"
        f'<td class="{r["result"]}">{"通过" if r["result"] == PASS else "不通过"} / {r["result"]}</td>'
        f"<td>{_list(r['problems'])}{_list(r['details'])}</td></tr>"
        for r in document["requirements"]
    )
    environment = [
        ("CPU 处理器", f"{_get(platform, 'cpu', 'vendor') or ''} {_get(platform, 'cpu', 'model_name') or ''}"),  # noqa: E501
        ("架构 Architecture", _get(platform, "cpu", "architecture")),
        ("核数 Cores", f"{_get(platform, 'cpu', 'cores_physical')} physical / "
                       f"{_get(platform, 'cpu', 'cores_logical')} logical"),
        ("内存 Memory", f"{(platform.get('memory_total_bytes') or 0) / 2**30:.1f} GiB"),
        ("操作系统 OS", _get(platform, "os", "pretty_name")),
        ("内核 Kernel", platform.get("kernel")),
        ("Python", _get(platform, "python", "version")),
        ("飞桨 Paddle", f"{_get(platform, 'paddle', 'distribution')} {_get(platform, 'paddle', 'version')} "
                        f"({_get(platform, 'paddle', 'commit') or 'commit unknown'})"),
        ("插件 Plugins", ", ".join(f"{k} {v}" for k, v in (_get(platform, "paddle", "plugins") or {}).items())
         or "none"),
    ]  # fmt: skip
    devices: dict[str, dict[str, Any]] = {}
    for cell in results.cells:
        if cell.device_info:
            devices.setdefault(cell.backend, cell.device_info)
    device_rows = _rows(
        (b, i.get("device"), i.get("name"), i.get("vendor"), i.get("driver_version") or "-",
         i.get("runtime_version") or "-") for b, i in sorted(devices.items())
    )  # fmt: skip
    cell_rows = _rows(
        (
            c.cell_id,
            c.status,
            f"{c.latency_ms.p50:.3f}" if c.latency_ms else "-",
            f"{c.throughput.samples_per_s:.2f}" if c.throughput else "-",
            ("unstable" if c.trials.unstable else "stable") if c.trials else "-",
            c.parity.verdict if c.parity else "-",
        )
        for c in results.cells
    )
    file_rows = "".join(
        f"<tr><td>{_e(f['cell_id'])}</td><td>{_e(f['role'])}</td><td>{_e(f['kind'])}</td>"
        f"<td><code>{_e(f['path'])}</code></td><td><code>{_e(f['recorded'])}</code></td>"
        f"<td>{_e(f['state'])}</td></tr>"
        for f in document["file_checks"]
    )
    annex = _list(document["members"])
    return f"""<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>适配测试证据报告 Adaptation evidence report — {_e(results.run_id)}</title>
<style>{CSS}</style></head><body>
<h1>信创适配测试证据报告<br>Compliance (xinchuang) adaptation evidence report</h1>
<h2>结论 Verdict</h2>
<p class="verdict {verdict}">{VERDICT_ZH[verdict]} / {verdict}</p>
<p>判定依据：以下五项要求全部通过方为适配通过。The overall verdict is PASS only when every requirement
below passes.</p>
<h2>报告信息 Report information</h2>
<table>{
        _rows(
            [
                ("运行编号 Run id", results.run_id),
                ("测试套件 Suite", results.suite),
                ("开始 / 结束 Started / finished", f"{results.started_at} / {results.finished_at or '-'}"),
                (
                    "工具版本 Tool",
                    f"portbench {results.portbench_version} (git {results.git_sha or 'unknown'})",
                ),
                ("命令 Command", " ".join(results.command)),
                ("基准运行 Reference run", document.get("reference_run_id") or "this run's own FP32 cells"),
                (
                    "证据生成 Bundle written",
                    f"{document['generated_at']} by portbench {document['portbench_version']}",
                ),
            ]
        )
    }</table>
<h2>测试项 Requirements</h2>
<table><tr><th class="req">要求 Requirement</th><th>结果 Result</th><th>依据 Evidence</th></tr>{
        requirement_rows
    }</table>
<h2>测试环境 Environment</h2>
<table>{_rows(environment)}</table>
<table><tr><th>后端 Backend</th><th>设备 Device</th><th>型号 Model</th><th>厂商 Vendor</th>
<th>驱动 Driver</th><th>运行时 Runtime</th></tr>{device_rows}</table>
<h2>测试用例 Cells</h2>
<table><tr><th>用例 Cell</th><th>状态 Status</th><th>p50 (ms)</th><th>吞吐 Throughput (samples/s)</th>
<th>稳定性 Stability</th><th>精度一致性 Parity</th></tr>{cell_rows}</table>
<h2>模型文件 Model files (sha256)</h2>
<table><tr><th>用例 Cell</th><th>角色 Role</th><th>类别 Kind</th><th>路径 Path</th><th>sha256</th>
<th>复核 Re-hash</th></tr>{file_rows}</table>
<h2>附件 Annexes</h2>
<p>本包内文件（均列于 SHA256SUMS）Files in this bundle, each listed in SHA256SUMS:</p>{annex}
<p>校验 Check: <code>portbench evidence verify BUNDLE.zip [--public-key KEY.pub]</code></p>
<h2>签字 Signatures</h2>
<table class="sign"><tr><th>测试人 Tester</th><th>审核人 Reviewer</th><th>批准人 Approver</th></tr>
<tr><td></td><td></td><td></td></tr></table>
</body></html>
"""


# --- the zip --------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def format_sums(members: Mapping[str, bytes]) -> bytes:
    """``sha256sum`` format (digest, two spaces, path), sorted by path: ``sha256sum -c`` reads it."""
    return "".join(f"{sha256_bytes(data)}  {name}\n" for name, data in sorted(members.items())).encode()


def parse_sums(text: bytes) -> dict[str, str]:
    sums: dict[str, str] = {}
    for number, line in enumerate(text.decode("utf-8", errors="replace").splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise VerificationError(f"{SUMS}: line {number} is not '<sha256>  <path>'")
        sums[name.lstrip("*")] = digest.lower()
    return sums


class VerificationError(Exception):
    """A bundle that does not verify; the message names the first member at fault."""


def _run_files(run_dir: Path) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    for folder in RUN_FOLDERS:
        root = run_dir / folder
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    members[path.relative_to(run_dir).as_posix()] = path.read_bytes()
    return members


def _load_private_key(path: Path) -> Any:
    serialization, ed25519 = _crypto()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise PortbenchError(f"cannot read signing key {path}: {error.strerror or error}") from None
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise PortbenchError(f"{path} is not an unencrypted PEM or OpenSSH private key ({error})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise PortbenchError(f"{path} is not an Ed25519 private key")
    return key


def _load_public_key(path: Path) -> Any:
    serialization, ed25519 = _crypto()
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        data = path.read_bytes()
    except OSError as error:
        raise PortbenchError(f"cannot read public key {path}: {error.strerror or error}") from None
    try:
        if data.lstrip().startswith(b"ssh-"):
            key = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise PortbenchError(f"{path} is not a PEM or OpenSSH public key ({error})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise PortbenchError(f"{path} is not an Ed25519 public key")
    return key


def _crypto() -> tuple[Any, Any]:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise PortbenchError(
            "signatures need the 'cryptography' package: pip install 'portbench[evidence]'"
        ) from None
    return serialization, ed25519


def build_document(
    results: RunResults,
    reference: RunResults | None,
    file_checks: Sequence[FileCheck],
    members: Sequence[str],
) -> dict[str, Any]:
    requirements = evaluate(results, reference, file_checks)
    verdict = overall(requirements)
    return {
        "format": FORMAT,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "portbench_version": __version__,
        "run_id": results.run_id,
        "suite": results.suite,
        "reference_run_id": reference.run_id if reference else None,
        "verdict": verdict,
        "verdict_zh": VERDICT_ZH[verdict],
        "requirements": [r.to_dict() for r in requirements],
        "file_checks": [c.to_dict() for c in file_checks],
        "members": sorted([*members, EVIDENCE_JSON, REPORT_HTML]),
    }


def write_bundle(
    run_dir: Path,
    results: RunResults,
    reference: RunResults | None,
    out: Path,
    signing_key: Path | None = None,
    file_checks: Sequence[FileCheck] | None = None,
) -> dict[str, Any]:
    """Write the bundle; returns its evidence document. ``file_checks`` default: re-hash now."""
    if out.exists() and out.is_dir():
        raise PortbenchError(f"--out {out} is a directory; name the .zip file to write")
    key = _load_private_key(signing_key) if signing_key is not None else None
    results_file = run_dir / RESULTS_FILENAME
    members: dict[str, bytes] = {}
    # The results.json bytes as stored (not re-serialised): the bundle carries the run's own file.
    members[RESULTS_FILENAME] = (
        results_file.read_bytes() if results_file.is_file()
        else json.dumps(results.to_dict(), ensure_ascii=False, indent=1).encode()
    )  # fmt: skip
    members.update(_run_files(run_dir))
    if reference is not None:
        members[REFERENCE_RESULTS] = json.dumps(reference.to_dict(), ensure_ascii=False, indent=1).encode()
    checks = list(file_checks) if file_checks is not None else hash_recorded_files(results)
    document = build_document(results, reference, checks, list(members))
    members[EVIDENCE_JSON] = json.dumps(document, ensure_ascii=False, indent=1).encode()
    members[REPORT_HTML] = render_html(document, results).encode()
    sums = format_sums(members)
    members[SUMS] = sums
    if key is not None:
        members[SIGNATURE] = key.sign(sums)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in sorted(members):
                archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), members[name], zipfile.ZIP_DEFLATED)
        tmp.replace(out)
    except OSError as error:
        raise PortbenchError(f"cannot write {out}: {error.strerror or error}") from None
    return document


def _read_members(bundle: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(bundle) as archive:
            names = archive.namelist()
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise VerificationError(f"{duplicates[0]}: stored twice in the bundle")
            return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}
    except FileNotFoundError:
        raise PortbenchError(f"no evidence bundle at {bundle}") from None
    except IsADirectoryError:
        raise PortbenchError(f"{bundle} is a directory, not an evidence bundle (.zip)") from None
    except zipfile.BadZipFile as error:
        raise PortbenchError(f"{bundle} is not a zip file ({error})") from None
    except (zipfile.LargeZipFile, OSError) as error:
        raise PortbenchError(f"cannot read {bundle}: {error}") from None


def _results_from(data: bytes, name: str) -> RunResults:
    from portbench.harness.results import validate_document

    try:
        document = json.loads(data.decode("utf-8"))
        validate_document(document)
        return RunResults.from_dict(document)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise VerificationError(f"{name}: not readable JSON ({error})") from None
    except PortbenchError as error:
        raise VerificationError(f"{name}: {error}") from None


@dataclass
class VerifyReport:
    verdict: str | None = None
    signature: str = "absent"  # absent, valid, not checked (no key given)
    checked: list[str] = field(default_factory=list)


def verify_bundle(bundle: Path, public_key: Path | None = None) -> VerifyReport:
    """Raise VerificationError naming the first problem; else what was checked."""
    key = _load_public_key(public_key) if public_key is not None else None
    members = _read_members(bundle)
    report = VerifyReport()
    if SUMS not in members:
        raise VerificationError(f"{SUMS}: missing from the bundle")
    sums = parse_sums(members[SUMS])
    for name in sorted(set(sums) | set(members)):
        if name in (SUMS, SIGNATURE):
            continue
        if name not in members:
            raise VerificationError(f"{name}: listed in {SUMS}, missing from the bundle")
        if name not in sums:
            raise VerificationError(f"{name}: in the bundle, not listed in {SUMS} (added)")
        if sha256_bytes(members[name]) != sums[name]:
            raise VerificationError(f"{name}: altered (sha256 differs from {SUMS})")
        report.checked.append(name)
    if SIGNATURE in members:
        if key is None:
            report.signature = "present, not checked (no --public-key)"
        else:
            from cryptography.exceptions import InvalidSignature

            try:
                key.verify(members[SIGNATURE], members[SUMS])
            except InvalidSignature:
                raise VerificationError(f"{SIGNATURE}: signature does not match {SUMS} and the key") from None
            report.signature = "valid"
    elif key is not None:
        raise VerificationError(f"{SIGNATURE}: missing, but a --public-key was given")
    for required in (RESULTS_FILENAME, EVIDENCE_JSON):
        if required not in members:
            raise VerificationError(f"{required}: missing from the bundle")
    results = _results_from(members[RESULTS_FILENAME], RESULTS_FILENAME)
    reference = (
        _results_from(members[REFERENCE_RESULTS], REFERENCE_RESULTS) if REFERENCE_RESULTS in members else None
    )
    try:
        document = json.loads(members[EVIDENCE_JSON].decode("utf-8"))
        checks = [FileCheck(**{k: v for k, v in c.items() if k != "state"}) for c in document["file_checks"]]
        claimed = {r["id"]: r for r in document["requirements"]}
        claimed_verdict = document["verdict"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise VerificationError(f"{EVIDENCE_JSON}: not a portbench evidence document ({error!r})") from None
    # The re-hash record must cover exactly the digests results.json holds: the one part of the
    # verdict that came from outside the results.
    if [_record_key(c) for c in checks] != [_record_key(c) for c in recorded_file_digests(results)]:
        raise VerificationError(
            f"{EVIDENCE_JSON}: file_checks do not match the model digests in {RESULTS_FILENAME}"
        )
    if (reference.run_id if reference else None) != document.get("reference_run_id"):
        raise VerificationError(f"{EVIDENCE_JSON}: reference_run_id does not match {REFERENCE_RESULTS}")
    derived = evaluate(results, reference, checks)
    for requirement in derived:
        stated = claimed.get(requirement.id)
        mine = requirement.to_dict()
        if stated is None or any(stated.get(k) != mine[k] for k in ("result", "details", "problems")):
            raise VerificationError(
                f"{EVIDENCE_JSON}: requirement {requirement.id} ({requirement.title_en}) says "
                f"{stated.get('result') if stated else 'nothing'}, "
                f"the included results give {requirement.result}"
            )
    if set(claimed) != {r.id for r in derived}:
        raise VerificationError(f"{EVIDENCE_JSON}: requirements differ from the ones portbench derives")
    verdict = overall(derived)
    if claimed_verdict != verdict:
        raise VerificationError(
            f"{EVIDENCE_JSON}: verdict {claimed_verdict}, the included results give {verdict}"
        )
    report.verdict = verdict
    return report


class EvidenceBundle(EvidenceBundler):
    name = "evidence"

    def write(
        self,
        run_dir: Path,
        results: RunResults,
        reference: RunResults | None,
        out: Path,
        signing_key: Path | None,
        console: Console,
    ) -> bool:
        document = write_bundle(run_dir, results, reference, out, signing_key)
        for requirement in document["requirements"]:
            style = "green" if requirement["result"] == PASS else "bold red"
            console.print(f"[{style}]{requirement['result']}[/] {requirement['title_en']} / "
                          f"{requirement['title_zh']}", highlight=False)  # fmt: skip
            for problem in requirement["problems"]:
                console.print("  ", problem, markup=False, highlight=False)
        verdict = document["verdict"]
        signed = ", signed" if signing_key else ""
        console.print(
            f"verdict: {VERDICT_ZH[verdict]} / {verdict} → {out}{signed}", markup=False, highlight=False
        )
        return bool(verdict == PASS)

    def verify(self, bundle: Path, public_key: Path | None, console: Console) -> bool:
        try:
            report = verify_bundle(bundle, public_key)
        except VerificationError as error:
            console.print(f"FAILED {bundle}: {error}", markup=False, highlight=False)
            return False
        verdict = report.verdict or FAIL
        console.print(
            f"OK {bundle}: {len(report.checked)} files match {SUMS}, signature {report.signature}, "
            f"verdicts re-derived: {VERDICT_ZH[verdict]} / {verdict}",
            markup=False,
            highlight=False,
        )
        return True
