"""pylock.toml (PEP 751): what a default install gets."""

from __future__ import annotations

import re
from typing import Optional

from .reader import Reader, load_toml, norm_marker
from .selection import LockSelection, Pin


class PylockReader(Reader):
    kind = "pylock.toml"

    def select(self) -> LockSelection:
        data = load_toml(self.path, self.text)
        version = str(data.get("lock-version", ""))
        if not version:
            raise self.error("no lock-version; this is not a pylock.toml.",
                             hint="See https://packaging.python.org/specifications/pylock-toml/")
        if version.split(".")[0] != "1":
            raise self.error(f"lock-version {version} is not supported (only 1.x).",
                             "lock-version")
        self.check_requires_python(data.get("requires-python"), self.path.name)
        environments = data.get("environments")
        if environments:
            if not any(self.marker(e, "environments", lock_file=True) for e in environments):
                raise self.error(
                    f"the lock covers the environments {environments}, and "
                    f"{self.target.name} is not one of them.", "environments",
                    hint="Lock for Linux on the target's Python and architecture.")
        groups = [str(g) for g in data.get("default-groups") or ()]
        pins, dev, by_marker = [], [], []
        for p in data.get("packages") or ():
            if not isinstance(p, dict) or "name" not in p:
                raise self.error("a [[packages]] entry lacks its name.", "[[packages]]")
            marker = p.get("marker")
            if self.marker(marker, p["name"], lock_file=True, groups=groups):
                pins.append(self._pin(p, marker))
            elif marker and "dependency_groups" in marker and not any(
                    re.search(rf"['\"]{re.escape(g)}['\"]", marker) for g in groups):
                dev.append(p["name"])   # gated on a dependency group that is not a default
            else:
                by_marker.append(p["name"])
            if p.get("index"):
                self.note_index(p["index"])
        return self.finish(pins, dev, by_marker)

    def _pin(self, p: dict, marker: Optional[str]) -> Pin:
        what = f"{p['name']} {p.get('version', '')}".strip()
        self.check_requires_python(p.get("requires-python"), what)
        files = []
        for key in ("sdist", "archive"):
            if isinstance(p.get(key), dict):
                files.append(p[key])
        files += [w for w in p.get("wheels") or () if isinstance(w, dict)]
        values = []
        for f in files:
            for algo, digest in (f.get("hashes") or {}).items():
                values.append(f"{algo}:{digest}")
        hashes = self.hashes(values, what)
        reference = None
        if isinstance(p.get("vcs"), dict):
            vcs = p["vcs"]
            where = vcs.get("url") or self.local_path(vcs.get("path", ""))
            reference = f"{vcs.get('type', 'git')}+{where}"
            if vcs.get("commit-id"):
                reference += f"@{vcs['commit-id']}"
            if vcs.get("subdirectory"):
                reference += f"#subdirectory={vcs['subdirectory']}"
        elif isinstance(p.get("directory"), dict):
            reference = self.local_path(p["directory"].get("path", ""))
        elif isinstance(p.get("archive"), dict):
            a = p["archive"]
            reference = a.get("url") or self.local_path(a.get("path", ""))
        if reference is None and not p.get("version"):
            raise self.error(f"{p['name']} has no version and no direct source.",
                             f'name = "{p["name"]}"')
        # The marker may name extras/dependency_groups (PEP 751 only): pip cannot read those,
        # and it was evaluated for the target already, so it is written only when plain.
        plain = marker if marker and not re.search(r"\b(extras|dependency_groups)\b",
                                                   marker) else None
        return Pin(name=p["name"], version=str(p["version"]) if p.get("version") else None,
                   hashes=hashes, marker=norm_marker(plain), reference=reference)
