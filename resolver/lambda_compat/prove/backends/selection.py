"""Which backend proves a target here: the candidates, strongest first, and the choice."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple, Union

from ... import errors
from ...errors import BackendUnavailable
from ...host import binfmt, sandbox
from ...host.engines import find_engine
from ...host.interpreters import find_interpreter
from ...targets.target import Target
from .container import ContainerBackend
from .host import HostBackend
from .results import Backend
from .rootfs import RootfsBackend


#: Values of ``requested`` for :func:`select_backend`.
REQUESTS = ("auto", "container", "rootfs", "host", "static")


def _container_candidate(target: Target, image: Optional[str], engine: Optional[str]):
    exe, why = find_engine(engine)
    if exe is None:
        return None, (f"no container engine: {why}. Install podman (apt-get install podman) "
                      "or start the docker daemon")
    machine = target.machine
    # On Linux the engine runs foreign images through the kernel's binfmt_misc; elsewhere
    # (Docker Desktop) its own VM emulates them.
    if (sys.platform.startswith("linux") and machine != binfmt.host_machine()
            and not binfmt.status(machine).usable_in_sandbox):
        return None, (f"{target.name} images need {machine} emulation: apt-get install "
                      "qemu-user-static and register binfmt (python -m lambda_compat.cli.standin binfmt)")
    return ContainerBackend(target, exe, image), None


def _rootfs_candidate(target: Target, rootfs: Optional[Union[str, Path]], *,
                      auto: bool = False, ui: Any = None):
    if rootfs is None and auto:
        return _auto_standin_candidate(target, ui)
    if rootfs is None:
        return None, ("no root directory given (pass an unpacked image root, e.g. from "
                      "`docker export`, or 'standin' for a lambda-compat stand-in root)")
    if str(rootfs) == "standin" or str(rootfs).startswith("standin:"):
        from ..standin import roots as standin
        kind = str(rootfs).partition(":")[2] or "auto"
        plan, why = standin.plan_standin(target, kind=kind)
        if plan is None:
            return None, why
        if sandbox.first_runner() is None:
            return None, f"no sandbox: {sandbox.install_hint('bwrap')}"
        return RootfsBackend(target, None, standin_kind=kind, ui=ui), None
    path = Path(rootfs)
    if not path.is_dir():
        raise errors.BadInput(f"{path}: the root directory does not exist.",
                              hint="Pass an unpacked image root (docker export IMAGE | tar -x -C DIR).")
    try:
        return RootfsBackend(target, path), None
    except BackendUnavailable as e:
        return None, str(e)


def _auto_standin_candidate(target: Target, ui: Any = None):
    """``auto`` without a root: a stand-in root when one can be had cheaply.

    A copy of a local interpreter is built on first use (seconds) and cached; a Debian root
    (root privileges, the network, minutes) is used only once it has been built
    (``python -m lambda_compat.cli.standin root`` or ``--rootfs standin``).
    """
    from ..standin import roots as standin
    plan, why = standin.plan_standin(target, kind="auto")
    if plan is None:
        return None, why
    if plan.kind != "copy" and standin.find_standin(target, kind="auto") is None:
        return None, (f"no stand-in root for {target.name} is built yet (a Debian {plan.suite} "
                      f"root: python -m lambda_compat.cli.standin root --runtime {target.runtime} "
                      f"--arch {target.arch}, or --rootfs standin)")
    if sandbox.first_runner() is None:
        return None, f"no sandbox to run a stand-in root with ({sandbox.install_hint('bwrap')})"
    return RootfsBackend(target, None, standin_kind="auto", ui=ui), None


def _host_candidate(target: Target, python: Optional[str]):
    if target.machine != binfmt.host_machine():
        return None, (f"this machine is {binfmt.host_machine()}, {target.name} runs on "
                      f"{target.machine}; a host interpreter cannot prove it")
    interp = find_interpreter(target.python_version, target.machine, python)
    if interp is None:
        v = "%d.%d" % tuple(target.python_version)
        return None, (f"no local CPython {v} for {target.machine} (install it: pyenv install {v}, "
                      f"uv python install {v}, or apt-get install python{v}; or pass --python)")
    if tuple(interp.version[:2]) != tuple(target.python_version):  # pragma: no cover
        return None, f"{interp.path} is not Python {target.python_version}"
    return HostBackend(target, interp), None


def _candidates(target: Target, image, rootfs, python, engine, only: Optional[str] = None,
                ui: Any = None):
    """(name, backend or None, why-not), strongest first; lazily, so "host" never asks docker.

    ``only=None`` is ``auto``: there the rootfs backend without a root is a stand-in root.
    """
    makers = (("container", lambda: _container_candidate(target, image, engine)),
              ("rootfs", lambda: _rootfs_candidate(target, rootfs, auto=only is None, ui=ui)),
              ("host", lambda: _host_candidate(target, python)))
    for name, make in makers:
        if only is None or name == only:
            yield (name,) + make()


def backend_status(target: Target, *, image: Optional[str] = None,
                   rootfs: Optional[Union[str, Path]] = None, python: Optional[str] = None,
                   engine: Optional[str] = None) -> List[Tuple[str, Optional[Backend], Optional[str]]]:
    """Every backend kind for ``target``, strongest first: (name, backend or None, why not).

    For messages such as "container: no engine (install podman)"; cheap checks only.
    """
    return list(_candidates(target, image, rootfs, python, engine))


def available_backends(target: Target, *, image: Optional[str] = None,
                       rootfs: Optional[Union[str, Path]] = None, python: Optional[str] = None,
                       engine: Optional[str] = None) -> List[Backend]:
    """Backends that can run here for ``target``, strongest first.

    Only cheap checks happen here; a container backend's image is pulled (and a stand-in root
    built) by ``prepare()``, which :func:`select_backend` calls.
    """
    return [b for _, b, _ in _candidates(target, image, rootfs, python, engine) if b is not None]


def select_backend(target: Target, requested: str = "auto", *, image: Optional[str] = None,
                   rootfs: Optional[Union[str, Path]] = None, python: Optional[str] = None,
                   engine: Optional[str] = None, ui: Any = None,
                   skipped: Optional[List[str]] = None) -> Optional[Backend]:
    """The backend to prove ``target`` with, prepared; None for "static" or when auto finds none.

    An explicitly requested backend that cannot run raises :class:`BackendUnavailable`
    saying what is missing and how to get it. "auto" tries container, rootfs, host in turn
    and takes the first one that prepares; its container must already have the image (an
    explicit "container" pulls it). ``rootfs`` is a directory, or "standin" (or
    "standin:copy|unpack|debootstrap") for a cached lambda-compat stand-in built on first use;
    under "auto" without a root, a stand-in root is preferred to the host when one can be had
    (a copy of a local interpreter, built on first use; a Debian root once built). ``ui``
    receives the stand-in build's progress events; ``skipped`` (a list) receives, under
    "auto", one line per backend that was available but could not be prepared.
    """
    if requested not in REQUESTS:
        raise errors.BadInput(f"Unknown backend {requested!r}.",
                              hint=f"Choose one of: {', '.join(REQUESTS)}.")
    if requested == "static":
        return None
    candidates = _candidates(target, image, rootfs, python, engine,
                             only=None if requested == "auto" else requested, ui=ui)
    if requested == "auto":
        for _, backend, _ in candidates:
            if backend is None:
                continue
            if isinstance(backend, ContainerBackend):
                # auto never starts a pull of several hundred MB (or waits on a registry that
                # does not answer): the image must be there; `container` pulls.
                backend.pull = False
            try:
                backend.prepare()
            except errors.EnvironmentProblem as e:
                if skipped is not None and not isinstance(backend, ContainerBackend):
                    skipped.append(f"{backend.proof}: {e.message}")
                continue
            return backend
        return None
    for name, backend, why in candidates:
        if name != requested:
            continue
        if backend is None:
            raise BackendUnavailable(f"The {name} backend cannot prove {target.name} here: {why}.")
        try:
            backend.prepare()
        except BackendUnavailable:
            raise
        except errors.EnvironmentProblem as e:
            raise BackendUnavailable(f"The {name} backend cannot prove {target.name}: {e}") from e
        return backend
    raise AssertionError(requested)  # pragma: no cover
