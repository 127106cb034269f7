"""The aws-lambda-builders ``python_pip`` interface, backed by lambda-compat.

SAM, Chalice-style and other callers written against aws-lambda-builders' packager can swap
this in unchanged::

    from lambda_compat import PythonPipDependencyBuilder

    from lambda_compat import PackagerError
    builder = PythonPipDependencyBuilder(runtime="python3.12", architecture="arm64")
    builder.build_dependencies(artifacts_dir_path, scratch_dir_path, requirements_path)

The same arguments and the same exception family (``PackagerError`` and its subclasses,
``MissingDependencyError.missing``) as the original; the same contract on the artifacts
directory: dependencies are added to it (a caller may already have copied its sources
there), nothing in it is deleted, and what could be built is installed even when something
is missing, before ``MissingDependencyError`` is raised. What differs is the judgement: the
resolution, wheel choice and source builds are made for the Lambda target (markers, tags,
glibc, Requires-Python), not for the machine the build runs on.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, FrozenSet, Optional, Union

from .. import errors
from .builder import BuildConfig, build_dependencies
from .report import BuildReport
from ..ui import NullUI

PathLike = Union[str, "os.PathLike[str]"]


class PackagerError(Exception):
    """Base of every error the builder raises (as aws-lambda-builders' packager)."""


class InvalidSourceDistributionNameError(PackagerError):
    """A source distribution's file name could not be parsed."""


class RequirementsFileNotFoundError(PackagerError):
    """Kept for callers that catch it; like the original, a missing requirements file is
    treated as "no dependencies" and this is not raised."""

    def __init__(self, requirements_path: str) -> None:
        super().__init__(f"requirements file not found: {requirements_path}")


@dataclass(frozen=True)
class MissingPackage:
    """One distribution that could not be provided for the target."""

    name: str
    version: Optional[str]
    reason_code: Optional[str]
    reason: Optional[str]
    suggestion: Optional[str]

    @property
    def identifier(self) -> str:
        return f"{self.name}=={self.version}" if self.version else self.name

    def __str__(self) -> str:
        return self.identifier


class MissingDependencyError(PackagerError):
    """Some dependencies could not be provided for the target; ``missing`` names them (the
    others were installed into the artifacts directory)."""

    def __init__(self, missing: FrozenSet[MissingPackage], report: Optional[BuildReport] = None):
        self.missing = missing
        self.report = report
        lines = [f"{m.identifier}: {m.reason or m.reason_code or 'missing'}"
                 + (f" (fix: {m.suggestion})" if m.suggestion else "")
                 for m in sorted(missing, key=lambda m: m.name.lower())]
        super().__init__("could not provide these dependencies for the Lambda target:\n  "
                         + "\n  ".join(lines))


class NoSuchPackageError(PackagerError):
    """A requirement names a project or version the index does not have."""

    def __init__(self, package_name: str) -> None:
        super().__init__(f"could not satisfy the requirement: {package_name}")


class PackageDownloadError(PackagerError):
    """The index or a file could not be reached."""


class UnsupportedPackageError(Exception):
    """A package's name or version could not be read (as in the original, not a
    PackagerError)."""

    def __init__(self, package_name: str) -> None:
        super().__init__(f"could not read the name and version of {package_name}")


class UnsupportedPythonVersion(PackagerError):
    """The runtime is not a Lambda Python runtime lambda-compat knows."""

    def __init__(self, version: str) -> None:
        super().__init__(f"'{version}' is not a Lambda Python runtime lambda-compat knows")


class _EventsOnly:
    """aws-lambda-builders' ``ui`` has no fixed protocol; pass on only what ours emits."""

    def __init__(self, ui: Any) -> None:
        self._ui = ui

    def event(self, kind: str, /, **data: Any) -> None:
        handler = getattr(self._ui, "event", None)
        if callable(handler):
            handler(kind, **data)


class PythonPipDependencyBuilder:
    """Build a project's dependencies for one Lambda target into an artifacts directory.

    ``python_exe`` is the interpreter source distributions are built with (the original's
    positional argument; lambda-compat finds one of the target's version itself when it is
    None). ``osutils`` and ``dependency_builder`` are accepted for signature compatibility
    and ignored: the work is lambda-compat's.
    """

    def __init__(self, runtime: str, python_exe: Optional[str] = None, osutils: Any = None,
                 dependency_builder: Any = None, architecture: str = "x86_64") -> None:
        from ..registry.runtimes import load_runtimes
        try:
            load_runtimes().get(runtime, architecture)
        except errors.UnknownTarget as exc:
            if str(exc).startswith("Unknown runtime"):
                raise UnsupportedPythonVersion(runtime) from exc
            raise PackagerError(str(exc)) from exc
        self.runtime = runtime
        self.architecture = architecture
        self.python_exe = python_exe

    def build_dependencies(self, artifacts_dir_path: PathLike, scratch_dir_path: PathLike,
                           requirements_path: PathLike, ui: Any = None,
                           config: Optional[BuildConfig] = None) -> Optional[BuildReport]:
        """Add the dependencies of ``requirements_path`` to ``artifacts_dir_path``.

        Returns lambda-compat's report (None when there is nothing to install; the original
        always returns None). Raises
        ``MissingDependencyError`` after installing the rest when something is missing,
        ``NoSuchPackageError``, ``PackageDownloadError`` or ``PackagerError`` otherwise.
        """
        requirements = Path(requirements_path)
        if not _has_a_requirement(requirements):
            return None
        config = replace(config or BuildConfig(), allow_missing=True,
                         python=(config.python if config and config.python
                                 else self.python_exe))
        scratch = Path(scratch_dir_path)
        scratch.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="lambda-compat-deps-", dir=scratch))
        out = staging / "site-packages"
        try:
            try:
                report = build_dependencies(out, requirements, self.runtime,
                                            ui=_EventsOnly(ui) if ui is not None else NullUI(),
                                            config=config, architecture=self.architecture)
            except errors.UnknownPackage as exc:
                raise NoSuchPackageError(str(exc)) from exc
            except errors.IndexUnreachable as exc:
                raise PackageDownloadError(str(exc)) from exc
            except errors.LambdaCompatError as exc:
                raise PackagerError(str(exc)) from exc
            if report.installed and out.is_dir():
                _merge_into(out, Path(artifacts_dir_path))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if report.missing:
            raise MissingDependencyError(frozenset(
                MissingPackage(d.name, d.version, d.reason_code, d.reason, d.suggestion)
                for d in report.missing), report)
        return report


