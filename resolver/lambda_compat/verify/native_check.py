"""Static proof of a bundle's shared objects against one target: ELF machine, needed
GLIBC_/GLIBCXX_/CXXABI_/GCC_ versions against the runtime's ceilings, every DT_NEEDED library
found in the bundle (DT_RPATH/DT_RUNPATH with ``$ORIGIN``, Lambda's LD_LIBRARY_PATH dirs,
``*.libs`` folders) or among the image's libraries, and extension module names the target's
Python loads. Part of :class:`~lambda_compat.verify.static_check.StaticChecker`.
"""

from __future__ import annotations

import posixpath
import re
from typing import Dict, List, Optional, Sequence, Tuple

from . import elf
from ..errors import ELFError
from .bundle import OPT, TASK, Bundle
from ..targets.target import Target
from .wheels import Finding

#: Lambda's LD_LIBRARY_PATH when the registry entry has none.
_DEFAULT_LD_PATH = ("/var/lang/lib", "/lib64", "/usr/lib64", "/var/runtime", "/var/runtime/lib",
                    "/var/task", "/var/task/lib", "/opt/lib")
#: Libraries whose symbol versions the image's copy may not satisfy but a bundled copy can.
_TOOLCHAIN_LIBS = {"GLIBCXX_": "libstdc++.so.6", "CXXABI_": "libstdc++.so.6",
                   "GCC_": "libgcc_s.so.1"}
_PY_TAGGED = re.compile(
    r"^([A-Za-z_][A-Za-z0-9_]*)\.((?:cpython|pypy|graalpy|pyston)[A-Za-z0-9_-]*|abi3)\.so$")
_CPY = re.compile(r"^cpython-(\d)(\d+)([a-z]*)-([a-z0-9_]+)-linux-([a-z0-9]+)$")


def _v(v: Sequence[int]) -> str:
    return ".".join(map(str, v))


def check_native(b: Bundle, lib_index: Dict[str, List[str]], target: Target,
                 hidden_dirs: Tuple[str, ...]) -> List[Finding]:
    """Findings for every shared object of ``b`` that ``target`` can see.

    ``lib_index``: file name -> directories (Lambda paths) holding a file of that name.
    """
    facts = target.facts
    ld_path = [p for p in (_env(target).get("LD_LIBRARY_PATH") or "").split(":") if p] \
        or list(_DEFAULT_LD_PATH)
    ld_path = [p for p in ld_path if p.startswith((TASK, OPT))]
    suffixes = _ext_suffixes(target)
    names = {d.key: d.name for d in b.distributions}
    out: List[Finding] = []
    for entry in b.native_files:
        path = entry.path
        if entry.link is not None:
            continue  # the file it points at is checked under its own name
        if any(path.startswith(h + "/") for h in hidden_dirs):
            continue
        key = b.owner.get(path)
        dist = names[key] if key else b.vendored_group(path)
        base = path.rpartition("/")[2]
        info = b.elf(path)
        is_ext = bool(_PY_TAGGED.match(base)) or _plain_extension(base)
        if isinstance(info, ELFError):
            out.append(Finding(
                "not-elf", dist, path, f"{path}: {info.problem}.",
                f"Reinstall {dist}; the file is damaged or not a shared object.",
                severity="error" if is_ext else "warning"))
            continue
        if info.load_problem:
            out.append(Finding(
                "not-loadable", dist, path,
                f"{base}: the dynamic loader refuses it: {info.load_problem}.",
                f"Reinstall {dist}; the file is damaged (or was never a shared object).",
                severity="error" if is_ext else "warning"))
            continue
        if info.machine != target.machine:
            out.append(Finding(
                "wrong-arch", dist, path,
                f"{base} is {info.machine} machine code; the function runs on "
                f"{target.machine}.",
                f"Install {dist} built for {target.machine} (lambda-compat build --arch "
                f"{target.arch}), or deploy the function as {_other_arch(info.machine)}."))
            continue
        abi = _abi_problem(path, base, suffixes, target, b.files)
        if abi:
            out.append(Finding(
                "python-abi-mismatch", dist, path,
                f"{base} is an extension module {abi}, which this runtime's interpreter "
                f"does not load.",
                f"Install {dist} built for the runtime's Python (a wheel tagged "
                f"cpXY for it, or abi3), e.g. with lambda-compat build --runtime ..."))
        search = _search_dirs(path, info, ld_path)
        out += _versions(lib_index, dist, path, base, info, target, search)
        out += _needed(lib_index, dist, path, base, info, target, search, facts)
    return out

