"""Source builds run in the build sandbox: evil sdists, built by the test, fail to do harm.

Each evil sdist carries an in-tree PEP 517 backend that, in the metadata step and in the
wheel build, tries to write outside its build directory, read a secret under HOME, connect
to a listener on 127.0.0.1 and read secret environment variables, and records what it got
into the wheel it builds (so a leak would ship in the bundle). Offline: the sdists are
served from a find-links directory and need no build dependencies.
"""

from __future__ import annotations

import io
import json
import os
import platform
import socket
import tarfile
import time
from pathlib import Path

import pytest

from conftest import INDEX, cache_sharing_roots, write_reqs
from lambda_compat import errors
from lambda_compat.host import sandbox
from lambda_compat.build.builder import BuildConfig, build_dependencies
from compat_tests.local_env import has_python
from lambda_compat.resolve.engine import PipOptions

RUNTIME = "python3.11"
SECRET = "AKIA-LAMBDA-COMPAT-TEST-SECRET"
MARK = "31337"  # argument of the `sleep` a hanging build leaves behind, to find it in /proc

needs_bwrap = pytest.mark.skipif(not sandbox.bwrap_works(), reason="bwrap does not work here")
needs_python = pytest.mark.skipif(not has_python((3, 11), platform.machine()),
                                  reason="no CPython 3.11 on this machine")

EVIL_BACKEND = r'''
import json, os, socket, subprocess, time
import lcbackend
from lcbackend import *  # noqa: F401,F403  (the other hooks)


def _evil(stage):
    with open("evil.json") as f:
        cfg = json.load(f)
    got = {"stage": stage}
    if cfg.get("hang") == stage:
        subprocess.Popen(["sleep", cfg["mark"]])
        time.sleep(3600)
    try:
        with open(cfg["write"], "a") as f:
            f.write(stage + "\n")
        got["write"] = "written"
    except Exception as exc:
        got["write"] = repr(exc)
    try:
        with open(cfg["read"]) as f:
            got["read"] = f.read()
    except Exception as exc:
        got["read"] = repr(exc)
    try:
        s = socket.create_connection(("127.0.0.1", cfg["port"]), timeout=3)
        s.sendall(stage.encode())
        s.close()
        got["connect"] = "connected"
    except Exception as exc:
        got["connect"] = repr(exc)
    got["env"] = {k: v for k, v in os.environ.items() if "SECRET" in k or k == "HOME"}
    got["uid"] = os.getuid()
    return got


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    got = _evil("metadata")
    with open("metadata-loot.json", "w") as f:
        json.dump(got, f)
    return lcbackend.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    got = {"wheel": _evil("wheel")}
    if os.path.exists("metadata-loot.json"):
        with open("metadata-loot.json") as f:
            got["metadata"] = json.load(f)
    with open(os.path.join("lc_evil", "loot.py"), "w") as f:
        f.write("LOOT = %r\n" % (got,))
    return lcbackend.build_wheel(wheel_directory, config_settings, metadata_directory)
'''


def make_sdist(directory: Path, evil: dict, name: str = "lc-evil") -> Path:
    """An sdist whose build backend does what ``evil`` says (see EVIL_BACKEND)."""
    dist = name.replace("-", "_")
    top = f"{dist}-1.0"
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "evilbackend"\n'
                          'backend-path = ["_backend"]\n',
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        "lcbuild.json": json.dumps({"name": name, "version": "1.0", "packages": [dist]}),
        f"{dist}/__init__.py": "",
        "evil.json": json.dumps(evil),
        "_backend/lcbackend.py": (INDEX / "sources" / "lcbackend.py").read_text(),
        "_backend/evilbackend.py": EVIL_BACKEND,
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


@pytest.fixture
def listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.setblocking(False)
    yield srv
    srv.close()


def accepted(srv: socket.socket) -> bool:
    try:
        conn, _ = srv.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


