"""poetry.lock: the ``main`` group (lock-version 2.1), or the graph walked from the main
dependencies of the ``pyproject.toml`` beside the lock (lock-version 1.x and 2.0)."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Set, Tuple

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ... import errors
from ...targets.target import Target
from .reader import Reader, load_toml, norm_marker, reach, read_text
from .selection import LockSelection, Pin


class PoetryReader(Reader):
    kind = "poetry.lock"

    def select(self) -> LockSelection:
        data = load_toml(self.path, self.text)
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
            pins.append(self._pin(p, norm_marker(marker), ()))
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
        main_names = reach({canonicalize_name(n) for n, _ in roots}, lambda n: [
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
            data = load_toml(pyproject, read_text(pyproject))
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
