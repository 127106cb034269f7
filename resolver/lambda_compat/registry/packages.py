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
This module loads; the values are :mod:`~lambda_compat.registry.package_entry`, the checks of
one entry :mod:`~lambda_compat.registry.package_checks`, the YAML nodes
:mod:`~lambda_compat.registry.yamlfile`.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, FrozenSet, Iterator, List, Optional, Tuple

from packaging.specifiers import SpecifierSet

from ..errors import RegistryError, RegistryProblems
from .package_checks import invariant_problems, schema_problems
from .package_entry import Evidence, PackageEntry, PackageRegistry, RegistryProblem
from .yamlfile import compose_yaml, node_line


PACKAGES_DIR = "packages"
SCHEMA_FILE = Path("schema") / "package.schema.json"
VERSION_FILE = "VERSION"
CHANGELOG_FILE = "CHANGELOG.md"
#: Registry data versions: the UTC date of the change and a counter for that day.
VERSION_RE = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})\.(\d+)$")


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
    stamp = None
    schema_known = validation_memo.shipped_valid(root, shipped_files(root))
    if not schema_known:
        stamp = validation_memo.stamp_key(*map(str, shipped_files(root)))
        schema_known = validation_memo.known_valid(stamp)
    registry, problems = check_registry(root, _schema_known_valid=schema_known)
    if problems:
        raise RegistryProblems(problems)
    assert registry is not None
    validation_memo.remember(stamp)
    return registry


def shipped_files(root: Path) -> List[Path]:
    """A registry's schema and entry files (what the shipped stamp covers)."""
    return [root / SCHEMA_FILE] + sorted((root / PACKAGES_DIR).glob("*.y*ml"))


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
    node, data, yaml_problems = compose_yaml(
        text, known_valid=isinstance(validator, _NoSchemaErrors))  # the stamp's bytes
    problems = [RegistryProblem(path, line, message) for line, message in yaml_problems]
    if node is None and not problems:
        return None, [RegistryProblem(path, 1, "empty file: an entry is a mapping with name, "
                                               "versions, kind, explanation, imports, evidence")]
    if problems and data is None:
        return None, problems
    found, flagged = schema_problems(validator, node, data, path)
    problems += found
    if not isinstance(data, dict):
        return None, problems
    problems += invariant_problems(data, node, path, known, flagged)
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
                                line=node_line(node, ["evidence", i]) or 0)
                       for i, e in enumerate(data["evidence"])),
        runtimes=tuple(targets["runtimes"]) if "runtimes" in targets else None,
        arches=tuple(targets["arches"]) if "arches" in targets else None,
        smoke=data.get("smoke"),
        references=tuple(data.get("references", ())),
        pairs=pairs,
        needs=tuple((str(k), str(v)) for k, v in (data.get("needs") or {}).items()),
        fix_distribution=fix.get("distribution"), fix_text=fix.get("text"),
        path=path, line=node_line(node, ["name"]) or 1)
    return entry, []
