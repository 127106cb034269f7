"""Install wheels flat into a bundle directory, the way Lambda imports them.

* ``<dist>.data/purelib`` and ``platlib`` move up to the top level;
* ``scripts`` (host shebangs), ``headers`` and ``data`` are left out, and counted;
* no ``.pyc`` is written or copied (the host's bytecode is for the host's Python);
* RECORD is rewritten for the installed paths, INSTALLER says lambda-compat;
* an entry that would escape the bundle, or a file two wheels both claim, is an error.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import posixpath
import stat
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

from . import errors

INSTALLER = b"lambda-compat\n"


class _Claims:
    """Which thread writes which path (the first to claim it), and when it is written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: Dict[str, threading.Event] = {}

    def claim(self, path: str) -> Tuple[bool, threading.Event]:
        with self._lock:
            event = self._events.get(path)
            if event is not None:
                return False, event
            event = self._events[path] = threading.Event()
            return True, event


@dataclass(frozen=True)
class Installed:
    wheel: str
    files: Tuple[str, ...]
    skipped: Tuple[str, ...]     # scripts/headers/data/pyc left out


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _safe_target(root: Path, rel: str, wheel: str) -> Path:
    norm = posixpath.normpath(rel)
    if rel.startswith("/") or norm.startswith("../") or norm == ".." or "\\" in rel:
        raise errors.BadInput(f"{wheel}: entry {rel!r} would be written outside the bundle.",
                              hint="The wheel is malformed or malicious; do not use it.")
    return root / norm


def plan_wheel(wheel_path: Path) -> Tuple[str, List[Tuple[zipfile.ZipInfo, str]], List[str]]:
    """(dist-info dir, [(zip entry, installed relative path)], skipped entries)."""
    with zipfile.ZipFile(wheel_path) as zf:
        infos = zf.infolist()
    dist_info = next((i.filename.split("/", 1)[0] for i in infos
                      if i.filename.split("/", 1)[0].endswith(".dist-info")), None)
    if dist_info is None:
        raise errors.BadInput(f"{wheel_path.name}: no .dist-info directory.",
                              hint="The wheel is malformed.")
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    plan: List[Tuple[zipfile.ZipInfo, str]] = []
    skipped: List[str] = []
    for info in infos:
        name = info.filename
        if name.endswith("/"):
            continue
        if name.endswith(".pyc") or "/__pycache__/" in f"/{name}":
            skipped.append(name)
            continue
        if name == f"{dist_info}/RECORD" or name.startswith(f"{dist_info}/RECORD."):
            continue  # rewritten (signatures no longer apply to the moved files)
        if name.startswith(data_dir + "/"):
            parts = name.split("/", 2)
            if len(parts) == 3 and parts[1] in ("purelib", "platlib"):
                plan.append((info, parts[2]))
            else:
                skipped.append(name)
            continue
        plan.append((info, name))
    return dist_info, plan, skipped


def install_wheel(wheel_path: Path, root: Path, claims: Optional["_Claims"] = None) -> Installed:
    claims = claims if claims is not None else _Claims()
    dist_info, plan, skipped = plan_wheel(wheel_path)
    records: List[Tuple[str, str, str]] = []
    with zipfile.ZipFile(wheel_path) as zf:
        for info, rel in plan:
            dest = _safe_target(root, rel, wheel_path.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = zf.read(info)
            # The first wheel to claim a path writes it (O_EXCL: a file that already exists is
            # a conflict, never an overwrite); a later claimant waits until it is written and
            # compares. Creating files is the slow part, so it happens outside the lock.
            first, written = claims.claim(str(dest))
            fd = None
            if first:
                try:
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    written.set()
            else:
                written.wait()
            if fd is None:
                # Old-style namespace packages ship identical __init__.py files: fine.
                if dest.read_bytes() == data:
                    records.append((rel, _record_hash(data), str(len(data))))
                    continue
                raise errors.BadInput(
                    f"{wheel_path.name} and another distribution both install {rel}, "
                    f"with different contents.",
                    hint="Two requirements provide the same module; keep only one of them.",
                ) from None
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            finally:
                written.set()
            mode = (info.external_attr >> 16) & 0o777
            if mode & stat.S_IXUSR:
                os.chmod(dest, 0o755)
            records.append((rel, _record_hash(data), str(len(data))))
    (root / dist_info).mkdir(parents=True, exist_ok=True)
    installer = root / dist_info / "INSTALLER"
    installer.write_bytes(INSTALLER)
    records.append((f"{dist_info}/INSTALLER", _record_hash(INSTALLER), str(len(INSTALLER))))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in sorted(records):
        writer.writerow(row)
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    (root / dist_info / "RECORD").write_text(buf.getvalue(), encoding="utf-8")
    return Installed(wheel=wheel_path.name, files=tuple(r[0] for r in records),
                     skipped=tuple(skipped))


def install_all(wheels: Iterable[Path], root: Path, jobs: int = 4) -> Dict[str, Installed]:
    """Install every wheel into ``root`` (in parallel; conflicts are detected)."""
    from concurrent.futures import ThreadPoolExecutor

    wheels = list(wheels)
    root.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        claims = _Claims()
        results = list(pool.map(lambda w: install_wheel(w, root, claims), wheels))
    return {r.wheel: r for r in results}
