"""Stand-in roots: Lambda-like root directories for when the real images are out of reach.

The public Lambda images cannot always be pulled (CI without registry access, air-gapped
machines). A stand-in root has the runtime's Python version and architecture, Lambda's
directory layout (``/var/lang``, ``/var/runtime``, ``/var/task``, ``/opt``) and, like Lambda,
no ``libpq``. It is *not* the Lambda image: its glibc is newer and its library set differs.
So a stand-in import proves less than an import in the real image; results built on one say
"stand-in" (see :attr:`StandinInfo.describe`).

Three recipes:

``copy`` (x86_64, or whatever the host is)
    the local CPython of the right version copied into ``/var/lang`` (interpreter, stdlib
    without tests/idle/tkinter, an empty site-packages, libpython), plus the shared libraries
    ``ldd`` lists for it and its extension modules and the host's copies of the libraries the
    runtime's facts list as present, in ``/usr/lib64`` - minus every library the facts list
    as absent (libpq...). Seconds.
``unpack`` (arm64, or a version without a local interpreter)
    the Debian suite whose python3 has the version (bullseye 3.9, bookworm 3.11, trixie 3.13,
    sid 3.14): ``debootstrap --foreign --variant=minbase --include=python3`` (download, verify,
    extract), every downloaded package extracted with ``dpkg-deb -x`` but not configured, the
    stdlib byte-compiled by a local interpreter of the version if there is one. No qemu needed
    to build; about a minute, mostly download. Needs root and the Debian mirror.
``debootstrap``
    the same suite with a full debootstrap: packages configured by their maintainer scripts,
    run through qemu-user for arm64. The most faithful Debian root, and many minutes.

Debian roots get Lambda's layout: ``/var/lang/bin/python3.X`` and ``/var/lang/lib/python3.X``
link to Debian's, so ``sys.path`` is the runtime's, verbatim.

Roots are cached under ``<cache>/roots/<name>`` and built in a temporary directory that is
renamed into place when complete, under a file lock, so parallel test workers share one build.
Every root carries ``/lambda-compat-standin.json`` (:class:`StandinInfo`).

``python -m lambda_compat.prove.standin`` builds roots, images and the binfmt registration by hand.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from filelock import FileLock

from ..host import binfmt
from .. import errors
from ..host.interpreters import Interpreter, find_interpreter
from ..targets.target import MACHINE, Target

INFO_FILE = "lambda-compat-standin.json"
#: Recipes: ``auto`` picks copy when a native local interpreter exists, else unpack.
KINDS = ("auto", "copy", "unpack", "debootstrap")
INFO_VERSION = 1
#: Debian suites whose python3 is the given version (for both architectures).
DEBIAN_SUITES: Dict[Tuple[int, int], str] = {
    (3, 9): "bullseye", (3, 11): "bookworm", (3, 13): "trixie", (3, 14): "sid",
}
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_DEB_ARCH = {"x86_64": "amd64", "arm64": "arm64"}
#: Parts of a CPython stdlib a Lambda function never imports (the image lacks them too).
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "site-packages", "ensurepip",
                "lib2to3/tests", "ctypes/test", "distutils/tests", "unittest/test",
                "sqlite3/test", "tkinter/test", "__phello__"}
_STDLIB_SKIP_GLOBS = ("config-*", "_tkinter*.so", "_test*.so", "xxlimited*.so", "_xxtestfuzz*.so")
#: Libraries no stand-in may contain whatever the facts say (the matrix suite relies on it).
ALWAYS_ABSENT = ("libpq.so*",)


# --------------------------------------------------------------------------- records

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
    version: int = INFO_VERSION

    def describe(self) -> str:
        if self.kind in ("debootstrap", "unpack"):
            how = "debootstrap" if self.kind == "debootstrap" else "debootstrap, unpacked"
            origin = f"debian {self.suite} {_DEB_ARCH[self.arch]} ({how})"
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
        for key in ("excluded_libraries", "lambda_libraries"):
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


def read_info(root: Path) -> Optional[StandinInfo]:
    """The stand-in record of ``root``, or None if it is not a (complete) stand-in."""
    try:
        return StandinInfo.from_json((Path(root) / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return None


def roots_dir(cache_dir: Optional[Path] = None) -> Path:
    if cache_dir is None:
        from ..build.builder import default_cache_dir
        cache_dir = default_cache_dir()
    return Path(cache_dir) / "roots"


# --------------------------------------------------------------------------- planning

def plan_standin(target: Target, kind: str = "auto") -> Tuple[Optional[StandinPlan], str]:
    """(plan, why-not) for a stand-in root serving ``target``.

    ``auto``: a copy of a local interpreter when one of the version runs natively here for the
    target's machine, else the matching Debian suite unpacked (``unpack``).
    """
    if kind not in KINDS:
        raise errors.BadInput(f"Unknown stand-in kind {kind!r}.",
                              hint=f"Choose one of: {', '.join(KINDS)}.")
    version: Tuple[int, int] = (target.python_version[0], target.python_version[1])
    v = "%d.%d" % version
    reasons = []
    if kind in ("auto", "copy"):
        interp = None
        if target.machine == binfmt.host_machine():
            interp = find_interpreter(version, target.machine)
        if interp is not None:
            name = f"copy-cpython{'.'.join(map(str, interp.version))}-{target.arch}"
            return StandinPlan("copy", target.arch, version, name, interpreter=interp), ""
        reasons.append(f"no local CPython {v} runs natively as {target.machine} here")
    if kind in ("auto", "unpack", "debootstrap"):
        suite = DEBIAN_SUITES.get(version)
        if suite is not None:
            recipe = "debootstrap" if kind == "debootstrap" else "unpack"
            name = f"debian-{suite}-{_DEB_ARCH[target.arch]}" + \
                ("-unpacked" if recipe == "unpack" else "")
            return StandinPlan(recipe, target.arch, version, name, suite=suite), ""
        reasons.append(f"no Debian suite ships Python {v} "
                       f"({', '.join(f'{s} {a}.{b}' for (a, b), s in DEBIAN_SUITES.items())})")
    return None, f"no stand-in root for {target.name}: " + "; ".join(reasons)


def find_standin(target: Target, *, kind: str = "auto",
                 cache_dir: Optional[Path] = None) -> Optional[StandinRoot]:
    """The cached stand-in for ``target`` if it has been built, else None (never builds)."""
    plan, _ = plan_standin(target, kind)
    if plan is None:
        return None
    path = roots_dir(cache_dir) / plan.name
    info = read_info(path)
    return StandinRoot(path, info) if info is not None else None


def ensure_standin(target: Target, *, kind: str = "auto", cache_dir: Optional[Path] = None,
                   mirror: Optional[str] = None, ui=None) -> StandinRoot:
    """The stand-in root for ``target``, built and cached on first use.

    Raises BackendUnavailable (an EnvironmentProblem) when none can be made here. ``ui``
    receives ``standin-build-start`` / ``standin-build-done`` when a root is really built.
    """
    plan, why = plan_standin(target, kind)
    if plan is None:
        raise errors.BackendUnavailable(why + ".", hint="Install a local interpreter of the "
                                        "version (pyenv install X.Y) or use a supported version.")
    return build_standin(plan, target=target, cache_dir=cache_dir, mirror=mirror, ui=ui)


def build_standin(plan: StandinPlan, *, target: Optional[Target] = None,
                  cache_dir: Optional[Path] = None, mirror: Optional[str] = None,
                  ui=None) -> StandinRoot:
    base = roots_dir(cache_dir)
    base.mkdir(parents=True, exist_ok=True)
    final = base / plan.name
    info = read_info(final)
    if info is not None:
        return StandinRoot(final, info)
    with FileLock(str(base / f"{plan.name}.lock")):
        info = read_info(final)
        if info is not None:  # another process built it while we waited
            return StandinRoot(final, info)
        if final.exists():  # an incomplete root from a crashed run of an older version
            shutil.rmtree(final)
        for stale in base.glob(f".tmp-{plan.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f".tmp-{plan.name}-", dir=base))
        started = time.monotonic()
        if ui is not None:
            ui.event("standin-build-start", name=plan.name, kind=plan.kind,
                     **({"target": target.name} if target is not None else {}))
        try:
            if plan.kind == "copy":
                assert plan.interpreter is not None
                facts = _facts_for(target, plan)
                info = build_copy_root(plan.interpreter, work, facts, name=plan.name)
            else:
                assert plan.suite is not None
                info = build_debootstrap_root(plan.suite, plan.arch, work, name=plan.name,
                                              mirror=mirror, unpack=plan.kind == "unpack")
            info = _finish(work, info, time.monotonic() - started)
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        if ui is not None:
            ui.event("standin-build-done", name=plan.name, kind=plan.kind,
                     seconds=info.build_seconds, path=str(final),
                     **({"target": target.name} if target is not None else {}))
    return StandinRoot(final, info)


def _facts_for(target: Optional[Target], plan: StandinPlan):
    if target is not None and target.facts is not None:
        return target.facts
    from ..registry.runtimes import load_runtimes
    return load_runtimes().get("python%d.%d" % plan.python_version, plan.arch)


def _finish(root: Path, info: StandinInfo, seconds: float) -> StandinInfo:
    for pattern in ALWAYS_ABSENT:
        found = [p for p in _walk_files(root) if fnmatch.fnmatch(p.name, pattern)]
        if found:
            raise errors.EnvironmentProblem(
                f"The stand-in root {root.name} contains {found[0].relative_to(root)}, which "
                f"Lambda does not have; refusing to cache it.")
    size = sum(p.lstat().st_size for p in _walk_files(root))
    stamp = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    info = StandinInfo(**{**asdict(info), "build_seconds": round(seconds, 2),
                          "size_bytes": size, "created": stamp,
                          "excluded_libraries": tuple(info.excluded_libraries),
                          "lambda_libraries": tuple(info.lambda_libraries)})
    (root / INFO_FILE).write_text(info.to_json(), encoding="utf-8")
    return info


def _walk_files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath, name)


# --------------------------------------------------------------------------- lambda layout

_PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
           "sbx_user1051:x:993:990::/home/sbx_user1051:/sbin/nologin\n")
_GROUP = "root:x:0:\nsbx_user1051:x:990:\n"


def _lambda_dirs(root: Path) -> None:
    for d in ("var/task", "var/runtime", "var/lang/bin", "var/lang/lib", "opt", "tmp", "proc",
              "dev", "sys", "etc", "root"):
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)


# --------------------------------------------------------------------------- copy recipe

_LAYOUT_PROBE = r"""
import json, os, sys, sysconfig
v = sysconfig.get_config_var
dynload = next((p for p in sys.path if p.rstrip('/').endswith('lib-dynload')), None)
print(json.dumps({
  'executable': os.path.realpath(sys.executable), 'version': list(sys.version_info[:3]),
  'full': '%d.%d.%d' % sys.version_info[:3] + ('' if sys.version_info[3] == 'final'
          else sys.version_info[3][0] + str(sys.version_info[4])),
  'stdlib': sysconfig.get_path('stdlib'), 'dynload': dynload,
  'shared': bool(v('Py_ENABLE_SHARED')), 'libdir': v('LIBDIR'),
  'instsoname': v('INSTSONAME'), 'ldlibrary': v('LDLIBRARY'),
}))
"""

_LDD_LINE = re.compile(r"^\s*(\S+)\s+=>\s+(\S+)\s+\(0x[0-9a-f]+\)\s*$")
_LDD_LOADER = re.compile(r"^\s*(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def _ldd(paths: Sequence[Path], env: Optional[Dict[str, str]] = None
         ) -> Tuple[Dict[str, str], Optional[str], List[str]]:
    """({soname: host path}, loader path, [sonames not found]) for ``paths`` (one ldd run)."""
    found: Dict[str, str] = {}
    loader = None
    missing: List[str] = []
    chunk = 200
    for i in range(0, len(paths), chunk):
        proc = subprocess.run(["ldd"] + [str(p) for p in paths[i:i + chunk]],
                              capture_output=True, text=True, timeout=120, env=env)
        for line in proc.stdout.splitlines():
            m = _LDD_LINE.match(line)
            if m:
                found.setdefault(m.group(1), m.group(2))
                continue
            if "=> not found" in line:
                missing.append(line.split("=>")[0].strip())
                continue
            m = _LDD_LOADER.match(line)
            if m:
                loader = m.group(1)
    return found, loader, sorted(set(missing))


def _ldconfig_paths() -> Dict[str, str]:
    """soname -> path from the host's loader cache, for the host's own machine."""
    flag = {"x86_64": "x86-64", "aarch64": "AArch64"}.get(binfmt.host_machine(), "")
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    result: Dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$", line)
        if m and (not flag or flag in m.group(2)):
            result.setdefault(m.group(1), m.group(3))
    return result


def _is_absent(soname: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(soname, p) for p in patterns)


def _copy_stdlib(src: Path, dest: Path) -> None:
    def ignore(directory: str, names: List[str]) -> List[str]:
        rel = os.path.relpath(directory, src)
        skipped = []
        for name in names:
            relname = name if rel == "." else f"{rel}/{name}"
            if relname in _STDLIB_SKIP or any(fnmatch.fnmatch(name, g) for g in _STDLIB_SKIP_GLOBS):
                skipped.append(name)
        return skipped

    shutil.copytree(src, dest, symlinks=True, ignore=ignore)


def build_copy_root(interpreter: Interpreter, dest: Path, facts, *, name: str) -> StandinInfo:
    """Copy ``interpreter`` into a Lambda-style ``/var/lang`` under ``dest`` (see module doc)."""
    proc = subprocess.run([interpreter.path, "-I", "-S", "-c", _LAYOUT_PROBE],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise errors.EnvironmentProblem(f"{interpreter.path} did not describe its layout: "
                                        f"{proc.stderr.strip()[-400:]}")
    layout = json.loads(proc.stdout.strip().splitlines()[-1])
    major, minor = layout["version"][:2]
    v = f"{major}.{minor}"
    _lambda_dirs(dest)
    lang = dest / "var/lang"
    shutil.copy2(layout["executable"], lang / "bin" / f"python{v}")
    os.symlink(f"python{v}", lang / "bin" / "python3")
    os.symlink(f"python{v}", lang / "bin" / "python")
    stdlib_dest = lang / "lib" / f"python{v}"
    _copy_stdlib(Path(layout["stdlib"]), stdlib_dest)
    (stdlib_dest / "site-packages").mkdir(exist_ok=True)
    dynload_dest = stdlib_dest / "lib-dynload"
    if layout["dynload"] and not dynload_dest.exists():
        _copy_stdlib(Path(layout["dynload"]), dynload_dest)
    elf_files = [lang / "bin" / f"python{v}"]
    if layout["shared"] and layout["instsoname"]:
        lib = Path(layout["libdir"], layout["instsoname"])
        if lib.exists():
            shutil.copy2(lib, lang / "lib" / lib.name)
            elf_files.append(lang / "lib" / lib.name)
    elf_files += sorted(dynload_dest.glob("*.so"))

    absent = tuple(facts.absent_sonames) + ALWAYS_ABSENT
    lib64 = dest / "usr/lib64"
    lib64.mkdir(parents=True)
    env = dict(os.environ, LD_LIBRARY_PATH=str(lang / "lib"))
    needed, loader, _missing = _ldd(elf_files, env=env)
    excluded: List[str] = []
    # The interpreter's own libraries: Lambda's Python has working modules, so these are copied
    # even where the runtime lacks the soname system-wide (Lambda ships them in /var/lang/lib).
    for soname, path in sorted(needed.items()):
        if path.startswith(str(dest)) or _is_absent(soname, ALWAYS_ABSENT):
            if _is_absent(soname, ALWAYS_ABSENT):
                excluded.append(soname)
            continue
        shutil.copy2(os.path.realpath(path), lib64 / soname)
    # The libraries the runtime image has, where the host has them (and what they need).
    host_libs = _ldconfig_paths()
    extra = {s: host_libs[s] for s in sorted(facts.sonames)
             if s in host_libs and s not in needed and not _is_absent(s, absent)}
    deps, _, _ = _ldd([Path(p) for p in extra.values()]) if extra else ({}, None, [])
    lambda_libs = []
    for soname, path in sorted({**deps, **extra}.items()):
        if (lib64 / soname).exists():
            continue
        if _is_absent(soname, absent):
            excluded.append(soname)
            continue
        shutil.copy2(os.path.realpath(path), lib64 / soname)
        lambda_libs.append(soname)
    if loader:
        _place(dest, loader, lib64)
    _usr_links(dest)
    _copy_shell(dest, lib64)
    for path, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP),
                       ("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")):
        (dest / path).write_text(text)
    if os.path.exists("/etc/localtime"):
        shutil.copy2(os.path.realpath("/etc/localtime"), dest / "etc/localtime")
    return StandinInfo(
        name=name, kind="copy", arch=_lambda_arch(binfmt.host_machine()),
        machine=binfmt.host_machine(), python=layout["full"],
        python_executable=f"/var/lang/bin/python{v}", libc=_host_libc(),
        made_from=f"CPython {layout['full']} at {layout['executable']}",
        excluded_libraries=tuple(sorted(set(excluded))), lambda_libraries=tuple(lambda_libs))


def _place(dest: Path, loader: str, lib64: Path) -> None:
    """Put the dynamic loader where binaries ask for it (PT_INTERP), in /usr/lib64."""
    shutil.copy2(os.path.realpath(loader), lib64 / Path(loader).name)


def _usr_links(dest: Path) -> None:
    """Amazon Linux's merged /usr: /lib64 -> usr/lib64 etc.; Debian's loader path too."""
    (dest / "usr/bin").mkdir(parents=True, exist_ok=True)
    (dest / "usr/lib").mkdir(parents=True, exist_ok=True)
    for link, target in (("lib64", "usr/lib64"), ("lib", "usr/lib"), ("bin", "usr/bin"),
                         ("sbin", "usr/bin")):
        if not (dest / link).exists():
            os.symlink(target, dest / link)
    multiarch = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(
        binfmt.host_machine())
    if multiarch:
        os.symlink("../lib64", dest / "usr/lib" / multiarch)
    if binfmt.host_machine() == "aarch64":  # PT_INTERP is /lib/ld-linux-aarch64.so.1
        os.symlink("../lib64/ld-linux-aarch64.so.1", dest / "usr/lib/ld-linux-aarch64.so.1")


def _copy_shell(dest: Path, lib64: Path) -> None:
    """/bin/sh (the host's dash or bash): Lambda has one, and subprocess(shell=True) needs it."""
    for candidate in ("/bin/dash", "/usr/bin/dash", "/bin/bash", "/usr/bin/bash"):
        if os.path.exists(candidate):
            shutil.copy2(os.path.realpath(candidate), dest / "usr/bin/sh")
            needed, _, _ = _ldd([Path(candidate)])
            for soname, path in needed.items():
                if not (lib64 / soname).exists():
                    shutil.copy2(os.path.realpath(path), lib64 / soname)
            return


def _host_libc() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or "unknown libc"
    except (ValueError, OSError):
        return "unknown libc"


def _lambda_arch(machine: str) -> str:
    return {m: a for a, m in MACHINE.items()}[machine]


# --------------------------------------------------------------------------- debootstrap recipe

def _dpkg_versions(root: Path) -> Dict[str, str]:
    versions: Dict[str, str] = {}
    try:
        text = (root / "var/lib/dpkg/status").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return versions
    for block in text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", block, flags=re.M))
        if "Package" in fields and "installed" in fields.get("Status", ""):
            versions[fields["Package"]] = fields.get("Version", "")
    return versions


def _upstream(version: str) -> str:
    version = version.split(":", 1)[-1]
    m = re.match(r"(\d+\.\d+(?:\.\d+)?(?:(?:~|)(?:a|b|rc)\d+)?)", version)
    return m.group(1).replace("~", "") if m else version


def debootstrap_command(suite: str, arch: str, dest: Path, mirror: str, *,
                        foreign: bool = False) -> List[str]:
    return (["debootstrap"] + (["--foreign"] if foreign else []) +
            ["--variant=minbase", "--include=python3", f"--arch={_DEB_ARCH[arch]}", suite,
             str(dest), mirror])


def _deb_versions(archives: Path) -> Dict[str, str]:
    """package -> version from downloaded .deb names (``name_version_arch.deb``)."""
    versions: Dict[str, str] = {}
    for deb in archives.glob("*.deb"):
        parts = deb.name[:-len(".deb")].split("_")
        if len(parts) == 3:
            versions[parts[0]] = parts[1].replace("%3a", ":")
    return versions


def build_debootstrap_root(suite: str, arch: str, dest: Path, *, name: str,
                           mirror: Optional[str] = None, unpack: bool = False) -> StandinInfo:
    """debootstrap ``suite`` for ``arch`` into ``dest`` and give it Lambda's layout.

    ``unpack=False``: a full debootstrap (the second stage configures every package, through
    qemu-user for a foreign architecture: minutes). ``unpack=True``: only debootstrap's first
    stage (download, verify, extract the required packages), then every other downloaded
    package is extracted with ``dpkg-deb -x`` and not configured; the stdlib's bytecode is
    compiled by a local interpreter of the same version when there is one. For importing
    Python modules the files are the same; it takes a fraction of the time.
    """
    mirror = mirror or os.environ.get("LAMBDA_COMPAT_DEBIAN_MIRROR") or DEBIAN_MIRROR
    exe = shutil.which("debootstrap")
    if exe is None:
        raise errors.BackendUnavailable(
            "debootstrap is not installed, so no Debian stand-in root can be built.",
            hint="apt-get install debootstrap (and qemu-user-static for arm64).")
    if os.geteuid() != 0:
        raise errors.BackendUnavailable("debootstrap needs root to build a stand-in root.",
                                        hint="Run once as root (sudo) to fill the cache.")
    machine = MACHINE[arch]
    if machine != binfmt.host_machine() and not unpack:
        binfmt.register(machine)
    command = debootstrap_command(suite, arch, dest, mirror, foreign=unpack)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=3600,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        log = dest / "debootstrap/debootstrap.log"
        tail = log.read_text(errors="replace")[-1500:] if log.exists() else proc.stderr[-1500:]
        raise errors.EnvironmentProblem(
            f"{' '.join(command)} failed (exit {proc.returncode}):\n{tail.strip()}",
            hint="Check that the mirror is reachable (LAMBDA_COMPAT_DEBIAN_MIRROR overrides it).")
    archives = dest / "var/cache/apt/archives"
    if unpack:
        versions = _deb_versions(archives)
        for deb in sorted(archives.glob("*.deb")):
            x = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True,
                               text=True, timeout=600)
            if x.returncode != 0:
                raise errors.EnvironmentProblem(f"dpkg-deb -x {deb.name} failed: "
                                                f"{x.stderr.strip()[-400:]}")
        shutil.rmtree(dest / "debootstrap", ignore_errors=True)
    else:
        versions = _dpkg_versions(dest)
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (dest / leftover).glob("*"):
            if path.is_file():
                path.unlink()
    pythons = sorted((tuple(int(x) for x in m.groups()), pkg)
                     for pkg in versions
                     for m in [re.fullmatch(r"python(\d+)\.(\d+)-minimal", pkg)] if m)
    if not pythons:
        raise errors.EnvironmentProblem(f"{suite} {arch}: debootstrap installed no python3.X.")
    (major, minor), pkg = pythons[-1]
    v = f"{major}.{minor}"
    _lambda_dirs(dest)
    lang = dest / "var/lang"
    os.symlink(f"/usr/bin/python{v}", lang / "bin" / f"python{v}")
    os.symlink(f"python{v}", lang / "bin" / "python3")
    os.symlink(f"/usr/lib/python{v}", lang / "lib" / f"python{v}")
    compiled = ""
    if unpack:
        for name_, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP)):
            if not (dest / name_).exists():
                (dest / name_).write_text(text)
        compiled = _compile_stdlib(dest, (major, minor))
    libc = versions.get("libc6", "")
    made_from = " ".join(debootstrap_command(suite, arch, Path("ROOT"), mirror, foreign=unpack))
    if unpack:
        made_from += " + dpkg-deb -x of the downloaded packages (not configured)" + compiled
    return StandinInfo(
        name=name, kind="unpack" if unpack else "debootstrap", arch=arch, machine=machine,
        python=_upstream(versions[pkg]), python_executable=f"/var/lang/bin/python{v}",
        libc=f"glibc {_upstream(libc)}" if libc else "glibc (unknown)",
        made_from=made_from, suite=suite)


