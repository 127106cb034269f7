"""The builder's first phase: resolve and download the whole closure for the target.

pip (:mod:`lambda_compat.resolve.engine`) resolves with the target's tags and markers; a
project's sdist is allowed only where building it can produce a usable wheel
(:class:`SourcePolicy`). A resolution of byte-identical inputs is reused from the cache; when
pip stops at a top-level requirement it cannot satisfy, the others are resolved in a second
pass (:func:`_the_rest`). Every downloaded file is kept in the content-addressed cache.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Set, Tuple

from packaging.utils import canonicalize_name

from .. import errors
from ..host import sandbox as _sandbox
from ..host.interpreters import find_interpreter, pure_build_interpreters
from ..registry.package_entry import PackageRegistry
from ..resolve import cache as resolution_cache
from ..resolve import engine
from ..resolve import reqfile
from ..resolve.diagnose import diagnose, requires_python_ok
from ..resolve.engine import PipOptions, ResolvedItem, Resolution, resolve
from ..resolve.sdist_build import file_sha256
from ..targets.target import Target
from ..ui import UI
from ..host.paths import default_cache_dir
from ..ui import NullUI
from . import workers
from .early import EarlyWheels, store
from .environments import EnvironmentChooser, LiveSpec
from .missing import not_found, offered_versions
from .report import BuildReport
from .staging import EarlyInstall

if TYPE_CHECKING:
    from .builder import BuildConfig


def resolve_all(target: Target, config: BuildConfig, registry: PackageRegistry, cache: Path,
                requirements: Path, work: Path, report: BuildReport, ui: UI,
                chooser: Optional[EnvironmentChooser] = None,
                early_install: Optional[EarlyInstall] = None
                ) -> Tuple[Resolution, Dict[str, str]]:
    """The resolution to build from, and the sha256 of each of its files (by name).

    Requirements no file fits are reported missing in ``report`` on the way. ``chooser``
    gives the build environment sdists are built in (made when a source is first let
    through). The whole outcome, failed or not, is reused within ``config.resolution_ttl``
    for byte-identical inputs (:mod:`lambda_compat.resolve.cache`). ``early_install``:
    where each wheel judged while pip resolves is installed at once (build/staging.py)."""
    chooser = chooser or EnvironmentChooser(target, config, cache, ui)
    ui.event("resolve-start", target=target.name)
    rkey = resolution_cache.key(requirements, target, config.pip,
                                _outcome_options(config, registry))
    policy = SourcePolicy(target, config, registry, chooser)
    outcome = resolution_cache.load(cache / "resolutions", rkey, cache / "files",
                                    config.resolution_ttl)
    fresh = outcome is None
    fetched_now: Set[str] = set()  # in the cache only because this resolution fetched them
    if outcome is None:
        early = EarlyWheels(cache, target, config.jobs, ui, early_install)
        try:
            first = _resolve(target, requirements, work, config, cache, policy, ui,
                             requirements, early)
            _require_index(first, config.pip, target)
            outcome = _the_rest(first, requirements, work, target, config, policy, cache, ui)
        finally:
            early.finish()
            fetched_now = early.stored
            engine.discard_standby()  # one the first pass did not take is not needed
    else:
        engine.discard_standby()  # the CLI's pip process ahead of time: not needed
        policy.refused.update(outcome.refused)
    first = outcome.passes[0]
    ui.event("resolved", count=len(first.items),
             cache_hits=len([f for f in first.cache_hits if f not in fetched_now]))
    for url, reason in first.fetch_failures:
        report.warnings.append(f"index page not reachable: {url} ({reason})")
    for resolution in outcome.passes:
        for nf in resolution.not_found:
            report.distributions.append(not_found(nf, resolution, target, config,
                                                  policy.refused.get(nf.project)))
    resolution = outcome.resolution
    shas = _store_in_cas(resolution, cache / "files", config.jobs)
    if fresh:
        resolution_cache.store(cache / "resolutions", rkey, outcome, shas)
    return resolution, shas


def _outcome_options(config: BuildConfig, registry: PackageRegistry) -> str:
    """The settings besides the requirements, target and pip options that decide the
    outcome: which sources may be built, where and how, and the registry's version."""
    return repr((config.python, config.build_env, config.build_timeout, config.build_sandbox,
                 config.build_above_glibc_ceiling, sorted(no_binary_names(config)),
                 getattr(registry, "version", None)))


