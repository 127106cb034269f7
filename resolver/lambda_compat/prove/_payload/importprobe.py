"""The import probe: runs inside the target's interpreter and imports modules one by one.

This file is executed *by the target interpreter* (CPython 3.8 to 3.14, inside a container, a
root directory or on the host), as ``python -I -B -c "<this source>" '<spec json>'``. It must
therefore use the standard library only and run unchanged on every one of those versions.

The spec (one JSON object) says:

``sys_path``
    the path list to import with, in Lambda's order (``/var/task`` first);
``remap``
    ``never`` | ``if-missing`` | ``always``: whether entries under ``/var/lang/lib/`` (the Lambda
    interpreter's own directories) are rewritten to this interpreter's own stdlib, zip and
    ``lib-dynload`` (``if-missing``: only when ``/var/lang/lib/pythonX.Y`` does not exist);
``keep_site_packages``
    when remapping, keep this interpreter's own ``site-packages`` (a root's) or drop it (the
    host's, which must never leak into a check);
``jobs``
    ``[[distribution, module], ...]``;
``after``
    ``{distribution: [module, ...]}``: the modules of the distributions that depend on it. A
    module whose import fails alone is tried once more in a fresh child that first imports
    these (their own failures are reported by their own jobs): some modules refuse to be
    imported on their own by design (``psycopg_binary`` wants ``psycopg`` first), and are
    only ever used through the distributions that depend on them;
``handler``
    ``"module.function"`` (Lambda's syntax, ``dir/module.function`` allowed) or null;
``timeout``
    seconds one import may take; ``parallel``: how many children run at once;
``nofile``
    the open-file limit to run with (Lambda's is 1024).

The parent sets ``sys.path`` and then forks one child per module: each child imports exactly
one module (its output goes to a pipe, never to ours) and writes one JSON result to a second
pipe. A child that crashes (segfault, abort), exits early or hangs is reported as such and
cannot hide the other modules' results. At the end the parent prints one line,
``MARK`` followed by the JSON report, on stdout.
"""

# Everything the probe needs is imported here, before sys.path becomes the bundle's: a bundle
# that ships a module called ``platform`` or ``traceback`` must not replace the probe's own.
# (Lambda's bootstrap has these imported too before it imports the handler.)
import faulthandler
import importlib
import json
import os
import platform
import select
import signal
import sys
import sysconfig
import time
import tokenize  # noqa: F401  (linecache imports it lazily when formatting a traceback)
import traceback

MARK = "@@lambda-compat-probe@@ "
_OUTPUT_TAIL = 4000
_DETAIL_TAIL = 4000


def _own_paths():
    """This interpreter's zip, stdlib, lib-dynload and site-packages directories."""
    nodot = "%d%d" % sys.version_info[:2]
    stdlib = os.path.dirname(os.__file__)
    zip_path = None
    dynload = None
    for entry in sys.path:
        if entry.endswith("python%s.zip" % nodot):
            zip_path = entry
        elif entry.rstrip("/").endswith("lib-dynload"):
            dynload = entry
    if zip_path is None:
        zip_path = os.path.join(os.path.dirname(stdlib), "python%s.zip" % nodot)
    if dynload is None:
        dynload = os.path.join(stdlib, "lib-dynload")
    try:
        site = sysconfig.get_paths()["purelib"]
    except Exception:  # pragma: no cover - broken sysconfig in a foreign root
        site = os.path.join(stdlib, "site-packages")
    return {"zip": zip_path, "stdlib": stdlib, "dynload": dynload, "site": site}


def build_sys_path(spec):
    """The path list the children import with (see the module docstring)."""
    wanted = list(spec["sys_path"])
    remap = spec.get("remap", "never")
    version = "%d.%d" % sys.version_info[:2]
    lang = "/var/lang/lib/python" + version
    if remap == "never" or (remap == "if-missing" and os.path.isdir(lang)):
        return wanted
    own = _own_paths()
    keep_site = bool(spec.get("keep_site_packages", False))
    out = []
    for entry in wanted:
        norm = entry.rstrip("/")
        if not norm.startswith("/var/lang/lib/"):
            out.append(entry)
        elif norm.endswith(".zip"):
            out.append(own["zip"])
        elif norm == lang:
            out.append(own["stdlib"])
        elif norm.endswith("/lib-dynload"):
            out.append(own["dynload"])
        elif norm.endswith("/site-packages"):
            if keep_site:
                out.append(own["site"])
        else:
            out.append(entry)
    return out


