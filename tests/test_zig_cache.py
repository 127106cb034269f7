"""Each build gets its own copy of zig's cache: nothing a build writes there reaches another.

zig insists on a writable cache (it creates manifests and locks even for what it has), and
what is in it is linked into later builds: a build shown the shared cache could leave a
doctored object file for the next project (rule 2). The lasting cache of a target is made
once from our own two files, outside any sandbox; each build compiles into a copy.
"""

from __future__ import annotations

import io
import json
import platform
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import INDEX, cache_sharing_roots, write_reqs
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.host import sandbox, toolchain
from lambda_compat.host.interpreters import find_interpreter
from lambda_compat.host.paths import default_cache_dir
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.ui import NullUI


@pytest.fixture(scope="module")
def zig() -> Path:
    return toolchain.ensure_zig(default_cache_dir(), NullUI())


def _files(root: Path) -> set:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.network
def test_a_private_cache_is_a_copy_of_the_lasting_one_made_once(zig, tmp_path, monkeypatch):
    cache = default_cache_dir()
    first = toolchain.private_cache(zig, cache, "x86_64", (2, 26), tmp_path / "a")
    lasting = toolchain.zig_cache_dir(cache) / "x86_64-linux-gnu.2.26"
    assert (lasting / ".lambda-compat-ready").is_file()
    assert _files(first) == {f for f in _files(lasting) if not f.startswith(("tmp/", "."))}
    assert any(f.endswith(".so") or f.endswith(".a") for f in _files(first))  # libc, rt
    # once made, never made again: the next build only copies
    monkeypatch.setattr(toolchain, "_warm", lambda *a: pytest.fail("warmed twice"))
    second = toolchain.private_cache(zig, cache, "x86_64", (2, 26), tmp_path / "b")
    (first / "o" / "lc-poison.o").parent.mkdir(exist_ok=True)
    (first / "o" / "lc-poison.o").write_bytes(b"not what you think")
    assert not (lasting / "o" / "lc-poison.o").exists()
    assert not (second / "o" / "lc-poison.o").exists()


# A backend that compiles its extension with the build's zig (CC) and, on the way, tries to
# leave a file in zig's cache for the builds after it.
POISON_BACKEND = r'''
import os
from lcbackend import *  # noqa: F401,F403
import lcbackend


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    cache = os.environ.get("ZIG_GLOBAL_CACHE_DIR", "")
    if cache:
        os.makedirs(os.path.join(cache, "o"), exist_ok=True)
        with open(os.path.join(cache, "o", "lc-poison.o"), "w") as f:
            f.write("poison")
    return lcbackend.build_wheel(wheel_directory, config_settings, metadata_directory)
'''


def make_sdist(directory: Path) -> Path:
    top = "lc_poison-1.0"
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "poison"\n'
                          'backend-path = ["_backend"]\n',
        "PKG-INFO": "Metadata-Version: 2.1\nName: lc-poison\nVersion: 1.0\n",
        "lcbuild.json": json.dumps({
            "name": "lc-poison", "version": "1.0", "packages": ["lc_poison"],
            "extension": {"module": "lc_poison._speedups",
                          "source": "lc_poison/_speedups.c", "required": True}}),
        "lc_poison/__init__.py": "",
        "lc_poison/_speedups.c": (INDEX / "sources" / "speedups.c").read_text(),
        "_backend/lcbackend.py": (INDEX / "sources" / "lcbackend.py").read_text(),
        "_backend/poison.py": POISON_BACKEND,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mtime = len(data), 1577836800
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.skipif(not sandbox.bwrap_works(), reason="bwrap does not work here")
def test_a_build_leaves_nothing_in_zig_s_lasting_cache(zig, tmp_path):
    if platform.machine() != "x86_64" or find_interpreter((3, 11), "x86_64") is None:
        pytest.skip("builds for python3.11/x86_64 with a local CPython 3.11")
    make_sdist(tmp_path / "links")
    req = write_reqs(tmp_path, "lc-poison==1.0\n")
    cache = cache_sharing_roots(tmp_path / "cache")   # zig and its lasting caches shared
    config = BuildConfig(cache_dir=cache, build_env="local",
                         pip=PipOptions(find_links=(str(tmp_path / "links"),), no_index=True,
                                        isolated=True))
    report = build_dependencies(tmp_path / "out", req, "python3.11", architecture="x86_64",
                                config=config)
    d = {x.name: x for x in report.distributions}["lc-poison"]
    assert report.ok, (d.reason, d.attempts)
    assert "zig cc for glibc 2.26" in (d.build_environment or "")
    assert list((tmp_path / "out" / "lc_poison").glob("_speedups*.so"))
    poisoned = list(toolchain.zig_cache_dir(cache).rglob("lc-poison.o"))
    assert poisoned == []


@pytest.mark.slow
@pytest.mark.skipif(not sandbox.bwrap_works(), reason="bwrap does not work here")
def test_a_build_zig_cannot_do_gets_the_host_s_compiler(tmp_path):
    """zig is not gcc (Python 3.8's Python.h includes crypt.h, which zig does not ship;
    clang errs where gcc warns): when the zig build fails, the host's compiler builds it."""
    from lambda_compat.resolve.environments import LocalEnvironment
    from lambda_compat.resolve.sdist_build import file_sha256
    interp = find_interpreter((3, 11), platform.machine())
    if interp is None or shutil.which("cc") is None:
        pytest.skip("needs a local CPython 3.11 and the host's C compiler")
    fake = tmp_path / "zig" / "zig"
    fake.parent.mkdir()
    # compiles our warm-up files (the lasting cache), fails every build's compile
    fake.write_text('#!/bin/sh\ncase "$*" in *warm.c*) touch "$(eval echo \\${$#})"; '
                    'exit 0 ;; esac\necho "fake zig: no" >&2\nexit 1\n')
    fake.chmod(0o755)
    sdist = make_sdist(tmp_path / "links")
    env = LocalEnvironment(interp, glibc=(2, 26), zig=fake, zig_version="0.0.0")
    result = env.build_wheel(sdist, file_sha256(sdist), cache_dir=tmp_path / "cache",
                             pip=PipOptions(no_index=True, isolated=True), no_compiler=False,
                             timeout=600, cwd=tmp_path, sandbox=True)
    assert result.ok, result.error_tail
    assert result.interpreter.endswith("the host's C compiler"), result.interpreter
    logs = [p.read_text() for p in (tmp_path / "cache" / "logs").glob("*-cc.log")]
    assert len(logs) == 2 and any("fake zig: no" in text for text in logs)  # zig's, then cc's
