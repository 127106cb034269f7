"""``lambda-compat check``: per target, will this import on Lambda, and how much is proved.

Inputs: a requirements file (built per target with the core builder into a temporary
directory, sharing the download cache, then checked), a bundle directory, a deployment zip,
and layers (directories or zips, in order). Targets are checked in parallel: static proof
(:mod:`lambda_compat.verify.static_check`) first, then, when a backend is available for the target,
the dynamic proof (import every distribution's top-level modules). Each target records
which proof it got: ``static``, ``host``, ``rootfs`` or ``image``; nothing implies more.
"""

from __future__ import annotations

import datetime
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence

from .. import errors
from ..build.builder import build_dependencies
from ..host import lifecycle
from ..host.paths import default_cache_dir
from .dynamic import TargetUI, backend_selector, bundle_fingerprint, prove_dynamically
from .inputs import CheckInput, CheckOptions, SelectedTarget
from .lazy_bundle import LazyBundle
from .static_memo import StaticMemo, memo_key
from .report import CheckReport, TargetResult
from ..targets.target import Target
from ..ui import UI, NullUI
from ..verify import bundle as _bundle
from ..verify import zips
from ..verify.static_check import MAX_LAYERS, StaticChecker, StaticReport
from ..verify.wheels import Finding


def run_check(inp: CheckInput, targets: Sequence[SelectedTarget], options: CheckOptions,
              *, ui: Optional[UI] = None, today: Optional[datetime.date] = None) -> CheckReport:
    """Check ``inp`` on every target. Raises BadInput / EnvironmentProblem for problems that
    concern the whole run (unreadable input, unknown backend...)."""
    ui = ui or NullUI()
    started = time.monotonic()
    report = CheckReport(input_kind=inp.kind,
                         input_path=str(inp.path) if inp.path else None,
                         layers=tuple(str(p) for p in inp.layers),
                         today=today or datetime.date.today(),
                         skipped=tuple(getattr(targets, "skipped", ())))
    if options.backend not in ("auto", "static") and backend_selector() is None:
        raise errors.EnvironmentProblem(
            f"The {options.backend!r} backend is not available in this installation.",
            hint="Use --backend static (or auto).")
    if len(inp.layers) > MAX_LAYERS:  # before anything is unpacked
        raise errors.BadInput(
            f"{len(inp.layers)} layers given; a Lambda function has at most {MAX_LAYERS}.",
            hint="Merge layers, or check the function with the layers it really uses.")
    with zips.Workspace() as ws:
        layers = [zips.open_input(p, f"layer {i}", ws) for i, p in enumerate(inp.layers, 1)]
        if inp.kind == "requirements":
            reqs = inp.path
            if reqs is None or not reqs.is_file():
                raise errors.BadInput(f"{reqs}: no such requirements file.",
                                      hint="Check the path.")

            req_file: Path = reqs

            def one(sel: SelectedTarget) -> TargetResult:
                return _check_requirements(req_file, layers, sel, options, ws, ui)
        else:
            task = zips.open_input(inp.path, "bundle", ws) if inp.path else None
            if task is None:
                empty = ws.new_dir("empty-task")
                task = zips.Opened(empty, empty, None, ())
            view = _bundle.load(task, layers)
            checker = StaticChecker(view, empty_is_error=True,
                                    registry_dir=options.build.registry_dir)

            def one(sel: SelectedTarget) -> TargetResult:
                return _check_view(checker, sel, options, ui)
        # interrupted, it stops the targets' builds at once rather than wait for them
        results = lifecycle.parallel_map(one, list(targets),
                                         max(1, min(options.jobs, len(targets))))
    report.targets = results
    report.seconds = time.monotonic() - started
    return report


