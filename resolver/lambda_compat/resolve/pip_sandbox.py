"""Inside a pip process: run every piece of third-party build code in the build sandbox.

Standard library only, and loaded by file path, so that any interpreter lambda-compat builds
with (CPython 3.8 and later, each with its own pip) can use it without lambda-compat being
importable there. Three entry points:

* :func:`install` patches pip in the running process (the resolution engine,
  :mod:`lambda_compat.resolve.pip_shim`, and ``wheel`` below) so that

  - every PEP 517 hook call (metadata preparation, ``get_requires_for_build_*``,
    ``build_wheel``) and every legacy ``setup.py`` call is started through :func:`wrap`:
    a wall-clock timeout and a process-group kill (``exec`` below), inside bubblewrap with
    no network, a read-only system, no HOME, an allow-list of environment variables and only
    the build directory writable;
  - build dependencies are installed from wheels only (``--only-binary :all:``): pip installs
    them outside the sandbox, with the network, and an sdist among them would run its
    build code there.

* ``python pip_sandbox.py exec TIMEOUT -- ARGV``: run ARGV in its own process group; kill the
  group on timeout or on SIGTERM/SIGINT/SIGHUP (the parent's death kills it too).
* ``python -c BOOT CONFIG.json wheel ARGS``: plain ``pip wheel`` with the patches installed
  (see :func:`lambda_compat.resolve.sdist_build.build_wheel`).

The configuration is a JSON object made by :func:`lambda_compat.host.sandbox.build_sandbox_config`.
"""

import os
import signal
import subprocess
import sys

#: Exit status of ``exec`` when the timeout killed the command (as coreutils ``timeout``).
TIMED_OUT = 124
#: Printed (on stderr, so into pip's log) when the timeout fires.
TIMEOUT_MESSAGE = "lambda-compat: build step killed after {timeout:g} s (--build-timeout)"

CONFIG = {}  # type: dict


class SandboxRefused(Exception):
    """Build code was about to run and no sandbox can be had (and none was waived)."""


# --------------------------------------------------------------------------- wrapping

def _allowed_env(env):
    allow = set(CONFIG.get("env_allow", ()))
    prefixes = tuple(CONFIG.get("env_prefixes", ()))
    return {k: v for k, v in env.items() if k in allow or k.startswith(prefixes)}


def _own_interpreter_paths():
    """The running interpreter's directories: hook processes are started with it."""
    paths = []
    for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
              os.path.dirname(os.path.realpath(sys.executable))):
        p = os.path.realpath(p)
        if p not in paths and os.path.isdir(p):
            paths.append(p)
    return paths


def _inside(path, parent):
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def wrap(cmd, cwd=None, extra_environ=None):
    """The command line that runs ``cmd`` bounded in time and (when configured) sandboxed."""
    if CONFIG.get("refuse"):
        raise SandboxRefused(CONFIG["refuse"])
    # -I: neither this file's directory nor PYTHON* variables shape the wrapper's sys.path.
    argv = [sys.executable, "-I", os.path.abspath(__file__), "exec",
            str(CONFIG.get("timeout", 0)), "--"]
    prefix = CONFIG.get("bwrap_prefix")
    if prefix:
        argv += list(prefix)
        for path in _own_interpreter_paths():
            argv += ["--ro-bind", path, path]
        for path in CONFIG.get("readable", ()):
            if os.path.exists(path):
                argv += ["--ro-bind", path, path]
        writable = [p for p in CONFIG.get("writable", ()) if os.path.isdir(p)]
        if cwd and os.path.isdir(cwd) and not any(_inside(cwd, w) for w in writable):
            writable.append(os.path.realpath(str(cwd)))  # an in-tree build: its own tree
        for path in writable:
            argv += ["--bind", path, path]
        env = dict(os.environ)
        env.update(extra_environ or {})
        argv.append("--clearenv")
        for key, value in sorted(_allowed_env(env).items()):
            argv += ["--setenv", key, str(value)]
        argv += ["--setenv", "HOME", "/tmp", "--setenv", "TMPDIR", "/tmp"]
        if cwd:
            argv += ["--chdir", str(cwd)]
        argv.append("--")
    return argv + [str(c) for c in cmd]


def _wrap_runner(runner):
    def sandboxed(cmd, cwd=None, extra_environ=None):
        return runner(wrap(cmd, cwd, extra_environ), cwd=cwd, extra_environ=extra_environ)
    return sandboxed


def _patch_hook_caller(module):
    """Every runner a BuildBackendHookCaller is given (pip's or the default) gets wrapped."""
    cls = getattr(module, "BuildBackendHookCaller", None) or getattr(module, "Pep517HookCaller",
                                                                      None)
    if cls is None:
        return False
    if isinstance(cls.__dict__.get("_subprocess_runner"), property):
        return True

    def get(self):
        return _wrap_runner(self.__dict__["_lc_runner"])

    def set_(self, runner):
        self.__dict__["_lc_runner"] = runner

    cls._subprocess_runner = property(get, set_)
    return True


