"""The staged bundle checked for the target; findings on your own files say so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

from ..ui import UI
from .model import State
from .staging import is_within


def verify_bundle(state: State, task: Path, layer_root: Optional[Path], ui: UI, *,
                  registry_dir: Optional[Path] = None) -> None:
    """Check the staged trees for the target (with the caller's package registry, else the
    shipped one); the failure, if any, goes into ``state``."""
    from ..verify.bundle_check import check_bundle
    ui.event("package-verify-start", target=state.target.name)
    report = check_bundle(task, [layer_root] if layer_root else [], state.target,
                          registry_dir=registry_dir)
    state.findings.extend(with_origins(report.findings, state, task, layer_root))
    state.verified = True
    ui.event("package-verify-done", ok=report.ok, findings=len(report.findings))
    if not report.ok:
        size_only = all(f.code == "size-limit" for f in report.errors)
        state.failure = "size-limit" if size_only else "verification-failed"


def with_origins(findings, state: State, task: Path, layer_root: Optional[Path]):
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
            if is_within(src, state.project.root) else str(src)
        t = state.target
        fix = (f"{rel} is your own file (vendor/ or sources), not a dependency lambda-compat "
               f"builds: replace it with a build for {t.runtime} on {t.machine} (glibc "
               f"{'.'.join(map(str, t.glibc))}; the Lambda build image for the runtime has the "
               f"right toolchain), or remove it.")
        out.append(replace(f, message=f"{f.message} (from {rel})", fix=fix))
    return out


