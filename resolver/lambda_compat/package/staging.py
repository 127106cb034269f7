"""The function's file system, staged: the dependencies (optionally stripped of tests and
docs), the app sources and vendor/, in the bundle or a layer; two origins claiming one file is
an error."""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .. import errors
from ..targets.target import Target
from . import source_guard
from .model import STRIP_FOLDERS, State
from .project import Project


def site_packages(target: Target) -> str:
    """Where a layer's packages go for ``target``: python/lib/pythonX.Y/site-packages."""
    return f"python/lib/python{target.python_version[0]}.{target.python_version[1]}/site-packages"


def strip_folders(root: Path, categories: Sequence[str]) -> Tuple[Tuple[str, ...], int]:
    """Remove the folders of ``categories`` from the installed distributions under ``root``.

    Only folders inside packages or at the top level of ``root`` are removed, never anything
    in a ``.dist-info`` directory. Every RECORD naming a removed file is rewritten without
    those rows, so ``importlib.metadata.files()`` lists only files that exist. Returns the
    removed folders (relative, posix) and the bytes freed.
    """
    names = {n for c in categories for n in STRIP_FOLDERS[c]}
    removed: List[str] = []
    freed = 0
    for dirpath, dirnames, _files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0].endswith(".dist-info"):
            dirnames[:] = []
            continue
        for d in sorted(dirnames):
            if d in names and not d.endswith(".dist-info"):
                full = Path(dirpath) / d
                freed += tree_bytes(full)
                shutil.rmtree(full)
                rel = os.path.normpath(os.path.join(rel_dir, d)).replace(os.sep, "/")
                removed.append(rel)
        dirnames[:] = [d for d in dirnames if d not in names]
    if removed:
        prefixes = tuple(r + "/" for r in removed)
        for record in sorted(root.glob("*.dist-info/RECORD")):
            text = record.read_text(encoding="utf-8")
            rows = list(csv.reader(io.StringIO(text)))
            kept = [r for r in rows if r and not _stripped(r[0], prefixes)]
            if len(kept) != len([r for r in rows if r]):
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerows(kept)
                tmp = record.with_name("RECORD.lambda-compat-tmp")
                tmp.write_text(buf.getvalue(), encoding="utf-8")
                os.replace(tmp, record)
    return tuple(sorted(removed)), freed


def _stripped(path: str, prefixes: Tuple[str, ...]) -> bool:
    norm = os.path.normpath(path).replace(os.sep, "/")
    return norm.startswith(prefixes)


def tree_bytes(root: Optional[Path]) -> int:
    if root is None:
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for f in files:
            total += os.stat(os.path.join(dirpath, f)).st_size
    return total


class Stager:
    """Places files into the staged trees; two origins claiming one file is an error."""

    def __init__(self, project: Project, sources: Dict[Path, Path],
                 allow_outside: bool = False) -> None:
        self.project = project
        self.origin: Dict[Path, str] = {}
        self.sources = sources
        self.allow_outside = allow_outside

    def place_file(self, src: Path, dest: Path, origin: str) -> None:
        source_guard.check_link(src, self.project.root, origin, self.allow_outside)
        source_guard.check_name(src, origin)
        if dest in self.origin or os.path.lexists(dest):
            other = self.origin.get(dest, "a dependency")
            raise errors.BadInput(
                f"{dest.name}: {origin} and {other} both put a file at the same place "
                f"({self._rel(dest)}).",
                hint="Keep only one copy: remove it from vendor/ or from the requirements, "
                     "or rename your module.")
        if not src.exists():
            raise errors.BadInput(f"{src}: a broken symbolic link in {origin}.",
                                  hint="Remove the link or point it at a file.")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise errors.BadInput(
                f"{dest.name}: {origin} needs a directory where a dependency or another "
                f"source has a file ({self._rel(dest.parent)}).",
                hint="Keep only one of them: remove it from vendor/ or from the requirements, "
                     "or rename your module.") from None
        try:
            os.link(os.path.realpath(src), dest)
        except OSError:
            shutil.copyfile(src, dest)
            shutil.copymode(src, dest)
        self.origin[dest] = origin
        self.sources[dest] = src

    def place_tree(self, src: Path, dest: Path, origin: str) -> None:
        source_guard.check_link(src, self.project.root, origin, self.allow_outside)
        seen = set()
        for dirpath, dirnames, files in os.walk(src, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:       # a symlink loop
                dirnames[:] = []
                continue
            seen.add(real)
            rel = os.path.relpath(dirpath, src)
            rel_posix = "" if rel == "." else rel.replace(os.sep, "/")
            dirnames[:] = sorted(d for d in dirnames if not self.project.excluded(
                f"{rel_posix}/{d}" if rel_posix else d))
            for d in dirnames:
                source_guard.check_link(Path(dirpath) / d, self.project.root, origin,
                                        self.allow_outside)
                source_guard.check_name(Path(dirpath) / d, origin)
            for f in sorted(files):
                rel_file = f"{rel_posix}/{f}" if rel_posix else f
                if self.project.excluded(rel_file):
                    continue
                self.place_file(Path(dirpath) / f, dest / rel_file, origin)
            if not files and not dirnames and rel_posix:
                (dest / rel_posix).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _rel(dest: Path) -> str:
        parts = dest.parts
        for marker in ("task", "layer"):
            if marker in parts:
                i = len(parts) - 1 - parts[::-1].index(marker)
                return "/".join(parts[i + 1:])
        return str(dest)


def stage(state: State, work: Path, deps: Optional[Path]) -> Tuple[Path, Optional[Path]]:
    """The function's trees: work/task (-> /var/task) and work/layer (-> /opt) or None."""
    project, layer = state.project, state.options.layer
    task = work / "task"
    layer_root = work / "layer" if layer else None
    if layer_root is not None:
        site = layer_root / site_packages(state.target)
        site.parent.mkdir(parents=True, exist_ok=True)
        if deps is not None:
            os.rename(deps, site)
        else:
            site.mkdir()
        task.mkdir()
        lib_dest = site
    else:
        if deps is not None:
            os.rename(deps, task)
        else:
            task.mkdir()
        lib_dest = task
    stager = Stager(project, state.origins, state.options.follow_symlinks_outside)
    for s in project.sources:
        origin = f"the source {s.path.relative_to(project.root).as_posix()}"
        if s.path.is_dir():
            stager.place_tree(s.path, task / s.name, origin)
        else:
            stager.place_file(s.path, task / s.name, origin)
    if project.vendor is not None:
        stager.place_tree(project.vendor, lib_dest,
                          f"vendor/ ({project.vendor.relative_to(project.root).as_posix()})")
    if layer_root is not None and not any(lib_dest.iterdir()):
        state.warnings.append("layer.zip holds no packages: the project has no dependencies "
                              "and no vendor/ directory.")
    return task, layer_root



def is_within(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base)
        return True
    except ValueError:
        return False


