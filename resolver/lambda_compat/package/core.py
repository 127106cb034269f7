"""``package_project``: a project in, ``deployment.zip`` (and ``layer.zip``) out, for one target.

1. The dependencies (requirements.txt, or a lock file converted by :mod:`lockfiles`) are built
   for the target by :func:`lambda_compat.build.builder.build_dependencies` into a temporary
   directory beside the output directory, with the shared cache.
2. ``--strip tests,docs`` removes those folders from the dependencies and rewrites each
   distribution's RECORD without them (``importlib.metadata.files()`` stays true).
3. The function's file system is staged: the app sources, the contents of vendor/ and the
   dependencies at the top level of the bundle, or, with a layer, the dependencies and vendor/
   under ``python/lib/pythonX.Y/site-packages/`` of the layer. Two origins claiming the same
   file is an error.
4. Everything staged is checked with :func:`lambda_compat.verify.bundle_check.check_bundle` for the target
   (vendor/ included); ``--check-handler`` imports the handler in the target's backend.
5. The archives are compressed to temporary files in the output directory, their sizes are
   judged against Lambda's limits, and only then renamed into place. Any failure before the
   rename leaves the output directory as it was.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .. import errors
from .lockfiles import dispatch as lock_dispatch
from .lockfiles.selection import LockSelection
from ..host import outputs
from . import source_guard
from ..build.builder import BuildConfig, build_dependencies, default_cache_dir, get_target
from ..build.install import plan_wheel
from .reprozip import DEFAULT_LEVEL, RawEntry, ZipSummary, timestamp, write_zip
from .project import Project
from ..build.report import BuildReport, tool_json
from ..targets.target import Target
from ..ui import UI, NullUI
from ..verify.wheels import Finding

RESULT_VERSION = 1
DEPLOYMENT_ZIP = "deployment.zip"
LAYER_ZIP = "layer.zip"
#: Lambda quotas: 250 MB unzipped for the function and all its layers, 50 MB for a zip
#: uploaded directly (bigger ones go through S3). Same values as static_check.
UNZIPPED_LIMIT = 262_144_000
ZIP_LIMIT = 52_428_800
#: --strip categories and the folder names each one removes from dependencies.
STRIP_FOLDERS = {"tests": ("tests", "test"), "docs": ("docs", "doc")}


@dataclass(frozen=True)
class PackageOptions:
    layer: bool = False
    strip: Tuple[str, ...] = ()
    verify: bool = True
    check_handler: Optional[str] = None
    backend: str = "auto"                 # for --check-handler: auto | container | rootfs | host
    image: Optional[str] = None
    rootfs: Optional[Path] = None
    python: Optional[str] = None
    handler_timeout: float = 120.0
    compression_level: int = DEFAULT_LEVEL
    jobs: Optional[int] = None
    #: copy the deflate stream of files installed unchanged from a wheel (False: --recompress)
    reuse_wheel_streams: bool = True
    #: package what symbolic links pointing outside the project lead to
    follow_symlinks_outside: bool = False
    #: overwrite zips in an output directory lambda-compat did not write (--force)
    force: bool = False


@dataclass(frozen=True)
class Sizes:
    """Sizes against Lambda's limits (zip sizes are None when nothing was compressed)."""

    task_bytes: int
    layer_bytes: int
    deployment_zip_bytes: Optional[int] = None
    layer_zip_bytes: Optional[int] = None

    @property
    def unzipped_bytes(self) -> int:
        return self.task_bytes + self.layer_bytes

    def to_json(self) -> dict:
        return {"unzipped_bytes": self.unzipped_bytes, "task_bytes": self.task_bytes,
                "layer_bytes": self.layer_bytes, "unzipped_limit": UNZIPPED_LIMIT,
                "deployment_zip_bytes": self.deployment_zip_bytes,
                "layer_zip_bytes": self.layer_zip_bytes, "zip_limit": ZIP_LIMIT}


@dataclass(frozen=True)
class HandlerCheck:
    handler: str
    ok: bool
    backend: Optional[str]
    proof: Optional[str]
    error: Optional[str]          # "Type: message" of the failed import
    reason: Optional[str]         # import-error | crash | timeout | handler-not-found | ...
    detail: Optional[str]         # the traceback

    def to_json(self) -> dict:
        return {"handler": self.handler, "ok": self.ok, "backend": self.backend,
                "proof": self.proof, "error": self.error, "reason": self.reason,
                "detail": self.detail}


