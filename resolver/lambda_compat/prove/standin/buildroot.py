"""Build roots: a Debian root with the target's Python, its headers and pip, to build sdists in.

A stand-in root (:mod:`.roots`) has only ``python3``; a *build* root is the same Debian suite
(bullseye 3.9, bookworm 3.11, trixie 3.13, sid 3.14, for either architecture) with
:data:`BUILD_PACKAGES` added: the Python headers (``python3-dev``, including Debian's
multiarch ``pyconfig.h`` under ``/usr/include/<machine>-linux-gnu/python3.X``), pip,
setuptools and wheel. It is made with the ``unpack`` recipe (debootstrap's first stage, every
package extracted and not configured: no qemu needed to make it, about a minute), cached
under ``<cache>/roots/debian-<suite>-<arch>-build``, built once under a file lock, and
announced with ``standin-build-start`` / ``-done`` events.

It carries no compiler: builds in it compile with zig for the target's glibc
(:class:`lambda_compat.resolve.environments.RootEnvironment`), so the result needs no glibc
newer than the runtime's, whatever the root's own glibc is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from ...targets.arch import DEB_ARCH
from .info import DEBIAN_SUITES, StandinPlan, StandinRoot, read_info
from .roots import build_standin, roots_dir

#: What a build root adds to debootstrap's minimal base.
BUILD_PACKAGES = ("python3", "python3-dev", "python3-pip", "python3-setuptools",
                  "python3-wheel")


def plan_build_root(python_version: Tuple[int, int], arch: str
                    ) -> Tuple[Optional[StandinPlan], str]:
    """(plan, why-not) for the build root of CPython ``python_version`` on ``arch``."""
    version = (int(python_version[0]), int(python_version[1]))
    suite = DEBIAN_SUITES.get(version)
    if suite is None:
        known = ", ".join(f"{s} {a}.{b}" for (a, b), s in DEBIAN_SUITES.items())
        return None, (f"no Debian suite ships CPython {version[0]}.{version[1]} "
                      f"(build roots: {known})")
    if arch not in DEB_ARCH:
        return None, f"no Debian architecture for {arch}"
    name = f"debian-{suite}-{DEB_ARCH[arch]}-build"
    return StandinPlan("unpack", arch, version, name, suite=suite,
                       include=BUILD_PACKAGES), ""


def find_build_root(python_version: Tuple[int, int], arch: str,
                    cache_dir: Optional[Path] = None) -> Optional[StandinRoot]:
    """The cached build root if it has been made, else None (never builds)."""
    plan, _ = plan_build_root(python_version, arch)
    if plan is None:
        return None
    path = roots_dir(cache_dir) / plan.name
    info = read_info(path)
    return StandinRoot(path, info) if info is not None else None


def ensure_build_root(python_version: Tuple[int, int], arch: str, *,
                      cache_dir: Optional[Path] = None, mirror: Optional[str] = None,
                      ui=None) -> StandinRoot:
    """The build root, made and cached on first use (see the module doc).

    Raises :class:`~lambda_compat.errors.BackendUnavailable` when none can be made here
    (no suite for the version, no debootstrap, not root, mirror unreachable).
    """
    from ... import errors
    plan, why = plan_build_root(python_version, arch)
    if plan is None:
        raise errors.BackendUnavailable(why + ".", hint="Use --build-env container, or put "
                                        "a built wheel in vendor/.")
    return build_standin(plan, cache_dir=cache_dir, mirror=mirror, ui=ui)
