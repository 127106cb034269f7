"""Build a wheel from an sdist (or a local project) with an interpreter of the target's version.

Two modes: with the machine's compiler, and with every C/C++/Fortran compiler disabled (the
pure-Python fallback many packages have). Built wheels are cached by the source's sha256, the
interpreter version and machine, and the mode; logs are kept beside the cache so an error can
point at them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from .. import errors
from ..host import lifecycle
from . import pip_sandbox
from ..host import sandbox as build_sandbox
from ..host.interpreters import Interpreter
from .engine import PipOptions, isolated_env

_COMPILERS = ("cc", "gcc", "c++", "g++", "clang", "clang++", "cpp", "gfortran", "f77", "f95",
              "ld", "x86_64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "x86_64-linux-gnu-g++",
              # the names compilers have in the public build images (Amazon Linux)
              "x86_64-redhat-linux-gcc", "aarch64-redhat-linux-gcc", "x86_64-amazon-linux-gcc",
              "aarch64-amazon-linux-gcc")
_NO_COMPILER = "#!/bin/sh\necho 'lambda-compat: compiler disabled for the pure-Python fallback build' >&2\nexit 1\n"


@dataclass(frozen=True)
class BuildResult:
    ok: bool
    wheel: Optional[Path]
    log: Path
    interpreter: str
    no_compiler: bool
    cached: bool = False
    error_tail: str = ""
    timed_out: bool = False


#: sha256 by (device, inode, size, mtime): hard links of one file (pip's download, the
#: content-addressed cache's entry) are hashed once per process.
_HASHES: Dict[Tuple[int, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        known = _HASHES.get(key)
        if known is not None:
            return known
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = _HASHES[key] = h.hexdigest()
    return digest


def write_no_compiler_shims(shim_dir: Path) -> Path:
    """Compiler stand-ins that fail saying why (source_metadata.COMPILER_DISABLED), under
    every name a build system may call, in ``shim_dir``."""
    shim_dir.mkdir(parents=True, exist_ok=True)
    for name in _COMPILERS:
        p = shim_dir / name
        p.write_text(_NO_COMPILER)
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return shim_dir


#: The variables build systems take their compilers from (all pointed at a stand-in).
COMPILER_VARS = ("CC", "CXX", "CPP", "LDSHARED", "FC", "F77", "F90")


def _no_compiler_env(env: dict, shim_dir: Path) -> dict:
    write_no_compiler_shims(shim_dir)
    nocc = str(shim_dir / "cc")
    env = dict(env)
    env.update({name: nocc for name in COMPILER_VARS})
    env["PATH"] = str(shim_dir) + os.pathsep + env.get("PATH", "")
    return env


def glibc_text(glibc: Optional[Tuple[int, int]]) -> str:
    return f"{glibc[0]}.{glibc[1]}" if glibc else ""


def compiler_key(zig_version: Optional[str], glibc: Optional[Tuple[int, int]]) -> str:
    """``gcc`` (the host's compiler) or ``zig0.17.1-glibc2.26``."""
    if zig_version is None or glibc is None:
        return "gcc"
    return f"zig{zig_version}-glibc{glibc_text(glibc)}"


#: Beside a cached wheel: who built it (the any-Python pure build is shared by every target).
_BUILT_BY = "built-by.txt"


def built_key(source_key: str, version: Tuple[int, ...], machine: str, no_compiler: bool,
              env_key: str = "") -> str:
    """The built-wheel cache key: source sha256, target Python and machine, mode, and the
    build environment (its kind, interpreter and compiler)."""
    mode = "nocc" if no_compiler else "cc"
    # b2: builds log the backend's output (pip -v), which failed_builds reads; a wheel built
    # before that has a log that cannot show an ignored plugin, so it is not reused
    key = f"{source_key}-b2-cp{version[0]}{version[1]}-{machine}-{mode}"
    return f"{key}-{env_key}" if env_key else key


def log_path(cache_dir: Path, source: Path, key: str, no_compiler: bool) -> Path:
    """The build's log, one per built-wheel key: builds of one sdist for several targets or
    environments at once (a multi-target check) never share a log, nor its error tail."""
    log_dir = cache_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    return log_dir / f"{source.name}-{digest}-{'nocc' if no_compiler else 'cc'}.log"


def cached_wheel(cache_dir: Path, key: str) -> Optional[Path]:
    """The wheel an identical earlier build left in ``<cache>/built/<key>``, if any."""
    built_dir = cache_dir / "built" / key
    wheels = sorted(built_dir.glob("*.whl")) if built_dir.is_dir() else []
    return wheels[0] if wheels else None


def store_wheel(cache_dir: Path, key: str, wheel: Path, built_by: Optional[str] = None) -> Path:
    """Move a freshly built ``wheel`` into ``<cache>/built/<key>`` (atomically renamed), with
    a record of who built it when ``built_by`` is given."""
    built_dir = cache_dir / "built" / key
    staging = cache_dir / "built" / f".{key}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.move(str(wheel), staging / wheel.name)
    if built_by is not None:
        (staging / _BUILT_BY).write_text(built_by, encoding="utf-8")
    try:
        os.replace(staging, built_dir)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(built_dir.glob("*.whl"))[0]


def built_by(wheel: Path, default: str) -> str:
    """Who built the cached ``wheel`` (caches older than the record: ``default``)."""
    try:
        return (wheel.parent / _BUILT_BY).read_text(encoding="utf-8").strip()
    except OSError:
        return default


def failed(log: Path, label: str, no_compiler: bool, timeout: float,
           timed_out: bool) -> BuildResult:
    """The result of a build that made no wheel: the last lines of its log."""
    text = log.read_text(encoding="utf-8", errors="replace")
    timed_out = timed_out or pip_sandbox.TIMEOUT_MESSAGE.format(timeout=timeout) in text
    return BuildResult(False, None, log, label, no_compiler,
                       error_tail=error_tail(text), timed_out=timed_out)


def error_tail(text: str, n: int = 12) -> str:
    """The lines of a build log that say why it failed.

    pip -v (builds log the backend's output, see :func:`build_wheel`) prints the backend's
    output as it comes, then closes with a box that says only "See above for output": the
    backend's last ``n`` lines before pip's first ``error: subprocess-exited-with-error``
    are the cause, followed by the box's summary line. Otherwise the log's last ``n``
    lines (pip repeats the output in its error box, or the failure is pip's own)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.strip() == "error: subprocess-exited-with-error" and \
                any("See above for output" in later for later in lines[i + 1:i + 5]):
            summary = [s.strip() for s in lines[i + 1:i + 3] if s.strip().startswith("×")]
            return "\n".join([s.strip() for s in lines[max(0, i - n):i]] + summary)
        if line.strip().endswith(": finished with status 'error'") and not any(
                "subprocess-exited-with-error" in later for later in lines[i + 1:i + 3]):
            # pip < 21.2 (bullseye's): the output, then this line; no box follows
            return "\n".join(s.strip() for s in lines[max(0, i - n):i + 1])
    return "\n".join(lines[-n:])


def require_sandbox(source: Path) -> None:
    if not build_sandbox.bwrap_works():
        raise errors.BuildSandboxUnavailable(
            f"refusing to build {source.name}: no build sandbox (bubblewrap) works on this "
            f"machine, and building runs the distribution's own code.",
            hint=build_sandbox.BUILD_SANDBOX_HINT)


def build_wheel(source: Path, source_key: str, interpreter: Interpreter, *, cache_dir: Path,
                pip: PipOptions, no_compiler: bool, timeout: float, cwd: Path,
                env: Optional[dict] = None, sandbox: bool = True,
                compiler: Optional[Dict[str, str]] = None, readable: Sequence[Path] = (),
                writable: Sequence[Path] = (), env_key: str = "",
                label: Optional[str] = None, pure: bool = False,
                _locked: bool = False) -> BuildResult:
    """Build ``source`` into a wheel; reuse the cached result of an identical earlier build.

    pip runs outside the sandbox (it fetches the build dependencies, wheels only); every
    build hook it starts runs in the build sandbox (``sandbox=False``: unconfined), bounded
    by ``timeout``; the whole build is bounded too and killed as a process group.
    ``compiler``: variables to add for the compiling build (a zig toolchain), whose files
    ``readable`` and ``writable`` show in the sandbox; ``env_key`` distinguishes it in the
    cache and ``label`` describes it (default: the interpreter). ``pure``: the any-Python pure
    build (:mod:`lambda_compat.resolve.pure_build`): compilers disabled, cached once for every
    target under the source's sha256, built by one process while the others wait.
    """
    if pure and not _locked:  # one build for every target, even those checked at once
        lock = cache_dir / "built" / f".{source_key}-pure.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock  # here, not at start-up: ~30 ms
        with FileLock(str(lock)):
            return build_wheel(source, source_key, interpreter, cache_dir=cache_dir, pip=pip,
                               no_compiler=True, timeout=timeout, cwd=cwd, env=env,
                               sandbox=sandbox, label=label, pure=True, _locked=True)
    no_compiler = no_compiler or pure
    label = label or interpreter.describe()
    key = (f"{source_key}-pure" if pure else
           built_key(source_key, interpreter.version, interpreter.machine, no_compiler, env_key))
    log = log_path(cache_dir, source, key, no_compiler)
    hit = cached_wheel(cache_dir, key)
    if hit is not None:
        return BuildResult(True, hit, log, built_by(hit, label), no_compiler, True)
    if sandbox:
        require_sandbox(source)
    with tempfile.TemporaryDirectory(prefix=lifecycle.owned_name("lc-build-"),
                                     dir=cache_dir) as tmp:
        tmp_path = Path(tmp)
        out = tmp_path / "out"
        out.mkdir()
        (tmp_path / "tmp").mkdir()
        run_env = dict(os.environ if env is None else env)
        run_env.pop("PYTHONPATH", None)
        run_env["PIP_NO_INPUT"] = "1"
        run_env["TMPDIR"] = str(tmp_path / "tmp")  # pip unpacks and builds in there
        if pip.isolated:
            run_env = isolated_env(run_env)
        if no_compiler:
            run_env = _no_compiler_env(run_env, tmp_path / "no-compiler")
        elif compiler:
            run_env.update(compiler)
        config = tmp_path / "sandbox.json"
        config.write_text(json.dumps(build_sandbox.build_sandbox_config(
            enabled=sandbox, timeout=timeout, writable=[tmp_path, *writable],
            readable=list(readable), extra_env=sorted(compiler or ()))), encoding="utf-8")
        # --use-pep517: a setup.py-only sdist built by pip < 23.1 otherwise takes the legacy
        # `setup.py bdist_wheel` path, which fails where the interpreter lacks `wheel` (pyenv
        # 3.8-3.10 ship pip 23.0 without it); PEP 517 isolation brings setuptools and wheel.
        # -v: the backend's output in the log, read by failed_builds (ignored plugins)
        cmd = [interpreter.path, "-c", pip_sandbox.boot_code(), str(config), "wheel", "-v",
               "--no-deps", "--no-cache-dir",
               "--use-pep517", "--disable-pip-version-check", "-w", str(out), *pip.args(),
               str(source)]
        with open(log, "w", encoding="utf-8") as logf:
            logf.write(f"$ {' '.join(cmd)}\n# built in: {label}\n")
            if no_compiler:
                logf.write("(C/C++/Fortran compilers disabled)\n")
            logf.flush()
            # The hooks have their own timeout; this one also bounds pip fetching the build
            # dependencies, so it leaves the hooks a minute to report theirs.
            code, timed_out = lifecycle.run(cmd, cwd=str(cwd), env=run_env, stdout=logf,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            timeout=timeout + 60)
            if timed_out:
                logf.write("\n" + pip_sandbox.TIMEOUT_MESSAGE.format(timeout=timeout) + "\n")
        wheels = sorted(out.glob("*.whl"))
        if code != 0 or not wheels:
            return failed(log, label, no_compiler, timeout, timed_out)
        return BuildResult(True, store_wheel(cache_dir, key, wheels[0],
                                             label if pure else None), log, label, no_compiler)
