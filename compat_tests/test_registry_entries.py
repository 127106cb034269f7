"""Every registry entry proven: one test per entry x evidence version x evidence target.

A case is ``<name>-<version>-<runtime>-<arch>`` (select an entry's cases with
``-k "[pyyaml-"``). Each one:

1. builds ``name==version`` for the target with lambda-compat, from the project's real sdist
   on PyPI (``--no-binary name``: the project's own wheels would otherwise be chosen), in the
   local build environment (``--build-env local``: a target root would build the target's
   own wheel, which needs no entry), on a machine whose compilers are all disabled (every compiler on PATH and CC/CXX/LDSHARED fail,
   as on a build host without a toolchain: the situation the registry exists for);
2. checks that the wheel built is platform-tagged (the build machine's platform, the
   target's Python) and that the distribution holds no native file (each file its RECORD
   names is read for an ELF header, whatever its name; dependencies such as greenlet are
   the static check's business);
3. for a target of another machine than this one (arm64 here): checks that the builder
   accepted the wheel *because of the entry* (phase ``registry``; the report names the entry
   and the registry version), that the static check agrees, and that the same build with the
   entry removed from a copy of the registry reports the distribution missing. For a target
   of this machine, the wheel's tag is this machine's own, which the target accepts on its
   merits (phase ``built``): the entry is not needed and not consulted there;
4. imports the entry's modules from the bundle: for a target of this machine with a real
   interpreter of the target's Python version (the host backend: isolated, bundle read-only
   at /var/task), then runs the entry's ``smoke`` statement; for a foreign-machine target in
   a stand-in root of that machine and Python, through qemu-user (arm64: the Debian roots
   of python3.9/3.11/3.13/3.14). Where no such root can exist the case is skipped as
   *unproven here*: the entry's claim for that target rests on the static check alone, and
   the test says so instead of passing.

Marked network (PyPI) and slow (sdist builds). Builds use their own cache below the compat
cache (``registry-evidence``), so a wheel compiled elsewhere with a compiler is never reused.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest
from packaging.tags import parse_tag
from packaging.utils import canonicalize_name

from compat_tests import local_env
from lambda_compat.verify import bundle as bundle_mod
from lambda_compat import errors
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.registry.runtimes import get_target
from lambda_compat.registry.package_entry import PackageEntry, tags_fit_except_platform
from lambda_compat.registry.packages import load_packages
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.registry.runtimes import registry_dir
from lambda_compat.resolve.sdist_build import _no_compiler_env
from lambda_compat.verify.static_check import StaticChecker

TEST_ID = "compat_tests/test_registry_entries.py::test_registry_entry"
HOST_MACHINE = platform.machine()
#: In the compat_fast slice (CI): an sdist built without a compiler, accepted on arm64
#: because of the entry, then imported on arm64 through qemu.
FAST = {("msgpack", "1.0.6", "python3.11/arm64")}


def _cases() -> List[Tuple[PackageEntry, str, str, str]]:
    registry = load_packages()
    out = []
    for entry in registry.entries:
        for evidence in entry.evidence:
            if evidence.test != TEST_ID:
                continue
            for version, runtime, arch in evidence.cases():
                out.append((entry, version, runtime, arch))
    return out


def pytest_generate_tests(metafunc):
    if "registry_case" not in metafunc.fixturenames:
        return
    runtimes = metafunc.config.getoption("compat_runtimes", default=None) or []
    arches = metafunc.config.getoption("compat_arches", default=None) or []
    params = []
    for entry, version, runtime, arch in _cases():
        if (runtimes and runtime not in runtimes) or (arches and arch not in arches):
            continue
        marks = [pytest.mark.network, pytest.mark.slow]
        if (entry.name, version, f"{runtime}/{arch}") in FAST:
            marks.append(pytest.mark.compat_fast)
        params.append(pytest.param((entry, version, runtime, arch), marks=marks,
                                   id=f"{entry.name}-{version}-{runtime}-{arch}"))
    metafunc.parametrize("registry_case", params)


@pytest.fixture(scope="session")
def evidence_cache(tmp_path_factory) -> Path:
    base = os.environ.get("LAMBDA_COMPAT_CACHE_DIR")
    root = Path(base) if base else Path(os.path.expanduser("~/.cache/lambda-compat"))
    path = root / "registry-evidence"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def no_compiler_machine(tmp_path, monkeypatch):
    """Every C/C++/Fortran compiler of this machine fails, for the builder and its pip."""
    env = _no_compiler_env(dict(os.environ), tmp_path / "no-compiler")
    for key in ("CC", "CXX", "CPP", "LDSHARED", "FC", "F77", "F90", "PATH"):
        monkeypatch.setenv(key, env[key])
    assert subprocess.run(["cc", "--version"], capture_output=True).returncode != 0
    assert subprocess.run(["gcc", "--version"], capture_output=True).returncode != 0


def _config(cache: Path, name: str, registry=None) -> BuildConfig:
    # The local build environment only: an entry is what vouches for the wheel a machine
    # without a target environment builds for itself (a target root would build the
    # target's own wheel, accepted on its merits, and prove nothing about the entry).
    return BuildConfig(cache_dir=cache, registry_dir=registry, no_binary=(name,), jobs=2,
                       build_env="local",
                       pip=PipOptions(index_url="https://pypi.org/simple", isolated=True))


def _dist_info(out: Path, name: str, version: str) -> Path:
    for dist_info in out.glob("*.dist-info"):
        stem = dist_info.name[:-len(".dist-info")]
        dname, _, dversion = stem.rpartition("-")
        if canonicalize_name(dname) == name and dversion == version:
            return dist_info
    raise AssertionError(f"no {name}-{version}.dist-info in {sorted(p.name for p in out.iterdir())}")


def _wheel_tags(dist_info: Path):
    lines = (dist_info / "WHEEL").read_text(encoding="utf-8").splitlines()
    return tuple(t for line in lines if line.startswith("Tag:")
                 for t in parse_tag(line.split(":", 1)[1].strip()))


def _elf_files(out: Path, dist_info: Path) -> List[str]:
    """Files of the distribution (its RECORD) that are ELF objects, whatever their name."""
    found = []
    record = (dist_info / "RECORD").read_text(encoding="utf-8").splitlines()
    assert record, f"{dist_info}/RECORD is empty"
    for line in record:
        rel = line.rsplit(",", 2)[0]
        path = out / rel
        if rel and path.is_file() and not path.is_symlink():
            with open(path, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    found.append(rel)
    return found


def _explain(report) -> str:
    lines = []
    for d in report.distributions:
        lines.append(f"{d.name} {d.version}: {d.phase} {d.file or ''} {d.reason or ''}")
        lines += [f"    {a}" for a in d.attempts]
    return "\n".join(lines)


def import_level(runtime: str, arch: str):
    """How :func:`test_registry_entry` imports on a target: ``host`` (this machine's
    interpreter), ``rootfs`` (a foreign machine's stand-in root through qemu-user: only the
    Pythons a Debian suite ships), or None (unproven here)."""
    from lambda_compat.prove.standin import info as standin
    target = get_target(runtime, arch)
    if target.machine == HOST_MACHINE:
        return "host"
    return "rootfs" if tuple(target.python_version) in standin.DEBIAN_SUITES else None


def _import_in_a_foreign_root(entry: PackageEntry, target, out: Path) -> None:
    """The entry's modules imported on the foreign machine itself (qemu-user in a stand-in
    root); no root of that Python: skipped as unproven here (never passed on the entry's
    word)."""
    from lambda_compat.prove.backends.selection import select_backend
    try:
        backend = select_backend(target, "rootfs", rootfs="standin")
    except errors.EnvironmentProblem as exc:
        pytest.skip(f"unproven here: no {target.name} root to import in "
                    f"({str(exc).splitlines()[0]}); static proof only")
    assert backend is not None
    result = backend.import_modules(out, [], [(entry.name, m) for m in entry.imports])
    assert result.error is None, result.error
    assert result.proof == "rootfs" and f"qemu-{target.machine}" in backend.describe(), \
        backend.describe()
    assert result.ok, [(o.module, o.error, o.detail) for o in result.failures]


def test_registry_entry(registry_case, tmp_path, evidence_cache, no_compiler_machine):
    entry, version, runtime, arch = registry_case
    registry = load_packages()
    target = get_target(runtime, arch)
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"{entry.name}=={version}\n", encoding="utf-8")
    out = tmp_path / "bundle"
    report = build_dependencies(out, reqs, runtime, config=_config(evidence_cache, entry.name),
                                architecture=arch)
    assert report.ok, f"{entry.name} {version} on {target.name}:\n{_explain(report)}"
    (dist,) = [d for d in report.distributions if canonicalize_name(d.name) == entry.name]
    # 1. from the real sdist, without a compiler
    assert dist.source and dist.source.endswith((".tar.gz", ".zip")), dist.source
    assert dist.version == version
    # 2. platform-tagged for the build machine and the target's Python; no native file
    dist_info = _dist_info(out, entry.name, version)
    tags = _wheel_tags(dist_info)
    assert tags and all(t.platform != "any" for t in tags), \
        f"{dist.file} is not platform-tagged: the claim does not hold for {version}"
    assert all(t.platform.endswith(HOST_MACHINE) for t in tags), tags
    assert tags_fit_except_platform(tags, target), tags
    native = _elf_files(out, dist_info)
    assert not native, f"native files in {entry.name} {version}: {native}"
    assert entry.matches(entry.name, version, target)
    static = StaticChecker(bundle_mod.load(out)).check(target)
    if target.machine != HOST_MACHINE:
        # 3. accepted because of the entry, and only because of it
        assert dist.phase == "registry", _explain(report)
        assert report.registry_version == registry.version
        assert entry.label in dist.registry_entry and registry.version in dist.registry_entry
        assert Path(entry.path).name in dist.registry_entry
        # ... and the static check agrees, naming the entry
        assert static.ok, [f.message for f in static.errors]
        mine = [f for f in static.findings if canonicalize_name(f.distribution) == entry.name]
        assert [f.code for f in mine] == ["registry-vouched"], static.findings
        assert entry.label in mine[0].message
        without = tmp_path / "registry-without"
        shutil.copytree(registry_dir(), without,
                        ignore=shutil.ignore_patterns(f"{entry.name}.yaml"))
        assert not (without / "packages" / f"{entry.name}.yaml").exists()
        again = build_dependencies(tmp_path / "bundle-2", reqs, runtime,
                                   config=_config(evidence_cache, entry.name, without),
                                   architecture=arch)
        (gone,) = [d for d in again.distributions if canonicalize_name(d.name) == entry.name]
        assert not again.ok and gone.phase == "missing", _explain(again)
        assert "no registry entry vouches" in "\n".join(gone.attempts), _explain(again)
        assert not (tmp_path / "bundle-2").exists()
        _import_in_a_foreign_root(entry, target, out)
        return
    assert dist.phase in ("built", "built-no-compiler"), _explain(report)
    assert static.ok, [f.message for f in static.errors]
    assert not [f for f in static.findings if f.code == "registry-vouched"]
    # 4. imports on the target's Python, then the smoke statement
    from lambda_compat.prove.backends.selection import select_backend
    backend = select_backend(target, "host")
    result = backend.import_modules(out, [], [(entry.name, m) for m in entry.imports])
    assert result.ok, [(o.module, o.error, o.detail) for o in result.failures] or result.error
    interp = local_env.python_path(target.python_version, target.machine)
    assert interp, f"the host backend imported, but no CPython {target.python_version} here"
    code = "".join(f"import {m}\n" for m in entry.imports) + (entry.smoke or "") + "\n"
    proc = subprocess.run([interp, "-I", "-S", "-c", f"import sys; sys.path.insert(0, "
                           f"{str(out)!r})\n" + code], capture_output=True, text=True,
                          timeout=120, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
