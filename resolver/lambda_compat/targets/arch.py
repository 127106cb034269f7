"""Lambda's two architectures and every name they go by: the one table of per-architecture names.

Lambda calls them ``x86_64`` and ``arm64``; ``platform.machine()`` on Linux (and platform tags,
GNU triplets, qemu) says ``x86_64`` and ``aarch64``; Debian says ``amd64`` and ``arm64``.
Everything else here is derived from :data:`ARCHES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

__all__ = [
    "ARCHES", "ARCHITECTURES", "Arch", "ARCH_ALIASES", "ARCH_OF_MACHINE", "DEB_ARCH", "LOADER",
    "MACHINE", "MACHINE_ALIASES", "NAME_PATTERN", "TRIPLET_CPU",
]


@dataclass(frozen=True)
class Arch:
    """One Lambda architecture and its names elsewhere."""

    #: Lambda's name: ``x86_64``, ``arm64``.
    name: str
    #: ``platform.machine()`` on Linux, the platform-tag and qemu name: ``x86_64``, ``aarch64``.
    machine: str
    #: Debian's architecture name (debootstrap ``--arch``): ``amd64``, ``arm64``.
    debian: str
    #: The CPU part of the GNU triplet in SOABI / extension suffixes.
    triplet_cpu: str
    #: The dynamic loader's soname.
    loader: str
    #: Other spellings users give for the architecture (``aarch64`` for arm64); all lower case.
    aliases: Tuple[str, ...]
    #: What ``platform.machine()`` says for this machine on other systems (macOS: ``arm64``).
    machine_aliases: Tuple[str, ...]
    #: A regular expression for the architecture's names inside file names
    #: (``libsndfile_arm64.so``).
    name_pattern: str


ARCHES: Tuple[Arch, ...] = (
    Arch(name="x86_64", machine="x86_64", debian="amd64", triplet_cpu="x86_64",
         loader="ld-linux-x86-64.so.2", aliases=("x86-64", "amd64"),
         machine_aliases=("amd64", "AMD64"), name_pattern=r"x86_64|amd64|x64|i[3-6]86"),
    Arch(name="arm64", machine="aarch64", debian="arm64", triplet_cpu="aarch64",
         loader="ld-linux-aarch64.so.1", aliases=("aarch64",),
         machine_aliases=("arm64",), name_pattern=r"arm64|aarch64"),
)

#: Lambda's architecture names, in registry order.
ARCHITECTURES: Tuple[str, ...] = tuple(a.name for a in ARCHES)
#: Lambda's architecture name -> what ``platform.machine()`` says on it.
MACHINE: Dict[str, str] = {a.name: a.machine for a in ARCHES}
#: ``platform.machine()`` (Linux) -> Lambda's architecture name.
ARCH_OF_MACHINE: Dict[str, str] = {a.machine: a.name for a in ARCHES}
#: Lambda's architecture name -> Debian's.
DEB_ARCH: Dict[str, str] = {a.name: a.debian for a in ARCHES}
#: Lambda's architecture name -> GNU triplet CPU part.
TRIPLET_CPU: Dict[str, str] = {a.name: a.triplet_cpu for a in ARCHES}
#: Lambda's architecture name -> dynamic loader soname.
LOADER: Dict[str, str] = {a.name: a.loader for a in ARCHES}
#: Every accepted spelling (lower case) -> Lambda's architecture name.
ARCH_ALIASES: Dict[str, str] = {
    spelling: a.name for a in ARCHES for spelling in (a.name,) + a.aliases}
#: ``platform.machine()`` on other systems -> the Linux machine name.
MACHINE_ALIASES: Dict[str, str] = {
    other: a.machine for a in ARCHES for other in a.machine_aliases}
#: Lambda's architecture name -> regular expression of its names inside file names.
NAME_PATTERN: Dict[str, str] = {a.name: a.name_pattern for a in ARCHES}
