"""Explain why a distribution has no file for a target, and what would work instead."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, canonicalize_name,
                             parse_sdist_filename, parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from .engine import LinkInfo
from ..targets.target import Target

_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}

#: Distributions with a drop-in that ships its native dependencies in the wheel.
ALTERNATIVES = {
    "psycopg2": "psycopg2-binary (same API, bundles libpq)",
    "mysqlclient": "pymysql (pure Python) or mysql-connector-python",
    "pycrypto": "pycryptodome",
}


def glibc_level(platform: str) -> Optional[Tuple[Tuple[int, int], str]]:
    """('manylinux_2_28_x86_64') -> ((2, 28), 'x86_64'); legacy names too; else None."""
    m = _MANYLINUX.match(platform)
    if m:
        return (int(m.group(1)), int(m.group(2))), m.group(3)
    for legacy, level in _LEGACY.items():
        if platform.startswith(legacy + "_"):
            return level, platform[len(legacy) + 1:]
    return None


@dataclass(frozen=True)
class Diagnosis:
    reason_code: str                # requires-python, glibc-too-new, no-compatible-wheel
    reason: str
    glibc_blocked: bool             # wheels exist for this version but need a newer glibc
    newest_compatible: Optional[str]
    suggestion: str


# An index page lists every file of every version (numpy: ~1,500), and a check of 12 targets
# reads the same pages for each: file names and Requires-Python strings are parsed once per
# process (they are pure functions of the string).
@functools.lru_cache(maxsize=1 << 16)
def wheel_parts(filename: str):
    """(canonical name, Version, tags) of a wheel file name; None when it does not parse."""
    try:
        name, version, _b, tags = parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        return None
    return canonicalize_name(name), version, tags


@functools.lru_cache(maxsize=1 << 16)
def sdist_version(filename: str) -> Optional[Version]:
    """The version of an sdist file name; None when it does not parse."""
    try:
        return parse_sdist_filename(filename)[1]
    except (InvalidSdistFilename, InvalidVersion):
        return None


@functools.lru_cache(maxsize=1 << 12)
def python_admitted(requires_python: str, python_full_version: str) -> bool:
    """``requires_python`` admits that Python (an invalid specifier rules nothing out)."""
    try:
        return SpecifierSet(requires_python).contains(Version(python_full_version),
                                                      prereleases=True)
    except InvalidSpecifier:
        return True


@functools.lru_cache(maxsize=1 << 16)
def wheel_version(filename: str) -> Optional[Version]:
    """The version field of a wheel file name, without parsing its tags (the costly part):
    to order and filter files before :func:`wheel_parts` confirms the few that matter."""
    parts = filename[:-4].split("-") if filename.endswith(".whl") else []
    if len(parts) not in (5, 6):
        return None
    try:
        return Version(parts[1])
    except InvalidVersion:
        return None


def _wheel_parts(link: LinkInfo):
    return wheel_parts(link.filename)


def _wheel_of(link: LinkInfo, want: Optional[Version]):
    """``wheel_parts`` of a wheel of version ``want`` (any version when None), else None."""
    if not link.is_wheel:
        return None
    if want is not None and wheel_version(link.filename) != want:
        return None
    return wheel_parts(link.filename)


def requires_python_ok(link: LinkInfo, target: Target) -> bool:
    """The file's Requires-Python (as the index labels it) admits the target's Python."""
    if not link.requires_python:
        return True
    return python_admitted(link.requires_python, target.python_full_version)


def newest_compatible(links: Iterable[LinkInfo], target: Target,
                      stable: bool = True) -> Optional[Version]:
    supported = target.tag_priority()
    candidates = []
    for link in links:
        version = wheel_version(link.filename) if link.is_wheel and not link.yanked else None
        if version is not None and not (stable and version.is_prerelease):
            candidates.append((version, link))
    # newest first: the first wheel that fits is the answer (tags parsed only that far)
    candidates.sort(key=lambda c: c[0], reverse=True)
    for version, link in candidates:
        if not requires_python_ok(link, target):
            continue
        parts = _wheel_parts(link)
        if parts and any(t in supported for t in parts[2]):
            return version
    return None


def diagnose(name: str, version: Optional[str], links: Sequence[LinkInfo],
             target: Target) -> Diagnosis:
    interp_abis = {(t.interpreter, t.abi) for t in target.tags}
    same: List[Tuple[LinkInfo, frozenset]] = []
    want = Version(version) if version else None
    for link in links:
        parts = _wheel_of(link, want)
        if parts:
            same.append((link, parts[2]))
    blocked_levels = []
    other_arches = set()
    abi_only = []
    for link, tags in same:
        for tag in tags:
            level = glibc_level(tag.platform)
            if level is None:
                continue
            (glibc, machine) = level
            if machine != target.machine:
                other_arches.add(machine)
                continue
            if (tag.interpreter, tag.abi) not in interp_abis:
                abi_only.append(link.filename)
                continue
            if glibc > tuple(target.glibc):
                blocked_levels.append((glibc, link.filename))
    best = newest_compatible(links, target)
    parts = []
    if best is not None and (want is None or best != want):
        parts.append(f"{name} {best} has a wheel for {target.name}: pin {name}=={best}")
    alt = ALTERNATIVES.get(canonicalize_name(name))
    if alt:
        parts.append(f"use {alt}")
    parts.append(f"{'or ' if parts else ''}build {name} for {target.machine} with glibc "
                 f"{target.glibc[0]}.{target.glibc[1]} (for example in the Lambda build image) "
                 f"and put the result in the project's vendor/ directory")
    suggestion = "; ".join(parts) + "."
    label = f"{name} {version}" if version else name
    glibc_str = f"{target.glibc[0]}.{target.glibc[1]}"
    os_name = getattr(target.facts, "os_name", None)
    runtime_desc = f"{target.runtime} ({os_name})" if os_name else target.runtime
    # Wheels only need a newer glibc: a source build would bypass the maintainers' floor.
    usable_below = any((level := glibc_level(t.platform)) is not None
                       and level[1] == target.machine and level[0] <= tuple(target.glibc)
                       and (t.interpreter, t.abi) in interp_abis
                       for _l, tags in same for t in tags)
    excluded = _requires_python_excludes(links, want, target)
    if excluded:
        return Diagnosis(
            "requires-python",
            f"{label} requires Python {excluded}; {runtime_desc} has Python "
            f"{target.python_full_version}.", False, str(best) if best else None, suggestion)
    if blocked_levels and not usable_below:
        lowest = min(blocked_levels)
        return Diagnosis(
            "glibc-too-new",
            f"{label} publishes {target.machine} wheels only for glibc >= "
            f"{lowest[0][0]}.{lowest[0][1]} (e.g. {lowest[1]}); {runtime_desc} has glibc "
            f"{glibc_str}, the ceiling for manylinux_2_{target.glibc[1]}.",
            True, str(best) if best else None, suggestion)
    if same and other_arches and not abi_only:
        detail = (f"{label} publishes Linux wheels only for {', '.join(sorted(other_arches))}, "
                  f"not {target.machine}.")
    elif abi_only:
        detail = (f"{label} has no wheel for CPython {target.python_version[0]}."
                  f"{target.python_version[1]} on {target.machine} (e.g. {abi_only[0]} is "
                  f"for another Python).")
    else:
        detail = f"{label} publishes no wheel for {target.name}."
    return Diagnosis("no-compatible-wheel", detail, False, str(best) if best else None,
                     suggestion)


def _requires_python_excludes(links: Sequence[LinkInfo], want: Optional[Version],
                              target: Target) -> Optional[str]:
    """The Requires-Python that shuts the target out, when every file of the version says so.

    Only files the index labels count (a file without the data proves nothing); with no
    version given, every file offered.
    """
    specs = set()
    for link in links:
        if link.yanked:
            continue
        version = _file_version(link)
        if version is None or (want is not None and version != want):
            continue
        if not link.requires_python or requires_python_ok(link, target):
            return None
        specs.add(link.requires_python)
    return " or ".join(sorted(specs)) if specs else None


def _file_version(link: LinkInfo) -> Optional[Version]:
    if link.is_wheel:
        version = wheel_version(link.filename)
        return version if version is not None and _wheel_parts(link) else None
    return sdist_version(link.filename)
