"""What `package` may read from a project: nothing outside it, and only names a zip can hold.

A symbolic link among the sources or in vendor/ that resolves outside the project directory
(or into its ``.git``) would package someone else's file (``chalicelib/passwd ->
/etc/passwd``); it is refused, naming the link, unless the user opts in
(``--follow-symlinks-outside``). A file name that is not valid UTF-8 cannot be written into
the zip Lambda reads; it is refused, naming the file, before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import errors


def _escapes(real: Path, root: Path) -> str:
    """Why ``real`` (resolved) is out of bounds for project ``root``, or ""."""
    git = root / ".git"
    if real == git or git in real.parents:
        return "into the project's .git directory"
    if real != root and root not in real.parents:
        return "outside the project"
    return ""


def check_link(path: Path, root: Path, origin: str, allow_outside: bool) -> None:
    """BadInput (exit 2) when ``path`` is a symlink resolving outside ``root`` or into .git."""
    if allow_outside or not os.path.islink(path):
        return
    real = Path(os.path.realpath(path))
    why = _escapes(real, Path(os.path.realpath(root)))
    if why:
        raise errors.BadInput(
            f"{display(path)}: a symbolic link in {origin} pointing {why} "
            f"({os.readlink(path)} -> {real}); package does not read files from there.",
            hint="Copy what you need into the project (or remove the link); to package what "
                 "the link points at anyway, pass --follow-symlinks-outside.")


def check_name(path: Path, origin: str) -> None:
    """BadInput (exit 2) when ``path``'s name is not valid UTF-8."""
    name = os.path.basename(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise errors.BadInput(
            f"{display(path)}: the file name in {origin} is not valid UTF-8; a Lambda zip "
            f"holds UTF-8 names only. Nothing was written.",
            hint="Rename the file (e.g. convmv -f latin1 -t utf-8), or leave it out with "
                 "--exclude.") from None


def display(path: Path) -> str:
    """``path`` printable whatever its bytes (undecodable bytes as \\xNN)."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")
