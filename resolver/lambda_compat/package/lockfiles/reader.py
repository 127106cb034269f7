"""What every lock reader shares: reading the file, errors that say where, markers
evaluated for the target, hashes, and the selection at the end."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from ... import errors
from ...targets.target import Target
from .selection import LockSelection, Pin

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as _toml

_PYPI_HOSTS = ("https://pypi.org/simple", "https://pypi.python.org/simple",
               "https://files.pythonhosted.org")
#: Hash algorithms pip accepts in --hash.
_PIP_HASHES = ("sha256", "sha384", "sha512")


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise errors.BadInput(f"{path}: file not found.",
                              hint="Check the path of the lock file.") from None
    except UnicodeDecodeError:
        raise errors.BadInput(f"{path}: not valid UTF-8.",
                              hint="Lock files are UTF-8; regenerate it with its tool.") from None
    except OSError as exc:
        raise errors.BadInput(f"{path}: cannot be read ({exc.strerror}).") from None


def load_toml(path: Path, text: str) -> dict:
    try:
        return _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        raise errors.BadInput(f"{path}: not valid TOML ({exc}).",
                              hint="Regenerate the lock file with its tool.") from None


def _line_of(text: str, *needles: str) -> Optional[int]:
    """1-based line of the first needle found in ``text`` (for messages), else None."""
    for needle in needles:
        idx = text.find(needle)
        if idx != -1:
            return text.count("\n", 0, idx) + 1
    return None


def _where(path: Path, line: Optional[int]) -> str:
    return f"{path}:{line}" if line else str(path)


class Reader:
    kind = ""

    def __init__(self, path: Path, text: str, target: Target) -> None:
        self.path = path
        self.text = text
        self.target = target
        self.env: Dict[str, Any] = dict(target.marker_environment())
        self.warnings: List[str] = []

    def select(self) -> LockSelection:
        """What a default install of the lock gets on the target (each format its own)."""
        raise NotImplementedError

    # -- errors and markers ---------------------------------------------------------------
    def error(self, message: str, *needles: str, hint: Optional[str] = None,
              line: Optional[int] = None) -> errors.BadInput:
        """BadInput at ``line``, or at the line of the first of ``needles`` found."""
        if line is None and needles:
            line = _line_of(self.text, *needles)
        return errors.BadInput(f"{_where(self.path, line)}: {message}", hint=hint)

    def marker(self, text: Optional[str], where: str, extras: Iterable[str] = ("",),
               lock_file: bool = False, groups: Iterable[str] = ()) -> bool:
        """Does ``text`` hold on the target (with any of ``extras`` as ``extra``)?"""
        if not text or not str(text).strip():
            return True
        try:
            m = Marker(str(text))
        except InvalidMarker as exc:
            raise self.error(f"invalid marker for {where}: {text!r} "
                             f"({str(exc).splitlines()[0]}).", str(text),
                             hint="Regenerate the lock file with its tool.") from None
        try:
            if lock_file:
                env = {**self.env, "extras": frozenset(), "dependency_groups":
                       frozenset(canonicalize_name(g) for g in groups)}
                return m.evaluate(env, context="lock_file")
            return any(m.evaluate({**self.env, "extra": e}) for e in (tuple(extras) or ("",)))
        except (UndefinedComparison, UndefinedEnvironmentName) as exc:
            raise self.error(f"the marker for {where} cannot be evaluated: {text!r} ({exc}).",
                             str(text), hint="Regenerate the lock file with its tool.") from None

    def check_requires_python(self, spec: Optional[str], what: str) -> None:
        if not spec:
            return
        try:
            ok = SpecifierSet(str(spec)).contains(Version(self.target.python_full_version),
                                                  prereleases=True)
        except InvalidSpecifier:
            return
        if not ok:
            raise self.error(
                f"{what} requires Python {spec}; {self.target.runtime} is Python "
                f"{self.target.python_full_version}.", "requires-python",
                hint=f"Lock the project for Python {self.target.python_version[0]}."
                     f"{self.target.python_version[1]} (widen requires-python) or package for "
                     f"a runtime the lock covers.")

    def note_index(self, url: Optional[str]) -> None:
        if url and not str(url).rstrip("/").startswith(_PYPI_HOSTS):
            msg = (f"{self.path.name} records the index {url}; lambda-compat downloads from "
                   f"the indexes it is given (-i / --extra-index-url / pip configuration), and "
                   f"the lock's hashes check the files. Pass that index if it is not PyPI.")
            if msg not in self.warnings:
                self.warnings.append(msg)

    def hashes(self, values: Iterable[str], what: str) -> Tuple[str, ...]:
        out = []
        for v in values:
            v = str(v).strip()
            algo, sep, digest = v.partition(":")
            if not sep or not re.fullmatch(r"[0-9a-fA-F]+", digest or ""):
                raise self.error(f"hash {v!r} of {what} is not algorithm:hexdigest.", v,
                                 hint="Regenerate the lock file with its tool.")
            if algo.lower() in _PIP_HASHES:
                out.append(f"{algo.lower()}:{digest.lower()}")
        return tuple(sorted(set(out)))

    def finish(self, pins: Sequence[Pin], dev: Iterable[str], by_marker: Iterable[str]
               ) -> LockSelection:
        chosen = {canonicalize_name(p.name) for p in pins}
        marker_only = sorted({d for d in by_marker if canonicalize_name(d) not in chosen},
                             key=canonicalize_name)
        # In the default set but not for this target -> "marker", even if a dev group has it.
        skip = chosen | {canonicalize_name(d) for d in marker_only}
        dev_only = sorted({d for d in dev if canonicalize_name(d) not in skip},
                          key=canonicalize_name)
        unhashed = [p.name for p in pins if not p.hashes]
        if pins and unhashed:
            self.warnings.append(
                f"hash checking is off for this lock: {', '.join(sorted(unhashed))} "
                f"{'has' if len(unhashed) == 1 else 'have'} no sha256/sha384/sha512 hash in "
                f"{self.path.name} (a local directory or VCS source, or a lock written "
                f"without hashes), and pip checks hashes for all requirements or none.")
        return LockSelection(path=self.path, kind=self.kind, target=self.target.name,
                             pins=tuple(pins), excluded_dev=tuple(dev_only),
                             excluded_marker=tuple(marker_only),
                             warnings=tuple(self.warnings))

    def local_path(self, value: str) -> str:
        p = Path(value)
        if not p.is_absolute():
            p = (self.path.parent / p).resolve()
        return p.as_uri()


def norm_marker(text: Optional[str]) -> Optional[str]:
    if not text or not str(text).strip():
        return None
    return str(Marker(str(text)))


def reach(start: Set[str], edges) -> Set[str]:
    """Canonical names reachable from ``start`` through ``edges(name) -> names``."""
    seen: Set[str] = set()
    stack = list(start)
    while stack:
        n = canonicalize_name(stack.pop())
        if n in seen:
            continue
        seen.add(n)
        stack.extend(edges(n))
    return seen