def _found(lib_index: Dict[str, List[str]], name: str, dirs: Sequence[str]) -> Optional[str]:
    where = lib_index.get(name)
    if not where:
        return None
    for d in dirs:
        if d in where:
            return f"{d}/{name}"
    return None

def _versions(lib_index: Dict[str, List[str]], dist: str, path: str, base: str, info: elf.ELFInfo, target: Target,
              search: Sequence[str]) -> List[Finding]:
    out: List[Finding] = []
    glibc = info.max_version("GLIBC_")
    if glibc and tuple(glibc[:2]) > tuple(target.glibc):
        need = f"GLIBC_{_v(glibc)}"
        al2023 = tuple(glibc[:2]) <= (2, 34)
        out.append(Finding(
            "glibc-too-new", dist, path,
            f"{base} needs {need}; the runtime has glibc {_v(target.glibc)}.",
            f"Install a {dist} wheel tagged manylinux_2_{target.glibc[1]} or older "
            f"(an older release if the current one has none)"
            + (", or move to python3.12+ (Amazon Linux 2023, glibc 2.34)."
               if al2023 and tuple(target.glibc) < (2, 34) else ".")))
    facts = target.facts
    if facts is None:
        return out
    for prefix, ceiling, code in (("GLIBCXX_", facts.glibcxx_max, "libstdcxx-too-new"),
                                  ("CXXABI_", facts.cxxabi_max, "libstdcxx-too-new"),
                                  ("GCC_", facts.gcc_max, "libgcc-too-new")):
        lib = _TOOLCHAIN_LIBS[prefix]
        needed = _max_from(info, prefix, lib)
        if not needed or not ceiling or tuple(needed) <= tuple(ceiling):
            continue
        if _found(lib_index, lib, search):
            continue  # a bundled copy of the library serves it
        out.append(Finding(
            code, dist, path,
            f"{base} needs {prefix}{_v(needed)} from {lib}; the runtime's {lib} provides "
            f"up to {prefix}{_v(ceiling)}.",
            f"Install a manylinux wheel of {dist} (built with an older toolchain), or ship "
            f"a newer {lib} in the bundle's lib/ directory."))
    return out

def _needed(lib_index: Dict[str, List[str]], dist: str, path: str, base: str, info: elf.ELFInfo, target: Target,
            search: Sequence[str], facts) -> List[Finding]:
    out: List[Finding] = []
    for lib in info.needed:
        if _found(lib_index, lib, search):
            continue
        if lib.startswith("libpython"):
            own = f"libpython{target.python_version[0]}.{target.python_version[1]}"
            if not lib.startswith(own):
                out.append(Finding(
                    "python-abi-mismatch", dist, path,
                    f"{base} links to {lib}; the runtime's interpreter is {own}.",
                    f"Install {dist} built for {target.interpreter}."))
            continue
        if facts is None or lib in facts.sonames:
            continue
        elsewhere = lib_index.get(lib, ())
        if any(d.endswith(".libs") for d in elsewhere):
            continue  # vendored auditwheel style; loaded through its package's RPATH
        if elsewhere:
            out.append(Finding(
                "library-not-on-search-path", dist, path,
                f"{base} needs {lib}; the bundle has it in {elsewhere[0]}, which is not on "
                f"its RPATH/RUNPATH nor on LD_LIBRARY_PATH, so it loads only if something "
                f"else loaded it first.",
                f"Move {lib} to the bundle's lib/ directory (on LD_LIBRARY_PATH).",
                severity="warning"))
            continue
        out.append(_missing_library(dist, path, base, lib, target, facts))
    return out