@pytest.fixture
def evil_env(tmp_path, monkeypatch, listener):
    """A HOME with a secret, a secret variable, and the paths the evil backend aims at."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(f"aws_secret_access_key = {SECRET}\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return {"write": str(tmp_path / "outside" / "pwned.txt"),
            "read": str(home / ".aws" / "credentials"),
            "port": listener.getsockname()[1], "mark": MARK}


def config_for(tmp_path: Path, links: Path, **kw) -> BuildConfig:
    pip = PipOptions(find_links=(str(links),), no_index=True, isolated=True)
    return BuildConfig(cache_dir=cache_sharing_roots(tmp_path / "cache"), pip=pip, **kw)


def bundle_text(out: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())


def leftover_processes(mark: str) -> list:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if mark.encode() in cmd:
            found.append(pid)
    return found


@pytest.mark.slow
@needs_bwrap
@needs_python
@pytest.mark.parametrize("arch,build_env", [("x86_64", "local"), ("arm64", "local"),
                                            ("arm64", "target-root")])
def test_evil_sdist_can_do_no_harm(tmp_path, evil_env, listener, arch, build_env):
    # local: the host's CPython in bwrap (for arm64 only its no-compiler build can serve);
    # target-root: the Debian arm64 root's CPython through qemu-user, in bwrap too
    (tmp_path / "outside").mkdir()
    make_sdist(tmp_path / "links", evil_env)
    req = write_reqs(tmp_path, "lc-evil==1.0\n")
    report = build_dependencies(tmp_path / "out", req, RUNTIME, architecture=arch,
                                config=config_for(tmp_path, tmp_path / "links",
                                                  build_env=build_env))
    d = {x.name: x for x in report.distributions}["lc-evil"]
    # the honest part of the build still works, in the sandbox
    assert report.ok, (d.reason, d.attempts)
    native = arch == "x86_64" or build_env == "target-root"
    assert d.phase == ("built" if native else "built-no-compiler")
    assert (d.build_environment or "").startswith("local ") == (build_env == "local"), \
        d.build_environment
    ns: dict = {}
    exec((tmp_path / "out" / "lc_evil" / "loot.py").read_text(), ns)
    loot = ns["LOOT"]
    for stage in ("metadata", "wheel"):
        got = loot[stage]
        assert got["write"] != "written", stage  # the host's tree is not there to write to
        assert SECRET not in got["read"], stage
        assert got["read"].startswith(("FileNotFoundError", "PermissionError")), got["read"]
        assert got["connect"] != "connected", stage
        assert got["env"] == {"HOME": "/tmp"}, got["env"]
        assert got["uid"] == sandbox.BUILD_UID or not sandbox.bwrap_userns_works()
    assert not (tmp_path / "outside" / "pwned.txt").exists()
    assert not accepted(listener)
    assert SECRET not in bundle_text(tmp_path / "out")


@pytest.mark.slow
@needs_bwrap
@needs_python
def test_without_the_sandbox_the_same_sdist_does_harm(tmp_path, evil_env, listener):
    # What the sandbox prevents, shown: --no-build-sandbox lets every attempt succeed.
    (tmp_path / "outside").mkdir()
    make_sdist(tmp_path / "links", evil_env)
    req = write_reqs(tmp_path, "lc-evil==1.0\n")
    report = build_dependencies(tmp_path / "out", req, RUNTIME,
                                config=config_for(tmp_path, tmp_path / "links",
                                                  build_sandbox=False))
    assert report.ok
    assert any("WITHOUT the build sandbox" in w for w in report.warnings)
    written = (tmp_path / "outside" / "pwned.txt").read_text().splitlines()
    assert set(written) == {"metadata", "wheel"}
    assert SECRET in bundle_text(tmp_path / "out")
    assert accepted(listener)


@pytest.mark.slow
@needs_bwrap
@needs_python
@pytest.mark.parametrize("arch,stage,build_env", [
    ("x86_64", "metadata", "local"), ("x86_64", "wheel", "local"),
    ("arm64", "metadata", "local"), ("arm64", "wheel", "local"),
    ("arm64", "wheel", "target-root")])
def test_endless_build_is_killed_with_its_children(tmp_path, evil_env, arch, stage, build_env):
    # `sleep MARK` must be a valid duration; one mark per case, as cases run side by side
    mark = MARK + str(len(stage)) + ("1" if arch == "arm64" else "2") + str(len(build_env))
    evil = dict(evil_env, hang=stage, mark=mark)
    make_sdist(tmp_path / "links", evil)
    req = write_reqs(tmp_path, "lc-evil==1.0\n")
    # pip starts in seconds here, in tens of seconds under qemu-user: the hang must be reached
    timeout = 4 if build_env == "local" else 60
    started = time.monotonic()
    report = build_dependencies(tmp_path / "out", req, RUNTIME, architecture=arch,
                                config=config_for(tmp_path, tmp_path / "links",
                                                  build_timeout=timeout, build_env=build_env))
    took = time.monotonic() - started
    d = {x.name: x for x in report.distributions}["lc-evil"]
    assert d.phase == "missing" and d.reason_code == "sdist-build-failed", d.reason
    text = d.reason + "\n".join(d.attempts)
    assert f"{timeout} s" in text and "--build-timeout" in text, text
    # one timeout, not one per phase (no second wait for the no-compiler retry)
    killed = [a for a in d.attempts if "killed after" in a]
    assert len(killed) == 1, d.attempts
    if build_env == "local":  # (a fresh target-root cache first provisions zig: ~1 min)
        assert took < timeout * 2 + 30, (took, text)
    assert not (tmp_path / "out").exists()
    time.sleep(0.5)
    assert leftover_processes(mark) == []


def test_no_sandbox_means_exit_3_before_build_code_runs(tmp_path, evil_env, monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_works", lambda: False)
    make_sdist(tmp_path / "links", evil_env)
    req = write_reqs(tmp_path, "lc-evil==1.0\n")
    if not has_python((3, 11), platform.machine()):
        pytest.skip("no CPython 3.11 on this machine")
    with pytest.raises(errors.BuildSandboxUnavailable) as exc:
        build_dependencies(tmp_path / "out", req, RUNTIME,
                           config=config_for(tmp_path, tmp_path / "links"))
    assert exc.value.exit_code == 3
    assert "bubblewrap" in str(exc.value) and "--no-build-sandbox" in str(exc.value)
    assert not Path(evil_env["write"]).exists()


@needs_bwrap
def test_wrap_allow_lists_the_environment_and_binds_only_build_dirs(tmp_path, monkeypatch):
    from lambda_compat.resolve import pip_sandbox
    build_dir, tree = tmp_path / "build", tmp_path / "project"
    build_dir.mkdir()
    tree.mkdir()
    monkeypatch.setattr(pip_sandbox, "CONFIG", sandbox.build_sandbox_config(
        enabled=True, timeout=7, writable=[build_dir]))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET)
    monkeypatch.setenv("CFLAGS", "-O2")
    argv = pip_sandbox.wrap(["python3", "-c", "pass"], cwd=str(tree),
                            extra_environ={"PEP517_BUILD_BACKEND": "setuptools.build_meta"})
    assert argv[argv.index("exec") + 1] == "7.0"
    env = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a == "--setenv"}
    assert SECRET not in env.values()
    assert env["CFLAGS"] == "-O2" and env["PEP517_BUILD_BACKEND"] == "setuptools.build_meta"
    assert env["HOME"] == "/tmp" and "PATH" in env
    assert "--clearenv" in argv and "--unshare-all" in argv
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    assert binds == [str(build_dir), str(tree)]  # an in-tree build writes its own tree only
    assert argv[-3:] == ["python3", "-c", "pass"]
