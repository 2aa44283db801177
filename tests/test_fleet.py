"""portbench fleet submit / status / upload / collect, against servers the tests start on 127.0.0.1.

Kubernetes: a tiny http.server that answers the batch/v1 Job calls the official client sends (GET,
POST, DELETE), with a kubeconfig pointing at it; the request bodies must equal the rendered manifests.
S3: moto's server (in the ``test`` extra). Run directories are hand-built RunResults with known numbers.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from portbench.errors import PortbenchError
from portbench.harness.results import CellResult, LatencySummary, RunResults, save_results

pytestmark = pytest.mark.fast

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "containers" / "k8s" / "targets.example.toml"
PORTBENCH = [str(Path(sys.executable).parent / "portbench")]
NAMES = ("x86-cpu", "kunpeng-cpu", "nvidia-gpu", "ascend-910b")
JOBS = "/apis/batch/v1/namespaces/portbench/jobs"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PORTBENCH, *args], capture_output=True, text=True, timeout=120, env=env)


def one_line_error(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- a fake Kubernetes API server ------------------------------------------------------------------


class FakeKube:
    """batch/v1 Jobs in one dict; every request recorded as (method, path, body)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest's output clean
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length)) if length else None

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "message": message, "reason": reason, "code": code})

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, None))
                name = self.path.removeprefix(JOBS + "/")
                if self.path.startswith(JOBS + "/") and name in fake.jobs:
                    self._send(200, fake.jobs[name])
                else:
                    self._status(404, "NotFound", f'jobs.batch "{name}" not found')

            def do_POST(self) -> None:
                body = self._body()
                fake.requests.append(("POST", self.path, body))
                name = body["metadata"]["name"]
                if self.path != JOBS:
                    self._status(404, "NotFound", "no such path")
                elif name in fake.jobs:
                    self._status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
                else:
                    fake.jobs[name] = {**body, "status": {}}
                    self._send(201, fake.jobs[name])

            def do_DELETE(self) -> None:
                fake.requests.append(("DELETE", self.path, self._body()))
                name = self.path.split("?")[0].removeprefix(JOBS + "/")
                job = fake.jobs.pop(name, None)
                if job is None:
                    self._status(404, "NotFound", f'jobs.batch "{name}" not found')
                else:
                    self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({  # JSON is YAML, which load_kube_config reads
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}}],
        }))
        return path

    def set_status(self, name: str, status: dict[str, Any]) -> None:
        self.jobs[f"portbench-{name}"]["status"] = status


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKube, Path]]:
    pytest.importorskip("kubernetes")
    fake = FakeKube()
    yield fake, fake.kubeconfig(tmp_path / "kubeconfig")
    fake.server.shutdown()


def rendered(tmp_path: Path, fleet_file: Path = EXAMPLE) -> dict[str, dict[str, Any]]:
    done = run_cli("fleet", "render", str(fleet_file), "--out", str(tmp_path / "jobs"))
    assert done.returncode == 0, done.stderr
    files = (tmp_path / "jobs").glob("*.json")
    return {p.stem.removeprefix("job-"): json.loads(p.read_text()) for p in files}


def complete(reason: str = "CompletionsReached") -> dict[str, Any]:
    return {"succeeded": 1, "conditions": [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": reason},
        {"type": "Complete", "status": "True", "reason": reason}]}


def test_submit_posts_exactly_the_rendered_manifests(tmp_path: Path, kube: tuple[FakeKube, Path]) -> None:
    fake, config = kube
    done = run_cli("fleet", "submit", str(EXAMPLE), "--kubeconfig", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"created job portbench/portbench-{n}" for n in NAMES]
    posts = [(path, body) for method, path, body in fake.requests if method == "POST"]
    expected = rendered(tmp_path)
    assert [path for path, _ in posts] == [JOBS] * 4
    assert {body["metadata"]["name"]: body for _, body in posts} == {
        f"portbench-{name}": job for name, job in expected.items()}


