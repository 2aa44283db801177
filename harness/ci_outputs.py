"""What a CI job reads of a run or a comparison: exit codes, JUnit XML and a Markdown step summary.

Exit codes (``run`` and ``compare``), one meaning each so a pipeline can tell the code from the
machine; when several apply, the first in this list wins, because an incomplete run makes the
other verdicts partial:

- 1 infrastructure failure: a cell failed to run (crash, timeout, killed worker) or is missing;
- 4 accuracy or parity regression: a parity verdict fails, an accuracy metric dropped;
- 3 performance regression (also a manifest difference under ``--strict-manifest``);
- 2 bad input (``PortbenchError``, see ``portbench.errors``); 0 nothing of the above.

JUnit XML follows the common schema (testmoapp/junitxml): ``testsuites`` > ``testsuite`` (with
``properties``) > one ``testcase`` per cell, holding at most one of ``error`` (the cell did not
run), ``failure`` (a regression; the numbers are in the message, since older GitLab shows only the
text) or ``skipped`` (skipped cell, or an inconclusive speed verdict: never silently a pass).
Written with the standard library's ElementTree.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portbench.errors import PortbenchError
from portbench.harness.compare import CellComparison, RunComparison
from portbench.harness.results import CellResult, RunResults, write_atomic

EXIT_OK = 0
EXIT_INFRASTRUCTURE = 1
EXIT_PERFORMANCE = 3
EXIT_ACCURACY = 4
STEP_SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"


def run_exit_code(results: RunResults) -> int:
    if any(c.status == "failed" for c in results.cells):
        return EXIT_INFRASTRUCTURE
    if any(c.parity is not None and c.parity.verdict == "fail" for c in results.cells):
        return EXIT_ACCURACY
    return EXIT_OK


def compare_exit_code(comparison: RunComparison) -> int:
    kinds = comparison.kinds()
    if "infrastructure" in kinds:
        return EXIT_INFRASTRUCTURE
    if "accuracy" in kinds:
        return EXIT_ACCURACY
    if kinds & {"performance", "manifest"}:
        return EXIT_PERFORMANCE
    return EXIT_OK


def platform_label(results: RunResults) -> str:
    cpu = results.platform.get("cpu") or {}
    os_info = results.platform.get("os") or {}
    os_name = os_info.get("pretty_name") or os_info.get("name") or ""
    parts = [str(cpu.get("model_name") or "unknown CPU"), str(os_name)]
    return ", ".join(p for p in parts if p)


def _suite_element(parent: ET.Element, name: str, properties: Mapping[str, Any]) -> ET.Element:
    suite = ET.SubElement(parent, "testsuite", name=name)
    props = ET.SubElement(suite, "properties")
    for key, value in properties.items():
        if value is not None:
            ET.SubElement(props, "property", name=key, value=str(value))
    return suite


def _finish(root: ET.Element, suite: ET.Element, cases: list[ET.Element]) -> str:
    counts = {
        "tests": len(cases),
        "failures": sum(c.find("failure") is not None for c in cases),
        "errors": sum(c.find("error") is not None for c in cases),
        "skipped": sum(c.find("skipped") is not None for c in cases),
    }
    seconds = sum(float(c.get("time", "0")) for c in cases)
    for element in (root, suite):
        for key, value in counts.items():
            element.set(key, str(value))
        element.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _properties(results: RunResults) -> dict[str, Any]:
    return {
        "portbench_version": results.portbench_version,
        "run_id": results.run_id,
        "suite": results.suite,
        "platform": platform_label(results),
        "machine_id_sha256": results.platform.get("machine_id_sha256"),
        "paddle_version": (results.platform.get("paddle") or {}).get("version"),
    }


def run_junit(results: RunResults) -> str:
    """One test case per cell of a run: failed → error, parity fail → failure, skipped → skipped."""
    root = ET.Element("testsuites", name=f"portbench run {results.suite}", timestamp=results.started_at)
    title = f"portbench {results.suite} on {platform_label(results)}"
    suite = _suite_element(root, title, _properties(results))
    suite.set("timestamp", results.started_at)
    cases = []
    for cell in results.cells:
        case = _case(suite, cell.cell_id, cell.backend, cell.duration_s)
        if cell.status == "failed":
            ET.SubElement(case, "error", message=cell.reason or "failed", type="infrastructure").text = (
                cell.reason or "failed, no reason recorded"
            )
        elif cell.parity is not None and cell.parity.verdict == "fail":
            reason = f"parity fails: {cell.parity.reason or 'no reason recorded'}"
            ET.SubElement(case, "failure", message=reason, type="parity").text = reason
        elif cell.status == "skipped":
            ET.SubElement(case, "skipped", message=cell.reason or "skipped")
        ET.SubElement(case, "system-out").text = _cell_numbers(cell)
        cases.append(case)
    return _finish(root, suite, cases)


def _case(suite: ET.Element, name: str, platform: str, seconds: float | None) -> ET.Element:
    # classname is what GitLab shows as the suite column: the platform the cell ran on.
    return ET.SubElement(
        suite, "testcase", name=name, classname=f"portbench.{platform}", time=f"{seconds or 0.0:.3f}"
    )


def _cell_numbers(cell: CellResult) -> str:
    parts = [f"status {cell.status}"]
    if cell.latency_ms is not None:
        parts.append(f"p50 {cell.latency_ms.p50:.3f} ms")
    parts.extend(f"{name} {value:.4f}" for name, value in cell.metrics.items())
    if cell.parity is not None:
        parts.append(f"parity {cell.parity.verdict}")
    return "; ".join(parts)


def compare_junit(baseline: RunResults, current: RunResults, comparison: RunComparison) -> str:
    """One test case per baseline cell: regressions fail with their numbers, missing cells are errors."""
    root = ET.Element("testsuites", name=f"portbench compare {current.suite}", timestamp=current.started_at)
    properties = {**_properties(current), "baseline_run_id": baseline.run_id,
                  "baseline_platform": platform_label(baseline)}
    title = f"portbench compare {current.suite} on {platform_label(current)}"
    suite = _suite_element(root, title, properties)
    durations = {c.cell_id: c.duration_s for c in current.cells}
    backends = {c.cell_id: c.backend for c in [*baseline.cells, *current.cells]}
    cases = []
    for cell in comparison.cells:
        case = _case(suite, cell.cell_id, backends[cell.cell_id], durations.get(cell.cell_id))
        errors = [p for p in cell.problems if p.kind == "infrastructure"]
        if errors:
            text = "; ".join(map(str, errors))
            ET.SubElement(case, "error", message=text, type="infrastructure").text = text
        elif cell.problems:
            text = "; ".join(map(str, cell.problems))
            kinds = ",".join(sorted(cell.kinds()))
            ET.SubElement(case, "failure", message=text, type=kinds).text = text
        elif cell.speed is not None and cell.speed.verdict == "inconclusive":
            ET.SubElement(case, "skipped", message=f"latency {cell.speed.describe()}")
        ET.SubElement(case, "system-out").text = _comparison_numbers(cell)
        cases.append(case)
    for cell_id in comparison.missing:
        case = _case(suite, cell_id, backends[cell_id], None)
        message = "in the baseline, missing from this run"
        ET.SubElement(case, "error", message=message, type="infrastructure").text = message
        cases.append(case)
    return _finish(root, suite, cases)


def _comparison_numbers(cell: CellComparison) -> str:
    lines = [f"latency {cell.speed.verdict}: {cell.speed.describe()}" if cell.speed else "no latency samples"]
    lines.extend(f"manifest differs: {d}" for d in cell.manifest_differences)
    return "\n".join(lines)


def _md(text: object) -> str:
    """A table cell's text: pipes would split the cell, angle brackets would be HTML on GitHub."""
    return (
        str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("|", "\\|").replace("\n", " ")
    )


