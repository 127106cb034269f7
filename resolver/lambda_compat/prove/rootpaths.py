"""Paths inside an unpacked root directory: symlinks resolved against the root, its interpreter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple


def _resolve_in_root(root: Path, path: str, depth: int = 0) -> Optional[Path]:
    """``path`` inside ``root`` with symlinks resolved against ``root`` (not the host)."""
    if depth > 40:
        return None
    current = root
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        candidate = current / part
        if candidate.is_symlink():
            link = os.readlink(candidate)
            rest = "/".join(parts[i + 1:])
            if link.startswith("/"):
                joined = link + ("/" + rest if rest else "")
            else:
                base = "/" + str(current.relative_to(root)) if current != root else ""
                joined = os.path.normpath(f"{base}/{link}") + ("/" + rest if rest else "")
            return _resolve_in_root(root, joined, depth + 1)
        if not candidate.exists():
            return None
        current = candidate
    return current


def resolve_in_root(root: Path, path: str) -> Optional[Path]:
    """``path`` (absolute, inside ``root``) with its symlinks followed inside ``root``."""
    return _resolve_in_root(root, path)


def root_interpreter(root: Path, version: Tuple[int, int]) -> Optional[str]:
    """Path (inside ``root``) of its ``python3.X``: Lambda's /var/lang/bin first."""
    name = f"python{version[0]}.{version[1]}"
    for directory in ("/var/lang/bin", "/usr/bin", "/usr/local/bin"):
        inside = f"{directory}/{name}"
        real = _resolve_in_root(root, inside)
        if real is not None and real.is_file():
            return inside
    return None


def root_machine(root: Path, inside: str) -> Optional[str]:
    from ..errors import ELFError
    from ..verify.elf import read_elf
    real = _resolve_in_root(root, inside)
    if real is None:
        return None
    try:
        return read_elf(real).machine
    except (ELFError, OSError):
        return None
