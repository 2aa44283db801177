"""Identity of the machine a run happened on (CPU, OS, Python, Paddle).

Kept free of paddle imports at module level: the runner's parent process describes the platform
without loading Paddle.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import platform
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from portbench.backends.cpuinfo import describe_cpu
from portbench.backends.cpuinfo import read_text as _read_text
from portbench.installed import distribution_version

# -- operating system ------------------------------------------------------------------------------

ETC_OS_RELEASE = Path("/etc/os-release")
USR_OS_RELEASE = Path("/usr/lib/os-release")
KYLIN_PRODUCTINFO = Path("/etc/.productinfo")
MACHINE_ID = Path("/etc/machine-id")
CPU0_GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
# Container markers: podman writes /run/.containerenv, Docker /.dockerenv; cgroup v1 paths name the engine.
CONTAINERENV = Path("/run/.containerenv")
DOCKERENV = Path("/.dockerenv")
SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ENGINES = (("kubepods", "kubernetes"), ("libpod", "podman"), ("docker", "docker"),
                  ("crio", "cri-o"), ("containerd", "containerd"), ("lxc", "lxc"))
# Families portbench reports; matched against ID, then each ID_LIKE entry, case-insensitively.
OS_FAMILIES: Mapping[str, str] = {
    "kylin": "kylin",
    "uos": "uos",
    "deepin": "uos",
    "openeuler": "openeuler",
    "anolis": "anolis",
    "debian": "debian",
    "ubuntu": "ubuntu",
    "centos": "centos",
    "rhel": "rhel",
    "fedora": "rhel",
    "rocky": "rhel",
    "almalinux": "rhel",
    "alpine": "alpine",
}
KYLIN_SERVICE_PACK = re.compile(r"\(\s*(SP\d+)\s*\)", re.IGNORECASE)
# Accelerator builds and plugins of Paddle whose versions identify the software stack.
PADDLE_DISTRIBUTIONS = (
    "paddlepaddle",
    "paddlepaddle-gpu",
    "paddlepaddle-xpu",
    "paddlepaddle-dcu",
    "paddlepaddle-rocm",
)
# PaddleCustomDevice plugins with no portbench backend yet, still recorded when installed.
PADDLE_PLUGINS_WITHOUT_BACKEND = ("paddle-custom-gcu",)
PADDLE_COMMIT = re.compile(r"""^commit\s*=\s*['"]([0-9a-f]{7,40})['"]""", re.MULTILINE)


@dataclass(frozen=True)
class OsRelease:
    id: str
    name: str
    version_id: str
    pretty_name: str
    id_like: tuple[str, ...]
    family: str  # kylin, uos, openeuler, anolis, debian, ubuntu, centos, rhel, ... or "other"
    service_pack: str | None = None  # Kylin "SP3" from /etc/.productinfo


def _os_release_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            words = [value.strip("\"'")]
        fields[key.strip()] = " ".join(words)
    return fields


def os_family(os_id: str, id_like: tuple[str, ...]) -> str:
    for candidate in (os_id, *id_like):
        family = OS_FAMILIES.get(candidate.lower())
        if family:
            return family
    return "other"


def parse_kylin_service_pack(productinfo_text: str) -> str | None:
    """``SP3`` from ``/etc/.productinfo`` (``release V10 (SP3) /(Lance)-x86_64-Build23/20230324``)."""
    match = KYLIN_SERVICE_PACK.search(productinfo_text)
    return match.group(1).upper() if match else None


def parse_os_release(text: str, productinfo_text: str | None = None) -> OsRelease:
    fields = _os_release_fields(text)
    os_id = fields.get("ID", "linux")
    id_like = tuple(fields.get("ID_LIKE", "").split())
    family = os_family(os_id, id_like)
    service_pack = (
        parse_kylin_service_pack(productinfo_text) if family == "kylin" and productinfo_text else None
    )
    return OsRelease(
        id=os_id,
        name=fields.get("NAME", "Linux"),
        version_id=fields.get("VERSION_ID", ""),
        pretty_name=fields.get("PRETTY_NAME", fields.get("NAME", "Linux")),
        id_like=id_like,
        family=family,
        service_pack=service_pack,
    )


