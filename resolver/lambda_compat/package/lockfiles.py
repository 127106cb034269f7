"""Lock files in, a hash-pinned requirements file for one Lambda target out.

Supported inputs: ``Pipfile.lock`` (pipenv), ``poetry.lock`` (Poetry 1.x lock-version 1.x,
1.5+ lock-version 2.0, 2.x lock-version 2.1), ``uv.lock`` and ``pylock.toml`` /
``pylock.<name>.toml`` (PEP 751). Only what a default install of the project gets is kept:

* Pipfile.lock: the ``default`` section (``develop`` and custom categories left out);
* poetry.lock: the ``main`` group (from ``groups`` in 2.1 locks; older locks record no groups,
  so the graph is walked from the main dependencies in the ``pyproject.toml`` beside the lock);
* uv.lock: the project's ``dependencies`` walked from the project itself; ``dev-dependencies``
  (every dependency group) and extras are not followed;
* pylock.toml: every package whose ``marker`` holds with ``dependency_groups`` = the file's
  ``default-groups`` and no ``extras``, as PEP 751 says for a default install.

Markers are evaluated for the target (its own PEP 508 environment, never the host's), per edge
with the parent's active extras, the way pip would evaluate them. Every selected package is
written pinned (``name==version``), with every hash the lock records for that version (so the
builder can choose any of its files for the target), and with the lock's package-level marker
where the format has one (Pipfile.lock, pylock.toml, poetry.lock 2.1); the builder evaluates
it again for the target. Lines for packages found by walking the graph (uv.lock, older
poetry.lock) carry no marker: the walk already decided, and a ``# via`` comment says why.

Index URLs recorded in a lock are not copied into the requirements file: the files come from
the indexes the command is given (-i/--extra-index-url/pip configuration), and the hashes make
sure they are the locked files. A lock naming another index produces a warning saying so.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .. import errors
from ..targets.target import Target

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as _toml

#: Lock kinds and how they are recognised by file name.
KINDS = ("pipfile.lock", "poetry.lock", "uv.lock", "pylock.toml")
_PYLOCK = re.compile(r"^pylock\.([^.]+\.)?toml$")
_PYPI_HOSTS = ("https://pypi.org/simple", "https://pypi.python.org/simple",
               "https://files.pythonhosted.org")
#: Hash algorithms pip accepts in --hash.
_PIP_HASHES = ("sha256", "sha384", "sha512")


def lock_kind(path: Path) -> Optional[str]:
    """The lock format of ``path`` by its file name, or None if it is not a lock file."""
    name = path.name
    if name == "Pipfile.lock":
        return "pipfile.lock"
    if name == "poetry.lock":
        return "poetry.lock"
    if name == "uv.lock":
        return "uv.lock"
    if _PYLOCK.match(name):
        return "pylock.toml"
    return None


@dataclass(frozen=True)
class Pin:
    """One selected package: what the requirements file says about it."""

    name: str
    version: Optional[str]
    hashes: Tuple[str, ...]           # "sha256:<hex>", every file of this version
    marker: Optional[str] = None      # the lock's package-level marker (true for the target)
    reference: Optional[str] = None   # direct reference (URL, file path, VCS) if not an index
    via: Tuple[str, ...] = ()         # who requires it ("(project)" for a root)

    def requirement(self) -> str:
        if self.reference:
            text = f"{self.name} @ {self.reference}"
        else:
            text = f"{self.name}=={self.version}"
        if self.marker:
            text += f" ; {self.marker}"
        return text


@dataclass(frozen=True)
class LockSelection:
    """What a lock file gives one target by default."""

    path: Path
    kind: str
    target: str
    pins: Tuple[Pin, ...]
    excluded_dev: Tuple[str, ...]       # only in development groups / categories
    excluded_marker: Tuple[str, ...]    # in the default set, but not for this target
    warnings: Tuple[str, ...] = ()

    @property
    def hashed(self) -> bool:
        return bool(self.pins) and all(p.hashes for p in self.pins)

    def requirements_text(self) -> str:
        lines = [f"# Converted by lambda-compat from {self.path.name} ({self.kind}) for "
                 f"{self.target}:",
                 "# the default/main dependencies only; development groups are left out.",
                 "# Do not edit: change the lock file and package again."]
        hashed = self.hashed
        for pin in sorted(self.pins, key=lambda p: canonicalize_name(p.name)):
            req = pin.requirement()
            via = f"    # via {', '.join(pin.via)}" if pin.via else ""
            if hashed:
                lines.append(req + " \\")
                hashes = sorted(pin.hashes)
                for i, h in enumerate(hashes):
                    lines.append(f"    --hash={h}" + (" \\" if i < len(hashes) - 1 else ""))
                if via:
                    lines.append(via)
            else:
                lines.append(req)
                if via:
                    lines.append(via)
        return "\n".join(lines) + "\n"

    def write_requirements(self, dest: Path) -> Path:
        dest.write_text(self.requirements_text(), encoding="utf-8")
        return dest

    def to_json(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "target": self.target,
                "packages": [{"name": p.name, "version": p.version,
                              "reference": p.reference, "marker": p.marker,
                              "hashes": len(p.hashes)} for p in
                             sorted(self.pins, key=lambda p: canonicalize_name(p.name))],
                "excluded_dev": list(self.excluded_dev),
                "excluded_marker": list(self.excluded_marker),
                "hash_checking": self.hashed,
                "warnings": list(self.warnings)}


def select(path: Path, target: Target) -> LockSelection:
    """Read the lock file ``path`` and select what a default install gets on ``target``."""
    kind = lock_kind(path)
    if kind is None:
        raise errors.BadInput(
            f"{path}: not a lock file lambda-compat reads.",
            hint="Lock files: Pipfile.lock, poetry.lock, uv.lock, pylock.toml "
                 "(or pylock.<name>.toml); anything else is read as a requirements file.")
    text = _read_text(path)
    reader = {"pipfile.lock": _Pipfile, "poetry.lock": _Poetry, "uv.lock": _Uv,
              "pylock.toml": _Pylock}[kind]
    return reader(path, text, target).select()


# -- shared helpers ----------------------------------------------------------------------------

def _read_text(path: Path) -> str:
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


def _load_toml(path: Path, text: str) -> dict:
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


class _Reader:
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
    def error(self, message: str, *needles: str, hint: Optional[str] = None) -> errors.BadInput:
        line = _line_of(self.text, *needles) if needles else None
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


# -- Pipfile.lock ------------------------------------------------------------------------------

class _Pipfile(_Reader):
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
        return Pin(name=name, version=version, hashes=hashes, marker=_norm_marker(marker),
                   reference=reference)


def _norm_marker(text: Optional[str]) -> Optional[str]:
    if not text or not str(text).strip():
        return None
    return str(Marker(str(text)))


# -- poetry.lock -------------------------------------------------------------------------------

class _Poetry(_Reader):
    kind = "poetry.lock"

    def select(self) -> LockSelection:
        data = _load_toml(self.path, self.text)
        packages = data.get("package") or []
        if not isinstance(packages, list):
            raise self.error("[[package]] entries expected.", "[[package]]")
        meta = data.get("metadata") or {}
        files_by_name = meta.get("files") or {}     # lock-version 1.x keeps hashes here
        self.packages: Dict[str, List[dict]] = {}
        for p in packages:
            if not isinstance(p, dict) or "name" not in p or "version" not in p:
                raise self.error("a [[package]] entry lacks name or version.", "[[package]]",
                                 hint="Regenerate the lock with poetry lock.")
            self.packages.setdefault(canonicalize_name(p["name"]), []).append(p)
            src = p.get("source") or {}
            if src.get("type") == "legacy":
                self.note_index(src.get("url"))
        self.files_by_name = {canonicalize_name(k): v for k, v in files_by_name.items()}
        has_groups = any("groups" in p for p in packages)
        if has_groups:
            return self._by_groups(packages)
        return self._by_graph(packages, meta)

    # lock-version 2.1 (Poetry 2): every package lists its groups and markers per group
    def _by_groups(self, packages: List[dict]) -> LockSelection:
        pins, dev, by_marker = [], [], []
        for p in packages:
            groups = p.get("groups") or []
            if "main" not in groups:
                dev.append(p["name"])
                continue
            markers = p.get("markers")
            marker = markers.get("main") if isinstance(markers, dict) else markers
            if not self.marker(marker, f"{p['name']} {p['version']}"):
                by_marker.append(p["name"])
                continue
            pins.append(self._pin(p, _norm_marker(marker), ()))
        return self.finish(pins, dev, by_marker)

    # lock-version 1.x / 2.0: walk from the main dependencies of pyproject.toml
    def _by_graph(self, packages: List[dict], meta: dict) -> LockSelection:
        roots = self._roots(packages)
        active: Dict[Tuple[str, str], Set[str]] = {}
        via: Dict[Tuple[str, str], Set[str]] = {}
        queue: List[Tuple[dict, str]] = []
        for name, spec in roots:
            for p, extras in self._follow(name, spec, "(project)", ("",)):
                self._activate(p, extras, "(project)", active, via, queue)
        while queue:
            p, extra = queue.pop()
            deps = p.get("dependencies") or {}
            enabled = self._extra_members(p, active[_pkey(p)])
            for dep, spec in sorted(deps.items()):
                for alt in spec if isinstance(spec, list) else [spec]:
                    if isinstance(alt, dict) and alt.get("optional") and \
                            canonicalize_name(dep) not in enabled:
                        continue
                    for child, extras in self._follow(dep, alt, p["name"],
                                                      tuple(active[_pkey(p)] | {""})):
                        self._activate(child, extras, p["name"], active, via, queue)
        pins = []
        chosen = set()
        for p in packages:
            if _pkey(p) in active:
                chosen.add(canonicalize_name(p["name"]))
                pins.append(self._pin(p, None, tuple(sorted(via[_pkey(p)]))))
        rest = [p["name"] for p in packages if canonicalize_name(p["name"]) not in chosen]
        # What the main dependencies reach on some target (markers ignored): left out here
        # because of a marker; the rest is development-only.
        main_names = _reach({canonicalize_name(n) for n, _ in roots}, lambda n: [
            d for p in self.packages.get(n, ()) for d, spec in (p.get("dependencies") or {})
            .items() if not (isinstance(spec, dict) and spec.get("optional"))])
        if self._categories:
            main_names |= {canonicalize_name(p["name"]) for p in packages
                           if p.get("category", "main") == "main"}
        dev = [n for n in rest if canonicalize_name(n) not in main_names]
        by_marker = [n for n in rest if canonicalize_name(n) in main_names]
        return self.finish(pins, dev, by_marker)

    def _roots(self, packages: List[dict]) -> List[Tuple[str, Any]]:
        self._categories = any("category" in p for p in packages)
        pyproject = self.path.parent / "pyproject.toml"
        if pyproject.is_file():
            data = _load_toml(pyproject, _read_text(pyproject))
            roots: List[Tuple[str, Any]] = []
            poetry_deps = ((data.get("tool") or {}).get("poetry") or {}).get("dependencies")
            for name, spec in (poetry_deps or {}).items():
                if name.lower() == "python":
                    continue
                if isinstance(spec, dict) and spec.get("optional"):
                    continue  # only with an extra of the project, none is selected
                roots.append((name, spec))
            for req in (data.get("project") or {}).get("dependencies") or ():
                from packaging.requirements import InvalidRequirement, Requirement
                try:
                    r = Requirement(req)
                except InvalidRequirement:
                    raise errors.BadInput(f"{pyproject}: invalid dependency {req!r}.") from None
                roots.append((r.name, {"markers": str(r.marker) if r.marker else None,
                                       "extras": sorted(r.extras)}))
            if roots or poetry_deps is not None or "project" in data:
                return roots
        if self._categories:
            # Poetry 1.x records main/dev per package; without pyproject.toml the roots are
            # the main packages no other main package requires.
            main = [p for p in packages if p.get("category", "main") == "main"]
            required = {canonicalize_name(d) for p in main
                        for d in (p.get("dependencies") or {})}
            return [(p["name"], {"version": p["version"]}) for p in main
                    if canonicalize_name(p["name"]) not in required]
        raise errors.BadInput(
            f"{self.path}: this poetry.lock (lock-version "
            f"{(self._meta_version() or '2.0')}) does not record which packages are "
            f"development-only, and there is no pyproject.toml beside it to read the main "
            f"dependencies from.",
            hint="Keep the lock next to its pyproject.toml, or relock with Poetry 2 "
                 "(lock-version 2.1 records the groups).")

    def _meta_version(self) -> Optional[str]:
        m = re.search(r'lock-version\s*=\s*"([^"]+)"', self.text)
        return m.group(1) if m else None

    def _follow(self, name: str, spec: Any, parent: str, parent_extras: Tuple[str, ...]):
        """Locked packages an edge ``name = spec`` of ``parent`` reaches on the target."""
        key = canonicalize_name(name)
        candidates = self.packages.get(key)
        if not candidates:
            if isinstance(spec, dict) and spec.get("optional"):
                return []
            raise self.error(f"{parent} requires {name}, which the lock does not contain.",
                             f'name = "{name}"', f"{name} =",
                             hint="The lock is out of date: run poetry lock.")
        extras: Tuple[str, ...] = ()
        version = spec if isinstance(spec, str) else None
        if isinstance(spec, dict):
            if not self.marker(spec.get("markers"), f"{parent} -> {name}", parent_extras):
                return []
            if spec.get("python") and not _poetry_python_ok(spec["python"], self.target):
                return []
            if spec.get("platform") and spec["platform"] != self.env["sys_platform"]:
                return []
            extras = tuple(canonicalize_name(e) for e in spec.get("extras") or ())
            version = spec.get("version")
        if len(candidates) == 1:
            return [(candidates[0], extras)]
        matching = [c for c in candidates if _poetry_version_ok(version, c["version"])]
        if len(matching) != 1:
            raise self.error(
                f"{parent} requires {name} {version or ''}, and the lock has "
                f"{', '.join(c['version'] for c in candidates)}; which one applies cannot be "
                f"told apart.", f'name = "{name}"',
                hint="Relock with Poetry 2 (lock-version 2.1 records markers per package).")
        return [(matching[0], extras)]

    @staticmethod
    def _activate(p: dict, extras: Tuple[str, ...], parent: str, active, via, queue) -> None:
        k = _pkey(p)
        new = k not in active
        current = active.setdefault(k, set())
        added = set(extras) - current
        current |= added
        via.setdefault(k, set()).add(parent)
        if new or added:
            queue.append((p, ""))

    @staticmethod
    def _extra_members(p: dict, extras: Set[str]) -> Set[str]:
        """Names an active extra of ``p`` turns on ("PySocks (>=1.5.6)" -> "pysocks")."""
        out: Set[str] = set()
        table: Dict[str, Any] = {canonicalize_name(k): v
                                 for k, v in (p.get("extras") or {}).items()}
        for e in extras:
            for item in table.get(e) or ():
                out.add(canonicalize_name(re.split(r"[\s(\[<>=!~;]", str(item).strip(), 1)[0]))
        return out

    def _pin(self, p: dict, marker: Optional[str], via: Tuple[str, ...]) -> Pin:
        files = p.get("files")
        if files is None:
            files = self.files_by_name.get(canonicalize_name(p["name"]), [])
        hashes = self.hashes((f.get("hash", "") for f in files if isinstance(f, dict)),
                             f"{p['name']} {p['version']}")
        src = p.get("source") or {}
        reference = None
        stype = src.get("type")
        if stype == "git":
            ref = src.get("resolved_reference") or src.get("reference")
            reference = f"git+{src.get('url')}" + (f"@{ref}" if ref else "")
            if src.get("subdirectory"):
                reference += f"#subdirectory={src['subdirectory']}"
        elif stype in ("directory", "file"):
            reference = self.local_path(src.get("url", ""))
        elif stype == "url":
            reference = src.get("url")
        return Pin(name=p["name"], version=str(p["version"]), hashes=hashes, marker=marker,
                   reference=reference, via=via)


def _reach(start: Set[str], edges) -> Set[str]:
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


def _pkey(p: dict) -> Tuple[str, str]:
    return canonicalize_name(p["name"]), str(p.get("version"))


def _poetry_constraint(text: str) -> Optional[SpecifierSet]:
    """Poetry's version constraint syntax (^, ~, *, x.y.*, ranges) as PEP 440, if it is one."""
    text = str(text).strip()
    if text in ("", "*"):
        return SpecifierSet()
    parts = []
    for raw in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", text):
        raw = raw.strip()
        if not raw or raw == "*":
            continue
        m = re.fullmatch(r"([\^~]|~=|==|!=|<=|>=|<|>|=)?\s*([0-9][0-9A-Za-z.*+!-]*)", raw)
        if not m:
            return None
        op, ver = m.group(1) or "==", m.group(2)
        if op in ("^", "~"):
            nums = [int(x) for x in re.findall(r"\d+", ver.split("+")[0])[:3]]
            if not nums:
                return None
            if op == "^":
                first = next((i for i, n in enumerate(nums) if n != 0), len(nums) - 1)
                upper = nums[:first] + [nums[first] + 1]
            else:
                upper = [nums[0] + 1] if len(nums) == 1 else [nums[0], nums[1] + 1]
            parts += [f">={ver}", "<" + ".".join(map(str, upper))]
        elif op == "=":
            parts.append(f"=={ver}")
        else:
            parts.append(f"{op}{ver}")
    try:
        return SpecifierSet(",".join(parts))
    except InvalidSpecifier:
        return None


