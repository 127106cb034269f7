"""pip's hash checks, each file's digest computed once per pip process.

pip checks a wheel's sha256 every time it meets the file: the content-addressed cache's copy
when it looks into the download directory, the same file again when it prepares it, a file
the prefetcher (:mod:`lambda_compat.resolve.pip_prefetch`) has hashed while downloading it.
For 40 MB of wheels that is a tenth of a second of pip's one resolver thread per pass.

Here ``Hashes.check_against_path`` first looks for the file's digest among those already
computed in this process, by the file's identity (device, inode, size, modification time
in nanoseconds: a hard link is the same file, a rewritten file is not). A remembered digest
is compared exactly as pip compares one it computes; a file with none remembered, or a
hash name not remembered, is read and checked by pip as always, and what pip computed is
remembered. A mismatch is never remembered as a pass: pip raises as it always does.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Dict, Optional, Tuple

_Identity = Tuple[int, int, int, int]
_KNOWN: Dict[_Identity, Dict[str, str]] = {}
_LOCK = threading.Lock()


def _identity(path: str) -> Optional[_Identity]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def remember(path: str, hash_name: str, hex_digest: str) -> None:
    """``hex_digest`` is the ``hash_name`` digest of the file at ``path`` as it is now
    (the caller computed it over the very bytes it wrote there)."""
    identity = _identity(path)
    if identity is not None:
        with _LOCK:
            _KNOWN.setdefault(identity, {})[hash_name] = hex_digest


def known(path: str) -> Dict[str, str]:
    """The digests remembered for the file at ``path`` as it is now (name -> hex)."""
    identity = _identity(path)
    if identity is None:
        return {}
    with _LOCK:
        return dict(_KNOWN.get(identity, {}))


def install() -> None:
    """Patch ``Hashes.check_against_path`` (pip's process only)."""
    import hashlib

    from pip._internal.utils.hashes import Hashes

    original = Hashes.check_against_path

    def check_against_path(self: Any, path: str) -> None:
        allowed = getattr(self, "_allowed", None)
        if not allowed or any(name not in hashlib.algorithms_available for name in allowed):
            return original(self, path)  # nothing to check, or pip's error for the name
        if any(known(path).get(name) in hexes for name, hexes in allowed.items()):
            return None  # a digest of these very bytes is one pip allows
        before = _identity(path)
        gots = {name: hashlib.new(name) for name in allowed}
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                for got in gots.values():
                    got.update(chunk)
        digests = {name: got.hexdigest() for name, got in gots.items()}
        if any(digests[name] in hexes for name, hexes in allowed.items()):
            if before is not None and before == _identity(path):
                for name, hex_digest in digests.items():
                    remember(path, name, hex_digest)
            return None
        return original(self, path)  # a mismatch: pip's own check raises its own error

    Hashes.check_against_path = check_against_path  # type: ignore[method-assign]
