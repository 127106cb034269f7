"""The bundle's staging directory, swapped in for the artifacts directory in one rename.

:func:`install_and_swap` installs the judged wheels into a staging directory beside the
artifacts directory and renames it into place; the old directory is put back if that fails,
and nothing is left behind on any exit path (rule 3: an earlier output survives a failed
run).

:class:`EarlyInstall` lets a build start on that directory while pip still resolves: each
wheel judged early (:mod:`.early`) is installed into it at once, on the thread that judged
it, with the same conflict claims the final install uses. The final install then only adds
the wheels still missing. Anything unusual sends it back to a fresh directory: a wheel
installed early that is not in the final list (pip chose otherwise, a verdict dropped it),
or an early install that failed (the fresh install meets the same problem and reports it).
The bundle is the same either way: each path is written by the first wheel to claim it and
compared by the others, whatever the order (traced cold python3.12/arm64 build of issue 15's
pins: the install step after pip took 0.1 s, all of it after the last wheel was judged).
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import List, Optional, Set, Tuple

from ..host import lifecycle, outputs
from . import install


def _paths(artifacts: Path) -> Tuple[Path, Path]:
    """(staging, old): beside ``artifacts``, named for this process (stale ones are
    removed by the next run once it is gone)."""
    token = lifecycle.owned_name("") + uuid.uuid4().hex[:8]
    return (artifacts.parent / f".{artifacts.name}.lambda-compat-new-{token}",
            artifacts.parent / f".{artifacts.name}.lambda-compat-old-{token}")


def _identity(wheel: Path) -> Tuple[str, str]:
    """A wheel by content (the final list names pip's copy, the early one the cache's)."""
    return wheel.name, install.wheel_sha256(wheel)


class EarlyInstall:
    """A staging directory filled while pip resolves (see the module)."""

    def __init__(self, artifacts: Path, unpacked: Path) -> None:
        self.unpacked = unpacked
        self.path, self.old = _paths(artifacts)
        self.claims = install._Claims()
        self._lock = threading.Condition()
        self._running = 0
        self._closed = False
        self._failed = False
        self._installed: Set[Tuple[str, str]] = set()   # (file name, sha256)

    def add(self, wheel: Path) -> None:
        """Install ``wheel`` (judged, kept in the file cache) into the staging directory now.
        A failure is only remembered: the final install starts afresh and reports it. Where
        the artifacts directory's parent does not exist yet, nothing is installed early (a
        build that fails must not leave a directory it made)."""
        with self._lock:
            if self._closed or not self.path.parent.is_dir():
                return
            self._running += 1
        key = None
        try:
            install.install_from_cache(wheel, self.path, self.unpacked, self.claims)
            key = _identity(wheel)
        except Exception:
            pass
        finally:
            with self._lock:
                self._running -= 1
                if key is not None:
                    self._installed.add(key)
                else:
                    self._failed = True
                self._lock.notify_all()

    def close(self) -> Tuple[Set[Tuple[str, str]], bool]:
        """No more early installs (waits for those under way): (the wheels installed, whether
        one failed)."""
        with self._lock:
            self._closed = True
            while self._running:
                self._lock.wait()
            return set(self._installed), self._failed

    def take(self, wheels: List[Path]) -> Optional[List[Path]]:
        """The wheels of ``wheels`` still to install into :attr:`path`, or None when the
        directory cannot be used (then it is removed)."""
        installed, failed = self.close()
        final = [(w, _identity(w)) for w in wheels]
        if installed and not failed and installed <= {key for _w, key in final}:
            return [w for w, key in final if key not in installed]
        self.discard()
        return None

    def discard(self) -> None:
        """Remove the staging directory (after a swap it is gone already)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


def install_and_swap(wheels: List[Path], artifacts: Path, jobs: int,
                     unpacked: Optional[Path] = None, early: Optional[EarlyInstall] = None
                     ) -> int:
    """Install ``wheels`` into a staging directory beside ``artifacts``, then swap it in
    (the old directory is put back if the swap fails). ``early``: a staging directory
    filled while pip resolved, completed here when it can be (see the module). Returns how
    many of ``wheels`` were installed early."""
    artifacts.parent.mkdir(parents=True, exist_ok=True)
    rest = early.take(wheels) if early is not None else None
    if early is not None and rest is not None:
        staging, old, claims = early.path, early.old, early.claims
    else:
        (staging, old), claims, rest = _paths(artifacts), None, list(wheels)
    installed_early = len(wheels) - len(rest)
    try:
        install.install_all(rest, staging, jobs, unpacked, claims=claims)
        outputs.write_marker(staging)
        if artifacts.exists():
            os.rename(artifacts, old)
        try:
            os.rename(staging, artifacts)
        except OSError:
            if old.exists():
                os.rename(old, artifacts)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return installed_early