@dataclass(frozen=True)
class PackageResult:
    target: Target
    project: Project
    output_dir: Path
    layer: bool
    status: str                                # "written" | "failed"
    failure: Optional[str]                     # dependencies-missing | verification-failed |
                                               # handler-import-failed | size-limit
    verified: bool
    findings: Tuple[Finding, ...]
    sizes: Optional[Sizes]
    zips: Tuple[ZipSummary, ...]
    build: Optional[BuildReport]
    lock: Optional[LockSelection]
    stripped: Tuple[str, ...]
    stripped_bytes: int
    handler: Optional[HandlerCheck]
    warnings: Tuple[str, ...]
    removed: Tuple[str, ...]                   # stale outputs removed (layer.zip)
    seconds: float
    resolution_reused: Optional[bool] = None   # the build reused a cached resolution

    @property
    def ok(self) -> bool:
        return self.status == "written"

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else errors.DependenciesMissing.exit_code

    def to_json(self) -> dict:
        t = self.target
        build = None
        if self.build is not None:
            b = self.build
            build = {"status": b.status, "seconds": round(b.seconds, 3),
                     "resolution_reused": self.resolution_reused,
                     "distributions": [{"name": d.name, "version": d.version,
                                        "phase": d.phase, "file": d.file,
                                        "reason_code": d.reason_code, "reason": d.reason,
                                        "suggestion": d.suggestion}
                                       for d in sorted(b.distributions,
                                                       key=lambda d: d.name.lower())],
                     "warnings": list(b.warnings)}
        p = self.project
        return {
            "version": RESULT_VERSION,
            "tool": tool_json(),
            "target": t.to_json(),
            "project": p.to_json(),
            "output_dir": str(self.output_dir),
            "layout": "layer" if self.layer else "bundle",
            "status": self.status,
            "failure": self.failure,
            "verified": self.verified,
            "findings": [f.to_json() for f in self.findings],
            "dependencies": {"kind": p.dependencies_kind,
                             "path": str(p.dependencies) if p.dependencies else None,
                             "lock": self.lock.to_json() if self.lock else None,
                             "build": build},
            "stripped": {"paths": list(self.stripped), "bytes": self.stripped_bytes},
            "handler": self.handler.to_json() if self.handler else None,
            "sizes": self.sizes.to_json() if self.sizes else None,
            "zips": [dict(z.to_json(), name=z.path.name) for z in self.zips],
            "removed": list(self.removed),
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 3),
        }