def test_existing_jobs_are_kept_without_replace_and_a_running_one_always(
    tmp_path: Path, kube: tuple[FakeKube, Path]
) -> None:
    fake, config = kube
    assert run_cli("fleet", "submit", str(EXAMPLE), "--kubeconfig", str(config)).returncode == 0
    for name in NAMES:
        fake.set_status(name, complete())
    fake.requests.clear()
    done = run_cli("fleet", "submit", str(EXAMPLE), "--kubeconfig", str(config))
    one_line_error(done, "portbench/portbench-x86-cpu exists (succeeded); pass --replace")
    assert [m for m, _, _ in fake.requests] == ["GET"]  # checked first: nothing created or deleted

    fake.set_status("nvidia-gpu", {"active": 1, "ready": 1})
    fake.requests.clear()
    done = run_cli("fleet", "submit", str(EXAMPLE), "--kubeconfig", str(config), "--replace")
    one_line_error(done, "portbench/portbench-nvidia-gpu exists and is running; not replaced")
    assert {m for m, _, _ in fake.requests} == {"GET"}


def test_replace_deletes_and_recreates_finished_jobs(tmp_path: Path, kube: tuple[FakeKube, Path]) -> None:
    fake, config = kube
    assert run_cli("fleet", "submit", str(EXAMPLE), "--kubeconfig", str(config)).returncode == 0
    fake.set_status("x86-cpu", complete())
    fake.set_status("kunpeng-cpu", {"failed": 2, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})
    del fake.jobs["portbench-nvidia-gpu"], fake.jobs["portbench-ascend-910b"]
    fake.requests.clear()
    done = run_cli("fleet", "submit", str(EXAMPLE), "--kubeconfig", str(config), "--replace")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "replaced job portbench/portbench-x86-cpu", "replaced job portbench/portbench-kunpeng-cpu",
        "created job portbench/portbench-nvidia-gpu", "created job portbench/portbench-ascend-910b"]
    deletes = [(path, body) for method, path, body in fake.requests if method == "DELETE"]
    assert [path.split("?")[0] for path, _ in deletes] == [f"{JOBS}/portbench-x86-cpu",
                                                           f"{JOBS}/portbench-kunpeng-cpu"]
    # Background propagation: the pods go too, the Job object does not wait for them.
    # (the client sends it as a query parameter)
    assert all("propagationPolicy=Background" in path for path, _ in deletes)
    assert all(job["status"] == {} for job in fake.jobs.values())  # all four fresh


def test_status_shows_each_jobs_state_and_reason(tmp_path: Path, kube: tuple[FakeKube, Path]) -> None:
    fake, config = kube
    assert run_cli("fleet", "submit", str(EXAMPLE), "--kubeconfig", str(config)).returncode == 0
    fake.set_status("x86-cpu", complete())
    fake.set_status("kunpeng-cpu", {"active": 1, "ready": 1})
    fake.set_status("nvidia-gpu", {"failed": 1, "conditions": [
        {"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy"},
        {"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
         "message": "Container portbench for pod portbench/x exited with 2"}]})
    del fake.jobs["portbench-ascend-910b"]
    done = run_cli("fleet", "status", str(EXAMPLE), "--kubeconfig", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "x86-cpu      succeeded  CompletionsReached",
        "kunpeng-cpu  running",
        "nvidia-gpu   failed  PodFailurePolicy",
        "ascend-910b  not submitted",
    ]
    fake.set_status("kunpeng-cpu", {"active": 1, "ready": 0})
    done = run_cli("fleet", "status", str(EXAMPLE), "--kubeconfig", str(config))
    assert done.stdout.splitlines()[1].split()[:2] == ["kunpeng-cpu", "pending"]
    assert {m for m, _, _ in fake.requests if m != "POST"} == {"GET"}


