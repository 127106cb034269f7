"""What every backend shares: the Lambda environment, /opt from the layers, the probe's run.

Each backend runs :mod:`lambda_compat.prove._payload.importprobe` in a fresh interpreter;
:class:`ProbeBackend` checks the inputs, stages ``/opt``, lets the subclass start the
interpreter (``_execute``) and turns the probe's report into a
:class:`~lambda_compat.prove.backends.results.DynamicResult`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ... import errors
from ...targets.target import Target
from .results import DynamicResult, ImportOutcome


_PROBE_FILE = Path(__file__).parent.parent / "_payload" / "importprobe.py"
PROBE_MARK = "@@lambda-compat-probe@@ "
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

#: Lambda's file-descriptor quota (AWS Lambda quotas: "File descriptors 1,024"). The probe sets
#: it in every backend; containers get it from the start.
LAMBDA_NOFILE = 1024


def target_facts(target: Target):
    if target.facts is not None:
        return target.facts
    from ...registry.runtimes import load_runtimes
    return load_runtimes().get(target.runtime, target.arch)


def lambda_environment(target: Target, *, handler: Optional[str] = None,
                       extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment a handler's import sees on ``target`` (paths as inside the image)."""
    facts = target_facts(target)
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


_FILE_HASHES: Dict[Tuple[str, int, int, int], str] = {}


def file_sha256(path: str) -> Optional[str]:
    """sha256 of a file (an interpreter, a root's record), remembered for this process by
    path, inode, size and mtime; None if it cannot be read."""
    import hashlib
    try:
        st = os.stat(path)
        key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in _FILE_HASHES:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            _FILE_HASHES[key] = h.hexdigest()
        return _FILE_HASHES[key]
    except OSError:
        return None


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


def run_command(argv: Sequence[str], *, env: Mapping[str, str], cwd: Optional[str],
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


def tail(text: str, n: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= n else "…" + text[-n:]


def overall_timeout(timeout: float, jobs: int) -> float:
    return 60.0 + timeout * (jobs + 1)


def probe_spec(target: Target, sys_path: Sequence[str], modules: Sequence[Tuple[str, str]],
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
        return failed(f"the import run did not finish within {overall_timeout(timeout, len(modules)):.0f} s "
                      f"(killed){': ' + tail(err) if err.strip() else ''}")
    line = next((ln for ln in reversed(out.splitlines()) if ln.startswith(PROBE_MARK)), None)
    if line is None:
        detail = tail(err) or tail(out) or "no output"
        return failed(f"the interpreter did not start or did not report (exit status {rc}): {detail}")
    try:
        report = json.loads(line[len(PROBE_MARK):])
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


class ProbeBackend:
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

    def identity(self) -> Optional[Dict[str, Any]]:
        """What this backend runs, for reusing its proofs (:mod:`..proof_cache`): None means
        never reuse (the default)."""
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
