"""The checks of one package-registry entry: its schema errors and its invariants.

:func:`schema_problems` turns JSON-Schema errors into problems that say what to write;
:func:`invariant_problems` checks what a schema cannot say (PEP 440, known targets, evidence
inside the claim, module names, the smoke statement). Both place each problem at the line
of the YAML node it concerns.
"""

from __future__ import annotations

import datetime
import difflib
import re
from typing import AbstractSet, Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Set, Tuple

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..targets.facts import suggest_runtime
from .claims import capability_problems, scope_problems
from .package_entry import KINDS, RegistryProblem
from .yamlfile import dotted, node_line

__all__ = ["invariant_problems", "schema_problems"]


def schema_problems(validator: Any, node: Optional[yaml.Node], data: Any, path: str
                    ) -> Tuple[List[RegistryProblem], Set[Tuple[Any, ...]]]:
    """Every schema error as a problem, and the paths they concern (not reported twice)."""
    out = []
    flagged: Set[Tuple[Any, ...]] = set()
    for err in validator.iter_errors(data):
        parts = list(err.absolute_path)
        flagged.add(tuple(parts))
        line = node_line(node, parts)
        where = dotted(parts) or "entry"
        message = f"{where}: {err.message}"
        instance = err.instance
        if err.validator == "additionalProperties" and isinstance(instance, dict):
            allowed = list(err.schema.get("properties", {}))
            for extra in [k for k in instance if k not in allowed]:
                close = difflib.get_close_matches(str(extra), allowed, n=1)
                out.append(RegistryProblem(
                    path, node_line(node, list(parts) + [str(extra)]) or line,
                    f"{dotted(parts + [extra])}: unknown field"
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



#: ``add(path_parts, message)``: records one problem at the line of ``path_parts``.
_Add = Callable[[Sequence[Any], str], None]


def invariant_problems(data: Dict[str, Any], node: Optional[yaml.Node], path: str,
                       known: FrozenSet[Tuple[str, str]],
                       flagged: AbstractSet[Tuple[Any, ...]] = frozenset()
                       ) -> List[RegistryProblem]:
    """What a schema cannot say: PEP 440, known targets, evidence inside the claim.

    Paths the schema already flagged (``flagged``) are not reported a second time.
    """
    out: List[RegistryProblem] = []

    def add(parts: Sequence[Any], message: str) -> None:
        if tuple(parts) not in flagged:
            out.append(RegistryProblem(path, node_line(node, parts), message))

    spec = _versions_problems(data, add)
    runtimes, arches, pairs = _targets_problems(data, known, add)
    _evidence_problems(data, spec, known, runtimes, arches, pairs, add)
    scope_problems(data, spec, known, pairs, runtimes, arches, add)
    capability_problems(data, add)
    _code_problems(data, path, add)
    return out


def _versions_problems(data: Dict[str, Any], add: _Add) -> Optional[SpecifierSet]:
    """``versions`` is a non-empty PEP 440 specifier set; returns it when it parses."""
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
    return spec


def _targets_problems(data: Dict[str, Any], known: FrozenSet[Tuple[str, str]], add: _Add
                      ) -> Tuple[Any, Any, Optional[List[str]]]:
    """``targets`` names known runtime/arch pairs (or known runtimes and arches, once each).

    Returns ``(runtimes, arches, pairs)`` as given (None when not given that way)."""
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
    return runtimes, arches, pairs


def _evidence_problems(data: Dict[str, Any], spec: Optional[SpecifierSet],
                       known: FrozenSet[Tuple[str, str]], runtimes: Any, arches: Any,
                       pairs: Optional[List[str]], add: _Add) -> None:
    """Every evidence record names PEP 440 versions inside the claim, known targets inside
    the entry's targets, and a date that is not in the future."""
    evidence = data.get("evidence")
    if not isinstance(evidence, list):
        return
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


def _code_problems(data: Dict[str, Any], path: str, add: _Add) -> None:
    """``imports`` are module names and ``smoke`` is valid Python."""
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


def _suggest_target(runtime: str, arch: Optional[str],
                    known: FrozenSet[Tuple[str, str]]) -> List[str]:
    """The closest known runtime (or runtime/arch): python3.21 -> python3.12."""
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
