"""``portbench container run``: the engine command for a platform's image, with its devices and mounts.

Device nodes, driver mounts and shared-memory sizes per target follow the vendors' and Paddle's
documented ``docker run`` lines (project reference notes: paddle-platforms §8.2, containers-and-fleet
§1.5, §1.7, §2.1), but without ``--privileged`` and ``--network=host``: only the named devices are
passed, the network is ``none`` (the images are baked, a run needs nothing from outside), the root
filesystem is read-only, and results land in a host directory mounted at ``/results``. The platform's
environment (FLAGS_*, CANN and DTK paths) is set in its image.
"""

from __future__ import annotations

import glob
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from portbench import __version__
from portbench.errors import PortbenchError

ENGINES = ("podman", "docker")
CONTAINER_RESULTS = "/results"
CDI_SPECS = tuple(f"{d}/nvidia.{ext}" for d in ("/etc/cdi", "/var/run/cdi") for ext in ("yaml", "json"))


@dataclass(frozen=True)
class Target:
    """One platform: which image, which devices it must see, what of the host driver it mounts."""

    name: str
    backends: tuple[str, ...]  # portbench backends the run selects
    # Globs of device nodes passed with --device; each group must match at least one node here.
    required_devices: tuple[str, ...] = ()
    optional_devices: tuple[str, ...] = ()  # passed when present
    # Host paths bind-mounted read-only at the same path; missing ones are skipped (like
    # ascend-docker-runtime's mount list), except those in required_mounts.
    mounts: tuple[str, ...] = ()
    required_mounts: tuple[str, ...] = ()
    shm_size: str = "8g"
    group_add: tuple[str, ...] = ()
    nvidia: bool = False  # --gpus all (docker) / CDI nvidia.com/gpu=all (podman)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("cpu", backends=("cpu",), shm_size="2g"),
        # [OCR-INST]: docker run --gpus all ... --shm-size=8G; the GPU wheel bundles CUDA/cuDNN, the
        # driver comes from the host through the NVIDIA container toolkit.
        Target("cuda", backends=("cuda", "tensorrt"), shm_size="8g", nvidia=True,
               required_devices=("/dev/nvidiactl", "/dev/nvidia[0-9]*")),
        # Non-privileged Ascend run (openmerlin/openmind-resource-template quick start): the davinci
        # chips, davinci_manager, devmm_svm, hisi_hdc, and the driver/DCMI/npu-smi from the host.
        Target(
            "ascend", backends=("npu",),
            required_devices=(
                "/dev/davinci[0-9]*", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc",
            ),
            mounts=("/usr/local/dcmi", "/usr/local/bin/npu-smi", "/usr/local/Ascend/driver/lib64",
                    "/usr/local/Ascend/driver/version.info", "/etc/ascend_install.info"),
            required_mounts=("/usr/local/Ascend/driver/lib64",),
            shm_size="128g",
        ),
        # Cambricon's non-privileged pattern (--device cambricon_dev*, cambricon_ctl [, cambricon_ipcm*])
        # plus Paddle's cnmon mount [PD-MLU].
        Target(
            "mlu", backends=("mlu",),
            required_devices=("/dev/cambricon_dev[0-9]*", "/dev/cambricon_ctl"),
            optional_devices=("/dev/cambricon_ipcm[0-9]*",),
            mounts=("/usr/bin/cnmon",),
            shm_size="128g",
        ),
        # Kunlunxin: /dev/xpu* (xpu-device-plugin README); P800 adds the xpu-smi mount [PX-XPU].
        Target(
            "xpu", backends=("xpu",),
            required_devices=("/dev/xpu[0-9]*",),
            optional_devices=("/dev/xpuctrl",),
            mounts=("/usr/local/bin/xpu-smi",),
            shm_size="128g",
        ),
        # Hygon DCU ([PID] dcu_hygon_cn.md): --device=/dev/kfd --device=/dev/dri --group-add video;
        # the HAL from the host (-v /opt/hyhal:/opt/hyhal:ro, third-party READMEs).
        Target(
            "dcu", backends=("dcu",),
            required_devices=("/dev/kfd", "/dev/dri"),
            mounts=("/opt/hyhal",),
            group_add=("video",),
            shm_size="128g",
        ),
    )
}


def default_image(target: str, arch: str | None = None) -> str:
    """The tag containers/build.sh gives the image of ``target`` on this architecture."""
    return f"localhost/portbench:{__version__}-{target}-{arch or platform.machine()}"


def find_engine(preferred: str | None, which: Callable[[str], str | None] = shutil.which) -> str:
    candidates = (preferred,) if preferred else ENGINES
    for engine in candidates:
        if engine is not None and which(engine):
            return engine
    wanted = preferred or " or ".join(ENGINES)
    raise PortbenchError(f"no container engine: {wanted} is not installed on this host")


