"""The any-Python pure build: a source built once, without compilers, by any local CPython.

Where no build environment exists for a target (no CPython of its version here: python3.14
on most machines today), a source whose wheel is *pure* still fits it: built by the newest
local CPython that satisfies the source's Requires-Python (:func:`~lambda_compat.host.
interpreters.pick_pure_build`), with every compiler disabled, in the build sandbox. The wheel
is accepted for a target only if it is pure for it (:func:`problems`): tagged ``py3-none-any``
(or ``pyXY-none-any`` for a Python up to the target's), no ELF file anywhere in it, and the
target's Python satisfies its Requires-Python. The build does not depend on the target, so it
is built once and cached by the source's sha256 and ``pure`` for every target.

Caveat: a setup.py may compute its metadata from the Python that runs it (a version-dependent
``install_requires``); the newest local Python is as close as this machine gets to the newest
targets, the Requires-Dist markers are still evaluated for the target, and the check's dynamic
proof still imports the result in the target's environment where a backend exists.
"""

from __future__ import annotations

import email.parser
import re
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import compatible_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..host.interpreters import Interpreter

_ELF_MAGIC = b"\x7fELF"

#: What the report says of the wheel an any-Python pure build produced (attempts text).
CAVEAT = ("the wheel is pure (no compiled code, no ELF file), so it imports on any CPython "
          "its Requires-Python admits; a setup.py that computes its metadata from the running "
          "Python saw {built}, not {target} (the Requires-Dist markers are evaluated for the "
          "target; the check's dynamic proof imports it where a backend exists)")


def cache_key(source_key: str) -> str:
    """The built-wheel cache key: the source's sha256 and ``pure``, target-independent."""
    return f"{source_key}-pure"


def version_text(interp: Interpreter) -> str:
    return ".".join(map(str, interp.version))


def describe(built_by: str) -> str:
    """The DistOutcome ``interpreter`` of an accepted any-Python pure build, from the
    builder's own description (``CPython 3.13.1 (/usr/bin/python3.13)``)."""
    m = re.fullmatch(r"(CPython \S+) \((.*)\)", built_by.strip())
    name, path = (m.group(1), f", {m.group(2)}") if m else (built_by.strip(), "")
    return f"{name} (any-Python pure build{path}; the wheel has no native code)"


def requires_python(pkg_info: Optional[str]) -> Optional[str]:
    """The Requires-Python of a PKG-INFO (or METADATA) text, if any."""
    if not pkg_info:
        return None
    msg = email.parser.Parser().parsestr(pkg_info, headersonly=True)
    value = msg.get("Requires-Python")
    return value.strip() if value else None


def problems(wheel: Path, python_version: Sequence[int], python_full_version: str) -> List[str]:
    """Why ``wheel`` is not a pure wheel for a CPython ``python_version`` target; [] if it is."""
    out: List[str] = []
    try:
        tags = parse_wheel_filename(wheel.name)[3]
    except InvalidWheelFilename as exc:
        return [f"{wheel.name} is not a valid wheel file name ({exc})"]
    version = (int(python_version[0]), int(python_version[1]))
    accepted = set(compatible_tags(version, interpreter=f"cp{version[0]}{version[1]}",
                                   platforms=[]))
    if not all(t.abi == "none" and t.platform == "any" and t.interpreter.startswith("py")
               for t in tags) or not any(t in accepted for t in tags):
        out.append(f"{wheel.name} is tagged {', '.join(sorted(map(str, tags)))}, not a pure "
                   f"py3-none-any wheel for Python {version[0]}.{version[1]}")
    try:
        with zipfile.ZipFile(wheel) as zf:
            elf = [i.filename for i in zf.infolist()
                   if not i.is_dir() and zf.open(i).read(4) == _ELF_MAGIC]
            metadata = [n for n in zf.namelist()
                        if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            text = zf.read(metadata[0]).decode("utf-8", "replace") if metadata else ""
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        return out + [f"{wheel.name} cannot be read ({exc})"]
    if elf:
        out.append(f"{wheel.name} contains an ELF file ({elf[0]}"
                   + (f" and {len(elf) - 1} more" if len(elf) > 1 else "") + ")")
    spec = requires_python(text)
    if spec and not _admits(spec, python_full_version):
        out.append(f"{wheel.name} requires Python {spec}, the target's is "
                   f"{python_full_version}")
    return out


def _admits(spec: str, version: str) -> bool:
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return False  # a Requires-Python that cannot be read cannot be judged
