"""Real builds in build environments, through build_dependencies (slow).

* netifaces 0.11.0 (sdist only, a required C extension) for python3.11/arm64 from this
  x86_64 machine: built in the Debian bookworm arm64 build root (qemu-user, zig), the .so is
  AArch64 and needs no GLIBC_ above 2.26 (Amazon Linux 2); the second build is a cache hit;
* the glibc-probe fixture (stat, pthread_create, dlopen: new symbol versions on a new glibc)
  for python3.11/x86_64 with the local interpreter and zig: no GLIBC_ above 2.26.
"""

from __future__ import annotations

import platform
import shutil
import time
import zipfile
from pathlib import Path

import pytest

from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.host import toolchain
from lambda_compat.host.interpreters import find_interpreter
from lambda_compat.host.paths import default_cache_dir
from lambda_compat.ui import NullUI
from lambda_compat.verify.elf import read_elf

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "sdists" / "glibc-probe"


def shared_objects(wheel: Path, dest: Path):
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.endswith(".so")]
        zf.extractall(dest, names)
    return [dest / n for n in names]


def built_wheel(report, cache: Path, name: str) -> Path:
    (d,) = [d for d in report.distributions if d.name.lower() == name]
    assert d.phase == "built", (d.reason, d.attempts)
    # the build's own key (built_key: b2 since builds log pip -v); a shared cache may also
    # hold the same file name under an older key
    (wheel,) = [w for w in cache.glob(f"built/*/{d.file}") if "-b2-" in w.parent.name]
    return wheel


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.rootfs_arm64
def test_netifaces_for_arm64_built_in_the_target_root(tmp_path):
    if platform.machine() != "x86_64":
        pytest.skip("shows the cross build from an x86_64 machine")
    req = tmp_path / "requirements.txt"
    req.write_text("netifaces==0.11.0\n")
    cache = default_cache_dir()   # the build root and zig's cache are made once, shared
    config = BuildConfig(cache_dir=cache, resolution_ttl=0)
    report = build_dependencies(tmp_path / "out", req, "python3.11", NullUI(), config,
                                architecture="arm64")
    assert report.ok, [(d.name, d.reason) for d in report.missing]
    (d,) = report.distributions
    assert d.build_environment is not None
    assert d.build_environment.startswith("Debian bookworm arm64 root (CPython 3.11")
    assert "zig cc for glibc 2.26" in d.build_environment
    (so,) = shared_objects(built_wheel(report, cache, "netifaces"), tmp_path / "so")
    info = read_elf(so)
    assert info.machine == "aarch64"
    assert info.max_version("GLIBC_") <= (2, 26), info.versions_with_prefix("GLIBC_")
    # The second build is the cached wheel (sdist sha256 + target + environment).
    started = time.monotonic()
    again = build_dependencies(tmp_path / "out2", req, "python3.11", NullUI(), config,
                               architecture="arm64")
    assert again.ok and time.monotonic() - started < 60
    assert again.distributions[0].build_environment == d.build_environment


@pytest.mark.slow
def test_glibc_probe_with_the_local_interpreter_and_zig_within_2_26(tmp_path, monkeypatch):
    if platform.machine() != "x86_64":
        pytest.skip("the x86_64 python3.11 target needs an x86_64 machine for a local build")
    if find_interpreter((3, 11), "x86_64") is None:
        pytest.skip("no local CPython 3.11")
    zig = toolchain.find_zig(default_cache_dir())
    if zig is None:
        pytest.skip("no zig here (pip install 'lambda-compat[zig]')")
    monkeypatch.setenv("ZIG", str(zig))   # the test's own cache has none
    project = tmp_path / "glibc-probe"   # a copy: setuptools builds a directory in place
    shutil.copytree(FIXTURE, project)
    req = tmp_path / "requirements.txt"
    req.write_text(f"{project}\n")
    config = BuildConfig(cache_dir=tmp_path / "cache", build_env="local", resolution_ttl=0)
    report = build_dependencies(tmp_path / "out", req, "python3.11", NullUI(), config)
    assert report.ok, [(d.name, d.reason, d.attempts) for d in report.missing]
    (d,) = report.distributions
    assert d.phase == "built" and d.build_environment is not None
    assert d.build_environment.startswith("local CPython 3.11")
    assert d.build_environment.endswith("zig cc for glibc 2.26")
    (so,) = (tmp_path / "out").glob("glibc_probe*.so")
    info = read_elf(so)
    assert info.machine == "x86_64"
    assert info.max_version("GLIBC_") <= (2, 26), info.versions_with_prefix("GLIBC_")
