"""pylock.toml (PEP 751): what a default install gets.

:mod:`packaging.pylock` parses and validates the file against PEP 751 (required keys, types,
normalised names, one source per package, a hash for every file); its errors are reported
with the file, the line of the entry and the fix. What the specification leaves to an
installer is decided here: the lock-version this reader understands, the target's
``environments`` and ``requires-python``, and which packages a default install gets. Texts
repeated in messages and in the requirements file (versions, markers, requires-python) are
taken as the lock writes them.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, List, Mapping, Optional

from ... import errors
from .reader import Reader, load_toml, norm_marker
from .selection import LockSelection, Pin

if TYPE_CHECKING:
    from packaging.pylock import Package, Pylock, PylockValidationError

_SPEC_URL = "https://packaging.python.org/specifications/pylock-toml/"


class PylockReader(Reader):
    kind = "pylock.toml"

    def select(self) -> LockSelection:
        data = load_toml(self.path, self.text)
        version = str(data.get("lock-version", ""))
        if not version:
            raise self.error("no lock-version; this is not a pylock.toml.",
                             hint=f"See {_SPEC_URL}")
        if version.split(".")[0] != "1":
            raise self.error(f"lock-version {version} is not supported (only 1.x).",
                             "lock-version")
        lock = self._validated(data)
        self.check_requires_python(data.get("requires-python"), self.path.name)
        environments = data.get("environments")
        if environments:
            if not any(self.marker(e, "environments", lock_file=True) for e in environments):
                raise self.error(
                    f"the lock covers the environments {environments}, and "
                    f"{self.target.name} is not one of them.", "environments",
                    hint="Lock for Linux on the target's Python and architecture.")
        groups = [str(g) for g in lock.default_groups or ()]
        pins: List[Pin] = []
        dev: List[str] = []
        by_marker: List[str] = []
        # The validated packages, each with its table as written (same order, same length).
        for package, p in zip(lock.packages, data["packages"]):
            marker = p.get("marker")
            if self.marker(marker, p["name"], lock_file=True, groups=groups):
                pins.append(self._pin(package, p, marker))
            elif marker and "dependency_groups" in marker and not any(
                    re.search(rf"['\"]{re.escape(g)}['\"]", marker) for g in groups):
                dev.append(p["name"])   # gated on a dependency group that is not a default
            else:
                by_marker.append(p["name"])
            if package.index:
                self.note_index(package.index)
        return self.finish(pins, dev, by_marker)

    def _validated(self, data: Mapping[str, Any]) -> Pylock:
        """The lock as :class:`packaging.pylock.Pylock`; BadInput saying where if invalid."""
        # Imported here: only a pylock.toml pays for it (datetime, urllib, tags).
        from packaging.pylock import Pylock, PylockValidationError
        # packaging logs "pylock minor version 1.x is not supported" for 1.1 and later: this
        # reader reads every 1.x lock without a word (and nothing in the package prints).
        logger = logging.getLogger("packaging.pylock")
        logger.addFilter(_drop)
        try:
            return Pylock.from_dict(data)
        except PylockValidationError as exc:
            raise self._invalid(exc, data) from None
        finally:
            logger.removeFilter(_drop)

    def _invalid(self, exc: PylockValidationError, data: Mapping[str, Any]) -> errors.BadInput:
        """packaging's validation error as ours: the file, the line of the entry, the fix."""
        context = exc.context or ""
        message = (str(exc.message).strip().splitlines() or ["invalid"])[0].rstrip(".")
        line = None
        at = f" (at {context})" if context else ""
        m = re.match(r"packages\[(\d+)\]", context)
        if m:
            index = int(m.group(1))
            line = _nth_line(self.text, r"^[ \t]*\[\[[ \t]*packages[ \t]*\]\]", index)
            packages = data.get("packages")
            entry = packages[index] if isinstance(packages, list) and index < len(packages) \
                else None
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                at = f" (at {context}, the package {entry['name']})"
        elif context:
            key = re.split(r"[.\[]", context, maxsplit=1)[0]
            line = _nth_line(self.text, rf"^[ \t]*{re.escape(key)}[ \t]*=", 0)
        return self.error(f"not a valid pylock.toml: {message}{at}.", line=line,
                          hint=f"Regenerate the lock file with its tool (the format: "
                               f"{_SPEC_URL}).")

    def _pin(self, package: Package, p: Mapping[str, Any], marker: Optional[str]) -> Pin:
        what = f"{p['name']} {p.get('version', '')}".strip()
        self.check_requires_python(p.get("requires-python"), what)
        files = (package.sdist, package.archive, *(package.wheels or ()))
        hashes = self.hashes((f"{algo}:{digest}" for f in files if f is not None
                              for algo, digest in f.hashes.items()), what)
        reference = None
        if package.vcs is not None:
            vcs = package.vcs
            where = vcs.url or self.local_path(vcs.path or "")
            reference = f"{vcs.type}+{where}"
            if vcs.commit_id:
                reference += f"@{vcs.commit_id}"
            if vcs.subdirectory:
                reference += f"#subdirectory={vcs.subdirectory}"
        elif package.directory is not None:
            reference = self.local_path(package.directory.path)
        elif package.archive is not None:
            reference = package.archive.url or self.local_path(package.archive.path or "")
        if reference is None and not p.get("version"):
            raise self.error(f"{p['name']} has no version and no direct source.",
                             f'name = "{p["name"]}"')
        # The marker may name extras/dependency_groups (PEP 751 only): pip cannot read those,
        # and it was evaluated for the target already, so it is written only when plain.
        plain = marker if marker and not re.search(r"\b(extras|dependency_groups)\b",
                                                   marker) else None
        return Pin(name=p["name"], version=str(p["version"]) if p.get("version") else None,
                   hashes=hashes, marker=norm_marker(plain), reference=reference)


def _nth_line(text: str, pattern: str, n: int) -> Optional[int]:
    """1-based line of the ``n``-th (0-based) match of ``pattern`` in ``text``, else None."""
    for i, m in enumerate(re.finditer(pattern, text, re.M)):
        if i == n:
            return text.count("\n", 0, m.start()) + 1
    return None


def _drop(record: logging.LogRecord) -> bool:
    return False
