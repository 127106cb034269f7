"""The container build environment (resolve/environments_container.py).

Fast tests check the command lines it builds (mounts, no network, platform, environment), its
spec round trip, what it reads from ``image inspect`` and how it fails, with a stand-in engine
script where an engine must answer. The ``container`` tests build real sdists with podman in
an image standing in for public.ecr.aws/sam/build-pythonX.Y (tests/buildenv_image.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

from lambda_compat import errors
from lambda_compat.resolve import environments_container as ec
from lambda_compat.resolve import wheelhouse
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.resolve.environments_container import ContainerEnvironment

ROOT = Path(__file__).resolve().parent.parent
DIGEST = "sha256:" + "ab" * 32
IMAGE = "public.ecr.aws/sam/build-python3.12"


def env(machine: str = "x86_64", **kw) -> ContainerEnvironment:
    return ContainerEnvironment("podman", None, (3, 12), machine, (2, 34), **kw)


def _flag_values(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_default_image_and_platform():
    assert env().image == IMAGE
    assert env().platform == "linux/amd64"
    assert env("aarch64").platform == "linux/arm64"
    assert ec.default_image((3, 9)) == "public.ecr.aws/sam/build-python3.9"
    with pytest.raises(errors.BadInput):
        env("riscv64")


def test_run_command_line(tmp_path):
    e = env("aarch64")
    src = tmp_path / "pkg-1.0.tar.gz"
    argv = e.run_argv("lc-build-x", src, tmp_path / "wh", tmp_path / "out")
    assert argv[:2] == ["podman", "run"] or argv[0] == "podman"
    assert "--rm" in argv and _flag_values(argv, "--name") == ["lc-build-x"]
    assert _flag_values(argv, "--network") == ["none"]
    assert _flag_values(argv, "--platform") == ["linux/arm64"]
    assert "--pull=never" in argv
    assert _flag_values(argv, "--memory") == [ec.MEMORY]
    assert _flag_values(argv, "--pids-limit") == [str(ec.PIDS)]
    assert _flag_values(argv, "--cap-drop") == ["ALL"]
    # exactly three mounts: the source and the wheelhouse read-only, the output writable
    assert _flag_values(argv, "-v") == [f"{src}:/src/pkg-1.0.tar.gz:ro",
                                        f"{tmp_path / 'wh'}:/wheelhouse:ro",
                                        f"{tmp_path / 'out'}:/out"]
    envs = dict(v.split("=", 1) for v in _flag_values(argv, "-e"))
    assert envs["HOME"] == "/tmp" and envs["PIP_CONFIG_FILE"] == "/dev/null"
    assert not any(k in envs for k in ("CC", "PATH"))
    assert os.environ.get("HOME", "/nonexistent") not in envs.values()
    assert _flag_values(argv, "--entrypoint") == ["python3.12"]
    tail = argv[argv.index(IMAGE) + 1:]
    # --verbose: the backend's output in the log (failed_builds reads it: ignored plugins)
    assert tail == ["-m", "pip", "wheel", "--verbose", "--no-deps", "--no-index", "--find-links",
                    "/wheelhouse", "--no-cache-dir", "--use-pep517", "-w", "/out",
                    "/src/pkg-1.0.tar.gz"]


def test_run_command_line_without_compiler(tmp_path):
    argv = env().run_argv("n", tmp_path / "proj", tmp_path / "wh", tmp_path / "out",
                          no_compiler=tmp_path / "nocc", source_writable=True,
                          path="/var/lang/bin:/usr/bin:/bin")
    envs = dict(v.split("=", 1) for v in _flag_values(argv, "-e"))
    for var in ("CC", "CXX", "LDSHARED"):
        assert envs[var] == "/lc-no-compiler/cc"
    assert envs["PATH"] == "/lc-no-compiler:/var/lang/bin:/usr/bin:/bin"
    mounts = _flag_values(argv, "-v")
    assert f"{tmp_path / 'proj'}:/src/proj" in mounts  # our copy of a project directory
    assert f"{tmp_path / 'nocc'}:/lc-no-compiler:ro" in mounts


def test_user_mapping(monkeypatch, tmp_path):
    docker = ContainerEnvironment("/usr/bin/docker", None, (3, 12), "x86_64", (2, 34))
    argv = docker.run_argv("n", tmp_path / "s", tmp_path / "w", tmp_path / "o")
    assert _flag_values(argv, "--user") == [f"{os.getuid()}:{os.getgid()}"]
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    argv = env().run_argv("n", tmp_path / "s", tmp_path / "w", tmp_path / "o")
    assert _flag_values(argv, "--userns") == ["keep-id"]


def test_paths_with_colons_are_refused(tmp_path):
    with pytest.raises(errors.BadInput):
        env().run_argv("n", tmp_path / "a:b.tar.gz", tmp_path / "w", tmp_path / "o")


def test_download_command_line(tmp_path):
    argv = env().download_argv(["setuptools", "wheel", "cffi>=1"], tmp_path / "wh", PipOptions())
    assert argv[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in argv
    platforms = _flag_values(argv, "--platform")
    assert platforms[0] == "manylinux_2_34_x86_64" and "manylinux2014_x86_64" in platforms
    assert "manylinux_2_35_x86_64" not in platforms and "linux_x86_64" not in platforms
    assert _flag_values(argv, "--python-version") == ["3.12"]
    assert _flag_values(argv, "--implementation") == ["cp"]
    assert _flag_values(argv, "--abi") == ["cp312"]
    assert argv[-3:] == ["setuptools", "wheel", "cffi>=1"]
    assert not any("--index-url" in a or "pypi" in a for a in argv), "no index of ours"
    arm = env("aarch64").download_argv([], tmp_path, PipOptions(
        index_url="https://mirror.example/simple", no_index=False, find_links=("/w",)))
    assert _flag_values(arm, "--platform")[0] == "manylinux_2_34_aarch64"
    assert _flag_values(arm, "--index-url") == ["https://mirror.example/simple"]
    assert _flag_values(arm, "--find-links") == ["/w"]


def test_spec_round_trip():
    e = env("aarch64", pull=True)
    spec = json.loads(json.dumps(e.to_spec()))
    assert spec["kind"] == "container"
    back = ContainerEnvironment.from_spec(spec)
    assert back.to_spec() == e.to_spec()
    assert (back.image, back.python_version, back.machine, back.glibc, back.pull) == \
        (IMAGE, (3, 12), "aarch64", (2, 34), True)
    with pytest.raises(errors.BadInput):
        ContainerEnvironment.from_spec({**spec, "kind": "local"})


def test_inspect_identity_is_the_repository_digest():
    podman = [{"Id": "cd" * 32, "Architecture": "amd64",
               "RepoDigests": ["other.example/x@sha256:" + "00" * 32, f"{IMAGE}@{DIGEST}"],
               "Config": {"Env": ["PATH=/var/lang/bin:/usr/bin", "LANG=C"],
                          "Labels": {"a": "b"}}}]
    info = ec.parse_inspect(json.dumps(podman), IMAGE + ":latest")
    assert info is not None
    assert (info.identity, info.architecture, info.path) == (DIGEST, "amd64",
                                                            "/var/lang/bin:/usr/bin")
    local = ec.parse_inspect(json.dumps([{"Id": "cd" * 32, "Config": {}}]), "localhost/x:y")
    assert local is not None and local.identity == "sha256:" + "cd" * 32
    assert local.path == ec._DEFAULT_PATH
    assert ec.parse_inspect("not json", IMAGE) is None


def _fake_engine(tmp_path: Path, script: str) -> str:
    """A stand-in ``podman`` script: records its arguments in ``<exe>.calls``."""
    exe = tmp_path / "podman"
    exe.write_text("#!/bin/sh\necho \"$@\" >> \"$0.calls\"\n" + script, encoding="utf-8")
    exe.chmod(0o755)
    return str(exe)


def test_key_names_image_digest_python_and_machine(tmp_path):
    inspect = json.dumps([{"Id": "cd" * 32, "Architecture": "amd64",
                           "RepoDigests": [f"{IMAGE}@{DIGEST}"], "Config": {}}])
    exe = _fake_engine(tmp_path, f"case \" $* \" in *' image inspect '*) echo '{inspect}'; exit 0;; esac\nexit 1\n")
    e = ContainerEnvironment(exe, None, (3, 12), "x86_64", (2, 34))
    e.prepare()
    assert e.key == "container-public.ecr.aws_sam_build-python3.12-" + "ab" * 8 + "-cp312-x86_64"
    assert "/" not in e.key and ":" not in e.key
    assert "@sha256:abab" in e.describe() and "(podman, linux/amd64)" in e.describe()
    assert " pull " not in Path(exe + ".calls").read_text()


def test_missing_image_without_pull_says_how_to_get_it(tmp_path, monkeypatch):
    exe = _fake_engine(tmp_path, "exit 1\n")
    e = ContainerEnvironment(exe, None, (3, 12), "x86_64", (2, 34))
    monkeypatch.setattr(ec.binfmt, "host_machine", lambda: "x86_64")
    with pytest.raises(errors.BuildEnvironmentUnavailable) as info:
        e.prepare()
    assert isinstance(info.value, errors.EnvironmentProblem)
    assert "not present locally" in str(info.value)
    assert "pull --platform linux/amd64 " + IMAGE in info.value.hint
    assert "--build-env container" in info.value.hint
    assert " pull " not in Path(exe + ".calls").read_text()


def test_failed_pull_is_an_environment_problem_with_a_hint(tmp_path, monkeypatch):
    exe = _fake_engine(tmp_path, "case \" $* \" in *' pull '*) echo 'denied: no access' >&2;; esac\nexit 1\n")
    e = ContainerEnvironment(exe, None, (3, 12), "x86_64", (2, 34), pull=True)
    monkeypatch.setattr(ec.binfmt, "host_machine", lambda: "x86_64")
    with pytest.raises(errors.BuildEnvironmentUnavailable) as info:
        e.prepare()
    assert "pulling it failed: denied: no access" in str(info.value)
    assert "access to the registry (public.ecr.aws)" in info.value.hint
    assert f"pull --platform linux/amd64 {IMAGE}" in Path(exe + ".calls").read_text()


def test_foreign_machine_needs_binfmt(monkeypatch):
    monkeypatch.setattr(ec.binfmt, "host_machine", lambda: "x86_64")
    monkeypatch.setattr(ec.binfmt, "status", lambda m: ec.binfmt.BinfmtStatus(
        m, False, False, None, ""))
    with pytest.raises(errors.BuildEnvironmentUnavailable, match="cannot run") as info:
        env("aarch64").prepare()
    assert "binfmt" in info.value.hint


def test_no_engine(monkeypatch):
    with pytest.raises(errors.BuildEnvironmentUnavailable) as info:
        ContainerEnvironment.for_target((3, 12), "x86_64", (2, 34), engine="no-such-engine-lc")
    assert "Docker or podman" in info.value.hint


def test_container_removed_when_interrupted(tmp_path):
    exe = _fake_engine(tmp_path, "exit 0\n")
    e = ContainerEnvironment(exe, None, (3, 12), "x86_64", (2, 34))
    with pytest.raises(KeyboardInterrupt):
        with e._container() as c:
            raise KeyboardInterrupt
    assert f"rm -f --time 0 --ignore {c['name']}" in Path(exe + ".calls").read_text()
    with e._container() as done:
        done["finished"] = True
    assert done["name"] not in Path(exe + ".calls").read_text()


def test_build_requires_evaluated_for_the_target(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=61", "cffi>=1.15; platform_machine == 'aarch64'",
                    "oldthing; python_version < '3.9'", "numpy>=2; python_version >= '3.12'"]
        build-backend = "setuptools.build_meta"
        """), encoding="utf-8")
    assert wheelhouse.build_requires(project, (3, 12), "aarch64") == \
        ["setuptools>=61", "cffi>=1.15", "numpy>=2", "wheel"]
    assert wheelhouse.build_requires(project, (3, 8), "x86_64") == \
        ["setuptools>=61", "oldthing", "wheel"]
    sdist = tmp_path / "proj-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        tf.add(project / "pyproject.toml", "proj-1.0/pyproject.toml")
    assert wheelhouse.build_requires(sdist, (3, 11), "x86_64") == ["setuptools>=61", "wheel"]
    zipped = tmp_path / "proj-1.0.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.write(project / "pyproject.toml", "proj-1.0/pyproject.toml")
    assert "setuptools>=61" in wheelhouse.build_requires(zipped, (3, 11), "x86_64")
    assert wheelhouse.build_requires(tmp_path / "none.tar.gz", (3, 11), "x86_64") == \
        ["setuptools>=40.8.0", "wheel"]


