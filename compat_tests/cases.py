"""Compat suite cases as data: ``fixtures/cases/<case>.yaml``, one file per case.

A case names requirements, the targets it runs on and, per target, the verdict lambda-compat
must give (``compatible`` / ``incompatible`` / ``missing``) with its whole set of reason
codes, plus bundle facts (distributions present or absent, version ranges). Expectations are
data written by a person and depend on the target only; where this machine cannot produce
the expected verdict (no interpreter of the target's Python, no native build), the case's
``unproven_here`` rules say what the tool must answer instead, and such cells are unproven.
What this machine has is found by :mod:`compat_tests.local_env`, never by lambda-compat. Files are validated against
``fixtures/cases/case.schema.json``; a bad file is a :class:`CaseError` naming file and line,
raised at collection time.

The registry's optional-extension entries (``registry/packages/*.yaml``) become cases too
(:func:`registry_cases`): each entry's evidence says which versions on which targets were
verified, and each must build and import there.
"""

from __future__ import annotations

import fnmatch
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import jsonschema
import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from . import local_env

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "fixtures" / "cases"
SCHEMA_PATH = CASES_DIR / "case.schema.json"
VERDICTS = ("compatible", "incompatible", "missing")


class CaseError(Exception):
    """A case file is invalid. ``str()`` is ``path:line: message``."""

    def __init__(self, path: Path, message: str, line: Optional[int] = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class HostFacts:
    """What this machine can do, for ``unproven_here`` rules only (never for expectations).

    Found by :mod:`compat_tests.local_env`, which does not use lambda-compat's code: the
    tool under test must not decide what the suite expects of it.
    """

    machine: str

    @staticmethod
    def here() -> "HostFacts":
        return HostFacts(machine=local_env.this_machine())

    def host_python(self, version: Tuple[int, int]) -> bool:
        return local_env.has_python(version)

    def native_build(self, version: Tuple[int, int], arch: str,
                     commands: Sequence[str]) -> bool:
        return local_env.native_build(version, arch, commands)

    def target_root(self, version: Tuple[int, int], arch: str) -> bool:
        return local_env.target_root(version, arch)


#: ``when`` keys about this machine: allowed in ``unproven_here`` only, and only as ``false``
#: (the target keys ``targets``, ``python``, ``arch`` are allowed everywhere).
HOST_KEYS = ("host_python", "native_build", "target_root")


@dataclass(frozen=True)
class Rule:
    """One expectation: applies where ``when`` matches; first matching rule wins.

    ``reasons`` is the whole set of blocking codes the tool must give (empty for
    compatible); ``why`` is the person's reason for the expectation.
    """

    verdict: str
    when: Tuple[Tuple[str, Any], ...] = ()
    reasons: Tuple[str, ...] = ()
    detail: Optional[str] = None
    present: Tuple[str, ...] = ()
    absent: Tuple[str, ...] = ()
    versions: Tuple[Tuple[str, str], ...] = ()
    why: Optional[str] = None
    line: Optional[int] = None
    #: unproven_here only: the expected verdict, when this machine produces and proves it,
    #: is accepted too (the cell is then judged by ``expect``)
    unless_proven: bool = False

    @property
    def reason(self) -> Optional[str]:
        return ", ".join(self.reasons) or None

    def matches(self, target, host: Optional[HostFacts] = None,
                build_requires: Sequence[str] = ()) -> bool:
        for key, value in self.when:
            if key == "targets":
                if not any(_glob_match(target.name, g) for g in value):
                    return False
            elif key == "python":
                if Version(f"{target.python_version[0]}.{target.python_version[1]}") not in \
                        SpecifierSet(value):
                    return False
            elif key == "arch":
                if target.arch != value:
                    return False
            elif key == "native_build":
                if host is None or host.native_build(target.python_version, target.arch,
                                                     build_requires) != value:
                    return False
            elif key == "target_root":
                if host is None or host.target_root(target.python_version,
                                                    target.arch) != value:
                    return False
            elif key == "host_python":
                if host is None or host.host_python(target.python_version) != value:
                    return False
        return True

    def describe(self) -> str:
        text = self.verdict + (f" ({self.reason})" if self.reasons else "")
        if self.detail:
            text += f" mentioning {self.detail!r}"
        return text


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    description: str
    requirements: Tuple[str, ...]
    subject: str
    rules: Tuple[Rule, ...]
    targets: Tuple[str, ...] = ("*",)
    fast: Tuple[str, ...] = ()
    slow: bool = False
    build_requires: Tuple[str, ...] = ()
    needs_paths: Tuple[str, ...] = ()
    pip: Tuple[Tuple[str, Any], ...] = ()
    origin: str = "case"          # "case" or "registry"
    #: what the tool must answer instead where this machine cannot produce (and so cannot
    #: prove) the expected verdict; such cells are unproven, never passed
    unproven_here: Tuple[Rule, ...] = ()

    def applies_to(self, target_name: str) -> bool:
        return any(_glob_match(target_name, g) for g in self.targets)

    def is_fast(self, target_name: str) -> bool:
        return any(_glob_match(target_name, g) for g in self.fast)

    def missing_paths(self) -> List[str]:
        return [p for p in self.needs_paths if not Path(p).exists()]

    def expectation(self, target, host: Optional[HostFacts] = None) -> Rule:
        """The verdict a person expects on ``target``: depends on the target only."""
        for rule in self.rules:
            if rule.matches(target):
                return rule
        raise CaseError(self.path, f"no rule under 'expect' applies to {target.name}; add a "
                                   f"last rule without 'when' or narrow 'targets'")

    def here(self, target, host: HostFacts) -> Optional[Rule]:
        """The ``unproven_here`` rule that applies on this machine, if any."""
        for rule in self.unproven_here:
            if rule.matches(target, host, self.build_requires):
                return rule
        return None

    def requirements_text(self) -> str:
        return "\n".join(self.requirements) + "\n"

    @property
    def pip_options(self) -> Dict[str, Any]:
        return dict(self.pip)


def _glob_match(target_name: str, pattern: str) -> bool:
    return pattern == "*" or fnmatch.fnmatchcase(target_name, pattern)


# --------------------------------------------------------------------------- loading

@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _line_of(node: Optional[yaml.Node], path: Sequence[Any]) -> Optional[int]:
    """1-based line of the YAML node at ``path`` (or of the deepest ancestor found)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) \
                and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def _rule(path: Path, node, section: str, i: int, raw: dict) -> Rule:
    """One rule of ``expect`` or ``unproven_here``, checked beyond the schema."""
    when = raw.get("when", {})
    host_keys = [k for k in HOST_KEYS if k in when]
    if section == "expect" and host_keys:
        raise CaseError(path, f"expect/{i}/when/{host_keys[0]}: an expectation may not depend "
                              f"on this machine; keep the expected verdict for the target and "
                              f"move what this machine answers instead to 'unproven_here' "
                              f"(with {host_keys[0]}: false; see case.schema.json)",
                        _line_of(node, [section, i, "when", host_keys[0]]))
    if section == "unproven_here" and (not host_keys or any(when[k] for k in host_keys)):
        raise CaseError(path, f"unproven_here/{i}/when: needs host_python: false, "
                              f"native_build: false or target_root: false (what this "
                              f"machine lacks)",
                        _line_of(node, [section, i]))
    if section == "expect" and raw.get("unless_proven"):
        raise CaseError(path, f"expect/{i}/unless_proven: only an unproven_here rule can "
                              f"accept the expected verdict where it is proven; an "
                              f"expectation is proven or refuted as it is",
                        _line_of(node, [section, i, "unless_proven"]))
    if "python" in when:
        try:
            SpecifierSet(when["python"])
        except InvalidSpecifier:
            raise CaseError(path, f"{section}/{i}/when/python: {when['python']!r} is not a "
                                  f"PEP 440 specifier",
                            _line_of(node, [section, i, "when", "python"])) from None
    for dist, spec in raw.get("versions", {}).items():
        try:
            SpecifierSet(spec)
        except InvalidSpecifier:
            raise CaseError(path, f"{section}/{i}/versions/{dist}: {spec!r} is not a PEP 440 "
                                  f"specifier",
                            _line_of(node, [section, i, "versions", dist])) from None
    reasons = raw.get("reasons") or ([raw["reason"]] if raw.get("reason") else [])
    if raw["verdict"] != "compatible" and not reasons:
        raise CaseError(path, f"{section}/{i}: 'reason' is a required property for "
                              f"{raw['verdict']}", _line_of(node, [section, i]))
    return Rule(
        verdict=raw["verdict"], when=tuple(sorted(when.items())),
        reasons=tuple(sorted(set(reasons))), detail=raw.get("detail"),
        present=tuple(canonicalize_name(n) for n in raw.get("present", ())),
        absent=tuple(canonicalize_name(n) for n in raw.get("absent", ())),
        versions=tuple((canonicalize_name(k), v) for k, v in raw.get("versions", {}).items()),
        why=raw.get("why"), line=_line_of(node, [section, i]),
        unless_proven=bool(raw.get("unless_proven")))


def load_case(path: Path) -> Case:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CaseError(path, f"cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise CaseError(path, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                        mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise CaseError(path, "a case file is a mapping (schema, description, requirements, "
                              "expect)", 1)
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(data),
                    key=lambda e: (len(e.path), list(map(str, e.path))))
    if errors:
        e = errors[0]
        where = "/".join(map(str, e.path)) or "(top level)"
        raise CaseError(path, f"{where}: {e.message}", _line_of(node, list(e.path)))
    requirements = tuple(data["requirements"])
    names = []
    for i, line in enumerate(requirements):
        if line.startswith("-"):
            continue  # an option line of the requirements file (--require-hashes, -i URL)
        try:
            # per-requirement options (--hash=...) are pip's, not part of the requirement
            names.append(canonicalize_name(Requirement(line.split(" --")[0]).name))
        except InvalidRequirement as exc:
            raise CaseError(path, f"requirements/{i}: {exc}",
                            _line_of(node, ["requirements", i])) from None
    if not names and not data.get("subject"):
        raise CaseError(path, "requirements: no requirement, only options",
                        _line_of(node, ["requirements"]))
    subject = canonicalize_name(data.get("subject") or names[0])
    rules = tuple(_rule(path, node, "expect", i, raw)
                  for i, raw in enumerate(data["expect"]))
    here = tuple(_rule(path, node, "unproven_here", i, raw)
                 for i, raw in enumerate(data.get("unproven_here", ())))
    return Case(
        name=path.stem, path=path, description=" ".join(data["description"].split()),
        requirements=requirements, subject=subject, rules=rules, unproven_here=here,
        targets=tuple(data.get("targets", ["*"])), fast=tuple(data.get("fast", ())),
        slow=bool(data.get("slow", False)),
        build_requires=tuple(data.get("build_requires", ())),
        needs_paths=tuple(data.get("needs_paths", ())),
        pip=tuple(sorted(data.get("pip", {}).items(), key=lambda kv: kv[0])))


def load_cases(directory: Path = CASES_DIR) -> List[Case]:
    """Every ``*.yaml`` case in ``directory``, sorted by name."""
    return [load_case(p) for p in sorted(Path(directory).glob("*.yaml"))]


# --------------------------------------------------------------------------- registry

#: Registry cells in the compat_fast slice (CI): an arm64 import through qemu of a wheel the
#: builder accepted because of the entry.
REGISTRY_FAST: Dict[str, Tuple[str, ...]] = {"msgpack": ("python3.11/arm64",)}

#: Where no interpreter of the target's Python exists here, no sdist can be built: the tool
#: must say so, and the registry cell is unproven here.
_REGISTRY_HERE = (Rule(verdict="missing", when=(("host_python", False),),
                       reasons=("no-wheel",), detail="no CPython 3.",
                       why="no interpreter of the target's Python here to build the sdist"),)


def registry_cases(registry: Optional[Path] = None, *, all_versions: bool = False
                   ) -> List[Case]:
    """Cases from ``registry/packages/<name>.yaml`` entries: the newest verified version of
    each (every verified version with ``all_versions``).

    Each evidence item names versions and the targets they were verified on; the case
    ``registry-<name>-<version>`` builds ``name==version`` on exactly those targets and
    expects it compatible, with the distribution present (the entry's evidence, written by a
    person from a test run). The builder accepts such a wheel on a foreign machine *because
    of the entry*, so the cell proves nothing until it is imported there: without an import
    (arm64 where no stand-in root of that Python exists) it is unproven, never passed.
    Every version and the compiler-less path are proven by the entries' own tests
    (compat_tests/test_registry_entries.py); here they take their place in the grid.
    Entries are read raw (their loader validates them; a broken entry fails the registry's
    own tests, and is reported here as a CaseError naming the file).
    """
    root = Path(registry) if registry else ROOT / "registry"
    out = []
    for path in sorted((root / "packages").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise CaseError(path, f"registry entry unreadable: {exc}") from None
        if not isinstance(data, dict) or "name" not in data:
            raise CaseError(path, "registry entry without a name")
        if data.get("kind") == "runtime-capability":
            # not a "builds and imports" claim: proven by test_runtime_capabilities.py from
            # the project's real wheels, on every target of its evidence
            continue
        name = canonicalize_name(str(data["name"]))
        evidence = data.get("evidence")
        targets_of: Dict[str, List[str]] = {}
        for ev in evidence if isinstance(evidence, list) else []:
            for version in ev.get("versions", []) if isinstance(ev, dict) else []:
                bucket = targets_of.setdefault(str(version), [])
                bucket += [str(t) for t in ev.get("targets", []) if str(t) not in bucket]
        targets_of = {v: t for v, t in targets_of.items() if t}
        if not targets_of:
            raise CaseError(path, "registry entry has no evidence (versions and targets); "
                                  "every entry must name what was verified")
        try:
            versions = sorted(targets_of, key=Version)
        except ValueError:
            raise CaseError(path, f"evidence versions {sorted(targets_of)} are not "
                                  f"versions") from None
        for version in versions if all_versions else versions[-1:]:
            out.append(Case(
                name=f"registry-{name}-{version}", path=path,
                description=f"registry entry {name} ({data.get('kind', '?')}): "
                            + " ".join(str(data.get("explanation", "")).split()),
                requirements=(f"{name}=={version}",), subject=name,
                rules=(Rule(verdict="compatible", present=(name,),
                            versions=((name, f"=={version}"),),
                            why=f"the entry's evidence: a person's record that "
                                f"test_registry_entries.py passed for {name} {version} there "
                                f"(this cell proves it only by its own import)"),),
                targets=tuple(targets_of[version]), slow=True, origin="registry",
                fast=REGISTRY_FAST.get(name, ()), unproven_here=_REGISTRY_HERE))
    return out


def all_cases(cases_dir: Path = CASES_DIR, registry: Optional[Path] = None) -> List[Case]:
    cases = load_cases(cases_dir) + registry_cases(registry)
    seen: Dict[str, Path] = {}
    for c in cases:
        if c.name in seen:
            raise CaseError(c.path, f"case name {c.name!r} also used by {seen[c.name]}")
        seen[c.name] = c.path
    return cases


def iter_cells(cases: Iterable[Case], targets: Sequence[Any]) -> Iterable[Tuple[Case, Any]]:
    for case in cases:
        for target in targets:
            if case.applies_to(target.name):
                yield case, target
