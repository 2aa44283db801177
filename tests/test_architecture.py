"""The shape of the code, checked: which top-level package may import which.

portbench is split along what varies. ``backends`` and ``portbench/`` (errors) depend on nothing of
ours above them; ``harness`` (the run API, runner, results, contracts) reaches workloads, backends and
reports only through registries; workloads (``suites``) and ``reports`` build on the harness. Every
import counts, including the ones inside functions, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast  # contracts, planning, parity, reports with fakes: tox -e fast

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"harness": "harness", "backends": "backends", "suites": "suites", "reports": "reports",
            "portbench": "portbench"}  # fmt: skip
WORKLOAD_PACKAGES = ("portbench.suites.ocr", "portbench.suites.ernie")


def _modules(package_dir: str) -> list[Path]:
    return sorted((ROOT / package_dir).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every ``portbench.*`` module this file imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "portbench" or name.startswith("portbench.")}


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else "portbench"


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {name: set() for name in PACKAGES}
    for name, directory in PACKAGES.items():
        for path in _modules(directory):
            for module in _imports(path):
                target = _package_of(module)
                if target != name:
                    edges[name].add(target)
    return edges


def test_the_import_parser_sees_lazy_imports(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text(
        "def f():\n    from portbench.reports.markdown import render\n    import portbench.suites.ocr\n"
    )
    assert _imports(sample) >= {"portbench.reports.markdown", "portbench.suites.ocr"}


def test_no_import_cycle_between_the_top_level_packages() -> None:
    edges = _edges()
    for a, b in itertools.permutations(PACKAGES, 2):
        if b in edges[a] and a in edges[b]:
            pytest.fail(f"{a} imports {b} and {b} imports {a}")
    # And no longer cycle: a topological order exists.
    remaining = {name: set(targets) for name, targets in edges.items()}
    while remaining:
        leaves = [name for name, targets in remaining.items() if not targets & set(remaining)]
        assert leaves, f"import cycle among {sorted(remaining)}: {remaining}"
        for leaf in leaves:
            del remaining[leaf]


@pytest.mark.parametrize("package", ["harness", "reports", "backends"])
def test_no_workload_is_named_outside_the_workloads(package: str) -> None:
    offenders = sorted(
        f"{path.relative_to(ROOT)} imports {module}"
        for path in _modules(PACKAGES[package])
        for module in _imports(path)
        if module.startswith(WORKLOAD_PACKAGES)
    )
    assert not offenders, offenders


def test_errors_and_backends_stand_on_their_own() -> None:
    edges = _edges()
    assert edges["portbench"] == set()
    assert edges["backends"] <= {"portbench"}
