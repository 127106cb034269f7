"""What this machine has, found WITHOUT lambda-compat's own code (the tests' oracle).

The compat cases and the skip conditions of ``tests/`` need to know whether a CPython of a
given version exists here. Asking ``lambda_compat.host.interpreters.find_interpreter`` would let a
broken tool change its own expectations (make it return None and every test that needs an
interpreter skips, every expectation flips to "no interpreter here"). This module looks on
its own, deliberately by different means: every ``python3.N`` on PATH and under
``~/.pyenv/versions`` / ``$PYENV_ROOT/versions`` / uv's Python directory, each run once to
report its version, implementation and machine. Nothing in here imports lambda_compat.
"""

from __future__ import annotations

import functools
import glob
import os
import platform
import shutil
import subprocess
from typing import Dict, List, Optional, Sequence, Tuple

_ASK = ("import platform, sys, sysconfig; print(sys.implementation.name, "
        "sys.version_info[0], sys.version_info[1], platform.machine(), "
        "int(bool(sysconfig.get_config_var('Py_GIL_DISABLED'))))")
_MACHINE = {"arm64": "aarch64", "amd64": "x86_64", "AMD64": "x86_64"}
#: Lambda's architecture names -> the machine an interpreter reports.
ARCH_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}


def this_machine() -> str:
    machine = platform.machine()
    return _MACHINE.get(machine, machine)


def _paths() -> List[str]:
    out: List[str] = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        out += sorted(glob.glob(os.path.join(directory or ".", "python3.[0-9]*")))
    roots = {os.environ.get("PYENV_ROOT") or "", os.path.expanduser("~/.pyenv")}
    for root in sorted(r for r in roots if r):
        out += sorted(glob.glob(os.path.join(root, "versions", "*", "bin", "python3.[0-9]*")))
    uv = os.environ.get("UV_PYTHON_INSTALL_DIR") or os.path.expanduser("~/.local/share/uv/python")
    out += sorted(glob.glob(os.path.join(uv, "cpython-*", "bin", "python3.[0-9]*")))
    return [p for p in out if not p.endswith(("-config", "m")) and os.access(p, os.X_OK)]


def _ask(path: str) -> Optional[Tuple[Tuple[int, int], str]]:
    try:
        proc = subprocess.run([path, "-I", "-c", _ASK], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    words = proc.stdout.split()
    if proc.returncode != 0 or len(words) != 5 or words[0] != "cpython" or words[4] != "0":
        return None
    return (int(words[1]), int(words[2])), words[3]


@functools.lru_cache(maxsize=1)
def local_pythons() -> Dict[Tuple[Tuple[int, int], str], str]:
    """(version, machine) -> the first working CPython executable of it found here."""
    found: Dict[Tuple[Tuple[int, int], str], str] = {}
    seen = set()
    for path in _paths():
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        answer = _ask(path)
        if answer is not None:
            found.setdefault(answer, path)
    return found


def python_path(version: Sequence[int], machine: Optional[str] = None) -> Optional[str]:
    """A CPython ``version`` (major, minor) executable for ``machine`` (default: this one)."""
    return local_pythons().get(((int(version[0]), int(version[1])), machine or this_machine()))


def has_python(version: Sequence[int], machine: Optional[str] = None) -> bool:
    return python_path(version, machine) is not None


#: The CPython of each Debian suite a target root can be made from (Debian's own packages:
#: bullseye 3.9, bookworm 3.11, trixie 3.13, sid 3.14), for amd64 and arm64 alike.
DEBIAN_PYTHONS = {(3, 9): "bullseye", (3, 11): "bookworm", (3, 13): "trixie", (3, 14): "sid"}


def target_root(version: Sequence[int], arch: str) -> bool:
    """This machine can run builds in a Debian root of the target's Python: Debian ships that
    Python, bubblewrap is here, and a foreign machine's code can run (qemu-user registered
    with binfmt_misc). Such a root has a compiler and the Python headers, nothing else: a
    case's ``build_requires`` commands (pg_config...) are not in it."""
    version = (int(version[0]), int(version[1]))
    if version not in DEBIAN_PYTHONS or not shutil.which("bwrap"):
        return False
    machine = ARCH_MACHINE[arch]
    if machine == this_machine():
        return True
    return os.path.exists(f"/proc/sys/fs/binfmt_misc/qemu-{machine}")


def native_build(version: Sequence[int], arch: str, commands: Sequence[str]) -> bool:
    """This machine can build the target's sdists natively: its machine is the target's, a
    CPython of the target's version exists here and every command in ``commands`` does."""
    return (ARCH_MACHINE[arch] == this_machine() and has_python(version)
            and all(shutil.which(c) for c in commands))