def _compile_stdlib(root: Path, version: Tuple[int, int]) -> str:
    """Byte-compile the root's stdlib; returns a note for ``made_from`` ("" if not done).

    Debian's postinst would do it (through qemu: slowly); without bytecode every import in the
    root compiles its modules from source, which under qemu costs minutes per check run.
    Bytecode is portable across architectures within a version, so a local interpreter of the
    same version does it in seconds; without one the root's own interpreter does it once, in
    a writable sandbox of the root being built (through qemu for a foreign root).
    """
    v = "%d.%d" % version
    stdlib = root / "usr/lib" / f"python{v}"
    if not stdlib.is_dir():
        return ""
    interp = find_interpreter(version, binfmt.host_machine())
    if interp is not None:
        proc = subprocess.run([interp.path, "-I", "-m", "compileall", "-q", "-j", "0",
                               "-d", f"/usr/lib/python{v}", str(stdlib)],
                              capture_output=True, text=True, timeout=1800)
        return f"; stdlib bytecode compiled by CPython {'.'.join(map(str, interp.version))}" \
            if proc.returncode == 0 else ""
    from . import backends
    from ..host import sandbox
    machine = backends.root_machine(root, f"/usr/bin/python{v}")
    foreign = machine is not None and machine != binfmt.host_machine()
    if foreign and not binfmt.status(machine or "").usable_in_sandbox:
        return ""
    command = [f"/usr/bin/python{v}", "-I", "-m", "compileall", "-q", "-j", "0",
               f"/usr/lib/python{v}"]
    if sandbox.bwrap_works():
        argv = [shutil.which("bwrap") or "bwrap", "--bind", str(root), "/", "--proc", "/proc",
                "--dev", "/dev", "--tmpfs", "/tmp", "--unshare-all", "--die-with-parent"] + command
    elif os.geteuid() == 0:
        argv = ["chroot", str(root)] + command[:-3] + ["1", command[-1]]  # no /dev/shm: -j 1
    else:
        return ""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    return f"; stdlib bytecode compiled by the root's own Python{' under qemu' if foreign else ''}" \
        if proc.returncode == 0 else ""