def _first_line_summary(exc):
    """``Type: message`` with the message's last non-empty line (messages can be long)."""
    name = type(exc).__name__
    text = str(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        text = "%s (%s, line %s)" % (exc.msg, exc.filename, exc.lineno)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return name
    return "%s: %s" % (name, lines[-1][:500])


def describe_exception(exc):
    """Summary line of ``exc``, plus its innermost chained cause when that says more."""
    summary = _first_line_summary(exc)
    inner = exc
    seen = set()
    while id(inner) not in seen:
        seen.add(id(inner))
        nxt = inner.__cause__ or (None if inner.__suppress_context__ else inner.__context__)
        if nxt is None:
            break
        inner = nxt
    if inner is not exc:
        cause = _first_line_summary(inner)
        if cause.split(": ", 1)[-1] not in summary:
            summary += " (caused by %s)" % cause
    return summary


def _write_all(fd, data):
    while data:
        try:
            n = os.write(fd, data)
        except InterruptedError:  # pragma: no cover
            continue
        data = data[n:]


def _child(job, result_w, output_w):
    """Runs in the forked child: import one thing, report, ``_exit``."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(output_w, 1)
    os.dup2(output_w, 2)
    try:
        faulthandler.enable(file=sys.stderr)
    except Exception:  # pragma: no cover
        pass

    started = time.monotonic()
    result = {"ok": True, "reason": None, "error": None, "detail": None}
    for first in job.get("after", ()):
        try:
            importlib.import_module(first)
        except BaseException:  # its own job reports it
            pass
    try:
        if job["kind"] == "module":
            importlib.import_module(job["module"])
        else:
            modname, _, attr = job["handler"].rpartition(".")
            module = importlib.import_module(modname.replace("/", "."))
            if not hasattr(module, attr):
                result.update(ok=False, reason="handler-not-found",
                              error="HandlerNotFound: module %r has no attribute %r"
                              % (module.__name__, attr))
            elif not callable(getattr(module, attr)):
                result.update(ok=False, reason="handler-not-callable",
                              error="HandlerNotCallable: %s.%s is a %s, not a function"
                              % (module.__name__, attr, type(getattr(module, attr)).__name__))
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are import failures too
        try:
            error = describe_exception(exc)
        except BaseException:  # pragma: no cover - a hostile __str__
            error = type(exc).__name__
        try:
            detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        except BaseException as fmt:  # pragma: no cover - formatting needs a module the bundle broke
            detail = "%s (traceback unavailable: %r)" % (error, fmt)
        result.update(ok=False, reason="import-error", error=error, detail=detail[-_DETAIL_TAIL:])
    result["seconds"] = round(time.monotonic() - started, 4)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # pragma: no cover
        pass
    try:
        _write_all(result_w, json.dumps(result).encode("utf-8"))
    finally:
        os._exit(0)


def _signal_name(number):
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = "signal %d" % number
    try:
        text = signal.strsignal(number)
    except (AttributeError, ValueError):
        text = None
    return name, text


class _Running(object):
    def __init__(self, index, job, pid, result_r, output_r):
        self.index = index
        self.job = job
        self.pid = pid
        self.result_r = result_r
        self.output_r = output_r
        self.result = b""
        self.output = b""
        self.started = time.monotonic()
        self.open = {result_r, output_r}
        self.timed_out = False


def _label(job):
    return job["module"] if job["kind"] == "module" else job["handler"]


def _finish(run, status):
    """The report for one child, from what it wrote and how it ended."""
    output = run.output.decode("utf-8", "replace")[-_OUTPUT_TAIL:]
    seconds = round(time.monotonic() - run.started, 4)
    try:
        result = json.loads(run.result.decode("utf-8")) if run.result else None
    except ValueError:
        result = None
    if result is None:
        result = {"ok": False, "seconds": seconds, "detail": output or None}
        if run.timed_out:
            result.update(reason="timeout", error="Timeout: importing %r took longer than %s s"
                          % (_label(run.job), run.job["timeout"]))
        elif os.WIFSIGNALED(status):
            name, text = _signal_name(os.WTERMSIG(status))
            result.update(reason="crash", error="%s: the interpreter crashed%s while importing %r"
                          % (name, " (%s)" % text if text else "", _label(run.job)))
        else:
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
            result.update(reason="exit", error="Exit: the process exited with status %s while "
                          "importing %r" % (code, _label(run.job)))
    result["output"] = output or None
    return result


def _read(run, fd):
    chunk = os.read(fd, 65536)
    if not chunk:
        os.close(fd)
        run.open.discard(fd)
    elif fd == run.result_r:
        run.result += chunk
    else:
        run.output = (run.output + chunk)[-4 * _OUTPUT_TAIL:]


def run_jobs(jobs, parallel):
    """Fork a child per job, at most ``parallel`` at once; results in job order."""
    results = [None] * len(jobs)
    pending = list(enumerate(jobs))
    running = {}
    while pending or running:
        while pending and len(running) < parallel:
            index, job = pending.pop(0)
            result_r, result_w = os.pipe()
            output_r, output_w = os.pipe()
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                try:
                    os.close(result_r)
                    os.close(output_r)
                    for other in running.values():
                        for fd in other.open:
                            os.close(fd)
                    _child(job, result_w, output_w)
                finally:
                    os._exit(70)
            os.close(result_w)
            os.close(output_w)
            run = _Running(index, job, pid, result_r, output_r)
            running[pid] = run
        fds = [fd for run in running.values() for fd in run.open]
        now = time.monotonic()
        wait = min(max(0.0, run.started + run.job["timeout"] - now) for run in running.values())
        if fds:
            ready = select.select(fds, [], [], min(wait, 0.5))[0]
        else:
            ready = []
            time.sleep(0.01)
        for run in list(running.values()):
            for fd in list(run.open):
                if fd in ready:
                    _read(run, fd)
            pid, status = os.waitpid(run.pid, os.WNOHANG)
            if pid == 0:
                status = None
            else:
                # The child has exited; what it wrote is in the pipes. A grandchild it left
                # running may hold them open: take what is there and move on.
                for fd in list(run.open):
                    while fd in run.open and select.select([fd], [], [], 0.05)[0]:
                        _read(run, fd)
            if status is None and time.monotonic() - run.started > run.job["timeout"]:
                run.timed_out = True
                try:
                    os.kill(run.pid, signal.SIGKILL)
                except OSError:  # pragma: no cover
                    pass
                _, status = os.waitpid(run.pid, 0)
            if status is not None:
                for fd in run.open:
                    os.close(fd)
                run.open = set()
                results[run.index] = _finish(run, status)
                del running[run.pid]
    return results


def retry_failed_after_dependents(jobs, results, after, parallel):
    """Import again, after their dependents, the modules that failed alone (see ``after``).

    A module that then imports is reported ``ok`` with ``after`` (what was imported first)
    and ``alone_error`` (why it failed alone); one that fails again keeps its first result.
    """
    retries = []
    for index, (job, result) in enumerate(zip(jobs, results)):
        first = [m for m in after.get(job.get("distribution"), ()) if m != job.get("module")]
        if job["kind"] == "module" and result.get("reason") == "import-error" and first:
            retries.append((index, dict(job, after=first)))
    if not retries:
        return
    again = run_jobs([job for _, job in retries], parallel)
    for (index, job), result in zip(retries, again):
        if result.get("ok"):
            result["after"] = job["after"]
            result["alone_error"] = results[index].get("error")
            results[index] = result


def _libc():
    try:
        return os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):  # pragma: no cover
        return None


def _limit_files(limit):
    """Lambda allows 1024 open files; lower the limit to that (never raise it)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > limit:
            hard = limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover
        pass


def main(argv):
    spec = json.loads(argv[1])
    if spec.get("nofile"):
        _limit_files(int(spec["nofile"]))
    # What the interpreter is, asked before sys.path changes (platform imports lazily).
    about = {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "machine": platform.machine(),
        "libc": _libc(),
    }
    path = build_sys_path(spec)
    sys.path[:] = path
    timeout = float(spec.get("timeout", 120))
    jobs = [{"kind": "module", "distribution": d, "module": m, "timeout": timeout}
            for d, m in spec.get("jobs", [])]
    if spec.get("handler"):
        jobs.append({"kind": "handler", "handler": spec["handler"], "timeout": timeout})
    parallel = max(1, int(spec.get("parallel", 1)))
    started = time.monotonic()
    results = run_jobs(jobs, parallel)
    retry_failed_after_dependents(jobs, results, spec.get("after") or {}, parallel)
    report = dict(about, **{
        "version": 1,
        "sys_path": path,
        "cwd": os.getcwd(),
        "seconds": round(time.monotonic() - started, 4),
        "results": results,
    })
    sys.stdout.write(MARK + json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
