"""The comparison HTML opened in a real headless Chromium (Debian's ``chromium``), offline: it renders,
the browser logs no console or script error, hostile names stay text, and a screenshot is made.

.ci/run installs chromium; where it is missing (a developer machine) the test is skipped, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from portbench.harness.machines import Machine
from portbench.harness.reporting import Comparison, LabelledRun, platform_label
from portbench.reports.html import render_html
from tests.comparison_fixtures import three_hosts

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
HOSTILE_MODEL = "<script>document.title='pwned'</script>"
HOSTILE_HOST = "<img src=x onerror=alert(1)> host"


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("matplotlib")
    runs = []
    for index, results in enumerate(three_hosts(model=HOSTILE_MODEL)):
        label = HOSTILE_HOST if index == 2 else platform_label(results.platform, results.cells)
        runs.append(LabelledRun(label, Path(results.run_id), results))
    machines = {run.label: Machine(run.label, 100_000.0, 400.0, "nameplate") for run in runs}
    path = tmp_path_factory.mktemp("html") / "comparison.html"
    path.write_text(render_html(Comparison(tuple(runs), runs[0].label, machines)), encoding="utf-8")
    return path


def test_chromium_renders_without_errors_and_takes_a_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "comparison.png"
    result = chromium(tmp_path, "--window-size=1280,3000", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000  # a blank page is a few kB; tables and charts are far more
    # Console messages and uncaught script errors are logged as "CONSOLE(...)" / "Uncaught".
    assert "CONSOLE" not in result.stderr and "Uncaught" not in result.stderr


def test_dom_has_charts_and_shows_hostile_names_as_text(page: Path, tmp_path: Path) -> None:
    result = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert dom.count("<svg") == 9
    assert "<script" not in dom and "<img" not in dom  # parsed as text, never as elements
    assert "&lt;script&gt;document.title='pwned'&lt;/script&gt;" in dom
    assert "&lt;img src=x onerror=alert(1)&gt; host" in dom
    assert "<title>portbench comparison: 3 runs</title>" in dom  # the script did not run
