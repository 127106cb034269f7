"""uv.lock: the project's ``dependencies`` walked from the project itself."""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from packaging.utils import canonicalize_name

from .reader import Reader, load_toml, reach
from .selection import LockSelection, Pin


class UvReader(Reader):
    kind = "uv.lock"

    def select(self) -> LockSelection:
        data = load_toml(self.path, self.text)
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
        main_names = reach(
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