def _wrap_call_subprocess(original):
    def call_subprocess(cmd, *args, **kwargs):
        return original(wrap(cmd, kwargs.get("cwd"), kwargs.get("extra_environ")),
                        *args, **kwargs)
    return call_subprocess


def _binary_build_deps(original):
    """pip's ``pip install`` of build dependencies, restricted to wheels."""
    def call_subprocess(cmd, *args, **kwargs):
        cmd = list(cmd)
        where = cmd.index("--") if "--" in cmd else len(cmd)
        cmd[where:where] = ["--only-binary", ":all:"]
        return original(cmd, *args, **kwargs)
    return call_subprocess


def install(config):
    """Patch pip (already importable) in this process; ``config`` as documented above."""
    import importlib

    CONFIG.clear()
    CONFIG.update(config)
    patched = False
    for name in ("pip._vendor.pyproject_hooks._impl", "pip._vendor.pep517.wrappers"):
        try:
            patched = _patch_hook_caller(importlib.import_module(name)) or patched
        except ImportError:
            pass
    if not patched and (config.get("bwrap_prefix") or config.get("refuse")):
        import pip
        raise SandboxRefused(
            "refusing to run third-party build code: pip %s starts build hooks in a way "
            "lambda-compat cannot confine (no BuildBackendHookCaller)" % pip.__version__)
    for name in ("pip._internal.operations.build.metadata_legacy",
                 "pip._internal.operations.build.wheel_legacy",
                 "pip._internal.operations.install.editable_legacy"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "call_subprocess"):
            module.call_subprocess = _wrap_call_subprocess(module.call_subprocess)
    for name in ("pip._internal.build_env.installer", "pip._internal.build_env"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "call_subprocess"):
            module.call_subprocess = _binary_build_deps(module.call_subprocess)
            break


# --------------------------------------------------------------------------- exec

def die_with_parent(signum):
    """Have the kernel send ``signum`` to this process when its parent dies (Linux).

    The chain that makes a killed lambda-compat (even SIGKILL) take its builds with it: pip
    gets SIGKILL, the ``exec`` wrapper under it SIGTERM, whose handler kills the hook's
    process group (bwrap, in turn, dies with the wrapper).
    """
    parent = os.getppid()
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signum)  # PR_SET_PDEATHSIG
    except Exception:
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signum)


def _die_with_parent():  # pragma: no cover - runs in the child between fork and exec
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process stuck in the kernel
        pass


def run_bounded(argv, timeout):
    """Run ``argv`` in a new process group; return its exit status (TIMED_OUT on timeout)."""
    # bwrap dies with its parent by itself (--die-with-parent); without a preexec_fn,
    # Popen can use vfork/posix_spawn, which starts the hook sooner.
    sandboxed = os.path.basename(argv[0]) == "bwrap" if argv else False
    proc = subprocess.Popen(argv, start_new_session=True,
                            preexec_fn=None if sandboxed else _die_with_parent)

    def on_signal(signum, frame):
        _kill_group(proc)
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    die_with_parent(signal.SIGTERM)  # pip gone: the handler above kills the hook's group
    try:
        return proc.wait(timeout=timeout if timeout and timeout > 0 else None)
    except subprocess.TimeoutExpired:
        sys.stderr.write(TIMEOUT_MESSAGE.format(timeout=timeout) + "\n")
        sys.stderr.flush()
        _kill_group(proc)
        return TIMED_OUT


def wheel_main(config_path, pip_args):
    import json

    die_with_parent(signal.SIGKILL)
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    try:
        install(config)
    except SandboxRefused as exc:
        sys.stderr.write("lambda-compat: %s\n" % exc)
        return 3
    from pip._internal.cli.main import main as pip_main
    return pip_main(list(pip_args))


#: ``python -c BOOT`` loads this file by path (the build interpreter cannot import
#: lambda_compat) and runs ``pip wheel`` with the patches: argv is CONFIG.json ARGS.
BOOT = ("import importlib.util as u,sys;s=u.spec_from_file_location('lc_pip_sandbox',{path!r});"
        "m=u.module_from_spec(s);s.loader.exec_module(m);"
        "sys.exit(m.wheel_main(sys.argv[1],sys.argv[2:]))")


def boot_code():
    return BOOT.format(path=os.path.abspath(__file__))


def main(argv):
    if len(argv) >= 3 and argv[0] == "exec" and argv[2] == "--":
        return run_bounded(argv[3:], float(argv[1]))
    sys.stderr.write("usage: pip_sandbox.py exec TIMEOUT -- ARGV\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