def resolve_devices(target: Target, exists: Callable[[str], list[str]]) -> list[str]:
    """The device nodes for ``target`` on this host; one-line error when a required one is missing."""
    devices: list[str] = []
    missing = []
    for pattern in target.required_devices:
        found = exists(pattern)
        if not found:
            missing.append(pattern)
        devices.extend(found)
    if missing:
        raise PortbenchError(
            f"target {target.name}: {', '.join(missing)} not found on this host "
            f"(no {target.name} device or driver here)"
        )
    for pattern in target.optional_devices:
        devices.extend(exists(pattern))
    return devices


def _glob(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern))


def compose(
    target_name: str,
    engine: str,
    image: str,
    results_dir: Path,
    run_name: str,
    run_args: Sequence[str] = (),
    shm_size: str | None = None,
    exists: Callable[[str], list[str]] = _glob,
    path_exists: Callable[[str], bool] = os.path.exists,
) -> list[str]:
    """The full engine command line; raises PortbenchError when the host lacks the target's devices."""
    if target_name not in TARGETS:
        raise PortbenchError(f"unknown target {target_name!r}; choose from {', '.join(TARGETS)}")
    if engine not in ENGINES:
        raise PortbenchError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    target = TARGETS[target_name]
    devices = resolve_devices(target, exists)
    for path in target.required_mounts:
        if not path_exists(path):
            raise PortbenchError(f"target {target.name}: {path} not found on this host (no driver?)")
    command = [engine, "run", "--rm", "--network=none", "--read-only", "--tmpfs", "/tmp",
               f"--shm-size={shm_size or target.shm_size}"]
    if target.nvidia:
        if engine == "docker":
            command += ["--gpus", "all"]
        else:
            if not any(path_exists(spec) for spec in CDI_SPECS):
                raise PortbenchError(
                    "target cuda: podman needs the NVIDIA CDI spec (none in /etc/cdi or /var/run/cdi); "
                    "create it with: nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml"
                )
            command += ["--device", "nvidia.com/gpu=all"]
    for device in devices:
        command += ["--device", device]
    for group in target.group_add:
        command += ["--group-add", group]
    for path in target.mounts:
        if path_exists(path):
            command += ["-v", f"{path}:{path}:ro"]
    command += ["-v", f"{results_dir.resolve()}:{CONTAINER_RESULTS}:rw", image]
    run = ["portbench", "run", "--out", f"{CONTAINER_RESULTS}/{run_name}"]
    if not any(a == "--backend" or a.startswith("--backend=") for a in run_args):
        for backend in target.backends:
            run += ["--backend", backend]
    return command + run + list(run_args)


def default_run_name(target: str) -> str:
    return f"{target}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


@click.group("container")
def container() -> None:
    """Run portbench's per-platform images (containers/) with the platform's devices."""


@container.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--target", type=click.Choice(list(TARGETS)), required=True, help="Platform image to run.")
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="Container engine (default: podman if installed, else docker).")
@click.option("--image", default=None, help="Image (default: the tag containers/build.sh gives it).")
@click.option("--results", "results_dir", type=click.Path(path_type=Path), default=Path("portbench-results"),
              show_default=True, help="Host directory mounted at /results.")
@click.option("--name", "run_name", default=None, help="Run dir under --results (default: TARGET-TIME).")
@click.option("--shm-size", default=None, help="Override the target's --shm-size.")
@click.option("--dry-run", is_flag=True, help="Print the engine command instead of running it.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def container_run(
    target: str, engine: str | None, image: str | None, results_dir: Path, run_name: str | None,
    shm_size: str | None, dry_run: bool, run_args: tuple[str, ...],
) -> None:
    """Run TARGET's image: `portbench run` inside, results in --results on the host.

    Arguments after `--` go to `portbench run` inside (e.g. -- --suite smoke).
    """
    chosen = find_engine(engine)
    name = run_name or default_run_name(target)
    command = compose(target, chosen, image or default_image(target), results_dir, name, run_args, shm_size)
    if dry_run:
        click.echo(subprocess.list2cmdline(command))
        return
    # The image runs as UID 1000, which rarely owns the caller's directory: the run directory is made
    # here, writable for it; nothing else on the host is touched.
    (results_dir / name).mkdir(parents=True, exist_ok=True)
    (results_dir / name).chmod(0o777)
    click.echo(f"portbench container: {subprocess.list2cmdline(command)}", err=True)
    status = subprocess.call(command)
    click.echo(f"portbench container: results in {results_dir / name}", err=True)
    if status:
        raise SystemExit(status)
