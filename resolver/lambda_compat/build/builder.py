"""``build_dependencies``: requirements in, a flat bundle for one Lambda target out.

The phases follow the aws-lambda-builders ``python_pip`` design, judged for the target:

1. resolve the whole closure for the target (pip engine, :mod:`lambda_compat.resolve.engine`);
2. a compatible wheel -> done (its tags, Requires-Python and ELF files re-verified);
3. source only -> if the same version has wheels that only need a newer glibc, stop there
   (missing, glibc-too-new); else build it with an interpreter of the target's version when
   the host machine matches, and verify the wheel's tags and ELF files;
4. else rebuild with the compilers disabled (pure-Python fallback) and verify again;
5. else the registry allowlist (platform tag, no native code, entry matches);
6. else missing, with the reason and a suggestion.

Then the wheels are installed flat into a staging directory beside the artifacts directory,
which is swapped in only on success.

Phase 1 is :mod:`.resolution`, phases 2-5 are :mod:`.phases`, phase 6 is :mod:`.missing`, the
install is :func:`.staging.install_and_swap` (begun while pip resolves:
:class:`.staging.EarlyInstall`); this module runs them in order.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

from .. import errors
from ..host import interpreters, lifecycle
from ..host import sandbox as host_sandbox
from ..host import outputs
from ..registry.packages import load_packages
from ..registry.runtimes import get_target
from ..resolve import reqfile
from ..host.paths import default_cache_dir
from ..resolve.engine import PipOptions, Resolution
from ..ui import UI, NullUI
from . import workers
from .environments import EnvironmentChooser
from .phases import Phases
from .report import BuildReport
from .resolution import resolve_all
from .staging import EarlyInstall, install_and_swap


@dataclass(frozen=True)
class BuildConfig:
    cache_dir: Optional[Path] = None
    python: Optional[str] = None               # interpreter for source builds (--python)
    # Where sdists are built (--build-env): auto | local | target-root | container
    # (build/environments.py).
    build_env: str = "auto"
    pip: PipOptions = field(default_factory=PipOptions)
    # Wall-clock bound of each build step of third-party code (--build-timeout).
    build_timeout: float = 1800.0
    # Run build code (metadata preparation, wheel builds) in the build sandbox; False is
    # --no-build-sandbox (docs/security.md).
    build_sandbox: bool = True
    # Replace a non-empty output directory lambda-compat did not write (--force).
    force_output: bool = False
    allow_missing: bool = False                # install what works even if something is missing
    build_above_glibc_ceiling: bool = False    # build sdists whose wheels need a newer glibc
    # Projects always built from their sdist, even where a compatible wheel exists
    # (--no-binary NAME; pip's own option, so it also reaches the build's pip calls).
    no_binary: Tuple[str, ...] = ()
    jobs: int = 4
    registry_dir: Optional[Path] = None        # package registry root (tests, registry PRs)
    runtimes_file: Optional[Path] = None
    # Reuse a resolution of byte-identical inputs for this long (PyPI's own page cache
    # lifetime); 0 always resolves afresh (--refresh).
    resolution_ttl: float = 600.0
    # Do not repeat a build that failed with the same inputs for this long (a day: a build
    # that fails once fails again, and numpy takes half an hour to); 0 (--refresh) builds
    # again. Its report says when it failed and how to build again.
    failure_ttl: float = 86400.0
    # How the judged wheels reach the artifacts directory: ``installer(wheels, artifacts)``;
    # None installs them at once (install_and_swap). ``check`` passes one that installs only
    # if the bundle turns out to be needed (check/lazy_bundle.py).
    installer: Optional[Callable[[List[Path], Path], None]] = None


def build_dependencies(artifacts_dir_path: Union[str, os.PathLike],
                       requirements_path: Union[str, os.PathLike], runtime: str,
                       ui: Optional[UI] = None, config: Optional[BuildConfig] = None,
                       architecture: str = "x86_64") -> BuildReport:
    """Build the dependencies in ``requirements_path`` for ``runtime``/``architecture``.

    Returns the report. The artifacts directory is replaced only when every distribution
    was satisfied (or ``config.allow_missing``); otherwise it is left exactly as it was.
    Raises :class:`~lambda_compat.errors.LambdaCompatError` subclasses for bad input and
    environment problems.
    """
    config = _with_no_binary(config or BuildConfig())
    ui = ui or NullUI()
    started = time.monotonic()
    target = get_target(runtime, architecture, config.runtimes_file)
    # the interpreters an sdist build would use, probed while the rest gets ready
    interpreters.warm_up(target.python_version, platform.machine(), config.python,
                         also=host_sandbox.bwrap_works if config.build_sandbox else None)
    requirements = Path(requirements_path)
    reqfile.validate(requirements)
    artifacts = Path(artifacts_dir_path).absolute()
    outputs.check_replaceable(artifacts, project_files=[requirements],
                              force=config.force_output)
    cache = (config.cache_dir or default_cache_dir()).absolute()
    for sub in ("files", "tmp", "built", "logs"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    _remove_stale(cache, artifacts)
    registry = load_packages(config.registry_dir)
    ui.event("start", target=target.name, requirements=str(requirements))
    report = BuildReport(target=target, requirements=str(requirements),
                         artifacts_dir=str(artifacts), registry_version=registry.version)
    if not config.build_sandbox:
        report.warnings.append(UNSANDBOXED_WARNING)
        ui.event("warning", message=UNSANDBOXED_WARNING)
    work = Path(tempfile.mkdtemp(prefix=lifecycle.owned_name("run-"), dir=cache / "tmp"))
    # the bundle's staging directory, filled with each wheel judged while pip resolves
    early = EarlyInstall(artifacts, cache / "unpacked") if config.installer is None else None
    try:
        # phase 1: resolve and download (a second pass for what pip left unjudged)
        chooser = EnvironmentChooser(target, config, cache, ui)
        resolution, shas = resolve_all(target, config, registry, cache, requirements, work,
                                       report, ui, chooser, early)
        phases = Phases(target, config, registry, cache, requirements, ui, resolution, shas,
                        chooser)
        wheels = _judge(phases, resolution, report, config.jobs)   # phases 2-6
        if report.ok or config.allow_missing:
            ui.event("install-start", count=len(wheels), dest=str(artifacts))
            installed_early = 0
            if config.installer is not None:
                config.installer(wheels, artifacts)
            else:
                installed_early = install_and_swap(wheels, artifacts, config.jobs,
                                                   cache / "unpacked", early)
            report.installed = True
            ui.event("install-done", count=len(wheels), dest=str(artifacts),
                     early=installed_early)
    finally:
        if early is not None:
            early.discard()  # not swapped in (nothing installed, a failure): removed
        shutil.rmtree(work, ignore_errors=True)
        # The pip engine builds sdists for their metadata in its own process: when it was
        # killed (a signal, a timeout), its build directory is left for us to remove.
        lifecycle.remove_stale(cache, "lc-build-")
        report.seconds = time.monotonic() - started
    ui.event("done", status=report.status, seconds=report.seconds)
    return report


def _judge(phases: Phases, resolution: Resolution, report: BuildReport,
           jobs: int) -> List[Path]:
    """Phases 2-6 for every resolved distribution, outcomes into ``report``: the wheels to
    install. Wheels are verified in parallel; sources are built one at a time, in order."""
    wheels: List[Path] = []
    binary = [i for i in resolution.items if i.is_wheel]
    for outcome, wheel in workers.map_all(phases.from_wheel, binary, jobs):
        report.distributions.append(outcome)
        if wheel:
            wheels.append(wheel)
    for item in resolution.items:
        if item.is_wheel:
            continue
        outcome, wheel = phases.from_source(item)
        report.distributions.append(outcome)
        if wheel:
            wheels.append(wheel)
    return wheels


UNSANDBOXED_WARNING = ("--no-build-sandbox: source distributions' build code ran WITHOUT the "
                       "build sandbox, with this user's files, network and credentials "
                       "(docs/security.md).")


def _remove_stale(cache: Path, artifacts: Path) -> None:
    """Leftovers of runs that were killed (their process is gone): staging, temp dirs."""
    lifecycle.remove_stale(cache / "tmp", "run-")
    lifecycle.remove_stale(cache, "lc-build-")
    for kind in ("new", "old"):
        lifecycle.remove_stale(artifacts.parent, f".{artifacts.name}.lambda-compat-{kind}-")


def _with_no_binary(config: BuildConfig) -> BuildConfig:
    """Validate ``no_binary`` and hand it to pip (resolution and builds) as --no-binary."""
    if not config.no_binary:
        return config
    import re
    names = []
    for value in config.no_binary:
        for name in filter(None, (n.strip() for n in str(value).split(","))):
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
                raise errors.BadInput(
                    f"--no-binary {name!r}: not a project name.",
                    hint="Name the projects to build from source, e.g. --no-binary pyyaml "
                         "(':all:' is not supported: wheels are what makes a bundle fit).")
            names.append(name)
    pip = replace(config.pip, extra_args=tuple(config.pip.extra_args)
                  + ("--no-binary", ",".join(names)))
    return replace(config, no_binary=tuple(names), pip=pip)
