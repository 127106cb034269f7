"""What a stand-in root is: its record (/lambda-compat-standin.json), its plan, Lambda's layout."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

from ...host.interpreters import Interpreter
from ...targets.arch import DEB_ARCH


INFO_FILE = "lambda-compat-standin.json"

#: Recipes: ``auto`` picks copy when a native local interpreter exists, else unpack.
KINDS = ("auto", "copy", "unpack", "debootstrap")
#: 2: Debian stand-in roots carry the runtime's system libraries (:mod:`.debian_libs`)
INFO_VERSION = 2

#: Debian suites whose python3 is the given version (for both architectures).
DEBIAN_SUITES: Dict[Tuple[int, int], str] = {
    (3, 9): "bullseye", (3, 11): "bookworm", (3, 13): "trixie", (3, 14): "sid",
}
DEBIAN_MIRROR = "http://deb.debian.org/debian"

#: Libraries no stand-in may contain whatever the facts say (the matrix suite relies on it).
ALWAYS_ABSENT = ("libpq.so*",)


@dataclass(frozen=True)
class StandinInfo:
    """What a stand-in root is; stored as /lambda-compat-standin.json in the root."""

    name: str
    kind: str               # "copy" | "unpack" | "debootstrap"
    arch: str               # Lambda's name: x86_64 | arm64
    machine: str            # x86_64 | aarch64
    python: str             # full version, e.g. "3.11.2"
    python_executable: str  # inside the root, e.g. /var/lang/bin/python3.11
    libc: str               # e.g. "glibc 2.36"
    made_from: str          # the interpreter copied, or the debootstrap command
    suite: Optional[str] = None
    created: str = ""
    build_seconds: float = 0.0
    size_bytes: int = 0
    excluded_libraries: Tuple[str, ...] = ()
    lambda_libraries: Tuple[str, ...] = ()   # copied because the runtime has them
    #: the runtime's sonames (facts) this root lacks: no package of the suite ships them
    missing_libraries: Tuple[str, ...] = ()
    version: int = INFO_VERSION

    def describe(self) -> str:
        if self.kind in ("debootstrap", "unpack"):
            how = "debootstrap" if self.kind == "debootstrap" else "debootstrap, unpacked"
            origin = f"debian {self.suite} {DEB_ARCH[self.arch]} ({how})"
        else:
            origin = f"copy of local CPython {self.python}"
        return f"{origin}, Python {self.python}, {self.libc}, {self.arch}"

    @property
    def python_version(self) -> Tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(re.match(r"\d+", minor).group())  # type: ignore[union-attr]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "StandinInfo":
        data = json.loads(text)
        for key in ("excluded_libraries", "lambda_libraries", "missing_libraries"):
            data[key] = tuple(data.get(key) or ())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class StandinRoot:
    path: Path
    info: StandinInfo


@dataclass(frozen=True)
class StandinPlan:
    """How a stand-in for a target would be made (and what it is called in the cache)."""

    kind: str
    arch: str
    python_version: Tuple[int, int]
    name: str
    suite: Optional[str] = None
    interpreter: Optional[Interpreter] = field(default=None, compare=False)
    #: Debian packages debootstrap includes (a build root adds the headers, pip, setuptools)
    include: Tuple[str, ...] = ("python3",)
    #: a Debian stand-in for imports: add the Debian packages of the runtime's libraries
    runtime_libraries: bool = False


def read_info(root: Path) -> Optional[StandinInfo]:
    """The stand-in record of ``root``, or None if it is not a (complete) stand-in."""
    try:
        return StandinInfo.from_json((Path(root) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
           "sbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n")
GROUP = "root:x:0:\nsbx_user1051:x:990:\n"


def lambda_dirs(root: Path) -> None:
    for d in ("var/task", "var/runtime", "var/lang/bin", "var/lang/lib", "opt", "tmp", "proc",
              "dev", "sys", "etc", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