def site_packages(target: Target) -> str:
    """Where a layer's packages go for ``target``: python/lib/pythonX.Y/site-packages."""
    return f"python/lib/python{target.python_version[0]}.{target.python_version[1]}/site-packages"


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
    for category in options.strip:
        if category not in STRIP_FOLDERS:
            raise errors.BadInput(f"--strip {category!r}: unknown category.",
                                  hint=f"Categories: {', '.join(STRIP_FOLDERS)} "
                                       f"(e.g. --strip tests,docs).")
    if not 0 <= options.compression_level <= 9:
        raise errors.BadInput(f"--compression-level {options.compression_level}: not between "
                              f"0 and 9.", hint="6 is zip's default; 9 is the smallest.")
    output_dir = _checked_output(Path(output_dir).absolute(), project, options)
    if options.check_handler is not None:
        _validate_handler(options.check_handler)
    created_output = not output_dir.exists()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.lambda-compat-package-",
                                 dir=output_dir.parent))
    state = _State(target=target, project=project, output_dir=output_dir, options=options)
    temps: List[Path] = []
    try:
        ui.event("package-start", target=target.name, project=str(project.root))
        deps = _dependencies(state, work, ui, config)
        if state.failure:
            return state.result(started)
        if deps is not None and options.strip:
            state.stripped, state.stripped_bytes = strip_folders(deps, options.strip)
        task, layer_root = _stage(state, work, deps)
        state.sizes = Sizes(task_bytes=_tree_bytes(task),
                            layer_bytes=_tree_bytes(layer_root) if layer_root else 0)
        ui.event("package-sizes", **state.sizes.to_json())
        _verify(state, task, layer_root, ui)
        if state.failure:
            return state.result(started)
        if options.check_handler:
            _check_handler(state, task, layer_root, ui)
            if state.failure:
                return state.result(started)
        output_dir.mkdir(parents=True, exist_ok=True)
        dt = timestamp()
        token = uuid.uuid4().hex[:12]
        plan = [(DEPLOYMENT_ZIP, task)] + ([(LAYER_ZIP, layer_root)] if layer_root else [])
        streams = _wheel_streams(state.build, config) if options.reuse_wheel_streams else {}
        if layer_root is not None:
            prefix = site_packages(target) + "/"
            reuse = {LAYER_ZIP: {prefix + k: v for k, v in streams.items()}, DEPLOYMENT_ZIP: {}}
        else:
            reuse = {DEPLOYMENT_ZIP: streams}
        summaries = []
        for name, tree in plan:
            tmp = output_dir / f".{name}.{token}.tmp"
            temps.append(tmp)
            ui.event("package-zip-start", name=name)
            summaries.append(write_zip(tree, tmp, date_time=dt,
                                       level=options.compression_level, jobs=options.jobs,
                                       reuse=reuse.get(name)))
        by_name = {n: s for (n, _), s in zip(plan, summaries)}
        state.sizes = replace(state.sizes,
                              deployment_zip_bytes=by_name[DEPLOYMENT_ZIP].compressed_bytes,
                              layer_zip_bytes=by_name[LAYER_ZIP].compressed_bytes
                              if LAYER_ZIP in by_name else None)
        ui.event("package-sizes", **state.sizes.to_json())
        for name, s in by_name.items():
            if s.compressed_bytes > ZIP_LIMIT:
                state.findings.append(Finding(
                    "size-limit", "(bundle)", name,
                    f"{name} is {_mb(s.compressed_bytes)}; a direct upload to Lambda is "
                    f"limited to {_mb(ZIP_LIMIT)} (50 MB).",
                    "Upload it through S3 (--s3-bucket), which allows up to the 250 MB "
                    "unzipped limit" + ("" if state.options.layer else
                                        ", or move the dependencies into a layer (--layer)")
                    + ".", severity="warning"))
        final = []
        for (name, _), s, tmp in zip(plan, summaries, temps):
            dest = output_dir / name
            os.replace(tmp, dest)
            final.append(replace(s, path=dest))
        temps.clear()
        stale = output_dir / LAYER_ZIP
        if not layer_root and stale.exists():
            stale.unlink()
            state.removed.append(str(stale))
            state.warnings.append(f"removed {stale} from an earlier --layer run: its "
                                  f"dependencies are now inside {DEPLOYMENT_ZIP}.")
        outputs.write_marker(output_dir)
        state.zips = tuple(final)
        state.status = "written"
        ui.event("package-done", zips=[str(z.path) for z in final])
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

def _checked_output(output_dir: Path, project: Project, options: PackageOptions) -> Path:
    """``output_dir`` if the zips may be written there; BadInput (exit 2) otherwise."""
    if output_dir.exists() and not output_dir.is_dir():
        raise errors.BadInput(f"{output_dir} exists and is not a directory.",
                              hint="Choose another output directory with -o.")
    if any(_is_within(output_dir, s.path) for s in project.sources) or \
            (project.vendor is not None and _is_within(output_dir, project.vendor)):
        raise errors.BadInput(f"the output directory {output_dir} is inside a source or the "
                              f"vendor directory; the zips would package themselves.",
                              hint="Write them elsewhere, e.g. -o dist (at the project root).")
    outputs.check_zip_output(output_dir, (DEPLOYMENT_ZIP, LAYER_ZIP), force=options.force)
    return output_dir


@dataclass
class _State:
    target: Target
    project: Project
    output_dir: Path
    options: PackageOptions
    status: str = "failed"
    failure: Optional[str] = None
    verified: bool = False
    findings: List[Finding] = field(default_factory=list)
    sizes: Optional[Sizes] = None
    zips: Tuple[ZipSummary, ...] = ()
    build: Optional[BuildReport] = None
    lock: Optional[LockSelection] = None
    stripped: Tuple[str, ...] = ()
    stripped_bytes: int = 0
    handler: Optional[HandlerCheck] = None
    warnings: List[str] = field(default_factory=list)
    removed: List[str] = field(default_factory=list)
    origins: Dict[Path, Path] = field(default_factory=dict)   # staged file -> project file
    resolution_reused: Optional[bool] = None

    def result(self, started: float) -> PackageResult:
        return PackageResult(
            target=self.target, project=self.project, output_dir=self.output_dir,
            layer=self.options.layer, status=self.status, failure=self.failure,
            verified=self.verified, findings=tuple(self.findings), sizes=self.sizes,
            zips=self.zips, build=self.build, lock=self.lock, stripped=self.stripped,
            stripped_bytes=self.stripped_bytes, handler=self.handler,
            resolution_reused=self.resolution_reused,
            warnings=tuple(self.warnings), removed=tuple(self.removed),
            seconds=time.monotonic() - started)


