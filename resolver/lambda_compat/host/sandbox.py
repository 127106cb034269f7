"""Building sandbox command lines: bwrap, proot and chroot (in a private mount namespace).

Each runner puts a root directory at ``/``, the bundle read-only at ``/var/task``, a prepared
``/opt`` read-only, a fresh ``/tmp``, ``/proc`` and ``/dev``, and runs one command in it with
the working directory ``/var/task``. Nothing is written into the root, the bundle or the layers:
bwrap and chroot mount over them, proot translates paths.

A foreign-architecture root runs through qemu-user: directly when binfmt_misc has an ``F``
entry for the machine, else by starting a static qemu explicitly (``qemu`` argument).

The same engine confines source builds (the "build sandbox" section below, finished inside
pip by :mod:`lambda_compat.resolve.pip_sandbox`; threat model in docs/security.md).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import AbstractSet, Iterable, List, Optional, Sequence, Set

from .once import once_per_argument

#: In order of preference. chroot (root only) before proot: proot cannot make the bundle
#: read-only, so it runs on a private copy and cannot refuse writes the way Lambda does.
RUNNERS = ("bwrap", "chroot", "proot")
#: Where an explicitly started qemu is made visible inside the sandbox.
QEMU_IN_SANDBOX = "/.lambda-compat-qemu"


#: A shared library's file name: ``libfoo.so``, ``libfoo.so.1``, ``libfoo.so.1.2.3``.
_LIBRARY_NAME = re.compile(r"\.so(\.[0-9][0-9.]*)?$")


@dataclass(frozen=True)
class LibraryFilter:
    """Shared libraries to leave out of a view of the host's root.

    In each directory of ``dirs`` (real paths, no symlink in them), a file or symlink whose
    name is a shared library's is shown only if its real path is in ``allowed``; everything
    else (subdirectories, other files) is shown as it is.
    """

    dirs: AbstractSet[str]
    allowed: AbstractSet[str]

    def hides(self, directory: str, entry: "os.DirEntry[str]") -> bool:
        if directory not in self.dirs or not _LIBRARY_NAME.search(entry.name):
            return False
        if entry.is_dir():
            return False
        return os.path.realpath(entry.path) not in self.allowed


@dataclass(frozen=True)
class Mounts:
    """What the sandbox shows where (host paths)."""

    root: Path          # shown at /
    task: Path          # shown read-only at /var/task
    opt: Path           # shown read-only at /opt
    qemu: Optional[str] = None  # a static qemu-user to start the command with, or None


@once_per_argument
def bwrap_works() -> bool:
    """bwrap is installed and can create its namespaces here (not always so in containers)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        proc = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                               "--unshare-all", "--die-with-parent", "true"],
                              capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def proot_works() -> bool:
    return shutil.which("proot") is not None


def chroot_works() -> bool:
    return (os.geteuid() == 0 and shutil.which("unshare") is not None
            and shutil.which("mount") is not None)


def runner_works(name: str) -> bool:
    if name == "bwrap":
        return bwrap_works()
    if name == "proot":
        return proot_works()
    if name == "chroot":
        return chroot_works()
    raise ValueError(f"unknown runner {name!r}")


def first_runner(candidates: Iterable[str] = RUNNERS) -> Optional[str]:
    for name in candidates:
        if runner_works(name):
            return name
    return None


def install_hint(name: str) -> str:
    return {
        "bwrap": "apt-get install bubblewrap (Debian/Ubuntu) or dnf install bubblewrap (Fedora)",
        "proot": "apt-get install proot",
        "chroot": "run as root (chroot needs it) with util-linux's unshare and mount",
    }[name]


# --------------------------------------------------------------------------- bwrap

def _bind_except(src: str, dest: str, holes: Set[str],
                 libraries: Optional[LibraryFilter] = None) -> List[str]:
    """bwrap arguments showing ``src`` at ``dest`` read-only, except at ``holes``.

    Directories on the way to a hole are rebuilt on bwrap's own tmpfs root (entries bound one
    by one), so mount points never have to exist in the (read-only) source. That keeps a root
    without ``/var/task`` usable and lets the host's ``/`` serve as a root. With
    ``libraries``, the library directories it names are rebuilt the same way, without the
    shared libraries it hides.
    """
    if dest in holes:
        return []
    inner = set(holes) | (set(libraries.dirs) if libraries else set())
    prefix = dest.rstrip("/") + "/"
    if dest not in inner and not any(h.startswith(prefix) for h in inner):
        return ["--ro-bind", src, dest]
    args: List[str] = [] if dest == "/" else ["--dir", dest]
    try:
        entries = sorted(os.scandir(src), key=lambda e: e.name)
    except OSError:
        return args
    for entry in entries:
        child = (dest.rstrip("/") + "/" + entry.name)
        if child in holes or (libraries is not None and libraries.hides(dest, entry)):
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry.path), child]
        elif entry.is_dir(follow_symlinks=False):
            args += _bind_except(entry.path, child, holes, libraries)
        else:
            args += ["--ro-bind", entry.path, child]
    return args