def test_submit_dry_run_contacts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"  # does not exist: a dry run must not load it
    done = run_cli("fleet", "submit", str(EXAMPLE), "--dry-run", "--kubeconfig", str(config))
    assert done.returncode == 0, done.stderr
    heads = [line for line in done.stdout.splitlines() if line.startswith("would create")]
    assert heads[0] == ('would create job portbench/portbench-x86-cpu: image registry.example.com/'
                        'portbench:0.1.0-cpu-x86_64, limits {"cpu": "16", "memory": "32Gi"}')
    assert heads[2].endswith('limits {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}')
    assert len(heads) == 4


def test_unreachable_cluster_and_missing_config_are_one_line(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes")
    fake = FakeKube()
    config = fake.kubeconfig(tmp_path / "kubeconfig")
    fake.server.shutdown()
    fake.server.server_close()  # the port now refuses connections
    one_line_error(run_cli("fleet", "status", str(EXAMPLE), "--kubeconfig", str(config)),
                   "cannot reach the API server")
    one_line_error(run_cli("fleet", "submit", str(EXAMPLE), "--kubeconfig", str(tmp_path / "none")),
                   "cannot load the Kubernetes configuration")


def test_missing_clients_name_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from portbench.harness import fleet_kube, fleet_store

    monkeypatch.setitem(sys.modules, "kubernetes", None)  # import kubernetes -> ImportError
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(PortbenchError, match=r"pip install 'portbench\[fleet\]'"):
        fleet_kube.status([], None, None)
    run_dir = write_run(tmp_path / "run", "x86-cpu", 12.5)
    with pytest.raises(PortbenchError, match=r"pip install 'portbench\[s3\]'"):
        fleet_store.upload(run_dir, "s3://bucket/p", None)


# -- results to a bucket: render --------------------------------------------------------------------

S3_FLEET = """
[defaults]
results = "s3://bench-results/fleet-1"
s3_endpoint = "{endpoint}"
s3_secret = "bench-s3"

[[target]]
name = "x86-cpu"
platform = "cpu"
image = "localhost/portbench:0.1.0-cpu-x86_64"
cpu = 2
memory = "4Gi"

[[target]]
name = "kunpeng-cpu"
platform = "cpu"
image = "localhost/portbench:0.1.0-cpu-aarch64"
cpu = 2
memory = "4Gi"

[[target]]
name = "nvidia-gpu"
platform = "cuda"
image = "localhost/portbench:0.1.0-cuda-x86_64"
"""


def s3_fleet(tmp_path: Path, endpoint: str = "http://minio.example:9000") -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(S3_FLEET.format(endpoint=endpoint))
    return path


def test_s3_jobs_upload_after_the_run_with_credentials_from_the_secret(tmp_path: Path) -> None:
    jobs = rendered(tmp_path, s3_fleet(tmp_path))
    pod = jobs["x86-cpu"]["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    assert box["command"] == ["sh", "-c",
                              "portbench run --out /results/x86-cpu --threads 2 --backend cpu; rc=$?; "
                              "portbench fleet upload /results/x86-cpu s3://bench-results/fleet-1/x86-cpu "
                              "--endpoint-url http://minio.example:9000 || exit 3; exit $rc"]
    assert box["env"] == [
        {"name": "AWS_ACCESS_KEY_ID",
         "valueFrom": {"secretKeyRef": {"name": "bench-s3", "key": "AWS_ACCESS_KEY_ID"}}},
        {"name": "AWS_SECRET_ACCESS_KEY",
         "valueFrom": {"secretKeyRef": {"name": "bench-s3", "key": "AWS_SECRET_ACCESS_KEY"}}},
        {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"},
    ]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["results"] == {"name": "results", "emptyDir": {}}  # no claim needed
    assert "persistentVolumeClaim" not in json.dumps(jobs)
    validate = pytest.importorskip("kubernetes_validate")
    for job in jobs.values():
        validate.validate(job, "1.33.0", strict=True)


@pytest.mark.parametrize(("line", "message"), [
    ('results = "s3:/bench"', "results must be 'pvc' or 's3://bucket[/prefix]'"),
    ('results = "s3://B"', "results must be 'pvc'"),
    ('results = "s3://bench"\ns3_endpoint = "minio:9000"', "s3_endpoint must be an http:// or https:// URL"),
])
def test_bad_bucket_settings_are_one_line_exit_2(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(f'[defaults]\n{line}\n[[target]]\nname = "a"\nplatform = "cpu"\nimage = "i:1"\n')
    one_line_error(run_cli("fleet", "render", str(path), "--out", str(tmp_path / "out")), message)


# -- upload / collect -------------------------------------------------------------------------------


def write_run(run_dir: Path, target: str, p50: float) -> Path:
    """A valid results.json with one passed cell, plus a log in a subdirectory."""
    results = RunResults(
        run_id=f"20261201-120000-{target}", started_at="2026-12-01T12:00:00+00:00",
        finished_at="2026-12-01T12:01:00+00:00", portbench_version="0.1.0", suite="smoke",
        platform={
            "cpu": {"vendor": "GenuineIntel", "model_name": "Xeon", "architecture": "x86_64"},
            "memory_total_bytes": 16 * 2**30, "kernel": "6.1.0-28-amd64",
            "os": {"id": "debian", "name": "Debian GNU/Linux", "version_id": "12"},
            "python": {"version": "3.11.7"}, "paddle": {"version": "3.2.2", "commit": "a1b2c3d4"},
        },
        cells=[CellResult(
            cell_id="ocr/det/cpu/fp32", workload="ocr", task="det", model="ppocrv4-mobile-det",
            backend="cpu", precision="fp32", scenario="single-stream", dataset="synth-smoke",
            status="passed", device="cpu", metrics={"det_hmean": 0.875},
            latency_ms=LatencySummary(n=8, mean=p50, min=p50 - 1, max=p50 + 2, stdev=0.5, p50=p50,
                                      p90=None, p99=None),
        )],
        tasks={"ocr/det": {"metrics": [{"name": "det_hmean", "higher_is_better": True}],
                           "headline": ["det_hmean"], "shown": ["det_hmean"]}},
    )
    save_results(results, run_dir)
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "cell-ocr-det.log").write_bytes(bytes(range(256)) * 3)  # not text: bytes kept
    return run_dir


def digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_collect_from_a_shared_directory(tmp_path: Path) -> None:
    shared = tmp_path / "claim"  # where the PVC is mounted
    write_run(shared / "x86-cpu", "x86-cpu", 12.5)
    write_run(shared / "nvidia-gpu", "nvidia-gpu", 3.25)
    (shared / "kunpeng-cpu").mkdir()  # started, not finished: no results.json yet
    into = tmp_path / "collected"
    done = run_cli("fleet", "collect", str(EXAMPLE), "--from-dir", str(shared), "--into", str(into))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"x86-cpu: {into / 'x86-cpu'} (2 files)" in lines
    assert f"nvidia-gpu: {into / 'nvidia-gpu'} (2 files)" in lines
    assert f"kunpeng-cpu: no results yet (no results.json in {shared / 'kunpeng-cpu'})" in lines
    assert any(line.startswith("ascend-910b: no results yet") for line in lines)
    assert "not finished: kunpeng-cpu, ascend-910b" in done.stderr
    for name in ("x86-cpu", "nvidia-gpu"):
        got = digests(into / name)
        assert got.pop("summary.md")  # the report of the collected run, rendered here
        assert got == digests(shared / name)
    # The summary is the run's own: its p50 12.50 ms (two decimals), not the other target's 3.25.
    summary = (into / "x86-cpu" / "summary.md").read_text()
    assert "12.50" in summary and "3.25" not in summary


def test_collect_rejects_a_run_that_does_not_validate(tmp_path: Path) -> None:
    shared = tmp_path / "claim"
    run_dir = write_run(shared / "x86-cpu", "x86-cpu", 12.5)
    data = json.loads((run_dir / "results.json").read_text())
    del data["cells"][0]["status"]
    (run_dir / "results.json").write_text(json.dumps(data))
    done = run_cli("fleet", "collect", str(EXAMPLE), "--from-dir", str(shared), "--into", str(tmp_path / "c"))
    one_line_error(done, "results do not match schema")


def test_collect_from_the_claim_needs_from_dir(tmp_path: Path) -> None:
    one_line_error(run_cli("fleet", "collect", str(EXAMPLE), "--into", str(tmp_path / "c")),
                   "results are on the claim; pass --from-dir")
    one_line_error(run_cli("fleet", "collect", str(EXAMPLE), "--into", str(tmp_path / "c"),
                           "--from-dir", str(tmp_path / "nowhere")), "is not a directory")


def test_upload_needs_a_run_directory_and_an_s3_url(tmp_path: Path) -> None:
    one_line_error(run_cli("fleet", "upload", str(tmp_path), "s3://bucket/p"), "is not a run directory")
    run_dir = write_run(tmp_path / "run", "x86-cpu", 12.5)
    one_line_error(run_cli("fleet", "upload", str(run_dir), "bucket/p"), "not an s3://bucket[/prefix] URL")


@pytest.fixture(scope="module")
def s3_server() -> Iterator[str]:
    pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # moto accepts any key; these values are what the Job's Secret would provide.
    env = {"AWS_ACCESS_KEY_ID": "portbench-test", "AWS_SECRET_ACCESS_KEY": "portbench-test-secret",
           "AWS_DEFAULT_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import os

    return dict(os.environ)


def test_upload_then_collect_from_an_s3_server_is_byte_identical(
    tmp_path: Path, s3_server: str, s3_env: dict[str, str]
) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server)
    s3.create_bucket(Bucket="bench-results")
    fleet_file = s3_fleet(tmp_path, s3_server)
    sources = {"x86-cpu": write_run(tmp_path / "pod-a" / "x86-cpu", "x86-cpu", 12.5),
               "kunpeng-cpu": write_run(tmp_path / "pod-b" / "kunpeng-cpu", "kunpeng-cpu", 20.0)}
    for name, run_dir in sources.items():
        # What the Job's shell runs after `portbench run`.
        done = run_cli("fleet", "upload", str(run_dir), f"s3://bench-results/fleet-1/{name}",
                       "--endpoint-url", s3_server, env=s3_env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"uploaded 2 files to s3://bench-results/fleet-1/{name}/"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="bench-results")["Contents"])
    assert keys == ["fleet-1/kunpeng-cpu/logs/cell-ocr-det.log", "fleet-1/kunpeng-cpu/results.json",
                    "fleet-1/x86-cpu/logs/cell-ocr-det.log", "fleet-1/x86-cpu/results.json"]

    into = tmp_path / "collected"
    done = run_cli("fleet", "collect", str(fleet_file), "--into", str(into), "--no-report", env=s3_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"x86-cpu: {into / 'x86-cpu'} (2 files)",
        f"kunpeng-cpu: {into / 'kunpeng-cpu'} (2 files)",
        "nvidia-gpu: no results yet (no s3://bench-results/fleet-1/nvidia-gpu/results.json)",
    ]
    for name, run_dir in sources.items():
        assert digests(into / name) == digests(run_dir)
    assert sorted(p.name for p in into.iterdir()) == ["kunpeng-cpu", "x86-cpu"]


def test_collect_from_a_missing_bucket_is_one_line(
    tmp_path: Path, s3_server: str, s3_env: dict[str, str]
) -> None:
    fleet_file = tmp_path / "targets.toml"
    fleet_file.write_text(S3_FLEET.format(endpoint=s3_server).replace("bench-results", "no-such-bucket"))
    done = run_cli("fleet", "collect", str(fleet_file), "--into", str(tmp_path / "c"), env=s3_env)
    one_line_error(done, "listing s3://no-such-bucket/fleet-1/x86-cpu/: NoSuchBucket")