def _is_within(path: Path, base: Path) -> bool:
    try:
        path.relative_to(base)
        return True
    except ValueError:
        return False


def _mb(n: int) -> str:
    """Sizes in Lambda's units: its "MB" limits are MiB (250 MB = 262,144,000 bytes)."""
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


def _validate_handler(handler: str) -> None:
    import re
    if not re.match(r"^[A-Za-z_]\w*(?:[./][A-Za-z_]\w*)*\.[A-Za-z_]\w*$", handler):
        raise errors.BadInput(
            f"--check-handler {handler!r} is not of the form module.function.",
            hint="Use the handler setting of the function, e.g. app.handler or "
                 "chalicelib/api.handler.")


class _PipWatch:
    """Passes events on; notes whether pip ran (a resolution not reused from the cache)."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui
        self.pip_ran = False

    def event(self, kind: str, /, **data) -> None:
        if kind.startswith("pip-"):
            self.pip_ran = True
        self.ui.event(kind, **data)


def _dependencies(state: _State, work: Path, ui: UI, config: BuildConfig) -> Optional[Path]:
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


def _wheel_streams(build: Optional[BuildReport], config: BuildConfig) -> Dict[str, RawEntry]:
    """Installed path -> deflated member of the wheel it came from (wheels in the cache)."""
    if build is None:
        return {}
    cas = (config.cache_dir or default_cache_dir()).absolute() / "files"
    out: Dict[str, RawEntry] = {}
    for d in build.distributions:
        if d.phase != "wheel" or not d.file or not d.sha256:
            continue
        wheel = cas / d.sha256[:2] / d.sha256 / d.file
        if not wheel.is_file():
            continue
        try:
            _dist_info, plan, _skipped = plan_wheel(wheel)
        except (OSError, errors.LambdaCompatError, zipfile.BadZipFile):
            continue
        for info, rel in plan:
            if info.compress_type == zipfile.ZIP_DEFLATED and not info.flag_bits & 0x1:
                out[rel] = RawEntry(wheel, info.header_offset, info.compress_size,
                                    info.file_size, info.CRC)
    return out


def strip_folders(root: Path, categories: Sequence[str]) -> Tuple[Tuple[str, ...], int]:
    """Remove the folders of ``categories`` from the installed distributions under ``root``.

    Only folders inside packages or at the top level of ``root`` are removed, never anything
    in a ``.dist-info`` directory. Every RECORD naming a removed file is rewritten without
    those rows, so ``importlib.metadata.files()`` lists only files that exist. Returns the
    removed folders (relative, posix) and the bytes freed.
    """
    names = {n for c in categories for n in STRIP_FOLDERS[c]}
    removed: List[str] = []
    freed = 0
    for dirpath, dirnames, _files in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0].endswith(".dist-info"):
            dirnames[:] = []
            continue
        for d in sorted(dirnames):
            if d in names and not d.endswith(".dist-info"):
                full = Path(dirpath) / d
                freed += _tree_bytes(full)
                shutil.rmtree(full)
                rel = os.path.normpath(os.path.join(rel_dir, d)).replace(os.sep, "/")
                removed.append(rel)
        dirnames[:] = [d for d in dirnames if d not in names]
    if removed:
        prefixes = tuple(r + "/" for r in removed)
        for record in sorted(root.glob("*.dist-info/RECORD")):
            text = record.read_text(encoding="utf-8")
            rows = list(csv.reader(io.StringIO(text)))
            kept = [r for r in rows if r and not _stripped(r[0], prefixes)]
            if len(kept) != len([r for r in rows if r]):
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerows(kept)
                tmp = record.with_name("RECORD.lambda-compat-tmp")
                tmp.write_text(buf.getvalue(), encoding="utf-8")
                os.replace(tmp, record)
    return tuple(sorted(removed)), freed


def _stripped(path: str, prefixes: Tuple[str, ...]) -> bool:
    norm = os.path.normpath(path).replace(os.sep, "/")
    return norm.startswith(prefixes)


def _tree_bytes(root: Optional[Path]) -> int:
    if root is None:
        return 0
    total = 0
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for f in files:
            total += os.stat(os.path.join(dirpath, f)).st_size
    return total


class _Stager:
    """Places files into the staged trees; two origins claiming one file is an error."""

    def __init__(self, project: Project, sources: Dict[Path, Path],
                 allow_outside: bool = False) -> None:
        self.project = project
        self.origin: Dict[Path, str] = {}
        self.sources = sources
        self.allow_outside = allow_outside

    def place_file(self, src: Path, dest: Path, origin: str) -> None:
        source_guard.check_link(src, self.project.root, origin, self.allow_outside)
        source_guard.check_name(src, origin)
        if dest in self.origin or os.path.lexists(dest):
            other = self.origin.get(dest, "a dependency")
            raise errors.BadInput(
                f"{dest.name}: {origin} and {other} both put a file at the same place "
                f"({self._rel(dest)}).",
                hint="Keep only one copy: remove it from vendor/ or from the requirements, "
                     "or rename your module.")
        if not src.exists():
            raise errors.BadInput(f"{src}: a broken symbolic link in {origin}.",
                                  hint="Remove the link or point it at a file.")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise errors.BadInput(
                f"{dest.name}: {origin} needs a directory where a dependency or another "
                f"source has a file ({self._rel(dest.parent)}).",
                hint="Keep only one of them: remove it from vendor/ or from the requirements, "
                     "or rename your module.") from None
        try:
            os.link(os.path.realpath(src), dest)
        except OSError:
            shutil.copyfile(src, dest)
            shutil.copymode(src, dest)
        self.origin[dest] = origin
        self.sources[dest] = src

    def place_tree(self, src: Path, dest: Path, origin: str) -> None:
        source_guard.check_link(src, self.project.root, origin, self.allow_outside)
        seen = set()
        for dirpath, dirnames, files in os.walk(src, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:       # a symlink loop
                dirnames[:] = []
                continue
            seen.add(real)
            rel = os.path.relpath(dirpath, src)
            rel_posix = "" if rel == "." else rel.replace(os.sep, "/")
            dirnames[:] = sorted(d for d in dirnames if not self.project.excluded(
                f"{rel_posix}/{d}" if rel_posix else d))
            for d in dirnames:
                source_guard.check_link(Path(dirpath) / d, self.project.root, origin,
                                        self.allow_outside)
                source_guard.check_name(Path(dirpath) / d, origin)
            for f in sorted(files):
                rel_file = f"{rel_posix}/{f}" if rel_posix else f
                if self.project.excluded(rel_file):
                    continue
                self.place_file(Path(dirpath) / f, dest / rel_file, origin)
            if not files and not dirnames and rel_posix:
                (dest / rel_posix).mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _rel(dest: Path) -> str:
        parts = dest.parts
        for marker in ("task", "layer"):
            if marker in parts:
                i = len(parts) - 1 - parts[::-1].index(marker)
                return "/".join(parts[i + 1:])
        return str(dest)


def _stage(state: _State, work: Path, deps: Optional[Path]) -> Tuple[Path, Optional[Path]]:
    """The function's trees: work/task (-> /var/task) and work/layer (-> /opt) or None."""
    project, layer = state.project, state.options.layer
    task = work / "task"
    layer_root = work / "layer" if layer else None
    if layer_root is not None:
        site = layer_root / site_packages(state.target)
        site.parent.mkdir(parents=True, exist_ok=True)
        if deps is not None:
            os.rename(deps, site)
        else:
            site.mkdir()
        task.mkdir()
        lib_dest = site
    else:
        if deps is not None:
            os.rename(deps, task)
        else:
            task.mkdir()
        lib_dest = task
    stager = _Stager(project, state.origins, state.options.follow_symlinks_outside)
    for s in project.sources:
        origin = f"the source {s.path.relative_to(project.root).as_posix()}"
        if s.path.is_dir():
            stager.place_tree(s.path, task / s.name, origin)
        else:
            stager.place_file(s.path, task / s.name, origin)
    if project.vendor is not None:
        stager.place_tree(project.vendor, lib_dest,
                          f"vendor/ ({project.vendor.relative_to(project.root).as_posix()})")
    if layer_root is not None and not any(lib_dest.iterdir()):
        state.warnings.append("layer.zip holds no packages: the project has no dependencies "
                              "and no vendor/ directory.")
    return task, layer_root


