"""Remember, across processes, that a shipped data file passed its JSON schema.

Validating the shipped ``runtimes.yaml`` against its schema with jsonschema took about a
third of a second on every start, longer than everything else a warm build does before it
installs. The verdict depends only on the bytes of the data file, the schema, the package
version and jsonschema's version, so a stamp named by their digest (in the user's cache
directory, ``validated-data/``) lets the next process skip the validation. Only a file that
passed gets a stamp; an edited file has another digest and is validated again. Files named
by the user (``--runtimes-file``, a registry directory) are always validated.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Optional, Sequence

from .._version import __version__


def _memo_dir() -> Path:
    env = os.environ.get("LAMBDA_COMPAT_CACHE_DIR")
    if env:
        return Path(env) / "validated-data"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "lambda-compat" / "validated-data"


def stamp_key(*paths: str) -> Optional[str]:
    """The digest of ``paths``' bytes, the package version and jsonschema's; None if unreadable."""
    from importlib import metadata  # ~30 ms: only when a stamp is looked for
    h = hashlib.sha256(__version__.encode())
    try:
        h.update(metadata.version("jsonschema").encode())
        for p in paths:
            h.update(b"\0" + p.encode() + b"\0")
            h.update(Path(p).read_bytes())
    except (OSError, metadata.PackageNotFoundError):
        return None
    return h.hexdigest()


def known_valid(key: Optional[str]) -> bool:
    return key is not None and (_memo_dir() / key).is_file()


def remember(key: Optional[str]) -> None:
    if key is None:
        return
    try:
        d = _memo_dir()
        d.mkdir(parents=True, exist_ok=True)
        (d / key).touch()
    except OSError:
        pass  # a memo that cannot be written only costs time


# --------------------------------------------------------------------------- shipped stamp

#: In the shipped registry: the digests of the data files that passed their schema when this
#: registry was released (``lambda-compat registry validate --stamp`` writes it, after
#: validating; ``tests/test_validation_stamp.py`` fails when it is out of date). Data whose bytes
#: have one of these digests is not validated again, even on a fresh cache (a cold build
#: otherwise spent a fifth of a second importing jsonschema and walking runtimes.yaml).
SHIPPED_STAMP = "schema/validated.json"


def content_digest(root: Path, paths: Sequence[Path]) -> Optional[str]:
    """sha256 over each file's path (relative to ``root``) and bytes; None if unreadable."""
    h = hashlib.sha256(b"lambda-compat validated data 1\0")
    try:
        for p in paths:
            h.update(Path(p).resolve().relative_to(root.resolve()).as_posix().encode() + b"\0")
            h.update(Path(p).read_bytes() + b"\0")
    except (OSError, ValueError):
        return None
    return h.hexdigest()


def shipped_valid(root: Path, paths: Sequence[Path]) -> bool:
    """``paths`` (data and schema, under ``root``) are byte for byte what the stamp says
    passed validation."""
    digest = content_digest(root, paths)
    if digest is None:
        return False
    try:
        stamp = json.loads((root / SHIPPED_STAMP).read_text(encoding="utf-8"))
        return digest in set(stamp.get("digests", {}).values())
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def write_shipped_stamp(root: Path, digests: Dict[str, str]) -> Path:
    """Write the stamp (only after the data was validated: the caller's duty)."""
    path = root / SHIPPED_STAMP
    text = json.dumps({"comment": "written by `lambda-compat registry validate --stamp` after "
                                  "validating the data; do not edit",
                       "digests": dict(sorted(digests.items()))}, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
