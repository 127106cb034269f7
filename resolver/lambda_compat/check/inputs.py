"""What ``lambda-compat check`` checks: the input (:class:`CheckInput`), the targets
(:func:`select_targets`) and the options (:class:`CheckOptions`)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .. import errors
from ..build.builder import BuildConfig
from ..registry.runtimes import load_runtimes
from ..targets.arch import ARCHITECTURES
from ..targets.target import Target


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
