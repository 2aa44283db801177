"""Suite files through the real command line: a user's own file, --set, bad files, and --resume after
the file was edited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import assert_one_line_error, portbench

# Synthetic-weight pico cells build in seconds; the measure settings keep each cell to about a second.
USER_SUITE = """
[suite]
name = "my-suite"
description = "pico at two batch sizes"
trials = 2

[measure]
warmup_queries = 1
warmup_stable_windows = 0
min_queries = 2
max_queries = 5
min_duration_s = 0
max_duration_s = 0.5

[[cells]]
workload = "ernie"
task = "perf"
model = "ernie-3.0-pico-synthetic"
dataset = "synthetic-tokens"
label = "pico-s{seq_len}-b{batch_size}"
params = { shape = "pico", seq_len = 16 }
matrix = { batch_size = [1, 2] }
"""

ORIGINAL_IDS = [
    "ernie/perf/ernie-3.0-pico-synthetic@pico-s16-b1/cpu/paddle/fp32/single-stream",
    "ernie/perf/ernie-3.0-pico-synthetic@pico-s16-b2/cpu/paddle/fp32/single-stream",
]


def write_suite(tmp_path: Path, text: str, name: str = "my-suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[suite\nname = 'x'\n", ["not valid TOML", "line 1"]),
        (USER_SUITE.replace("trials = 2", "trails = 2"), ["suite.trails: unknown key", "trials"]),
        (USER_SUITE.replace("min_queries = 2", "min_queries = 'two'"),
         ["measure.min_queries: expected a whole number, got 'two'"]),
        (USER_SUITE.replace('dataset = "synthetic-tokens"\n', ""), ["cells[1].dataset: missing"]),
        (USER_SUITE.replace('workload = "ernie"', 'workload = "speech"'),
         ["cells[1].workload: expected one of ernie, ocr, got 'speech'"]),
        (USER_SUITE.split("[[cells]]")[0], ["cells: expected at least one [[cells]] table"]),
    ],
    ids=["toml-syntax", "unknown-key", "wrong-type", "missing-field", "unknown-workload", "no-cells"],
)
def test_bad_suite_file_is_one_line_naming_file_and_key(
    text: str, fragments: list[str], tmp_path: Path
) -> None:
    path = write_suite(tmp_path, text)
    line = assert_one_line_error(portbench("run", "--suite", str(path), cwd=tmp_path), str(path), *fragments)
    assert not (tmp_path / "portbench-results").exists()  # refused before any run directory exists
    # `portbench suites FILE` checks a file the same way, without running anything.
    assert assert_one_line_error(portbench("suites", str(path), cwd=tmp_path)) == line


def test_bad_set_values_are_one_line_errors(tmp_path: Path) -> None:
    path = write_suite(tmp_path, USER_SUITE)
    assert_one_line_error(
        portbench("run", "--suite", str(path), "--set", "measure.min_duration_s=soon", cwd=tmp_path),
        str(path), "measure.min_duration_s: expected a number, got 'soon' (from --set)",
    )
    assert_one_line_error(
        portbench("run", "--suite", "smoke", "--set", "measure.max_duration=2", cwd=tmp_path),
        "built-in suite smoke", "measure.max_duration: unknown key",
    )
    assert_one_line_error(
        portbench("run", "--suite", str(tmp_path / "absent.toml"), cwd=tmp_path), "absent.toml does not exist"
    )
    assert_one_line_error(
        portbench("run", "--resume", str(tmp_path), "--set", "suite.trials=1", cwd=tmp_path),
        "--set cannot change a resumed run",
    )


def test_suites_command_shows_a_file_resolved(tmp_path: Path) -> None:
    path = write_suite(tmp_path, USER_SUITE)
    shown = portbench("suites", str(path), "--set", "suite.trials=4")
    assert shown.returncode == 0, shown.stderr
    assert "my-suite: pico at two batch sizes" in shown.stdout
    assert "4 trial(s) per cell; 2 cell(s)" in shown.stdout
    for cell_id in ORIGINAL_IDS:
        assert cell_id.replace("/cpu/paddle/fp32/", "/BACKEND/RUNTIME/PRECISION/") in shown.stdout
    listing = portbench("suites")
    assert listing.returncode == 0, listing.stderr
    for name in ("smoke", "standard (default)", "ernie-shapes", "scenarios"):
        assert name in listing.stdout


def test_user_suite_runs_is_stored_resolved_and_resume_ignores_later_edits(
    tmp_path: Path, cache_dir: Path
) -> None:
    path = write_suite(tmp_path, USER_SUITE)
    out = tmp_path / "run"
    first = portbench(
        "run", "--suite", str(path), "--backend", "cpu", "--threads", "1", "--out", str(out),
        "--cache-dir", str(cache_dir), "--set", "suite.trials=1", "--set", "measure.max_queries=4",
    )
    assert first.returncode == 0, first.stderr
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert document["schema_version"] == "1.2" and document["suite"] == "my-suite"
    stored = document["suite_definition"]
    assert stored["suite"]["trials"] == 1 and stored["measure"]["max_queries"] == 4  # --set applied
    assert stored["measure"]["min_queries"] == 2  # the file's own value
    assert [c["label"] for c in stored["cells"]] == ["pico-s16-b1", "pico-s16-b2"]
    assert [c["cell_id"] for c in document["cells"]] == ORIGINAL_IDS
    assert all(c["status"] == "passed" for c in document["cells"])
    assert all(c["latency_ms"]["n"] <= 4 for c in document["cells"])  # max_queries from --set

    # Interrupted after the first cell (the state an interrupted run leaves), then the file is edited.
    kept = document["cells"][0]
    document["cells"] = [kept]
    document["finished_at"] = None
    (out / "results.json").write_text(json.dumps(document), encoding="utf-8")
    edited = USER_SUITE.replace("batch_size = [1, 2]", "batch_size = [4]").replace("trials = 2", "trials = 3")
    path.write_text(edited, encoding="utf-8")

    resumed = portbench("run", "--resume", str(out), "--cache-dir", str(cache_dir))
    assert resumed.returncode == 0, resumed.stderr
    after = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [c["cell_id"] for c in after["cells"]] == ORIGINAL_IDS  # not the edited file's b4 cell
    assert after["cells"][0]["started_at"] == kept["started_at"]  # the finished cell was not rerun
    rerun = after["cells"][1]
    assert rerun["status"] == "passed" and rerun["params"]["batch_size"] == 2
    assert rerun["trials"]["trials"] == 1  # the stored trials, not the edited file's 3
    assert after["suite_definition"] == stored and after["finished_at"] is not None
    report = portbench("report", str(out))
    assert report.returncode == 0, report.stderr
    assert "pico at two batch sizes; 2 cell(s); 1 timed trial(s) per cell" in (out / "summary.md").read_text()
