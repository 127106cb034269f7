"""The inputs of a check, opened: a directory as it is, a zip extracted into a
:class:`Workspace` (a temporary directory with one extraction budget for the bundle and all its
layers). Entries that would land outside the extraction directory (absolute paths, ``..``,
symlinks pointing outside) are not extracted and become ``unsafe-path`` findings; a corrupt zip
is a :class:`~lambda_compat.errors.BadInput` naming the file.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from .. import errors
from .wheels import Finding

#: What one check extracts at most, across the bundle and all its layers together: a zip
#: that would take the total above it is refused (Lambda's limit is 250 MB unzipped).
MAX_EXTRACT_BYTES = 2 * 1024 ** 3


class Workspace:
    """Temporary directory for extracted zips; remove with :meth:`close` (or ``with``)."""

    def __init__(self, parent: Optional[Path] = None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="lc-check-", dir=parent))
        #: Bytes the zips extracted into this workspace may still declare, all together.
        self.budget = MAX_EXTRACT_BYTES

    def new_dir(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.path))
        return path

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Extracted:
    directory: Path
    zip_bytes: int
    findings: Tuple[Finding, ...]


def _unsafe(zip_name: str, entry: str, why: str) -> Finding:
    return Finding("unsafe-path", f"({zip_name})", entry,
                   f"{zip_name}: entry {entry!r} {why}; it was not extracted.",
                   "Rebuild the zip from inside the bundle directory (cd build && zip -r "
                   "../function.zip .) so that every entry is a relative path inside it.")


def extract_zip(zip_path: Path, dest: Path, workspace: Optional[Workspace] = None) -> Extracted:
    """Extract ``zip_path`` into the empty directory ``dest``, refusing escaping entries.

    Raises BadInput for a file that is not a zip, a corrupt or truncated one, or one that
    declares more than the extraction budget left: ``workspace.budget`` (shared by every zip
    of one check), else :data:`MAX_EXTRACT_BYTES`.
    """
    name = zip_path.name
    findings: List[Finding] = []
    try:
        size = zip_path.stat().st_size
    except OSError as exc:
        raise errors.BadInput(f"{zip_path}: cannot read the file ({exc.strerror or exc}).",
                              hint="Check the path.") from None
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise errors.BadInput(f"{zip_path}: not a valid zip archive ({exc}).",
                              hint="The file is damaged or is not a zip; recreate it with "
                                   "`zip -r`.") from None
    root = dest.resolve()
    with zf:
        infos = zf.infolist()
        declared = sum(i.file_size for i in infos)
        budget = workspace.budget if workspace is not None else MAX_EXTRACT_BYTES
        if declared > budget:
            used = MAX_EXTRACT_BYTES - budget
            raise errors.BadInput(
                f"{zip_path}: the archive declares {declared / 1e6:.0f} MB unpacked"
                + (f", after {used / 1e6:.0f} MB from the archives before it" if used else "")
                + f"; lambda-compat extracts at most {MAX_EXTRACT_BYTES / 1e6:.0f} MB per "
                f"check, the bundle and all its layers together (Lambda's own limit is 250 MB "
                f"unpacked).",
                hint="This is not a deployable function; check the files.")
        if workspace is not None:
            workspace.budget -= declared
        for info in infos:
            entry = info.filename
            mode = info.external_attr >> 16
            norm = posixpath.normpath(entry.replace("\\", "/")) if entry else ""
            if not entry or entry.startswith("/") or re.match(r"^[A-Za-z]:", entry):
                findings.append(_unsafe(name, entry, "is an absolute path"))
                continue
            if norm == ".." or norm.startswith("../") or "\0" in entry:
                findings.append(_unsafe(name, entry, "points outside the archive's root"))
                continue
            if norm == ".":
                continue
            target = root / norm
            try:
                if entry.endswith("/") or stat.S_ISDIR(mode):
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if stat.S_ISLNK(mode):
                    link = zf.read(info).decode("utf-8", "surrogateescape")
                    if link.startswith("/"):
                        findings.append(_unsafe(name, entry,
                                                f"is a symbolic link to the absolute path "
                                                f"{link!r}"))
                        continue
                    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(norm), link))
                    if resolved == ".." or resolved.startswith("../"):
                        findings.append(_unsafe(name, entry,
                                                f"is a symbolic link to {link!r}, outside the "
                                                f"archive"))
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if target.is_symlink() or target.exists():
                        target.unlink()
                    os.symlink(link, target)
                    continue
                # A regular entry below a symlinked directory would be written through the
                # link; the resolved parent must still be inside the root.
                target.parent.mkdir(parents=True, exist_ok=True)
                parent = target.parent.resolve()
                if parent != root and root not in parent.parents:
                    findings.append(_unsafe(name, entry, "is written through a symbolic link "
                                                         "that leaves the archive"))
                    continue
                if target.is_symlink():
                    target.unlink()
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                if mode & 0o111:
                    os.chmod(target, 0o755)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise errors.BadInput(f"{zip_path}: entry {entry!r} is corrupt ({exc}).",
                                      hint="The archive is damaged; recreate it.") from None
            except NotImplementedError as exc:
                raise errors.BadInput(f"{zip_path}: entry {entry!r} cannot be read ({exc}).",
                                      hint="Recreate the zip with deflate compression "
                                           "(what `zip` and Lambda use).") from None
            except RuntimeError as exc:  # encrypted entries
                raise errors.BadInput(f"{zip_path}: entry {entry!r} cannot be read ({exc}).",
                                      hint="Lambda cannot use encrypted zips.") from None
    return Extracted(dest, size, tuple(findings))


@dataclass(frozen=True)
class Opened:
    """An input ready to be read: its directory (extracted when it was a zip)."""

    path: Path                      # what the user gave
    directory: Path
    zip_bytes: Optional[int]        # size of the zip, None for a directory
    findings: Tuple[Finding, ...]   # entries refused while extracting


def open_input(path: Path, label: str, workspace: Optional[Workspace]) -> Opened:
    """A directory as is, or a zip extracted into ``workspace``. BadInput when neither."""
    path = Path(path)
    if path.is_dir():
        return Opened(path, path, None, ())
    if not path.exists():
        raise errors.BadInput(f"{path}: no such file or directory ({label}).",
                              hint="Check the path.")
    if not zipfile.is_zipfile(path):
        raise errors.BadInput(
            f"{path}: not a valid zip archive ({label}).",
            hint="Pass a bundle directory, a deployment .zip, or a layer .zip (a damaged zip "
                 "looks like this too; recreate it).")
    if workspace is None:
        raise ValueError("a workspace is needed to extract zips")
    ex = extract_zip(path, workspace.new_dir(re.sub(r"[^A-Za-z0-9_.-]", "_", path.stem)),
                     workspace)
    return Opened(path, ex.directory, ex.zip_bytes, ex.findings)
