"""CPU / OS identification against recorded real files (tests/fixtures/platform, see its README)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from portbench.backends.cpuinfo import parse_cpuinfo
from portbench.harness import platform_info
from portbench.harness.platform_info import (
    parse_kylin_service_pack,
    parse_os_release,
    parse_paddle_commit,
)

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

FIXTURES = Path(__file__).parent / "fixtures" / "platform"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize(
    ("name", "arch", "vendor", "family", "model"),
    [
        ("cpuinfo_kunpeng920.txt", "aarch64", "HiSilicon", "kunpeng", "Kunpeng-920"),
        ("cpuinfo_phytium_ft2000.txt", "aarch64", "Phytium", "phytium", "Phytium FTC662"),
        ("cpuinfo_phytium_ft1500a.txt", "aarch64", "Phytium", "phytium", "phytium FT1500a"),
        (
            "cpuinfo_hygon_c86_7151_excerpt.txt",
            "x86_64",
            "Hygon",
            "hygon",
            "Hygon C86 7151 16-core Processor",
        ),
        ("cpuinfo_zhaoxin_kx_u6780a.txt", "x86_64", "Zhaoxin", "zhaoxin", "ZHAOXIN KaiXian KX-U6780A@2.7GHz"),
        ("cpuinfo_loongson_3a5000.txt", "loongarch64", "Loongson", "loongson", "Loongson-3A5000"),
        (
            "cpuinfo_loongson_3a5000_hv_lowercase.txt",
            "loongarch64",
            "Loongson",
            "loongson",
            "Loongson-3A5000-HV",
        ),
        ("cpuinfo_this_machine_xeon.txt", "x86_64", "Intel", "intel", "Intel(R) Xeon(R) Processor"),
    ],
)
def test_recorded_cpus_are_identified(name: str, arch: str, vendor: str, family: str, model: str) -> None:
    cpu = parse_cpuinfo(fixture(name), arch)
    assert (cpu.vendor, cpu.family, cpu.model_name, cpu.architecture) == (vendor, family, model, arch)


def test_x86_vendor_strings_map_to_families() -> None:
    for vendor_id, family in [
        ("HygonGenuine", "hygon"),
        ("  Shanghai  ", "zhaoxin"),
        ("AuthenticAMD", "amd"),
    ]:
        text = f"processor\t: 0\nvendor_id\t: {vendor_id}\nmodel name\t: some cpu\n"
        assert parse_cpuinfo(text, "x86_64").family == family


def test_arm_without_known_implementer_is_other() -> None:
    text = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"
    cpu = parse_cpuinfo(text, "aarch64")
    assert (cpu.vendor, cpu.family, cpu.model_name) == ("ARM", "other", "Neoverse-N1")


def test_core_counts_and_flags() -> None:
    zhaoxin = parse_cpuinfo(fixture("cpuinfo_zhaoxin_kx_u6780a.txt"), "x86_64")
    assert (zhaoxin.cores_logical, zhaoxin.cores_physical) == (1, 1)  # one processor block recorded
    loongson = parse_cpuinfo(fixture("cpuinfo_loongson_3a5000_hv_lowercase.txt"), "loongarch64")
    assert loongson.cores_logical == 2
    assert loongson.flags_of_interest == ("lsx", "lasx")
    kunpeng = parse_cpuinfo(fixture("cpuinfo_kunpeng920.txt"), "aarch64")
    assert kunpeng.flags_of_interest == ("asimd", "asimdhp", "asimddp")
    this = parse_cpuinfo(fixture("cpuinfo_this_machine_xeon.txt"), "x86_64")
    assert {"avx512f", "avx512_bf16", "avx512_vnni"} <= set(this.flags_of_interest)
    assert "asimd" not in this.flags_of_interest


def test_empty_cpuinfo_is_unknown_not_an_error() -> None:
    cpu = parse_cpuinfo("", "riscv64")
    assert (cpu.vendor, cpu.family, cpu.model_name, cpu.cores_logical) == (
        "unknown",
        "other",
        "riscv64",
        None,
    )


@pytest.mark.parametrize(
    ("name", "os_id", "family", "version_id"),
    [
        ("os-release_kylin_v10_lance.txt", "kylin", "kylin", "V10"),
        ("os-release_kylin_v10_tercel.txt", "kylin", "kylin", "V10"),
        ("os-release_uos_server_20.txt", "uos", "uos", "20"),
        ("os-release_uos_desktop_20_pro.txt", "uos", "uos", "20"),
        ("os-release_openeuler_22.03_sp3.txt", "openEuler", "openeuler", "22.03"),
        ("os-release_anolis_8.6.txt", "anolis", "anolis", "8.6"),
        ("os-release_this_machine_debian12.txt", "debian", "debian", "12"),
    ],
)
def test_recorded_os_releases(name: str, os_id: str, family: str, version_id: str) -> None:
    release = parse_os_release(fixture(name))
    assert (release.id, release.family, release.version_id) == (os_id, family, version_id)


def test_quoted_values_are_unquoted() -> None:
    release = parse_os_release(fixture("os-release_uos_desktop_20_pro.txt"))
    assert release.pretty_name == "UnionTech OS Desktop 20 Pro"
    assert release.name == "uos"


def test_family_falls_back_to_id_like() -> None:
    release = parse_os_release('ID="someos"\nID_LIKE="rhel fedora"\n')
    assert release.id_like == ("rhel", "fedora")
    assert release.family == "rhel"
    assert parse_os_release('ID="someos"\n').family == "other"


def test_kylin_service_pack_from_productinfo() -> None:
    productinfo = fixture("productinfo_kylin_v10_sp3.txt")
    assert parse_kylin_service_pack(productinfo) == "SP3"
    kylin = parse_os_release(fixture("os-release_kylin_v10_lance.txt"), productinfo)
    assert kylin.service_pack == "SP3"
    # The SP level belongs to Kylin only.
    assert parse_os_release(fixture("os-release_anolis_8.6.txt"), productinfo).service_pack is None


def test_paddle_commit_from_version_module_text() -> None:
    text = "full_version = '3.2.2'\ncommit = 'd90d3ad913b1f13a258af5e8c035e389282ccbac'\n"
    assert parse_paddle_commit(text) == "d90d3ad913b1f13a258af5e8c035e389282ccbac"
    assert parse_paddle_commit("commit = 'Unknown'\n") is None


def test_describe_platform_is_json_ready_without_hostname_or_paddle_import() -> None:
    was_imported = "paddle" in sys.modules
    block = platform_info.describe_platform()
    json.dumps(block)
    assert not was_imported or "paddle" in sys.modules
    if not was_imported:
        assert "paddle" not in sys.modules
    import platform as stdlib_platform

    hostname = stdlib_platform.node()
    if len(hostname) >= 8:  # a short name could occur by chance inside a hash
        assert hostname not in json.dumps(block)
    assert block["cpu"]["model_name"]
    assert block["memory_total_bytes"] > 0
    assert block["paddle"]["distribution"] == "paddlepaddle"
    assert block["python"]["version"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
