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
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from packaging.utils import canonicalize_name

from ..verify import bundle as _bundle
from .. import errors
from ..build.builder import BuildConfig, build_dependencies
from ..build.report import BuildReport, tool_json
from ..registry.runtimes import ARCHITECTURES, load_runtimes
from ..verify.static_check import MAX_LAYERS, StaticChecker, StaticReport
from ..targets.target import Target
from ..ui import UI, NullUI
from ..verify.wheels import Finding



def _load_backends():
    """The dynamic backends module, or None when this installation has none."""
    import importlib
    try:
        return importlib.import_module("lambda_compat.prove.backends")
    except ModuleNotFoundError as exc:
        if exc.name != "lambda_compat.prove.backends":
            raise
        return None

REPORT_VERSION = 1
#: Proof levels, weakest first.
PROOFS = ("static", "host", "rootfs", "image")


# --------------------------------------------------------------------------- targets

@dataclass(frozen=True)
class SelectedTarget:
    target: Target
    deprecated: bool
    #: Functions on this runtime can no longer be updated (it was named explicitly).
    blocked: bool = False


@dataclass(frozen=True)
class SkippedRuntime:
    """A runtime the default target set left out, and why."""

    runtime: str
    arches: Tuple[str, ...]
    reason: str                          # "updates-blocked"
    deprecation: Optional[datetime.date]
    block_function_update: Optional[datetime.date]

    @property
    def message(self) -> str:
        since = (f" since {self.block_function_update.isoformat()}"
                 if self.block_function_update else "")
        return (f"{self.runtime} ({', '.join(self.arches)}): functions can no longer be "
                f"updated{since}; name it with --runtime, or add --include-deprecated")

    def to_json(self) -> dict:
        def day(d: Optional[datetime.date]) -> Optional[str]:
            return d.isoformat() if d else None
        return {"runtime": self.runtime, "arches": list(self.arches), "reason": self.reason,
                "deprecation": day(self.deprecation),
                "block_function_update": day(self.block_function_update),
                "message": self.message}


class TargetSelection(List[SelectedTarget]):
    """The selected targets, in order, and (``skipped``) the runtimes left out."""

    skipped: Tuple[SkippedRuntime, ...] = ()


def select_targets(runtimes: Sequence[str] = (), arches: Sequence[str] = (), *,
                   today: datetime.date, include_deprecated: bool = False,
                   runtimes_file: Optional[Path] = None) -> TargetSelection:
    """The targets to check, in registry order (Python version, then architecture).

    No runtime named: every runtime whose functions can still be updated on ``today``
    (before its block-update date), deprecated ones included and flagged; the others are
    listed in ``.skipped`` with the reason. ``include_deprecated`` adds them all. Runtimes
    named explicitly are checked whatever their lifecycle. No architecture named: both.
    Unknown names raise UnknownTarget (exit 2).
    """
    registry = load_runtimes(runtimes_file)
    arch_list: List[str] = []
    for a in arches or ARCHITECTURES:
        # normalise aliases (aarch64 -> arm64) through the registry's own lookup
        norm = registry.get(registry.runtimes[-1], a).arch
        if norm not in arch_list:
            arch_list.append(norm)
    rt_list: List[str] = []
    for r in runtimes:
        norm = registry.get(r, arch_list[0]).runtime
        if norm not in rt_list:
            rt_list.append(norm)
    explicit = bool(rt_list)
    out = TargetSelection()
    skipped: Dict[str, Any] = {}
    for facts in registry.targets:
        if facts.arch not in arch_list:
            continue
        if explicit and facts.runtime not in rt_list:
            continue
        blocked = not _accepts_updates(facts, today)
        if blocked and not explicit and not include_deprecated:
            skipped.setdefault(facts.runtime, (facts, []))[1].append(facts.arch)
            continue
        out.append(SelectedTarget(Target.from_facts(facts), facts.is_deprecated(today), blocked))
    out.skipped = tuple(
        SkippedRuntime(rt, tuple(arch_names), "updates-blocked", facts.deprecation,
                       getattr(facts, "block_function_update", None))
        for rt, (facts, arch_names) in skipped.items())
    if not out:
        raise errors.BadInput(
            f"No target left to check: functions on every selected runtime can no longer be "
            f"updated on {today}.",
            hint="Name one with --runtime, or add --include-deprecated.")
    return out


def _accepts_updates(facts, today: datetime.date) -> bool:
    accepts = getattr(facts, "accepts_updates", None)
    return accepts(today) if accepts is not None else not facts.is_deprecated(today)


# --------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Disagreement:
    """The static and the dynamic proof disagree about one distribution."""

    distribution: str
    module: Optional[str]
    static: str          # "ok" or "error"
    dynamic: str         # "ok" or "failed"
    detail: str

    def to_json(self) -> dict:
        return {"distribution": self.distribution, "module": self.module,
                "static": self.static, "dynamic": self.dynamic, "detail": self.detail}


