"""Suite files: the TOML format, matrix expansion, --set overrides, and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_runner import PLATFORM, make_options

from portbench.errors import UnknownNameError
from portbench.harness.measure import MeasureSettings
from portbench.harness.parity import DEFAULT_TASK_RATIO, ParityGates
from portbench.harness.results import RunResults, load_results, save_results
from portbench.harness.runner import new_results, suite_for
from portbench.harness.suite import (
    Suite,
    SuiteFileError,
    apply_sets,
    get_suite,
    is_suite_path,
    load_suite_file,
    parse_set,
    parse_suite,
    read_document,
    resolve_suite,
)

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

WORKLOADS = ("ocr", "ernie")

MINIMAL = """
[suite]
name = "mine"

[[cells]]
workload = "ernie"
task = "perf"
model = "ernie-3.0-pico-synthetic"
dataset = "synthetic-tokens"
"""

SWEEP = """
[suite]
name = "sweep"
description = "two shapes x two lengths"
precisions = ["fp32", "int8"]
trials = 5

[measure]
min_queries = 7
max_queries = 70
min_duration_s = 0
max_duration_s = 2
target_percentile = 90.0

[gates]
task_ratio = { int8 = 0.98 }
per_metric = { accuracy = { int8 = 0.97 } }
min_output = { top1_agreement = 0.95 }
worst_samples = 3

[[cells]]
workload = "ernie"
task = "perf"
model = "ernie-3.0-{shape}-synthetic"
dataset = "synthetic-tokens"
scenario = "offline"
label = "{shape}-s{seq_len}-b{batch_size}"
params = { batch_size = 1, batch_sizes = [1, 4] }

