"""Every exit path cleans up: child process groups, signals, and leftovers of killed runs.

* :func:`run` starts a child in its own process group and kills the whole group when it
  times out, when the caller is interrupted (any exception, including :class:`Terminated`
  and KeyboardInterrupt) or fails;
* :func:`signals_raise` turns SIGTERM and SIGHUP into :class:`Terminated` in the main thread,
  so ``finally`` blocks (staging and temporary directories) run as they do for Ctrl-C;
* temporary names carry the creating process's id (:func:`owned_name`), and
  :func:`remove_stale` deletes those whose process is gone (a run killed with SIGKILL, a
  power cut) the next time lambda-compat runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Set, Tuple, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_LIVE: Set[int] = set()   # process-group ids of running children
_LOCK = threading.Lock()


class Terminated(BaseException):
    """The process received SIGTERM or SIGHUP (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM first: a build's time-bounding wrapper (pip_sandbox ``exec``) is in the group
    and kills the group of the hook it runs, which lives in a session of its own; then
    SIGKILL for whatever is left."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=3)
    except subprocess.TimeoutExpired:
        pass
    time.sleep(0.3)  # the wrapper's handler: one killpg
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - stuck in the kernel
        pass


def run(argv: Sequence[str], *, timeout: Optional[float] = None,
        **popen_kwargs) -> Tuple[int, bool]:
    """Run ``argv`` in a new process group; return ``(exit status, timed_out)``.

    The group is killed (SIGKILL) on timeout and whenever this call is left by an exception.
    """
    return wait(spawn(argv, **popen_kwargs), timeout=timeout)


def spawn(argv: Sequence[str], **popen_kwargs) -> subprocess.Popen:
    """Start ``argv`` in a new process group, killed by :func:`kill_children` (and by every
    exit through :func:`signals_raise`) until :func:`wait` or :func:`stop` has ended it."""
    proc = subprocess.Popen(list(argv), start_new_session=True, **popen_kwargs)
    with _LOCK:
        _LIVE.add(proc.pid)
    return proc


def stop(proc: subprocess.Popen) -> None:
    """End a process started with :func:`spawn` that is no longer wanted (its whole group)."""
    try:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - stuck in the kernel
        pass
    finally:
        with _LOCK:
            _LIVE.discard(proc.pid)


def wait(proc: subprocess.Popen, timeout: Optional[float] = None) -> Tuple[int, bool]:
    """Wait for a process started with :func:`spawn`: ``(exit status, timed_out)``, its group
    killed on timeout, when this call is left by an exception, and once it has exited."""
    try:
        try:
            return proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return proc.returncode, True
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        with _LOCK:
            _LIVE.discard(proc.pid)
        # Whatever the group left behind (a daemonized grandchild) goes with it.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def kill_children() -> None:
    """Kill every child process group still running (last resort at exit)."""
    with _LOCK:
        groups = list(_LIVE)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def parallel_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> List[R]:
    """``[fn(x) for x in items]`` on ``workers`` threads, in order.

    Interrupted (SIGINT, or SIGTERM/SIGHUP under :func:`signals_raise`) while waiting, it
    kills the child process groups the workers are waiting on and returns at once instead
    of waiting for them: a pool's usual exit would wait for every running build first."""
    if workers <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        results = list(pool.map(fn, items))
    except BaseException:
        kill_children()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        # Ignore repeats while the first one unwinds; a second SIGKILL still works.
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        kill_children()


# --------------------------------------------------------------------------- stale leftovers

def owned_name(prefix: str) -> str:
    """``prefix`` + this process's id + ``-``: names :func:`remove_stale` can judge."""
    return f"{prefix}{os.getpid()}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped: its parent was killed and no init reaps it here) has
    # finished: what it left behind is stale.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def remove_stale(directory: Path, prefix: str) -> int:
    """Remove entries ``<prefix><pid>-…`` in ``directory`` whose process is gone."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    for entry in entries:
        m = pattern.match(entry.name)
        if not m or _alive(int(m.group(1))):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
        removed += 1
    return removed
