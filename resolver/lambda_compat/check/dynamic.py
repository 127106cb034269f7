"""The dynamic part of ``lambda-compat check`` for one target: import every distribution's
top-level modules with the strongest backend that can run here (:mod:`lambda_compat.prove.backends`)
and weigh the outcome against the static proof."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from .. import errors
from .inputs import CheckOptions
from .report import Disagreement, TargetResult, all_outcomes
from ..targets.target import Target
from ..ui import UI
from ..verify.static_check import StaticReport
from ..verify.wheels import Finding


def backend_selector() -> Optional[Callable[..., Any]]:
    """:func:`lambda_compat.prove.backends.selection.select_backend`, or None when this
    installation has no dynamic backends (an import error inside them is raised, not taken for
    their absence)."""
    try:
        from ..prove.backends.selection import select_backend
    except ModuleNotFoundError as exc:
        if exc.name not in ("lambda_compat.prove", "lambda_compat.prove.backends",
                            "lambda_compat.prove.backends.selection"):
            raise
        return None
    return select_backend


_CACHES: Dict[Path, Any] = {}
_CACHES_LOCK = threading.Lock()


def proof_cache(options: CheckOptions) -> Any:
    """The run's :class:`~lambda_compat.prove.proof_cache.ProofCache` (one per cache dir, so
    the targets share their file hashes); ``--refresh`` runs every proof again."""
    from ..host.paths import default_cache_dir
    from ..prove.proof_cache import ProofCache
    directory = (options.build.cache_dir or default_cache_dir()).absolute() / "proofs"
    reuse = options.build.resolution_ttl > 0
    with _CACHES_LOCK:
        cache = _CACHES.get(directory)
        if cache is None or cache.reuse != reuse:
            cache = _CACHES[directory] = ProofCache(directory, reuse=reuse)
        return cache


class TargetUI:
    """Forwards events with the target's name added (builds run side by side)."""

    def __init__(self, ui: UI, target: Target) -> None:
        self.ui, self.name = ui, target.name

    def event(self, kind: str, /, **data: Any) -> None:
        data.setdefault("target", self.name)
        self.ui.event(kind, **data)


def bundle_fingerprint(task_dir: Path, options: CheckOptions) -> Optional[str]:
    """The bundle's content fingerprint as the proof cache computes it (None when this
    installation has no dynamic backends)."""
    if backend_selector() is None:
        return None
    from ..prove.proof_cache import tree_fingerprint
    hashes = proof_cache(options).hashes
    fingerprint = tree_fingerprint(task_dir, hashes)
    hashes.save()
    return fingerprint


def prove_dynamically(result: TargetResult, static: StaticReport, task_dir: Path,
                      layer_dirs: Sequence[Path], options: CheckOptions, ui: UI, *,
                      fingerprint: Optional[str] = None,
                      prepare: Optional[Callable[[], Any]] = None) -> None:
    """Import ``result``'s target's modules with the strongest backend that can run here;
    record the proof, the import failures and where they disagree with ``static``.
    ``fingerprint``: :func:`bundle_fingerprint`, if known; ``prepare()`` installs the bundle
    in ``task_dir`` if the imports must run."""
    t = result.target
    if options.backend == "static":
        return
    select_backend = backend_selector()
    if select_backend is None:
        result.notes.append("static proof only: the dynamic backends are not installed")
        return
    skipped: List[str] = []
    try:
        backend = select_backend(t, options.backend, image=options.image, rootfs=options.rootfs,
                                 python=options.python, engine=options.engine,
                                 ui=TargetUI(ui, t), skipped=skipped)
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
    from ..prove.proof_cache import import_modules
    dyn = import_modules(backend, proof_cache(options), task_dir, list(layer_dirs),
                         list(modules), handler=options.handler, timeout=options.timeout,
                         after=static.after(), bundle_fingerprint=fingerprint,
                         prepare=prepare)
    result.dynamic = dyn
    if getattr(dyn, "cached_from", None):
        result.notes.append(f"the {dyn.proof} proof was reused from {dyn.cached_from}: the "
                            f"same bundle and layers (content hashes), target, backend, "
                            f"interpreter or root and probe (--refresh runs it again)")
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
        if o.ok and o.after:
            result.notes.append(
                f"{o.module} refuses to be imported on its own ({_one_line(o.alone_error)}); "
                f"it imported after {', '.join(o.after)}, which depend(s) on it, as it is "
                f"used")
    static_errors: Dict[str, List[Finding]] = {}
    for f in static.findings:
        if f.severity == "error":
            static_errors.setdefault(f.distribution, []).append(f)
    for o in all_outcomes(dyn):
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
