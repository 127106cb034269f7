"""The library-load scan of :mod:`lambda_compat.verify.libscan`, remembered for the rest of the
process by the distribution's files' identity: each target of a check hard-links the same
unpacked files into its bundle, and a check of 12 targets would read them 12 times."""

from __future__ import annotations

import os
import threading
from typing import Dict, List, Optional, Sequence, Tuple

from . import libscan

#: answers by (site, modules, (Lambda path, device, inode, size, mtime) of each file)
_DIST_MEMO: Dict[tuple, Tuple[libscan.LibraryLoad, ...]] = {}
_DIST_LOCK = threading.Lock()


def scan_distribution(site: str, modules: Sequence[str], files: Dict[str, str]
                      ) -> List[libscan.LibraryLoad]:
    """:func:`libscan.scan_distribution`, once per process for the same files."""
    key = _identity(site, modules, files)
    if key is not None:
        with _DIST_LOCK:
            known = _DIST_MEMO.get(key)
        if known is not None:
            return list(known)
    found = libscan.scan_distribution(site, modules, files)
    if key is not None:
        with _DIST_LOCK:
            if len(_DIST_MEMO) > 10_000:
                _DIST_MEMO.clear()
            _DIST_MEMO[key] = tuple(found)
    return found


def _identity(site: str, modules: Sequence[str], files: Dict[str, str]) -> Optional[tuple]:
    entries = []
    for lpath, real in files.items():
        try:
            st = os.stat(real)
        except OSError:
            return None  # not remembered: read (and fail to read) as it is
        entries.append((lpath, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return site, tuple(modules), tuple(sorted(entries))