def _verify(state: _State, task: Path, layer_root: Optional[Path], ui: UI) -> None:
    sizes = state.sizes
    if not state.options.verify:
        state.warnings.append(
            "NOT VERIFIED: --no-verify skipped the check of the bundle against "
            f"{state.target.name}; the zips may hold files that do not load on Lambda.")
        if sizes is not None and sizes.unzipped_bytes > UNZIPPED_LIMIT:
            state.findings.append(Finding(
                "size-limit", "(bundle)", None,
                f"Unzipped, the function{' and its layer' if layer_root else ''} take "
                f"{_mb(sizes.unzipped_bytes)}; Lambda allows {_mb(UNZIPPED_LIMIT)} (250 MB).",
                "Strip tests and docs (--strip tests,docs) or drop heavy dependencies."))
            state.failure = "size-limit"
        return
    from ..verify.bundle_check import check_bundle
    ui.event("package-verify-start", target=state.target.name)
    report = check_bundle(task, [layer_root] if layer_root else [], state.target)
    state.findings.extend(_with_origins(report.findings, state, task, layer_root))
    state.verified = True
    ui.event("package-verify-done", ok=report.ok, findings=len(report.findings))
    if not report.ok:
        size_only = all(f.code == "size-limit" for f in report.errors)
        state.failure = "size-limit" if size_only else "verification-failed"


