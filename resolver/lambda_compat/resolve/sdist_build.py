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
from typing import Optional

from filelock import FileLock

from .. import errors
from ..host import lifecycle
from . import pip_sandbox
from ..host import sandbox as build_sandbox
from ..host.interpreters import Interpreter
from .engine import PipOptions, isolated_env

_COMPILERS = ("cc", "gcc", "c++", "g++", "clang", "clang++", "cpp", "gfortran", "f77", "f95",
              "ld", "x86_64-linux-gnu-gcc", "aarch64-linux-gnu-gcc", "x86_64-linux-gnu-g++")
_NO_COMPILER = "#!/bin/sh\necho 'lambda-compat: compiler disabled for the pure-Python fallback build' >&2\nexit 1\n"


#: Beside a cached wheel: the interpreter that built it (a pure build serves every target).
_BUILT_BY = "built-by.txt"


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


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _no_compiler_env(env: dict, shim_dir: Path) -> dict:
    shim_dir.mkdir(parents=True, exist_ok=True)
    for name in _COMPILERS:
        p = shim_dir / name
        p.write_text(_NO_COMPILER)
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    nocc = str(shim_dir / "cc")
    env = dict(env)
    env.update({"CC": nocc, "CXX": nocc, "CPP": nocc, "LDSHARED": nocc, "FC": nocc,
                "F77": nocc, "F90": nocc,
                "PATH": str(shim_dir) + os.pathsep + env.get("PATH", "")})
    return env


def build_wheel(source: Path, source_key: str, interpreter: Interpreter, *, cache_dir: Path,
                pip: PipOptions, no_compiler: bool, timeout: float, cwd: Path,
                env: Optional[dict] = None, sandbox: bool = True,
                pure: bool = False, _locked: bool = False) -> BuildResult:
    """Build ``source`` into a wheel; reuse the cached result of an identical earlier build.

    ``pure``: an any-Python pure build (:mod:`lambda_compat.resolve.pure_build`): compilers
    disabled, cached by ``source_key`` and ``pure`` alone, whichever interpreter built it.

    pip runs outside the sandbox (it fetches the build dependencies, wheels only); every
    build hook it starts runs in the build sandbox (``sandbox=False``: unconfined), bounded
    by ``timeout``; the whole build is bounded too and killed as a process group.
    """
    if pure and not _locked:  # one build for every target, even those checked at once
        lock = cache_dir / "built" / f".{source_key}-pure.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock)):
            return build_wheel(source, source_key, interpreter, cache_dir=cache_dir, pip=pip,
                               no_compiler=True, timeout=timeout, cwd=cwd, env=env,
                               sandbox=sandbox, pure=True, _locked=True)
    no_compiler = no_compiler or pure
    mode = "pure" if pure else "nocc" if no_compiler else "cc"
    key = (f"{source_key}-pure" if pure else
           f"{source_key}-cp{interpreter.version[0]}{interpreter.version[1]}-{interpreter.machine}-{mode}")
    built_dir = cache_dir / "built" / key
    log_dir = cache_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{source.name}-{key[:12]}-{mode}.log"
    if built_dir.is_dir():
        wheels = sorted(built_dir.glob("*.whl"))
        if wheels:
            return BuildResult(True, wheels[0], log, _built_by(built_dir, interpreter),
                               no_compiler, True)
    if sandbox and not build_sandbox.bwrap_works():
        raise errors.BuildSandboxUnavailable(
            f"refusing to build {source.name}: no build sandbox (bubblewrap) works on this "
            f"machine, and building runs the distribution's own code.",
            hint=build_sandbox.BUILD_SANDBOX_HINT)
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
        config = tmp_path / "sandbox.json"
        config.write_text(json.dumps(build_sandbox.build_sandbox_config(
            enabled=sandbox, timeout=timeout, writable=[tmp_path])), encoding="utf-8")
        # --use-pep517: a setup.py-only sdist built by pip < 23.1 otherwise takes the legacy
        # `setup.py bdist_wheel` path, which fails where the interpreter lacks `wheel` (pyenv
        # 3.8-3.10 ship pip 23.0 without it); PEP 517 isolation brings setuptools and wheel.
        cmd = [interpreter.path, "-c", pip_sandbox.boot_code(), str(config), "wheel",
               "--no-deps", "--no-cache-dir",
               "--use-pep517", "--disable-pip-version-check", "-w", str(out), *pip.args(),
               str(source)]
        with open(log, "w", encoding="utf-8") as logf:
            logf.write(f"$ {' '.join(cmd)}\n")
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
            text = log.read_text(encoding="utf-8", errors="replace")
            lines = text.splitlines()
            interesting = [l for l in lines if l.strip()][-12:]
            timed_out = timed_out or pip_sandbox.TIMEOUT_MESSAGE.format(
                timeout=timeout) in text
            return BuildResult(False, None, log, interpreter.describe(), no_compiler,
                               error_tail="\n".join(interesting), timed_out=timed_out)
        staging = cache_dir / "built" / f".{key}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        shutil.move(str(wheels[0]), staging / wheels[0].name)
        (staging / _BUILT_BY).write_text(interpreter.describe(), encoding="utf-8")
        try:
            os.replace(staging, built_dir)
        except OSError:  # another process built it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
        wheel = sorted(built_dir.glob("*.whl"))[0]
        return BuildResult(True, wheel, log, interpreter.describe(), no_compiler)


def _built_by(built_dir: Path, interpreter: Interpreter) -> str:
    """Who built the cached wheel in ``built_dir`` (caches older than the record: the asker)."""
    try:
        return (built_dir / _BUILT_BY).read_text(encoding="utf-8").strip()
    except OSError:
        return interpreter.describe()