def bwrap_argv(mounts: Mounts, command: Sequence[str], *, share_net: bool = False,
               extra_binds: Sequence[str] = (),
               libraries: Optional[LibraryFilter] = None) -> List[str]:
    """``bwrap … command``; the environment is the calling process's (pass it via ``env``).

    ``extra_binds`` are shown read-only at their own path (after ``/tmp`` is made fresh, so a
    path under ``/tmp`` works); ``libraries`` leaves shared libraries out of the root's view.
    """
    holes = {"/proc", "/dev", "/tmp", "/opt", "/var/task", "/sys"}
    argv = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-all",
            "--new-session"]
    if share_net:
        argv.append("--share-net")
    argv += _bind_except(str(mounts.root), "/", holes, libraries)
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
             "--ro-bind-try", "/sys", "/sys",
             "--ro-bind", str(mounts.task), "/var/task",
             "--ro-bind", str(mounts.opt), "/opt"]
    for path in extra_binds:
        argv += ["--ro-bind", path, path]
    if mounts.qemu:
        argv += ["--ro-bind", mounts.qemu, QEMU_IN_SANDBOX]
    argv += ["--chdir", "/var/task", "--"]
    if mounts.qemu:
        argv.append(QEMU_IN_SANDBOX)
    return argv + list(command)


# --------------------------------------------------------------------------- proot

def proot_argv(mounts: Mounts, command: Sequence[str], tmp: Path) -> List[str]:
    """``proot … command``. proot cannot make binds read-only: the bundle is writable there."""
    argv = [shutil.which("proot") or "proot", "-r", str(mounts.root),
            "-b", f"{mounts.task}:/var/task", "-b", f"{mounts.opt}:/opt",
            "-b", f"{tmp}:/tmp", "-b", "/proc", "-b", "/dev", "-b", "/sys",
            "-w", "/var/task"]
    if mounts.qemu:
        argv += ["-q", mounts.qemu]
    return argv + list(command)


# --------------------------------------------------------------------------- chroot

_CHROOT_SCRIPT = r"""
set -e
root=$1 task=$2 opt=$3 qemu=$4
shift 4
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$task" "$root/var/task"
mount -o remount,bind,ro "$root/var/task"
mount --bind "$opt" "$root/opt"
mount -o remount,bind,ro "$root/opt"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount --rbind /dev "$root/dev"
unshare=$(command -v unshare)
run=
if [ -n "$qemu" ]; then
  : > "$root/tmp/.lambda-compat-qemu"
  mount --bind "$qemu" "$root/tmp/.lambda-compat-qemu"
  run=/tmp/.lambda-compat-qemu
fi
export PATH="$LAMBDA_COMPAT_INNER_PATH"
unset LAMBDA_COMPAT_INNER_PATH
exec "$unshare" --root="$root" --wd=/var/task $run "$@"
"""

#: Directories a root must already have for the chroot runner (it mounts onto them).
CHROOT_MOUNT_POINTS = ("var/task", "opt", "proc", "tmp", "dev")


def chroot_argv(mounts: Mounts, command: Sequence[str]) -> List[str]:
    """``unshare --mount --net sh -c SCRIPT …``: mounts live only in a private namespace.

    The environment must carry ``LAMBDA_COMPAT_INNER_PATH`` (the PATH the command gets) and a
    host PATH that finds ``mount`` and ``unshare``.
    """
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--mount", "--propagation", "private", "--net", "--pid", "--fork",
            "/bin/sh", "-c", _CHROOT_SCRIPT, "lambda-compat-chroot",
            str(mounts.root), str(mounts.task), str(mounts.opt), mounts.qemu or ""] + list(command)


def missing_mount_points(root: Path) -> List[str]:
    return ["/" + p for p in CHROOT_MOUNT_POINTS if not (root / p).is_dir()]


# --------------------------------------------------------------------------- build sandbox
#
# Third-party build code (PEP 517 hooks, setup.py) runs under bwrap with: no network, the
# system directories read-only, none of /root, /home, HOME, /work-like trees, the tool's cache
# or the caller's secrets; an allow-list of environment variables; only the build directory
# (and a private /tmp) writable; uid 65534 in a user namespace where one can be made. The
# command line is finished inside the pip process by lambda_compat.resolve.pip_sandbox.wrap, which
# adds the running interpreter, the writable directories and the environment.

