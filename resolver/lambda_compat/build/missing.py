"""The builder's last phase: a distribution is missing, with the reason and a suggestion.

Two ways in: the resolution found no usable file for a requirement (:func:`not_found`), or
every phase failed for a distribution it did choose (:func:`mark_missing`).
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any, Iterable, Optional, Set, Tuple

from ..host.interpreters import find_interpreter
from ..resolve.diagnose import ALTERNATIVES, diagnose
from ..resolve.engine import Resolution
from ..targets.target import Target
from ..ui import UI
from .report import DistOutcome

if TYPE_CHECKING:
    from packaging.version import Version

    from .builder import BuildConfig


def mark_missing(ui: UI, outcome: DistOutcome, code: Optional[str], reason: str,
                 suggestion: Optional[str] = None) -> DistOutcome:
    """``outcome`` becomes missing: the reason, and a suggestion (an alternative project)."""
    outcome.phase = "missing"
    outcome.reason_code = code
    outcome.reason = reason
    if suggestion is None:
        alt = ALTERNATIVES.get(outcome.name.lower())
        suggestion = f"Use {alt}." if alt else None
    outcome.suggestion = suggestion
    ui.event("dist-done", name=outcome.name, version=outcome.version, phase="missing",
             reason=reason)
    return outcome


def not_found(nf: Any, resolution: Resolution, target: Target, config: BuildConfig,
              refused: Optional[Tuple[str, str]] = None) -> DistOutcome:
    """The outcome of a distribution the resolution found no usable file for."""
    links = resolution.links.get(nf.project, ())
    version = _candidate_version(nf.requirement, links, target)
    d = diagnose(nf.project, version, links, target)
    code, reason = d.reason_code, d.reason
    if refused is not None and code == "no-compatible-wheel":
        code, reason = refused[0], f"{refused[1]} {d.reason}"
    elif nf.reason_code == "no-build-environment":
        code, reason = nf.reason_code, f"{nf.message.rstrip('.')}. {d.reason}"
    elif nf.reason_code:
        code, reason = nf.reason_code, nf.message
    elif nf.message.startswith("building the metadata"):
        code, reason = "sdist-build-failed", nf.message
    elif (code == "no-compatible-wheel" and offered_versions(links, nf.requirement, target, True)
          and find_interpreter(target.python_version, platform.machine(),
                               config.python) is None):
        v = target.python_version
        code = "no-build-environment"
        reason = (f"{nf.project} {version or ''}".rstrip() + f": its sdist was not built, "
                  f"this machine has no CPython {v[0]}.{v[1]} interpreter (use --python). "
                  f"{reason}")
    outcome = DistOutcome(
        name=nf.project, version=version, phase="missing", requested=nf.parent is None,
        reason_code=code, reason=reason + (f" (required by {nf.parent})" if nf.parent else ""),
        suggestion=d.suggestion)
    _add_attempts(outcome, nf, resolution, target, refused, code)
    return outcome


def _add_attempts(outcome: DistOutcome, nf: Any, resolution: Resolution, target: Target,
                  refused: Optional[Tuple[str, str]], code: Optional[str]) -> None:
    """What was tried (or refused) before the distribution was reported missing."""
    host = platform.machine()
    if refused is not None and code == refused[0]:
        outcome.attempts.append(f"no build: this machine is {host}, the target is "
                                f"{target.machine}, and {nf.project}'s code is native")
    if nf.reason_code:  # the metadata step's builds (pip stops at the first that fails)
        if host != target.machine:
            outcome.attempts.append(f"no native build: this machine is {host}, the target is "
                                    f"{target.machine}")
        for filename, src in resolution.sources.items():
            if not src.get("reason_code"):
                continue
            outcome.source = filename
            for a in src.get("attempts", ()):
                how = "without a compiler" if a["no_compiler"] else f"with {a['interpreter']}"
                outcome.attempts.append(f"build {how} failed:\n{a['tail']}\n"
                                        f"(full log: {a['log']})")
                outcome.build_log, outcome.interpreter = a["log"], a["interpreter"]


def offered_versions(links: Iterable[Any], requirement: str, target: Target,
                     sdist_only: bool = False) -> Set[Version]:
    """Versions offered (by any file, or by sdists only) that satisfy ``requirement``."""
    from packaging.requirements import InvalidRequirement, Requirement

    from ..resolve.diagnose import sdist_version, wheel_parts, wheel_version
    try:
        spec = Requirement(requirement).specifier
    except InvalidRequirement:
        spec = None
    found = set()
    for link in links:
        if link.yanked:
            continue
        if link.is_wheel:
            if sdist_only:
                continue
            version = wheel_version(link.filename)
        else:
            version = sdist_version(link.filename)
        if version is None or version in found:
            continue
        if ((spec is None or spec.contains(version, prereleases=True))
                and (not link.is_wheel or wheel_parts(link.filename))):
            found.add(version)
    return found


def _candidate_version(requirement: str, links: Iterable[Any],
                       target: Target) -> Optional[str]:
    """The version pip would have picked had sources been allowed (for messages)."""
    versions = offered_versions(links, requirement, target)
    return str(max(versions)) if versions else None