@dataclass
class TargetResult:
    target: Target
    deprecated: bool = False
    blocked: bool = False
    static: Optional[StaticReport] = None
    build: Optional[BuildReport] = None
    dynamic: Any = None                 # backends.DynamicResult
    backend: Optional[str] = None       # description of the backend used
    proof: str = "static"
    findings: List[Finding] = field(default_factory=list)
    disagreements: List[Disagreement] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    environment_problem: Optional[str] = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def verdict(self) -> str:
        return "compatible" if self.ok else "incompatible"

    def cell(self, distribution: str) -> str:
        """Verdict of one distribution here: ok, warning, error, or absent."""
        key = canonicalize_name(distribution)
        mine = [f for f in self.findings if f.distribution == distribution
                or canonicalize_name(f.distribution) == key]
        if any(f.severity == "error" for f in mine):
            return "error"
        if mine:
            return "warning"
        present = self.static is not None and any(
            canonicalize_name(d.name) == key for d in self.static.distributions)
        return "ok" if present else "absent"

    def to_json(self) -> dict:
        t = self.target
        dyn = None
        if self.dynamic is not None:
            d = self.dynamic
            dyn = {"backend": d.backend, "proof": d.proof, "python": d.python,
                   "error": d.error, "standin": getattr(d, "standin", None),
                   "imports": [_import_json(o) for o in _all_outcomes(d)]}
        build = None
        if self.build is not None:
            b = self.build
            build = {"status": b.status, "seconds": round(b.seconds, 3),
                     "distributions": len(b.distributions),
                     "missing": [{"name": m.name, "version": m.version,
                                  "reason_code": m.reason_code, "reason": m.reason,
                                  "suggestion": m.suggestion} for m in b.missing]}
        return {
            **t.to_json(),
            "deprecated": self.deprecated,
            "updates_blocked": self.blocked,
            "verdict": self.verdict, "proof": self.proof, "backend": self.backend,
            "environment_problem": self.environment_problem,
            "seconds": round(self.seconds, 3),
            "size": self.static.size.to_json() if self.static else None,
            "distributions": [d.to_json() for d in self.static.distributions]
            if self.static else [],
            "build": build,
            "dynamic": dyn,
            "findings": [f.to_json() for f in self.findings],
            "disagreements": [d.to_json() for d in self.disagreements],
            "notes": list(self.notes),
        }


@dataclass
class CheckReport:
    input_kind: str                     # requirements | directory | zip | layers
    input_path: Optional[str]
    layers: Tuple[str, ...]
    today: datetime.date
    targets: List[TargetResult] = field(default_factory=list)
    seconds: float = 0.0
    #: Runtimes the default target set left out (see select_targets).
    skipped: Tuple[SkippedRuntime, ...] = ()

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)

    @property
    def verdict(self) -> str:
        return "compatible" if self.ok else "incompatible"

    @property
    def exit_code(self) -> int:
        if any(t.environment_problem for t in self.targets):
            return errors.EnvironmentProblem.exit_code
        return 0 if self.ok else errors.DependenciesMissing.exit_code

    def to_json(self) -> dict:
        return {
            "version": REPORT_VERSION,
            "tool": tool_json(),
            "input": {"kind": self.input_kind, "path": self.input_path,
                      "layers": list(self.layers)},
            "date": self.today.isoformat(),
            "verdict": self.verdict,
            "seconds": round(self.seconds, 3),
            "targets": [t.to_json() for t in self.targets],
            "skipped": [s.to_json() for s in self.skipped],
        }


# --------------------------------------------------------------------------- options

@dataclass(frozen=True)
class CheckOptions:
    backend: str = "auto"               # auto | static | host | rootfs | container
    image: Optional[str] = None
    rootfs: Optional[Path] = None
    python: Optional[str] = None
    engine: Optional[str] = None
    handler: Optional[str] = None
    timeout: float = 120.0
    jobs: int = 4
    build: BuildConfig = field(default_factory=BuildConfig)


@dataclass(frozen=True)
class CheckInput:
    kind: str                           # requirements | directory | zip | layers
    path: Optional[Path]
    layers: Tuple[Path, ...] = ()

    @classmethod
    def detect(cls, path: Optional[Path], layers: Sequence[Path] = (), *,
               requirements: bool = False) -> "CheckInput":
        """What ``path`` is: a directory, a zip, or (anything else) a requirements file."""
        layers = tuple(Path(p) for p in layers)
        if path is None:
            if not layers:
                raise errors.BadInput("Nothing to check.",
                                      hint="Pass a requirements file, a bundle directory, a "
                                           "deployment .zip, or --layer ZIP.")
            return cls("layers", None, layers)
        path = Path(path)
        if requirements:
            return cls("requirements", path, layers)
        if path.is_dir():
            return cls("directory", path, layers)
        if not path.exists():
            raise errors.BadInput(f"{path}: no such file or directory.",
                                  hint="Pass a requirements file, a bundle directory or a "
                                       "deployment .zip.")
        with open(path, "rb") as f:
            head = f.read(4)
        if head.startswith(b"PK") or path.suffix.lower() == ".zip":
            return cls("zip", path, layers)
        return cls("requirements", path, layers)


