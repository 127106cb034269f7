"""The result of ``lambda-compat check``: per target (:class:`TargetResult`) and for the run
(:class:`CheckReport`), with their JSON (``--format json``)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

from packaging.utils import canonicalize_name

from .. import errors
from ..build.report import BuildReport, tool_json
from .inputs import SkippedRuntime
from ..targets.target import Target
from ..verify.static_check import StaticReport
from ..verify.wheels import Finding

REPORT_VERSION = 1
#: Proof levels, weakest first.
PROOFS = ("static", "host", "rootfs", "image")


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
                   "cached_from": getattr(d, "cached_from", None),
                   "imports": [_import_json(o) for o in all_outcomes(d)]}
        build = None
        if self.build is not None:
            b = self.build
            build = {"status": b.status, "seconds": round(b.seconds, 3),
                     "distributions": len(b.distributions),
                     "missing": [{"name": m.name, "version": m.version,
                                  "reason_code": m.reason_code, "reason": m.reason,
                                  "suggestion": m.suggestion} for m in b.missing],
                     "built": [{"name": d.name, "version": d.version, "phase": d.phase,
                                "build_environment": d.build_environment}
                               for d in b.distributions if d.build_environment]}
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


def _import_json(o) -> dict:
    out = {"distribution": o.distribution, "module": o.module, "ok": o.ok, "error": o.error,
           "reason": getattr(o, "reason", None)}
    if getattr(o, "after", ()):
        out["after"] = list(o.after)
        out["alone_error"] = o.alone_error
    return out


def all_outcomes(dyn) -> List[Any]:
    """Module outcomes plus the handler check, when there was one."""
    out = list(dyn.outcomes)
    handler = getattr(dyn, "handler", None)
    if handler is not None:
        out.append(handler)
    return out
