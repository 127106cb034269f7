"""The verdict on the libraries a distribution's code loads at import
(:func:`lambda_compat.verify.libscan.scan_distribution` finds them): there, missing, or
unknowable, on one runtime."""

from __future__ import annotations

import re
from typing import Dict, List, Sequence, Set

from .libscan import LibraryLoad
from .wheels import Finding
from ..targets.arch import NAME_PATTERN

#: Names for the other architecture (``libsndfile_arm64.so`` when checking x86_64).
#: Lambda arch -> the names of the other architectures inside file names.
_OTHER_ARCH = {arch: re.compile("|".join(p for other, p in NAME_PATTERN.items() if other != arch))
               for arch in NAME_PATTERN}


def judge(dist: str, loads: Sequence[LibraryLoad], facts, bundled: Set[str]) -> List[Finding]:
    """Findings for ``dist``'s import-time loads on a runtime (``facts``: its RuntimeFacts).

    A library is there when the bundle has a file of that name (any directory: code that
    loads by path finds it; a ``find_library`` stem matches any ``libX*.so*``) or the
    runtime's recorded library set has it. Anything else is ``missing-system-library``, an
    error (a warning when the load happens only under a condition at import), with how the
    name was found; a load whose name cannot be determined is an ``unresolved-library-load``
    warning.
    """
    out: List[Finding] = []
    by_name: Dict[str, List[LibraryLoad]] = {}
    other_arch = _OTHER_ARCH.get(getattr(facts, "arch", ""))
    for load in loads:
        if load.kind == "inferred" and other_arch and other_arch.search(load.name or ""):
            continue  # a name for the other architecture, next to a computed one
        if load.kind == "computed":
            out.append(Finding(
                "unresolved-library-load", dist, load.file,
                f"{load.describe()}, at import; the static check cannot tell which library "
                f"it is, so only an import in an environment with the runtime's libraries "
                f"proves it.",
                "Let the dynamic proof run (--backend auto, rootfs --rootfs standin, or "
                "container); if the library is not part of the runtime, ship it in the "
                "bundle's lib/ directory.", severity="warning"))
            continue
        assert load.name is not None          # only a computed load has no name
        by_name.setdefault(_stem(load.name), []).append(load)
    for _, group in sorted(by_name.items()):
        if any(_present(g.name or "", g.kind, facts, bundled) for g in group):
            continue
        first = min(group, key=lambda g: (g.conditional, {"literal": 0,
                                                           "find_library": 1}.get(g.kind, 2)))
        name = first.name or ""
        lib = name if first.kind != "find_library" else f"{name}.so.*"
        known_absent = facts.is_known_absent(name) or any(
            facts.is_known_absent(s) for s in (name + ".so", name + ".so.0"))
        more = f" (and {len(group) - 1} more place(s))" if len(group) > 1 else ""
        when = ("at import, but only under a condition (an if or except at module level, or "
                "a function only such code calls)" if first.conditional else "at import")
        out.append(Finding(
            "missing-system-library", dist, first.file,
            f"{dist} loads {lib} {when}: {first.describe()}{more}; the bundle does not "
            f"contain it and the runtime image "
            + ("does not have it." if known_absent else
               "is not known to have it (it is not among the libraries recorded for it)."),
            f"Ship {lib} (and what it needs) in the bundle's lib/ directory or a layer's "
            f"lib/ (both on LD_LIBRARY_PATH), or use a package that bundles it.",
            severity="warning" if first.conditional else "error"))
    return out


def _stem(name: str) -> str:
    """``libmagic`` for ``libmagic.so.1``, ``libmagic.so`` and find_library's ``libmagic``."""
    return name.split(".so", 1)[0]


def _present(name: str, kind: str, facts, bundled: Set[str]) -> bool:
    """In the runtime's library set (a versioned name exactly: ``libssl.so.10`` is not
    ``libssl.so.3``), or in the bundle under any version or auditwheel's hashed name
    (``libgeos_c-a68605fd.so.1.16.0`` for ``libgeos_c.so.1``): code that finds a bundled copy
    loads it by path."""
    stem = _stem(name)
    if any(b.startswith((stem + ".so", stem + "-", stem + "_")) and ".so" in b
           for b in bundled):
        return True
    if kind == "find_library" or name.endswith(".so"):
        return any(s.startswith(stem + ".so") for s in facts.sonames)
    return name in facts.sonames