# --------------------------------------------------------------------------- running

class _TargetUI:
    """Forwards events with the target's name added (builds run side by side)."""

    def __init__(self, ui: UI, target: Target) -> None:
        self.ui, self.name = ui, target.name

    def event(self, kind: str, /, **data: Any) -> None:
        data.setdefault("target", self.name)
        self.ui.event(kind, **data)


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
    if options.backend not in ("auto", "static") and _load_backends() is None:
        raise errors.EnvironmentProblem(
            f"The {options.backend!r} backend is not available in this installation.",
            hint="Use --backend static (or auto).")
    if len(inp.layers) > MAX_LAYERS:  # before anything is unpacked
        raise errors.BadInput(
            f"{len(inp.layers)} layers given; a Lambda function has at most {MAX_LAYERS}.",
            hint="Merge layers, or check the function with the layers it really uses.")
    with _bundle.Workspace() as ws:
        layers = [_bundle.open_input(p, f"layer {i}", ws) for i, p in enumerate(inp.layers, 1)]
        if inp.kind == "requirements":
            reqs = inp.path
            if reqs is None or not reqs.is_file():
                raise errors.BadInput(f"{reqs}: no such requirements file.",
                                      hint="Check the path.")

            req_file: Path = reqs

            def one(sel: SelectedTarget) -> TargetResult:
                return _check_requirements(req_file, layers, sel, options, ws, ui)
        else:
            task = _bundle.open_input(inp.path, "bundle", ws) if inp.path else None
            if task is None:
                empty = ws.new_dir("empty-task")
                task = _bundle.Opened(empty, empty, None, ())
            view = _bundle.load(task, layers)
            checker = StaticChecker(view, empty_is_error=True, registry_dir=options.build.registry_dir)

            def one(sel: SelectedTarget) -> TargetResult:
                return _check_view(checker, sel, options, ui)
        workers = max(1, min(options.jobs, len(targets)))
        if workers == 1:
            results = [one(t) for t in targets]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(one, targets))
    report.targets = results
    report.seconds = time.monotonic() - started
    return report