# --------------------------------------------------------------------------- podman, real builds

def _podman() -> str:
    exe = shutil.which("podman")
    if exe is None:
        pytest.skip("podman is not installed")
    return exe


@pytest.fixture(scope="module")
def build_image():
    """Stands in for public.ecr.aws/sam/build-python3.11 (which cannot be pulled here): a
    Debian bookworm root with CPython 3.11, pip, setuptools, wheel, gcc and the headers."""
    _podman()
    from tests.buildenv_image import ensure_build_image
    try:
        return ensure_build_image()
    except RuntimeError as e:
        pytest.skip(f"cannot build the stand-in build image here: {e}")


def _sdist(tmp_path: Path, name: str, setup_py: str, extra=None) -> Path:
    top = f"{name}-1.0"
    out = tmp_path / f"{top}.tar.gz"
    staging = tmp_path / "sdist-src" / top
    staging.mkdir(parents=True)
    (staging / "setup.py").write_text(textwrap.dedent(setup_py), encoding="utf-8")
    for rel, src in (extra or {}).items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, staging / rel)
    with tarfile.open(out, "w:gz") as tf:
        tf.add(staging, top)
    return out


def _gone(name: str) -> bool:
    return subprocess.run([_podman(), "container", "exists", name],
                          capture_output=True).returncode == 1