#: System directories shown read-only (when present); symlinks (merged /usr) stay symlinks.
BUILD_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
                     "/opt")
#: Hidden inside those: credentials and pip configuration (may hold index tokens).
BUILD_HIDDEN = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/ssh",
                "/etc/sudoers", "/etc/sudoers.d", "/etc/pip.conf", "/etc/xdg/pip",
                "/etc/netrc", "/etc/.netrc", "/etc/docker", "/etc/containers/auth.json")
#: Environment variables a build sees (everything else, e.g. AWS_*, tokens, PIP_*, is dropped).
BUILD_ENV_ALLOW = (
    "PATH", "PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE",
    "PYTHONUTF8", "PYTHONIOENCODING", "PYTHONWARNINGS", "LANG", "LANGUAGE", "TZ",
    "SOURCE_DATE_EPOCH", "CC", "CXX", "CPP", "LD", "LDSHARED", "AR", "FC", "F77", "F90",
    "CFLAGS", "CXXFLAGS", "CPPFLAGS", "LDFLAGS", "FFLAGS", "ARCHFLAGS", "PKG_CONFIG",
    "PKG_CONFIG_PATH", "MAKEFLAGS", "MAX_JOBS", "NPY_NUM_BUILD_JOBS", "PG_CONFIG",
    "CMAKE_BUILD_PARALLEL_LEVEL", "CMAKE_GENERATOR", "SETUPTOOLS_USE_DISTUTILS",
    "SETUPTOOLS_SCM_PRETEND_VERSION")
BUILD_ENV_PREFIXES = ("LC_", "PEP517_", "_PYPROJECT_HOOKS_", "SETUPTOOLS_SCM_PRETEND_VERSION_")
#: The uid/gid a build runs as inside its user namespace ("nobody").
BUILD_UID = 65534


@functools.lru_cache(maxsize=None)
def bwrap_userns_works() -> bool:
    """bwrap can also give the build its own user namespace with an unprivileged uid."""
    exe = shutil.which("bwrap")
    if not exe or not bwrap_works():
        return False
    try:
        proc = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                               "--unshare-all", "--unshare-user", "--uid", str(BUILD_UID),
                               "--gid", str(BUILD_UID), "--die-with-parent", "true"],
                              capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def build_bwrap_prefix() -> List[str]:
    """The fixed part of a build's bwrap command line (system view, hidden paths, no net)."""
    argv = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-all",
            "--new-session"]
    if bwrap_userns_works():
        argv += ["--unshare-user", "--uid", str(BUILD_UID), "--gid", str(BUILD_UID)]
    for path in BUILD_SYSTEM_DIRS:
        if os.path.islink(path):
            argv += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            argv += ["--ro-bind", path, path]
    for path in BUILD_HIDDEN:
        if os.path.isdir(path) and not os.path.islink(path):
            argv += ["--tmpfs", path]
        elif os.path.lexists(path):
            argv += ["--ro-bind", "/dev/null", path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    return argv


BUILD_SANDBOX_HINT = ("Install bubblewrap (apt-get install bubblewrap on Debian/Ubuntu, "
                      "dnf install bubblewrap on Fedora) and make sure unprivileged user "
                      "namespaces are allowed, or pass --no-build-sandbox to run build code "
                      "unconfined (not recommended: it runs with your files, network and "
                      "credentials).")


def build_sandbox_config(*, enabled: bool, timeout: float, writable: Sequence[Path],
                         extra_env: Sequence[str] = (), readable: Sequence[Path] = ()) -> dict:
    """The configuration :mod:`lambda_compat.resolve.pip_sandbox` applies in a pip process.

    ``enabled=False`` (``--no-build-sandbox``): build code runs unconfined, but still bounded
    by ``timeout`` and killed as a process group. With ``enabled`` and no working bwrap, the
    configuration refuses: the pip process fails at the first build step (exit 3).
    ``readable`` are shown read-only at their own path (a toolchain outside the system
    directories, e.g. zig in the cache), ``extra_env`` names more variables a build sees.
    """
    config: dict = {"timeout": float(timeout), "writable": [str(p) for p in writable],
                    "readable": [str(p) for p in readable],
                    "env_allow": list(BUILD_ENV_ALLOW) + list(extra_env),
                    "env_prefixes": list(BUILD_ENV_PREFIXES)}
    if not enabled:
        return config
    if not bwrap_works():
        config["refuse"] = ("refusing to run third-party build code: no build sandbox "
                            "(bubblewrap) works on this machine")
        return config
    config["bwrap_prefix"] = build_bwrap_prefix()
    return config
