"""The any-Python pure build: sources for a target with no interpreter of its Python here.

Offline: the fixture index (in-tree backend, no setuptools) and a local project unpacked from
it. Network (setuptools from the index, PyPI): sgmllib3k 1.0.0 and the setuptools projects of
fixtures/sdists/. "No interpreter of the target's Python" is made certain by hiding the
target's version from the builder's interpreter discovery (a machine with CPython 3.14
installed would otherwise build natively); the pure build's own discovery stays real.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from conftest import INDEX, ROOT, fixture_config, write_reqs
from lambda_compat.build import missing, phases, resolution
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.host import interpreters
from lambda_compat.host.interpreters import Interpreter, pick_pure_build
from lambda_compat.resolve import pure_build
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.ui import RecordingUI

TARGET = (3, 14)
SDISTS = ROOT / "fixtures" / "sdists"

needs_pure_interpreter = pytest.mark.skipif(
    not interpreters.pure_build_interpreters(__import__("platform").machine()),
    reason="needs a local CPython 3 with pip")


@pytest.fixture
def no_target_python(monkeypatch):
    """This machine has no CPython 3.14, whatever is installed (for the builder)."""
    real = interpreters.find_interpreter

    def find(version, machine, explicit=None):
        return None if tuple(version[:2]) == TARGET else real(version, machine, explicit)

    for module in (phases, resolution, missing):
        monkeypatch.setattr(module, "find_interpreter", find)


def names(report):
    return {d.name: d for d in report.distributions}


def _wheel(tmp_path: Path, name: str, members: dict) -> Path:
    path = tmp_path / name
    dist = name.split("-")[0] + "-" + name.split("-")[1] + ".dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
        if f"{dist}/METADATA" not in members:
            zf.writestr(f"{dist}/METADATA", "Metadata-Version: 2.1\nName: x\nVersion: 1.0\n")
    return path


# -- the judgement of a pure wheel --------------------------------------------------------

def test_a_py3_none_any_wheel_without_elf_is_pure(tmp_path):
    wheel = _wheel(tmp_path, "x-1.0-py3-none-any.whl", {"x.py": "A = 1\n"})
    assert pure_build.problems(wheel, (3, 14), "3.14.0") == []
    both = _wheel(tmp_path, "y-1.0-py2.py3-none-any.whl", {"y.py": ""})
    assert pure_build.problems(both, (3, 14), "3.14.0") == []


def test_platform_tags_elf_files_and_requires_python_are_refused(tmp_path):
    tagged = _wheel(tmp_path, "x-1.0-cp313-cp313-linux_x86_64.whl", {"x.py": ""})
    assert "not a pure py3-none-any wheel" in pure_build.problems(tagged, (3, 14), "3.14.0")[0]
    interp = _wheel(tmp_path, "x-1.0-cp313-none-any.whl", {"x.py": ""})
    assert pure_build.problems(interp, (3, 14), "3.14.0")
    py2 = _wheel(tmp_path, "x-1.0-py2-none-any.whl", {"x.py": ""})
    assert pure_build.problems(py2, (3, 14), "3.14.0")
    # an ELF file is native code whatever its name
    elf = _wheel(tmp_path, "z-1.0-py3-none-any.whl", {"z/helper.bin": b"\x7fELF\x02\x01\x01"})
    assert "contains an ELF file (z/helper.bin)" in pure_build.problems(elf, (3, 14), "3.14.0")[0]
    new = _wheel(tmp_path, "w-1.0-py3-none-any.whl", {
        "w-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: w\nVersion: 1.0\n"
                                    "Requires-Python: >=3.15\n"})
    assert "requires Python >=3.15" in pure_build.problems(new, (3, 14), "3.14.0")[0]
    assert pure_build.problems(new, (3, 15), "3.15.0") == []


def test_the_newest_interpreter_its_requires_python_admits_builds():
    def interp(minor):
        return Interpreter(f"/x/python3.{minor}", (3, minor, 1), "cpython", "x86_64", False, "25")
    found = [interp(9), interp(13), interp(11)]
    assert pick_pure_build(found, None).version == (3, 13, 1)
    assert pick_pure_build(found, ">=3.8,<3.12").version == (3, 11, 1)
    assert pick_pure_build(found, ">=3.14") is None
    assert pure_build.describe("CPython 3.13.1 (/x/python3.13)") == (
        "CPython 3.13.1 (any-Python pure build, /x/python3.13; the wheel has no native code)")


# -- offline: the fixture index and a local project ------------------------------------------

@needs_pure_interpreter
def test_pure_sdist_built_once_for_every_target(tmp_path, no_target_python):
    config = fixture_config(tmp_path / "cache")
    req = write_reqs(tmp_path, "lc-sdist-pure==1.0\n")
    events = []
    for arch in ("x86_64", "arm64"):
        ui = RecordingUI()
        report = build_dependencies(tmp_path / arch, req, "python3.14", ui=ui, config=config,
                                    architecture=arch)
        d = names(report)["lc-sdist-pure"]
        assert d.phase == "built-no-compiler", d.reason
        assert d.file == "lc_sdist_pure-1.0-py3-none-any.whl"
        assert "any-Python pure build" in d.interpreter and "3.14" not in d.interpreter
        assert any("the wheel is pure" in a for a in d.attempts)
        assert (tmp_path / arch / "lc_sdist_pure").is_dir()
        events.append([n for n, _ in ui.events if n == "sdist-build-done"])
    pure = [p.name for p in (tmp_path / "cache" / "built").iterdir() if p.name.endswith("-pure")]
    assert len(pure) == 1  # keyed by the sdist's sha256 and "pure": one build for both
    # the second target took the wheel from the cache (the metadata from its own cache or the
    # built wheel): whatever it built took no time, nothing was built twice
    assert events[0]


@needs_pure_interpreter
def test_local_pure_project_for_a_python_without_interpreter(tmp_path, no_target_python):
    shutil.unpack_archive(str(INDEX / "files" / "lc_sdist_pure-1.0.tar.gz"),
                          str(tmp_path / "proj"))
    req = write_reqs(tmp_path / "proj", "./lc_sdist_pure-1.0\n")
    report = build_dependencies(tmp_path / "out", req, "python3.14",
                                config=fixture_config(tmp_path / "cache"),
                                architecture="arm64")
    d = names(report)["lc-sdist-pure"]
    assert d.phase == "built-no-compiler" and d.file.endswith("-py3-none-any.whl"), d.reason
    assert "any-Python pure build" in d.interpreter


def missing_for_314(tmp_path, name: str):
    """``name``'s outcome in a python3.14/x86_64 build that may leave it missing."""
    report = build_dependencies(tmp_path / "out", write_reqs(tmp_path, name + "\n"),
                                "python3.14",
                                config=fixture_config(tmp_path / "cache", allow_missing=True))
    return names(report)[name]


