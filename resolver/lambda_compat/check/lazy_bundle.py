"""The bundle a check builds for a target, installed only when something has to read it.

The builder hands the judged wheels to :meth:`LazyBundle.receive` (its ``installer``) instead
of installing them; the check installs them with :meth:`LazyBundle.materialize` when a static
proof or an import proof has to run, and not at all when both are remembered
(:mod:`.static_memo`, :mod:`lambda_compat.prove.proof_cache`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import List, Optional, Tuple

from ..build.install import wheel_sha256
from ..build.staging import install_and_swap


class LazyBundle:
    def __init__(self, directory: Path, jobs: int, cache_dir: Path) -> None:
        self.directory = directory
        self.jobs = jobs
        self.cache_dir = cache_dir
        self.wheels: Optional[List[Path]] = None   # None: the builder installed nothing
        self.identity: Tuple[Tuple[str, str], ...] = ()
        self.installed = False
        self._lock = threading.Lock()

    def receive(self, wheels: List[Path], artifacts: Path) -> None:
        """The builder's ``installer``: remember what to install, by content. A wheel the
        build run keeps only in its own temporary directory (removed when it returns) is
        taken from the content-addressed file cache where it is stored too; when one is in
        neither that cache nor the built-wheel cache, the bundle is installed now."""
        assert artifacts == self.directory, (artifacts, self.directory)
        files, built = self.cache_dir / "files", self.cache_dir / "built"
        kept: List[Path] = []
        identity = []
        now = False
        for wheel in wheels:
            sha = wheel_sha256(wheel)
            identity.append((wheel.name, sha))
            stored = files / sha[:2] / sha / wheel.name
            if stored.is_file():
                kept.append(stored)
            else:
                kept.append(wheel)
                now = now or not _inside(wheel, built)
        self.identity = tuple(identity)
        if now:
            install_and_swap(list(wheels), self.directory, self.jobs, self.cache_dir / "unpacked")
            self.installed = True
        self.wheels = kept

    def materialize(self) -> Path:
        """Install the wheels (once); the bundle directory."""
        with self._lock:
            if not self.installed:
                if self.wheels is not None:
                    install_and_swap(self.wheels, self.directory, self.jobs,
                                     self.cache_dir / "unpacked")
                self.installed = True
            self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True
