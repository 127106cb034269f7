"""Pipfile.lock (pipenv): the ``default`` section."""

from __future__ import annotations

import json
from typing import List, Optional

from ... import errors
from .reader import Reader, norm_marker
from .selection import LockSelection, Pin


class PipfileReader(Reader):
    kind = "pipfile.lock"

    def select(self) -> LockSelection:
        try:
            data = json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise errors.BadInput(f"{self.path}:{exc.lineno}: not valid JSON ({exc.msg}).",
                                  hint="Regenerate it with pipenv lock.") from None
        if not isinstance(data, dict) or "default" not in data:
            raise self.error("no \"default\" section; this is not a Pipfile.lock.",
                             hint="Regenerate it with pipenv lock.")
        meta = data.get("_meta") or {}
        for source in meta.get("sources") or ():
            if isinstance(source, dict):
                self.note_index(source.get("url"))
        wanted = (meta.get("requires") or {}).get("python_version")
        if wanted and str(wanted) != f"{self.target.python_version[0]}." \
                                     f"{self.target.python_version[1]}":
            self.warnings.append(
                f"{self.path.name} was locked for Python {wanted}; {self.target.runtime} is "
                f"Python {self.target.python_version[0]}.{self.target.python_version[1]}. "
                f"pipenv locks for one interpreter: a package needed only on this Python "
                f"may be missing from the lock (the build then reports it).")
        pins: List[Pin] = []
        by_marker: List[str] = []
        default = data.get("default") or {}
        if not isinstance(default, dict):
            raise self.error("\"default\" is not an object.", "\"default\"")
        for name, entry in sorted(default.items()):
            if not isinstance(entry, dict):
                raise self.error(f"entry {name!r} is not an object.", f'"{name}"')
            marker = entry.get("markers")
            if not self.marker(marker, name):
                by_marker.append(name)
                continue
            pins.append(self._pin(name, entry, marker))
        dev = list(data.get("develop") or {})
        for section, entries in data.items():
            if section not in ("_meta", "default", "develop") and isinstance(entries, dict):
                dev += list(entries)  # custom Pipfile categories: not installed by default
        return self.finish(pins, dev, by_marker)

    def _pin(self, name: str, entry: dict, marker: Optional[str]) -> Pin:
        hashes = self.hashes(entry.get("hashes") or (), name)
        reference = None
        version = entry.get("version")
        if "git" in entry or "hg" in entry or "svn" in entry or "bzr" in entry:
            vcs = next(k for k in ("git", "hg", "svn", "bzr") if k in entry)
            ref = entry.get("ref")
            reference = f"{vcs}+{entry[vcs]}" + (f"@{ref}" if ref else "")
            if entry.get("subdirectory"):
                reference += f"#subdirectory={entry['subdirectory']}"
        elif "path" in entry:
            reference = self.local_path(entry["path"])
        elif "file" in entry:
            reference = entry["file"]
        if reference is None:
            if not isinstance(version, str) or not version.startswith("=="):
                raise self.error(f"{name} is not pinned (version {version!r}).", f'"{name}"',
                                 hint="Regenerate the lock with pipenv lock.")
            version = version[2:].strip()
        elif isinstance(version, str) and version.startswith("=="):
            version = version[2:].strip()
        else:
            version = None
        if entry.get("editable"):
            self.warnings.append(f"{name} is editable in {self.path.name}; it is installed as "
                                 f"a normal copy into the bundle.")
        return Pin(name=name, version=version, hashes=hashes, marker=norm_marker(marker),
                   reference=reference)