def _elf_machine(data: bytes) -> int:
    return int.from_bytes(data[18:20], "little")


@pytest.mark.container
@pytest.mark.slow
def test_builds_c_extension_in_the_build_image(build_image, tmp_path):
    """The glibc-probe fixture (a C extension), as an sdist and as a project directory, built
    with podman in the stand-in for public.ecr.aws/sam/build-python3.11 (not pullable here):
    an x86_64 CPython 3.11 wheel, cached on the second call; without a compiler it fails and
    says the compiler was disabled; no container is left behind."""
    fixture = ROOT / "fixtures" / "sdists" / "glibc-probe"
    sdist = _sdist(tmp_path, "glibc-probe", (fixture / "setup.py").read_text(),
                   {"src/glibc_probe.c": fixture / "src" / "glibc_probe.c"})
    e = ContainerEnvironment("podman", build_image, (3, 11), "x86_64", (2, 36))
    cache = tmp_path / "cache"
    kw = dict(cache_dir=cache, pip=PipOptions(), timeout=600, cwd=tmp_path, sandbox=True)
    result = e.build_wheel(sdist, "a" * 64, no_compiler=False, **kw)
    assert result.ok, result.log.read_text()
    assert result.wheel.name.startswith("glibc_probe-1.0-cp311-cp311-linux_x86_64")
    with zipfile.ZipFile(result.wheel) as zf:
        so = [n for n in zf.namelist() if n.endswith(".so")]
        assert so and _elf_machine(zf.read(so[0])) == 62  # EM_X86_64
    log = result.log.read_text()
    assert "--network none" in log and "built in: container localhost/lc-test-buildenv" in log
    assert result.interpreter.startswith("container localhost/lc-test-buildenv:bookworm-amd64@")
    assert e.last_containers and all(_gone(n) for n in e.last_containers)
    again = e.build_wheel(sdist, "a" * 64, no_compiler=False, **kw)
    assert again.cached and again.wheel == result.wheel

    nocc = e.build_wheel(sdist, "a" * 64, no_compiler=True, **kw)
    assert not nocc.ok and nocc.wheel is None
    assert "compiler disabled for the pure-Python fallback build" in nocc.log.read_text()

    project = e.build_wheel(fixture, "b" * 64, no_compiler=False, **kw)
    assert project.ok, project.log.read_text()
    assert not (fixture / "build").exists(), "the project directory is not written to"


