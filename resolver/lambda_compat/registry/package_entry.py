"""Package registry values: one entry per project, its evidence, the loaded registry.

See :mod:`lambda_compat.registry.packages` for what the package registry is and how it is
loaded and checked; these are the frozen values it produces (and :func:`dump_entry` writes
one back as YAML).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Sequence, Tuple

import yaml
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..targets.target import Target

#: The closed vocabulary of ``kind``: why a platform-tagged wheel needs no native code.
KINDS: Mapping[str, str] = {
    "optional-extension-pure-fallback": (
        "setup.py declares C extensions as optional: when they cannot be compiled the build "
        "goes on without them, but the wheel keeps the build machine's platform tag because "
        "extension modules were declared"),
    "platform-tag-without-native-code": (
        "the build always tags the wheel for the build machine (a custom bdist_wheel, "
        "has_ext_modules forced true, Root-Is-Purelib false) although it holds no native code"),
    "runtime-capability": (
        "the package needs more of the runtime itself than some runtimes have (a newer "
        "sqlite3 or ssl library in the runtime's own Python), and refuses to import or fails "
        "there although its metadata says it installs; `needs` says what, `fix` how to ship it"),
}
#: Kinds whose entries vouch for a platform-tagged wheel (the builder's allowlist).
ALLOWLIST_KINDS = ("optional-extension-pure-fallback", "platform-tag-without-native-code")
#: Field order of a dumped entry (the order CONTRIBUTING.md shows).
FIELD_ORDER = ("name", "versions", "targets", "kind", "explanation", "imports", "smoke",
               "needs", "fix", "evidence", "references")


# --------------------------------------------------------------------------- values

@dataclass(frozen=True)
class Evidence:
    """Versions x targets that the compat test ``test`` built, checked and imported."""

    versions: Tuple[str, ...]
    targets: Tuple[str, ...]          # "python3.12/x86_64"
    test: str                         # compat_tests/<file>.py::<function>
    date: str                         # ISO date the evidence was produced
    line: int = field(default=0, compare=False)

    def cases(self) -> Iterator[Tuple[str, str, str]]:
        """(version, runtime, arch) for every version x target of this record."""
        for version in self.versions:
            for target in self.targets:
                runtime, arch = target.split("/", 1)
                yield version, runtime, arch

    def to_data(self) -> Dict[str, Any]:
        return {"versions": list(self.versions), "targets": list(self.targets),
                "test": self.test, "date": self.date}


@dataclass(frozen=True)
class PackageEntry:
    """One project: the versions and targets where its platform tag is not needed."""

    name: str                                  # PEP 503 normalized
    versions: SpecifierSet
    kind: str                                  # one of KINDS
    explanation: str
    imports: Tuple[str, ...]                   # top-level modules the compat test imports
    evidence: Tuple[Evidence, ...]
    runtimes: Optional[Tuple[str, ...]] = None  # None: every runtime
    arches: Optional[Tuple[str, ...]] = None    # None: every architecture
    smoke: Optional[str] = None                # a statement run after the imports
    references: Tuple[str, ...] = ()
    #: ``targets`` given as runtime/arch pairs (``python3.12/x86_64``); None: runtimes/arches.
    pairs: Optional[Tuple[str, ...]] = None
    #: runtime-capability: capability -> PEP 440 specifier (``{"sqlite": ">=3.35"}``).
    needs: Tuple[Tuple[str, str], ...] = ()
    #: runtime-capability: the fix (``distribution`` to ship, ``text`` how to use it).
    fix_distribution: Optional[str] = None
    fix_text: Optional[str] = None
    path: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    def applies_to(self, target: Target) -> bool:
        if self.pairs is not None:
            return f"{target.runtime}/{target.arch}" in self.pairs
        return ((self.runtimes is None or target.runtime in self.runtimes)
                and (self.arches is None or target.arch in self.arches))

    def covers(self, version: str) -> bool:
        try:
            return self.versions.contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False

    def matches(self, name: str, version: str, target: Target) -> bool:
        return (canonicalize_name(name) == self.name and self.covers(version)
                and self.applies_to(target))

    @property
    def label(self) -> str:
        """``pyyaml >=5.1,<7`` for reports."""
        return f"{self.name} {self.versions}"

    def targets_text(self) -> str:
        if self.pairs is not None:
            return ", ".join(self.pairs)
        runtimes = ",".join(self.runtimes) if self.runtimes else "all runtimes"
        arches = ",".join(self.arches) if self.arches else "all arches"
        return f"{runtimes} / {arches}"

    def to_data(self) -> Dict[str, Any]:
        """The entry as the YAML mapping it was read from (field order of FIELD_ORDER)."""
        data: Dict[str, Any] = {"name": self.name, "versions": str(self.versions)}
        if self.pairs is not None:
            data["targets"] = list(self.pairs)
        elif self.runtimes is not None or self.arches is not None:
            data["targets"] = {}
            if self.runtimes is not None:
                data["targets"]["runtimes"] = list(self.runtimes)
            if self.arches is not None:
                data["targets"]["arches"] = list(self.arches)
        data["kind"] = self.kind
        data["explanation"] = self.explanation
        data["imports"] = list(self.imports)
        if self.smoke is not None:
            data["smoke"] = self.smoke
        if self.needs:
            data["needs"] = dict(self.needs)
        if self.fix_distribution is not None:
            data["fix"] = {"distribution": self.fix_distribution, "text": self.fix_text}
        data["evidence"] = [e.to_data() for e in self.evidence]
        if self.references:
            data["references"] = list(self.references)
        return data


@dataclass(frozen=True)
class RegistryProblem:
    """One thing wrong in the registry data, with where it is."""

    path: str
    line: Optional[int]
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else \
            f"{self.path}: {self.message}"

    def to_json(self) -> Dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message}


@dataclass(frozen=True)
class PackageRegistry:
    version: str
    entries: Tuple[PackageEntry, ...]
    root: str = ""

    def find(self, name: str, version: str, target: Target,
             kinds: Sequence[str] = ALLOWLIST_KINDS) -> Optional[PackageEntry]:
        """The entry of one of ``kinds`` (by default: one that vouches for a platform-tagged
        wheel) for ``name`` ``version`` on ``target``, if any."""
        return next((e for e in self.entries
                     if e.kind in kinds and e.matches(name, version, target)), None)

    def get(self, name: str) -> Optional[PackageEntry]:
        key = canonicalize_name(name)
        return next((e for e in self.entries if e.name == key), None)

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(e.name for e in self.entries)

    def closest(self, name: str) -> Optional[str]:
        close = difflib.get_close_matches(canonicalize_name(name), list(self.names), n=1,
                                          cutoff=0.6)
        return close[0] if close else None


def tags_fit_except_platform(tags: Iterable[Tag], target: Target) -> bool:
    """True if some tag would be accepted by ``target`` were its platform the target's.

    A registry-vouched wheel may carry the build machine's platform, never another Python's
    interpreter or ABI: ``cp39-cp39-linux_x86_64`` is no wheel for python3.12/arm64.
    """
    supported = target.tag_priority()
    platforms = target.platforms
    return any(Tag(t.interpreter, t.abi, p) in supported for t in tags for p in platforms)


# --------------------------------------------------------------------------- dumping

def dump_entry(entry: PackageEntry) -> str:
    """YAML text that :func:`parse_entry` reads back into an equal entry."""
    data = entry.to_data()
    ordered = {k: data[k] for k in FIELD_ORDER if k in data}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=88,
                          default_flow_style=None)
