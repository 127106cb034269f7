"""The package registry: distributions whose wheels carry a platform tag they do not need.

The builder consults it only after building without a compiler, and accepts a wheel only if
an entry matches name, version and target *and* the wheel holds no native file (verified by
the caller, never trusted).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import jsonschema
import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .errors import RegistryError
from .runtimes import registry_dir
from .targets import Target


@dataclass(frozen=True)
class PackageEntry:
    name: str
    versions: SpecifierSet
    runtimes: Optional[Tuple[str, ...]]
    arches: Optional[Tuple[str, ...]]
    kind: str
    explanation: str
    path: str

    def matches(self, name: str, version: str, target: Target) -> bool:
        return (canonicalize_name(name) == self.name
                and self.versions.contains(Version(version), prereleases=True)
                and (self.runtimes is None or target.runtime in self.runtimes)
                and (self.arches is None or target.arch in self.arches))


@dataclass(frozen=True)
class PackageRegistry:
    version: str
    entries: Tuple[PackageEntry, ...]

    def find(self, name: str, version: str, target: Target) -> Optional[PackageEntry]:
        return next((e for e in self.entries if e.matches(name, version, target)), None)


def load_packages(root: Optional[Path] = None) -> PackageRegistry:
    if root is None:
        return _default()
    return _load(Path(root))


@functools.lru_cache(maxsize=1)
def _default() -> PackageRegistry:
    return _load(registry_dir())


def _load(root: Path) -> PackageRegistry:
    schema = json.loads((root / "schema" / "package.schema.json").read_text(encoding="utf-8"))
    version_file = root / "VERSION"
    version = version_file.read_text(encoding="utf-8").strip() if version_file.exists() else "0"
    entries = []
    seen = {}
    for path in sorted((root / "packages").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise RegistryError(f"not valid YAML ({exc})", path=str(path),
                                line=line + 1 if line is not None else None) from None
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data),
                        key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            where = "/".join(map(str, e.path)) or "(top level)"
            raise RegistryError(f"{where}: {e.message}", path=str(path))
        name = data["name"]
        if path.stem != name:
            raise RegistryError(f"file name must be {name}.yaml", path=str(path))
        if name in seen:
            raise RegistryError(f"duplicate entry for {name} (also {seen[name]})", path=str(path))
        seen[name] = str(path)
        try:
            spec = SpecifierSet(data["versions"])
        except InvalidSpecifier:
            raise RegistryError(f"versions: {data['versions']!r} is not a PEP 440 specifier",
                                path=str(path)) from None
        targets = data.get("targets") or {}
        entries.append(PackageEntry(
            name=name, versions=spec,
            runtimes=tuple(targets["runtimes"]) if "runtimes" in targets else None,
            arches=tuple(targets["arches"]) if "arches" in targets else None,
            kind=data["kind"], explanation=data["explanation"], path=str(path)))
    return PackageRegistry(version=version, entries=tuple(entries))
