"""Dynamic proof: import a bundle's modules in the target's interpreter, the way Lambda would.

Each backend runs :mod:`lambda_compat.prove._payload.importprobe` in a fresh interpreter of the target's
Python version with the bundle read-only at ``/var/task``, the layers merged (in order, later
wins) at ``/opt``, ``sys.path`` in the runtime's order and the runtime's environment (both from
the target's :class:`~lambda_compat.registry.runtimes.RuntimeFacts`). The probe forks one child per
module, so a module that crashes the interpreter cannot hide the others' results.

Backends, strongest first:

``container`` (proof ``image``)
    docker or podman running the runtime's image (``public.ecr.aws/lambda/python:X.Y-ARCH``
    by default, overridable, e.g. with a stand-in image from :mod:`lambda_compat.prove.standin`).
``rootfs`` (proof ``rootfs``)
    an unpacked image root (``docker export``), or a stand-in root, run with bwrap (else
    chroot as root, else proot), through qemu-user for a foreign architecture.
``host`` (proof ``host``)
    a local interpreter of the exact version and architecture, isolated (``-I -S``, no host
    site-packages, a temporary HOME) and, when bwrap works, confined to a read-only view of the
    host with the bundle at ``/var/task``.

The environment is the image's (``facts.env``) plus neutral values for the variables the Lambda
service defines for every function (region, function name, memory; never credentials), so that
code reading them at import time behaves as it would on Lambda.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple,
                    Union)

from ..host import binfmt
from .. import errors
from ..host import sandbox
from ..errors import BackendUnavailable
from ..host.interpreters import Interpreter, find_interpreter
from ..targets.target import Target

if TYPE_CHECKING:  # pragma: no cover
    from . import standin as standin_mod

__all__ = [
    "Backend", "BackendUnavailable", "ContainerBackend", "DynamicResult", "HostBackend",
    "ImportOutcome", "RootfsBackend", "available_backends", "backend_status",
    "lambda_environment", "select_backend", "PROOFS", "REQUESTS",
]

#: What a dynamic result proved, weakest first ("static" means no dynamic proof at all).
PROOFS = ("static", "host", "rootfs", "image")
#: Values of ``requested`` for :func:`select_backend`.
REQUESTS = ("auto", "container", "rootfs", "host", "static")

_PROBE_FILE = Path(__file__).parent / "_payload" / "importprobe.py"
_MARK = "@@lambda-compat-probe@@ "
_HANDLER_RE = re.compile(r"^[A-Za-z_][\w]*(?:[./][A-Za-z_]\w*)*\.[A-Za-z_]\w*$")

#: Variables the Lambda service sets for every function (AWS docs, "Defined runtime environment
#: variables"), with neutral values. Credentials are deliberately absent.
SERVICE_ENV = (
    ("AWS_REGION", "us-east-1"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
    ("AWS_LAMBDA_FUNCTION_NAME", "lambda-compat-check"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
    ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
    ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/lambda-compat-check"),
    ("AWS_LAMBDA_LOG_STREAM_NAME", "lambda-compat-check"),
)


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class ImportOutcome:
    distribution: str      # e.g. "psycopg2"
    module: str            # e.g. "psycopg2"
    ok: bool
    #: ``Type: message`` (the message's last line), e.g.
    #: "ImportError: libpq.so.5: cannot open shared object file: No such file or directory".
    error: Optional[str]
    #: import-error | crash | timeout | exit | handler-not-found | handler-not-callable | None
    reason: Optional[str] = None
    #: the traceback (or the crash output) when it failed
    detail: Optional[str] = None
    #: what the import printed (tail)
    output: Optional[str] = None
    seconds: Optional[float] = None
    #: modules imported first because this one failed alone (``after``), and that failure
    after: Tuple[str, ...] = ()
    alone_error: Optional[str] = None


@dataclass(frozen=True)
class DynamicResult:
    target: str            # Target.name, e.g. "python3.12/arm64"
    proof: str             # "image" | "rootfs" | "host"
    backend: str           # human description of what ran the imports
    outcomes: Tuple[ImportOutcome, ...]
    python: Optional[str]  # the interpreter's full version, as it reported itself
    error: Optional[str]   # backend-level failure (could not start), None if it ran
    #: the handler check (``handler=``): distribution "<handler>", module = the handler string
    handler: Optional[ImportOutcome] = None
    #: sys.path the imports ran with, as the interpreter saw it
    sys_path: Tuple[str, ...] = ()
    machine: Optional[str] = None   # platform.machine() inside
    libc: Optional[str] = None      # e.g. "glibc 2.36"
    seconds: Optional[float] = None
    #: set when the root or image is a lambda-compat stand-in, not the runtime's image
    standin: Optional[str] = None

    @property
    def ok(self) -> bool:
        """It ran, every module imported and the handler (if any) resolved."""
        return (self.error is None and all(o.ok for o in self.outcomes)
                and (self.handler is None or self.handler.ok))

    @property
    def failures(self) -> Tuple[ImportOutcome, ...]:
        out = tuple(o for o in self.outcomes if not o.ok)
        if self.handler is not None and not self.handler.ok:
            out += (self.handler,)
        return out

    def outcome(self, module: str) -> ImportOutcome:
        for o in self.outcomes:
            if o.module == module:
                return o
        raise KeyError(module)

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


class Backend(Protocol):
    proof: str

    def describe(self) -> str: ...

    def prepare(self) -> None: ...

    def import_modules(self, task_dir: Path, layer_dirs: Sequence[Path],
                       modules: Sequence[Tuple[str, str]], *, handler: Optional[str] = None,
                       env: Optional[Mapping[str, str]] = None,
                       timeout: float = 120,
                       after: Optional[Mapping[str, Sequence[str]]] = None) -> DynamicResult: ...


# --------------------------------------------------------------------------- shared helpers

def _facts(target: Target):
    if target.facts is not None:
        return target.facts
    from ..registry.runtimes import load_runtimes
    return load_runtimes().get(target.runtime, target.arch)


def lambda_environment(target: Target, *, handler: Optional[str] = None,
                       extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment a handler's import sees on ``target`` (paths as inside the image)."""
    facts = _facts(target)
    env = dict(facts.env)
    env.setdefault("LAMBDA_TASK_ROOT", "/var/task")
    env.setdefault("LAMBDA_RUNTIME_DIR", "/var/runtime")
    env.setdefault("AWS_EXECUTION_ENV", f"AWS_Lambda_{target.runtime}")
    for key, value in SERVICE_ENV:
        env.setdefault(key, value)
    if handler:
        env["_HANDLER"] = handler
        env["LAMBDA_COMPAT_CLI_MODE"] = "1"
    if extra:
        env.update({str(k): str(v) for k, v in extra.items()})
    return env


