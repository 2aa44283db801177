"""Comparison of three hand-built runs from differently configured hosts (tests/comparison_fixtures.py):
the frames, the procurement ranking, the machines file, the exports, the HTML and the CLI.

Expected numbers are worked out by hand from the fixture's inputs (comments show the arithmetic)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from portbench.errors import PortbenchError
from portbench.harness.cli import main
from portbench.harness.machines import Machine, load_machines, match_machines
from portbench.harness.reporting import Comparison, LabelledRun, load_labelled_runs, platform_label
from portbench.harness.results import load_results, save_results
from portbench.reports.exports import CsvExport, ParquetExport
from portbench.reports.frame import (
    KEY,
    cells_frame,
    manifest_differences,
    offline_frame,
    samples_frame,
    stages_frame,
    wide_frame,
    with_baseline_speedup,
)
from portbench.reports.html import render_html
from portbench.reports.procurement import procurement_frame, ranks
from tests.comparison_fixtures import three_hosts, write_three_hosts

pytestmark = pytest.mark.fast

KUNPENG = "Kunpeng-920 · Ascend 910B · Kylin Linux Advanced Server V10"
XEON = "Intel(R) Xeon(R) Gold 6330 · NVIDIA A100 · Ubuntu 22.04"
HYGON = "Hygon C86 7285 · UOS 20"
DET = ("ocr", "det", "ppocrv4-mobile-det", "paddle", "fp32", "single-stream")
DET_INT8 = ("ocr", "det", "ppocrv4-mobile-det", "paddle", "int8", "single-stream")
ERNIE = ("ernie", "cls", "ernie-3.0-mini", "paddle", "fp32", "offline")
# 95% t interval of the mean of (m-2, m, m+2): m ± 4.3027 * 2 / sqrt(3) = m ± 4.96833
HALF_WIDTH = 4.3027 * 2 / math.sqrt(3)


def labelled() -> list[LabelledRun]:
    return [LabelledRun(platform_label(r.platform, r.cells), Path(r.run_id), r) for r in three_hosts()]


def rows(frame: pd.DataFrame, key: tuple[str, ...], platform: str) -> pd.DataFrame:
    mask = (frame[KEY].apply(tuple, axis=1) == key) & (frame["platform"] == platform)
    return frame[mask]


def machines(prices: tuple[float, float, float] = (100_000, 100_000, 100_000)) -> dict[str, Machine]:
    powers = (500.0, 400.0, 300.0)
    return {
        label: Machine(label, price, power, "measured")
        for label, price, power in zip((KUNPENG, XEON, HYGON), prices, powers, strict=True)
    }


# --- names and frames ------------------------------------------------------------------------


def test_platform_labels_come_from_cpu_accelerator_and_os() -> None:
    assert [run.label for run in labelled()] == [KUNPENG, XEON, HYGON]


def test_cells_frame_has_one_row_per_run_and_cell_with_hand_computed_figures() -> None:
    frame = cells_frame(labelled())
    assert len(frame) == 4 + 4 + 3
    det = rows(frame, DET, KUNPENG).iloc[0]
    assert det["p50_ms"] == pytest.approx(12.5)  # median of 10..15
    assert det["throughput_samples_per_s"] == pytest.approx(102.0)
    assert det["throughput_ci95_low"] == pytest.approx(102.0 - HALF_WIDTH, rel=1e-4)
    assert det["throughput_ci95_high"] == pytest.approx(102.0 + HALF_WIDTH, rel=1e-4)
    assert det["accelerator"] == "Ascend 910B"
    assert det["model_sha256"].startswith("ppocrv4-mobile-det/inference.pdmodel=2ad68ed2")
    assert rows(frame, DET, XEON).iloc[0]["p50_ms"] == pytest.approx(9.75)  # median of 9, 9.5, 10, 10.5
    failed = frame[frame["status"] == "failed"].iloc[0]
    assert (failed["platform"], failed["reason"]) == (HYGON, "worker crashed")
    assert pd.isna(failed["p50_ms"])


def test_wide_frame_has_one_column_group_per_platform() -> None:
    wide = wide_frame(cells_frame(labelled()))
    assert list(dict.fromkeys(wide.columns.get_level_values(0))) == [KUNPENG, XEON, HYGON]
    assert wide.loc[DET, (HYGON, "throughput_samples_per_s")] == pytest.approx(51.0)
    assert math.isnan(wide.loc[DET_INT8, (HYGON, "p50_ms")])  # hygon ran no int8


def test_speedup_against_the_baseline() -> None:
    frame = with_baseline_speedup(cells_frame(labelled()), KUNPENG)
    assert rows(frame, DET, XEON).iloc[0]["speedup_vs_baseline"] == pytest.approx(106 / 102)
    assert rows(frame, ERNIE, HYGON).iloc[0]["speedup_vs_baseline"] == pytest.approx(100.5 / 201)
    assert rows(frame, DET, KUNPENG).iloc[0]["speedup_vs_baseline"] == pytest.approx(1.0)


def test_samples_frame_keeps_every_raw_sample_with_its_trial() -> None:
    samples = samples_frame(labelled())
    det = samples[(samples["cell_id"] == "ocr/det/ppocrv4-mobile-det/npu/paddle/fp32/single-stream")]
    assert det["latency_ms"].tolist() == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    assert det["trial"].tolist() == [1, 1, 2, 2, 3, 3]  # trial sizes 2, 2, 2
    assert det["process"].tolist() == [1] * 6  # one worker process timed it
    offline = samples[(samples["loop"] == "offline") & (samples["platform"] == KUNPENG)]
    assert offline["batch_size"].tolist() == [1] * 3 + [8] * 3 + [32] * 3
    assert offline["latency_ms"].iloc[0] == pytest.approx(20.0)  # 1000 ms * 1 / 50 samples/s
    # kunpeng 6+3+6+9+6, xeon 4+6+6+9+6, hygon 6+6+9 (its failed cell has none)
    assert len(samples) == 30 + 31 + 21


def test_samples_frame_numbers_the_worker_processes() -> None:
    runs = labelled()
    det = next(c for c in runs[0].results.cells if c.task == "det")
    det.raw["latency_process_sizes"] = [4, 2]
    samples = samples_frame(runs)
    rows_ = samples[(samples["cell_id"] == det.cell_id) & (samples["platform"] == runs[0].label)]
    assert rows_["process"].tolist() == [1, 1, 1, 1, 2, 2]


def test_manifest_differences_name_threads_and_flags() -> None:
    diff = manifest_differences(labelled())
    det = diff[diff[KEY].apply(tuple, axis=1) == DET].set_index("setting")
    assert det.loc["cpu_threads", [KUNPENG, XEON, HYGON]].tolist() == ["4", "8", "4"]
    assert det.loc["environment.FLAGS_use_cudnn", [KUNPENG, XEON, HYGON]].tolist() == [
        "(absent)",
        "1",
        "(absent)",
    ]
    assert "backend" not in det.index  # part of what differs by design, not a setting


def test_stage_means_and_offline_curves_from_raw_samples() -> None:
    stages = stages_frame(labelled())
    kunpeng = stages[stages["platform"] == KUNPENG].set_index("stage")
    assert kunpeng.loc["det_preprocess", "mean_ms"] == pytest.approx(2.0)  # mean of 1, 3
    assert kunpeng.loc["det_inference", "mean_ms"] == pytest.approx(11.0)  # mean of 10, 12
    assert not kunpeng.loc["end_to_end", "part_of_pipeline"]
    curves = offline_frame(labelled())
    xeon = curves[curves["platform"] == XEON]
    assert xeon["batch_size"].tolist() == [1, 8, 32]
    assert xeon["samples_per_s"].tolist() == [40.0, 90.0, 101.0]


def test_same_platform_twice_gets_the_run_id(tmp_path: Path) -> None:
    dirs = write_three_hosts(tmp_path)
    runs = load_labelled_runs([dirs[0], dirs[1]], {})
    assert [r.label for r in runs] == [KUNPENG, XEON]
    again = load_results(dirs[0])
    again.run_id = "run-kunpeng-2"
    (tmp_path / "again").mkdir()
    save_results(again, tmp_path / "again")
    twice = load_labelled_runs([dirs[0], tmp_path / "again"], {})
    assert [r.label for r in twice] == [f"{KUNPENG} (run-kunpeng)", f"{KUNPENG} (run-kunpeng-2)"]


def test_name_overrides_and_refuses_unknown_runs_and_clashes(tmp_path: Path) -> None:
    dirs = write_three_hosts(tmp_path)
    runs = load_labelled_runs(dirs, {dirs[2]: "海光 C86"})
    assert runs[2].label == "海光 C86"
    with pytest.raises(PortbenchError, match="not one of the compared runs"):
        load_labelled_runs(dirs[:2], {dirs[2]: "x"})
    with pytest.raises(PortbenchError, match="carry the label"):
        load_labelled_runs(dirs, {dirs[0]: "same", dirs[1]: "same"})


# --- procurement ---------------------------------------------------------------------------


def test_ranks_share_a_place_only_where_intervals_overlap() -> None:
    assert ranks({"a": (9.7, 10.7), "b": (10.1, 11.1), "c": (4.8, 5.4)}) == {"a": "=1", "b": "=1", "c": "3"}
    assert ranks({"a": (19.9, 20.3), "b": (9.6, 10.6), "c": (9.9, 10.2)}) == {"a": "1", "b": "=2", "c": "=2"}
    assert ranks({"a": (1.0, 2.0)}) == {"a": "1"}


def test_procurement_tie_winner_and_failing_parity() -> None:
    cells = cells_frame(labelled())
    frame = procurement_frame(cells, machines(), KUNPENG)
    det = frame[frame[KEY].apply(tuple, axis=1) == DET].set_index("platform")
    # At equal prices per 10,000 yuan: kunpeng 10.2 [9.70, 10.70], xeon 10.6 [10.10, 11.10] overlap,
    # hygon 5.1 [4.85, 5.35] lies below both.
    assert det.loc[KUNPENG, "per_10k_yuan"] == pytest.approx(10.2)
    assert det["rank_per_10k_yuan"].to_dict() == {KUNPENG: "=1", XEON: "=1", HYGON: "3"}
    # Per watt: 102/500 = 0.204, 106/400 = 0.265, 51/300 = 0.17: every interval separates.
    assert det.loc[XEON, "per_watt"] == pytest.approx(0.265)
    assert det.loc[XEON, "per_watt_vs_baseline"] == pytest.approx(0.265 / 0.204)
    assert det["rank_per_watt"].to_dict() == {XEON: "1", KUNPENG: "2", HYGON: "3"}
    ernie = frame[frame[KEY].apply(tuple, axis=1) == ERNIE].set_index("platform")
    assert ernie["rank_per_10k_yuan"].to_dict() == {KUNPENG: "1", XEON: "=2", HYGON: "=2"}
    int8 = frame[frame[KEY].apply(tuple, axis=1) == DET_INT8].set_index("platform")
    assert int8.loc[XEON, "per_10k_yuan"] == pytest.approx(22.2)  # fastest, yet not ranked:
    assert pd.isna(int8.loc[XEON, "rank_per_10k_yuan"])
    assert int8.loc[XEON, "excluded"].startswith("fails parity: det_hmean dropped")
    assert int8.loc[KUNPENG, "rank_per_10k_yuan"] == "1"
    failed = frame[frame["excluded"].fillna("").str.startswith("cell failed")]
    assert failed["platform"].tolist() == [HYGON]


def test_price_changes_the_ranking() -> None:
    # kunpeng at half the price: 20.4 [19.4, 21.4] per 10,000 yuan clears xeon's 10.6 [10.1, 11.1].
    frame = procurement_frame(cells_frame(labelled()), machines((50_000, 100_000, 100_000)), KUNPENG)
    det = frame[frame[KEY].apply(tuple, axis=1) == DET].set_index("platform")
    assert det["rank_per_10k_yuan"].to_dict() == {KUNPENG: "1", XEON: "2", HYGON: "3"}
    assert det.loc[XEON, "per_10k_yuan_vs_baseline"] == pytest.approx(10.6 / 20.4)


def test_machine_without_entry_is_shown_unranked() -> None:
    partial = {k: v for k, v in machines().items() if k != HYGON}
    frame = procurement_frame(cells_frame(labelled()), partial, KUNPENG)
    det = frame[frame[KEY].apply(tuple, axis=1) == DET].set_index("platform")
    assert det.loc[HYGON, "excluded"] == "no entry in the machines file"
    assert det["rank_per_10k_yuan"].dropna().to_dict() == {KUNPENG: "=1", XEON: "=1"}


# --- machines file -------------------------------------------------------------------------

GOOD = '[machines.a]\nprice_yuan = 100000\npower_w = 450.5\npower_source = "nameplate"\nrack_units = 2\n'


def test_machines_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_machines(path) == {"a": Machine("a", 100000.0, 450.5, "nameplate", 2)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not toml [", "is not valid TOML"),
        ("[other]\nx = 1\n", "unknown top-level key 'other'"),
        ("", "no \\[machines.NAME\\] tables"),
        (GOOD.replace("price_yuan = 100000", "price_yuan = -5"), "price_yuan must be a positive number"),
        (GOOD.replace("power_w = 450.5", 'power_w = "450"'), "power_w must be a positive number"),
        (GOOD.replace('"nameplate"', '"guessed"'), "power_source must be nameplate or measured"),
        (GOOD.replace("rack_units = 2", "rack_units = 0"), "rack_units must be a positive integer"),
        (GOOD.replace("price_yuan = 100000\n", ""), "price_yuan is missing"),
        (GOOD + "colour = 1\n", "unknown key 'colour'"),
    ],
)
def test_machines_file_mistakes_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PortbenchError, match=message):
        load_machines(path)


def test_machines_match_labels_or_run_directories(tmp_path: Path) -> None:
    machine = Machine("x", 1.0, 1.0, "measured")
    runs = [("A", tmp_path / "a"), ("B", tmp_path / "b")]
    matched = match_machines({"A": machine, str(tmp_path / "b"): machine}, runs, "m.toml")
    assert set(matched) == {"A", "B"}
    with pytest.raises(PortbenchError, match="names no compared run"):
        match_machines({"C": machine}, runs, "m.toml")
    with pytest.raises(PortbenchError, match="two machines entries"):
        match_machines({"A": machine, str(tmp_path / "a"): machine}, runs, "m.toml")


# --- exports -------------------------------------------------------------------------------


def comparison() -> Comparison:
    return Comparison(tuple(labelled()), KUNPENG, machines())


def test_csv_has_a_bom_and_one_row_per_run_and_cell(tmp_path: Path) -> None:
    written = CsvExport().render(comparison(), tmp_path / "cmp.csv", Console())
    assert written == [tmp_path / "cmp.csv", tmp_path / "cmp-samples.csv"]
    raw = written[0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    cells = pd.read_csv(written[0], encoding="utf-8-sig")
    assert len(cells) == 11
    for column in (
        "platform",
        "backend",
        "device",
        "precision",
        "status",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "throughput_samples_per_s",
        "throughput_ci95_low",
        "throughput_ci95_high",
        "parity_verdict",
        "model_sha256",
        "metric_det_hmean",
        "speedup_vs_baseline",
    ):
        assert column in cells.columns
    xeon_int8 = cells[(cells["platform"] == XEON) & (cells["precision"] == "int8")].iloc[0]
    assert (xeon_int8["parity_verdict"], xeon_int8["backend"]) == ("fail", "gpu")
    assert len(pd.read_csv(written[1], encoding="utf-8-sig")) == 82


def test_parquet_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    written = ParquetExport().render(comparison(), tmp_path / "cmp.parquet", Console())
    cells = pd.read_parquet(written[0])
    det = cells[(cells["platform"] == HYGON) & (cells["task"] == "det")].iloc[0]
    assert det["throughput_samples_per_s"] == pytest.approx(51.0)
    samples = pd.read_parquet(written[1])
    assert len(samples) == 82
    assert samples["latency_ms"].sum() == pytest.approx(samples_frame(labelled())["latency_ms"].sum())


# --- HTML ----------------------------------------------------------------------------------


def test_html_is_self_contained_escaped_and_marks_fast_failing_cells() -> None:
    pytest.importorskip("matplotlib")
    runs = [
        LabelledRun("<script>alert('host')</script>", r.path, r.results) if i == 2 else r
        for i, r in enumerate(labelled())
    ]
    html = render_html(Comparison(tuple(runs), KUNPENG, machines() | {runs[2].label: machines()[HYGON]}))
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#39;host&#39;)&lt;/script&gt;" in html
    for external in ('src="http', 'href="http', "<link", "@import", "url(http"):
        assert external not in html
    # heat map, throughput, precision, 4 latency, 2 stage (system on two hosts), 1 offline curve
    assert html.count("<svg") == 1 + 1 + 1 + 4 + 1 + 1
    assert "fast but fails parity: not ranked" in html
    assert "fails parity: det_hmean dropped" in html


# --- CLI -----------------------------------------------------------------------------------


def invoke(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The console-script entry point in process: exit code, stdout, stderr."""
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_comparison_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    dirs = write_three_hosts(tmp_path / "runs")
    machines_file = tmp_path / "machines.toml"
    machines_file.write_text(
        "".join(
            f'[machines."{d}"]\nprice_yuan = 100000\npower_w = {w}\npower_source = "measured"\n'
            for d, w in zip(dirs, (500, 400, 300), strict=True)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    code, stdout, stderr = invoke(
        [
            "report",
            *map(str, dirs[1:]),
            "--baseline",
            str(dirs[0]),
            "--html",
            str(out / "c.html"),
            "--csv",
            str(out / "c.csv"),
            "--machines",
            str(machines_file),
            "--name",
            f"{dirs[2]}=Hygon box",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "baseline: Kunpeng-920" in stdout
    assert f"wrote {out / 'c-samples.csv'}" in stderr
    cells = pd.read_csv(out / "c.csv", encoding="utf-8-sig")
    # the baseline, added before the listed runs, comes first
    assert list(dict.fromkeys(cells["platform"])) == [KUNPENG, XEON, "Hygon box"]
    assert "Hygon box" in (out / "c.html").read_text(encoding="utf-8")
    assert not (dirs[0] / "summary.md").exists()  # a comparison rewrites no run's summary


def test_cli_single_run_still_renders_its_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = write_three_hosts(tmp_path)
    code, stdout, stderr = invoke(["report", str(dirs[0])], capsys)
    assert code == 0, stderr
    assert (dirs[0] / "summary.md").is_file()
    assert "Side by side" not in stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--name", "nonsense"], "--name wants RUN_DIR=LABEL"),
        (["--name", "{a}="], "--name wants RUN_DIR=LABEL"),
        (["{a}"], "is given twice"),
        (["--pytest-benchmark", "{tmp}/bench"], "--pytest-benchmark exports one run"),
        (["--html", "{tmp}"], "is a directory"),
        (["--machines", "{tmp}/none.toml"], "no machines file at"),
        (["--name", "{tmp}/elsewhere=X"], "not one of the compared runs"),
    ],
)
def test_cli_mistakes_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    dirs = write_three_hosts(tmp_path / "runs")
    args = [a.format(a=dirs[0], tmp=tmp_path) for a in extra]
    code, _, stderr = invoke(["report", str(dirs[0]), str(dirs[1]), *args], capsys)
    assert code == 2
    assert stderr.startswith("portbench: error: ") and message in stderr
    assert stderr.count("\n") == 1


def test_a_run_without_cells_still_gets_its_platform_row() -> None:
    pytest.importorskip("matplotlib")
    runs = labelled()
    empty = LabelledRun("empty host", Path("empty"), dataclasses.replace(runs[2].results, cells=[]))
    html = render_html(Comparison((runs[0], empty), KUNPENG))
    assert "<td>empty host</td>" in html
    assert "<td>Hygon C86 7285 (x86_64)</td>" in html  # its fingerprint, though it ran nothing


def test_cli_missing_extra_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = write_three_hosts(tmp_path / "runs")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a)
    )
    args = [
        "report",
        *map(str, dirs),
        "--csv",
        str(tmp_path / "c.csv"),
        "--parquet",
        str(tmp_path / "c.parquet"),
    ]
    code, _, stderr = invoke(args, capsys)
    assert code == 2
    assert "--parquet needs pyarrow: pip install 'portbench[report]'" in stderr
    assert not (tmp_path / "c.csv").exists()


