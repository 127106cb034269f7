"""What the runtime registry records about each Lambda Python runtime: plain, frozen values.

:class:`RuntimeFacts` is one (runtime, architecture) entry of ``registry/runtimes.yaml``,
:class:`RuntimeRegistry` all of them; :class:`LibraryFact` and :class:`Capability` answer
questions about one entry. Loading and checking the file is ``registry/runtimes.py``.
"""

from __future__ import annotations

import datetime
import difflib
import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from ..errors import UnknownTarget
from .arch import ARCH_ALIASES, ARCHITECTURES, MACHINE

__all__ = [
    "CAPABILITIES",
    "Capability",
    "LibraryFact",
    "RuntimeFacts",
    "RuntimeRegistry",
    "normalize_runtime",
    "suggest_runtime",
]

#: What ``capabilities`` records: the library versions of the runtime's own sqlite3, ssl, zlib
#: and pyexpat modules.
CAPABILITIES = ("sqlite", "openssl", "zlib", "expat")


@dataclass(frozen=True)
class LibraryFact:
    """What the registry says about one soname on one target, and on what evidence.

    ``status`` is ``present`` (seen, or inferred: then ``inferred`` is True), ``absent``,
    ``unverified`` (nobody has checked either way) or ``unknown`` (the registry does not
    mention it). ``entry`` is the list item that matched (a glob for some absent entries).
    """

    soname: str
    status: str
    sources: tuple[str, ...] = ()
    inferred: bool = False
    entry: Optional[str] = None
    list_name: Optional[str] = None

    def describe(self, target: str) -> str:
        """``registry/runtimes.yaml python3.11/x86_64 shared_libraries.unverified_sonames:
        libexpat.so.1 (S6, S24)`` -- the fact, where it is recorded and its sources."""
        where = f"registry/runtimes.yaml {target}"
        if self.list_name is None:
            return f"{where} shared_libraries: {self.soname} is not recorded"
        src = f" ({', '.join(self.sources)})" if self.sources else ""
        entry = self.entry if self.entry == self.soname else f"{self.entry} (matches {self.soname})"
        return f"{where} shared_libraries.{self.list_name}: {entry}{src}"


@dataclass(frozen=True)
class Capability:
    """A version the runtime's own modules provide (``sqlite``: sqlite3, ``openssl``: ssl,
    ``zlib``: zlib, ``expat``: pyexpat)."""

    name: str
    value: Optional[str]
    status: str                       # sourced | derived | inferred | unverified
    sources: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        """A value to judge by: recorded, and not marked unverified."""
        return self.value is not None and self.status != "unverified"

@dataclass(frozen=True)
class RuntimeFacts:
    """Everything the resolver needs to know about one (runtime, architecture)."""

    runtime: str
    arch: str
    python_version: tuple[int, int]
    python_full_version: str
    soabi: str
    ext_suffixes: tuple[str, ...]
    os_name: str
    os_id: str
    glibc: tuple[int, int]
    glibcxx_max: tuple[int, ...]
    cxxabi_max: tuple[int, ...]
    gcc_max: tuple[int, ...]
    #: Every soname believed present: the ones seen plus ``inferred_sonames``.
    sonames: frozenset[str]
    #: Names (fnmatch globs allowed, e.g. ``libpng*.so.*``) known or believed missing.
    absent_sonames: frozenset[str]
    sys_path: tuple[str, ...]
    image: str
    image_digest: str | None
    env: tuple[tuple[str, str], ...]
    released: datetime.date | None
    deprecation: datetime.date | None
    #: ``(dotted key, status)`` for every data key of the entry; status is one of
    #: ``sourced``, ``derived``, ``inferred``, ``unverified``.
    provenance: tuple[tuple[str, str], ...]
    #: Source keys cited anywhere in this entry (``S1`` ... in numeric order).
    sources: tuple[str, ...]
    #: The subset of ``sonames`` that is expected but was not seen on an image.
    inferred_sonames: frozenset[str] = frozenset()
    #: Names (globs allowed) whose presence nobody has verified either way.
    unverified_sonames: frozenset[str] = frozenset()
    #: ``(soname or glob, sources)`` of the library facts with their own citations; the
    #: others cite ``library_src`` (the group's ``src``).
    library_cite: tuple[tuple[str, tuple[str, ...]], ...] = ()
    library_src: tuple[str, ...] = ()
    #: ``sqlite`` / ``openssl`` capabilities of the runtime's own modules.
    capabilities: tuple[Capability, ...] = ()
    block_function_create: datetime.date | None = None
    block_function_update: datetime.date | None = None
    #: The day the lifecycle dates were last read from their source.
    lifecycle_read: datetime.date | None = None

    @property
    def machine(self) -> str:
        """``platform.machine()`` on Lambda: ``x86_64`` or ``aarch64``."""
        return MACHINE[self.arch]

    @property
    def name(self) -> str:
        """``python3.12/arm64``: how targets are named in messages."""
        return f"{self.runtime}/{self.arch}"

    def is_deprecated(self, today: datetime.date) -> bool:
        """True once ``today`` reaches the deprecation date (False when that date is unknown)."""
        return self.deprecation is not None and today >= self.deprecation

    def provenance_of(self, dotted_key: str) -> str:
        """``inferred``/``derived``/``unverified``/``sourced`` for ``group.key``.

        Raises KeyError for a key the entry does not have.
        """
        for key, status in self.provenance:
            if key == dotted_key:
                return status
        raise KeyError(f"{self.name} has no key {dotted_key!r}")

    def accepts_updates(self, today: datetime.date) -> bool:
        """True while functions on this runtime can still be updated (before the block-update
        date; True when that date is unknown): such a runtime still needs checking."""
        return self.block_function_update is None or today < self.block_function_update

    def is_known_absent(self, soname: str) -> bool:
        """True if ``soname`` matches an entry (possibly a glob) of ``absent_sonames``."""
        return any(fnmatch.fnmatchcase(soname, pattern) for pattern in self.absent_sonames)

    def library_fact(self, soname: str) -> LibraryFact:
        """The registry's fact about ``soname`` here: present, absent, unverified or unknown."""
        lists = (("sonames", self.sonames - self.inferred_sonames, "present"),
                 ("inferred_sonames", self.inferred_sonames, "present"),
                 ("unverified_sonames", self.unverified_sonames, "unverified"),
                 ("absent", self.absent_sonames, "absent"))
        for list_name, entries, status in lists:
            for entry in sorted(entries):
                if entry == soname or fnmatch.fnmatchcase(soname, entry):
                    cite = dict(self.library_cite)
                    sources = cite.get(entry) or cite.get(soname) or self.library_src
                    return LibraryFact(soname, status, tuple(sources),
                                       inferred=list_name == "inferred_sonames",
                                       entry=entry, list_name=list_name)
        return LibraryFact(soname, "unknown", tuple(self.library_src))

    def capability(self, name: str) -> Capability:
        """The ``capabilities`` fact ``name`` (a null, unverified one when not recorded)."""
        for c in self.capabilities:
            if c.name == name:
                return c
        return Capability(name, None, "unverified")


