"""The ``target-root`` build environment: ``pip wheel`` inside a Debian root of the target.

The root (a build root, :mod:`lambda_compat.prove.standin.buildroot`) has the target's CPython,
its headers and pip, for the target's machine; it is shown read-only at ``/`` by bwrap, with
no network, HOME the sandbox's empty /tmp, a cleared environment, dying with its parent and
bounded in time (killed as a process group, :func:`lambda_compat.host.lifecycle.run`). A foreign machine's binaries
run through qemu-user (binfmt_misc with the ``F`` flag, so they run in any root).

Compiling uses zig, a static x86_64 (or aarch64) executable that runs natively inside any
root: its wrappers target ``<machine>-linux-gnu.<runtime glibc>`` and add
``-idirafter /usr/include``, so the root's Python headers (and Debian's multiarch
``pyconfig.h``) are found while zig's glibc headers win. With compilers disabled, ``CC`` and
friends point at a failing stand-in: the target's own Python builds the pure fallback.

Build dependencies come in as wheels: the host's pip downloads them first, for the target
(``--only-binary=:all: --platform ... --python-version X.Y``, with the user's index options
and pip configuration), into a wheelhouse the build inside installs from with ``--no-index``.

Inside the sandbox: ``/tmp/lc`` is the build's directory (source copy, wheelhouse, out, tmp,
compiler wrappers), ``/tmp/lc-zig`` zig (read-only), ``/tmp/lc-zig-cache`` zig's cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Tuple

from .. import errors
from ..host import binfmt, lifecycle
from ..host import sandbox as build_sandbox
from . import wheelhouse as wheelhouse_mod
from .engine import PipOptions, isolated_env
from .sdist_build import (BuildResult, _no_compiler_env, built_key, cached_wheel,
                          compiler_key, failed, glibc_text, log_path, store_wheel)

INSIDE = "/tmp/lc"
ZIG_INSIDE = "/tmp/lc-zig"
ZIG_CACHE_INSIDE = "/tmp/lc-zig-cache"
_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class RootEnvironment:
    """``pip wheel`` inside ``root`` (a build root) with ``python`` (its path in the root)."""

    root: Path
    python: str                      # e.g. /usr/bin/python3.11
    python_version: Tuple[int, int]
    python_full: str                 # e.g. 3.11.2
    machine: str
    glibc: Tuple[int, int]           # the target's: zig's ceiling
    zig: Path
    zig_version: str
    root_glibc: Tuple[int, int]      # the root's own (its build requirements' wheels)
    root_name: str = ""              # e.g. "Debian bookworm arm64"
    kind: str = "target-root"

    @property
    def key(self) -> str:
        v = self.python_full.replace(".", "")
        return (f"root-{Path(self.root).name}-cp{v}-{self.machine}-"
                f"{compiler_key(self.zig_version, self.glibc)}")

    @property
    def foreign(self) -> bool:
        return self.machine != binfmt.host_machine()

    def describe(self) -> str:
        via = " via qemu-user" if self.foreign else ""
        name = self.root_name or Path(self.root).name
        return (f"{name} root (CPython {self.python_full}{via}), zig cc for glibc "
                f"{glibc_text(self.glibc)}")

    def to_spec(self) -> Dict[str, Any]:
        return {"kind": self.kind, "root": str(self.root), "python": self.python,
                "python_version": list(self.python_version), "python_full": self.python_full,
                "machine": self.machine, "glibc": list(self.glibc), "zig": str(self.zig),
                "zig_version": self.zig_version, "root_glibc": list(self.root_glibc),
                "root_name": self.root_name}

    @classmethod
    def from_spec(cls, spec: Dict[str, Any]) -> "RootEnvironment":
        def pair(v: Any) -> Tuple[int, int]:
            return int(v[0]), int(v[1])
        return cls(root=Path(spec["root"]), python=spec["python"],
                   python_version=pair(spec["python_version"]),
                   python_full=spec["python_full"], machine=spec["machine"],
                   glibc=pair(spec["glibc"]), zig=Path(spec["zig"]),
                   zig_version=spec["zig_version"], root_glibc=pair(spec["root_glibc"]),
                   root_name=spec.get("root_name") or "")

    # -- building ----------------------------------------------------------------------
    def build_wheel(self, source: Path, source_key: str, *, cache_dir: Path,
                    pip: PipOptions, no_compiler: bool, timeout: float, cwd: Path,
                    sandbox: bool = True) -> BuildResult:
        """Build ``source`` in the root (always in bwrap: it is what puts the root at /).

        ``cwd`` and ``sandbox`` are accepted for the interface: the build is confined
        either way, and a relative path requirement was made absolute by the resolution.
        """
        label = self.describe()
        key = built_key(source_key, self.python_version, self.machine, no_compiler, self.key)
        log = log_path(cache_dir, source, key, no_compiler)
        hit = cached_wheel(cache_dir, key)
        if hit is not None:
            return BuildResult(True, hit, log, label, no_compiler, True)
        self._require_runnable(source)
        with tempfile.TemporaryDirectory(prefix=lifecycle.owned_name("lc-build-"),
                                         dir=cache_dir) as tmp:
            work = Path(tmp)
            for sub in ("wheelhouse", "out", "tmp", "src"):
                (work / sub).mkdir()
            self._zig_cache(work / "zig-cache", cache_dir, no_compiler)
            inner_source = _copy_source(source, work / "src")
            with open(log, "w", encoding="utf-8") as logf:
                logf.write(f"# built in: {label}\n")
                deadline = time.monotonic() + timeout
                requirements = wheelhouse_mod.build_requires(source, self.python_version,
                                                             self.machine)
                code, timed_out = self._download(requirements, work / "wheelhouse", pip,
                                                 logf, timeout)
                if code == 0 and not timed_out:
                    code, timed_out = self._pip_wheel_fetching(
                        work, inner_source, cache_dir, no_compiler, log, logf, pip, deadline,
                        timeout)
            wheels = sorted((work / "out").glob("*.whl"))
            if code != 0 or timed_out or not wheels:
                return failed(log, label, no_compiler, timeout, timed_out)
            return BuildResult(True, store_wheel(cache_dir, key, wheels[0]), log, label,
                               no_compiler)

    def _require_runnable(self, source: Path) -> None:
        if not build_sandbox.bwrap_works():
            raise errors.BuildSandboxUnavailable(
                f"cannot build {source.name} in the {self.describe()}: bubblewrap does not "
                f"work here, and it is what runs the build inside the root.",
                hint=build_sandbox.BUILD_SANDBOX_HINT)
        if self.foreign and not binfmt.status(self.machine).usable_in_sandbox:
            binfmt.register(self.machine)  # raises EnvironmentProblem saying what is missing
            if not binfmt.status(self.machine).usable_in_sandbox:
                raise errors.EnvironmentProblem(
                    f"qemu-user for {self.machine} is registered without the F flag, so "
                    f"{self.machine} binaries cannot run inside a root.",
                    hint="Re-register it: python -m lambda_compat.cli.standin binfmt")

    def _pip_wheel_fetching(self, work: Path, inner_source: str, cache_dir: Path,
                            no_compiler: bool, log: Path, logf: IO[str], pip: PipOptions,
                            deadline: float, limit: float) -> Tuple[int, bool]:
        """``pip wheel`` in the root; when the backend asked at build time for requirements
        the wheelhouse lacks (wheelhouse.backend_requirements_missing), the host's pip
        fetches them for the target and the build runs again (at most wheelhouse.BACKEND_ROUNDS more
        times), all within the one time limit."""
        asked: List[str] = []
        for _round in range(1 + wheelhouse_mod.BACKEND_ROUNDS):
            logf.flush()
            start = log.stat().st_size
            code, timed_out = self._pip_wheel(work, inner_source, cache_dir, no_compiler,
                                              logf, max(1.0, deadline - time.monotonic()),
                                              limit)
            if code == 0 or timed_out:
                return code, timed_out
            logf.flush()
            with open(log, "rb") as f:
                f.seek(start)
                output = f.read().decode("utf-8", "replace")
            missing = wheelhouse_mod.backend_requirements_missing(output, asked)
            if not missing or time.monotonic() >= deadline:
                return code, timed_out
            asked += missing
            logf.write(f"# the build backend asked for {', '.join(missing)} while building: "
                       f"fetching them for the target, then building again\n")
            code, timed_out = self._download(missing, work / "wheelhouse", pip, logf,
                                             max(1.0, deadline - time.monotonic()))
            if code != 0 or timed_out:
                return code, timed_out
        return code, timed_out

    def _download(self, requirements: List[str], wheelhouse: Path, pip: PipOptions,
                  logf: IO[str], timeout: float) -> Tuple[int, bool]:
        """The host's pip fetches ``requirements`` as wheels for the root's Python into the
        wheelhouse (nothing to fetch for a source whose in-tree backend requires nothing)."""
        if not requirements:
            logf.write("# no build requirements to download\n")
            return 0, False
        argv = wheelhouse_mod.download_argv(requirements, wheelhouse, pip,
                                            self.python_version, self.machine,
                                            self.root_glibc)
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PIP_BUILD_TRACKER", "PIP_REQ_TRACKER")}
        env["PIP_NO_INPUT"] = "1"
        if pip.isolated:
            env = isolated_env(env)
        logf.write("$ " + " ".join(argv) + "\n")
        logf.flush()
        return lifecycle.run(argv, env=env, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, timeout=timeout)

    def _pip_wheel(self, work: Path, inner_source: str, cache_dir: Path, no_compiler: bool,
                   logf: IO[str], timeout: float,
                   limit: Optional[float] = None) -> Tuple[int, bool]:
        """One ``pip wheel`` in the root, killed after ``timeout`` s; the log names the
        build's whole time ``limit`` (--build-timeout), which that time is left of."""
        env = self._environment(work, cache_dir, no_compiler)
        command = [self.python, "-m", "pip", "wheel", "-v", "--no-deps", "--no-index",
                   "--find-links", f"{INSIDE}/wheelhouse", "--no-cache-dir", "--use-pep517",
                   "--disable-pip-version-check", "--no-input", "-w", f"{INSIDE}/out",
                   inner_source]
        argv = self._bwrap(work, cache_dir, env) + command
        logf.write("$ " + " ".join(command) + "\n")
        if no_compiler:
            logf.write("(C/C++/Fortran compilers disabled)\n")
        logf.flush()
        code, timed_out = lifecycle.run(argv, env={"PATH": os.environ.get("PATH", _PATH)},
                                        stdout=logf, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, timeout=timeout)
        if timed_out:
            from .pip_sandbox import TIMEOUT_MESSAGE
            logf.write("\n" + TIMEOUT_MESSAGE.format(
                timeout=timeout if limit is None else limit) + "\n")
        return code, timed_out

    def _environment(self, work: Path, cache_dir: Path, no_compiler: bool) -> Dict[str, str]:
        """The build's whole environment (paths as seen inside the sandbox)."""
        env = {"PATH": _PATH, "LANG": "C.UTF-8", "HOME": "/tmp", "TMPDIR": f"{INSIDE}/tmp",
               "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INPUT": "1",
               "PYTHONDONTWRITEBYTECODE": "1", "SOURCE_DATE_EPOCH": "315532800"}
        if no_compiler:
            env = _no_compiler_env(env, work / "no-compiler")
        else:
            env.update(self._compiler(work))
        host, inside = str(work), INSIDE
        return {k: v.replace(host, inside) for k, v in env.items()}

    def _compiler(self, work: Path) -> Dict[str, str]:
        from ..host import toolchain
        wrappers = work / "cc"
        env = toolchain.compiler_env(Path(ZIG_INSIDE) / Path(self.zig).name, self.machine,
                                     self.glibc, wrappers, zig_cache=Path(ZIG_CACHE_INSIDE))
        for name in ("cc", "c++"):  # the root's headers after zig's (Python.h, pyconfig.h)
            script = wrappers / name
            text = script.read_text().replace('"$@"\n', '-idirafter /usr/include "$@"\n')
            script.write_text(text)
        cmake = wrappers / "toolchain.cmake"
        cmake.write_text(cmake.read_text().replace(str(work), INSIDE))
        return env

    def _zig_cache(self, dest: Path, cache_dir: Path, no_compiler: bool) -> None:
        """The build's own zig cache (toolchain.private_cache; empty without a compiler)."""
        if no_compiler:
            dest.mkdir()
            return
        from ..host import toolchain
        toolchain.private_cache(Path(self.zig), cache_dir, self.machine, self.glibc, dest)

    def _bwrap(self, work: Path, cache_dir: Path, env: Dict[str, str]) -> List[str]:
        argv = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-all",
                "--new-session"]
        if build_sandbox.bwrap_userns_works():
            argv += ["--unshare-user", "--uid", str(build_sandbox.BUILD_UID),
                     "--gid", str(build_sandbox.BUILD_UID)]
        argv += ["--ro-bind", str(self.root), "/", "--proc", "/proc", "--dev", "/dev",
                 "--tmpfs", "/tmp", "--bind", str(work), INSIDE,
                 "--ro-bind", str(Path(self.zig).resolve().parent), ZIG_INSIDE,
                 "--bind", str(work / "zig-cache"), ZIG_CACHE_INSIDE]
        argv += _ca_bundle(self.root, work)
        argv.append("--clearenv")
        for key, value in sorted(env.items()):
            argv += ["--setenv", key, value]
        return argv + ["--chdir", INSIDE, "--"]


