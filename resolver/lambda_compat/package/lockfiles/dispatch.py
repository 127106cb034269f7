"""Which lock format a file is (by its name), and the reader that selects from it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ... import errors
from ...targets.target import Target
from .pipenv import PipfileReader
from .poetry import PoetryReader
from .pylock import PylockReader
from .reader import read_text
from .selection import LockSelection
from .uv import UvReader

#: Lock kinds and how they are recognised by file name.
KINDS = ("pipfile.lock", "poetry.lock", "uv.lock", "pylock.toml")
_PYLOCK = re.compile(r"^pylock\.([^.]+\.)?toml$")


def lock_kind(path: Path) -> Optional[str]:
    """The lock format of ``path`` by its file name, or None if it is not a lock file."""
    name = path.name
    if name == "Pipfile.lock":
        return "pipfile.lock"
    if name == "poetry.lock":
        return "poetry.lock"
    if name == "uv.lock":
        return "uv.lock"
    if _PYLOCK.match(name):
        return "pylock.toml"
    return None


def select(path: Path, target: Target) -> LockSelection:
    """Read the lock file ``path`` and select what a default install gets on ``target``."""
    kind = lock_kind(path)
    if kind is None:
        raise errors.BadInput(
            f"{path}: not a lock file lambda-compat reads.",
            hint="Lock files: Pipfile.lock, poetry.lock, uv.lock, pylock.toml "
                 "(or pylock.<name>.toml); anything else is read as a requirements file.")
    text = read_text(path)
    reader = {"pipfile.lock": PipfileReader, "poetry.lock": PoetryReader, "uv.lock": UvReader,
              "pylock.toml": PylockReader}[kind]
    return reader(path, text, target).select()
