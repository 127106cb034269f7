"""Which build environment builds sdists for a target (``--build-env``), chosen once per run.

``auto`` tries, in order:

1. ``local``: an interpreter of the target's version running natively on this machine
   (only when this machine is the target's), with zig for the target's glibc if zig is
   found (:func:`lambda_compat.host.toolchain.find_zig`), else the host's compiler;
2. ``target-root``: the Debian build root of the target's Python and machine
   (:mod:`lambda_compat.prove.standin.buildroot`, made once: debootstrap, root, the mirror),
   run through qemu-user for a foreign machine, compiling with zig (found or installed);
3. ``container``: the runtime's build image, if an engine answers and the image is present
   (``--build-env container`` also pulls it);

else no environment, with the reason ``no-build-environment`` and :data:`NO_ENVIRONMENT_FIX`.

The choice is lazy: whatever costs nothing (a local interpreter, a cached root with zig
found) is taken as soon as it is asked for (:meth:`EnvironmentChooser.peek`); making a root
or installing zig waits until an sdist really has to be built (:meth:`EnvironmentChooser.get`).
"""

from __future__ import annotations

import importlib
import re
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Tuple

from .. import errors
from ..host import binfmt
from ..host import sandbox as host_sandbox
from ..host import toolchain
from ..host.interpreters import find_interpreter
from ..prove.standin.buildroot import ensure_build_root, find_build_root, plan_build_root
from ..resolve.environments import BuildEnvironment, LocalEnvironment
from ..resolve.environments_root import RootEnvironment
from ..targets.arch import DEB_ARCH
from ..targets.target import Target
from ..ui import UI

if TYPE_CHECKING:
    from .builder import BuildConfig

#: The ``--build-env`` choices.
BUILD_ENVS = ("auto", "local", "target-root", "container")
#: Docker/podman image of the runtime's build environment (``%s``: X.Y).
BUILD_IMAGE = "public.ecr.aws/sam/build-python%s"


def no_environment_fix(target: Target) -> str:
    v = "%d.%d" % tuple(target.python_version[:2])
    return (f"--build-env container on a machine with Docker or podman and the image "
            f"{BUILD_IMAGE % v}, or put a built wheel in vendor/")


