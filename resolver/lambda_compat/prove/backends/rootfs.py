"""The rootfs backend: an unpacked image root, or a stand-in root, run in a sandbox."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from ...errors import BackendUnavailable
from ...host import binfmt, sandbox
from ...targets.target import Target
from ..rootpaths import resolve_in_root, root_interpreter, root_machine
from ..standin.info import INFO_FILE, StandinInfo, read_info
from . import base
from .base import ProbeBackend, probe_source, probe_spec, run_command, target_facts


class RootfsBackend(ProbeBackend):
    """An unpacked root directory (exported image or stand-in) run in a sandbox."""

    proof = "rootfs"

    def __init__(self, target: Target, root: Optional[Path], *, runner: Optional[str] = None,
                 standin_kind: Optional[str] = None, cache_dir: Optional[Path] = None,
                 ui: Any = None) -> None:
        super().__init__(target)
        self.ui = ui
        self.root = Path(root).resolve() if root is not None else None
        self.runner = runner or sandbox.first_runner()
        self.standin_kind = standin_kind  # build/find a stand-in in prepare() when root is None
        self.cache_dir = cache_dir
        self._standin_info: Optional[StandinInfo] = None
        self.python: Optional[str] = None
        self.qemu: Optional[str] = None
        self._foreign = False
        self._prepared = False
        if self.root is not None:
            self._inspect()

    def _inspect(self) -> None:
        assert self.root is not None
        self._standin_info = read_info(self.root)
        self.python = root_interpreter(self.root, self.target.python_version)
        if self.python is None:
            raise BackendUnavailable(
                f"{self.root} has no python{self.target.python_version[0]}."
                f"{self.target.python_version[1]} in /var/lang/bin, /usr/bin or /usr/local/bin, so "
                f"it cannot serve {self.target.name}.",
                hint=f"Pass the root of the {self.target.name} image (docker export of "
                     f"{target_facts(self.target).image}) or a stand-in root for that version.")
        machine = root_machine(self.root, self.python)
        if machine != self.target.machine:
            raise BackendUnavailable(
                f"{self.root}: its interpreter is built for {machine}, but {self.target.name} "
                f"runs on {self.target.machine}.",
                hint="Pass a root of the target's architecture.")
        self._foreign = machine != binfmt.host_machine()
        if self._foreign and not binfmt.status(machine).usable_in_sandbox:
            self.qemu = binfmt.static_qemu(machine)
            if self.qemu is None:
                raise BackendUnavailable(
                    f"{self.target.name} needs {machine} binaries to run on this "
                    f"{binfmt.host_machine()} machine, and no qemu-user is set up.",
                    hint="apt-get install qemu-user-static, then (as root) "
                         "python -m lambda_compat.cli.standin binfmt")
        if self.runner is None:
            raise BackendUnavailable(
                "No sandbox to run a root directory with: bwrap, proot and chroot are all "
                "unavailable.", hint=f"Install bubblewrap: {sandbox.install_hint('bwrap')}.")
        if self.runner == "chroot":
            missing = sandbox.missing_mount_points(self.root)
            if missing:
                raise BackendUnavailable(
                    f"{self.root} lacks {', '.join(missing)}, which the chroot runner mounts onto.",
                    hint=f"Install bubblewrap, which needs no mount points: "
                         f"{sandbox.install_hint('bwrap')}.")

    def prepare(self) -> None:
        if self._prepared:
            return
        if self.root is None:
            from ..standin.roots import ensure_standin
            root = ensure_standin(self.target, kind=self.standin_kind or "auto",
                                          cache_dir=self.cache_dir, ui=self.ui)
            self.root = root.path
            self._inspect()
        self._prepared = True

    @property
    def standin(self) -> Optional[str]:
        return self._standin_info.describe() if self._standin_info else None

    def identity(self) -> Optional[dict]:
        """The root's stand-in record and interpreter binary (sha256), the runner and qemu."""
        if self.root is None or self.python is None or self.runner == "proot":
            return None
        real = resolve_in_root(self.root, self.python)
        python = base.file_sha256(str(real)) if real is not None else None
        if python is None:
            return None
        return {"root": str(self.root), "python": self.python, "python_sha256": python,
                "info_sha256": base.file_sha256(str(self.root / INFO_FILE.lstrip("/"))),
                "runner": self.runner, "qemu": self.qemu, "foreign": self._foreign}

    def describe(self) -> str:
        if self.root is None:
            return f"{self.runner} rootfs: stand-in for {self.target.name} (not built yet)"
        how = self.runner or "no sandbox"
        if self._foreign:
            how += f"+qemu-{self.target.machine}" + (" (explicit)" if self.qemu else " (binfmt)")
        text = f"{how} rootfs {self.root}"
        if self._standin_info:
            text += f" [stand-in: {self._standin_info.describe()}]"
        if self.runner == "proot":
            text += " (proot: on a copy of the bundle; writes are not refused)"
        return text

    def _execute(self, task, opt, modules, handler, env, timeout):
        assert self.root is not None and self.python is not None
        facts = target_facts(self.target)
        spec = probe_spec(self.target, facts.sys_path, modules, handler, timeout,
                     remap="if-missing", keep_site=True, after=self._after)
        command = [self.python, "-I", "-B", "-c", probe_source(), spec]
        mounts = sandbox.Mounts(self.root, task, opt, self.qemu)
        overall = base.overall_timeout(timeout, len(modules))
        if self.runner == "bwrap":
            return run_command(sandbox.bwrap_argv(mounts, command), env=env, cwd=None, timeout=overall)
        if self.runner == "proot":
            # proot cannot bind read-only: run on private copies so nothing reaches the originals.
            with tempfile.TemporaryDirectory(prefix="lambda-compat-proot-") as scratch:
                tmp = Path(scratch, "tmp")
                tmp.mkdir()
                os.chmod(tmp, 0o1777)
                shutil.copytree(task, Path(scratch, "task"), symlinks=True)
                shutil.copytree(opt, Path(scratch, "opt"), symlinks=True)
                mounts = sandbox.Mounts(self.root, Path(scratch, "task"), Path(scratch, "opt"),
                                        self.qemu)
                return run_command(sandbox.proot_argv(mounts, command, tmp), env=env, cwd=None,
                            timeout=overall)
        # The chroot script runs host tools (mount) first; the command gets Lambda's PATH back.
        host_env = dict(env, PATH=os.environ.get("PATH") or "/usr/sbin:/usr/bin:/sbin:/bin",
                        LAMBDA_COMPAT_INNER_PATH=env.get("PATH", "/usr/bin:/bin"))
        return run_command(sandbox.chroot_argv(mounts, command), env=host_env, cwd=None, timeout=overall)
