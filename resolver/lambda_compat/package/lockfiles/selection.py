"""What a lock file gives one target: the selected pins, and the requirements file they make."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Pin:
    """One selected package: what the requirements file says about it."""

    name: str
    version: Optional[str]
    hashes: Tuple[str, ...]           # "sha256:<hex>", every file of this version
    marker: Optional[str] = None      # the lock's package-level marker (true for the target)
    reference: Optional[str] = None   # direct reference (URL, file path, VCS) if not an index
    via: Tuple[str, ...] = ()         # who requires it ("(project)" for a root)

    def requirement(self) -> str:
        if self.reference:
            text = f"{self.name} @ {self.reference}"
        else:
            text = f"{self.name}=={self.version}"
        if self.marker:
            text += f" ; {self.marker}"
        return text


@dataclass(frozen=True)
class LockSelection:
    """What a lock file gives one target by default."""

    path: Path
    kind: str
    target: str
    pins: Tuple[Pin, ...]
    excluded_dev: Tuple[str, ...]       # only in development groups / categories
    excluded_marker: Tuple[str, ...]    # in the default set, but not for this target
    warnings: Tuple[str, ...] = ()

    @property
    def hashed(self) -> bool:
        return bool(self.pins) and all(p.hashes for p in self.pins)

    def requirements_text(self) -> str:
        lines = [f"# Converted by lambda-compat from {self.path.name} ({self.kind}) for "
                 f"{self.target}:",
                 "# the default/main dependencies only; development groups are left out.",
                 "# Do not edit: change the lock file and package again."]
        hashed = self.hashed
        for pin in sorted(self.pins, key=lambda p: canonicalize_name(p.name)):
            req = pin.requirement()
            via = f"    # via {', '.join(pin.via)}" if pin.via else ""
            if hashed:
                lines.append(req + " \\")
                hashes = sorted(pin.hashes)
                for i, h in enumerate(hashes):
                    lines.append(f"    --hash={h}" + (" \\" if i < len(hashes) - 1 else ""))
                if via:
                    lines.append(via)
            else:
                lines.append(req)
                if via:
                    lines.append(via)
        return "\n".join(lines) + "\n"

    def write_requirements(self, dest: Path) -> Path:
        dest.write_text(self.requirements_text(), encoding="utf-8")
        return dest

    def to_json(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "target": self.target,
                "packages": [{"name": p.name, "version": p.version,
                              "reference": p.reference, "marker": p.marker,
                              "hashes": len(p.hashes)} for p in
                             sorted(self.pins, key=lambda p: canonicalize_name(p.name))],
                "excluded_dev": list(self.excluded_dev),
                "excluded_marker": list(self.excluded_marker),
                "hash_checking": self.hashed,
                "warnings": list(self.warnings)}
