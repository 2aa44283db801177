"""Identity of the machine a run happened on (CPU, OS, Python, Paddle).

Kept free of paddle imports at module level: the runner's parent process describes the platform
without loading Paddle.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import platform
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

PROC_CPUINFO = Path("/proc/cpuinfo")

# Feature flags that decide which Paddle kernels can run (oneDNN ISA levels, ARM SIMD, LoongArch SIMD).
FLAGS_OF_INTEREST: tuple[str, ...] = (
    "avx2",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "asimdhp",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
    "lsx",
    "lasx",
)

# x86 CPUID vendor strings (``vendor_id``) -> (vendor, portbench family).
X86_VENDORS: Mapping[str, tuple[str, str]] = {
    "GenuineIntel": ("Intel", "intel"),
    "AuthenticAMD": ("AMD", "amd"),
    "HygonGenuine": ("Hygon", "hygon"),
    # Zhaoxin's CPUID string really is "  Shanghai  "; /proc/cpuinfo prints it padded.
    "Shanghai": ("Zhaoxin", "zhaoxin"),
    "CentaurHauls": ("Zhaoxin", "zhaoxin"),
}

# ARM ``CPU implementer`` -> vendor, and (implementer, ``CPU part``) -> model, after util-linux lscpu-arm.c.
ARM_IMPLEMENTERS: Mapping[int, str] = {
    0x41: "ARM",
    0x48: "HiSilicon",
    0x4E: "NVIDIA",
    0x50: "Ampere (APM)",
    0x51: "Qualcomm",
    0x61: "Apple",
    0x70: "Phytium",
    0xC0: "Ampere",
}
ARM_PARTS: Mapping[tuple[int, int], str] = {
    (0x41, 0xD08): "Cortex-A72",
    (0x41, 0xD0C): "Neoverse-N1",
    (0x41, 0xD40): "Neoverse-V1",
    (0x41, 0xD49): "Neoverse-N2",
    (0x41, 0xD4F): "Neoverse-V2",
    (0x48, 0xD01): "Kunpeng-920",
    (0x48, 0xD02): "Kunpeng-920",
    (0x48, 0xD03): "Kunpeng-920",
    (0x48, 0xD06): "Kunpeng-950",
    (0x48, 0xD22): "Kunpeng-920",
    (0x70, 0x303): "FTC310",
    (0x70, 0x660): "FTC660",
    (0x70, 0x661): "FTC661",
    (0x70, 0x662): "FTC662",
    (0x70, 0x663): "FTC663",
    (0x70, 0x664): "FTC664",
    (0x70, 0x862): "FTC862",
    (0xC0, 0xAC3): "Ampere-1",
}
KUNPENG_PARTS = frozenset({0xD01, 0xD02, 0xD03, 0xD06, 0xD22})


@dataclass(frozen=True)
class CpuDescription:
    vendor: str  # "Intel", "HiSilicon", "Phytium", "Hygon", "Zhaoxin", "Loongson", ...
    model_name: str  # "Intel(R) Xeon(R) Platinum 8480+", "Kunpeng-920", "Loongson-3A5000"
    family: str  # portbench label: kunpeng, phytium, hygon, zhaoxin, loongson, intel, amd, other
    architecture: str  # x86_64, aarch64, loongarch64, ...
    cores_physical: int | None
    cores_logical: int | None
    flags_of_interest: tuple[str, ...]


def parse_cpu_flags(cpuinfo_text: str) -> frozenset[str]:
    """Feature flags from ``/proc/cpuinfo`` text (x86 ``flags`` or ARM ``Features``)."""
    for line in cpuinfo_text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def _cpuinfo_records(text: str) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one dict per blank-line separated block; keys lower-cased."""
    records: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if not line.strip() and current:
                records.append(current)
                current = {}
            continue
        # Keep the first occurrence: old ARM kernels print a global "Processor" line before "processor".
        current.setdefault(key.strip().lower(), value.strip())
    if current:
        records.append(current)
    return records


def _first(records: list[dict[str, str]], *keys: str) -> str | None:
    for record in records:
        for key in keys:
            if record.get(key):
                return record[key]
    return None


def _hex(value: str | None) -> int | None:
    try:
        return int(value, 0) if value else None
    except ValueError:
        return None


