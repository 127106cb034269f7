"""host/toolchain.py: building within the runtime's glibc with zig (docs/building.md).

The fast tests check the wrappers and environments with a stand-in ``zig`` (a script that
records its arguments) and the provisioning logic with pip replaced. The slow ones build
fixtures/sdists/glibc-probe with a local CPython 3.11: with zig for x86_64-linux-gnu.2.26 its
module needs no GLIBC_ version above 2.26, and (the control, so the test can fail) with the
host's gcc on this glibc >= 2.34 machine it needs GLIBC_2.33/2.34. They install ziglang into
the user's lambda-compat cache on first use (PyPI), and keep zig's compiled libc stubs there.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from lambda_compat import errors
from lambda_compat.build.builder import default_cache_dir
from lambda_compat.host import lifecycle, toolchain
from lambda_compat.host.interpreters import Interpreter, find_interpreter
from lambda_compat.ui import NullUI, RecordingUI
from lambda_compat.verify.elf import ELFInfo, read_elf

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "sdists" / "glibc-probe"
#: The calls of glibc_probe.c that get new symbol versions on a new glibc.
PROBED = ("stat", "fstat", "pthread_create", "pthread_join", "dlopen", "dlsym", "dlclose")


# --------------------------------------------------------------------------- stand-in zig

@pytest.fixture
def fake_zig(tmp_path) -> Path:
    """A `zig` that writes its arguments (one per line) and ZIG_GLOBAL_CACHE_DIR to $ZIG_LOG."""
    zig = tmp_path / "fakezig" / "zig"
    zig.parent.mkdir()
    zig.write_text('#!/bin/sh\n{ echo "cache=$ZIG_GLOBAL_CACHE_DIR"; for a do echo "$a"; done; }'
                   ' > "$ZIG_LOG"\n')
    zig.chmod(0o755)
    return zig


def run_wrapper(wrapper: Path, args: List[str], log: Path,
                env: Optional[Dict[str, str]] = None) -> Tuple[str, List[str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ZIG_")}
    subprocess.run([str(wrapper), *args], check=True, env={**base, **(env or {}),
                                                           "ZIG_LOG": str(log)})
    lines = log.read_text().splitlines()
    return lines[0].partition("=")[2], lines[1:]


def test_zig_target_names():
    assert toolchain.zig_target("x86_64", (2, 26)) == "x86_64-linux-gnu.2.26"
    assert toolchain.zig_target("aarch64", (2, 34)) == "aarch64-linux-gnu.2.34"
    for machine, glibc in (("arm64", (2, 26)), ("i686", (2, 26)), ("x86_64", (2, 5)),
                           ("x86_64", (3, 0))):
        with pytest.raises(errors.BadInput):
            toolchain.zig_target(machine, glibc)


def test_compiler_env_variables(tmp_path, fake_zig):
    work = tmp_path / "cc-x86_64"
    env = toolchain.compiler_env(fake_zig, "x86_64", (2, 26), work)
    assert env == {
        "CC": f"{work}/cc", "CXX": f"{work}/c++", "CPP": f"{work}/cc -E",
        "LDSHARED": f"{work}/cc -shared", "LDCXXSHARED": f"{work}/c++ -shared",
        "AR": f"{work}/ar", "RANLIB": f"{work}/ranlib",
        "CMAKE_TOOLCHAIN_FILE": f"{work}/toolchain.cmake",
        "ZIG_GLOBAL_CACHE_DIR": f"{work}/zig-cache", "ZIG_LOCAL_CACHE_DIR": f"{work}/zig-cache",
    }
    for name in ("cc", "c++", "ar", "ranlib"):
        assert os.access(work / name, os.X_OK), name
    cmake = (work / "toolchain.cmake").read_text()
    assert f'set(CMAKE_C_COMPILER "{work}/cc")' in cmake and f"{work}/ranlib" in cmake
    # Target logic never reads the host: the same arguments, the same answer (and scripts).
    again = toolchain.compiler_env(fake_zig, "x86_64", (2, 26), work)
    assert again == env
    shared = toolchain.compiler_env(fake_zig, "aarch64", (2, 17), tmp_path / "a",
                                    zig_cache=tmp_path / "zc")
    assert shared["ZIG_GLOBAL_CACHE_DIR"] == str(tmp_path / "zc")
    assert "aarch64-linux-gnu.2.17" in (tmp_path / "a" / "cc").read_text()


def test_cc_wrapper_targets_and_filters(tmp_path, fake_zig):
    work = tmp_path / "w"
    toolchain.compiler_env(fake_zig, "x86_64", (2, 26), work)
    log = tmp_path / "log"
    cache, argv = run_wrapper(work / "cc", [
        "-O2", "-flto=auto", "-ffat-lto-objects", "-march=x86-64-v2", "-mtune=generic",
        "-Wl,--exclude-libs,ALL", "-Wl,-Bsymbolic-functions", "-specs=/x.specs",
        "-DNAME=two words", "-march=native", "-Wl,-z,relro", "a b.c", "-o", "out.so"], log)
    assert argv == ["cc", "-target", "x86_64-linux-gnu.2.26", "-O2", "-march=x86_64_v2",
                    "-DNAME=two words", "-Wl,-z,relro", "a b.c", "-o", "out.so"]
    assert cache == str(work / "zig-cache")
    # An explicit ZIG_GLOBAL_CACHE_DIR wins over the wrapper's default.
    cache, argv = run_wrapper(work / "c++", ["-march=x86-64", "x.cc"], log,
                              {"ZIG_GLOBAL_CACHE_DIR": str(tmp_path / "elsewhere")})
    assert cache == str(tmp_path / "elsewhere")
    assert argv == ["c++", "-target", "x86_64-linux-gnu.2.26", "-march=x86_64", "x.cc"]


def test_cc_wrapper_names_the_language_of_stdin(tmp_path, fake_zig):
    # meson runs `cc -E -dM -`; zig's clang refuses that with a glibc-versioned target
    work = tmp_path / "w"
    toolchain.compiler_env(fake_zig, "aarch64", (2, 34), work)
    log = tmp_path / "log"
    _, argv = run_wrapper(work / "cc", ["-E", "-dM", "-"], log)
    assert argv == ["cc", "-target", "aarch64-linux-gnu.2.34", "-E", "-dM", "-x", "c", "-"]
    _, argv = run_wrapper(work / "c++", ["-E", "-dM", "-"], log)
    assert argv[-3:] == ["-x", "c++", "-"]
    # a language already named, and `-` elsewhere, are left alone
    _, argv = run_wrapper(work / "cc", ["-x", "c", "-E", "-"], log)
    assert argv[3:] == ["-x", "c", "-E", "-"]
    _, argv = run_wrapper(work / "cc", ["-xc", "-"], log)
    assert argv[3:] == ["-xc", "-"]
    _, argv = run_wrapper(work / "cc", ["-o", "-", "-E", "a.c"], log)   # `-` as the output
    assert argv[3:] == ["-o", "-", "-E", "a.c"]


def test_cc_wrapper_answers_the_linker_version_as_zig_s_lld(tmp_path, fake_zig):
    # meson identifies the linker by `cc -Wl,--version`; before 1.6 it knew no "zig ld"
    work = tmp_path / "w"
    toolchain.compiler_env(fake_zig, "x86_64", (2, 26), work)
    log = tmp_path / "log"
    for tool in ("cc", "c++"):
        _, argv = run_wrapper(work / tool, ["-O2", "-Wl,--version"], log)
        assert argv == ["ld.lld", "--version"]
    _, argv = run_wrapper(work / "cc", ["-Wl,--as-needed", "a.o"], log)   # other -Wl, kept
    assert argv[3:] == ["-Wl,--as-needed", "a.o"]


def test_ar_and_ranlib_wrappers_pass_everything(tmp_path, fake_zig):
    work = tmp_path / "w"
    toolchain.compiler_env(fake_zig, "aarch64", (2, 26), work)
    log = tmp_path / "log"
    assert run_wrapper(work / "ar", ["rcs", "lib x.a", "-flto", "a.o"], log)[1] == [
        "ar", "rcs", "lib x.a", "-flto", "a.o"]
    assert run_wrapper(work / "ranlib", ["libx.a"], log)[1] == ["ranlib", "libx.a"]
    _, argv = run_wrapper(work / "cc", ["-march=armv8.2-a+crypto", "-c", "x.c"], log)
    assert argv == ["cc", "-target", "aarch64-linux-gnu.2.26", "-c", "x.c"]


def test_compiler_env_refuses_whitespace(tmp_path, fake_zig):
    with pytest.raises(errors.BadInput):
        toolchain.compiler_env(fake_zig, "x86_64", (2, 26), tmp_path / "with space")


# --------------------------------------------------------------------------- finding zig

@pytest.fixture
def no_zig(monkeypatch, tmp_path):
    """Nothing to find: no $ZIG, an empty PATH, no ziglang package."""
    monkeypatch.delenv("ZIG", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    monkeypatch.setattr(toolchain, "_from_package", lambda: None)


def test_find_zig_order(tmp_path, monkeypatch, fake_zig, no_zig):
    cache = tmp_path / "cache"
    assert toolchain.find_zig(cache) is None
    installed = toolchain.installed_dir(cache) / "ziglang" / "zig"
    installed.parent.mkdir(parents=True)
    shutil.copy(fake_zig, installed)
    assert toolchain.find_zig(cache) == installed
    assert toolchain.find_zig(None) is None
    monkeypatch.setattr(toolchain, "_from_package", lambda: fake_zig)
    assert toolchain.find_zig(cache) == fake_zig
    on_path = tmp_path / "bin" / "zig"
    on_path.parent.mkdir()
    shutil.copy(fake_zig, on_path)
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert toolchain.find_zig(cache) == on_path
    monkeypatch.setenv("ZIG", str(installed))
    assert toolchain.find_zig(cache) == installed


def test_find_zig_explicit_but_broken(tmp_path, monkeypatch):
    monkeypatch.setenv("ZIG", str(tmp_path / "nope"))
    with pytest.raises(errors.EnvironmentProblem) as info:
        toolchain.find_zig(tmp_path)
    assert info.value.exit_code == 3 and "ZIG=" in str(info.value)


def test_find_zig_package_location(tmp_path, monkeypatch):
    package = tmp_path / "site" / "ziglang"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "zig").write_text("#!/bin/sh\n")
    (package / "zig").chmod(0o755)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert toolchain._from_package() == package / "zig"


def _fake_version(monkeypatch):
    monkeypatch.setattr(toolchain, "zig_version", lambda zig: "0.0-test")


def test_ensure_zig_installs_once(tmp_path, monkeypatch, fake_zig, no_zig):
    _fake_version(monkeypatch)
    calls: List[List[str]] = []

    def fake_run(argv, **kw):
        calls.append(list(argv))
        target = Path(argv[argv.index("--target") + 1])
        (target / "ziglang").mkdir(parents=True)
        shutil.copy(fake_zig, target / "ziglang" / "zig")
        return 0, False

    monkeypatch.setattr(lifecycle, "run", fake_run)
    ui = RecordingUI()
    zig = toolchain.ensure_zig(tmp_path / "cache", ui)
    assert zig == toolchain.installed_dir(tmp_path / "cache") / "ziglang" / "zig"
    assert ui.names() == ["toolchain-install-start", "toolchain-install-done",
                          "toolchain-found"]
    (argv,) = calls
    # pip of this environment, its own configuration for the index: no index URL of ours.
    assert argv[:4] == [sys.executable, "-m", "pip", "install"]
    assert f"ziglang=={toolchain.ZIGLANG_VERSION}" in argv
    assert not any("index" in a or "://" in a for a in argv)
    # Installed: the second call finds it; no partial directory is left behind.
    assert toolchain.ensure_zig(tmp_path / "cache", RecordingUI()) == zig and len(calls) == 1
    left = sorted(p.name for p in (tmp_path / "cache" / "toolchains").iterdir())
    assert left == [f"ziglang-{toolchain.ZIGLANG_VERSION}",
                    f"ziglang-{toolchain.ZIGLANG_VERSION}.lock",
                    f"ziglang-{toolchain.ZIGLANG_VERSION}.log"]


def test_ensure_zig_install_failure(tmp_path, monkeypatch, no_zig):
    def failing(argv, *, stdout, **kw):
        stdout.write(b"ERROR: No matching distribution found for ziglang\n")
        return 1, False

    monkeypatch.setattr(lifecycle, "run", failing)
    ui = RecordingUI()
    with pytest.raises(errors.EnvironmentProblem) as info:
        toolchain.ensure_zig(tmp_path / "cache", ui)
    text = str(info.value)
    assert info.value.exit_code == 3
    assert "pip exited with status 1" in text and "No matching distribution" in text
    assert "pip install ziglang" in text
    assert ui.events[-1] == ("toolchain-install-done", {
        "tool": "zig", "ok": False, "seconds": ui.events[-1][1]["seconds"],
        "directory": str(toolchain.installed_dir(tmp_path / "cache"))})
    assert not toolchain.installed_dir(tmp_path / "cache").exists()


def test_ensure_zig_that_does_not_run(tmp_path, monkeypatch, fake_zig):
    monkeypatch.setenv("ZIG", str(fake_zig))
    monkeypatch.setattr(toolchain, "zig_version", lambda zig: None)
    with pytest.raises(errors.EnvironmentProblem, match="does not run"):
        toolchain.ensure_zig(tmp_path, NullUI())


# --------------------------------------------------------------------------- real builds

def host_glibc() -> Tuple[int, int]:
    name = os.confstr("CS_GNU_LIBC_VERSION") or ""
    major, _, minor = name.partition(" ")[2].partition(".")
    return (int(major), int(minor)) if major.isdigit() and minor.isdigit() else (0, 0)


@pytest.fixture(scope="module")
def zig() -> Path:
    return toolchain.ensure_zig(default_cache_dir(), NullUI())


@pytest.fixture(scope="module")
def python311() -> Interpreter:
    interp = find_interpreter((3, 11), platform.machine())
    if interp is None:
        pytest.skip("no local CPython 3.11 (pythonX.Y on PATH, pyenv, uv) to build with")
    if subprocess.run([interp.path, "-c", "import setuptools"],
                      capture_output=True).returncode != 0:
        pytest.skip(f"{interp.describe()} has no setuptools to build the fixture with")
    return interp


def build_ext(python: Interpreter, tmp_path: Path, env: Dict[str, str]) -> Path:
    """``setup.py build_ext`` of the fixture (what pip's legacy path and bdist_wheel run)."""
    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    proc = subprocess.run([python.path, "setup.py", "build_ext", "-b", "out", "-t", "tmp"],
                          cwd=src, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (so,) = (src / "out").glob("glibc_probe*.so")
    return so


def unversioned_libc_calls(so: Path) -> List[str]:
    """PROBED functions the .so calls without a symbol version (would bind to anything)."""
    if not shutil.which("objdump"):
        return []
    out = subprocess.run(["objdump", "-T", str(so)], capture_output=True, text=True).stdout
    return [line.split()[-1] for line in out.splitlines()
            if "*UND*" in line and "GLIBC" not in line and line.split()[-1] in PROBED]


def glibc_ceiling(info: ELFInfo) -> Tuple[int, ...]:
    found = info.max_version("GLIBC_")
    assert found is not None, info.version_needs
    return found


@pytest.mark.slow
@pytest.mark.network
def test_fixture_within_glibc_2_26_with_zig(zig, python311, tmp_path):
    if platform.machine() != "x86_64":
        pytest.skip("the CPython 3.11 headers here are not x86_64 ones")
    env = toolchain.compiler_env(zig, "x86_64", (2, 26), tmp_path / "cc",
                                 zig_cache=toolchain.zig_cache_dir(default_cache_dir()))
    so = build_ext(python311, tmp_path / "zig", env)
    info = read_elf(so)
    assert info.machine == "x86_64"
    assert glibc_ceiling(info) <= (2, 26), info.versions_with_prefix("GLIBC_")
    assert not unversioned_libc_calls(so)
    # ... and the module works (here: the host's newer glibc runs it too).
    proc = subprocess.run([python311.path, "-c", "import glibc_probe, sys; "
                           "print(glibc_probe.run(sys.executable)[1])"],
                          cwd=so.parent, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "42", proc.stderr


@pytest.mark.slow
def test_fixture_with_host_gcc_needs_newer_glibc(python311, tmp_path):
    """The control: the same build with this machine's gcc exceeds AL2's glibc 2.26."""
    if not shutil.which("gcc") or host_glibc() < (2, 34):
        pytest.skip(f"needs gcc and glibc >= 2.34 here (glibc {host_glibc()})")
    so = build_ext(python311, tmp_path / "gcc", {"CC": "gcc", "LDSHARED": "gcc -shared"})
    versions = read_elf(so).versions_with_prefix("GLIBC_")
    assert glibc_ceiling(read_elf(so)) >= (2, 34), versions
    assert "GLIBC_2.33" in versions      # stat/fstat


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("glibc", [(2, 17), (2, 26)])
def test_plain_c_part_cross_compiled_for_aarch64(zig, tmp_path, glibc):
    """aarch64 from any host. Only the part without Python.h: this machine's Python headers
    are not aarch64 ones (a full aarch64 extension build takes them from a target root)."""
    env = toolchain.compiler_env(zig, "aarch64", glibc, tmp_path / "cc",
                                 zig_cache=toolchain.zig_cache_dir(default_cache_dir()))
    so = tmp_path / "libglibc_probe.so"
    proc = subprocess.run(
        [env["CC"], "-shared", "-fPIC", "-O2", "-DGLIBC_PROBE_NO_PYTHON",
         str(FIXTURE / "src" / "glibc_probe.c"), "-o", str(so)],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr
    info = read_elf(so)
    assert info.machine == "aarch64" and info.elf_type == "ET_DYN"
    assert glibc_ceiling(info) <= glibc <= (2, 26), info.versions_with_prefix("GLIBC_")
    assert not unversioned_libc_calls(so)


def test_zig_extra_pins_the_installed_version():
    text = (ROOT / "pyproject.toml").read_text()
    assert f'zig = ["ziglang=={toolchain.ZIGLANG_VERSION}"]' in text


@pytest.mark.slow
@pytest.mark.network
@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_real_zig_gives_its_macros_to_meson(zig, tmp_path, machine):
    # what meson runs to know the compiler: before, zig refused the glibc-versioned target
    work = tmp_path / "w"
    toolchain.compiler_env(zig, machine, (2, 34), work, zig_cache=default_cache_dir()
                           / "toolchains" / "zig-cache")
    for tool in ("cc", "c++"):
        proc = subprocess.run([str(work / tool), "-E", "-dM", "-"], input="", text=True,
                              capture_output=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert "#define __clang__ 1" in proc.stdout
        arch_macro = "__x86_64__" if machine == "x86_64" else "__aarch64__"
        assert f"#define {arch_macro} 1" in proc.stdout
        # and the linker, as meson identifies it ('LLD' on the first line: ld.lld)
        proc = subprocess.run([str(work / tool), "-Wl,--version"], text=True,
                              capture_output=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        first = proc.stdout.splitlines()[0]
        assert first.startswith("LLD ") and "compatible with GNU linkers" in first, first