def _resolve(target: Target, req_file: Path, workdir: Path, config: BuildConfig, cache: Path,
             policy: SourcePolicy, ui: UI, requirements: Path,
             early: Optional[EarlyWheels] = None) -> Resolution:
    """One run of the pip engine on ``req_file`` (``requirements``: the user's file);
    ``early`` judges the wheels pip hands over while it resolves."""
    return resolve(target, req_file, workdir=workdir, cas_dir=cache / "files",
                   pip=config.pip, on_event=lambda e: _engine_event(ui, e, early),
                   allow_source=policy,
                   log_dir=cache / "logs",
                   source_build=source_build_spec(target, config, cache, requirements,
                                                  policy.chooser),
                   build_sandbox=config.build_sandbox,
                   build_timeout=config.build_timeout)


def _require_index(resolution: Resolution, pip: PipOptions, target: Target) -> None:
    """The index the user named with -i must answer, even when another source did."""
    if not pip.index_url or pip.no_index:
        return
    base = pip.index_url.rstrip("/") + "/"
    failed = [(u, r) for u, r in resolution.fetch_failures if (u.rstrip("/") + "/")
              .startswith(base)]
    if failed:
        url, reason = failed[0]
        raise errors.IndexUnreachable(
            f"Could not reach the package index {pip.index_url} for {target.name}: {url} "
            f"({reason}).",
            hint="Check the network, the -i/--index-url value and proxy settings; other "
                 "sources answering is not enough, the index you named must answer.")


def _the_rest(first: Resolution, requirements: Path, work: Path, target: Target,
              config: BuildConfig, policy: SourcePolicy, cache: Path,
              ui: UI) -> resolution_cache.Outcome:
    """pip stops at the first top-level requirement it cannot satisfy for the target, so the
    others would go unjudged: resolve them again without the ones already found missing.
    The outcome holds every pass; the build goes on from the last one, or from the first
    when nothing else is left to resolve (or a dependency's failure leaves unknown which
    requirement to leave out)."""
    passes: List[Resolution] = [first]
    final = 0
    if not first.items and first.not_found:
        dropped: Set[str] = set()
        current = first
        for attempt in range(5):
            if any(nf.parent is not None for nf in current.not_found):
                final = 0  # which requirement to leave out is unknown
                break
            dropped |= {canonicalize_name(nf.project) for nf in current.not_found}
            rest_file = reqfile.without_projects(requirements, dropped,
                                                 work / f"requirements-rest-{attempt}.txt")
            if rest_file is None:
                final = 0
                break
            current = _resolve(target, rest_file, work / f"rest-{attempt}", config, cache,
                               policy, ui, requirements)
            passes.append(current)
            final = len(passes) - 1
            if current.items or not current.not_found:
                break
    return resolution_cache.Outcome(passes=tuple(passes), final=final,
                                    refused=dict(policy.refused))


def _engine_event(ui: UI, event: dict, early: Optional[EarlyWheels] = None) -> None:
    """Events of the pip engine; its source builds use the builder's own event names."""
    name = event.pop("event", "?")
    if name == "file-ready":
        if early is not None:
            early.offer(event)
        return
    ui.event(name if name.startswith("sdist-") else "pip-" + name, **event)