def _poetry_version_ok(constraint: Optional[str], version: str) -> bool:
    if constraint is None:
        return True
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    for alt in str(constraint).split("||"):
        spec = _poetry_constraint(alt)
        if spec is None or spec.contains(v, prereleases=True):
            return True
    return False


def _poetry_python_ok(constraint: str, target: Target) -> bool:
    return _poetry_version_ok(constraint, target.python_full_version)


# -- uv.lock -----------------------------------------------------------------------------------

class _Uv(_Reader):
    kind = "uv.lock"

    def select(self) -> LockSelection:
        data = _load_toml(self.path, self.text)
        packages = data.get("package") or []
        if not isinstance(packages, list) or not packages:
            raise self.error("no [[package]] entries; this is not a uv.lock.",
                             hint="Regenerate it with uv lock.")
        self.check_requires_python(data.get("requires-python"), self.path.name)
        self.by_name: Dict[str, List[dict]] = {}
        for p in packages:
            if not isinstance(p, dict) or "name" not in p:
                raise self.error("a [[package]] entry lacks its name.", "[[package]]")
            self.by_name.setdefault(canonicalize_name(p["name"]), []).append(p)
            src = p.get("source") or {}
            if "registry" in src:
                self.note_index(src["registry"])
        roots = [p for p in packages if _uv_is_project(p)]
        members = {canonicalize_name(m) for m in
                   ((data.get("manifest") or {}).get("members") or ())}
        if not any(_uv_root_path(p) == "." for p in roots) and members:
            roots = [p for p in packages if canonicalize_name(p["name"]) in members]
        else:
            roots = [p for p in roots if _uv_root_path(p) == "."]
        if not roots:
            raise self.error(
                "no package with source { editable = \".\" } or { virtual = \".\" }: the "
                "project itself is missing, so its main dependencies are unknown.",
                hint="Regenerate the lock with uv lock in the project directory.")
        root_ids = {id(p) for p in roots}
        active: Dict[int, Set[str]] = {}
        via: Dict[int, Set[str]] = {}
        queue: List[dict] = []
        for r in roots:
            active[id(r)] = set()
            via[id(r)] = set()
            queue.append(r)
        while queue:
            p = queue.pop()
            edges = list(p.get("dependencies") or [])
            for extra in sorted(active[id(p)]):
                edges += list(((p.get("optional-dependencies") or {}).get(extra)) or [])
            # dev-dependencies (dependency groups) are never followed: not a default install
            for edge in edges:
                if not isinstance(edge, dict) or "name" not in edge:
                    raise self.error(f"a dependency of {p['name']} lacks its name.",
                                     f'name = "{p["name"]}"')
                if not self.marker(edge.get("marker"), f"{p['name']} -> {edge['name']}",
                                   tuple(active[id(p)]) + ("",)):
                    continue
                child = self._resolve_edge(p, edge)
                extras = {canonicalize_name(e) for e in edge.get("extra") or ()}
                known = id(child) in active
                cur = active.setdefault(id(child), set())
                added = extras - cur
                cur |= added
                via.setdefault(id(child), set()).add(
                    "(project)" if id(p) in root_ids else p["name"])
                if not known or added:
                    queue.append(child)
        pins = []
        for p in packages:
            if id(p) in active and id(p) not in root_ids:
                pins.append(self._pin(p, tuple(sorted(via[id(p)]))))
        chosen = {canonicalize_name(p["name"]) for p in packages if id(p) in active}
        rest = [p["name"] for p in packages if canonicalize_name(p["name"]) not in chosen
                and id(p) not in root_ids]
        # What the project's dependencies reach on some target (markers ignored): left out
        # here because of a marker; the rest only comes with development groups.
        main_names = _reach(
            {canonicalize_name(e["name"]) for r in roots for e in r.get("dependencies") or ()
             if isinstance(e, dict) and "name" in e},
            lambda n: [e["name"] for p in self.by_name.get(n, ())
                       for e in p.get("dependencies") or () if isinstance(e, dict)
                       and "name" in e])
        dev = [n for n in rest if canonicalize_name(n) not in main_names]
        by_marker = [n for n in rest if canonicalize_name(n) in main_names]
        return self.finish(pins, dev, by_marker)

    def _resolve_edge(self, parent: dict, edge: dict) -> dict:
        candidates = self.by_name.get(canonicalize_name(edge["name"]))
        if not candidates:
            raise self.error(f"{parent['name']} requires {edge['name']}, which the lock does "
                             f"not contain.", f'name = "{edge["name"]}"',
                             hint="The lock is out of date: run uv lock.")
        if len(candidates) == 1:
            return candidates[0]
        matching = [c for c in candidates
                    if ("version" not in edge or str(c.get("version")) == str(edge["version"]))
                    and ("source" not in edge or c.get("source") == edge["source"])]
        if len(matching) != 1:
            raise self.error(f"{parent['name']} requires {edge['name']}, and the lock has "
                             f"{len(candidates)} entries for it that the edge does not tell "
                             f"apart.", f'name = "{edge["name"]}"',
                             hint="Regenerate the lock with uv lock.")
        return matching[0]

    def _pin(self, p: dict, via: Tuple[str, ...]) -> Pin:
        what = f"{p['name']} {p.get('version', '')}".strip()
        files = []
        if isinstance(p.get("sdist"), dict):
            files.append(p["sdist"])
        files += [w for w in p.get("wheels") or () if isinstance(w, dict)]
        hashes = self.hashes((f["hash"] for f in files if "hash" in f), what)
        src = p.get("source") or {}
        reference = None
        if "git" in src:
            url = str(src["git"])
            base, _, commit = url.partition("#")
            base = base.split("?", 1)[0]
            reference = f"git+{base}" + (f"@{commit}" if commit else "")
        elif "url" in src:
            reference = str(src["url"])
        elif any(k in src for k in ("path", "directory", "editable", "virtual")):
            key = next(k for k in ("path", "directory", "editable", "virtual") if k in src)
            reference = self.local_path(str(src[key]))
        if reference is None and not p.get("version"):
            raise self.error(f"{p['name']} has no version.", f'name = "{p["name"]}"',
                             hint="Regenerate the lock with uv lock.")
        return Pin(name=p["name"], version=str(p["version"]) if p.get("version") else None,
                   hashes=hashes, reference=reference, via=via)


def _uv_is_project(p: dict) -> bool:
    src = p.get("source") or {}
    return "editable" in src or "virtual" in src


def _uv_root_path(p: dict) -> Optional[str]:
    src = p.get("source") or {}
    value = src.get("editable", src.get("virtual"))
    return None if value is None else str(value).rstrip("/") or "."


# -- pylock.toml (PEP 751) ---------------------------------------------------------------------

class _Pylock(_Reader):
    kind = "pylock.toml"

    def select(self) -> LockSelection:
        data = _load_toml(self.path, self.text)
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
                   hashes=hashes, marker=_norm_marker(plain), reference=reference)