def _has_a_requirement(path: Path) -> bool:
    """As the original: a missing file, or one with only comments, means no dependencies."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise PackagerError(f"cannot read {path}: {exc.strerror}") from exc
    return any(line.strip() and not line.strip().startswith("#") for line in text.splitlines())


def _merge_into(src: Path, dest: Path) -> None:
    """Copy the built tree into ``dest``. A file the caller already has there is never
    overwritten: a different one at a path a dependency needs is an error, raised before
    anything is copied (so nothing is half-merged); an identical one is left as it is."""
    plan = []
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        for name in files:
            target = dest / rel / name
            if target.is_symlink() or target.exists():
                if target.is_file() and not target.is_symlink() and \
                        filecmp.cmp(Path(root) / name, target, shallow=False):
                    continue
                raise PackagerError(
                    f"cannot install {rel / name}: {target} already exists in the artifacts "
                    f"directory and is not the dependency's file; lambda-compat does not "
                    f"overwrite files it did not write (rename or remove yours)")
            plan.append((Path(root) / name, target))
    for source, target in plan:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.lambda-compat-tmp")
        shutil.copy2(source, tmp)
        os.replace(tmp, target)


__all__ = ["PythonPipDependencyBuilder", "PackagerError", "MissingDependencyError",
           "MissingPackage", "NoSuchPackageError", "PackageDownloadError",
           "UnsupportedPythonVersion", "UnsupportedPackageError",
           "InvalidSourceDistributionNameError", "RequirementsFileNotFoundError"]
