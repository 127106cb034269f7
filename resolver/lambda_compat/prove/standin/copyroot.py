"""The ``copy`` recipe: a local CPython copied into a Lambda-style root, with its libraries."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from ... import errors
from ...host import binfmt
from ...host.interpreters import Interpreter
from ...targets.arch import ARCH_OF_MACHINE
from .info import ALWAYS_ABSENT, GROUP, PASSWD, StandinInfo, lambda_dirs


#: Parts of a CPython stdlib a Lambda function never imports (the image lacks them too).
_STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "site-packages", "ensurepip",
                "lib2to3/tests", "ctypes/test", "distutils/tests", "unittest/test",
                "sqlite3/test", "tkinter/test", "__phello__"}
_STDLIB_SKIP_GLOBS = ("config-*", "_tkinter*.so", "_test*.so", "xxlimited*.so", "_xxtestfuzz*.so")
LAYOUT_PROBE = r"""
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


def ldd(paths: Sequence[Path], env: Optional[Dict[str, str]] = None
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


def ldconfig_paths() -> Dict[str, str]:
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


def is_absent(soname: str, patterns: Iterable[str]) -> bool:
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
    proc = subprocess.run([interpreter.path, "-I", "-S", "-c", LAYOUT_PROBE],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise errors.EnvironmentProblem(f"{interpreter.path} did not describe its layout: "
                                        f"{proc.stderr.strip()[-400:]}")
    layout = json.loads(proc.stdout.strip().splitlines()[-1])
    major, minor = layout["version"][:2]
    v = f"{major}.{minor}"
    lambda_dirs(dest)
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
    needed, loader, _missing = ldd(elf_files, env=env)
    excluded: List[str] = []
    # The interpreter's own libraries: Lambda's Python has working modules, so these are copied
    # even where the runtime lacks the soname system-wide (Lambda ships them in /var/lang/lib).
    for soname, path in sorted(needed.items()):
        if path.startswith(str(dest)) or is_absent(soname, ALWAYS_ABSENT):
            if is_absent(soname, ALWAYS_ABSENT):
                excluded.append(soname)
            continue
        shutil.copy2(os.path.realpath(path), lib64 / soname)
    # The libraries the runtime image has, where the host has them (and what they need).
    host_libs = ldconfig_paths()
    extra = {s: host_libs[s] for s in sorted(facts.sonames)
             if s in host_libs and s not in needed and not is_absent(s, absent)}
    deps, _, _ = ldd([Path(p) for p in extra.values()]) if extra else ({}, None, [])
    lambda_libs = []
    for soname, path in sorted({**deps, **extra}.items()):
        if (lib64 / soname).exists():
            continue
        if is_absent(soname, absent):
            excluded.append(soname)
            continue
        shutil.copy2(os.path.realpath(path), lib64 / soname)
        lambda_libs.append(soname)
    if loader:
        _place(dest, loader, lib64)
    _usr_links(dest)
    _copy_shell(dest, lib64)
    for path, text in (("etc/passwd", PASSWD), ("etc/group", GROUP),
                       ("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")):
        (dest / path).write_text(text)
    if os.path.exists("/etc/localtime"):
        shutil.copy2(os.path.realpath("/etc/localtime"), dest / "etc/localtime")
    return StandinInfo(
        name=name, kind="copy", arch=ARCH_OF_MACHINE[binfmt.host_machine()],
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
            needed, _, _ = ldd([Path(candidate)])
            for soname, path in needed.items():
                if not (lib64 / soname).exists():
                    shutil.copy2(os.path.realpath(path), lib64 / soname)
            return


def _host_libc() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or "unknown libc"
    except (ValueError, OSError):
        return "unknown libc"
