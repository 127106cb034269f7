"""lambda-compat: will these Python dependencies import on AWS Lambda?

The public API is imported lazily (``import lambda_compat`` stays cheap for the CLI).
"""

from typing import Any

__version__ = "0.1.0"

_API = {
    "build_dependencies": "build.builder", "BuildConfig": "build.builder",
    "PythonPipDependencyBuilder": "build.pip_builder", "PackagerError": "build.pip_builder",
    "MissingDependencyError": "build.pip_builder", "NoSuchPackageError": "build.pip_builder",
    "PackageDownloadError": "build.pip_builder", "UnsupportedPythonVersion": "build.pip_builder",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'lambda_compat' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
