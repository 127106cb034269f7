"""A C/C++ toolchain that builds *within the runtime's glibc*: zig, and environments using it.

A wheel built here for an Amazon Linux 2 runtime (glibc 2.26) must need no ``GLIBC_`` symbol
version above 2.26, whatever glibc this machine has: the host's gcc links against the host's
glibc (``stat@GLIBC_2.33``, ``pthread_create@GLIBC_2.34`` on glibc >= 2.34). ``zig cc
-target <machine>-linux-gnu.<major>.<minor>`` compiles against headers and links against
stub libraries of exactly that glibc version, for either architecture, with one static
executable (maturin uses it for the same purpose). See docs/building.md.

* :func:`find_zig`: a zig executable, from ``$ZIG``, ``zig`` on PATH, the ``ziglang`` package
  in this environment, or one :func:`ensure_zig` installed earlier into the cache;
* :func:`ensure_zig`: find it or install ``ziglang==ZIGLANG_VERSION`` into
  ``<cache_dir>/toolchains/`` (pip, with pip's own configuration for the index);
* :func:`compiler_env`: the environment variables (CC, CXX, LDSHARED, AR, ...) that make
  setuptools, meson, cmake and plain Makefiles compile and link with zig for a target,
  through small wrapper scripts.

The target (machine, glibc) is always a parameter: nothing here reads it from the host; only
the location of the zig binary is this machine's.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from .. import errors
from ..ui import UI
from . import lifecycle

#: The ziglang release :func:`ensure_zig` installs (PyPI wheels: manylinux x86_64/aarch64).
ZIGLANG_VERSION = "0.17.1"
#: Seconds pip may take to install it (a ~100 MB wheel, ~400 MB unpacked).
INSTALL_TIMEOUT = 900.0
#: Machines zig targets here (Lambda's x86_64 and arm64).
MACHINES = ("x86_64", "aarch64")
_PARTIAL = ".ziglang-partial-"
_INSTALL_HINT = (f"Install zig into lambda-compat's environment (`pip install "
                 f"ziglang=={ZIGLANG_VERSION}`), put a `zig` executable on PATH, or point "
                 "the ZIG environment variable at one.")

# gcc spellings zig's clang driver rejects (or that would be wrong for another machine), as
# `case` patterns of the wrapper script; each is dropped. The reasons, tested with zig 0.17:
#  -flto=auto/-flto=N/-flto-partition=*  "invalid -flto mode" / unknown option: gcc's LTO
#      syntax; LTO is only an optimization, so every LTO flag goes (also -ffat-lto-objects,
#      -fuse-linker-plugin) rather than switching link-time optimizers;
#  -Wl,--exclude-libs,*  -Wl,-Bsymbolic-functions  "unsupported linker arg" (zig's lld
#      driver); both only tune symbol binding;
#  -march=native -mcpu=native -mtune=*  the host's CPU is not the target's (and zig rejects
#      -mtune=generic); -march=armv8*-a  zig names aarch64 CPUs, not ISA levels: the baseline
#      (armv8-a) stays;
#  -specs=*  gcc spec files (Debian/Ubuntu hardening) mean nothing to clang.
_DROPPED = (
    "-flto", "-flto=*", "-flto-partition=*", "-ffat-lto-objects", "-fno-fat-lto-objects",
    "-fuse-linker-plugin", "-Wl,--exclude-libs,*", "-Wl,--exclude-libs=*",
    "-Wl,-Bsymbolic-functions", "-march=native", "-mcpu=native", "-mtune=*",
    "-march=armv8*", "-march=armv9*", "-specs=*",
)


# --------------------------------------------------------------------------- finding zig

def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def installed_dir(cache_dir: Path) -> Path:
    """Where :func:`ensure_zig` installs ``ziglang``: ``<cache_dir>/toolchains/ziglang-<v>``."""
    return Path(cache_dir) / "toolchains" / f"ziglang-{ZIGLANG_VERSION}"


def _from_env() -> Optional[Path]:
    value = os.environ.get("ZIG")
    if not value:
        return None
    path = Path(value) if os.sep in value else Path(shutil.which(value) or value)
    if not _executable(path):
        raise errors.EnvironmentProblem(
            f"ZIG={value}: not an executable file.",
            hint="Point ZIG at a zig executable, or unset it to let lambda-compat find or "
                 "install one.")
    return path.absolute()


def _from_package() -> Optional[Path]:
    """The ``ziglang`` package importable here (found, not imported: importing runs zig)."""
    try:
        spec = importlib.util.find_spec("ziglang")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "zig"
        if _executable(candidate):
            return candidate
    return None


def find_zig(cache_dir: Optional[Path]) -> Optional[Path]:
    """A zig executable, or None: ``$ZIG``, ``zig`` on PATH, the ``ziglang`` package of this
    environment, the copy :func:`ensure_zig` installed into ``cache_dir``, in that order.

    ``$ZIG`` set to something that is not an executable is an
    :class:`~lambda_compat.errors.EnvironmentProblem` (an explicit choice is never skipped).
    """
    found = _from_env()
    if found:
        return found
    on_path = shutil.which("zig")
    if on_path:
        return Path(on_path).absolute()
    found = _from_package()
    if found:
        return found
    if cache_dir is not None:
        candidate = installed_dir(cache_dir) / "ziglang" / "zig"
        if _executable(candidate):
            return candidate
    return None


def zig_version(zig: Path) -> Optional[str]:
    """``zig version``'s answer, or None when it does not run."""
    try:
        proc = subprocess.run([str(zig), "version"], capture_output=True, text=True,
                              timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


# --------------------------------------------------------------------------- installing zig

def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _pip_install(target: Path, log: Path) -> Tuple[int, bool]:
    """``pip install --target`` of the pinned ziglang; pip's configuration picks the index."""
    argv = [sys.executable, "-m", "pip", "install", "--target", str(target), "--no-deps",
            "--only-binary", ":all:", "--disable-pip-version-check", "--no-input",
            f"ziglang=={ZIGLANG_VERSION}"]
    with open(log, "wb") as out:
        return lifecycle.run(argv, timeout=INSTALL_TIMEOUT, stdout=out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _install(cache_dir: Path, ui: UI) -> Path:
    """Install ziglang into :func:`installed_dir` (under a file lock; atomically renamed)."""
    final = installed_dir(cache_dir)
    toolchains = final.parent
    toolchains.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock  # here, not at start-up: ~30 ms
    with FileLock(str(final) + ".lock"):
        zig = final / "ziglang" / "zig"
        if _executable(zig):          # another process installed it while we waited
            return zig
        lifecycle.remove_stale(toolchains, _PARTIAL)
        partial = Path(tempfile.mkdtemp(prefix=lifecycle.owned_name(_PARTIAL), dir=toolchains))
        log = toolchains / f"ziglang-{ZIGLANG_VERSION}.log"
        ui.event("toolchain-install-start", tool="zig", package=f"ziglang=={ZIGLANG_VERSION}",
                 directory=str(final))
        started = time.monotonic()
        try:
            status, timed_out = _pip_install(partial / "site", log)
            ok = status == 0 and not timed_out and _executable(partial / "site/ziglang/zig")
            if ok:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(partial / "site", final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        seconds = time.monotonic() - started
        ui.event("toolchain-install-done", tool="zig", ok=ok, seconds=seconds,
                 directory=str(final))
        if not ok:
            why = (f"timed out after {INSTALL_TIMEOUT:.0f} s" if timed_out
                   else f"pip exited with status {status}")
            detail = _tail(log)
            raise errors.EnvironmentProblem(
                f"Could not install zig (ziglang=={ZIGLANG_VERSION}) into {final}: {why} "
                f"(log: {log})." + (f"\n{detail}" if detail else ""),
                hint=_INSTALL_HINT + " pip uses its own configuration (index, proxy) for "
                                     "this install.")
        return zig


def ensure_zig(cache_dir: Path, ui: UI) -> Path:
    """A working zig executable: :func:`find_zig`, else installed into ``cache_dir``.

    Sends ``toolchain-found`` (``tool``, ``path``, ``version``) once it has one, and
    ``toolchain-install-start``/``-done`` around an install. Raises
    :class:`~lambda_compat.errors.EnvironmentProblem` (exit code 3) when there is none and
    none can be installed, or when the one found does not run.
    """
    zig = find_zig(cache_dir)
    if zig is None:
        zig = _install(Path(cache_dir), ui)
    version = zig_version(zig)
    if version is None:
        raise errors.EnvironmentProblem(
            f"{zig} does not run (`zig version` failed).", hint=_INSTALL_HINT)
    ui.event("toolchain-found", tool="zig", path=str(zig), version=version)
    return zig


# --------------------------------------------------------------------------- environments

def zig_cache_dir(cache_dir: Path) -> Path:
    """Where the lasting zig caches live, one per target (:func:`private_cache`):
    ``<cache_dir>/toolchains/zig-cache``."""
    return Path(cache_dir) / "toolchains" / "zig-cache"


#: Marks a target's lasting zig cache as complete (made by :func:`private_cache`).
_READY = ".lambda-compat-ready"
#: What the lasting cache is made from: a C and a C++ shared object, our code only.
_WARM_SOURCES = {"warm.c": "#include <stdio.h>\nint lc_warm(void) { return puts(\"\"); }\n",
                 "warm.cc": "#include <string>\nint lc_warm_cc(const std::string &s) "
                            "{ return (int)s.size(); }\n"}


def private_cache(zig: Path, cache_dir: Path, machine: str, glibc: Tuple[int, int],
                  dest: Path, timeout: float = 900) -> Path:
    """A zig cache for one build, written by it alone: a copy of the target's lasting cache.

    zig needs its cache writable (it creates manifests and locks even for what it has), so a
    build cannot simply be shown the shared one: whatever it wrote there (a doctored object
    file, a poisoned manifest) a later build of another project would link (rule 2). The
    lasting cache ``<cache>/toolchains/zig-cache/<zig target>`` holds what every build for
    the target needs (glibc's stubs for that version, compiler_rt, libc++/libc++abi/
    libunwind), made once, under a file lock, outside any sandbox, by compiling only our own
    two files; each build gets a copy (zig's cache is relocatable: the copy is hit wherever
    it is, and wherever zig itself is mounted). What a build adds dies with its copy.
    """
    lasting = zig_cache_dir(cache_dir) / zig_target(machine, glibc)
    if not (lasting / _READY).exists():
        lasting.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock  # here, not at start-up: ~30 ms
        with FileLock(str(lasting) + ".lock"):
            if not (lasting / _READY).exists():
                _warm(zig, zig_target(machine, glibc), lasting, timeout)
    shutil.copytree(lasting, dest, symlinks=True,
                    ignore=shutil.ignore_patterns(_READY, "tmp"))
    return dest


def _warm(zig: Path, target: str, lasting: Path, timeout: float) -> None:
    """Fill ``lasting`` with what zig compiles for ``target`` (see :func:`private_cache`)."""
    shutil.rmtree(lasting, ignore_errors=True)  # an incomplete one, from a killed run
    lasting.mkdir(parents=True)
    env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=str(lasting), ZIG_LOCAL_CACHE_DIR=str(lasting))
    with tempfile.TemporaryDirectory(prefix=lifecycle.owned_name("lc-zig-warm-")) as tmp:
        for name, text in _WARM_SOURCES.items():
            src = Path(tmp) / name
            src.write_text(text, encoding="utf-8")
            command = "c++" if name.endswith(".cc") else "cc"
            argv = [str(zig), command, "-target", target, "-shared", "-fPIC", "-O2",
                    str(src), "-o", str(Path(tmp) / (name + ".so"))]
            proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise errors.EnvironmentProblem(
                    f"zig could not compile for {target}: {proc.stderr.strip()[-500:]}",
                    hint="Reinstall zig (remove <cache>/toolchains/ziglang-*) or build "
                         "with --build-env local and the host's compiler.")
    (lasting / _READY).write_text(f"{target}\n", encoding="utf-8")


def zig_target(machine: str, glibc: Tuple[int, int]) -> str:
    """``x86_64-linux-gnu.2.26``: zig's name for ``machine`` with exactly that glibc."""
    if machine not in MACHINES:
        raise errors.BadInput(f"no zig target for machine {machine!r}.",
                              hint=f"Machines: {', '.join(MACHINES)}.")
    major, minor = glibc
    if major != 2 or minor < 17:
        raise errors.BadInput(f"glibc {major}.{minor}: zig targets glibc 2.17 or newer here.")
    return f"{machine}-linux-gnu.{major}.{minor}"


def wrapper_script(zig: Path, command: str, target: Optional[str], cache: Path) -> str:
    """A POSIX sh script that runs ``zig <command> [-target T] "$@"``.

    Compiler wrappers (``cc``, ``c++``) drop the :data:`_DROPPED` flags, map gcc's
    ``-march=x86-64[-vN]`` to zig's ``x86_64[_vN]`` and name the language of standard input
    (``-``) when the caller did not (``-x c``/``-x c++``); ``-Wl,--version`` answers with the
    version of the LLD zig links with (what meson identifies the linker by). zig's cache defaults to ``cache`` (zig
    otherwise writes under $HOME, which a build sandbox may not have).
    """
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        f"# lambda-compat: zig {command}" + (f" for {target}" if target else "")
        + " (lambda_compat/host/toolchain.py, docs/building.md)",
        f'[ -n "${{ZIG_GLOBAL_CACHE_DIR:-}}" ] || ZIG_GLOBAL_CACHE_DIR={q(str(cache))}',
        '[ -n "${ZIG_LOCAL_CACHE_DIR:-}" ] || ZIG_LOCAL_CACHE_DIR=$ZIG_GLOBAL_CACHE_DIR',
        "export ZIG_GLOBAL_CACHE_DIR ZIG_LOCAL_CACHE_DIR",
    ]
    if target is not None:
        language = "c++" if command == "c++" else "c"
        lines += [
            # zig's clang refuses a glibc-versioned target for a bare `-` (stdin) with no
            # -x ("version '.2.34' in target triple ... is invalid"): meson asks
            # `cc -E -dM -` for the compiler's macros, so numpy et al. failed to configure
            "seen_x= prev= ld_version=",
            "for arg do",
            "  shift",
            "  case $arg in",
            f"    {'|'.join(_DROPPED)}) ;;",
            "    -Wl,--version) ld_version=1 ;;",
            '    -x|-x?*) seen_x=1; set -- "$@" "$arg" ;;',
            '    -) if [ -n "$seen_x" ] || [ "$prev" = "-o" ]; then set -- "$@" -;',
            f'       else set -- "$@" -x {language} -; fi ;;',
            '    -march=x86-64) set -- "$@" -march=x86_64 ;;',
            '    -march=x86-64-v*) set -- "$@" "-march=x86_64_v${arg#-march=x86-64-v}" ;;',
            '    *) set -- "$@" "$arg" ;;',
            "  esac",
            '  prev=$arg',
            "done",
            # meson identifies the linker by `cc -Wl,--version`, and meson before 1.6 (numpy
            # 1.26 vendors 1.2.99) knows no "zig ld <version>": the answer is the LLD zig
            # links with ("LLD 22.1.8 (compatible with GNU linkers)"), which meson knows
            f'[ -z "$ld_version" ] || exec {q(str(zig))} ld.lld --version',
            f'exec {q(str(zig))} {command} -target {q(target)} "$@"',
        ]
    else:
        lines.append(f'exec {q(str(zig))} {command} "$@"')
    return "\n".join(lines) + "\n"


def _write_executable(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o755)
    os.replace(tmp, path)


def compiler_env(zig: Path, machine: str, glibc: Tuple[int, int], workdir: Path, *,
                 zig_cache: Optional[Path] = None) -> Dict[str, str]:
    """Environment variables that build with zig for ``<machine>-linux-gnu.<glibc>``.

    Writes the wrappers ``cc``, ``c++``, ``ar``, ``ranlib`` and a CMake toolchain file into
    ``workdir`` (created if needed) and returns variables to *add* to a build's environment:

    * ``CC``, ``CXX``, ``CPP``: the wrappers (autoconf, meson, cmake's first configure,
      Makefiles); ``LDSHARED``/``LDCXXSHARED``: ``<cc> -shared`` (setuptools/distutils link
      extensions with these; they also drop the interpreter's own ``-L``/``-rpath``);
    * ``AR``, ``RANLIB``: zig's (static helper libraries of setuptools, Makefiles, meson);
    * ``CMAKE_TOOLCHAIN_FILE`` (CMake >= 3.21 reads it from the environment): compilers, ar
      and ranlib for CMake, which ignores ``AR``;
    * ``ZIG_GLOBAL_CACHE_DIR``/``ZIG_LOCAL_CACHE_DIR``: ``zig_cache``, else
      ``workdir/zig-cache`` (the wrappers default to it too). zig compiles the target's libc
      stubs and compiler-rt there on first use (a minute or more on 2 cores), so pass one
      lasting directory, e.g. :func:`zig_cache_dir` (zig locks its cache itself).

    Nothing is taken from the host: the same arguments give the same variables anywhere.
    """
    target = zig_target(machine, glibc)
    zig = Path(zig).absolute()
    workdir = Path(workdir).absolute()
    if any(ch.isspace() for ch in str(workdir)):
        # Build systems split CC/LDSHARED on whitespace, each in its own way.
        raise errors.BadInput(f"{workdir}: a compiler directory must have no whitespace in "
                              "its path.", hint="Use a cache directory without spaces.")
    workdir.mkdir(parents=True, exist_ok=True)
    cache = Path(zig_cache).absolute() if zig_cache is not None else workdir / "zig-cache"
    if any(ch.isspace() for ch in str(cache)):
        raise errors.BadInput(f"{cache}: zig's cache directory must have no whitespace in "
                              "its path.", hint="Use a cache directory without spaces.")
    tools = {"cc": ("cc", target), "c++": ("c++", target), "ar": ("ar", None),
             "ranlib": ("ranlib", None)}
    for name, (command, tool_target) in tools.items():
        _write_executable(workdir / name, wrapper_script(zig, command, tool_target, cache))
    cc, cxx = str(workdir / "cc"), str(workdir / "c++")
    cmake = workdir / "toolchain.cmake"
    cmake.write_text(
        f"# lambda-compat: zig for {target} (docs/building.md)\n"
        f'set(CMAKE_C_COMPILER "{cc}")\nset(CMAKE_CXX_COMPILER "{cxx}")\n'
        f'set(CMAKE_AR "{workdir / "ar"}" CACHE FILEPATH "zig ar")\n'
        f'set(CMAKE_RANLIB "{workdir / "ranlib"}" CACHE FILEPATH "zig ranlib")\n')
    return {
        "CC": cc,
        "CXX": cxx,
        "CPP": f"{cc} -E",
        "LDSHARED": f"{cc} -shared",
        "LDCXXSHARED": f"{cxx} -shared",
        "AR": str(workdir / "ar"),
        "RANLIB": str(workdir / "ranlib"),
        "CMAKE_TOOLCHAIN_FILE": str(cmake),
        "ZIG_GLOBAL_CACHE_DIR": str(cache),
        "ZIG_LOCAL_CACHE_DIR": str(cache),
    }