def read_os_release() -> OsRelease:
    text = _read_text(ETC_OS_RELEASE) or _read_text(USR_OS_RELEASE) or ""
    return parse_os_release(text, _read_text(KYLIN_PRODUCTINFO))


# -- software stack ----------------------------------------------------------------------------------


def parse_paddle_commit(version_module_text: str) -> str | None:
    match = PADDLE_COMMIT.search(version_module_text)
    return match.group(1) if match else None


def paddle_plugins() -> tuple[str, ...]:
    """The plugin distributions whose versions identify the stack: what every registered backend
    declares (``Backend.paddle_plugins``), then the plugins without a backend."""
    from portbench.backends.registry import backend_classes

    declared = (plugin for cls in backend_classes().values() for plugin in cls.paddle_plugins)
    return tuple(dict.fromkeys((*declared, *PADDLE_PLUGINS_WITHOUT_BACKEND)))


def describe_paddle() -> dict[str, Any]:
    """The installed Paddle build, read from package metadata: importing paddle here is too slow."""
    installed = {name: v for name in PADDLE_DISTRIBUTIONS if (v := distribution_version(name))}
    distribution = next(iter(installed), None)
    commit = None
    spec = importlib.util.find_spec("paddle") if distribution else None
    if spec is not None and spec.submodule_search_locations:
        version_file = Path(next(iter(spec.submodule_search_locations))) / "version" / "__init__.py"
        commit = parse_paddle_commit(_read_text(version_file) or "")
    return {
        "distribution": distribution,
        "version": installed.get(distribution) if distribution else None,
        "commit": commit,
        "builds": installed,
        "plugins": {name: v for name in paddle_plugins() if (v := distribution_version(name))},
    }


def detect_container(
    containerenv: str | None, dockerenv: bool, cgroup: str, environ: Mapping[str, str]
) -> dict[str, str] | None:
    """Which engine the process runs under, from its markers; None on a bare host.

    ``containerenv`` is the text of /run/.containerenv (None when absent), ``cgroup`` /proc/self/cgroup.
    """
    engine = evidence = None
    if containerenv is not None:
        found = re.search(r'^engine="?([^"\n]+)"?', containerenv, re.MULTILINE)
        engine, evidence = (found.group(1) if found else "podman"), str(CONTAINERENV)
    elif dockerenv:
        engine, evidence = "docker", str(DOCKERENV)
    else:
        engine = next((name for marker, name in CGROUP_ENGINES if marker in cgroup), None)
        evidence = str(SELF_CGROUP) if engine else None
    if "KUBERNETES_SERVICE_HOST" in environ:
        return {"engine": engine or "unknown", "orchestrator": "kubernetes",
                "evidence": evidence or "KUBERNETES_SERVICE_HOST"}
    return {"engine": engine, "evidence": evidence} if engine and evidence else None


def _machine_id_sha256() -> str | None:
    machine_id = (_read_text(MACHINE_ID) or "").strip()
    return hashlib.sha256(machine_id.encode()).hexdigest() if machine_id else None


def describe_platform() -> dict[str, Any]:
    """JSON-ready identity of this machine for results. No hostname: only a hash of the machine id."""
    os_release = read_os_release()
    governor = (_read_text(CPU0_GOVERNOR) or "").strip() or None
    return {
        "cpu": dataclasses.asdict(describe_cpu()),
        "memory_total_bytes": psutil.virtual_memory().total,
        "os": dataclasses.asdict(os_release),
        "kernel": platform.release(),
        "machine_id_sha256": _machine_id_sha256(),
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation()},
        "paddle": describe_paddle(),
        "cpu_frequency_governor": governor,
        "container": detect_container(
            _read_text(CONTAINERENV) if CONTAINERENV.exists() else None, DOCKERENV.exists(),
            _read_text(SELF_CGROUP) or "", os.environ,
        ),
    }