def run_summary(results: RunResults) -> str:
    code = run_exit_code(results)
    counts = {s: sum(c.status == s for c in results.cells) for s in ("passed", "failed", "skipped")}
    lines = [
        f"## portbench run `{_md(results.suite)}` on {_md(platform_label(results))}",
        "",
        f"**{VERDICT_WORDS[code]}** (exit {code}): {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped",
        "",
        "| cell | status | p50 ms | parity | note |",
        "|---|---|---:|---|---|",
    ]
    for cell in results.cells:
        p50 = f"{cell.latency_ms.p50:.3f}" if cell.latency_ms else "–"
        parity = cell.parity.verdict if cell.parity else "–"
        parity_note = cell.parity.reason if cell.parity and cell.parity.verdict == "fail" else None
        note = cell.reason or parity_note or ""
        lines.append(f"| {_md(cell.cell_id)} | {cell.status} | {p50} | {parity} | {_md(note)} |")
    return "\n".join(lines) + "\n"


VERDICT_WORDS = {
    EXIT_OK: "OK",
    EXIT_INFRASTRUCTURE: "INFRASTRUCTURE FAILURE",
    EXIT_PERFORMANCE: "PERFORMANCE REGRESSION",
    EXIT_ACCURACY: "ACCURACY REGRESSION",
}


