"""Container engines on this machine: which one answers, and what podman needs here."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import List, Optional, Tuple


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


def podman_global_args(exe: str) -> List[str]:
    """podman as root on a hybrid-cgroup host: crun refuses, runc works (see the notes)."""
    if Path(exe).name != "podman" or os.geteuid() != 0:
        return []
    if os.path.isdir("/sys/fs/cgroup/unified") and shutil.which("runc"):
        return ["--runtime", "runc"]
    return []


def ulimit_args(nofile: int = 65536, nproc: int = 32768) -> List[str]:
    """``--ulimit`` arguments for ``run`` that this process may grant.

    Engines ask for nofile=1048576 and a high nproc by default; where the hard limits are
    lower (as root in some VMs, or through podman's docker API) the OCI runtime fails with
    "setting rlimit ... operation not permitted". Each limit is capped at this process's hard
    limit.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not Linux
        return ["--ulimit", f"nofile={nofile}:{nofile}"]
    out: List[str] = []
    for name, which, wanted in (("nofile", resource.RLIMIT_NOFILE, nofile),
                                ("nproc", resource.RLIMIT_NPROC, nproc)):
        try:
            hard = resource.getrlimit(which)[1]
        except (OSError, ValueError):  # pragma: no cover
            continue
        value = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        out += ["--ulimit", f"{name}={value}:{value}"]
    return out
