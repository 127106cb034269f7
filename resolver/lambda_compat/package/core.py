"""``package_project``: a project in, ``deployment.zip`` (and ``layer.zip``) out, for one target.

1. The dependencies (requirements.txt, or a lock file converted by :mod:`.lockfiles`) are built
   for the target by :func:`lambda_compat.build.builder.build_dependencies` into a temporary
   directory beside the output directory, with the shared cache.
2. ``--strip tests,docs`` removes those folders from the dependencies and rewrites each
   distribution's RECORD without them (``importlib.metadata.files()`` stays true).
3. The function's file system is staged: the app sources, the contents of vendor/ and the
   dependencies at the top level of the bundle, or, with a layer, the dependencies and vendor/
   under ``python/lib/pythonX.Y/site-packages/`` of the layer. Two origins claiming the same
   file is an error. Steps 2 and 3: :mod:`.staging`.
4. Everything staged is checked with :func:`lambda_compat.verify.bundle_check.check_bundle` for
   the target (vendor/ included; :mod:`.verification`); ``--check-handler`` imports the handler
   in the target's backend (:mod:`.handler`).
5. The archives are compressed to temporary files in the output directory, their sizes are
   judged against Lambda's limits, and only then renamed into place (:mod:`.archives`). Any
   failure before the rename leaves the output directory as it was.

The options, the result and the state it is built in are in :mod:`.model`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

from .. import errors
from ..build.builder import BuildConfig, build_dependencies
from ..registry.runtimes import get_target
from ..host import outputs
from ..ui import UI, NullUI
from ..units import kib_or_mib
from ..verify.wheels import Finding
from . import archives
from .handler import check_handler, validate_handler
from .lockfiles import dispatch as lock_dispatch
from .model import (DEPLOYMENT_ZIP, LAYER_ZIP, STRIP_FOLDERS, UNZIPPED_LIMIT, ZIP_LIMIT,
                    PackageOptions, PackageResult, Sizes, State)
from .project import Project
from .reprozip import ZipSummary
from .staging import is_within, stage, strip_folders, tree_bytes
from .verification import verify_bundle


def package_project(project: Project, output_dir: Path, runtime: str, arch: str = "x86_64", *,
                    ui: Optional[UI] = None, config: Optional[BuildConfig] = None,
                    options: Optional[PackageOptions] = None) -> PackageResult:
    """Package ``project`` for ``runtime``/``arch`` into ``output_dir``.

    Returns the result; zips are written only when it is ``ok``. Raises
    :class:`~lambda_compat.errors.LambdaCompatError` subclasses for bad input and environment
    problems (nothing written then either).
    """
    config = config or BuildConfig()
    options = options or PackageOptions()
    ui = ui or NullUI()
    started = time.monotonic()
    target = get_target(runtime, arch, config.runtimes_file)
    _check_options(options)
    output_dir = _checked_output(Path(output_dir).absolute(), project, options)
    if options.check_handler is not None:
        validate_handler(options.check_handler)
    created_output = not output_dir.exists()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.lambda-compat-package-",
                                 dir=output_dir.parent))
    state = State(target=target, project=project, output_dir=output_dir, options=options)
    temps: List[Path] = []
    try:
        _run(state, work, temps, ui, config)
        return state.result(started)
    finally:
        for tmp in temps:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
        shutil.rmtree(work, ignore_errors=True)
        if created_output and state.status != "written":
            try:  # nothing was changed: not even an empty directory stays
                output_dir.rmdir()
            except OSError:
                pass


# -- internals ---------------------------------------------------------------------------------

def _check_options(options: PackageOptions) -> None:
    for category in options.strip:
        if category not in STRIP_FOLDERS:
            raise errors.BadInput(f"--strip {category!r}: unknown category.",
                                  hint=f"Categories: {', '.join(STRIP_FOLDERS)} "
                                       f"(e.g. --strip tests,docs).")
    if not 0 <= options.compression_level <= 9:
        raise errors.BadInput(f"--compression-level {options.compression_level}: not between "
                              f"0 and 9.", hint="6 is zip's default; 9 is the smallest.")


def _run(state: State, work: Path, temps: List[Path], ui: UI, config: BuildConfig) -> None:
    """Build, stage, check and write; a failure stops at its step (recorded in ``state``)."""
    options = state.options
    ui.event("package-start", target=state.target.name, project=str(state.project.root))
    deps = _dependencies(state, work, ui, config)
    if state.failure:
        return
    if deps is not None and options.strip:
        state.stripped, state.stripped_bytes = strip_folders(deps, options.strip)
    task, layer_root = stage(state, work, deps)
    sizes = Sizes(task_bytes=tree_bytes(task),
                  layer_bytes=tree_bytes(layer_root) if layer_root else 0)
    state.sizes = sizes
    ui.event("package-sizes", **sizes.to_json())
    if options.verify:
        verify_bundle(state, task, layer_root, ui, registry_dir=config.registry_dir)
    else:
        _not_verified(state, sizes, layer_root)
    if state.failure:
        return
    if options.check_handler:
        check_handler(state, task, layer_root, ui)
        if state.failure:
            return
    summaries = archives.write_zips(state, task, layer_root, temps, ui, config)
    state.sizes = replace(sizes,
                          deployment_zip_bytes=summaries[DEPLOYMENT_ZIP].compressed_bytes,
                          layer_zip_bytes=summaries[LAYER_ZIP].compressed_bytes
                          if LAYER_ZIP in summaries else None)
    ui.event("package-sizes", **state.sizes.to_json())
    _zip_size_findings(state, summaries)
    archives.put_in_place(state, summaries, temps, layer_root, ui)


def _checked_output(output_dir: Path, project: Project, options: PackageOptions) -> Path:
    """``output_dir`` if the zips may be written there; BadInput (exit 2) otherwise."""
    if output_dir.exists() and not output_dir.is_dir():
        raise errors.BadInput(f"{output_dir} exists and is not a directory.",
                              hint="Choose another output directory with -o.")
    if any(is_within(output_dir, s.path) for s in project.sources) or \
            (project.vendor is not None and is_within(output_dir, project.vendor)):
        raise errors.BadInput(f"the output directory {output_dir} is inside a source or the "
                              f"vendor directory; the zips would package themselves.",
                              hint="Write them elsewhere, e.g. -o dist (at the project root).")
    outputs.check_zip_output(output_dir, (DEPLOYMENT_ZIP, LAYER_ZIP), force=options.force)
    return output_dir



def _not_verified(state: State, sizes: Sizes, layer_root: Optional[Path]) -> None:
    """--no-verify: a warning, and the unzipped size still judged against Lambda's limit."""
    state.warnings.append(
        "NOT VERIFIED: --no-verify skipped the check of the bundle against "
        f"{state.target.name}; the zips may hold files that do not load on Lambda.")
    if sizes.unzipped_bytes > UNZIPPED_LIMIT:
        state.findings.append(Finding(
            "size-limit", "(bundle)", None,
            f"Unzipped, the function{' and its layer' if layer_root else ''} take "
            f"{kib_or_mib(sizes.unzipped_bytes)}; Lambda allows {kib_or_mib(UNZIPPED_LIMIT)} (250 MB).",
            "Strip tests and docs (--strip tests,docs) or drop heavy dependencies."))
        state.failure = "size-limit"