def compare_summary(baseline: RunResults, current: RunResults, comparison: RunComparison) -> str:
    code = compare_exit_code(comparison)
    regressions = len(comparison.regressions) + len(comparison.missing)
    lines = [
        f"## portbench compare `{_md(current.suite)}`: {_md(current.run_id)} against {_md(baseline.run_id)}",
        "",
        f"**{VERDICT_WORDS[code]}** (exit {code}): {regressions} regression(s) in "
        f"{len(comparison.cells) + len(comparison.missing)} cell(s); {len(comparison.new)} new",
        "",
        "| cell | verdict | median change | 95% CI | p | problems |",
        "|---|---|---:|---|---:|---|",
    ]
    order = sorted(comparison.cells, key=lambda c: (not c.regressed, c.cell_id))
    for cell in order:
        speed = cell.speed
        verdict = "regressed" if cell.regressed else (speed.verdict if speed else "no samples")
        change = f"{speed.ratio - 1:+.1%}" if speed and speed.ratio is not None else "–"
        interval = (
            f"{speed.ratio_low - 1:+.1%} … {speed.ratio_high - 1:+.1%}"
            if speed and speed.ratio_low is not None and speed.ratio_high is not None else "–"
        )
        p = None
        if speed is not None and speed.ratio is not None:
            p = speed.p_slower if speed.ratio >= 1 else speed.p_faster
        problems = "; ".join(map(str, cell.problems)) or (speed.reason if speed and speed.reason else "")
        lines.append(
            f"| {_md(cell.cell_id)} | {verdict} | {change} | {interval} | "
            f"{f'{p:.2g}' if p is not None else '–'} | {_md(problems)} |"
        )
    lines.extend(f"| {_md(cell_id)} | missing | – | – | – | in the baseline, missing from this run |"
                 for cell_id in comparison.missing)
    differing = [c for c in comparison.cells if c.manifest_differences]
    if differing:
        lines += ["", "Measured differently (manifest):", ""]
        lines.extend(f"- {_md(c.cell_id)}: {_md('; '.join(c.manifest_differences))}" for c in differing)
    return "\n".join(lines) + "\n"


def write_output(path: Path, text: str) -> None:
    if path.is_dir():
        raise PortbenchError(f"cannot write {path}: it is a directory")
    write_atomic(path, text)


def publish_summary(markdown: str, path: Path | None, environ: Mapping[str, str] | None = None) -> list[Path]:
    """Write ``--step-summary FILE`` and append to ``$GITHUB_STEP_SUMMARY`` when a job sets it."""
    written: list[Path] = []
    if path is not None:
        write_output(path, markdown)
        written.append(path)
    target = (os.environ if environ is None else environ).get(STEP_SUMMARY_VARIABLE)
    if target:
        # GitHub collects every step's file; appending keeps what earlier commands of the step wrote.
        try:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(markdown)
        except OSError as error:
            message = f"cannot append to ${STEP_SUMMARY_VARIABLE} {target}: {error.strerror}"
            raise PortbenchError(message) from None
        written.append(Path(target))
    return written


