"""Public entry point of the static check for callers that already have directories.

``check_bundle(task_dir, layer_dirs, target)`` judges an unpacked bundle (what Lambda mounts
at /var/task) and unpacked layers (each one's root is what Lambda extracts into /opt, in
order) against one target, without writing anything. Packaging code calls it before it
writes a zip; ``lambda-compat check`` uses the same checker for every target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from . import bundle as _bundle
from .static_check import DistSummary, SizeInfo, StaticChecker, StaticReport
from ..targets.target import Target
from .wheels import Finding

__all__ = ["check_bundle", "StaticReport", "SizeInfo", "DistSummary", "Finding"]


def check_bundle(task_dir: Path, layer_dirs: Sequence[Path], target: Target, *,
                 registry_dir: Optional[Path] = None) -> StaticReport:
    """Static report of ``task_dir`` (+ ``layer_dirs``) on ``target``, consulting the package
    registry at ``registry_dir`` (the shipped one when None).

    Raises :class:`~lambda_compat.errors.BadInput` when a directory does not exist. An empty
    bundle is an ``empty-bundle`` finding, not an exception.
    """
    for d in (task_dir, *layer_dirs):
        if not Path(d).is_dir():
            from ..errors import BadInput
            raise BadInput(f"{d}: not a directory.",
                           hint="check_bundle takes unpacked directories; use "
                                "lambda-compat check for zips.")
    view = _bundle.load(Path(task_dir), [Path(d) for d in layer_dirs])
    return StaticChecker(view, registry_dir=registry_dir).check(target)