# --------------------------------------------------------------------------- images

IMAGE_REPO = "localhost/lc-standin"
LABEL = "io.lambda-compat.standin"


def image_tag(root: StandinRoot) -> str:
    return f"{IMAGE_REPO}:{root.info.name}"


def _root_id(root: StandinRoot) -> str:
    return hashlib.sha256(root.info.to_json().encode()).hexdigest()[:16]


def ensure_standin_image(root: StandinRoot, *, engine: str = "podman") -> str:
    """A container image made from ``root`` (``podman import``), cached by tag and root id.

    Returns the tag (``localhost/lc-standin:<root name>``). The image is labelled as a
    stand-in so results made with it say so.
    """
    from .backends import _podman_global_args
    exe = shutil.which(engine) or engine
    tag = image_tag(root)
    want = _root_id(root)

    def current() -> Optional[str]:
        proc = subprocess.run([exe] + _podman_global_args(exe) +
                              ["image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}', tag],
                              capture_output=True, text=True, timeout=60)
        return proc.stdout.strip() if proc.returncode == 0 else None

    if current() == want:
        return tag
    with FileLock(str(root.path.parent / f"{root.info.name}.image.lock")):
        if current() == want:
            return tag
        arch = "arm64" if root.info.arch == "arm64" else "amd64"
        tar = subprocess.Popen(["tar", "-C", str(root.path), "--numeric-owner",
                                "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*",
                                "-c", "."], stdout=subprocess.PIPE)
        changes = [f"LABEL {LABEL}={want}",
                   f"LABEL {LABEL}.describe={json.dumps(root.info.describe())}",
                   "WORKDIR /var/task",
                   f"ENTRYPOINT {json.dumps([root.info.python_executable])}"]
        argv = [exe] + _podman_global_args(exe) + ["import", "--arch", arch]
        if Path(exe).name.startswith("docker"):
            argv = [exe, "import", "--platform", f"linux/{arch}"]
        for change in changes:
            argv += ["--change", change]
        proc = subprocess.run(argv + ["-", tag], stdin=tar.stdout, capture_output=True,
                              text=True, timeout=1800)
        tar.stdout.close()  # type: ignore[union-attr]
        tar.wait()
        if proc.returncode != 0 or tar.returncode != 0:
            raise errors.EnvironmentProblem(
                f"Importing {root.path} as {tag} failed: {proc.stderr.strip()[-600:]}")
    return tag


# --------------------------------------------------------------------------- command line

def _main(argv: Optional[Sequence[str]] = None) -> int:
    from ..registry.runtimes import get_target
    parser = argparse.ArgumentParser(prog="python -m lambda_compat.prove.standin",
                                     description="Build lambda-compat stand-in roots/images.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("binfmt", help="register qemu-aarch64 with binfmt_misc (root)")
    for name in ("root", "image"):
        p = sub.add_parser(name, help=f"build (or find) the stand-in {name} for targets")
        p.add_argument("--runtime", action="append", required=True)
        p.add_argument("--arch", action="append", default=None)
        p.add_argument("--kind", default="auto", choices=KINDS)
        p.add_argument("--cache-dir", type=Path)
        if name == "image":
            p.add_argument("--engine", default="podman")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "binfmt":
            print(binfmt.register("aarch64"))
            return 0
        for runtime in args.runtime:
            for arch in args.arch or ["x86_64", "arm64"]:
                target = get_target(runtime, arch)
                root = ensure_standin(target, kind=args.kind, cache_dir=args.cache_dir)
                line = f"{target.name}: {root.path} ({root.info.describe()}, built in " \
                       f"{root.info.build_seconds} s, {root.info.size_bytes // 2**20} MiB)"
                if args.cmd == "image":
                    line += f" -> {ensure_standin_image(root, engine=args.engine)}"
                print(line)
    except errors.LambdaCompatError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(_main())
