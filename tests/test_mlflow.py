"""MLflow export against a real local SQLite tracking store (skipped without the mlflow extra; run
with ``tox -e mlflow``), and its one-line errors, which need no MLflow at all."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from test_prometheus import ODD_MODEL, PLATFORM_NAME, det_cell, ernie_cell, make_results, skipped_cell

from portbench.errors import PortbenchError
from portbench.harness import reporting
from portbench.harness.cli import main
from portbench.harness.results import CellResult, save_results

needs_mlflow = pytest.mark.skipif(
    importlib.util.find_spec("mlflow") is None,
    reason="mlflow is not installed: pip install -e '.[mlflow]' (tox -e mlflow)",
)
OUTPUTS = "outputs/ocr__det.json"
OUTPUTS_TEXT = '{"samples": [{"id": "page-1", "boxes": []}]}'


@pytest.mark.fast
def test_without_the_extra_the_export_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an environment without mlflow looks like
    with pytest.raises(PortbenchError, match=r"pip install 'portbench\[mlflow\]'"):
        reporting.create_report("mlflow", uri="sqlite:///mlflow.db")


@pytest.mark.fast
@pytest.mark.parametrize("uri", ["mlruns", "./mlruns", "/tmp/mlruns", "", "C:/mlruns"])
def test_a_bare_directory_is_not_a_tracking_uri(uri: str) -> None:
    with pytest.raises(PortbenchError, match=re.escape("give a tracking URI such as sqlite:///mlflow.db")):
        reporting.create_report("mlflow", uri=uri)


@pytest.mark.fast
def test_cli_refuses_a_bad_uri_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_results(make_results(), tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "--mlflow", "mlruns"])
    assert exit_info.value.code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("portbench: error: --mlflow 'mlruns'")


def run_dir_with_outputs(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    det = det_cell()
    det.outputs_file = OUTPUTS
    det.manifest = {"cpu_threads": 2, "paddle": "3.2.2"}
    det.started_at = "2026-12-01T19:00:05+00:00"
    failed = CellResult(
        cell_id="ocr/rec/x/cpu/paddle/fp32/single-stream", workload="ocr", task="rec", model="x",
        backend="cpu",
        precision="fp32", scenario="single-stream", dataset="d", status="failed", reason="worker killed",
    )
    save_results(make_results(det, ernie_cell(), skipped_cell(), failed), run_dir)
    (run_dir / "outputs").mkdir()
    (run_dir / OUTPUTS).write_text(OUTPUTS_TEXT)
    return run_dir


@needs_mlflow
def test_cells_are_runs_in_a_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory (MLflow's ./mlruns)
    run_dir = run_dir_with_outputs(tmp_path)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    exit_code = 0
    try:
        main(["report", str(run_dir), "--mlflow", uri, "--mlflow-experiment", "nightly"])
    except SystemExit as exit_info:
        exit_code = int(exit_info.code or 0)
    assert exit_code == 0

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("nightly")
    assert experiment is not None
    assert experiment.artifact_location == (tmp_path / "store" / "mlartifacts").as_uri()
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    parent = runs.pop("20261201T190000Z-aaaaaa")
    assert set(runs) == {det_cell().cell_id, ernie_cell().cell_id, skipped_cell().cell_id,
                         "ocr/rec/x/cpu/paddle/fp32/single-stream"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in runs.values())
    assert parent.info.status == "FAILED"  # one cell failed

    det = runs[det_cell().cell_id]
    assert det.data.params["model"] == "ppocrv4-mobile-det"
    assert det.data.params["platform"] == PLATFORM_NAME
    assert det.data.params["precision"] == "int8"
    metrics = det.data.metrics
    assert metrics["latency_p50_seconds"] == pytest.approx(0.0125)
    assert metrics["latency_p90_seconds"] == pytest.approx(0.014)
    assert "latency_p99_seconds" not in metrics  # withheld by the run
    assert metrics["throughput_samples_per_second"] == pytest.approx(80.0)
    assert metrics["parity_pass"] == 1.0 and metrics["speedup_vs_fp32"] == pytest.approx(2.0)
    assert metrics["task.det_hmean"] == pytest.approx(0.9)
    assert det.info.start_time == 1796151605000  # 2026-12-01T19:00:05Z in ms, worked out by hand
    assert det.info.end_time == 1796151605000 + 10_000  # plus its 10 s duration

    local = Path(client.download_artifacts(det.info.run_id, "outputs/ocr__det.json", str(tmp_path / "dl")))
    assert local.read_text() == OUTPUTS_TEXT
    manifest = Path(client.download_artifacts(det.info.run_id, "manifest.json", str(tmp_path / "dl")))
    assert json.loads(manifest.read_text()) == {"cpu_threads": 2, "paddle": "3.2.2"}

    ernie = runs[ernie_cell().cell_id]
    assert ernie.data.params["model"] == ODD_MODEL[:6000]
    assert ernie.data.metrics["parity_pass"] == 0.0
    history = client.get_metric_history(ernie.info.run_id, "offline_samples_per_second")
    assert sorted((m.step, m.value) for m in history) == [(1, 100.0), (8, 400.0)]

    skipped = runs[skipped_cell().cell_id]
    assert skipped.data.params["status"] == "skipped" and not skipped.data.metrics
    assert runs["ocr/rec/x/cpu/paddle/fp32/single-stream"].info.status == "FAILED"
    assert runs["ocr/rec/x/cpu/paddle/fp32/single-stream"].data.tags["portbench.reason"] == "worker killed"
    assert not (tmp_path / "mlruns").exists()


@needs_mlflow
def test_an_unusable_store_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_results(make_results(), tmp_path)
    # The database's folder would have to be results.json, a file.
    uri = f"sqlite:///{tmp_path / 'results.json' / 'mlflow.db'}"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "--mlflow", uri])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("portbench: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"portbench: error: MLflow at {uri}:"), errors
