"""The host backend: a local interpreter of the target's exact version and architecture."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, List, Optional

from ...host import sandbox
from ...host.interpreters import Interpreter
from ...targets.target import Target
from . import base
from .base import ProbeBackend, probe_source, probe_spec, run_command, target_facts


class HostBackend(ProbeBackend):
    """A local interpreter of the target's exact version and architecture.

    Confined (bwrap), it sees a read-only view of the host in which the shared libraries are
    only the interpreter's own and the runtime's (:mod:`lambda_compat.prove.backends.hostlibs`):
    a library the bundle loads that Lambda lacks is missing here too. Unconfined it sees them
    all, and says so.
    """

    proof = "host"

    def __init__(self, target: Target, interpreter: Interpreter, *,
                 confine: Optional[bool] = None) -> None:
        super().__init__(target)
        self.interpreter = interpreter
        #: the installation's own executable: not a pyenv shim (a shell script that would run
        #: in the sandbox), not a venv's bin/pythonX.Y (a link into another prefix, or a copy
        #: that needs its pyvenv.cfg)
        self.executable = _real_executable(interpreter.path)
        if confine is None:
            confine = sandbox.bwrap_works() and self._confinable()
        self.confine = confine
        self._libraries: Optional[Any] = None

    def _confinable(self) -> bool:
        prefix = os.path.realpath(self.executable)
        return not any(prefix == p or prefix.startswith(p + "/")
                       for p in ("/opt", "/var/task", "/proc", "/dev"))

    def _extra_binds(self) -> List[str]:
        """The installation, when it lives where the sandbox shows a fresh directory (/tmp)."""
        real = os.path.realpath(self.executable)
        if real == "/tmp" or real.startswith("/tmp/"):
            prefix = os.path.dirname(os.path.dirname(real))
            return [prefix] if prefix not in ("/", "/tmp") else [os.path.dirname(real)]
        return []

    def libraries(self):
        """The library view (:class:`~.hostlibs.HostLibraries`) or None."""
        if self._libraries is None:
            from .hostlibs import host_libraries
            self._libraries = host_libraries(self.executable, target_facts(self.target)) or False
        return self._libraries or None

    def identity(self) -> Optional[dict]:
        real = os.path.realpath(self.executable)
        digest = base.file_sha256(real)
        if digest is None:
            return None
        view = self.libraries() if self.confine else None
        libraries = None
        if view is not None:
            f = view.filter()
            # the libraries the proof may load: which, and (size, mtime) of each, so an
            # upgraded system library is another identity
            libraries = {"dirs": sorted(f.dirs),
                         "allowed": [[p, *_stamp(p)] for p in sorted(f.allowed)]}
        return {"executable": real, "sha256": digest, "confine": bool(self.confine),
                "libraries": libraries}

    def describe(self) -> str:
        if self.confine:
            how = "bwrap, read-only /var/task, " + (
                "only the interpreter's and the runtime's libraries"
                if self.libraries() is not None else "all of the host's libraries")
        else:
            how = "unconfined: all of the host's libraries are visible"
        return f"host {self.executable} ({how})"

    def host_sys_path(self, task: Path, opt: Path) -> List[str]:
        """Lambda's order with the bundle and layers where they are on this host (unconfined)."""
        out = []
        for entry in target_facts(self.target).sys_path:
            if entry == "/var/task" or entry.startswith("/var/task/"):
                out.append(str(task) + entry[len("/var/task"):])
            elif entry == "/opt" or entry.startswith("/opt/"):
                out.append(str(opt) + entry[len("/opt"):])
            elif entry.startswith("/var/runtime"):
                continue  # the Lambda runtime's own directory: nothing on a host
            else:
                out.append(entry)
        return out

    def _execute(self, task, opt, modules, handler, env, timeout):
        argv_python = [self.executable, "-I", "-B", "-S", "-c", probe_source()]
        facts = target_facts(self.target)
        with tempfile.TemporaryDirectory(prefix="lambda-compat-host-") as scratch:
            if self.confine:
                spec = probe_spec(self.target, facts.sys_path, modules, handler, timeout,
                             remap="always", keep_site=False, after=self._after)
                env = dict(env, HOME="/tmp", TMPDIR="/tmp")
                view = self.libraries()
                argv = sandbox.bwrap_argv(sandbox.Mounts(Path("/"), task, opt),
                                          argv_python + [spec],
                                          extra_binds=self._extra_binds(),
                                          libraries=view.filter() if view else None)
                cwd = None
            else:
                spec = probe_spec(self.target, self.host_sys_path(task, opt), modules, handler,
                             timeout, remap="always", keep_site=False, after=self._after)
                home = Path(scratch, "home")
                tmp = Path(scratch, "tmp")
                home.mkdir()
                tmp.mkdir()
                env = {k: _host_paths(v, task, opt) for k, v in env.items()}
                env.update(HOME=str(home), TMPDIR=str(tmp))
                argv = argv_python + [spec]
                cwd = str(task)
            return run_command(argv, env=env, cwd=cwd, timeout=base.overall_timeout(timeout, len(modules)))


_BASE_EXECUTABLE = (
    "import os, sys\n"
    "name = 'python%d.%d' % sys.version_info[:2]\n"
    "base = os.path.join(sys.base_prefix, 'bin', name)\n"
    "print(base if os.path.isfile(base) else os.path.realpath(sys.executable))\n"
)


@functools.lru_cache(maxsize=None)
def _real_executable(path: str) -> str:
    """The installation's own executable behind ``path``.

    Resolves pyenv/asdf shims (``sys.executable`` of what runs) and virtual environments:
    run with ``-I -S``, a venv's interpreter reports its base installation's prefix, whose
    ``bin/pythonX.Y`` is used (a venv's ``bin/python3.11`` is a symlink into another prefix,
    or a copy that only works next to its ``pyvenv.cfg``, and site-packages are never used).
    """
    try:
        proc = subprocess.run([path, "-I", "-S", "-c", _BASE_EXECUTABLE],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return path
    real = proc.stdout.strip()
    return real if proc.returncode == 0 and real and os.path.isfile(real) else path


def _stamp(path: str) -> List[int]:
    try:
        st = os.stat(path)
    except OSError:
        return []
    return [st.st_size, st.st_mtime_ns]


def _host_paths(value: str, task: Path, opt: Path) -> str:
    """Rewrite /var/task and /opt in a path-list variable to where they are on the host."""
    parts = []
    for part in value.split(":"):
        if part == "/var/task" or part.startswith("/var/task/"):
            part = str(task) + part[len("/var/task"):]
        elif part == "/opt" or part.startswith("/opt/"):
            part = str(opt) + part[len("/opt"):]
        parts.append(part)
    return ":".join(parts)
