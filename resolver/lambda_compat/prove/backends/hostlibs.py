"""Which of this host's shared libraries the host backend may show to the target interpreter.

A host interpreter sees the build machine's whole library set: a bundle that loads, say,
``libmagic.so.1`` through ctypes imports fine here and fails on Lambda, which lacks it. The
host backend (under bwrap) therefore shows only

* the interpreter's own libraries: what ``ldd`` lists for the executable, its libpython and
  its ``lib-dynload`` extension modules (Lambda's Python brings working modules of its own),
* and the libraries the runtime has (``shared_libraries.sonames`` of the target's facts)
  where this host has them, with what they need, minus the ones the facts list as absent;

every other shared library in the host's library directories is left out of the view, as the
copy stand-in (:mod:`lambda_compat.prove.standin.copyroot`) leaves it out of its root.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, Optional, Tuple

from ...host.sandbox import LibraryFilter
from ..standin.copyroot import LAYOUT_PROBE, is_absent, ldconfig_paths, ldd
from ..standin.info import ALWAYS_ABSENT

#: Library directories looked at even when the loader cache names none in them.
_DEFAULT_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib",
                 "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                 "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu")


@dataclass(frozen=True)
class HostLibraries:
    """The view: directories filtered, real paths shown, and how many libraries were hidden."""

    dirs: FrozenSet[str]
    allowed: FrozenSet[str]
    own: Tuple[str, ...]        # sonames the interpreter itself needs
    runtime: Tuple[str, ...]    # sonames shown because the runtime has them

    def filter(self) -> LibraryFilter:
        return LibraryFilter(dirs=self.dirs, allowed=self.allowed)


def _layout(executable: str) -> Optional[dict]:
    try:
        proc = subprocess.run([executable, "-I", "-S", "-c", LAYOUT_PROBE],
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _real_dirs(paths) -> FrozenSet[str]:
    out = set()
    for p in paths:
        real = os.path.realpath(p)
        if os.path.isdir(real):
            out.add(real)
    return frozenset(out)


@functools.lru_cache(maxsize=None)
def host_libraries(executable: str, facts) -> Optional[HostLibraries]:
    """The view for ``executable`` and the runtime ``facts``; None if it cannot be computed
    (no ``ldd``, an interpreter that does not describe itself)."""
    layout = _layout(executable)
    if layout is None:
        return None
    elf_files = [Path(layout["executable"])]
    if layout.get("shared") and layout.get("instsoname") and layout.get("libdir"):
        lib = Path(layout["libdir"], layout["instsoname"])
        if lib.exists():
            elf_files.append(lib)
    if layout.get("dynload") and os.path.isdir(layout["dynload"]):
        elf_files += sorted(Path(layout["dynload"]).glob("*.so"))
    try:
        own, loader, _missing = ldd(elf_files)
    except (OSError, subprocess.SubprocessError):
        return None
    cache = ldconfig_paths()
    absent = tuple(facts.absent_sonames) + ALWAYS_ABSENT
    extra = {s: cache[s] for s in sorted(facts.sonames)
             if s in cache and s not in own and not is_absent(s, absent)}
    try:
        deps, _, _ = ldd([Path(p) for p in extra.values()]) if extra else ({}, None, [])
    except (OSError, subprocess.SubprocessError):
        deps = {}
    runtime = {**{s: p for s, p in deps.items() if not is_absent(s, absent)}, **extra}
    shown = list(own.values()) + list(runtime.values()) + ([loader] if loader else [])
    allowed = frozenset(os.path.realpath(p) for p in shown)
    dirs = _real_dirs(list(_DEFAULT_DIRS) + [os.path.dirname(p) for p in cache.values()])
    return HostLibraries(dirs=dirs, allowed=allowed, own=tuple(sorted(own)),
                         runtime=tuple(sorted(set(runtime) - set(own))))
