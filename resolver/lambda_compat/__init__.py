"""lambda-compat: will these Python dependencies import on AWS Lambda?

The public API. Names are imported lazily, on first use, so that ``import lambda_compat``
(and the CLI's start-up) stays cheap; each name's home is spelled out below, which keeps the
dependency visible to the layer contract (docs/architecture.md).

- build: :func:`build_dependencies`, :class:`BuildConfig`, :class:`BuildReport`
- check: :func:`run_check`, :func:`select_targets`, :class:`CheckInput`, :class:`CheckOptions`,
  :class:`CheckReport`
- package: :func:`package_project`, :class:`PackageOptions`, :func:`load_project`
- verify: :func:`check_bundle`
- targets: :func:`get_target`, :class:`Target`
- the aws-lambda-builders ``python_pip`` interface: :class:`PythonPipDependencyBuilder` and
  its errors
"""

from typing import Any

from ._version import __version__


def _build(name: str) -> Any:
    from .build import builder, report
    return {"build_dependencies": builder.build_dependencies, "BuildConfig": builder.BuildConfig,
            "BuildReport": report.BuildReport}[name]


def _check(name: str) -> Any:
    from .check import core, inputs, report
    return {"run_check": core.run_check, "select_targets": inputs.select_targets,
            "CheckInput": inputs.CheckInput, "CheckOptions": inputs.CheckOptions,
            "CheckReport": report.CheckReport}[name]


def _package(name: str) -> Any:
    from .package import core, model, project
    return {"package_project": core.package_project, "PackageOptions": model.PackageOptions,
            "load_project": project.load_project}[name]


def _verify(name: str) -> Any:
    from .verify import bundle_check
    return {"check_bundle": bundle_check.check_bundle}[name]


def _targets(name: str) -> Any:
    from .registry import runtimes
    from .targets import target
    return {"get_target": runtimes.get_target, "Target": target.Target}[name]


def _pip_builder(name: str) -> Any:
    from .build import pip_builder
    return getattr(pip_builder, name)


_API = {
    **dict.fromkeys(("build_dependencies", "BuildConfig", "BuildReport"), _build),
    **dict.fromkeys(("run_check", "select_targets", "CheckInput", "CheckOptions",
                     "CheckReport"), _check),
    **dict.fromkeys(("package_project", "PackageOptions", "load_project"), _package),
    "check_bundle": _verify,
    **dict.fromkeys(("get_target", "Target"), _targets),
    **dict.fromkeys(("PythonPipDependencyBuilder", "PackagerError", "MissingDependencyError",
                     "NoSuchPackageError", "PackageDownloadError", "UnsupportedPythonVersion"),
                    _pip_builder),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    loader = _API.get(name)
    if loader is None:
        raise AttributeError(f"module 'lambda_compat' has no attribute {name!r}")
    value = loader(name)
    globals()[name] = value
    return value