#: Where Debian's pip loads CA certificates from when it starts (a file ca-certificates'
#: maintainer script writes, so an unpacked, unconfigured root lacks it).
_DEBIAN_CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"


def _ca_bundle(root: Path, work: Path) -> List[str]:
    """bwrap arguments giving the root the CA bundle Debian's pip reads at import time
    (nothing inside connects anywhere: the network is unshared; pip only refuses to start
    without the file). The certificates are pip's own (certifi), public data; shown over
    the root's ``/etc/ssl/certs`` only where that directory lacks the bundle."""
    target = Path(root) / _DEBIAN_CA_BUNDLE
    if target.exists() or not target.parent.is_dir():
        return []
    try:
        from pip._vendor import certifi
        bundle = certifi.where()
    except ImportError:  # pragma: no cover - pip is a dependency
        return []
    certs = work / "certs"
    certs.mkdir(exist_ok=True)
    shutil.copyfile(bundle, certs / target.name)
    return ["--ro-bind", str(certs), "/" + str(Path(_DEBIAN_CA_BUNDLE).parent)]


def _copy_source(source: Path, dest_dir: Path) -> str:
    """Copy the sdist (or project directory) into the build; its path inside."""
    dest = dest_dir / source.name
    if source.is_dir():
        shutil.copytree(source, dest, symlinks=True,
                        ignore=shutil.ignore_patterns(".git", ".hg", ".venv", "__pycache__"))
    else:
        shutil.copyfile(source, dest)
    return f"{INSIDE}/src/{source.name}"
