"""The options of a packaging run, its result, and the state the result is built in."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import errors
from ..build.report import BuildReport, tool_json
from ..targets.target import Target
from ..verify.wheels import Finding
from .lockfiles.selection import LockSelection
from .project import Project
from .reprozip import DEFAULT_LEVEL, ZipSummary

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
                                        "suggestion": d.suggestion,
                                        "build_environment": d.build_environment}
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



@dataclass
class State:
    """What one packaging run has found so far; :meth:`result` freezes it."""

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

