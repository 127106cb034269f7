"""The aws-lambda-builders interface: same arguments, exceptions and artifacts-dir contract."""

from __future__ import annotations

import pytest

from conftest import fixture_config, write_reqs
from lambda_compat import (MissingDependencyError, NoSuchPackageError, PackagerError,
                           PythonPipDependencyBuilder, UnsupportedPythonVersion)
from lambda_compat.verify.elf import read_elf


def _builder(runtime: str, arch: str) -> PythonPipDependencyBuilder:
    return PythonPipDependencyBuilder(runtime=runtime, architecture=arch)


def test_builds_for_arm64_into_artifacts_and_keeps_the_callers_files(tmp_path, shared_cache):
    req = write_reqs(tmp_path, "lc-markers==1.0\nlc-native==1.0\n")
    artifacts = tmp_path / "artifacts"
    (artifacts / "chalicelib").mkdir(parents=True)
    (artifacts / "app.py").write_text("def handler(e, c): return 1\n")
    (artifacts / "chalicelib" / "util.py").write_text("X = 1\n")
    report = _builder("python3.12", "arm64").build_dependencies(
        str(artifacts), str(tmp_path / "scratch"), str(req),
        config=fixture_config(shared_cache))
    assert report is not None and report.ok
    assert (artifacts / "app.py").read_text() == "def handler(e, c): return 1\n"
    assert (artifacts / "chalicelib" / "util.py").exists()
    assert (artifacts / "lc_arm_only").is_dir()          # marker true on aarch64 only
    sos = list((artifacts / "lc_native").glob("*.so"))
    assert sos and all(read_elf(p).machine == "aarch64" for p in sos)
    assert list((tmp_path / "scratch").iterdir()) == []  # its staging is gone


def test_missing_installs_the_rest_then_raises(tmp_path, shared_cache):
    # lc-needs-compiler is an sdist whose C extension is required: no arm64 build here.
    req = write_reqs(tmp_path, "lc-pure==1.0\nlc-needs-compiler==1.0\n")
    artifacts = tmp_path / "artifacts"
    with pytest.raises(MissingDependencyError) as exc:
        _builder("python3.12", "arm64").build_dependencies(
            artifacts, tmp_path / "scratch", req, config=fixture_config(shared_cache))
    assert {m.identifier for m in exc.value.missing} == {"lc-needs-compiler==1.0"}
    assert all(m.reason for m in exc.value.missing)
    assert "lc-needs-compiler==1.0" in str(exc.value)
    assert isinstance(exc.value, PackagerError)
    assert (artifacts / "lc_pure").is_dir()


def test_no_requirements_is_nothing_to_do(tmp_path):
    req = write_reqs(tmp_path, "# nothing yet\n\n")
    b = _builder("python3.12", "x86_64")
    assert b.build_dependencies(tmp_path / "a", tmp_path / "s", req) is None
    assert b.build_dependencies(tmp_path / "a", tmp_path / "s", tmp_path / "absent.txt") is None
    assert not (tmp_path / "a").exists()


def test_unknown_runtime_and_arch():
    with pytest.raises(UnsupportedPythonVersion):
        PythonPipDependencyBuilder(runtime="python2.7")
    with pytest.raises(PackagerError):
        PythonPipDependencyBuilder(runtime="python3.12", architecture="sparc")


def test_unknown_package_is_no_such_package(tmp_path, shared_cache):
    req = write_reqs(tmp_path, "lc-does-not-exist==1.0\n")
    with pytest.raises((NoSuchPackageError, MissingDependencyError)) as exc:
        _builder("python3.12", "x86_64").build_dependencies(
            tmp_path / "a", tmp_path / "s", req, config=fixture_config(shared_cache))
    assert "lc-does-not-exist" in str(exc.value)


def test_a_callers_file_is_never_overwritten(tmp_path, shared_cache):
    req = write_reqs(tmp_path, "lc-pure==1.0\n")
    artifacts = tmp_path / "artifacts"
    (artifacts / "lc_pure").mkdir(parents=True)
    (artifacts / "lc_pure" / "__init__.py").write_text("# the caller's own module\n")
    with pytest.raises(PackagerError) as exc:
        _builder("python3.12", "x86_64").build_dependencies(
            artifacts, tmp_path / "scratch", req, config=fixture_config(shared_cache))
    assert "lc_pure/__init__.py" in str(exc.value) and "does not overwrite" in str(exc.value)
    assert (artifacts / "lc_pure" / "__init__.py").read_text() == "# the caller's own module\n"
    assert not list(artifacts.glob("lc_pure-1.0.dist-info"))   # nothing half-merged
