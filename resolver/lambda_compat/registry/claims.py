"""A registry entry's claim against its evidence, and runtime-capability fields.

Checked by :mod:`lambda_compat.registry.packages` when an entry is read (``registry validate``, the
builder): the version range starts at the oldest version its evidence proves and ends at the
newest (``<=``); its ``targets`` name only runtime/arch pairs some evidence record names; a
``runtime-capability`` entry says what it ``needs`` and its ``fix``, and no other entry has
those. Problems go through the caller's ``add(path_parts, message)``, which places them at
their file and line.
"""

from __future__ import annotations

from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from ..targets.facts import CAPABILITIES

__all__ = ["scope_problems", "capability_problems"]


def _runtime_key(runtime: str) -> Tuple[int, ...]:
    import re
    return tuple(int(x) for x in re.findall(r"\d+", runtime))


def _evidence_versions(data: Dict[str, Any]) -> List[Version]:
    out = []
    for ev in data.get("evidence") or ():
        if not isinstance(ev, dict):
            continue
        for v in ev.get("versions") or ():
            if not isinstance(v, str):
                continue        # the schema reports it (an unquoted 1.17 is not "1.17")
            try:
                out.append(Version(v))
            except InvalidVersion:
                pass
    return out


def scope_problems(data: Dict[str, Any], spec: Optional[SpecifierSet],
                    known: FrozenSet[Tuple[str, str]], pairs: Optional[List[str]],
                    runtimes: Any, arches: Any, add: Any) -> None:
    """A claim no wider than its evidence: the version range starts at the oldest proven
    version and ends at the newest (``<=``); the targets are ones the evidence names.

    Reported through ``add``.
    """
    proven = _evidence_versions(data)
    written = data.get("versions")
    if spec is not None and str(spec) and proven:
        oldest, newest = min(proven), max(proven)
        lower = [c for c in spec if c.operator in (">=", ">", "==", "===", "~=")]
        upper = [c for c in spec if c.operator in ("<=", "==", "===")]
        bounds = []
        for c in lower:
            try:
                bounds.append(Version(c.version.rstrip(".*")))
            except InvalidVersion:
                pass
        if not lower or (bounds and max(bounds) < oldest):
            add(["versions"], f"versions: {written} starts below {oldest}, the oldest version "
                              f"its evidence proves; start the range at >={oldest} (an older "
                              f"release needs its own evidence)")
        if not upper:
            add(["versions"], f"versions: {written} admits versions newer than {newest}, the "
                              f"newest its evidence proves; end the range at <={newest} (a "
                              f"newer release needs its own evidence)")
    evidence_targets = {t for ev in data.get("evidence") or () if isinstance(ev, dict)
                        for t in ev.get("targets") or () if isinstance(t, str)}
    if "targets" not in data or not evidence_targets:
        return               # the schema reports the missing field / the empty evidence
    if pairs is not None:
        claimed = set(pairs)
    else:
        rts = runtimes if isinstance(runtimes, list) else sorted({r for r, _ in known})
        ars = arches if isinstance(arches, list) else sorted({a for _, a in known})
        # unknown names are reported on their own
        claimed = {f"{r}/{a}" for r in rts for a in ars if (r, a) in known}
    unproven = sorted(claimed - evidence_targets, key=lambda t: (_runtime_key(t), t))
    if unproven:
        add(["targets"], f"targets: {len(unproven)} target(s) no evidence proves "
                         f"({', '.join(unproven[:6])}{' ...' if len(unproven) > 6 else ''}); "
                         f"list only the runtime/arch pairs the evidence names")


def capability_problems(data: Dict[str, Any], add: Any) -> None:
    """runtime-capability entries say what they need and how to fix it; others do not."""
    capability = data.get("kind") == "runtime-capability"
    needs, fix = data.get("needs"), data.get("fix")
    if capability:
        if not isinstance(needs, dict) or not needs:
            add(["kind"], "a runtime-capability entry says what it needs: needs: {sqlite: "
                          "'>=3.35'} (capabilities: " + ", ".join(CAPABILITIES) + ")")
        if not isinstance(fix, dict):
            add(["kind"], "a runtime-capability entry names its fix: fix: {distribution: "
                          "NAME, text: how to use it}")
    elif needs is not None or fix is not None:
        add(["needs" if needs is not None else "fix"],
            f"{'needs' if needs is not None else 'fix'}: only runtime-capability entries "
            f"have it")
    if isinstance(needs, dict):
        for key, value in needs.items():
            if key not in CAPABILITIES:
                add(["needs", key], f"needs.{key}: unknown capability (known: "
                                    f"{', '.join(CAPABILITIES)})")
                continue
            try:
                SpecifierSet(str(value))
            except InvalidSpecifier:
                add(["needs", key], f"needs.{key}: {value!r} is not a PEP 440 specifier set")
