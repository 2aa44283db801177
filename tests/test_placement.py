"""Operator placement: fallback-log and profiler-report parsers on recorded real outputs (sources in
tests/fixtures/placement/README.md), the optimized-program op counts, the placement rule, and the
report sections that show placement, energy and first-shape cost."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from portbench.backends.base import Precision, PredictorOptions
from portbench.harness import api
from portbench.harness.config import CellPlan, RunOptions
from portbench.harness.placement import (
    Fallback,
    OpTime,
    fill_shared_placements,
    measured_placements,
    optimized_op_counts,
    parse_fallback_lines,
    parse_profile_report,
    placement_for_role,
    placement_key,
)
from portbench.harness.results import CellResult, RunResults
from portbench.harness.runner import CellOutcome, Runner
from portbench.harness.suite import get_suite
from portbench.harness.worker import new_cell_result
from portbench.reports.markdown import render_markdown

pytestmark = pytest.mark.fast

FIXTURES = Path(__file__).parent / "fixtures" / "placement"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_fallback_lines_from_a_real_ascend_log() -> None:
    fallbacks = parse_fallback_lines(fixture("paddle_issue_42539_npu_fallback.log"))
    assert [f.op for f in fallbacks] == ["lookup_table", "lookup_table_grad"]
    assert fallbacks[0].device == "NPU"
    assert fallbacks[0].kernel_key.endswith("place[Place(npu:0)]:library_type[PLAIN]")


def test_fallback_lines_phi_wording_and_duplicates() -> None:
    # The wording of Paddle 3.x phi kernel selection (format string in libpaddle.so 3.2.2):
    # "phi missing <backend> kernel: <op>, expected_kernel_key:<key>, fallback to CPU one!"
    line = (
        "W1201 phi missing npu kernel: set_value, expected_kernel_key:(npu, NCHW, float32), "
        "fallback to CPU one!"
    )
    log = f"{line}\nI1201 unrelated line\n{line}\n"
    assert parse_fallback_lines(log) == [Fallback("set_value", "npu", "(npu, NCHW, float32)")]
    assert parse_fallback_lines("no fallback here") == []


def test_profile_report_legacy_executor() -> None:
    place, ops = parse_profile_report(fixture("profile_det_legacy_cpu.txt"))
    assert place == "CPU"
    by_name = {op.name: op for op in ops}
    # Read off the recorded report by eye: the thread0:: rows, without the executor's own rows.
    assert "Executor::Run" not in by_name and "load_combine" not in by_name
    assert by_name["fused_conv2d"].calls == 108
    assert by_name["conv2d_transpose_bias"].calls == 4
    assert by_name["sigmoid"].calls == 2
    assert set(by_name) == {
        "fused_conv2d",
        "fused_elementwise_add",
        "elementwise_mul",
        "elementwise_add",
        "conv2d",
        "conv2d_transpose_bias",
        "pool2d",
        "nearest_interp_v2",
        "concat",
        "relu",
        "sigmoid",
    }


def test_profile_report_pir_executor() -> None:
    place, ops = parse_profile_report(fixture("profile_ernie_pir_cpu.txt"))
    assert place == "CPU"
    by_name = {op.name: op for op in ops}
    assert by_name["onednn_op.fc"].calls == 16
    assert "PhiKernelInstruction::infermeta" not in by_name  # indented sub-events
    assert by_name["pd_op.embedding"].calls == 6


def test_pir_op_counts(tmp_path: Path) -> None:
    program = {
        "base_code": {"magic": "pir"},
        "program": {
            "regions": [
                {
                    "#": "region_0",
                    "blocks": [
                        {
                            "#": "block_0",
                            "ops": [
                                {"#": "p"},
                                {"#": "p"},
                                {"#": "1.data"},
                                {"#": "1.embedding"},
                                {"#": "onednn_op.fc"},
                                {"#": "onednn_op.fc"},
                                {"#": "0.combine"},
                                {"#": "1.fetch"},
                            ],
                        }
                    ],
                }
            ]
        },
    }
    (tmp_path / "_optimized.json").write_text(json.dumps(program))
    assert optimized_op_counts(tmp_path) == Counter({"onednn_op.fc": 2, "pd_op.embedding": 1})


def test_placement_rule_on_a_device_and_on_the_cpu() -> None:
    counts = {"conv2d": 3, "lookup_table": 1}
    times = [OpTime("conv2d", 6, 30.0, 0.6), OpTime("lookup_table", 2, 20.0, 0.2)]
    fallbacks = [Fallback("lookup_table", "NPU", "place[Place(npu:0)]")]
    npu = placement_for_role("npu:0", counts, "All", times, fallbacks)
    assert (npu["op_total"], npu["ops_on_device"], npu["ops_on_cpu"]) == (4, 3, 1)
    assert npu["time_share_on_cpu"] == pytest.approx(0.25)  # 0.2 of the 0.8 the operators took
    assert {o["op"]: o["placement"] for o in npu["operators"]} == {
        "conv2d": "npu:0",
        "lookup_table": "cpu (fallback)",
    }
    cpu = placement_for_role("cpu", counts, "CPU", times, [])
    assert (cpu["ops_on_device"], cpu["ops_on_cpu"], cpu["time_share_on_cpu"]) == (0, 4, 1.0)


# --- report sections ------------------------------------------------------------------------------


def _cell(cell_id: str, **fields: Any) -> CellResult:
    return CellResult(
        cell_id=cell_id,
        workload="ocr",
        task="det",
        model="m",
        backend="cpu",
        precision="fp32",
        scenario="single-stream",
        dataset="d",
        status="passed",
        **fields,
    )


def test_summary_shows_energy_first_shape_and_placement() -> None:
    energy_absent = {
        "available": False,
        "samples": 10,
        "window_s": 1.0,
        "readings": [],
        "unavailable": [
            {"source": "rapl", "scopes": ["cpu-package"], "reason": "/sys/class/powercap not present"}
        ],
    }
    energy_card = {
        "available": True,
        "samples": 100,
        "window_s": 2.0,
        "unavailable": [],
        "readings": [
            {
                "source": "npu-smi",
                "scope": "card",
                "domain": "npu:0",
                "method": "sampled",
                "energy_j": 200.0,
                "seconds": 2.0,
                "mean_power_w": 100.0,
                "readings": 9,
                "energy_per_sample_j": 2.0,
                "samples_per_j": 0.5,
            }
        ],
    }
    first_shape = {
        "shapes": [
            {
                "kind": "det page",
                "label": "640x640",
                "shape": [1, 3, 640, 640],
                "first_ms": 900.0,
                "steady_ms": 40.0,
                "first_of_session": False,
            }
        ],
        "by_kind": {"det page": {"extra_ms": {"n": 1, "median": 860.0, "max": 860.0}}},
    }
    placement = {
        "roles": {
            "det": placement_for_role(
                "npu:0",
                {"conv2d": 3, "lookup_table": 1},
                "All",
                [OpTime("conv2d", 6, 30.0, 0.6), OpTime("lookup_table", 2, 20.0, 0.2)],
                [Fallback("lookup_table", "NPU", "k")],
            )
        }
    }
    results = RunResults(
        run_id="r",
        started_at="2026-12-01T00:00:00+00:00",
        portbench_version="0",
        suite="s",
        platform={},
        cells=[
            _cell("a", energy=energy_absent),
            _cell("b", energy=energy_card, first_shape=first_shape, placement=placement),
        ],
    )
    text = render_markdown(results)
    assert "## Energy" in text and "## First-shape cost" in text and "## Operator placement" in text
    assert "`a`: unavailable: rapl: /sys/class/powercap not present" in text
    assert "| b | npu-smi | card | npu:0 | sampled | 200 | 100 | 2.00 | 0.5 |" in text
    assert "| b | det page | 640x640 | 900.0 | 40.0 | +860.0 |" in text
    assert "1 of 4 operators fell back to the CPU" in text and "| lookup_table |" in text
    assert "| 4 | 3 | 1 | 25% |" in text


# --- one profile per model and options in a run ---------------------------------------------------


def test_placement_key_follows_files_device_and_options_but_not_the_cache_folder(tmp_path: Path) -> None:
    digests = {"inference.pdmodel": "a" * 64, "inference.pdiparams": "b" * 64}
    options = PredictorOptions(cpu_threads=2, cache_dir=tmp_path / "one")
    key = placement_key("cpu", "cpu", digests, options)
    assert placement_key("cpu", "cpu", dict(reversed(digests.items())), options) == key
    assert placement_key("cpu", "cpu", digests, replace(options, cache_dir=tmp_path / "two")) == key
    different = [
        placement_key("npu", "npu:0", digests, options),
        placement_key("cpu", "cpu", {**digests, "inference.pdiparams": "c" * 64}, options),
        placement_key("cpu", "cpu", digests, replace(options, precision=Precision.INT8)),
        placement_key("cpu", "cpu", digests, replace(options, cpu_threads=1)),
        placement_key("cpu", "cpu", digests, replace(options, ir_optim=False)),
        placement_key("cpu", "cpu", digests, replace(options, dynamic_shapes={"x": ((1,), (2,), (3,))})),
    ]
    assert len({key, *different}) == 1 + len(different)


def _profiled(key: str) -> dict[str, Any]:
    return {**placement_for_role("cpu", {"conv2d": 3, "relu": 2}, "CPU", [], []), "key": key}


def test_runner_profiles_a_model_once_and_copies_the_record_into_later_cells(tmp_path: Path) -> None:
    """Two cells load the same det model (det task, system task) and the system task also a rec
    model: the second cell's plan names the first as the det model's source; its stub becomes a
    copy of that record marked with the cell it came from, and the rec record stays its own."""
    options = RunOptions(suite="smoke", backends=("cpu",), cache_dir=tmp_path / "cache")
    planned = [p for p in api.plan_run(get_suite("smoke"), options, tmp_path).cells if p.skip_reason is None]
    first, second = planned[0].plan.cell_id, planned[1].plan.cell_id
    seen: list[dict[str, str]] = []

    def run(plan: CellPlan, timeout_s: float) -> CellOutcome:
        seen.append(dict(plan.placement_measured))
        result = new_cell_result(plan, "passed")
        if plan.cell_id == first:
            result.placement = {"roles": {"det": _profiled("det-key")}, "fallback_log": True}
        else:
            det = {"key": "det-key", "measured_in": plan.placement_measured["det-key"]}
            result.placement = {"roles": {"det": det, "rec": _profiled("rec-key")}, "fallback_log": True}
        return CellOutcome(result)

    results = RunResults(run_id="r", started_at="2026-12-02T00:00:00+00:00", portbench_version="0",
                         suite="smoke", platform={}, request=options.to_dict())  # fmt: skip
    list(Runner(results, tmp_path, options, run).run(planned[:2]))
    assert seen == [{}, {"det-key": first}]
    copied = results.cells[1].placement["roles"]  # type: ignore[index]
    assert copied["det"] == {**_profiled("det-key"), "measured_in": first}
    assert "measured_in" not in copied["rec"] and copied["rec"]["op_total"] == 5
    saved = json.loads((tmp_path / "results.json").read_text())["cells"][1]["placement"]["roles"]["det"]
    assert saved["measured_in"] == first and saved["op_total"] == 5
    # A third cell would reuse both records, and the report says where the copy was profiled.
    assert measured_placements(results.cells) == {"det-key": first, "rec-key": second}
    text = render_markdown(results)
    assert f"all 5 operators run on the CPU (profiled in {first})" in text


def test_a_reference_whose_profiled_cell_is_missing_is_listed_not_rendered() -> None:
    stub = {"roles": {"det": {"key": "k", "measured_in": "gone"}}}
    results = RunResults(run_id="r", started_at="2026-12-02T00:00:00+00:00", portbench_version="0",
                         suite="s", platform={}, cells=[_cell("a", placement=stub)])  # fmt: skip
    fill_shared_placements(results.cells[0], results.cells)
    assert results.cells[0].placement == stub
    assert "- a (det): profiled in gone" in render_markdown(results)


def test_the_worker_profiles_a_role_only_when_no_earlier_cell_did(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portbench.harness import worker
    from portbench.harness.results import ModelRecord

    session = type("FakeSession", (), {"model": "det-files"})()
    record = ModelRecord("det", "m", "p", {"inference.pdmodel": "a" * 64})
    opened = worker.OpenedModels({"det": session}, [record], {}, None)  # type: ignore[dict-item]

    class Backend:
        name, device = "cpu", "cpu"

    class Workload:
        def shape_ranges(self, spec: object, role: str) -> dict[str, Any]:
            return {}

    class Prepared:
        def staged_feeds(self) -> list[tuple[object, list[Any], int]]:
            return [(session, [], 1)]

    profiled: list[object] = []

    def profile(backend: object, files: object, options: object, feeds: object) -> Any:
        profiled.append(files)
        return Counter({"conv2d": 2}), "CPU", []

    monkeypatch.setattr(worker, "profile_model", profile)
    options = RunOptions(suite="smoke", backends=("cpu",), cache_dir=tmp_path)
    plan = replace(api.plan_run(get_suite("smoke"), options, tmp_path).cells[0].plan, log_path=None)
    fakes: Any = (Backend(), Workload(), Prepared(), opened)
    first = worker._measure_placement(plan, *fakes)
    key = first["roles"]["det"]["key"]
    assert profiled == ["det-files"] and first["roles"]["det"]["op_total"] == 2
    again = worker._measure_placement(replace(plan, placement_measured={key: "ocr/det/earlier"}), *fakes)
    assert profiled == ["det-files"]  # not profiled a second time
    assert again["roles"]["det"] == {"key": key, "measured_in": "ocr/det/earlier"}
