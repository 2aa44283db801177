"""The CPU a run happens on: vendor, model, cores and the feature flags that decide which Paddle
kernels can run. The CPU backend reads it for its precision table; ``harness.platform_info`` records it.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


@functools.cache
def cpu_flags() -> frozenset[str]:
    return parse_cpu_flags(read_text(PROC_CPUINFO) or "")


def machine_architecture() -> str:
    return platform.machine().lower() or "unknown"


@functools.cache
def describe_cpu() -> CpuDescription:
    """This machine's CPU; never raises (an unreadable ``/proc/cpuinfo`` gives an "unknown" vendor)."""
    arch = machine_architecture()
    parsed = parse_cpuinfo(read_text(PROC_CPUINFO) or "", arch)
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