def source_build_spec(target: Target, config: BuildConfig, cache: Path,
                      requirements: Path,
                      chooser: Optional[EnvironmentChooser] = None) -> Mapping[str, Any]:
    """How the pip engine may have an sdist's metadata (lambda_compat.resolve.source_metadata):
    in the build environment (``environment``: its spec, read at each resolution pass), else
    with an interpreter of the target's Python only, natively where this machine runs the
    target's machine code, into the builder's cache of built wheels."""
    from dataclasses import asdict
    host = platform.machine()
    native = host == target.machine
    interp = find_interpreter(target.python_version, host, config.python)
    # none of the target's Python here: an any-Python pure build may stand in (pure_build)
    pure = [] if interp else pure_build_interpreters(host)
    base = {"interpreter": asdict(interp) if interp else None, "native": native,
            "pure_interpreters": [asdict(i) for i in pure],
            "host_machine": host, "target_machine": target.machine,
            "version": list(target.python_version),
            "python_full_version": target.python_full_version, "cache_dir": str(cache),
            "pip": asdict(config.pip), "timeout": config.build_timeout,
            "sandbox": config.build_sandbox, "cwd": str(requirements.resolve().parent),
            # a failed build is not repeated for a while (BuildConfig.failure_ttl)
            "failure_ttl": config.failure_ttl,
            # decided here, once: the pip engine's builds refuse when no sandbox can be had
            "sandbox_refused": (config.build_sandbox and not _sandbox.bwrap_works())}
    if chooser is None:
        return {**base, "environment": None}
    return LiveSpec(base, chooser)


def no_binary_names(config: BuildConfig) -> frozenset:
    """The projects always built from their sdist (--no-binary), canonical names."""
    return frozenset(canonicalize_name(n) for n in config.no_binary)


class SourcePolicy:
    """Allow building a project from source only where that can produce a usable wheel.

    Not when the project's wheels for that version only need a newer glibc (unless asked);
    not when this machine has no CPython at all; not for a machine this host cannot compile
    for, nor for a Python it has no interpreter of (only an any-Python pure build could do,
    :mod:`lambda_compat.resolve.pure_build`), when the project's code is native (it publishes
    only platform wheels) and no registry entry could vouch for a compiler-less build:
    decided from the index page, before the sdist is even downloaded.
    ``refused`` keeps (code, reason) of the last two, for the report.
    """

    def __init__(self, target: Target, config: BuildConfig, registry: PackageRegistry,
                 chooser: Optional[EnvironmentChooser] = None) -> None:
        self.target, self.config, self.registry = target, config, registry
        self.chooser = chooser or EnvironmentChooser(target, config, Path(
            config.cache_dir or default_cache_dir()), NullUI())
        self.forced = no_binary_names(config)
        self.refused: Dict[str, Tuple[str, str]] = {}
        self._interpreter: List[bool] = []

    def can_build(self) -> bool:
        """Some build can run: a build environment for the target (made now if need be), an
        interpreter of the target's version (compiler-less), else any (a pure build)."""
        if self.chooser.get() is not None:
            return True
        return self.has_target_python() or bool(pure_build_interpreters(platform.machine()))

    def has_target_python(self) -> bool:
        if not self._interpreter:
            self._interpreter.append(find_interpreter(
                self.target.python_version, platform.machine(), self.config.python) is not None)
        return self._interpreter[0]

    def __call__(self, project: str, requirement: str, links: Any) -> bool:
        target = self.target
        # sdists the target's Python may install (Requires-Python), of a wanted version
        links = [link for link in links if requires_python_ok(link, target)]
        versions = offered_versions(links, requirement, target, sdist_only=True)
        if not versions or not self.can_build():
            return False
        if project in self.forced:  # the user asked for the source (--no-binary)
            return True
        host = platform.machine()
        wheels = [link for link in links if link.is_wheel and not link.yanked]
        if (self.chooser.get() is None and wheels and self.registry.get(project) is None
                and all(not link.filename.endswith("-any.whl") for link in wheels)):
            self.refused[project] = ("no-build-environment", (
                f"{project} has native code (it publishes only platform wheels) and nothing "
                f"on this {host} machine can build {target.machine} code for "
                f"{target.runtime}; its sdist was not built ({self.chooser.reason})."))
            return False
        d = diagnose(project, str(max(versions)), links, target)
        return not (d.glibc_blocked and not self.config.build_above_glibc_ceiling)


def _store_in_cas(resolution: Resolution, cas: Path, jobs: int) -> Dict[str, str]:
    """Keep every downloaded file under files/<sha[:2]>/<sha>/<name> for later runs."""
    shas: Dict[str, str] = {}

    def keep(item: ResolvedItem) -> None:
        if item.path is None or not item.path.exists():
            return
        sha = file_sha256(item.path)
        shas[item.path.name] = sha
        store(item.path, sha, cas)

    workers.map_all(keep, resolution.items, jobs)
    return shas
