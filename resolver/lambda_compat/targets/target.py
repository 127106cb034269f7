"""Lambda targets: a runtime and an architecture, and what follows from them.

A :class:`Target` is a frozen value. Everything here is computed from the target's facts
(``registry/runtimes.yaml``), never from the machine running lambda-compat.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Optional, Tuple

from packaging import tags as _tags

from .arch import MACHINE

if TYPE_CHECKING:  # facts imports nothing from here at run time; no cycle
    from .facts import RuntimeFacts

#: The oldest manylinux glibc level that exists for each machine (PEP 600 / manylinux docs).
MIN_GLIBC_MINOR = {"x86_64": 5, "aarch64": 17}
#: Legacy manylinux names and the PEP 600 tag each one is an alias of.
LEGACY_ALIASES = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
#: Legacy aliases only ever defined for these machines.
LEGACY_MACHINES = {
    "manylinux2014": {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"},
    "manylinux2010": {"x86_64", "i686"},
    "manylinux1": {"x86_64", "i686"},
}


def platform_tags(machine: str, glibc: Tuple[int, int]) -> Tuple[str, ...]:
    """Platform tags a glibc-``glibc`` Linux on ``machine`` accepts, most specific first.

    Every ``manylinux_2_N_<machine>`` for N from the glibc minor down to the oldest level that
    exists for the machine, each legacy alias right after the tag it aliases, then
    ``linux_<machine>``.
    """
    major, minor = glibc
    if major != 2:
        raise ValueError(f"unsupported glibc major version {major}")
    out = []
    for n in range(minor, MIN_GLIBC_MINOR[machine] - 1, -1):
        out.append(f"manylinux_2_{n}_{machine}")
        legacy = LEGACY_ALIASES.get((2, n))
        if legacy and machine in LEGACY_MACHINES[legacy]:
            out.append(f"{legacy}_{machine}")
    out.append(f"linux_{machine}")
    return tuple(out)


@dataclass(frozen=True)
class Target:
    """One Lambda runtime on one architecture.

    ``facts`` is the full :class:`~lambda_compat.targets.facts.RuntimeFacts` entry when the target
    comes from the registry; the fields used for resolution are copied out so that a Target
    can also be built directly (tests, property tests).
    """

    runtime: str
    arch: str
    python_version: Tuple[int, int]
    python_full_version: str
    glibc: Tuple[int, int]
    facts: Optional["RuntimeFacts"] = field(default=None, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.arch not in MACHINE:
            raise ValueError(f"unknown architecture {self.arch!r}")
        if f"python{self.python_version[0]}.{self.python_version[1]}" != self.runtime:
            raise ValueError(f"{self.runtime} does not match Python {self.python_version}")

    @classmethod
    def from_facts(cls, facts: "RuntimeFacts") -> "Target":
        return cls(runtime=facts.runtime, arch=facts.arch,
                   python_version=facts.python_version,
                   python_full_version=facts.python_full_version,
                   glibc=facts.glibc, facts=facts)

    @property
    def name(self) -> str:
        return f"{self.runtime}/{self.arch}"

    def to_json(self) -> Dict[str, str]:
        """The target as every machine-readable output names it."""
        return {"runtime": self.runtime, "arch": self.arch, "machine": self.machine,
                "python": self.python_full_version,
                "glibc": ".".join(map(str, self.glibc))}

    @property
    def machine(self) -> str:
        return MACHINE[self.arch]

    @property
    def interpreter(self) -> str:
        return f"cp{self.python_version[0]}{self.python_version[1]}"

    @property
    def platforms(self) -> Tuple[str, ...]:
        return platform_tags(self.machine, self.glibc)

    @property
    def tags(self) -> Tuple[_tags.Tag, ...]:
        return _target_tags(self.python_version, self.machine, self.glibc)

    @property
    def tag_strings(self) -> Tuple[str, ...]:
        return tuple(str(t) for t in self.tags)

    def tag_priority(self) -> Dict[_tags.Tag, int]:
        """Tag -> rank (0 is the most preferred)."""
        return _tag_priority(self.python_version, self.machine, self.glibc)

    def marker_environment(self) -> Dict[str, str]:
        """The full PEP 508 environment of the target's interpreter."""
        version = f"{self.python_version[0]}.{self.python_version[1]}"
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python_full_version,
            "os_name": "posix",
            "platform_machine": self.machine,
            # Lambda's kernel release/version strings are not published (and change without
            # notice); markers on them are practically unused. Empty, as in a sandbox.
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.python_full_version,
            "platform_python_implementation": "CPython",
            "python_version": version,
            "sys_platform": "linux",
        }

    def accepts_wheel_tags(self, wheel_tags) -> bool:
        supported = self.tag_priority()
        return any(t in supported for t in wheel_tags)


@functools.lru_cache(maxsize=None)
def _target_tags(python_version: Tuple[int, int], machine: str,
                 glibc: Tuple[int, int]) -> Tuple[_tags.Tag, ...]:
    platforms = list(platform_tags(machine, glibc))
    interpreter = f"cp{python_version[0]}{python_version[1]}"
    # Explicit arguments everywhere: packaging never consults the running interpreter here.
    native = _tags.cpython_tags(python_version, abis=[interpreter], platforms=platforms)
    compatible = _tags.compatible_tags(python_version, interpreter=interpreter,
                                       platforms=platforms)
    seen = set()
    ordered = []
    for tag in list(native) + list(compatible):
        if tag not in seen:
            seen.add(tag)
            ordered.append(tag)
    return tuple(ordered)


@functools.lru_cache(maxsize=None)
def _tag_priority(python_version, machine, glibc) -> Dict[_tags.Tag, int]:
    return {t: i for i, t in enumerate(_target_tags(python_version, machine, glibc))}