def _check_requirements(reqs: Path, layers: Sequence[zips.Opened], sel: SelectedTarget,
                        options: CheckOptions, ws: zips.Workspace, ui: UI) -> TargetResult:
    t = sel.target
    started = time.monotonic()
    ui.event("check-target-start", target=t.name, phase="build")
    out = ws.path / f"task-{t.runtime}-{t.arch}"
    cache_dir = (options.build.cache_dir or default_cache_dir()).absolute()
    bundle = LazyBundle(out, options.build.jobs, cache_dir)
    config = replace(options.build, allow_missing=True, installer=bundle.receive)
    result = TargetResult(target=t, deprecated=sel.deprecated, blocked=sel.blocked)
    try:
        build = build_dependencies(out, reqs, t.runtime, ui=TargetUI(ui, t), config=config,
                                   architecture=t.arch)
    except (errors.DependenciesMissing, errors.HashMismatch) as exc:
        # No bundle for this target (pip found no consistent set, or the hashes cover other
        # targets' files only): this target's verdict, not a crash; the others go on.
        result.findings.extend(_unbuilt_findings(exc, reqs, t))
        result.seconds = time.monotonic() - started
        _deprecation(result)
        ui.event("check-target-done", target=t.name, verdict=result.verdict,
                 proof=result.proof, seconds=result.seconds)
        return result
    result.build = build
    for d in build.distributions:
        if d.build_environment:
            result.notes.append(f"{d.name} {d.version or ''} built in: {d.build_environment}")
    for d in build.missing:
        result.findings.append(Finding(
            d.reason_code or "missing", d.name, d.source,
            (d.reason or f"{d.name} could not be installed for the target.").rstrip(".") + ".",
            d.suggestion or "See the build report (lambda-compat build --format json).",
            severity="error"))
    # the static proof (and the bundle's fingerprint) of the same wheels, target, registry
    # and code is remembered; then the bundle is installed only if an import proof must run
    memo = StaticMemo(cache_dir / "static-proofs", reuse=options.build.resolution_ttl > 0)
    key = (memo_key(bundle.identity, t, options.build.registry_dir)
           if not layers and bundle.wheels is not None else None)
    known = memo.load(key, t)
    if known is not None:
        static, fingerprint = known.report, known.fingerprint
        result.notes.append(f"the static proof was reused from {known.created}: the same "
                            f"wheels (sha256), target facts, package registry and lambda-compat "
                            f"(--refresh runs it again)")
    else:
        view = _bundle.load(bundle.materialize(), layers)
        static = StaticChecker(view, empty_is_error=False,
                               registry_dir=options.build.registry_dir).check(t)
        fingerprint = bundle_fingerprint(out, options) if key is not None else None
        memo.store(key, static, fingerprint, out)
    result.static = static
    result.findings.extend(static.findings)
    _deprecation(result)
    prove_dynamically(result, static, out, [lay.directory for lay in layers], options, ui,
                      fingerprint=fingerprint, prepare=bundle.materialize)
    result.seconds = time.monotonic() - started
    ui.event("check-target-done", target=t.name, verdict=result.verdict, proof=result.proof,
             seconds=result.seconds)
    # the bundle (our own, in the workspace) is no longer needed: removed now, beside the
    # other targets' work, rather than all at the end
    shutil.rmtree(out, ignore_errors=True)
    return result


def _unbuilt_findings(exc: errors.LambdaCompatError, reqs: Path, t: Target) -> List[Finding]:
    if not isinstance(exc, errors.HashMismatch):
        return [Finding("resolution-failed", "(requirements)", str(reqs), exc.message,
                        exc.hint or "Relax the pins that conflict on this target.")]
    fix = (f"Add the hashes of the files pip picks for {t.name} (`pip hash FILE`), or lock "
           f"for every platform you deploy to.")
    if not exc.mismatches:
        return [Finding("hash-mismatch", "(requirements)", str(reqs), exc.message, fix)]
    return [Finding("hash-mismatch", p.name or "(requirements)", p.filename,
                    f"--require-hashes: {p.describe()}.", fix) for p in exc.mismatches]


def _check_view(checker: StaticChecker, sel: SelectedTarget, options: CheckOptions,
                ui: UI) -> TargetResult:
    t = sel.target
    started = time.monotonic()
    ui.event("check-target-start", target=t.name, phase="static")
    result = TargetResult(target=t, deprecated=sel.deprecated, blocked=sel.blocked)
    view = checker.bundle
    _finish(result, checker.check(t), view.task_dir, view, options, ui)
    result.seconds = time.monotonic() - started
    ui.event("check-target-done", target=t.name, verdict=result.verdict, proof=result.proof,
             seconds=result.seconds)
    return result


def _deprecation(result: TargetResult) -> None:
    facts = result.target.facts
    update = getattr(facts, "block_function_update", None)
    if result.blocked:
        result.findings.append(Finding(
            "deprecated-runtime", "(runtime)", None,
            f"{result.target.runtime} is deprecated and functions on it can no longer be "
            f"updated" + (f" (since {update.isoformat()})" if update else "") + ".",
            "Move the function to a supported runtime.", severity="warning"))
    elif result.deprecated:
        when = getattr(facts, "deprecation", None)
        result.findings.append(Finding(
            "deprecated-runtime", "(runtime)", None,
            f"{result.target.runtime} is deprecated"
            + (f" since {when.isoformat()}" if when else "")
            + "; AWS no longer applies security patches to it"
            + (f"; functions on it can be updated until {update.isoformat()}" if update else "")
            + ".",
            "Move the function to a supported runtime.", severity="warning"))


def _finish(result: TargetResult, static: StaticReport, task_dir: Optional[Path],
            view: _bundle.Bundle, options: CheckOptions, ui: UI) -> None:
    result.static = static
    result.findings.extend(static.findings)
    _deprecation(result)
    if task_dir is not None:
        prove_dynamically(result, static, task_dir, view.layer_dirs, options, ui)
