"""A pip process started before its spec exists, so that importing pip (about half a second)
happens on the other core while lambda-compat prepares the resolution.

:func:`start` launches ``python -m lambda_compat.resolve.pip_shim --standby`` (it imports pip,
then waits for the path of its spec on stdin); :func:`take` hands it to the resolution that
would start the same pip (same directory, same environment); :func:`run` gives it the spec
and waits; :func:`discard` ends one nobody took. Every one is a child of
:mod:`lambda_compat.host.lifecycle`, killed with the others on every exit path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional

from ..host import lifecycle


@dataclass
class _Standby:
    """A pip process started before its spec exists (:func:`start`)."""

    proc: subprocess.Popen
    read_fd: int        # its progress events (the pipe's other end is its events_fd)
    write_fd: int
    key: tuple


_STANDBY: List[_Standby] = []
_STANDBY_LOCK = threading.Lock()


def _standby_key(requirements: Path, run_env: Mapping[str, str]) -> tuple:
    return (str(requirements.resolve().parent), sys.executable,
            tuple(sorted(run_env.items())))


def discard() -> None:
    """End the pip processes :func:`start` started that no resolution took."""
    with _STANDBY_LOCK:
        waiting = list(_STANDBY)
        _STANDBY.clear()
    for standby in waiting:
        _close_standby(standby)


def _close_standby(standby: _Standby) -> None:
    lifecycle.stop(standby.proc)
    for fd in (standby.read_fd, standby.write_fd):
        try:
            os.close(fd)
        except OSError:
            pass
    if standby.proc.stdin is not None:
        try:
            standby.proc.stdin.close()
        except OSError:
            pass


def take(requirements: Path, run_env: Mapping[str, str]) -> Optional[_Standby]:
    """The standby started for this directory and environment, if any is alive."""
    key = _standby_key(requirements, run_env)
    with _STANDBY_LOCK:
        for i, standby in enumerate(_STANDBY):
            if standby.key == key:
                del _STANDBY[i]
                break
        else:
            return None
    if standby.proc.poll() is None:
        return standby
    _close_standby(standby)  # it died while waiting: start pip as usual
    return None


def isolated_env(env: Mapping[str, str]) -> dict:
    """``env`` for a pip that must see no configuration (``--isolated``).

    pip's own --isolated skips the user's file and PIP_* variables, but still reads the
    global and site files and PIP_CONFIG_FILE; PIP_CONFIG_FILE=os.devnull turns all files off.
    """
    out = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    out["PIP_CONFIG_FILE"] = os.devnull
    return out


def pip_env(env: Optional[Mapping[str, str]], isolated: bool) -> dict:
    """The environment of the pip process (without its per-pass TMPDIR): ``env`` (else
    this process's), lambda-compat importable, no prompt; no pip configuration at all when
    ``isolated``."""
    run_env = dict(os.environ if env is None else env)
    run_env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[2])]
        + ([run_env["PYTHONPATH"]] if run_env.get("PYTHONPATH") else []))
    if isolated:  # no pip configuration at all: no PIP_* variable, no pip.conf
        run_env = isolated_env(run_env)
    run_env.setdefault("PIP_NO_INPUT", "1")
    run_env.pop("TMPDIR", None)
    return run_env


def start_for(requirements: Path, isolated: bool,
              env: Optional[Mapping[str, str]] = None) -> None:
    """:func:`start` with the environment the resolution's pip will have (:func:`pip_env`);
    nothing when pip processes are profiled (they start under cProfile)."""
    if not os.environ.get("LAMBDA_COMPAT_PROFILE_DIR"):
        start(requirements, pip_env(env, isolated))


def start(requirements: Path, run_env: Mapping[str, str]) -> None:
    """Start the pip process of the next resolution of ``requirements`` now.

    Importing pip takes the pip process about half a second before it does anything; started
    at the command's first step, that happens on the other core while lambda-compat reads
    its registry and prepares the target. The next resolution whose pip would run in the
    same directory with the same environment takes it (it waits for its spec on stdin);
    :func:`discard` ends one that was not needed (a resolution from the cache), and the exit
    paths of :mod:`lambda_compat.host.lifecycle` end it in any case. Nothing is started when a
    live standby for the same directory and environment is waiting already.
    """
    key = _standby_key(requirements, run_env)
    with _STANDBY_LOCK:  # the CLI's entry point may have started it already
        if any(s.key == key and s.proc.poll() is None for s in _STANDBY):
            return
    read_fd, write_fd = os.pipe()
    try:
        proc = lifecycle.spawn(
            [sys.executable, "-m", "lambda_compat.resolve.pip_shim", "--standby"],
            cwd=str(requirements.resolve().parent), env=run_env, pass_fds=(write_fd,),
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        os.close(read_fd)
        os.close(write_fd)
        return
    with _STANDBY_LOCK:
        _STANDBY.append(_Standby(proc, read_fd, write_fd, key))


def run(standby: _Standby, spec_path: Path) -> Optional[int]:
    """Hand ``spec_path`` to a standby pip process and wait for it: its exit status, or None
    when it could not take the spec (it died: pip is started as usual)."""
    try:
        assert standby.proc.stdin is not None
        standby.proc.stdin.write(f"{spec_path}\n".encode())
        standby.proc.stdin.close()
    except (OSError, ValueError):
        lifecycle.stop(standby.proc)
        return None
    returncode, _ = lifecycle.wait(standby.proc)
    return returncode