def _zip_size_findings(state: State, summaries: Dict[str, ZipSummary]) -> None:
    """A warning for each zip too big for a direct upload."""
    for name, s in summaries.items():
        if s.compressed_bytes > ZIP_LIMIT:
            state.findings.append(Finding(
                "size-limit", "(bundle)", name,
                f"{name} is {kib_or_mib(s.compressed_bytes)}; a direct upload to Lambda is "
                f"limited to {kib_or_mib(ZIP_LIMIT)} (50 MB).",
                "Upload it through S3 (--s3-bucket), which allows up to the 250 MB "
                "unzipped limit" + ("" if state.options.layer else
                                    ", or move the dependencies into a layer (--layer)")
                + ".", severity="warning"))




class _PipWatch:
    """Passes events on; notes whether pip ran (a resolution not reused from the cache)."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui
        self.pip_ran = False

    def event(self, kind: str, /, **data) -> None:
        if kind.startswith("pip-"):
            self.pip_ran = True
        self.ui.event(kind, **data)


def _dependencies(state: State, work: Path, ui: UI, config: BuildConfig) -> Optional[Path]:
    """Build the dependencies into work/deps; None when the project has none."""
    project, target = state.project, state.target
    if project.dependencies is None:
        return None
    requirements = project.dependencies
    if project.dependencies_kind != "requirements":
        selection = lock_dispatch.select(project.dependencies, target)
        state.lock = selection
        state.warnings.extend(selection.warnings)
        ui.event("package-lock", kind=selection.kind, packages=len(selection.pins),
                 excluded_dev=len(selection.excluded_dev))
        if not selection.pins:
            return None
        requirements = selection.write_requirements(work / "requirements-from-lock.txt")
    deps = work / "deps"
    watch = _PipWatch(ui)
    report = build_dependencies(deps, requirements, target.runtime, ui=watch,
                                config=replace(config, allow_missing=False),
                                architecture=target.arch)
    state.build = report
    state.resolution_reused = not watch.pip_ran
    state.warnings.extend(report.warnings)
    if not report.ok:
        state.failure = "dependencies-missing"
        for d in report.missing:
            state.findings.append(Finding(
                d.reason_code or "missing", d.name, d.file,
                d.reason or f"{d.name} {d.version or ''} cannot be built for {target.name}.",
                d.suggestion or "", "error"))
        return None
    (deps / outputs.MARKER).unlink(missing_ok=True)  # the bundle's marker is not shipped
    return deps

