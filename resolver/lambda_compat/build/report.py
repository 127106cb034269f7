"""What a build returns: per distribution, what was chosen and how, or why nothing fits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from .._version import __version__
from ..targets.target import Target
from ..verify.wheels import Finding


def tool_json() -> dict:
    """The producing tool, as every machine-readable output names it."""
    return {"name": "lambda-compat", "version": __version__}

REPORT_VERSION = 1

#: How a distribution was satisfied. Order = the builder's phases.
PHASES = (
    "wheel",              # a wheel compatible with the target, as resolved
    "built",              # built from source with an interpreter of the target's version
    "built-no-compiler",  # built from source with compilers disabled (pure-Python fallback)
    "registry",           # platform-tagged wheel without native code, accepted by an entry
    "missing",            # nothing works: see reason and suggestion
)


@dataclass
class DistOutcome:
    name: str
    version: Optional[str]
    phase: str
    requested: bool = False
    file: Optional[str] = None          # the wheel that goes into the bundle
    source: Optional[str] = None        # the file pip chose (wheel or sdist) / local dir
    sha256: Optional[str] = None        # of ``source``
    reason_code: Optional[str] = None
    reason: Optional[str] = None
    suggestion: Optional[str] = None
    build_log: Optional[str] = None
    interpreter: Optional[str] = None
    build_environment: Optional[str] = None   # where it was built ("built in: ...")
    registry_entry: Optional[str] = None
    findings: List[Finding] = field(default_factory=list)
    attempts: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.phase != "missing"

    def to_json(self) -> dict:
        return {
            "name": self.name, "version": self.version, "phase": self.phase, "ok": self.ok,
            "requested": self.requested, "file": self.file, "source": self.source,
            "sha256": self.sha256, "reason_code": self.reason_code, "reason": self.reason,
            "suggestion": self.suggestion, "build_log": self.build_log,
            "interpreter": self.interpreter, "build_environment": self.build_environment,
            "registry_entry": self.registry_entry,
            "attempts": list(self.attempts),
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass
class BuildReport:
    target: Target
    requirements: str
    artifacts_dir: str
    distributions: List[DistOutcome] = field(default_factory=list)
    installed: bool = False
    registry_version: Optional[str] = None
    warnings: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def missing(self) -> List[DistOutcome]:
        return [d for d in self.distributions if not d.ok]

    @property
    def ok(self) -> bool:
        return not self.missing

    @property
    def status(self) -> str:
        if self.ok:
            return "built"
        return "partial" if self.installed else "missing"

    def to_json(self) -> dict:
        t = self.target
        return {
            "version": REPORT_VERSION,
            "tool": tool_json(),
            "target": t.to_json(),
            "requirements": self.requirements,
            "artifacts_dir": self.artifacts_dir,
            "status": self.status,
            "installed": self.installed,
            "registry_version": self.registry_version,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
            "distributions": [d.to_json() for d in sorted(self.distributions,
                                                          key=lambda d: d.name.lower())],
        }