@needs_pure_interpreter
def test_required_extension_stays_no_build_environment(tmp_path, no_target_python):
    d = missing_for_314(tmp_path, "lc-needs-compiler")
    assert d.phase == "missing" and d.reason_code == "no-build-environment"
    assert "no CPython 3.14 interpreter" in d.reason
    assert "pure build without a compiler" in d.reason
    assert any("no working C compiler" in a for a in d.attempts)


@needs_pure_interpreter
def test_optional_extension_tagged_for_the_build_host_is_not_pure(tmp_path, no_target_python):
    # lc-optional-ext without a compiler is pure code in a cpXY-linux_<machine> wheel: the
    # builder's Python, not the target's, so the pure build cannot vouch for it
    d = missing_for_314(tmp_path, "lc-optional-ext")
    assert d.phase == "missing" and d.reason_code == "no-build-environment"
    assert "not a pure py3-none-any wheel" in d.reason


def test_native_project_is_not_built_at_all_without_the_targets_python(tmp_path,
                                                                        no_target_python):
    # lc-native 2.0 publishes only platform wheels (none for cp314): its code is native, no
    # pure build is attempted, not even for metadata
    ui = RecordingUI()
    report = build_dependencies(tmp_path / "out", write_reqs(tmp_path, "lc-native==2.0\n"),
                                "python3.14", ui=ui, config=fixture_config(tmp_path / "c", allow_missing=True))
    d = names(report)["lc-native"]
    assert d.reason_code == "no-build-environment"
    assert "has native code" in d.reason and "no local CPython 3.14 interpreter" in d.reason
    assert not [n for n, _ in ui.events if n == "sdist-build-start"]


# -- network: real sdists built with setuptools ---------------------------------------------

def _pypi_config(cache: Path, **kw) -> BuildConfig:
    # local build environments only: these tests are about the any-Python pure build, which
    # stands in where no environment exists (a target root would be made per test cache)
    kw.setdefault("build_env", "local")
    return BuildConfig(cache_dir=cache, pip=PipOptions(isolated=True), **kw)


@pytest.mark.network
@pytest.mark.slow
@needs_pure_interpreter
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_sgmllib3k_for_python314(tmp_path, no_target_python, arch):
    report = build_dependencies(tmp_path / "out", write_reqs(tmp_path, "sgmllib3k==1.0.0\n"),
                                "python3.14", config=_pypi_config(tmp_path / "cache"),
                                architecture=arch)
    d = names(report)["sgmllib3k"]
    assert d.phase == "built-no-compiler", d.reason
    assert d.file == "sgmllib3k-1.0.0-py3-none-any.whl"
    assert "any-Python pure build" in d.interpreter
    assert (tmp_path / "out" / "sgmllib.py").is_file()


@pytest.mark.network
@pytest.mark.slow
@needs_pure_interpreter
def test_setuptools_projects_for_python314(tmp_path, no_target_python):
    projects = ("pure-local", "c-required", "c-optional")
    for p in projects:  # a local directory is built in place: never in the repository
        shutil.copytree(SDISTS / p, tmp_path / p)
    req = write_reqs(tmp_path, "".join(f"./{p}\n" for p in projects))
    report = build_dependencies(tmp_path / "out", req, "python3.14",
                                config=_pypi_config(tmp_path / "cache", allow_missing=True),
                                architecture="arm64")
    d = names(report)
    assert d["lc-pure-local"].phase == "built-no-compiler", d["lc-pure-local"].reason
    assert d["lc-pure-local"].file == "lc_pure_local-1.0-py3-none-any.whl"
    # the extension left out without a compiler: a pure wheel, which imports on any Python
    assert d["lc-c-optional"].file == "lc_c_optional-1.0-py3-none-any.whl"
    required = d["lc-c-required"]
    assert (required.phase, required.reason_code) == ("missing", "no-build-environment")
    assert any("compiler disabled" in a for a in required.attempts)
    out = tmp_path / "out"
    assert (out / "lc_pure_local" / "__init__.py").is_file()
    assert not list(out.rglob("*.so"))