@pytest.mark.container
@pytest.mark.slow
def test_build_is_isolated_and_bounded(build_image, tmp_path):
    """In the stand-in build image: the build sees no network and no HOME of the host; a build
    that outlives its timeout is killed and its container removed."""
    probe = _sdist(tmp_path, "envprobe", """\
        import os, socket
        from setuptools import setup
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=3).close()
            raise SystemExit("ISOLATION BROKEN: network reachable")
        except OSError:
            pass
        assert os.environ["HOME"] == "/tmp", os.environ["HOME"]
        assert not os.path.exists("/root/.cache/lambda-compat"), "host files visible"
        assert sorted(os.listdir("/src")) == ["envprobe-1.0.tar.gz"]
        setup(name="envprobe", version="1.0", py_modules=[])
        """)
    e = ContainerEnvironment("podman", build_image, (3, 11), "x86_64", (2, 36))
    kw = dict(cache_dir=tmp_path / "cache", pip=PipOptions(), cwd=tmp_path, sandbox=True)
    result = e.build_wheel(probe, "c" * 64, no_compiler=False, timeout=600, **kw)
    assert result.ok, result.log.read_text()
    assert result.wheel.name == "envprobe-1.0-py3-none-any.whl"

    sleeper = _sdist(tmp_path, "sleeper", """\
        import time
        time.sleep(600)
        """)
    slow = e.build_wheel(sleeper, "d" * 64, no_compiler=False, timeout=20, **kw)
    assert not slow.ok and slow.timed_out
    assert "killed after 20 s" in slow.log.read_text()
    assert e.last_containers and all(_gone(n) for n in e.last_containers)


def test_build_dependencies_are_fetched_without_the_users_no_binary(tmp_path):
    # --no-binary names the projects the user wants built (msgpack for a registry proof);
    # beside --platform pip refuses it, and the build dependencies are wheels anyway.
    pip = PipOptions(index_url="https://example.invalid/simple",
                     extra_args=("--no-binary", "msgpack", "--no-binary=other", "--pre"))
    argv = wheelhouse.download_argv(["setuptools>=61", "wheel"], tmp_path, pip, (3, 11),
                                    "aarch64", (2, 36))
    assert "--no-binary" not in argv and "msgpack" not in argv
    assert not any(a.startswith("--no-binary") for a in argv)
    assert "--pre" in argv and "https://example.invalid/simple" in argv
    assert "--only-binary=:all:" in argv and argv[-2:] == ["setuptools>=61", "wheel"]
