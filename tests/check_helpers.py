"""Helpers shared by the check tests: installed distributions and zips, written for real."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence, Union

ROOT = Path(__file__).resolve().parent.parent
ELF = ROOT / "fixtures" / "elf"
CHECK = ROOT / "fixtures" / "check"
INDEX_FILES = ROOT / "fixtures" / "index" / "files"
SCHEMA_PATH = ROOT / "resolver" / "lambda_compat" / "schemas" / "check-report.schema.json"

Content = Union[bytes, str, Path]


def _bytes(content: Content) -> bytes:
    if isinstance(content, Path):
        return content.read_bytes()
    if isinstance(content, str):
        return content.encode()
    return content


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


def make_dist(site: Path, name: str, version: str = "1.0", files: Optional[Dict[str, Content]] = None,
              *, requires: Sequence[str] = (), requires_python: Optional[str] = None,
              tags: Sequence[str] = ("py3-none-any",), record: bool = True,
              top_level: Optional[Iterable[str]] = None, wheel: bool = True) -> Path:
    """Write an installed distribution (files + .dist-info) into ``site`` like pip does."""
    site.mkdir(parents=True, exist_ok=True)
    files = dict(files or {})
    norm = name.replace("-", "_")
    di = f"{norm}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        meta.append(f"Requires-Python: {requires_python}")
    meta += [f"Requires-Dist: {r}" for r in requires]
    files[f"{di}/METADATA"] = "\n".join(meta) + "\n\nA long description.\n"
    if wheel:
        files[f"{di}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: "
                                "false\n" + "".join(f"Tag: {t}\n" for t in tags))
    files[f"{di}/INSTALLER"] = "pip\n"
    if top_level is not None:
        files[f"{di}/top_level.txt"] = "".join(f"{t}\n" for t in top_level)
    rows = []
    for rel, content in files.items():
        data = _bytes(content)
        dest = site / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        rows.append(f"{rel},{_hash(data)},{len(data)}")
    if record:
        rows.append(f"{di}/RECORD,,")
        (site / di / "RECORD").write_text("\n".join(rows) + "\n")
    return site / di


def zip_dir(directory: Path, dest: Path) -> Path:
    """Zip the *content* of ``directory`` (as `cd dir && zip -r dest .` does)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(directory.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(directory).as_posix())
    return dest


def add_symlink(zf: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


def snapshot(root: Path) -> Dict[str, tuple]:
    """Path -> (size, mtime_ns, mode) of everything under ``root``, to prove nothing changed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def copy_elf(name: str) -> bytes:
    return (ELF / name).read_bytes()