@dataclass(frozen=True)
class RuntimeRegistry:
    schema_version: int
    data_version: str
    path: str
    targets: tuple[RuntimeFacts, ...]
    sources: tuple[tuple[str, str], ...]

    @property
    def runtimes(self) -> tuple[str, ...]:
        """Runtime names in Python version order: python3.8 ... python3.14."""
        seen: Dict[str, Tuple[int, int]] = {}
        for t in self.targets:
            seen[t.runtime] = t.python_version
        return tuple(sorted(seen, key=seen.__getitem__))

    def source(self, key: str) -> str:
        """The citation text of source ``key`` (KeyError if unknown)."""
        for k, text in self.sources:
            if k == key:
                return text
        raise KeyError(key)

    def get(self, runtime: str, arch: str) -> RuntimeFacts:
        """The facts for ``runtime`` on ``arch``.

        Accepts ``3.12`` for ``python3.12`` and ``aarch64``/``amd64`` for ``arm64``/``x86_64``.
        Raises UnknownTarget (kind ``runtime`` or ``architecture``) with a suggestion.
        """
        runtimes = self.runtimes
        rt = normalize_runtime(runtime)
        if rt not in runtimes:
            raise _UnknownRuntime(runtime, runtimes)
        a = ARCH_ALIASES.get(str(arch).strip().lower())
        if a is None:
            raise UnknownTarget("architecture", str(arch), ARCHITECTURES)
        for t in self.targets:
            if t.runtime == rt and t.arch == a:
                return t
        available = [t.arch for t in self.targets if t.runtime == rt]
        raise UnknownTarget("architecture", str(arch), available)


class _UnknownRuntime(UnknownTarget):
    """UnknownTarget for runtimes, with version-aware suggestions and version-ordered list.

    ``difflib`` alone ties ``python3.21`` between every ``python3.1x``; a transposed or
    near-miss version number is the common typo, so that is tried first.
    """

    def __init__(self, value: str, valid: Tuple[str, ...]) -> None:
        super().__init__("runtime", str(value), valid)
        suggestion = suggest_runtime(str(value), valid)
        self.suggestion = suggestion
        hint = f"Did you mean {suggestion!r}? " if suggestion else ""
        hint += f"Valid runtimes: {', '.join(valid)}."
        self.hint = hint
        self.args = (f"{self.message}\n{hint}",)


def normalize_runtime(value: Any) -> str:
    v = str(value).strip().lower()
    if re.fullmatch(r"\d+\.\d+", v):
        v = "python" + v
    return v


def suggest_runtime(value: str, valid: Tuple[str, ...]) -> Optional[str]:
    if not valid:
        return None
    norm = normalize_runtime(value)

    def digits(s: str) -> str:
        return "".join(re.findall(r"\d", s))

    d = digits(norm)
    if d:
        same = [r for r in valid if digits(r) == d]
        if same:
            return same[0]
        permuted = [r for r in valid if sorted(digits(r)) == sorted(d)]
        if len(permuted) == 1:
            return permuted[0]
        m = re.search(r"(\d+)\.(\d+)", norm)
        if m:
            want = (int(m.group(1)), int(m.group(2)))
            versions = {r: tuple(int(x) for x in r[len("python"):].split(".")) for r in valid}
            same_major = [r for r in valid if versions[r][0] == want[0]]
            if same_major:
                return min(same_major, key=lambda r: (abs(versions[r][1] - want[1]), versions[r]))
    close = difflib.get_close_matches(norm, list(valid), n=1, cutoff=0.5)
    return close[0] if close else None
