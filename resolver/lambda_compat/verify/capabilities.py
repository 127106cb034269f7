"""Runtime capabilities: packages that need more of the runtime itself than it has.

Some packages install everywhere but refuse to work on a runtime whose own Python modules are
too old: chromadb raises at import when ``sqlite3.sqlite_version_info < (3, 35, 0)``, and the
Amazon Linux 2 runtimes' sqlite3 is 3.7.17. The package registry records such packages as
``kind: runtime-capability`` entries (what they ``need``, their ``fix``, the evidence), and
``registry/runtimes.yaml`` records each target's ``capabilities`` (the versions of the
runtime's own sqlite3 and ssl libraries, with their sources).

:func:`capability_findings` judges the distributions visible on a target against both, by the
verdict policy (docs/check.md): a need the runtime does not meet is an error with the entry's
fix; a need judged against a capability nobody recorded (or marked unverified) is an error
naming the fact to verify; a bundle that already holds the fix's distribution gets a warning
(the fix works only if the function uses it as the fix says).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from ..targets.target import Target
from .wheels import Finding

if TYPE_CHECKING:
    from ..registry.packages import PackageRegistry

CODE = "runtime-capability"


def capability_version(value: str) -> Optional[Version]:
    """``3.7.17`` -> 3.7.17; ``1.0.2k`` -> 1.0.2 (OpenSSL letter releases); ``3.0.x`` -> 3.0.0,
    the lowest release the value admits (so that a need met by it is met by every one)."""
    text = value.strip()
    if text.endswith(".x"):
        text = text[:-2] + ".0"
    m = re.match(r"^(\d+(?:\.\d+)*)", text)
    if not m:
        return None
    try:
        return Version(m.group(1))
    except InvalidVersion:
        return None


def capability_findings(distributions: Iterable, target: Target,
                        package_registry: Callable[[], Optional[PackageRegistry]]
                        ) -> List[Finding]:
    """Findings for every visible distribution a runtime-capability entry names.

    ``distributions`` have ``name``, ``version`` and ``dist_info`` (bundle distributions).
    ``package_registry`` returns the package registry (None when it does not load); it is
    called only when the target records capabilities.
    """
    facts = target.facts
    if facts is None or not hasattr(facts, "capability"):
        return []
    registry = package_registry()
    if registry is None:
        return []
    dists = list(distributions)
    present = {canonicalize_name(d.name) for d in dists}
    out: List[Finding] = []
    for d in dists:
        entry = registry.find(d.name, d.version, target, kinds=(CODE,))
        if entry is None:
            continue
        for name, spec in entry.needs:
            finding = _judge(d, entry, name, SpecifierSet(spec), target, registry.version,
                             entry.fix_distribution in present)
            if finding is not None:
                out.append(finding)
    return out


def _judge(d, entry, name: str, spec: SpecifierSet, target: Target, registry_version: str,
           fix_present: bool) -> Optional[Finding]:
    facts: Any = target.facts
    cap = facts.capability(name)
    where = f"registry/runtimes.yaml {target.name} capabilities.{name}"
    claim = (f"{d.name} {d.version} needs the runtime's {name} {spec} (registry entry "
             f"{entry.label}, {entry.kind}; registry {registry_version})")
    fix = entry.fix_text or f"Ship {entry.fix_distribution} and use it."
    if not cap.known:
        state = "not recorded" if cap.value is None else f"{cap.value}, marked unverified"
        return Finding(
            CODE, d.name, d.dist_info,
            f"{claim}; the {name} version of {target.name} is {state} ({where}"
            f"{', ' + ', '.join(cap.sources) if cap.sources else ''}): verify it on the "
            f"image (the refresh-runtimes probe reads it).", fix)
    have = capability_version(cap.value or "")
    if have is not None and spec.contains(have, prereleases=True):
        return None
    inferred = f", {cap.status}" if cap.status != "sourced" else ""
    message = (f"{claim}; {target.name} has {name} {cap.value} ({where}"
               f"{', ' + ', '.join(cap.sources) if cap.sources else ''}{inferred}), so it "
               f"fails there at import.")
    if fix_present:
        return Finding(
            CODE, d.name, d.dist_info,
            message + f" The bundle has {entry.fix_distribution}, which works only if the "
                      f"function uses it as the fix says.", fix, severity="warning")
    return Finding(CODE, d.name, d.dist_info, message, fix)