[cells.matrix]
shape = ["nano", "base"]
seq_len = [32, 128]
"""


def in_cell(extra: str) -> str:
    return MINIMAL.replace('task = "perf"', f'task = "perf"\n{extra}')


def in_header(extra: str) -> str:
    return MINIMAL.replace('name = "mine"', f'name = "mine"\n{extra}')


def parse(text: str, workloads: tuple[str, ...] | None = WORKLOADS) -> Suite:
    return parse_suite(read_document(text, "test.toml"), "test.toml", workloads)


def test_minimal_file_takes_the_documented_defaults() -> None:
    suite = parse(MINIMAL)
    assert suite.name == "mine" and suite.description == ""
    assert suite.precisions == ("fp32",) and suite.trials == 3
    assert suite.measure == MeasureSettings()
    assert suite.gates == ParityGates()
    (cell,) = suite.cells
    assert cell.cell_id("cpu", "fp32") == "ernie/perf/ernie-3.0-pico-synthetic/cpu/paddle/fp32/single-stream"
    assert dict(cell.params) == {}


def test_matrix_expands_last_key_fastest_and_fills_the_templates() -> None:
    suite = parse(SWEEP)
    assert [c.cell_id("cpu", "int8") for c in suite.cells] == [
        "ernie/perf/ernie-3.0-nano-synthetic@nano-s32-b1/cpu/paddle/int8/offline",
        "ernie/perf/ernie-3.0-nano-synthetic@nano-s128-b1/cpu/paddle/int8/offline",
        "ernie/perf/ernie-3.0-base-synthetic@base-s32-b1/cpu/paddle/int8/offline",
        "ernie/perf/ernie-3.0-base-synthetic@base-s128-b1/cpu/paddle/int8/offline",
    ]
    assert dict(suite.cells[1].params) == {
        "batch_size": 1, "batch_sizes": (1, 4), "shape": "nano", "seq_len": 128,
    }
    assert suite.precisions == ("fp32", "int8") and suite.trials == 5
    assert suite.measure == MeasureSettings(
        min_queries=7, max_queries=70, min_duration_s=0.0, max_duration_s=2.0, target_percentile=90.0
    )
    assert suite.gates.gate_for("accuracy", "int8") == 0.97
    assert suite.gates.gate_for("macro_f1", "int8") == 0.98
    assert suite.gates.gate_for("macro_f1", "fp16") == DEFAULT_TASK_RATIO["fp16"]  # default kept
    assert dict(suite.gates.min_output) == {"top1_agreement": 0.95} and suite.gates.worst_samples == 3


def test_round_trip_keeps_everything_and_is_json() -> None:
    suite = parse(SWEEP)
    stored = json.loads(json.dumps(suite.to_dict()))  # what results.json holds
    assert stored["cells"][0]["params"]["batch_sizes"] == [1, 4]
    assert "matrix" not in stored["cells"][0]  # resolved: the expansion is stored, not the recipe
    again = Suite.from_dict(stored)
    assert again == suite
    assert isinstance(again.measure.min_duration_s, float)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[suite\nname = 1", ["test.toml: not valid TOML", "line 1"]),
        (MINIMAL + "\n[extra]\nx = 1\n", ["test.toml: extra: unknown key", "suite, measure, gates, cells"]),
        (in_header('owner = "x"'), ["suite.owner: unknown key"]),
        (MINIMAL + "\n[measure]\nmin_duration = 1\n",
         ["measure.min_duration: unknown key", "min_duration_s"]),
        (in_cell('batch = 1'), ["cells[1].batch: unknown key"]),
        (MINIMAL + '\n[measure]\nmin_queries = "ten"\n',
         ["measure.min_queries: expected a whole number, got 'ten'"]),
        (MINIMAL + "\n[measure]\nmin_queries = 2.5\n", ["measure.min_queries: expected a whole number"]),
        (MINIMAL + "\n[measure]\nmin_duration_s = true\n", ["measure.min_duration_s: expected a number"]),
        (in_header('trials = 0'), ["suite.trials: expected a whole number >= 1"]),
        (in_header('precisions = ["fp64"]'), ["suite.precisions", "fp64"]),
        (MINIMAL.replace('model = "ernie-3.0-pico-synthetic"\n', ""),
         ["cells[1].model: missing; expected a string"]),
        (MINIMAL.replace('name = "mine"', 'description = "x"'), ["suite.name: missing"]),
        (MINIMAL.replace('[suite]\nname = "mine"', ""), ["suite: missing"]),
        (MINIMAL.replace('"ernie"', '"speech"'),
         ["cells[1].workload: expected one of ernie, ocr, got 'speech'"]),
        (in_cell('scenario = "warp-speed"'), ["cells[1].scenario", "warp-speed", "offline"]),
        ('[suite]\nname = "mine"\n', ["cells: expected at least one [[cells]] table"]),
        ('cells = []\n[suite]\nname = "mine"\n', ["cells: expected at least one [[cells]] table"]),
        ('[suite]\nname = "mine"\ncells = []\n', ["suite.cells: unknown key"]),
        (in_cell('params = { x = { y = 1 } }'), ["cells[1].params.x"]),
        (in_cell('label = "{shape}"'), ["cells[1].label", "{shape}"]),
        (in_cell('matrix = { seq_len = [] }'), ["cells[1].matrix.seq_len"]),
        (in_cell('matrix = { seq_len = [32, 64] }'), ["cells[1]: cell ernie/perf", "appears twice"]),
        (MINIMAL + MINIMAL.split("\n", 4)[4], ["cells[2]: cell ernie/perf", "again (first in cells[1])"]),
        (in_cell('params = { a = 1 }\nmatrix = { a = [1, 2] }'),
         ["cells[1].matrix.a: also given in params"]),
        (MINIMAL + "\n[measure]\nmin_queries = 9\nmax_queries = 3\n", ["measure: need 1 <= min_queries"]),
        (MINIMAL + "\n[gates]\ntask_ratio = { int8 = 1.5 }\n",
         ["gates: parity gate for int8 must be a ratio"]),
        (MINIMAL + "\n[gates]\nstrictness = 1\n", ["gates: unknown parity setting 'strictness'"]),
    ],
)
def test_bad_documents_name_the_key_and_the_expectation(text: str, fragments: list[str]) -> None:
    with pytest.raises(SuiteFileError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("test.toml: ")
    for fragment in fragments:
        assert fragment in message


def test_unknown_workloads_are_only_checked_when_the_registry_is_given() -> None:
    text = MINIMAL.replace('"ernie"', '"speech"')
    assert parse(text, workloads=None).cells[0].workload == "speech"


@pytest.mark.parametrize(
    ("assignment", "key", "value"),
    [
        ("measure.min_duration_s=5", "measure.min_duration_s", 5),
        ("measure.warmup_tolerance=0.5", "measure.warmup_tolerance", 0.5),
        ('suite.precisions=["fp32", "int8"]', "suite.precisions", ["fp32", "int8"]),
        ("suite.description=a plain sentence", "suite.description", "a plain sentence"),
        ('suite.description="quoted"', "suite.description", "quoted"),
        ("gates.task_ratio.int8 = 0.95", "gates.task_ratio.int8", 0.95),
    ],
)
def test_set_values_are_toml_with_strings_as_fallback(assignment: str, key: str, value: object) -> None:
    assert parse_set(assignment) == (key, value)


def test_set_overrides_a_copy_and_is_type_checked(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(SWEEP, encoding="utf-8")
    suite = load_suite_file(path, ["measure.min_duration_s=1", "suite.trials=2", "gates.task_ratio.int8=0.9"])
    assert suite.measure.min_duration_s == 1.0 and suite.trials == 2
    assert suite.gates.gate_for("macro_f1", "int8") == 0.9
    assert suite.measure.min_queries == 7  # the rest of the file is untouched
    document = read_document(SWEEP, "x")
    apply_sets(document, ["suite.trials=9"], "x")
    assert document["suite"]["trials"] == 5  # the loaded document itself is not changed

    with pytest.raises(SuiteFileError, match=r"measure\.min_duration_s: expected a number, got 'soon' "
                                             r"\(from --set\)$"):
        load_suite_file(path, ["measure.min_duration_s=soon"])
    with pytest.raises(SuiteFileError, match=r"measure\.min_duration: unknown key.*\(from --set\)$"):
        load_suite_file(path, ["measure.min_duration=5"])
    with pytest.raises(SuiteFileError, match="cells change in the file"):
        load_suite_file(path, ["cells.model=x"])
    with pytest.raises(SuiteFileError, match="--set expects KEY=VALUE"):
        load_suite_file(path, ["measure.min_duration_s"])
    with pytest.raises(SuiteFileError, match=r"suite\.name: is not a table"):
        load_suite_file(path, ["suite.name.first=x"])


def test_builtin_suites_take_set_too() -> None:
    suite = get_suite("smoke", ["measure.max_duration_s=1.5"])
    assert suite.measure.max_duration_s == 1.5
    assert get_suite("smoke").measure.max_duration_s == 3.0


def test_suite_argument_is_a_name_or_a_path(tmp_path: Path) -> None:
    assert not is_suite_path("smoke") and not is_suite_path("ernie-shapes")
    assert is_suite_path("mine.toml") and is_suite_path("./mine") and is_suite_path("runs/suite.json")
    with pytest.raises(UnknownNameError, match=r"unknown suite 'nosuch'.*smoke"):
        resolve_suite("nosuch")
    with pytest.raises(SuiteFileError, match=r"suite file .*absent\.toml does not exist"):
        resolve_suite(str(tmp_path / "absent.toml"))
    path = tmp_path / "mine.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert resolve_suite(str(path)).name == "mine"


def test_a_stored_resolved_suite_is_itself_a_suite_file(tmp_path: Path) -> None:
    suite = parse(SWEEP)
    path = tmp_path / "resolved.json"
    path.write_text(json.dumps(suite.to_dict()), encoding="utf-8")
    assert load_suite_file(path) == suite


def test_results_store_the_resolved_suite_and_resume_uses_it(tmp_path: Path) -> None:
    suite_file = tmp_path / "mine.toml"
    suite_file.write_text(SWEEP, encoding="utf-8")
    suite = load_suite_file(suite_file, ["suite.trials=2"])
    results = new_results(make_options(tmp_path), PLATFORM, suite)
    save_results(results, tmp_path)
    suite_file.write_text(MINIMAL, encoding="utf-8")  # edited after the run started
    stored = suite_for(load_results(tmp_path))
    assert stored == suite and stored.trials == 2 and len(stored.cells) == 4


def test_documents_without_a_stored_suite_name_a_builtin(tmp_path: Path) -> None:
    # Schema 1.0 documents predate suite_definition: the built-in suite of that name is used.
    results = RunResults(run_id="old", started_at="2026-11-01T00:00:00+00:00", portbench_version="0",
                         suite="smoke", platform=PLATFORM, schema_version="1.0")
    save_results(results, tmp_path)
    loaded = load_results(tmp_path)
    assert loaded.suite_definition is None and loaded.schema_version == "1.0"
    assert suite_for(loaded) == get_suite("smoke")


def test_the_readme_example_is_a_valid_suite() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Suite files", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    suite = parse(example)
    assert suite.name == "procurement" and suite.precisions == ("fp32", "int8")
    assert suite.gates.gate_for("rec_char_accuracy", "int8") == 0.98
    assert len(suite.cells) == 1 + 5 * 3 * 2
    assert suite.cells[-1].cell_id("cpu", "fp32") == (
        "ernie/perf/ernie-3.0-base-synthetic@base-s128-b8/cpu/paddle/fp32/single-stream"
    )
