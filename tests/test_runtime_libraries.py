"""The runtime's own stdlib needs its libraries: none of them may be recorded absent.

Lambda's Python is CPython built on the runtime's OS; its stdlib extension modules
(``lib-dynload/_sqlite3``, ``_lzma``, ``_bz2``, ``_uuid``, ``_ctypes``, ``_ssl`` ...) link system
libraries, and every one of them imports on Lambda. So a library one of those modules links
cannot be "absent" on that runtime; registry/runtimes.yaml said so for libsqlite3 on AL2 (the
bare provided.al2 listing, not the Python images) and a verdict built on that data was wrong.

The sonames are derived from a stand-in of the same Python version (a local CPython, as the
``copy`` stand-in root uses, or a cached stand-in root): its lib-dynload modules' DT_NEEDED.
A stand-in is built on another OS, so its sonames may carry another version (``libffi.so.8``
where AL2 has ``libffi.so.6``, ``libbz2.so.1.0`` where Amazon Linux says ``libbz2.so.1``): a
library counts as recorded absent when its soname matches an ``absent`` entry *and* the
runtime records no present soname of the same library (same name before ``.so``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

from lambda_compat.verify import elf
from compat_tests.local_env import python_path
from lambda_compat.registry.runtimes import load_runtimes
from lambda_compat.targets.arch import ARCHITECTURES
from lambda_compat.targets.facts import RuntimeFacts

#: lib-dynload modules the Lambda images do not ship or no function imports (the stand-in
#: roots leave them out too: standin.copyroot._STDLIB_SKIP_GLOBS).
SKIP_MODULES = ("_tkinter", "_test", "xxlimited", "_xxtestfuzz", "_ctypes_test", "xxsubtype")
#: Sonames every Linux process has; the glibc group is checked elsewhere (glibc versions).
_GLIBC = ("libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "libutil.so",
          "ld-linux")

_DYNLOAD = ("import sysconfig, json; "
            "print(json.dumps(sysconfig.get_config_var('DESTSHARED')))")


def _dynload_dir(python: str) -> Optional[Path]:
    proc = subprocess.run([python, "-I", "-S", "-c", _DYNLOAD], capture_output=True,
                          text=True, timeout=60)
    if proc.returncode != 0:
        return None
    value = json.loads(proc.stdout.strip().splitlines()[-1])
    return Path(value) if value and Path(value).is_dir() else None


def stdlib_sonames(dynload: Path) -> Dict[str, Set[str]]:
    """soname -> the lib-dynload modules that link it (glibc and skipped modules left out)."""
    out: Dict[str, Set[str]] = {}
    for path in sorted(dynload.glob("*.so")):
        module = path.name.split(".", 1)[0]
        if module.startswith(SKIP_MODULES):
            continue
        info = elf.read_elf(path)
        for soname in info.needed:
            if soname.startswith(_GLIBC) or soname.startswith("libpython"):
                continue
            out.setdefault(soname, set()).add(module)
    return out


def _stem(soname: str) -> str:
    return soname.split(".so", 1)[0]


def recorded_absent(facts: RuntimeFacts, soname: str) -> Optional[str]:
    """The absent entry that rules ``soname``'s library out, or None (see module doc)."""
    fact = facts.library_fact(soname)
    if fact.status != "absent":
        return None
    stem = _stem(soname)
    present = [s for s in facts.sonames if _stem(s) == stem]
    return None if present else fact.describe(facts.name)


def _standin_dynload(runtime: str) -> Tuple[Optional[Path], str]:
    """lib-dynload of a stand-in of ``runtime``'s Python: a local CPython, else a cached
    stand-in root; (None, why) when this machine has neither."""
    registry = load_runtimes()
    facts = registry.get(runtime, "x86_64")
    path = python_path(facts.python_version, "x86_64")
    if path is not None:
        dynload = _dynload_dir(path)
        if dynload is not None:
            return dynload, f"CPython {'.'.join(map(str, facts.python_version))} at {path}"
    from lambda_compat.prove.standin.roots import find_standin
    from lambda_compat.targets.target import Target
    root = find_standin(Target.from_facts(facts))
    if root is not None:
        found = sorted(root.path.glob(f"var/lang/lib/python{facts.python_version[0]}."
                                      f"{facts.python_version[1]}/lib-dynload"))
        if found and found[0].is_dir():
            return found[0], f"stand-in root {root.path}"
    return None, f"no local CPython {facts.python_version[0]}.{facts.python_version[1]} " \
                 f"and no cached stand-in root for it"


# --------------------------------------------------------------------------- the rule itself

def _facts(**changes) -> RuntimeFacts:
    import dataclasses
    return dataclasses.replace(load_runtimes().get("python3.11", "x86_64"), **changes)


def test_the_rule_flags_a_stdlib_library_recorded_absent():
    base = _facts()
    # libsqlite3 as the registry had it before S21: absent on AL2
    wrong = _facts(sonames=base.sonames - {"libsqlite3.so.0"},
                   absent_sonames=base.absent_sonames | {"libsqlite3.so.0"})
    assert recorded_absent(wrong, "libsqlite3.so.0") is not None
    assert "shared_libraries.absent: libsqlite3.so.0" in recorded_absent(wrong, "libsqlite3.so.0")
    assert recorded_absent(base, "libsqlite3.so.0") is None
    # another version of a library the runtime has is not "absent": AL2's Python links
    # libffi.so.6 and libssl.so.10, a Debian stand-in libffi.so.8 and libssl.so.3
    assert base.library_fact("libffi.so.8").status == "absent"
    assert recorded_absent(base, "libffi.so.8") is None
    assert recorded_absent(base, "libssl.so.3") is None
    # unverified is not absent
    assert base.library_fact("liblzma.so.5").status == "unverified"
    assert recorded_absent(base, "liblzma.so.5") is None


def test_stdlib_sonames_are_read_from_lib_dynload(tmp_path):
    dynload, how = _standin_dynload("python3.11")
    if dynload is None:
        pytest.skip(how)
    found = stdlib_sonames(dynload)
    assert "_ctypes" in found.get(next(s for s in found if s.startswith("libffi.so")), set())
    assert not any(s.startswith(_GLIBC) for s in found)


# --------------------------------------------------------------------------- the shipped data

@pytest.mark.parametrize("runtime", load_runtimes().runtimes)
def test_no_library_of_the_runtimes_own_stdlib_is_recorded_absent(runtime):
    dynload, how = _standin_dynload(runtime)
    if dynload is None:
        pytest.skip(f"{runtime}: {how}; the rule is checked for the runtimes with one")
    needed = stdlib_sonames(dynload)
    assert needed, f"{how}: no extension module in {dynload}"
    problems: List[str] = []
    for arch in ARCHITECTURES:
        facts = load_runtimes().get(runtime, arch)
        for soname, modules in sorted(needed.items()):
            why = recorded_absent(facts, soname)
            if why:
                problems.append(f"{soname} (linked by {', '.join(sorted(modules))} of {how}) "
                                f"is recorded absent: {why}")
    assert not problems, "\n".join(problems)
