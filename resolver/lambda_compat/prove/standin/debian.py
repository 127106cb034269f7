"""The Debian recipes: ``unpack`` (debootstrap's first stage, then extract) and ``debootstrap``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ... import errors
from ...host import binfmt
from ...host.interpreters import find_interpreter
from ...targets.arch import DEB_ARCH, MACHINE
from .info import DEBIAN_MIRROR, GROUP, PASSWD, StandinInfo, lambda_dirs


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
                        foreign: bool = False,
                        include: Tuple[str, ...] = ("python3",)) -> List[str]:
    return (["debootstrap"] + (["--foreign"] if foreign else []) +
            ["--variant=minbase", f"--include={','.join(include)}",
             f"--arch={DEB_ARCH[arch]}", suite, str(dest), mirror])


def _deb_versions(archives: Path) -> Dict[str, str]:
    """package -> version from downloaded .deb names (``name_version_arch.deb``)."""
    versions: Dict[str, str] = {}
    for deb in archives.glob("*.deb"):
        parts = deb.name[:-len(".deb")].split("_")
        if len(parts) == 3:
            versions[parts[0]] = parts[1].replace("%3a", ":")
    return versions


def build_debootstrap_root(suite: str, arch: str, dest: Path, *, name: str,
                           mirror: Optional[str] = None, unpack: bool = False,
                           include: Tuple[str, ...] = ("python3",)) -> StandinInfo:
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
    command = debootstrap_command(suite, arch, dest, mirror, foreign=unpack, include=include)
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
    lambda_dirs(dest)
    lang = dest / "var/lang"
    os.symlink(f"/usr/bin/python{v}", lang / "bin" / f"python{v}")
    os.symlink(f"python{v}", lang / "bin" / "python3")
    os.symlink(f"/usr/lib/python{v}", lang / "lib" / f"python{v}")
    compiled = ""
    if unpack:
        for name_, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            if not (dest / name_).exists():
                (dest / name_).write_text(text)
        compiled = _compile_stdlib(dest, (major, minor))
    libc = versions.get("libc6", "")
    made_from = " ".join(debootstrap_command(suite, arch, Path("ROOT"), mirror, foreign=unpack,
                                             include=include))
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
    from ..rootpaths import root_machine
    from ...host import sandbox
    machine = root_machine(root, f"/usr/bin/python{v}")
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