def probe_source() -> str:
    return _PROBE_FILE.read_text(encoding="utf-8")


def _check_handler(handler: Optional[str]) -> None:
    if handler is not None and not _HANDLER_RE.match(handler):
        raise errors.BadInput(
            f"Handler {handler!r} is not of the form module.function.",
            hint="Lambda's Python handler is 'file.function' (e.g. app.handler, or "
                 "pkg/app.handler for a file in a folder).")


def _check_dirs(task_dir: Path, layer_dirs: Sequence[Path]) -> Tuple[Path, List[Path]]:
    task = Path(task_dir)
    if not task.is_dir():
        raise errors.BadInput(f"{task}: the bundle directory does not exist.",
                              hint="Pass the directory that becomes /var/task.")
    layers = [Path(p) for p in layer_dirs]
    for layer in layers:
        if not layer.is_dir():
            raise errors.BadInput(f"{layer}: the layer directory does not exist.",
                                  hint="Pass the directory a layer zip was extracted into.")
    return task.resolve(), [p.resolve() for p in layers]


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def _merge_tree(src: Path, dest: Path) -> None:
    """Lay ``src`` over ``dest`` (later wins), hard-linking files where possible."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        target_dir = dest / rel
        if target_dir.is_symlink() or (target_dir.exists() and not target_dir.is_dir()):
            target_dir.unlink()
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in list(dirnames):
            path = Path(dirpath) / name
            if path.is_symlink():  # os.walk does not descend into it; lay it down as a link
                dirnames.remove(name)
                filenames.append(name)
        for name in filenames:
            path = Path(dirpath) / name
            out = target_dir / name
            if out.is_symlink() or out.is_file():
                out.unlink()
            elif out.is_dir():
                shutil.rmtree(out)
            if path.is_symlink():
                os.symlink(os.readlink(path), out)
            else:
                _link_or_copy(path, out)


@contextlib.contextmanager
def staged_opt(layer_dirs: Sequence[Path]) -> Iterator[Path]:
    """A directory to show at /opt: the one layer as it is, or the layers merged in order.

    Never writes into the layers: merging builds a new tree (hard links, else copies) that is
    removed afterwards. No layer gives an empty directory (Lambda's /opt without layers).
    """
    layers = list(layer_dirs)
    if len(layers) == 1:
        yield layers[0]
        return
    scratch = Path(tempfile.mkdtemp(prefix="lambda-compat-opt-"))
    try:
        for layer in layers:
            _merge_tree(layer, scratch)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(argv: Sequence[str], *, env: Mapping[str, str], cwd: Optional[str],
         timeout: float) -> Tuple[Optional[int], str, str]:
    """Run in a new session; on timeout the whole process group is killed. rc None = timeout."""
    proc = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return None, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:  # an exception (KeyboardInterrupt) on the way out
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tail(text: str, n: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= n else "…" + text[-n:]


def _overall_timeout(timeout: float, jobs: int) -> float:
    return 60.0 + timeout * (jobs + 1)


def _spec(target: Target, sys_path: Sequence[str], modules: Sequence[Tuple[str, str]],
          handler: Optional[str], timeout: float, *, remap: str, keep_site: bool,
          parallel: Optional[int] = None,
          after: Optional[Mapping[str, Sequence[str]]] = None) -> str:
    return json.dumps({
        "sys_path": list(sys_path),
        "after": {d: list(m) for d, m in (after or {}).items()},
        "remap": remap,
        "keep_site_packages": keep_site,
        "jobs": [[d, m] for d, m in modules],
        "handler": handler,
        "timeout": timeout,
        "parallel": parallel or max(1, min(4, os.cpu_count() or 1)),
        "nofile": LAMBDA_NOFILE,
    })


def _parse(target: Target, proof: str, backend: str, modules: Sequence[Tuple[str, str]],
           handler: Optional[str], rc: Optional[int], out: str, err: str,
           seconds: float, standin: Optional[str], timeout: float) -> DynamicResult:
    def failed(message: str) -> DynamicResult:
        return DynamicResult(target=target.name, proof=proof, backend=backend, outcomes=(),
                             python=None, error=message, seconds=seconds, standin=standin)

    if rc is None:
        return failed(f"the import run did not finish within {_overall_timeout(timeout, len(modules)):.0f} s "
                      f"(killed){': ' + _tail(err) if err.strip() else ''}")
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith(_MARK)), None)
    if line is None:
        detail = _tail(err) or _tail(out) or "no output"
        return failed(f"the interpreter did not start or did not report (exit status {rc}): {detail}")
    try:
        report = json.loads(line[len(_MARK):])
    except ValueError as e:
        return failed(f"the probe's report is not JSON ({e})")
    version = report.get("python") or ""
    want = "%d.%d" % tuple(target.python_version)
    if version.split(".")[:2] != want.split("."):
        return failed(f"the interpreter is Python {version}, but {target.name} needs {want}")
    results = report.get("results") or []
    expected = len(modules) + (1 if handler else 0)
    if len(results) != expected:
        return failed(f"the probe reported {len(results)} results for {expected} imports")

    def outcome(dist: str, module: str, r: Mapping[str, Any]) -> ImportOutcome:
        return ImportOutcome(distribution=dist, module=module, ok=bool(r.get("ok")),
                             error=r.get("error"), reason=r.get("reason"),
                             detail=r.get("detail"), output=r.get("output"),
                             seconds=r.get("seconds"), after=tuple(r.get("after") or ()),
                             alone_error=r.get("alone_error"))

    outcomes = tuple(outcome(d, m, r) for (d, m), r in zip(modules, results))
    handler_outcome = outcome("<handler>", handler, results[-1]) if handler else None
    return DynamicResult(target=target.name, proof=proof, backend=backend, outcomes=outcomes,
                         python=version, error=None, handler=handler_outcome,
                         sys_path=tuple(report.get("sys_path") or ()),
                         machine=report.get("machine"), libc=report.get("libc"),
                         seconds=seconds, standin=standin)


class _ProbeBackend:
    """Shared run logic; subclasses say how to start the interpreter."""

    proof = "static"

    def __init__(self, target: Target) -> None:
        self.target = target
        self._after: Dict[str, Tuple[str, ...]] = {}

    def describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def prepare(self) -> None:
        """Make the backend ready (pull an image, build a stand-in). Raises BackendUnavailable."""

    @property
    def standin(self) -> Optional[str]:
        return None

    def import_modules(self, task_dir: Path, layer_dirs: Sequence[Path],
                       modules: Sequence[Tuple[str, str]], *, handler: Optional[str] = None,
                       env: Optional[Mapping[str, str]] = None,
                       timeout: float = 120,
                       after: Optional[Mapping[str, Sequence[str]]] = None) -> DynamicResult:
        """Import each ``(distribution, module)`` in a fresh child of the target interpreter.

        ``timeout`` bounds one import; the whole run is bounded by 60 s + timeout x (n+1).
        ``handler`` ("app.handler") also imports the handler's module and checks that the
        attribute exists and is callable, with ``LAMBDA_COMPAT_CLI_MODE=1`` set. ``after``
        maps a distribution to the modules of the distributions that depend on it: a module
        of it that fails alone is tried again after importing those (see importprobe).
        """
        _check_handler(handler)
        self._after = {str(d): tuple(str(m) for m in ms) for d, ms in (after or {}).items()}
        task, layers = _check_dirs(task_dir, layer_dirs)
        modules = [(str(d), str(m)) for d, m in modules]
        lambda_env = lambda_environment(self.target, handler=handler, extra=env)
        started = time.monotonic()
        try:
            self.prepare()
        except errors.EnvironmentProblem as e:
            return DynamicResult(target=self.target.name, proof=self.proof,
                                 backend=self.describe(), outcomes=(), python=None,
                                 error=str(e), standin=self.standin)
        empty = None
        try:
            if not layers:
                empty = Path(tempfile.mkdtemp(prefix="lambda-compat-opt-"))
                layers = [empty]
            with staged_opt(layers) as opt:
                rc, out, err = self._execute(task, opt, modules, handler, lambda_env, timeout)
        finally:
            if empty is not None:
                shutil.rmtree(empty, ignore_errors=True)
        return _parse(self.target, self.proof, self.describe(), modules, handler, rc, out, err,
                      round(time.monotonic() - started, 3), self.standin, timeout)

    def _execute(self, task: Path, opt: Path, modules, handler, env, timeout):
        raise NotImplementedError  # pragma: no cover


# --------------------------------------------------------------------------- host

class HostBackend(_ProbeBackend):
    """A local interpreter of the target's exact version and architecture.

    Confined (bwrap), it sees a read-only view of the host in which the shared libraries are
    only the interpreter's own and the runtime's (:mod:`lambda_compat.host.hostlibs`): a library
    the bundle loads that Lambda lacks is missing here too. Unconfined it sees them all, and
    says so.
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
        """The library view (:class:`~lambda_compat.host.hostlibs.HostLibraries`) or None."""
        if self._libraries is None:
            from ..host.hostlibs import host_libraries
            self._libraries = host_libraries(self.executable, _facts(self.target)) or False
        return self._libraries or None

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
        for entry in _facts(self.target).sys_path:
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
        facts = _facts(self.target)
        with tempfile.TemporaryDirectory(prefix="lambda-compat-host-") as scratch:
            if self.confine:
                spec = _spec(self.target, facts.sys_path, modules, handler, timeout,
                             remap="always", keep_site=False, after=self._after)
                env = dict(env, HOME="/tmp", TMPDIR="/tmp")
                view = self.libraries()
                argv = sandbox.bwrap_argv(sandbox.Mounts(Path("/"), task, opt),
                                          argv_python + [spec],
                                          extra_binds=self._extra_binds(),
                                          libraries=view.filter() if view else None)
                cwd = None
            else:
                spec = _spec(self.target, self.host_sys_path(task, opt), modules, handler,
                             timeout, remap="always", keep_site=False, after=self._after)
                home = Path(scratch, "home")
                tmp = Path(scratch, "tmp")
                home.mkdir()
                tmp.mkdir()
                env = {k: _host_paths(v, task, opt) for k, v in env.items()}
                env.update(HOME=str(home), TMPDIR=str(tmp))
                argv = argv_python + [spec]
                cwd = str(task)
            return _run(argv, env=env, cwd=cwd, timeout=_overall_timeout(timeout, len(modules)))


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


# --------------------------------------------------------------------------- rootfs

def _resolve_in_root(root: Path, path: str, depth: int = 0) -> Optional[Path]:
    """``path`` inside ``root`` with symlinks resolved against ``root`` (not the host)."""
    if depth > 40:
        return None
    current = root
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        candidate = current / part
        if candidate.is_symlink():
            link = os.readlink(candidate)
            rest = "/".join(parts[i + 1:])
            if link.startswith("/"):
                joined = link + ("/" + rest if rest else "")
            else:
                base = "/" + str(current.relative_to(root)) if current != root else ""
                joined = os.path.normpath(f"{base}/{link}") + ("/" + rest if rest else "")
            return _resolve_in_root(root, joined, depth + 1)
        if not candidate.exists():
            return None
        current = candidate
    return current


def root_interpreter(root: Path, version: Tuple[int, int]) -> Optional[str]:
    """Path (inside ``root``) of its ``python3.X``: Lambda's /var/lang/bin first."""
    name = f"python{version[0]}.{version[1]}"
    for directory in ("/var/lang/bin", "/usr/bin", "/usr/local/bin"):
        inside = f"{directory}/{name}"
        real = _resolve_in_root(root, inside)
        if real is not None and real.is_file():
            return inside
    return None


def root_machine(root: Path, inside: str) -> Optional[str]:
    from ..errors import ELFError
    from ..verify.elf import read_elf
    real = _resolve_in_root(root, inside)
    if real is None:
        return None
    try:
        return read_elf(real).machine
    except (ELFError, OSError):
        return None


class RootfsBackend(_ProbeBackend):
    """An unpacked root directory (exported image or stand-in) run in a sandbox."""

    proof = "rootfs"

    def __init__(self, target: Target, root: Optional[Path], *, runner: Optional[str] = None,
                 standin_kind: Optional[str] = None, cache_dir: Optional[Path] = None,
                 ui: Any = None) -> None:
        super().__init__(target)
        self.ui = ui
        self.root = Path(root).resolve() if root is not None else None
        self.runner = runner or sandbox.first_runner()
        self.standin_kind = standin_kind  # build/find a stand-in in prepare() when root is None
        self.cache_dir = cache_dir
        self._standin_info: Optional["standin_mod.StandinInfo"] = None
        self.python: Optional[str] = None
        self.qemu: Optional[str] = None
        self._foreign = False
        self._prepared = False
        if self.root is not None:
            self._inspect()

    def _inspect(self) -> None:
        from . import standin
        assert self.root is not None
        self._standin_info = standin.read_info(self.root)
        self.python = root_interpreter(self.root, self.target.python_version)
        if self.python is None:
            raise BackendUnavailable(
                f"{self.root} has no python{self.target.python_version[0]}."
                f"{self.target.python_version[1]} in /var/lang/bin, /usr/bin or /usr/local/bin, so "
                f"it cannot serve {self.target.name}.",
                hint=f"Pass the root of the {self.target.name} image (docker export of "
                     f"{_facts(self.target).image}) or a stand-in root for that version.")
        machine = root_machine(self.root, self.python)
        if machine != self.target.machine:
            raise BackendUnavailable(
                f"{self.root}: its interpreter is built for {machine}, but {self.target.name} "
                f"runs on {self.target.machine}.",
                hint="Pass a root of the target's architecture.")
        self._foreign = machine != binfmt.host_machine()
        if self._foreign and not binfmt.status(machine).usable_in_sandbox:
            self.qemu = binfmt.static_qemu(machine)
            if self.qemu is None:
                raise BackendUnavailable(
                    f"{self.target.name} needs {machine} binaries to run on this "
                    f"{binfmt.host_machine()} machine, and no qemu-user is set up.",
                    hint="apt-get install qemu-user-static, then (as root) "
                         "python -m lambda_compat.prove.standin binfmt")
        if self.runner is None:
            raise BackendUnavailable(
                "No sandbox to run a root directory with: bwrap, proot and chroot are all "
                "unavailable.", hint=f"Install bubblewrap: {sandbox.install_hint('bwrap')}.")
        if self.runner == "chroot":
            missing = sandbox.missing_mount_points(self.root)
            if missing:
                raise BackendUnavailable(
                    f"{self.root} lacks {', '.join(missing)}, which the chroot runner mounts onto.",
                    hint=f"Install bubblewrap, which needs no mount points: "
                         f"{sandbox.install_hint('bwrap')}.")

    def prepare(self) -> None:
        if self._prepared:
            return
        if self.root is None:
            from . import standin
            root = standin.ensure_standin(self.target, kind=self.standin_kind or "auto",
                                          cache_dir=self.cache_dir, ui=self.ui)
            self.root = root.path
            self._inspect()
        self._prepared = True

    @property
    def standin(self) -> Optional[str]:
        return self._standin_info.describe() if self._standin_info else None

    def describe(self) -> str:
        if self.root is None:
            return f"{self.runner} rootfs: stand-in for {self.target.name} (not built yet)"
        how = self.runner or "no sandbox"
        if self._foreign:
            how += f"+qemu-{self.target.machine}" + (" (explicit)" if self.qemu else " (binfmt)")
        text = f"{how} rootfs {self.root}"
        if self._standin_info:
            text += f" [stand-in: {self._standin_info.describe()}]"
        if self.runner == "proot":
            text += " (proot: on a copy of the bundle; writes are not refused)"
        return text

    def _execute(self, task, opt, modules, handler, env, timeout):
        assert self.root is not None and self.python is not None
        facts = _facts(self.target)
        spec = _spec(self.target, facts.sys_path, modules, handler, timeout,
                     remap="if-missing", keep_site=True, after=self._after)
        command = [self.python, "-I", "-B", "-c", probe_source(), spec]
        mounts = sandbox.Mounts(self.root, task, opt, self.qemu)
        overall = _overall_timeout(timeout, len(modules))
        if self.runner == "bwrap":
            return _run(sandbox.bwrap_argv(mounts, command), env=env, cwd=None, timeout=overall)
        if self.runner == "proot":
            # proot cannot bind read-only: run on private copies so nothing reaches the originals.
            with tempfile.TemporaryDirectory(prefix="lambda-compat-proot-") as scratch:
                tmp = Path(scratch, "tmp")
                tmp.mkdir()
                os.chmod(tmp, 0o1777)
                shutil.copytree(task, Path(scratch, "task"), symlinks=True)
                shutil.copytree(opt, Path(scratch, "opt"), symlinks=True)
                mounts = sandbox.Mounts(self.root, Path(scratch, "task"), Path(scratch, "opt"),
                                        self.qemu)
                return _run(sandbox.proot_argv(mounts, command, tmp), env=env, cwd=None,
                            timeout=overall)
        # The chroot script runs host tools (mount) first; the command gets Lambda's PATH back.
        host_env = dict(env, PATH=os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin",
                        LAMBDA_COMPAT_INNER_PATH=env.get("PATH", "/usr/bin:/bin"))
        return _run(sandbox.chroot_argv(mounts, command), env=host_env, cwd=None, timeout=overall)


# --------------------------------------------------------------------------- container

@functools.lru_cache(maxsize=None)
def _engine_answers(exe: str) -> bool:
    kind = Path(exe).name
    argv = [exe, "version", "--format", "{{.Server.Version}}"] if kind.startswith("docker") \
        else [exe, "info", "--format", "{{.Host.Arch}}"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())


def find_engine(engine: Optional[str] = None) -> Tuple[Optional[str], str]:
    """(engine executable, why-not). docker only if its engine answers; then podman."""
    names = [engine] if engine else ["docker", "podman"]
    reasons = []
    for name in names:
        exe = shutil.which(name) if name else None
        if exe is None:
            reasons.append(f"{name} is not installed")
            continue
        if _engine_answers(exe):
            return exe, ""
        reasons.append(f"{name} is installed but its engine does not answer")
    return None, "; ".join(reasons)


def _podman_global_args(exe: str) -> List[str]:
    """podman as root on a hybrid-cgroup host: crun refuses, runc works (see the notes)."""
    if Path(exe).name != "podman" or os.geteuid() != 0:
        return []
    if os.path.isdir("/sys/fs/cgroup/unified") and shutil.which("runc"):
        return ["--runtime", "runc"]
    return []


#: Lambda's file-descriptor quota (AWS Lambda quotas: "File descriptors 1,024"). The probe sets
#: it in every backend; containers get it from the start.
LAMBDA_NOFILE = 1024


def _container_ulimits() -> List[str]:
    """Limits for ``run``: Lambda's nofile, and an nproc this process may grant.

    Engines ask for nofile=1048576 and a high nproc by default; where the hard limits are lower
    (as root in some VMs, or through podman's docker API) the OCI runtime fails with
    "setting rlimit ... operation not permitted".
    """
    args = ["--ulimit", f"nofile={LAMBDA_NOFILE}:{LAMBDA_NOFILE}"]
    try:
        import resource
        hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    except (ImportError, AttributeError, OSError, ValueError):  # pragma: no cover
        return args
    value = 32768 if hard == resource.RLIM_INFINITY else min(hard, 32768)
    return args + ["--ulimit", f"nproc={value}:{value}"]


class ContainerBackend(_ProbeBackend):
    """docker or podman running the runtime's image (or an override, e.g. a stand-in)."""

    proof = "image"

    def __init__(self, target: Target, engine: str, image: Optional[str] = None, *,
                 pull: bool = True, pull_timeout: float = 900) -> None:
        super().__init__(target)
        self.engine = engine
        self.kind = "podman" if Path(engine).name.startswith("podman") else "docker"
        self.image = image or _facts(target).image
        self.pull = pull
        self.pull_timeout = pull_timeout
        self._labels: Optional[Dict[str, str]] = None
        self._python: Optional[str] = None
        #: names of the containers started by the last import_modules (all removed afterwards)
        self.last_containers: List[str] = []

    @property
    def platform(self) -> str:
        return f"linux/{'arm64' if self.target.arch == 'arm64' else 'amd64'}"

    def _engine(self, *args: str) -> List[str]:
        return [self.engine] + _podman_global_args(self.engine) + list(args)

    def _inspect(self) -> Optional[Dict[str, str]]:
        proc = subprocess.run(self._engine("image", "inspect", "--format",
                                           "{{json .Config.Labels}}", self.image),
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            return None
        try:
            return json.loads(proc.stdout.strip() or "null") or {}
        except ValueError:
            return {}

    def prepare(self) -> None:
        if self._labels is not None:
            return
        labels = self._inspect()
        if labels is None:
            if not self.pull:
                raise BackendUnavailable(f"The image {self.image} is not present locally.",
                                         hint=f"{self.kind} pull --platform {self.platform} {self.image}")
            try:
                proc = subprocess.run(self._engine("pull", "--platform", self.platform, self.image),
                                      capture_output=True, text=True, timeout=self.pull_timeout,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise BackendUnavailable(
                    f"Pulling {self.image} took longer than {self.pull_timeout:.0f} s.",
                    hint=f"Pull it beforehand: {self.kind} pull --platform {self.platform} "
                         f"{self.image}") from None
            if proc.returncode != 0:
                raise BackendUnavailable(
                    f"The image {self.image} is not present and pulling it failed: "
                    f"{_tail(proc.stderr or proc.stdout, 400)}",
                    hint="Check the network/registry, or pass a local image (a stand-in: "
                         "python -m lambda_compat.prove.standin image).")
            labels = self._inspect() or {}
        self._labels = labels

    @property
    def standin(self) -> Optional[str]:
        if self._labels and self._labels.get("io.lambda-compat.standin"):
            return self._labels.get("io.lambda-compat.standin.describe") or "stand-in image"
        return None

    def describe(self) -> str:
        text = f"{Path(self.engine).name} {self.image}"
        if self.standin:
            text += f" [stand-in: {self.standin}]"
        return text

    def _run_argv(self, name: str, task: Path, opt: Path, env: Mapping[str, str],
                  python: str, args: Sequence[str]) -> List[str]:
        argv = self._engine("run", "--rm", "--name", name, "--pull=never",
                            "--platform", self.platform, "--network", "none", "--read-only",
                            "-v", f"{task}:/var/task:ro", "-v", f"{opt}:/opt:ro",
                            "-w", "/var/task", "--entrypoint", python)
        if self.kind == "docker":
            argv += ["--tmpfs", "/tmp"]
        argv += _container_ulimits()
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        return argv + [self.image] + list(args)

    @contextlib.contextmanager
    def _container(self) -> Iterator[Dict[str, Any]]:
        """A container name; whatever happens, no container of that name is left behind.

        ``run --rm`` removes the container when the run ends normally (the caller then sets
        ``finished``); after a timeout, an error or an interrupt it is removed here.
        """
        state: Dict[str, Any] = {"name": f"lambda-compat-{uuid.uuid4().hex[:12]}",
                                 "finished": False}
        try:
            yield state
        finally:
            if not state["finished"]:
                name = state["name"]
                subprocess.run(self._engine("rm", "-f", "--time", "0", "--ignore", name)
                               if self.kind == "podman" else self._engine("rm", "-f", name),
                               capture_output=True, timeout=120, stdin=subprocess.DEVNULL)

    def _execute(self, task, opt, modules, handler, env, timeout):
        for path in (task, opt):
            if ":" in str(path):
                raise errors.BadInput(f"{path}: a path with ':' cannot be mounted into a "
                                      "container (-v SRC:DEST:ro).",
                                      hint="Move or copy it to a path without ':'.")
        facts = _facts(self.target)
        spec = _spec(self.target, facts.sys_path, modules, handler, timeout,
                     remap="if-missing", keep_site=True, after=self._after)
        version = "%d.%d" % tuple(self.target.python_version)
        candidates = [self._python] if self._python else [
            f"/var/lang/bin/python{version}", f"/usr/bin/python{version}",
            f"/usr/local/bin/python{version}"]
        overall = _overall_timeout(timeout, len(modules))
        result: Tuple[Optional[int], str, str] = (1, "", "")
        self.last_containers = []
        for python in candidates:
            with self._container() as container:
                self.last_containers.append(container["name"])
                argv = self._run_argv(container["name"], task, opt, env, python,
                                      ["-I", "-B", "-c", probe_source(), spec])
                result = _run(argv, env=os.environ, cwd=None, timeout=overall)
                container["finished"] = result[0] is not None
            rc, out, err = result
            if (rc == 127 and _MARK not in out and len(candidates) > 1
                    and re.search(r"not found|no such file", err, re.I)):
                continue  # no such interpreter in this image: try the next place
            self._python = python
            break
        return result


# --------------------------------------------------------------------------- selection

def _container_candidate(target: Target, image: Optional[str], engine: Optional[str]):
    exe, why = find_engine(engine)
    if exe is None:
        return None, (f"no container engine: {why}. Install podman (apt-get install podman) "
                      "or start the docker daemon")
    machine = target.machine
    # On Linux the engine runs foreign images through the kernel's binfmt_misc; elsewhere
    # (Docker Desktop) its own VM emulates them.
    if (sys.platform.startswith("linux") and machine != binfmt.host_machine()
            and not binfmt.status(machine).usable_in_sandbox):
        return None, (f"{target.name} images need {machine} emulation: apt-get install "
                      "qemu-user-static and register binfmt (python -m lambda_compat.prove.standin binfmt)")
    return ContainerBackend(target, exe, image), None


def _rootfs_candidate(target: Target, rootfs: Optional[Union[str, Path]], *,
                      auto: bool = False, ui: Any = None):
    if rootfs is None and auto:
        return _auto_standin_candidate(target, ui)
    if rootfs is None:
        return None, ("no root directory given (pass an unpacked image root, e.g. from "
                      "`docker export`, or 'standin' for a lambda-compat stand-in root)")
    if str(rootfs) == "standin" or str(rootfs).startswith("standin:"):
        from . import standin
        kind = str(rootfs).partition(":")[2] or "auto"
        plan, why = standin.plan_standin(target, kind=kind)
        if plan is None:
            return None, why
        if sandbox.first_runner() is None:
            return None, f"no sandbox: {sandbox.install_hint('bwrap')}"
        return RootfsBackend(target, None, standin_kind=kind, ui=ui), None
    path = Path(rootfs)
    if not path.is_dir():
        raise errors.BadInput(f"{path}: the root directory does not exist.",
                              hint="Pass an unpacked image root (docker export IMAGE | tar -x -C DIR).")
    try:
        return RootfsBackend(target, path), None
    except BackendUnavailable as e:
        return None, str(e)


def _auto_standin_candidate(target: Target, ui: Any = None):
    """``auto`` without a root: a stand-in root when one can be had cheaply.

    A copy of a local interpreter is built on first use (seconds) and cached; a Debian root
    (root privileges, the network, minutes) is used only once it has been built
    (``python -m lambda_compat.prove.standin root`` or ``--rootfs standin``).
    """
    from . import standin
    plan, why = standin.plan_standin(target, kind="auto")
    if plan is None:
        return None, why
    if plan.kind != "copy" and standin.find_standin(target, kind="auto") is None:
        return None, (f"no stand-in root for {target.name} is built yet (a Debian {plan.suite} "
                      f"root: python -m lambda_compat.prove.standin root --runtime {target.runtime} "
                      f"--arch {target.arch}, or --rootfs standin)")
    if sandbox.first_runner() is None:
        return None, f"no sandbox to run a stand-in root with ({sandbox.install_hint('bwrap')})"
    return RootfsBackend(target, None, standin_kind="auto", ui=ui), None


def _host_candidate(target: Target, python: Optional[str]):
    if target.machine != binfmt.host_machine():
        return None, (f"this machine is {binfmt.host_machine()}, {target.name} runs on "
                      f"{target.machine}; a host interpreter cannot prove it")
    interp = find_interpreter(target.python_version, target.machine, python)
    if interp is None:
        v = "%d.%d" % tuple(target.python_version)
        return None, (f"no local CPython {v} for {target.machine} (install it: pyenv install {v}, "
                      f"uv python install {v}, or apt-get install python{v}; or pass --python)")
    if tuple(interp.version[:2]) != tuple(target.python_version):  # pragma: no cover
        return None, f"{interp.path} is not Python {target.python_version}"
    return HostBackend(target, interp), None


def _candidates(target: Target, image, rootfs, python, engine, only: Optional[str] = None,
                ui: Any = None):
    """(name, backend or None, why-not), strongest first; lazily, so "host" never asks docker.

    ``only=None`` is ``auto``: there the rootfs backend without a root is a stand-in root.
    """
    makers = (("container", lambda: _container_candidate(target, image, engine)),
              ("rootfs", lambda: _rootfs_candidate(target, rootfs, auto=only is None, ui=ui)),
              ("host", lambda: _host_candidate(target, python)))
    for name, make in makers:
        if only is None or name == only:
            yield (name,) + make()


def backend_status(target: Target, *, image: Optional[str] = None,
                   rootfs: Optional[Union[str, Path]] = None, python: Optional[str] = None,
                   engine: Optional[str] = None) -> List[Tuple[str, Optional[Backend], Optional[str]]]:
    """Every backend kind for ``target``, strongest first: (name, backend or None, why not).

    For messages such as "container: no engine (install podman)"; cheap checks only.
    """
    return list(_candidates(target, image, rootfs, python, engine))


def available_backends(target: Target, *, image: Optional[str] = None,
                       rootfs: Optional[Union[str, Path]] = None, python: Optional[str] = None,
                       engine: Optional[str] = None) -> List[Backend]:
    """Backends that can run here for ``target``, strongest first.

    Only cheap checks happen here; a container backend's image is pulled (and a stand-in root
    built) by ``prepare()``, which :func:`select_backend` calls.
    """
    return [b for _, b, _ in _candidates(target, image, rootfs, python, engine) if b is not None]


def select_backend(target: Target, requested: str = "auto", *, image: Optional[str] = None,
                   rootfs: Optional[Union[str, Path]] = None, python: Optional[str] = None,
                   engine: Optional[str] = None, ui: Any = None,
                   skipped: Optional[List[str]] = None) -> Optional[Backend]:
    """The backend to prove ``target`` with, prepared; None for "static" or when auto finds none.

    An explicitly requested backend that cannot run raises :class:`BackendUnavailable`
    saying what is missing and how to get it. "auto" tries container, rootfs, host in turn
    and takes the first one that prepares; its container must already have the image (an
    explicit "container" pulls it). ``rootfs`` is a directory, or "standin" (or
    "standin:copy|unpack|debootstrap") for a cached lambda-compat stand-in built on first use;
    under "auto" without a root, a stand-in root is preferred to the host when one can be had
    (a copy of a local interpreter, built on first use; a Debian root once built). ``ui``
    receives the stand-in build's progress events; ``skipped`` (a list) receives, under
    "auto", one line per backend that was available but could not be prepared.
    """
    if requested not in REQUESTS:
        raise errors.BadInput(f"Unknown backend {requested!r}.",
                              hint=f"Choose one of: {', '.join(REQUESTS)}.")
    if requested == "static":
        return None
    candidates = _candidates(target, image, rootfs, python, engine,
                             only=None if requested == "auto" else requested, ui=ui)
    if requested == "auto":
        for _, backend, _ in candidates:
            if backend is None:
                continue
            if isinstance(backend, ContainerBackend):
                # auto never starts a pull of several hundred MB (or waits on a registry that
                # does not answer): the image must be there; `container` pulls.
                backend.pull = False
            try:
                backend.prepare()
            except errors.EnvironmentProblem as e:
                if skipped is not None and not isinstance(backend, ContainerBackend):
                    skipped.append(f"{backend.proof}: {e.message}")
                continue
            return backend
        return None
    for name, backend, why in candidates:
        if name != requested:
            continue
        if backend is None:
            raise BackendUnavailable(f"The {name} backend cannot prove {target.name} here: {why}.")
        try:
            backend.prepare()
        except BackendUnavailable:
            raise
        except errors.EnvironmentProblem as e:
            raise BackendUnavailable(f"The {name} backend cannot prove {target.name}: {e}") from e
        return backend
    raise AssertionError(requested)  # pragma: no cover
