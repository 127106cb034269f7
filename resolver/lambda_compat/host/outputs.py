"""Output guards: lambda-compat replaces or deletes only what it wrote itself.

``build -o DIR`` swaps a whole directory in; it may replace DIR only when DIR is missing,
empty, or carries :data:`MARKER` (written into every bundle), or when the user says
``--force``. Never, even with ``--force``: the working directory, the project directory (the
requirements file's), or any directory above either of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .. import errors

#: Written into every directory lambda-compat fills (the bundle of ``build``, the zips'
#: directory of ``package``); its presence lets a later run replace the directory.
MARKER = ".lambda-compat-output"
MARKER_TEXT = ("Written by lambda-compat. The next `lambda-compat build -o` into this "
               "directory replaces it entirely.\n")


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _self_and_ancestors(path: Path) -> Iterable[Path]:
    path = _real(path)
    return (path, *path.parents)


def protected_dirs(project_files: Iterable[Path]) -> set:
    """The working directory, the directories of ``project_files`` and everything above."""
    out = set(_self_and_ancestors(Path.cwd()))
    for f in project_files:
        out.update(_self_and_ancestors(Path(f).absolute().parent))
    home = os.path.expanduser("~")
    if home and home != "~":
        out.add(_real(Path(home)))
    return out


def check_replaceable(out: Path, *, project_files: Iterable[Path], force: bool,
                      option: str = "-o") -> None:
    """Raise BadInput (exit 2) unless ``out`` may be replaced by a new directory."""
    real = _real(out)
    if real in protected_dirs(project_files):
        raise errors.BadInput(
            f"refusing to write the output into {out}: it is the working directory, the "
            f"project directory or a directory above them, and the output replaces the whole "
            f"directory.",
            hint=f"Name a directory of its own for the output, e.g. {option} build/bundle "
                 f"(--force does not change this).")
    if not out.exists():
        return
    if not out.is_dir():
        raise errors.BadInput(f"{out} exists and is not a directory.",
                              hint=f"Choose another output directory with {option}.")
    if force or (out / MARKER).is_file() or not any(os.scandir(out)):
        return
    raise errors.BadInput(
        f"{out} is not empty and was not written by lambda-compat (it has no {MARKER} file); "
        f"the output would replace it, deleting its files.",
        hint=f"Choose a new or empty directory with {option}, or pass --force to replace "
             f"{out} and everything in it.")


def write_marker(directory: Path) -> None:
    (directory / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def check_zip_output(out: Path, names: Iterable[str], *, force: bool) -> None:
    """``package -o``: overwrite (or remove) its zips only where it wrote them before."""
    if not out.is_dir() or force or (out / MARKER).is_file():
        return
    present = [n for n in names if (out / n).exists()]
    if present:
        raise errors.BadInput(
            f"{out} already has {', '.join(present)}, not written by lambda-compat (no "
            f"{MARKER} file there); package would overwrite {'them' if len(present) > 1 else 'it'}.",
            hint="Write the zips elsewhere with -o, move the file(s) away, or pass --force to "
                 "overwrite them.")