class EnvironmentChooser:
    """The build environment for one target and configuration, chosen once (thread-safe)."""

    def __init__(self, target: Target, config: "BuildConfig", cache: Path, ui: UI) -> None:
        self.target, self.config, self.cache, self.ui = target, config, Path(cache), ui
        self.mode = getattr(config, "build_env", "auto") or "auto"
        if self.mode not in BUILD_ENVS:
            raise errors.BadInput(f"--build-env {self.mode!r}: unknown.",
                                  hint=f"Choose one of: {', '.join(BUILD_ENVS)}.")
        self._lock = threading.Lock()
        self._decided = False
        self._env: Optional[BuildEnvironment] = None
        self._reasons: List[str] = []

    # -- the choice ------------------------------------------------------------------------
    def peek(self) -> Optional[BuildEnvironment]:
        """The environment if it is already chosen or can be had at no cost, else None."""
        with self._lock:
            if self._decided:
                return self._env
            env, _ = self._choose(prepare=False)
            if env is not None:
                self._env, self._decided = env, True
            return env

    def get(self) -> Optional[BuildEnvironment]:
        """The environment, made now if need be (a root built, zig installed), or None."""
        with self._lock:
            if not self._decided:
                self._env, self._reasons = self._choose(prepare=True)
                self._decided = True
            return self._env

    @property
    def reason(self) -> str:
        """Why there is no environment (after :meth:`get` returned None)."""
        why = "; ".join(self._reasons) or "no build environment was tried"
        return f"{why}. Fix: {no_environment_fix(self.target)}"

    def _choose(self, prepare: bool) -> Tuple[Optional[BuildEnvironment], List[str]]:
        reasons: List[str] = []
        for kind, attempt in (("local", self._local), ("target-root", self._root),
                              ("container", self._container)):
            if self.mode not in ("auto", kind):
                continue
            if kind == "container" and not prepare:
                continue   # inspecting an engine's images is not free
            try:
                env, why = attempt(prepare)
            except errors.LambdaCompatError as exc:
                env, why = None, str(exc).splitlines()[0]
            if env is not None:
                if prepare:
                    self.ui.event("build-environment", target=self.target.name,
                                  kind=env.kind, describe=env.describe())
                return env, []
            reasons.append(f"{kind}: {why}")
        return None, reasons

    # -- the kinds -------------------------------------------------------------------------
    def _local(self, prepare: bool) -> Tuple[Optional[BuildEnvironment], str]:
        t = self.target
        v = "%d.%d" % tuple(t.python_version[:2])
        host = binfmt.host_machine()
        if host != t.machine:
            return None, f"this machine is {host}, the target is {t.machine}"
        interp = find_interpreter(t.python_version, t.machine, self.config.python)
        if interp is None:
            return None, f"no local CPython {v} interpreter (use --python)"
        zig = toolchain.find_zig(self.cache)
        version = toolchain.zig_version(zig) if zig is not None else None
        if zig is None or version is None:
            return LocalEnvironment(interp), ""
        return LocalEnvironment(interp, glibc=t.glibc, zig=zig, zig_version=version), ""

    def _root(self, prepare: bool) -> Tuple[Optional[BuildEnvironment], str]:
        t = self.target
        plan, why = plan_build_root(t.python_version, t.arch)
        if plan is None:
            return None, why
        if not host_sandbox.bwrap_works():
            return None, "bubblewrap does not work here (it runs the build inside the root)"
        if t.machine != binfmt.host_machine() and not binfmt.can_run(t.machine):
            return None, f"{t.machine} programs cannot run here (install qemu-user-static)"
        root = find_build_root(t.python_version, t.arch, self.cache)
        zig = toolchain.find_zig(self.cache)
        if not prepare and (root is None or zig is None):
            return None, "the build root or zig is not ready yet"
        if zig is None:
            zig = toolchain.ensure_zig(self.cache, self.ui)
        version = toolchain.zig_version(zig)
        if version is None:
            return None, f"{zig} does not run"
        if root is None:
            root = ensure_build_root(t.python_version, t.arch, cache_dir=self.cache,
                                     ui=self.ui)
        v = "%d.%d" % tuple(t.python_version[:2])
        return RootEnvironment(
            root=root.path, python=f"/usr/bin/python{v}",
            python_version=(t.python_version[0], t.python_version[1]),
            python_full=root.info.python, machine=t.machine, glibc=t.glibc, zig=zig,
            zig_version=version, root_glibc=_glibc_of(root.info.libc, t.glibc),
            root_name=f"Debian {plan.suite} {DEB_ARCH[t.arch]}"), ""

    def _container(self, prepare: bool) -> Tuple[Optional[BuildEnvironment], str]:
        # Hook: the container kind lives in resolve/environments_container.py (issue 14);
        # imported here by name so that this module works without it.
        try:
            containers: Any = importlib.import_module(
                "lambda_compat.resolve.environments_container")
        except ImportError:
            return None, "the container build environment is not part of this version"
        t = self.target
        env = containers.ContainerEnvironment.for_target(
            t.python_version[:2], t.machine, t.glibc, pull=self.mode == "container")
        env.prepare()
        return env, ""


def _glibc_of(libc: str, default: Tuple[int, int]) -> Tuple[int, int]:
    m = re.search(r"(\d+)\.(\d+)", libc or "")
    return (int(m.group(1)), int(m.group(2))) if m else default


class LiveSpec(Mapping):
    """The pip engine's ``source_build`` spec, its ``environment`` read at each pass.

    The engine copies the spec for every resolution pass; an environment the builder made
    between passes (when the source policy first let an sdist through) reaches the next one.
    """

    def __init__(self, base: Dict[str, Any], chooser: EnvironmentChooser) -> None:
        self._base, self._chooser = base, chooser

    def _data(self) -> Dict[str, Any]:
        env = self._chooser.peek()
        return {**self._base, "environment": env.to_spec() if env is not None else None}

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())