def _with_origins(findings, state: _State, task: Path, layer_root: Optional[Path]):
    """Findings on files from your sources or vendor/ say so, with a fix that fits."""
    origins = state.origins
    out = []
    for f in findings:
        local = None
        if f.file and f.file.startswith("/var/task/"):
            local = task / f.file[len("/var/task/"):]
        elif f.file and f.file.startswith("/opt/") and layer_root is not None:
            local = layer_root / f.file[len("/opt/"):]
        src = origins.get(local) if local is not None else None
        if src is None:
            out.append(f)
            continue
        rel = src.relative_to(state.project.root).as_posix() \
            if _is_within(src, state.project.root) else str(src)
        t = state.target
        fix = (f"{rel} is your own file (vendor/ or sources), not a dependency lambda-compat "
               f"builds: replace it with a build for {t.runtime} on {t.machine} (glibc "
               f"{'.'.join(map(str, t.glibc))}; the Lambda build image for the runtime has the "
               f"right toolchain), or remove it.")
        out.append(replace(f, message=f"{f.message} (from {rel})", fix=fix))
    return out


def _check_handler(state: _State, task: Path, layer_root: Optional[Path], ui: UI) -> None:
    handler = state.options.check_handler
    if handler is None:
        return
    o = state.options
    try:
        from ..prove import backends
    except ModuleNotFoundError as exc:  # pragma: no cover - installation without backends
        raise errors.EnvironmentProblem(
            "--check-handler needs the dynamic backends, which this installation lacks.",
            hint="Reinstall lambda-compat.") from exc
    backend = backends.select_backend(state.target, o.backend, image=o.image, rootfs=o.rootfs,
                                      python=o.python)
    if backend is None:
        raise errors.BackendUnavailable(
            f"--check-handler: nothing here can import code for {state.target.name} (no "
            f"container image, unpacked root or local CPython "
            f"{state.target.python_version[0]}.{state.target.python_version[1]} for "
            f"{state.target.machine}).",
            hint="Pass --python PATH (a local interpreter of that version), --rootfs DIR or "
                 "--image IMAGE, or leave --check-handler out.")
    ui.event("package-handler-start", handler=handler, backend=backend.describe())
    result = backend.import_modules(task, [layer_root] if layer_root else [], [],
                                    handler=handler, timeout=o.handler_timeout)
    if result.error:
        raise errors.BackendUnavailable(
            f"--check-handler: the {backend.proof} backend ({backend.describe()}) could not "
            f"run: {result.error}", hint="Try another --backend, or leave --check-handler out.")
    h = result.handler
    check = HandlerCheck(handler=handler, ok=bool(h and h.ok), backend=result.backend,
                         proof=result.proof, error=h.error if h else "no result",
                         reason=h.reason if h else None, detail=h.detail if h else None)
    if check.ok:
        check = replace(check, error=None)
    state.handler = check
    ui.event("package-handler-done", ok=check.ok, error=check.error)
    if not check.ok:
        state.failure = "handler-import-failed"
        state.findings.append(Finding(
            "handler-import-failed", "(handler)", handler.rsplit(".", 1)[0].replace(".", "/")
            + ".py",
            f"the handler {handler} does not import on {state.target.name} "
            f"({result.proof} proof): {check.error}",
            "The traceback shows where the import failed. Code that must not run while the "
            "handler is checked can test os.environ.get('LAMBDA_COMPAT_CLI_MODE') == '1'."))