def test_cells_of_one_model_at_two_labels_and_runtimes_stay_separate_rows() -> None:
    """The standard suite's ERNIE b1 and b8 cells share a model; runtimes share a CPU: four rows."""
    from portbench.reports.charts import key_label
    from tests.comparison_fixtures import cell, run

    cells = []
    for runtime, label, rate in (("paddle", "s64-b1", 500.0), ("paddle", "s64-b8", 2500.0),
                                 ("openvino", "s64-b1", 2000.0), ("openvino", "s64-b8", 5000.0)):
        one = cell(workload="ernie", task="cls", model="ernie-sentiment", samples_per_s=(rate, rate, rate))
        one.cell_id = f"ernie/cls/ernie-sentiment@{label}/cpu/{runtime}/fp32/single-stream"
        one.runtime = runtime
        cells.append(one)
    results = run("r1", three_hosts()[0].platform, cells)
    frame = cells_frame([LabelledRun("host", Path("r1"), results)])
    assert sorted(zip(frame["model"], frame["runtime"], frame["throughput_samples_per_s"], strict=True)) == [
        ("ernie-sentiment@s64-b1", "openvino", 2000.0),
        ("ernie-sentiment@s64-b1", "paddle", 500.0),
        ("ernie-sentiment@s64-b8", "openvino", 5000.0),
        ("ernie-sentiment@s64-b8", "paddle", 2500.0),
    ]
    assert len(wide_frame(frame)) == 4
    labels = {key_label(row) for _, row in frame.iterrows()}
    assert "ernie/cls ernie-sentiment@s64-b8 openvino fp32 single-stream" in labels and len(labels) == 4
