"""Stand-in roots in the cache: which recipe serves a target, found, or built once under a lock."""

from __future__ import annotations

import datetime
import fnmatch
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Optional, Tuple

from ... import errors
from ...host import binfmt
from ...host.interpreters import find_interpreter
from ...targets.target import Target
from .copyroot import build_copy_root
from .debian import build_debootstrap_root
from ...targets.arch import DEB_ARCH
from .info import (ALWAYS_ABSENT, DEBIAN_MIRROR, DEBIAN_SUITES, INFO_FILE, KINDS, StandinInfo,
                   StandinPlan, StandinRoot, read_info)


def roots_dir(cache_dir: Optional[Path] = None) -> Path:
    if cache_dir is None:
        from ...host.paths import default_cache_dir
        cache_dir = default_cache_dir()
    return Path(cache_dir) / "roots"


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
            name = f"debian-{suite}-{DEB_ARCH[target.arch]}" + \
                ("-unpacked" if recipe == "unpack" else "")
            return StandinPlan(recipe, target.arch, version, name, suite=suite,
                               runtime_libraries=True), ""
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
    if info is not None and _current(info, plan):
        return StandinRoot(final, info)
    from filelock import FileLock  # here, not at start-up: ~30 ms
    with FileLock(str(base / f"{plan.name}.lock")):
        info = read_info(final)
        if info is not None and _current(info, plan):  # another process built it meanwhile
            return StandinRoot(final, info)
        if final.exists():  # incomplete (a crashed run), or made by an older version
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
                wanted: Tuple[str, ...] = ()
                include = plan.include
                if plan.runtime_libraries:
                    wanted, packages = _runtime_packages(_facts_for(target, plan), plan,
                                                         mirror)
                    include = tuple(dict.fromkeys(plan.include + packages))
                info = build_debootstrap_root(plan.suite, plan.arch, work, name=plan.name,
                                              mirror=mirror, unpack=plan.kind == "unpack",
                                              include=include)
                if plan.runtime_libraries:
                    info = _with_runtime_libraries(work, info, wanted)
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


def _current(info: StandinInfo, plan: StandinPlan) -> bool:
    """A cached root still fits ``plan``: a Debian stand-in made before roots carried the
    runtime's libraries (record version 1) is made again."""
    return not plan.runtime_libraries or info.version >= 2


def _runtime_packages(facts, plan: StandinPlan, mirror: Optional[str]
                      ) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """(the runtime's sonames wanted in the root, the Debian packages that carry them)."""
    from .debian_libs import packages_for, suite_packages
    absent = tuple(facts.absent_sonames) + ALWAYS_ABSENT
    wanted = tuple(sorted(s for s in facts.sonames
                          if not any(fnmatch.fnmatchcase(s, p) for p in absent)))
    mirror = mirror or os.environ.get("LAMBDA_COMPAT_DEBIAN_MIRROR") or DEBIAN_MIRROR
    assert plan.suite is not None
    available = suite_packages(mirror, plan.suite, DEB_ARCH[plan.arch])
    packages, _unavailable = packages_for(wanted, available)
    return wanted, packages


def _with_runtime_libraries(root: Path, info: StandinInfo,
                            wanted: Tuple[str, ...]) -> StandinInfo:
    """The record says which of the runtime's sonames the root has, and which it lacks."""
    names = {p.name for p in _walk_files(root)}
    present = tuple(s for s in wanted if s in names)
    missing = tuple(s for s in wanted if s not in names)
    return StandinInfo(**{**asdict(info), "lambda_libraries": present,
                          "missing_libraries": missing})


def _facts_for(target: Optional[Target], plan: StandinPlan):
    if target is not None and target.facts is not None:
        return target.facts
    from ...registry.runtimes import load_runtimes
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
                          "lambda_libraries": tuple(info.lambda_libraries),
                          "missing_libraries": tuple(info.missing_libraries)})
    (root / INFO_FILE).write_text(info.to_json(), encoding="utf-8")
    return info


def _walk_files(root: Path) -> Iterable[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath, name)
