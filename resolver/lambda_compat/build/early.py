"""Wheels judged while pip still resolves: stored, unpacked and verified as they arrive.

pip's process announces a wheel (``pip-file-ready``: the path of a file whose sha256 was
just checked against the one the index gave: by the prefetcher as soon as its download on a
guess is complete, or by pip when it takes a file) long before the resolution ends. The file is linked into the
content-addressed cache at once (pip removes its temporary copy when it exits), then
unpacked into the unpacked-wheel cache and verified for the target on a thread pool, beside
pip's resolution of the rest. Phase 2 (:meth:`lambda_compat.build.phases.Judge.from_wheel`)
then finds both in their caches: :func:`verified_findings` is the one call both make, so a
verdict cannot depend on which of them ran it. Each wheel judged here is also installed
into the bundle's staging directory when the build has one (build/staging.py). A wheel the
resolution did not keep (pip backtracked) costs a verification, a cache entry and the
install step a fresh staging directory, nothing else; anything that goes wrong here is left
for phase 2 and the install step to meet and report.
"""

from __future__ import annotations

import heapq
import os
import shutil
import threading
import uuid
from concurrent.futures import Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Set, Tuple

from ..resolve.sdist_build import file_sha256
from ..targets.target import Target
from ..ui import UI
from ..verify.cache import cached_findings
from ..verify.wheels import Finding, WheelInfo, read_wheel, verify_wheel
from . import install, workers

if TYPE_CHECKING:
    from .staging import EarlyInstall


def verified_findings(path: Path, info: WheelInfo, sha256: str, cache: Path,
                      target: Target) -> List[Finding]:
    """The wheel's findings for ``target``, remembered by sha256; verified (when not
    remembered) from its files unpacked into the cache, where the install step links them
    from (each native file decompressed once)."""
    def verify() -> List[Finding]:
        on_disk = install.unpacked_files(path, cache / "unpacked")
        return verify_wheel(info, target, on_disk=on_disk)
    return cached_findings(cache / "verified", sha256, target, verify)


def store(path: Path, sha256: str, cas: Path, name: Optional[str] = None) -> Path:
    """``path`` kept as ``cas/<sha[:2]>/<sha>/<name>`` (a hard link where possible)."""
    return store_new(path, sha256, cas, name)[0]


def store_new(path: Path, sha256: str, cas: Path, name: Optional[str] = None
              ) -> Tuple[Path, bool]:
    """:func:`store`, and whether this call put the file there (False: it was there)."""
    dest = cas / sha256[:2] / sha256 / (name or path.name)
    if dest.exists():
        return dest, False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
    try:
        os.link(path, tmp)
    except OSError:
        shutil.copyfile(path, tmp)
    os.replace(tmp, dest)
    return dest, True


class EarlyWheels:
    """Takes pip's ``file-ready`` events for one resolution; :meth:`finish` waits.

    Waiting wheels are judged largest first: unpacking is most of the work (numpy's takes
    half a second), and a large wheel started last would be the run's tail."""

    def __init__(self, cache: Path, target: Target, jobs: int, ui: Optional[UI] = None,
                 install_into: Optional["EarlyInstall"] = None) -> None:
        self.cache, self.target, self.ui = cache, target, ui
        self.install_into = install_into  # the bundle's staging directory, filled as we go
        self._jobs = max(1, jobs)
        self._futures: Dict[str, Future] = {}
        self._waiting: List[Tuple[int, int, Path]] = []   # heap of (-size, order, staged)
        self._lock = threading.Lock()
        #: the names of the files this resolution fetched and stored in the cache
        self.stored: Set[str] = set()

    def offer(self, event: dict) -> None:
        """A wheel pip has checked (``path``; ``sha256`` as the index gave it): linked aside
        now (pip removes its copy when it exits), hashed, stored and judged in the pool."""
        path, claimed = event.get("path"), str(event.get("sha256") or "")
        if not path or not str(path).endswith(".whl") or claimed in self._futures:
            return
        incoming = self.cache / "files" / ".incoming"
        staged = incoming / f"{uuid.uuid4().hex}-{Path(path).name}"
        try:
            incoming.mkdir(parents=True, exist_ok=True)
            os.link(path, staged)
        except OSError:
            return  # pip saves it too; the resolution's own store keeps it
        try:
            size = staged.stat().st_size
        except OSError:
            size = 0
        with self._lock:
            heapq.heappush(self._waiting, (-size, len(self._futures), staged))
        # every task judges the largest wheel waiting at the time it runs
        self._futures[claimed or staged.name] = workers.submit(self._jobs, self._next)

    def _next(self) -> None:
        with self._lock:
            staged = heapq.heappop(self._waiting)[2]
        self._judge(staged)

    def _judge(self, staged: Path) -> None:
        try:
            # the file's own sha256, never the one announced: the cache is keyed by it
            sha = file_sha256(staged)
            kept, new = store_new(staged, sha, self.cache / "files",
                                  staged.name.split("-", 1)[1])
            if new:  # not a file an earlier run left in the cache
                with self._lock:
                    self.stored.add(kept.name)
            install.unpack_wheel(kept, self.cache / "unpacked")  # the install step links
            verified_findings(kept, read_wheel(kept), sha, self.cache, self.target)
            if self.install_into is not None:
                self.install_into.add(kept)
            if self.ui is not None:
                self.ui.event("wheel-judged-early", file=kept.name, target=self.target.name)
        except Exception:  # phase 2 meets it again, and reports it
            pass
        finally:
            try:
                staged.unlink()
            except OSError:
                pass

    def finish(self) -> int:
        """Wait for the wheels under way; how many were judged early."""
        wait(list(self._futures.values()))
        return len(self._futures)