def _check_requirements(reqs: Path, layers: Sequence[_bundle.Opened], sel: SelectedTarget,
                        options: CheckOptions, ws: _bundle.Workspace, ui: UI) -> TargetResult:
    t = sel.target
    started = time.monotonic()
    ui.event("check-target-start", target=t.name, phase="build")
    out = ws.path / f"task-{t.runtime}-{t.arch}"
    config = replace(options.build, allow_missing=True)
    result = TargetResult(target=t, deprecated=sel.deprecated, blocked=sel.blocked)
    try:
        build = build_dependencies(out, reqs, t.runtime, ui=_TargetUI(ui, t), config=config,
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
    for d in build.missing:
        result.findings.append(Finding(
            d.reason_code or "missing", d.name, d.source,
            (d.reason or f"{d.name} could not be installed for the target.").rstrip(".") + ".",
            d.suggestion or "See the build report (lambda-compat build --format json).",
            severity="error"))
    out.mkdir(parents=True, exist_ok=True)
    view = _bundle.load(out, layers)
    checker = StaticChecker(view, empty_is_error=False, registry_dir=options.build.registry_dir)
    _finish(result, checker.check(t), out, view, options, ui)
    result.seconds = time.monotonic() - started
    ui.event("check-target-done", target=t.name, verdict=result.verdict, proof=result.proof,
             seconds=result.seconds)
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
        _dynamic(result, static, task_dir, view.layer_dirs, options, ui)


def _dynamic(result: TargetResult, static: StaticReport, task_dir: Path,
             layer_dirs: Sequence[Path], options: CheckOptions, ui: UI) -> None:
    t = result.target
    if options.backend == "static":
        return
    _backends = _load_backends()
    if _backends is None:
        result.notes.append("static proof only: the dynamic backends are not installed")
        return
    skipped: List[str] = []
    try:
        backend = _backends.select_backend(t, options.backend, image=options.image,
                                           rootfs=options.rootfs, python=options.python,
                                           engine=options.engine, ui=_TargetUI(ui, t),
                                           skipped=skipped)
    except errors.BadInput:
        raise
    except errors.EnvironmentProblem as exc:
        # an explicitly requested backend that cannot run for this target: say so, keep the
        # static verdict, exit 3 once every target is reported
        result.environment_problem = str(exc)
        result.notes.append(f"static proof only: {exc.message}")
        return
    # available backends that could not be prepared are said, never skipped quietly; when
    # none of them leaves a dynamic proof, that is the target's environment problem
    result.notes.extend(f"backend not usable: {line}" for line in skipped)
    if backend is None:
        if skipped:
            result.environment_problem = "; ".join(skipped)
        result.notes.append(f"static proof only: no backend can run {t.name} here "
                            f"(see --backend, --rootfs, --image, --python)")
        return
    modules = static.modules()
    if not modules and not options.handler:
        result.notes.append("static proof only: nothing to import")
        return
    result.backend = backend.describe()
    ui.event("check-import-start", target=t.name, backend=result.backend,
             modules=len(modules))
    dyn = backend.import_modules(task_dir, list(layer_dirs), list(modules),
                                 handler=options.handler, timeout=options.timeout,
                                 after=static.after())
    result.dynamic = dyn
    if dyn.error:
        # never a silent step down to the static proof: the target says its backend broke
        msg = f"the {backend.proof} backend ({result.backend}) could not run: {dyn.error}"
        result.notes.append("static proof only: " + msg)
        result.environment_problem = msg
        return
    result.proof = dyn.proof
    if getattr(backend, "confine", True) is False:
        result.notes.append("the host proof ran unconfined (no bwrap): this machine's own "
                            "libraries were visible, so an import that works may have "
                            "borrowed one Lambda lacks")
    if getattr(dyn, "standin", None):
        result.notes.append(f"the {dyn.proof} proof ran in a stand-in ({dyn.standin}), not in "
                            f"the runtime's own image: it proves less than the real image")
    for o in dyn.outcomes:
        if o.ok and getattr(o, "after", ()):
            result.notes.append(
                f"{o.module} refuses to be imported on its own ({_one_line(o.alone_error)}); "
                f"it imported after {', '.join(o.after)}, which depend(s) on it, as it is "
                f"used")
    static_errors: Dict[str, List[Finding]] = {}
    for f in static.findings:
        if f.severity == "error":
            static_errors.setdefault(f.distribution, []).append(f)
    for o in _all_outcomes(dyn):
        if o.ok:
            continue
        detail = _one_line(o.error)
        result.findings.append(Finding(
            "import-failed", o.distribution, None,
            f"import {o.module} failed in the {dyn.proof} proof: {detail}",
            _import_fix(o)))
        if o.distribution not in static_errors:
            result.disagreements.append(Disagreement(
                o.distribution, o.module, "ok", "failed",
                f"the static check found nothing wrong with {o.distribution}, but import "
                f"{o.module} failed ({detail}); the import failure decides the verdict"))
    for dist, found in static_errors.items():
        tried = [o for o in dyn.outcomes if o.distribution == dist]
        if tried and all(o.ok for o in tried):
            codes = ", ".join(sorted({f.code for f in found}))
            result.disagreements.append(Disagreement(
                dist, tried[0].module, "error", "ok",
                f"{dist} imported in the {dyn.proof} proof, but the static check found "
                f"{codes}; that environment is not the Lambda image (different libraries, "
                f"newer glibc), so the static finding stands"))


def _import_json(o) -> dict:
    out = {"distribution": o.distribution, "module": o.module, "ok": o.ok, "error": o.error,
           "reason": getattr(o, "reason", None)}
    if getattr(o, "after", ()):
        out["after"] = list(o.after)
        out["alone_error"] = o.alone_error
    return out


def _all_outcomes(dyn) -> List[Any]:
    """Module outcomes plus the handler check, when there was one."""
    out = list(dyn.outcomes)
    handler = getattr(dyn, "handler", None)
    if handler is not None:
        out.append(handler)
    return out


def _one_line(error: Optional[str]) -> str:
    lines = [l for l in (error or "failed").strip().splitlines() if l.strip()]
    return lines[-1] if lines else "failed"


def _import_fix(o) -> str:
    text = o.error or ""
    if "cannot open shared object file" in text:
        return ("A shared library is missing: ship it in the bundle's lib/ directory (or a "
                "layer's lib/), or use a wheel that bundles it.")
    if f"No module named '{o.module}." in text:
        return ("A submodule of the package itself is missing on this runtime: usually an "
                "extension module built for another Python version or architecture; install "
                "the package built for the target.")
    if "No module named" in text:
        return "A module is missing: add the distribution that provides it to the requirements."
    if "GLIBC" in text or "undefined symbol" in text or "version `" in text:
        return "A binary needs newer system libraries: use wheels built for the runtime."
    if getattr(o, "reason", None) == "timeout":
        return "The import did not finish in time (--timeout); it may wait on the network."
    return "Read the error; the import ran in an environment like the runtime's."