def _missing_library(dist: str, path: str, base: str, lib: str, target: Target,
                     facts) -> Finding:
    """The verdict policy for a DT_NEEDED library that neither the bundle nor the layers
    have: it is only compatible when the runtime is *recorded* to have it (docs/check.md,
    "Verdict policy"). Absent, unverified and unrecorded are all errors; the message names
    the registry fact (and its sources) that decided, so it can be checked or corrected."""
    fact = facts.library_fact(lib) if hasattr(facts, "library_fact") else None
    status = fact.status if fact is not None else (
        "absent" if facts.is_known_absent(lib) else "unknown")
    what = fact.describe(target.name) if fact is not None else "registry/runtimes.yaml"
    if status == "absent":
        told = f"does not have ({what})."
    elif status == "unverified":
        told = (f"may or may not have: nobody has verified it ({what}). Verify the fact on "
                f"the image (the refresh-runtimes probe records it) to change this verdict.")
    else:
        told = (f"is not known to have: it is not among the libraries recorded for "
                f"{target.name} in registry/runtimes.yaml. If the image has it, record it "
                f"there with its source.")
    return Finding(
        "missing-system-library", dist, path,
        f"{base} needs {lib}, which the bundle does not contain and the runtime image {told}",
        f"Ship {lib} (and what it needs) in the bundle's lib/ directory or a layer's lib/, "
        f"or use a wheel that bundles it"
        + (" (for psycopg2: psycopg2-binary)." if lib.startswith("libpq.") else "."),
        severity="error")


def _env(target: Target) -> Dict[str, str]:
    facts = target.facts
    return dict(facts.env) if facts is not None else {}


def _ext_suffixes(target: Target) -> Tuple[str, ...]:
    facts = target.facts
    if facts is not None and facts.ext_suffixes:
        return tuple(facts.ext_suffixes)
    major, minor = target.python_version
    return (f".cpython-{major}{minor}-{target.machine}-linux-gnu.so", ".abi3.so", ".so")


def _plain_extension(base: str) -> bool:
    """``_speedups.so``: a bare-suffix extension module name (not ``libfoo.so``)."""
    return base.endswith(".so") and base.count(".") == 1 and not base.startswith("lib")


def _abi_problem(path: str, base: str, suffixes: Sequence[str], target: Target,
                 files) -> Optional[str]:
    m = _PY_TAGGED.match(base)
    if not m:
        return None
    module, tag = m.group(1), m.group(2)
    if f".{tag}.so" in suffixes:
        return None
    directory = path.rpartition("/")[0]
    if any(f"{directory}/{module}{s}" in files for s in suffixes):
        return None  # another build of the same module serves this runtime
    c = _CPY.match(tag)
    if c is None:
        return f"for another Python implementation ({tag})"
    major, minor, flags, machine, libc = (int(c.group(1)), int(c.group(2)), c.group(3),
                                          c.group(4), c.group(5))
    if (major, minor) != tuple(target.python_version):
        return f"built for CPython {major}.{minor}"
    if flags:
        kind = {"t": "free-threaded", "d": "debug"}.get(flags, f"'{flags}'")
        return f"built for a {kind} CPython {major}.{minor}{flags}"
    if machine != target.machine:
        return f"named for {machine}"
    if libc != "gnu":
        return f"built for linux-{libc}"
    return f"named {tag}"


def _search_dirs(path: str, info: elf.ELFInfo, ld_path: Sequence[str]) -> List[str]:
    origin = path.rpartition("/")[0]
    out: List[str] = []
    # DT_RPATH is ignored by the loader when DT_RUNPATH is present; RPATH comes before
    # LD_LIBRARY_PATH, RUNPATH after it: for "is it found" the union is what matters.
    for entry in (info.runpath or info.rpath):
        entry = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        if entry.startswith("/"):
            out.append(posixpath.normpath(entry))
    out.extend(ld_path)
    return out


def _max_from(info: elf.ELFInfo, prefix: str, library: str) -> Optional[Tuple[int, ...]]:
    best = None
    for lib, name in info.version_needs:
        if lib != library or not name.startswith(prefix):
            continue
        try:
            v = elf.version_tuple(name)
        except ValueError:
            continue
        if best is None or v > best:
            best = v
    return best


def _other_arch(machine: str) -> str:
    return {"x86_64": "x86_64 (--architectures x86_64)",
            "aarch64": "arm64 (--architectures arm64)"}.get(machine, f"a {machine} function")
