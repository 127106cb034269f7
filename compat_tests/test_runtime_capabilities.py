"""Every runtime-capability registry entry proven from the project's real wheels on PyPI.

A case is ``<name>-<version>-<arch>``, one per evidence version and architecture; it covers
the evidence's runtimes of that architecture. Each one:

1. downloads ``name==version`` (the wheel for the architecture, no dependencies) from PyPI
   with pip;
2. proves the need from the project's own code: the entry's first import's ``__init__.py``
   compares ``sqlite3.sqlite_version_info`` with a version tuple and raises when it is lower
   (the check chromadb runs at import), and that version is exactly where the entry's
   ``needs.sqlite`` starts; the fix's module is what the project itself names;
3. installs the wheel into a bundle (its files and dist-info, as pip lays them out) and runs
   lambda-compat's static check on every runtime of the case: a ``runtime-capability`` error
   with the entry's fix exactly where the runtime's recorded sqlite is below the need, none
   elsewhere.

Marked network (PyPI). Select an entry's cases with ``-k "[chromadb-"``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import List, Optional, Tuple

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from lambda_compat.registry.runtimes import get_target
from lambda_compat.verify.capabilities import capability_version
from lambda_compat.registry.package_entry import PackageEntry
from lambda_compat.registry.packages import load_packages
from lambda_compat.verify.bundle_check import check_bundle

TEST_ID = "compat_tests/test_runtime_capabilities.py::test_runtime_capability_entry"
_PLATFORM = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}


def _cases() -> List[Tuple[PackageEntry, str, str, Tuple[str, ...]]]:
    out = []
    for entry in load_packages().entries:
        if entry.kind != "runtime-capability":
            continue
        for ev in entry.evidence:
            if ev.test != TEST_ID:
                continue
            for version in ev.versions:
                for arch in ("x86_64", "arm64"):
                    runtimes = tuple(t.split("/")[0] for t in ev.targets
                                     if t.endswith("/" + arch))
                    if runtimes:
                        out.append((entry, version, arch, runtimes))
    return out


def pytest_generate_tests(metafunc):
    if "capability_case" not in metafunc.fixturenames:
        return
    metafunc.parametrize("capability_case", [
        pytest.param(case, marks=[pytest.mark.network],
                     id=f"{case[0].name}-{case[1]}-{case[2]}") for case in _cases()])


def _download(name: str, version: str, arch: str, dest: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", f"{name}=={version}", "--no-deps",
         "--only-binary", ":all:", "--platform", _PLATFORM[arch], "--python-version", "3.12",
         "--implementation", "cp", "-d", str(dest), "--disable-pip-version-check", "-q"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = dest.glob("*.whl")
    return wheel


def sqlite_floor(source: str) -> Optional[Tuple[int, ...]]:
    """The version tuple ``T`` of an ``if <x>.sqlite_version_info < T:`` whose body raises
    (possibly in a nested branch), or None when the code has no such check."""
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
            continue
        test = node.test
        if not (isinstance(test.left, ast.Attribute) and test.left.attr == "sqlite_version_info"
                and len(test.ops) == 1 and isinstance(test.ops[0], ast.Lt)
                and isinstance(test.comparators[0], ast.Tuple)):
            continue
        if not any(isinstance(n, ast.Raise) for n in ast.walk(node)):
            continue
        return tuple(ast.literal_eval(test.comparators[0]))
    return None


def test_sqlite_floor_reads_the_check():
    code = ("import sqlite3\nif sqlite3.sqlite_version_info < (3, 35, 0):\n"
            "    if False:\n        pass\n    else:\n        raise RuntimeError('old')\n")
    assert sqlite_floor(code) == (3, 35, 0)
    assert sqlite_floor(code.replace("raise RuntimeError('old')", "pass")) is None
    assert sqlite_floor("import sqlite3\n") is None


def test_runtime_capability_entry(capability_case, tmp_path):
    entry, version, arch, runtimes = capability_case
    wheel = _download(entry.name, version, arch, tmp_path / "dl")
    module = entry.imports[0]
    with zipfile.ZipFile(wheel) as zf:
        source = zf.read(f"{module}/__init__.py").decode("utf-8")
        bundle = tmp_path / "bundle"
        zf.extractall(bundle)
    # 2. the need, from the project's own import-time check
    floor = sqlite_floor(source)
    assert floor is not None, f"{wheel.name}: {module}/__init__.py has no sqlite check"
    need = SpecifierSet(dict(entry.needs)["sqlite"])
    at = Version(".".join(map(str, floor)))
    below = Version(".".join(map(str, floor[:-1] + (floor[-1] - 1,)))) if floor[-1] else \
        Version(".".join(map(str, floor[:-2] + (floor[-2] - 1, 999))))
    assert at in need and below not in need, (need, floor)
    fix_module = (entry.fix_distribution or "").split("-")[0]
    assert fix_module and fix_module in source, f"{wheel.name} does not name {fix_module}"
    # 3. the static check on every runtime of the case
    for runtime in runtimes:
        target = get_target(runtime, arch)
        report = check_bundle(bundle, [], target)
        found = [f for f in report.findings
                 if f.code == "runtime-capability" and f.distribution == entry.name]
        have = capability_version(target.facts.capability("sqlite").value or "")
        if have is not None and have in need:
            assert found == [], (runtime, found)
        else:
            assert [f.severity for f in found] == ["error"], (runtime, found)
            assert entry.fix_distribution in found[0].fix
            assert f"{version} needs the runtime's sqlite" in found[0].message
