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
import os
from importlib import metadata
from pathlib import Path
from typing import Optional

from .._version import __version__


def _memo_dir() -> Path:
    env = os.environ.get("LAMBDA_COMPAT_CACHE_DIR")
    if env:
        return Path(env) / "validated-data"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "lambda-compat" / "validated-data"


def stamp_key(*paths: str) -> Optional[str]:
    """The digest of ``paths``' bytes, the package version and jsonschema's; None if unreadable."""
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