def _vendor_and_family(records: list[dict[str, str]], arch: str) -> tuple[str, str, str | None]:
    """(vendor, family, model name if the vendor table names it better than the kernel does)."""
    vendor_id = _first(records, "vendor_id")
    if vendor_id is not None:
        vendor, family = X86_VENDORS.get(vendor_id, (vendor_id, "other"))
        model = _first(records, "model name") or ""
        if vendor_id == "CentaurHauls" and "zhaoxin" not in model.lower():
            return "Centaur (VIA)", "other", None
        return vendor, family, None
    implementer = _hex(_first(records, "cpu implementer"))
    if implementer is not None:
        part = _hex(_first(records, "cpu part"))
        vendor = ARM_IMPLEMENTERS.get(implementer, f"ARM implementer {implementer:#x}")
        part_name = ARM_PARTS.get((implementer, part)) if part is not None else None
        if implementer == 0x48:
            family = "kunpeng" if part in KUNPENG_PARTS else "other"
        elif implementer == 0x70:
            family = "phytium"
            part_name = f"Phytium {part_name}" if part_name else None
        else:
            family = "other"
        return vendor, family, part_name
    cpu_family = _first(records, "cpu family") or ""
    model = _first(records, "model name", "cpu model") or ""
    # Excerpts (and some hypervisors) keep only the model name; Hygon and Zhaoxin still say who they are.
    if model.lower().startswith("hygon"):
        return "Hygon", "hygon", None
    if model.lower().startswith("zhaoxin"):
        return "Zhaoxin", "zhaoxin", None
    if "loongson" in cpu_family.lower() or "loongson" in model.lower() or arch.startswith("loongarch"):
        return "Loongson", "loongson", None
    return "unknown", "other", None


def parse_cpuinfo(text: str, arch: str) -> CpuDescription:
    """Describe the CPU from ``/proc/cpuinfo`` text; ``arch`` is ``platform.machine()`` (lower case)."""
    records = _cpuinfo_records(text)
    vendor, family, table_model = _vendor_and_family(records, arch)
    kernel_model = _first(records, "model name", "cpu model")
    # ARM kernels print no model name; the implementer/part table is the identity there.
    model_name = kernel_model or table_model or _first(records, "hardware") or arch
    processors = [r for r in records if r.get("processor", "").isdigit()]
    cores_logical = len(processors) or None
    core_ids = {(r["physical id"], r["core id"]) for r in processors if "physical id" in r and "core id" in r}
    cores_physical = len(core_ids) or None
    flags = parse_cpu_flags(text)
    return CpuDescription(
        vendor=vendor,
        model_name=model_name,
        family=family,
        architecture=arch,
        cores_physical=cores_physical,
        cores_logical=cores_logical,
        flags_of_interest=tuple(flag for flag in FLAGS_OF_INTEREST if flag in flags),
    )


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


@functools.cache
def cpu_flags() -> frozenset[str]:
    return parse_cpu_flags(_read_text(PROC_CPUINFO) or "")


def machine_architecture() -> str:
    return platform.machine().lower() or "unknown"


@functools.cache
def describe_cpu() -> CpuDescription:
    """This machine's CPU; never raises (an unreadable ``/proc/cpuinfo`` gives an "unknown" vendor)."""
    arch = machine_architecture()
    parsed = parse_cpuinfo(_read_text(PROC_CPUINFO) or "", arch)
    # Containers may see fewer cores than cpuinfo lists; psutil reflects what this process can count.
    return CpuDescription(
        vendor=parsed.vendor,
        model_name=parsed.model_name if parsed.model_name != arch else (platform.processor() or arch),
        family=parsed.family,
        architecture=arch,
        cores_physical=parsed.cores_physical or psutil.cpu_count(logical=False),
        cores_logical=parsed.cores_logical or psutil.cpu_count(logical=True),
        flags_of_interest=parsed.flags_of_interest,
    )


# -- operating system ------------------------------------------------------------------------------

ETC_OS_RELEASE = Path("/etc/os-release")
USR_OS_RELEASE = Path("/usr/lib/os-release")
KYLIN_PRODUCTINFO = Path("/etc/.productinfo")
MACHINE_ID = Path("/etc/machine-id")
CPU0_GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
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
PADDLE_PLUGINS = ("paddle-custom-npu", "paddle-custom-mlu", "paddle-custom-gcu")
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


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_paddle_commit(version_module_text: str) -> str | None:
    match = PADDLE_COMMIT.search(version_module_text)
    return match.group(1) if match else None


def describe_paddle() -> dict[str, Any]:
    """The installed Paddle build, read from package metadata: importing paddle here is too slow."""
    installed = {name: v for name in PADDLE_DISTRIBUTIONS if (v := _distribution_version(name))}
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
        "plugins": {name: v for name in PADDLE_PLUGINS if (v := _distribution_version(name))},
    }


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
    }
