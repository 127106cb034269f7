"""The package registry: distributions whose wheels carry a platform tag they do not need.

Some projects declare C extensions as optional: without a compiler the build falls back to
pure Python, yet the wheel keeps the build machine's platform tag (``cp312-cp312-linux_x86_64``).
Built on x86_64 for an arm64 function, such a wheel is rejected by its tag although it holds
nothing but Python. ``registry/packages/<name>.yaml`` records, per project, the versions and
targets where this is so, why, and the compat test that proves it.

The builder consults the registry only after building without a compiler, and accepts a wheel
only if an entry matches name, version and target *and* the wheel holds no native file
(verified by the builder, never trusted).

Loading checks every invariant and reports *every* problem with its file and line (the YAML is
composed to nodes, so a JSON-Schema error path maps back to the line it came from):
schema, normalized and unique names, valid specifiers, evidence inside the claim, known
targets (from ``registry/runtimes.yaml``), evidence present, a well-formed ``VERSION``.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import (AbstractSet, Any, Dict, FrozenSet, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Set, Tuple)

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..errors import RegistryError, RegistryProblems
from .claims import capability_problems, scope_problems
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

PACKAGES_DIR = "packages"
SCHEMA_FILE = Path("schema") / "package.schema.json"
VERSION_FILE = "VERSION"
CHANGELOG_FILE = "CHANGELOG.md"
#: Registry data versions: the UTC date of the change and a counter for that day.
VERSION_RE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})\.(\d+)$")
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


# --------------------------------------------------------------------------- loading

def load_packages(root: Optional[os.PathLike] = None) -> PackageRegistry:
    """Load and check the registry at ``root`` (the shipped one when None).

    Raises :class:`~lambda_compat.errors.RegistryProblems` listing every problem found.
    """
    if root is None:
        return _default()
    registry, problems = check_registry(Path(root))
    if problems:
        raise RegistryProblems(problems)
    assert registry is not None
    return registry


@functools.lru_cache(maxsize=1)
def _default() -> PackageRegistry:
    from . import validation_memo
    from .runtimes import registry_dir
    root = registry_dir()
    files = sorted(str(p) for p in (root / PACKAGES_DIR).glob("*.y*ml"))
    stamp = validation_memo.stamp_key(str(root / SCHEMA_FILE), *files)
    schema_known = validation_memo.known_valid(stamp)
    registry, problems = check_registry(root, _schema_known_valid=schema_known)
    if problems:
        raise RegistryProblems(problems)
    assert registry is not None
    validation_memo.remember(stamp)
    return registry


class _NoSchemaErrors:
    """Stands in for the schema validator when these exact files are known to pass it."""

    @staticmethod
    def iter_errors(data: Any) -> Iterator[Any]:
        return iter(())


load_packages.cache_clear = _default.cache_clear  # type: ignore[attr-defined]


def check_registry(root: Path, *, changelog: bool = False, _schema_known_valid: bool = False
                   ) -> Tuple[Optional[PackageRegistry], Tuple[RegistryProblem, ...]]:
    """Every problem of the registry at ``root``; the registry itself when there are none.

    ``root`` holds ``VERSION``, ``packages/*.yaml`` and optionally its own
    ``schema/package.schema.json`` and ``runtimes.yaml`` (else the shipped ones are used).
    ``changelog=True`` (``registry validate``) also requires ``CHANGELOG.md`` to have a
    section for the current VERSION.
    """
    root = Path(root)
    problems: List[RegistryProblem] = []
    if not (root / PACKAGES_DIR).is_dir():
        return None, (RegistryProblem(str(root), None,
                                      f"not a package registry: no {PACKAGES_DIR}/ directory "
                                      f"(expected {root / PACKAGES_DIR})"),)
    version = _read_version(root, problems)
    if changelog and version:
        _check_changelog(root, version, problems)
    try:
        validator = (_NoSchemaErrors() if _schema_known_valid
                     else _validator(str(_schema_path(root))))
        known = known_targets(root)
    except RegistryError as exc:
        return None, tuple(problems) + (RegistryProblem(exc.path, exc.line, exc.message),)
    entries: List[PackageEntry] = []
    first_seen: Dict[str, Tuple[str, int]] = {}
    files = sorted(p for p in (root / PACKAGES_DIR).iterdir()
                   if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))
    for path in files:
        entry, file_problems = parse_entry_file(path, validator=validator, known=known)
        problems.extend(file_problems)
        if entry is None:
            continue
        if entry.name in first_seen:
            other, other_line = first_seen[entry.name]
            problems.append(RegistryProblem(
                entry.path, entry.line,
                f"duplicate entry for {entry.name!r}: {other}:{other_line} already describes it; "
                f"keep one file per project (merge the evidence into it)"))
            continue
        first_seen[entry.name] = (entry.path, entry.line)
        if not file_problems:
            entries.append(entry)
    if problems:
        return None, tuple(sorted(problems, key=lambda p: (p.path, p.line or 0, p.message)))
    return PackageRegistry(version=version or "", entries=tuple(entries), root=str(root)), ()


def _read_version(root: Path, problems: List[RegistryProblem]) -> Optional[str]:
    path = root / VERSION_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        problems.append(RegistryProblem(str(path), None,
                                        "missing: the registry needs a VERSION file "
                                        "(YYYY.MM.DD.N, bumped on every data change)"))
        return None
    version = text.strip()
    m = VERSION_RE.match(version)
    if not m:
        problems.append(RegistryProblem(str(path), 1,
                                        f"{version!r} is not a registry version: write "
                                        f"YYYY.MM.DD.N (the date of the change, N counting "
                                        f"changes that day from 0)"))
        return None
    try:
        datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        problems.append(RegistryProblem(str(path), 1, f"{version!r}: not a real date"))
        return None
    return version


def changelog_versions(text: str) -> List[Tuple[str, int]]:
    """(version, line) of every ``## <version>`` heading of a registry changelog."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^##\s+(\S+)", line)
        if m:
            out.append((m.group(1), i))
    return out


def _check_changelog(root: Path, version: str, problems: List[RegistryProblem]) -> None:
    path = root / CHANGELOG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        problems.append(RegistryProblem(str(path), None,
                                        f"missing: add {CHANGELOG_FILE} with a '## {version}' "
                                        f"section saying what changed"))
        return
    headings = changelog_versions(text)
    if not headings:
        problems.append(RegistryProblem(str(path), 1, f"no '## <version>' section; add "
                                                      f"'## {version}' at the top"))
        return
    newest, line = headings[0]
    if newest != version:
        problems.append(RegistryProblem(
            str(path), line,
            f"the newest section is {newest} but VERSION is {version}: every data change "
            f"bumps VERSION and adds a '## {version}' section above the others"))
    seen: Dict[str, int] = {}
    previous: Optional[Tuple[int, ...]] = None
    for v, ln in headings:
        m = VERSION_RE.match(v)
        if not m:
            problems.append(RegistryProblem(str(path), ln,
                                            f"section heading {v!r} is not a registry version "
                                            f"(YYYY.MM.DD.N)"))
            continue
        if v in seen:
            problems.append(RegistryProblem(str(path), ln,
                                            f"section {v} appears twice (also line {seen[v]})"))
        seen[v] = ln
        key = tuple(int(g) for g in m.groups())
        if previous is not None and key >= previous:
            problems.append(RegistryProblem(str(path), ln,
                                            f"section {v} is out of order: newest first"))
        previous = key


def _schema_path(root: Path) -> Path:
    own = root / SCHEMA_FILE
    if own.is_file():
        return own
    from .runtimes import registry_dir
    return registry_dir() / SCHEMA_FILE


@functools.lru_cache(maxsize=None)
def _validator(schema_path: str) -> Any:
    try:
        with open(schema_path, encoding="utf-8") as f:
            schema = json.load(f)
    except OSError as e:
        raise RegistryError(f"cannot read the package schema: {e.strerror or e}",
                            path=schema_path) from None
    except ValueError as e:
        raise RegistryError(f"the package schema is not valid JSON: {e}", path=schema_path) from None
    import jsonschema

    from .runtimes import registry_dir
    shipped = os.path.abspath(schema_path) == os.path.abspath(registry_dir() / SCHEMA_FILE)
    try:
        # The shipped schema's own validity is a test (tests/test_runtimes.py), not a per-run
        # cost; a registry's own schema is checked against the meta-schema.
        if not shipped:
            jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise RegistryError(f"the package schema is invalid: {e.message}",
                            path=schema_path) from None
    return jsonschema.Draft202012Validator(schema)


def known_targets(root: Optional[Path] = None) -> FrozenSet[Tuple[str, str]]:
    """(runtime, arch) pairs of ``root/runtimes.yaml``, else of the shipped runtime registry."""
    from .runtimes import load_runtimes, registry_dir
    own = Path(root) / "runtimes.yaml" if root is not None else None
    if own is not None and (not own.is_file()
                            or own.resolve() == (registry_dir() / "runtimes.yaml").resolve()):
        own = None   # the shipped runtime registry, loaded once per process
    runtimes = load_runtimes(own)
    return frozenset((t.runtime, t.arch) for t in runtimes.targets)


def default_validator() -> Any:
    from .runtimes import registry_dir
    return _validator(str(registry_dir() / SCHEMA_FILE))


# --------------------------------------------------------------------------- one file

class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: ``date: 2026-11-21`` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _compose(text: str, path: str) -> Tuple[Optional[yaml.Node], Any, List[RegistryProblem]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        context = e.context or ""
        if e.context_mark is not None and e.problem_mark is not None \
                and e.context_mark.line != e.problem_mark.line:
            context += f" started on line {e.context_mark.line + 1}"
        problem = ": ".join(str(x) for x in (context, e.problem) if x)
        return None, None, [RegistryProblem(path, mark.line + 1 if mark else None,
                                            f"not valid YAML: {problem or e}")]
    except yaml.YAMLError as e:
        return None, None, [RegistryProblem(path, None, f"not valid YAML: {e}")]
    finally:
        loader.dispose()
    return node, data, _duplicate_keys(node, path)


def _duplicate_keys(node: Optional[yaml.Node], path: str) -> List[RegistryProblem]:
    out: List[RegistryProblem] = []
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: Dict[Any, int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    line = k.start_mark.line + 1
                    if k.value in seen:
                        out.append(RegistryProblem(path, line,
                                                   f"duplicate key {k.value!r} (first given "
                                                   f"on line {seen[k.value]})"))
                    else:
                        seen[k.value] = line
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return out


def _line(root: Optional[yaml.Node], parts: Sequence[Any]) -> Optional[int]:
    """1-based line of the value at ``parts``; a mapping value is located by its key."""
    if root is None:
        return None
    node = root
    line = root.start_mark.line + 1
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _key_line(root: Optional[yaml.Node], parts: Sequence[Any], key: str) -> Optional[int]:
    return _line(root, list(parts) + [key])


def _where(parts: Sequence[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _schema_problems(validator: Any, node: Optional[yaml.Node], data: Any, path: str
                     ) -> Tuple[List[RegistryProblem], Set[Tuple[Any, ...]]]:
    """Every schema error as a problem, and the paths they concern (not reported twice)."""
    out = []
    flagged: Set[Tuple[Any, ...]] = set()
    for err in validator.iter_errors(data):
        parts = list(err.absolute_path)
        flagged.add(tuple(parts))
        line = _line(node, parts)
        where = _where(parts) or "entry"
        message = f"{where}: {err.message}"
        instance = err.instance
        if err.validator == "additionalProperties" and isinstance(instance, dict):
            allowed = list(err.schema.get("properties", {}))
            for extra in [k for k in instance if k not in allowed]:
                close = difflib.get_close_matches(str(extra), allowed, n=1)
                out.append(RegistryProblem(
                    path, _key_line(node, parts, str(extra)) or line,
                    f"{_where(parts + [extra])}: unknown field"
                    + (f"; did you mean {close[0]!r}?" if close else "")
                    + f" (fields here: {', '.join(allowed)})"))
            continue
        if err.validator == "required" and isinstance(instance, dict):
            missing = [k for k in err.validator_value if k not in instance]
            for key in missing:
                if key == "evidence":
                    message = ("missing evidence: every entry names the versions and targets "
                               "its compat test proved, the test and the date "
                               "(see CONTRIBUTING.md, 'Adding a registry entry')")
                elif key == "targets":
                    message = ("missing targets: list the runtime/arch pairs the evidence "
                               "proves, e.g. targets: [python3.12/x86_64] (an entry without "
                               "them would claim every target)")
                else:
                    message = f"{where}: missing required field {key!r}"
                out.append(RegistryProblem(path, line, message))
            continue
        if parts == ["kind"] and err.validator == "enum":
            close = difflib.get_close_matches(str(instance), list(KINDS), n=1, cutoff=0.5)
            message = (f"kind: unknown kind {instance!r}"
                       + (f"; did you mean {close[0]!r}?" if close else "")
                       + f" Known kinds: {', '.join(KINDS)}.")
        elif parts == ["evidence"] and err.validator == "minItems":
            message = ("evidence is empty: every entry names the versions and targets its "
                       "compat test proved, the test and the date")
        elif (len(parts) == 3 and parts[0] == "evidence" and parts[2] == "test"
              and err.validator == "pattern"):
            message = (f"{where}: {instance!r} is not a compat test; write "
                       f"'compat_tests/<file>.py::<function>' (the test that proves the entry)")
        elif parts == ["name"] and err.validator == "pattern" and isinstance(instance, str):
            message = (f"name {instance!r} is not a normalized project name (PEP 503); "
                       f"write {canonicalize_name(instance)!r}")
        elif isinstance(instance, float):
            message += " (quote version numbers: \"3.10\" is not 3.1)"
        elif isinstance(instance, (datetime.date, datetime.datetime)):
            message += " (quote dates: \"YYYY-MM-DD\")"
        out.append(RegistryProblem(path, line, message))
    return out, flagged


def parse_entry_file(path: Path, *, validator: Any = None,
                     known: Optional[FrozenSet[Tuple[str, str]]] = None
                     ) -> Tuple[Optional[PackageEntry], List[RegistryProblem]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        return None, [RegistryProblem(str(path), None, f"cannot read: {e.strerror or e}")]
    except UnicodeDecodeError as e:
        return None, [RegistryProblem(str(path), None, f"not UTF-8 text: {e.reason}")]
    entry, problems = parse_entry(text, str(path), validator=validator, known=known)
    if entry is not None and Path(path).name != f"{entry.name}.yaml":
        # The entry is returned with the problem, so that duplicates are still found.
        problems.append(RegistryProblem(
            str(path), entry.line,
            f"the file for {entry.name!r} must be named {entry.name}.yaml (one file per "
            f"project, named by its normalized name)"))
    return entry, problems


def parse_entry(text: str, path: str = "<entry>", *, validator: Any = None,
                known: Optional[FrozenSet[Tuple[str, str]]] = None
                ) -> Tuple[Optional[PackageEntry], List[RegistryProblem]]:
    """Parse and check one entry; (entry, []) or (None, every problem found)."""
    validator = validator or default_validator()
    known = known if known is not None else known_targets()
    node, data, problems = _compose(text, path)
    if node is None and not problems:
        return None, [RegistryProblem(path, 1, "empty file: an entry is a mapping with name, "
                                               "versions, kind, explanation, imports, evidence")]
    if problems and data is None:
        return None, problems
    schema_problems, flagged = _schema_problems(validator, node, data, path)
    problems += schema_problems
    if not isinstance(data, dict):
        return None, problems
    problems += _invariant_problems(data, node, path, known, flagged)
    if problems:
        return None, sorted(problems, key=lambda p: (p.line or 0, p.message))
    targets = data.get("targets") or {}
    pairs = tuple(targets) if isinstance(targets, list) else None
    if pairs is not None:
        targets = {}
    fix = data.get("fix") or {}
    entry = PackageEntry(
        name=data["name"], versions=SpecifierSet(data["versions"]), kind=data["kind"],
        explanation=" ".join(data["explanation"].split()),
        imports=tuple(data["imports"]),
        evidence=tuple(Evidence(versions=tuple(e["versions"]), targets=tuple(e["targets"]),
                                test=e["test"], date=e["date"],
                                line=_line(node, ["evidence", i]) or 0)
                       for i, e in enumerate(data["evidence"])),
        runtimes=tuple(targets["runtimes"]) if "runtimes" in targets else None,
        arches=tuple(targets["arches"]) if "arches" in targets else None,
        smoke=data.get("smoke"),
        references=tuple(data.get("references", ())),
        pairs=pairs,
        needs=tuple((str(k), str(v)) for k, v in (data.get("needs") or {}).items()),
        fix_distribution=fix.get("distribution"), fix_text=fix.get("text"),
        path=path, line=_line(node, ["name"]) or 1)
    return entry, []


def _invariant_problems(data: Dict[str, Any], node: Optional[yaml.Node], path: str,
                        known: FrozenSet[Tuple[str, str]],
                        flagged: AbstractSet[Tuple[Any, ...]] = frozenset()
                        ) -> List[RegistryProblem]:
    """What a schema cannot say: PEP 440, known targets, evidence inside the claim.

    Paths the schema already flagged (``flagged``) are not reported a second time.
    """
    out: List[RegistryProblem] = []

    def add(parts: Sequence[Any], message: str) -> None:
        if tuple(parts) not in flagged:
            out.append(RegistryProblem(path, _line(node, parts), message))

    spec: Optional[SpecifierSet] = None
    versions = data.get("versions")
    if isinstance(versions, str):
        try:
            spec = SpecifierSet(versions)
        except InvalidSpecifier:
            add(["versions"], f"versions: {versions!r} is not a PEP 440 specifier set; write "
                              f"e.g. '>=5.1,<7' (comma-separated clauses, no 'and', no spaces "
                              f"inside a version)")
        else:
            if not str(spec):
                add(["versions"], "versions: an empty specifier claims every version ever "
                                  "released; give the range the evidence supports")
    known_runtimes = sorted({r for r, _ in known}, key=_runtime_key)
    known_arches = sorted({a for _, a in known})
    targets = data.get("targets")
    runtimes = arches = None
    pairs: Optional[List[str]] = None
    if isinstance(targets, list):
        pairs = [t for t in targets if isinstance(t, str) and "/" in t]
        for i, t in enumerate(targets):
            if isinstance(t, str) and "/" in t and tuple(t.split("/", 1)) not in known:
                rt, ar = t.split("/", 1)
                close = _suggest_target(rt, ar, known)
                add(["targets", i], f"targets[{i}]: unknown target {t!r}"
                    + (f"; did you mean {close[0]!r}?" if close else "")
                    + " (targets are runtime/arch pairs of registry/runtimes.yaml)")
    if isinstance(targets, dict):
        runtimes = targets.get("runtimes")
        arches = targets.get("arches")
        for key, values, valid in (("runtimes", runtimes, known_runtimes),
                                   ("arches", arches, known_arches)):
            if not isinstance(values, list):
                continue
            seen = set()
            for i, value in enumerate(values):
                if not isinstance(value, str):
                    continue
                if value not in valid:
                    close = (_suggest_target(value, None, known) if key == "runtimes"
                             else difflib.get_close_matches(value, valid, n=1, cutoff=0.5))
                    add(["targets", key, i],
                        f"targets.{key}[{i}]: unknown {key[:-1] if key != 'arches' else 'arch'} "
                        f"{value!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                        + f" Known: {', '.join(valid)}.")
                if value in seen:
                    add(["targets", key, i], f"targets.{key}[{i}]: {value!r} is listed twice")
                seen.add(value)
    evidence = data.get("evidence")
    if isinstance(evidence, list):
        for i, ev in enumerate(evidence):
            if not isinstance(ev, dict):
                continue
            for j, v in enumerate(ev.get("versions") or []):
                if not isinstance(v, str):
                    continue
                try:
                    parsed = Version(v)
                except InvalidVersion:
                    add(["evidence", i, "versions", j],
                        f"evidence[{i}].versions[{j}]: {v!r} is not a PEP 440 version")
                    continue
                if spec is not None and str(spec) and not spec.contains(parsed, prereleases=True):
                    add(["evidence", i, "versions", j],
                        f"evidence[{i}].versions[{j}]: {v} is outside versions {spec}; "
                        f"evidence must be for versions the entry claims")
            for j, t in enumerate(ev.get("targets") or []):
                if not isinstance(t, str) or "/" not in t:
                    continue
                runtime, arch = t.split("/", 1)
                if (runtime, arch) not in known:
                    close = _suggest_target(runtime, arch, known)
                    add(["evidence", i, "targets", j],
                        f"evidence[{i}].targets[{j}]: unknown target {t!r}"
                        + (f"; did you mean {close[0]!r}?" if close else "")
                        + " (targets are runtime/arch pairs of registry/runtimes.yaml)")
                elif ((isinstance(runtimes, list) and runtime not in runtimes)
                      or (isinstance(arches, list) and arch not in arches)
                      or (pairs is not None and t not in pairs)):
                    add(["evidence", i, "targets", j],
                        f"evidence[{i}].targets[{j}]: {t} is outside the entry's targets")
            date = ev.get("date")
            if isinstance(date, str):
                try:
                    day = datetime.date.fromisoformat(date)
                except ValueError:
                    add(["evidence", i, "date"],
                        f"evidence[{i}].date: {date!r} is not a date (YYYY-MM-DD)")
                else:
                    if day > datetime.date.today() + datetime.timedelta(days=1):
                        add(["evidence", i, "date"],
                            f"evidence[{i}].date: {date} is in the future")
    scope_problems(data, spec, known, pairs, runtimes, arches, add)
    capability_problems(data, add)
    imports = data.get("imports")
    if isinstance(imports, list):
        for i, module in enumerate(imports):
            if isinstance(module, str) and not all(p.isidentifier() for p in module.split(".")):
                add(["imports", i], f"imports[{i}]: {module!r} is not a module name")
    smoke = data.get("smoke")
    if isinstance(smoke, str):
        try:
            compile(smoke, f"{path}:smoke", "exec")
        except SyntaxError as e:
            add(["smoke"], f"smoke: not valid Python ({e.msg})")
    return out


def _suggest_target(runtime: str, arch: Optional[str],
                    known: FrozenSet[Tuple[str, str]]) -> List[str]:
    """The closest known runtime (or runtime/arch): python3.21 -> python3.12."""
    from ..targets.facts import suggest_runtime
    runtimes = tuple(sorted({r for r, _ in known}, key=_runtime_key))
    best = runtimes and suggest_runtime(runtime, runtimes)
    if not best:
        return []
    if arch is None:
        return [best]
    arches = sorted(a for r, a in known if r == best)
    if arch in arches:
        return [f"{best}/{arch}"]
    close = difflib.get_close_matches(arch, arches, n=1, cutoff=0.3)
    return [f"{best}/{close[0]}"] if close else []


def _runtime_key(runtime: str) -> Tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", runtime))


# --------------------------------------------------------------------------- dumping

def dump_entry(entry: PackageEntry) -> str:
    """YAML text that :func:`parse_entry` reads back into an equal entry."""
    data = entry.to_data()
    ordered = {k: data[k] for k in FIELD_ORDER if k in data}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=88,
                          default_flow_style=None)
