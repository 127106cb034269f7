"""Index pages narrowed to the versions the user's requirements allow (pip's process only).

pip turns every file of a project's page into a link and a candidate, and rejects those of
versions a top-level requirement rules out; :func:`restrict_to_requirements` records, once
pip has read the requirements, which versions each pinned project may have, and
:func:`version_filter` drops the other files before pip sees them
(:func:`lambda_compat.resolve.pip_patches.target_link_parser`).
"""

from __future__ import annotations

import urllib.parse
from typing import Any, Callable, Dict, Iterable, Tuple

#: canonical project name -> the specifier sets of the user's requirements on it, when every
#: one of them applies to the target and has a specifier (see restrict_to_requirements)
_ALLOWED: Dict[str, Tuple[Any, ...]] = {}


def restrict_to_requirements(requirements: Iterable[Any]) -> None:
    """Let index pages offer pip only the versions the user's requirements can take.

    ``requirements``: pip's InstallRequirements as read from the user's input (top-level
    lines and constraints). For a project all of whose top-level lines apply to the target
    (markers) and carry a version specifier, a file whose version none of them allows is
    dropped before pip turns it into a candidate: pip could never pick it, since every
    candidate must satisfy every top-level requirement on its project. (Kept: versions any
    one of the lines allows, so conflicting lines still meet as a conflict; files whose name
    does not parse; projects named by a URL, a path or a line without a specifier.)
    Diagnosis reads the whole page (``pip_shim._all_links``); only pip's log line "from
    versions: ..." lists fewer versions.
    """
    from pip._vendor.packaging.utils import canonicalize_name

    specs: Dict[str, list] = {}
    open_ended = set()
    for ireq in requirements:
        req = getattr(ireq, "req", None)
        if req is None or getattr(ireq, "constraint", False):
            continue
        name = canonicalize_name(req.name)
        if not ireq.match_markers():
            continue  # pip ignores the line for the target
        if getattr(ireq, "link", None) is not None or not str(req.specifier):
            open_ended.add(name)
            continue
        specs.setdefault(name, []).append(req.specifier)
    _ALLOWED.clear()
    _ALLOWED.update({n: tuple(v) for n, v in specs.items() if n not in open_ended})


_SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar")


def version_filter() -> Callable[[str], bool]:
    """``allowed(filename)``: False only for a file of a project in :data:`_ALLOWED` whose
    version none of its specifier sets contains (pre-releases counted: pip decides those)."""
    from pip._vendor.packaging.utils import canonicalize_name
    from pip._vendor.packaging.version import InvalidVersion, Version
    allowed = dict(_ALLOWED)
    verdicts: Dict[Tuple[str, str], bool] = {}

    def keep(filename: str) -> bool:
        if not allowed:
            return True
        name = urllib.parse.unquote(filename) if "%" in filename else filename
        if name.endswith(".whl"):
            parts = name.split("-")
            if len(parts) not in (5, 6):
                return True  # not a valid wheel name: let pip judge (and report) it
            project, version = parts[0], parts[1]
        else:
            stem = next((name[:-len(x)] for x in _SDIST_SUFFIXES if name.endswith(x)), None)
            if stem is None or "-" not in stem:
                return True
            project, _, version = stem.rpartition("-")
        key = (project, version)
        if key not in verdicts:  # a page names each version in many files: judged once
            verdicts[key] = _allows(allowed.get(canonicalize_name(project)), version)
        return verdicts[key]

    def _allows(specifiers: Any, version: str) -> bool:
        if specifiers is None:
            return True
        try:
            parsed = Version(version)
        except InvalidVersion:
            return True
        return any(spec.contains(parsed, prereleases=True) for spec in specifiers)

    return keep
