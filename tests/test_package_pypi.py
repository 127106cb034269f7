"""Issue 6 acceptance against real PyPI: the chalice-like fixture with sortedcontainers==2.4.0.

* exact file lists of deployment.zip, and of deployment.zip + layer.zip with --layer;
* the same inputs twice give the same sha256;
* Pipfile.lock, poetry.lock, uv.lock and pylock.toml give the same bundle as requirements.txt,
  development dependencies (pytest and its closure) left out;
* --check-handler imports app.handler in the target's backend.
"""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from lambda_compat import errors
from lambda_compat.build.builder import BuildConfig
from lambda_compat.registry.runtimes import get_target
from lambda_compat.package.core import package_project
from lambda_compat.package.model import PackageOptions
from lambda_compat.package.project import load_project
from lambda_compat.resolve.engine import PipOptions

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parent.parent
CHALICE = ROOT / "fixtures" / "projects" / "chalice-like"
LOCKED = ROOT / "fixtures" / "projects" / "locked" / "pypi"

APP = ["app.py", "chalicelib/", "chalicelib/__init__.py", "chalicelib/scores.py"]
VENDOR = ["internalpackage/", "internalpackage/__init__.py"]
SORTEDCONTAINERS = [
    "sortedcontainers-2.4.0.dist-info/", "sortedcontainers-2.4.0.dist-info/INSTALLER",
    "sortedcontainers-2.4.0.dist-info/LICENSE", "sortedcontainers-2.4.0.dist-info/METADATA",
    "sortedcontainers-2.4.0.dist-info/RECORD", "sortedcontainers-2.4.0.dist-info/WHEEL",
    "sortedcontainers-2.4.0.dist-info/top_level.txt",
    "sortedcontainers/", "sortedcontainers/__init__.py", "sortedcontainers/sorteddict.py",
    "sortedcontainers/sortedlist.py", "sortedcontainers/sortedset.py"]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return BuildConfig(cache_dir=tmp_path_factory.mktemp("pypi-cache"),
                       pip=PipOptions(index_url="https://pypi.org/simple", isolated=True))


def package(project_dir, out, cfg, runtime="python3.12", arch="x86_64", requirements=None,
            **options):
    project = load_project(project_dir, requirements=requirements)
    return package_project(project, out, runtime, arch, config=cfg,
                           options=PackageOptions(**options))


def names(path: Path):
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        return zf.namelist()


def by_bytes(items):
    return sorted(items, key=lambda n: n.encode())


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_chalice_like_bundle_layout(tmp_path, cfg):
    result = package(CHALICE, tmp_path / "dist", cfg)
    assert result.ok, result.findings
    assert names(tmp_path / "dist" / "deployment.zip") == by_bytes(APP + VENDOR +
                                                                   SORTEDCONTAINERS)


def test_wheel_deflate_streams_reused_content_identical_to_recompressed(tmp_path, cfg):
    reused = package(CHALICE, tmp_path / "a", cfg)
    fresh = package(CHALICE, tmp_path / "b", cfg, reuse_wheel_streams=False)
    # sortedcontainers' 4 modules and LICENSE, METADATA, WHEEL come unchanged from its
    # wheel; top_level.txt is "deflated" to 19 bytes from 17 there, so it is stored instead;
    # RECORD and INSTALLER are rewritten at install, so they are compressed here.
    assert reused.zips[0].reused == 7 and fresh.zips[0].reused == 0
    with zipfile.ZipFile(tmp_path / "a" / "deployment.zip") as a, \
            zipfile.ZipFile(tmp_path / "b" / "deployment.zip") as b:
        assert a.namelist() == b.namelist()
        assert all(a.read(n) == b.read(n) for n in a.namelist())


def test_chalice_like_layer_layout(tmp_path, cfg):
    result = package(CHALICE, tmp_path / "dist", cfg, runtime="python3.11", arch="arm64",
                     layer=True)
    assert result.ok, result.findings
    assert names(tmp_path / "dist" / "deployment.zip") == by_bytes(APP)
    site = "python/lib/python3.11/site-packages/"
    assert names(tmp_path / "dist" / "layer.zip") == by_bytes(
        ["python/", "python/lib/", "python/lib/python3.11/", site]
        + [site + n for n in VENDOR + SORTEDCONTAINERS])


def test_same_inputs_twice_same_sha256(tmp_path, cfg):
    copy = tmp_path / "copy"
    shutil.copytree(CHALICE, copy)
    a = package(CHALICE, tmp_path / "a", cfg, layer=True)
    b = package(copy, tmp_path / "b", cfg, layer=True, jobs=1)
    for name in ("deployment.zip", "layer.zip"):
        assert sha(tmp_path / "a" / name) == sha(tmp_path / "b" / name)
    assert [z.sha256 for z in a.zips] == [z.sha256 for z in b.zips]


@pytest.mark.parametrize("target", [("python3.12", "x86_64"), ("python3.10", "arm64")])
def test_lock_files_give_the_requirements_bundle(tmp_path, cfg, target):
    proj = tmp_path / "proj"
    shutil.copytree(CHALICE, proj)
    shutil.copy(LOCKED / "requirements.txt", proj / "requirements.txt")
    ref = package(proj, tmp_path / "ref", cfg, *target)
    assert ref.ok, ref.findings
    expected = names(tmp_path / "ref" / "deployment.zip")
    has_eg = any(n.startswith("exceptiongroup-1.2.2.dist-info/") for n in expected)
    assert has_eg is (target[0] == "python3.10")
    for lock in ("pipenv/Pipfile.lock", "poetry/poetry.lock", "uv/uv.lock",
                 "pylock/pylock.toml"):
        out = tmp_path / lock.split("/")[0]
        result = package(proj, out, cfg, *target, requirements=str(LOCKED / lock))
        assert result.ok, (lock, result.findings)
        assert names(out / "deployment.zip") == expected, lock
        assert sha(out / "deployment.zip") == sha(tmp_path / "ref" / "deployment.zip"), lock
        assert "pytest" in result.lock.excluded_dev
        assert not [n for n in expected if n.startswith(("pytest", "pluggy", "iniconfig"))]


def test_check_handler_on_the_target(tmp_path, cfg):
    from lambda_compat.prove.backends import selection
    try:
        selection.select_backend(get_target("python3.12", "x86_64"), "host")
    except errors.EnvironmentProblem as e:
        pytest.skip(f"no host backend: {e}")
    result = package(CHALICE, tmp_path / "dist", cfg, check_handler="app.handler",
                     backend="host")
    assert result.ok, result.findings
    assert result.handler.ok
