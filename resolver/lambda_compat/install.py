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
from typing import Dict, Iterable, List, Tuple

from . import errors

INSTALLER = b"lambda-compat\n"
_WRITE_LOCK = threading.Lock()


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


def install_wheel(wheel_path: Path, root: Path) -> Installed:
    dist_info, plan, skipped = plan_wheel(wheel_path)
    records: List[Tuple[str, str, str]] = []
    with zipfile.ZipFile(wheel_path) as zf:
        for info, rel in plan:
            dest = _safe_target(root, rel, wheel_path.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = zf.read(info)
            # Create-and-write under a lock: with install_all's threads, another wheel must
            # never find this file created but not yet written (a false conflict).
            with _WRITE_LOCK:
                # O_EXCL: a file another wheel already wrote is a conflict, not an overwrite.
                try:
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    # Old-style namespace packages ship identical __init__.py files: fine.
                    if dest.read_bytes() == data:
                        records.append((rel, _record_hash(data), str(len(data))))
                        continue
                    raise errors.BadInput(
                        f"{wheel_path.name} and another distribution both install {rel}, "
                        f"with different contents.",
                        hint="Two requirements provide the same module; keep only one of them.",
                    ) from None
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
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
        results = list(pool.map(lambda w: install_wheel(w, root), wheels))
    return {r.wheel: r for r in results}
