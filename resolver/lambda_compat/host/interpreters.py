"""Find local CPython interpreters of a given version (to build sdists for a target).

Candidates, in order: an explicit ``--python``; ``pythonX.Y`` on PATH; pyenv's versions
(``$PYENV_ROOT`` or ``~/.pyenv``); uv-managed Pythons; common prefixes. Each candidate is run
once to learn what it really is (pyenv shims of versions that are not active fail here and are
skipped). Nothing is hard-coded to this machine.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Tuple

from .. import errors
from .once import once_per_argument

#: The newest CPython 3 minor version looked for (the interpreters' own, not a target's).
_NEWEST_MINOR = 15

_PROBE = (
    "import json, platform, sys, sysconfig\n"
    "try:\n import pip; pipv = pip.__version__\n"
    "except Exception:\n pipv = None\n"
    "print(json.dumps({'version': list(sys.version_info[:3]),"
    " 'implementation': sys.implementation.name, 'machine': platform.machine(),"
    " 'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED')),"
    " 'executable': sys.executable, 'pip': pipv}))\n"
)


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: Tuple[int, int, int]
    implementation: str
    machine: str
    free_threaded: bool
    pip: Optional[str]

    @property
    def short_version(self) -> Tuple[int, int]:
        return self.version[:2]

    def describe(self) -> str:
        return f"CPython {'.'.join(map(str, self.version))} ({self.path})"


@once_per_argument
def probe(path: str) -> Optional[Interpreter]:
    """Run ``path`` once; None if it is not a working Python."""
    try:
        proc = subprocess.run([path, "-I", "-c", _PROBE], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return Interpreter(path=path, version=tuple(data["version"]),
                       implementation=data["implementation"], machine=data["machine"],
                       free_threaded=data["free_threaded"], pip=data["pip"])


def _candidates(version: Tuple[int, int]) -> Iterator[str]:
    name = f"python{version[0]}.{version[1]}"
    roots = [os.environ.get("PYENV_ROOT"), os.path.expanduser("~/.pyenv")]
    # pyenv's shims are shell scripts that run `pyenv exec` (a dozen processes, about 0.2 s
    # before Python starts): the interpreters they lead to are listed below, directly
    shims = {os.path.realpath(os.path.join(root, "shims")) for root in filter(None, roots)}
    found = shutil.which(name)
    if found and os.path.dirname(os.path.realpath(found)) not in shims:
        yield found
    for root in filter(None, roots):
        for path in sorted(glob.glob(os.path.join(root, "versions", f"{version[0]}.{version[1]}*",
                                                  "bin", name)), reverse=True):
            yield path
    uv_dir = os.environ.get("UV_PYTHON_INSTALL_DIR") or os.path.expanduser("~/.local/share/uv/python")
    for path in sorted(glob.glob(os.path.join(uv_dir, f"cpython-{version[0]}.{version[1]}.*", "bin",
                                              name)), reverse=True):
        yield path
    for prefix in ("/usr/local/bin", "/usr/bin", "/opt/python/bin"):
        yield os.path.join(prefix, name)


def find_interpreter(version: Tuple[int, int], machine: str,
                     explicit: Optional[str] = None) -> Optional[Interpreter]:
    """A CPython ``version`` interpreter running natively as ``machine``, or None.

    An explicit path must be that version, else :class:`~lambda_compat.errors.BadInput`.
    """
    if explicit:
        interp = probe(explicit)
        if interp is None:
            raise errors.BadInput(f"--python {explicit}: not a working Python interpreter.",
                                  hint="Point --python at a CPython executable.")
        if interp.short_version != tuple(version) or interp.implementation != "cpython":
            raise errors.BadInput(
                f"--python {explicit} is {interp.implementation} "
                f"{'.'.join(map(str, interp.version))}, but the target needs CPython "
                f"{version[0]}.{version[1]}.",
                hint="Pass an interpreter of the target's Python version, or omit --python.")
        return interp
    seen = set()
    for path in _candidates((version[0], version[1])):
        real = os.path.realpath(path)
        if real in seen or not os.path.exists(path):
            continue
        seen.add(real)
        interp = probe(path)
        if (interp and interp.implementation == "cpython"
                and interp.short_version == tuple(version)
                and interp.machine == machine and not interp.free_threaded):
            return interp
    return None


def available_versions(machine: str) -> List[Tuple[int, int]]:
    """Which CPython 3.x versions have a usable interpreter here (for messages)."""
    return [(3, m) for m in range(8, 15) if find_interpreter((3, m), machine)]


def pure_build_interpreters(machine: str) -> List[Interpreter]:
    """Every CPython 3.x here (running as ``machine``, with pip), newest first: the candidates
    of an any-Python pure build (:func:`pick_pure_build`)."""
    found = [find_interpreter((3, m), machine) for m in range(_NEWEST_MINOR, 7, -1)]
    return [i for i in found if i is not None and i.pip]


def pick_pure_build(candidates: List[Interpreter],
                    requires_python: Optional[str]) -> Optional[Interpreter]:
    """The newest of ``candidates`` whose version satisfies ``requires_python`` (the source's
    own, unknown: any), so that a setup.py computing its metadata from the running Python
    sees one as close as possible to the newest targets; None if none does."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import Version

    try:
        spec = SpecifierSet(requires_python or "")
    except InvalidSpecifier:
        spec = SpecifierSet("")
    ordered = sorted(candidates, key=lambda i: i.version, reverse=True)
    for interp in ordered:
        if spec.contains(Version(".".join(map(str, interp.version))), prereleases=True):
            return interp
    return None


def warm_up(version: Tuple[int, int], machine: str, explicit: Optional[str] = None,
            also: Optional[Callable[[], Any]] = None) -> threading.Thread:
    """Probe, on a daemon thread, the interpreters a build for ``version`` will ask for (the
    target's own; without one, every version a pure build may use), and run ``also``: the
    answers are remembered, and a caller asking meanwhile waits for the probe under way
    instead of running it twice. Errors are left for that caller to meet."""
    def run() -> None:
        try:
            if also is not None:
                also()
            if find_interpreter(version, machine, explicit) is None:
                pure_build_interpreters(machine)
        except Exception:
            pass

    thread = threading.Thread(target=run, name="lc-probe", daemon=True)
    thread.start()
    return thread
