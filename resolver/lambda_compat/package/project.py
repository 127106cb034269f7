"""A project to package: where its code, its vendored packages and its dependencies are.

The default layout is the one Chalice made familiar::

    app.py            the handler module            -> top level of deployment.zip
    chalicelib/       more of your code (optional)  -> top level of deployment.zip
    vendor/           private/prebuilt packages     -> its *contents* at the top level
    requirements.txt  dependencies (or a lock file: Pipfile.lock, poetry.lock, uv.lock,
                      pylock.toml)

Other layouts are configured with ``--source PATH`` (repeatable) or in the project's
``pyproject.toml``::

    [tool.lambda-compat]
    sources = ["src/myapp", "handler.py"]   # each goes to the top level under its own name
    requirements = "poetry.lock"             # requirements file or lock file
    vendor = "third_party"                   # its contents go to the top level
    exclude = ["*.md", "fixtures"]           # glob patterns left out of sources and vendor

A source is a file or a directory, placed at the top level of the zip under its own name
(``src/myapp`` -> ``myapp/``), so a ``src/`` layout is ``sources = ["src/myapp"]``. Paths are
relative to the project directory and must stay inside it. Command-line options replace the
configuration's values.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from .. import errors
from .lockfiles.dispatch import lock_kind

if sys.version_info >= (3, 11):
    import tomllib as _toml
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as _toml

CONFIG_TABLE = "tool.lambda-compat"
CONFIG_KEYS = ("sources", "requirements", "vendor", "exclude")
#: Never packaged from sources or vendor/ (host bytecode, VCS metadata).
DEFAULT_EXCLUDE = ("__pycache__", "*.pyc", "*.pyo", ".git", ".hg", ".svn", ".DS_Store")
#: Dependency inputs looked for, in this order, when none is configured.
DEPENDENCY_FILES = ("requirements.txt", "Pipfile.lock", "poetry.lock", "uv.lock",
                    "pylock.toml")


@dataclass(frozen=True)
class Source:
    path: Path          # absolute
    name: str           # top-level name in the zip


@dataclass(frozen=True)
class Project:
    root: Path
    sources: Tuple[Source, ...]
    vendor: Optional[Path]
    dependencies: Optional[Path]
    dependencies_kind: str          # "requirements", a lockfiles.dispatch.KINDS value, or "none"
    exclude: Tuple[str, ...]
    config: Optional[Path]          # pyproject.toml holding [tool.lambda-compat], if any

    def excluded(self, rel_path: str) -> bool:
        """Is ``rel_path`` (posix, relative to a source or vendor root) left out?"""
        parts = rel_path.split("/")
        for pattern in self.exclude:
            if any(fnmatch.fnmatchcase(p, pattern) for p in parts):
                return True
            if "/" in pattern and fnmatch.fnmatchcase(rel_path, pattern):
                return True
        return False

    def to_json(self) -> dict:
        return {"root": str(self.root),
                "sources": [{"path": str(s.path), "name": s.name} for s in self.sources],
                "vendor": str(self.vendor) if self.vendor else None,
                "dependencies": str(self.dependencies) if self.dependencies else None,
                "dependencies_kind": self.dependencies_kind,
                "config": str(self.config) if self.config else None}


def load_project(root: Path, sources: Sequence[str] = (), requirements: Optional[str] = None,
                 vendor: Optional[str] = None, exclude: Sequence[str] = ()) -> Project:
    """Find the project's parts under ``root``; arguments override [tool.lambda-compat]."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise errors.BadInput(f"{root}: not a directory.",
                              hint="Pass the project directory (the one holding app.py).")
    config_path, config = _read_config(root)
    where = str(config_path) if config_path else None

    src_values = list(sources) or config.get("sources") or []
    if src_values:
        entries = tuple(_source(root, s, "--source" if sources else where) for s in src_values)
    else:
        app = root / "app.py"
        if not app.is_file():
            raise errors.BadInput(
                f"{root}: no app.py, and no sources configured.",
                hint="Package a Chalice-style project (app.py, chalicelib/), or say where "
                     "the code is: --source src/myapp (repeatable) or sources = [...] under "
                     "[tool.lambda-compat] in pyproject.toml.")
        entries = (Source(app, "app.py"),)
        if (root / "chalicelib").is_dir():
            entries += (Source(root / "chalicelib", "chalicelib"),)
    names: Dict[str, Path] = {}
    for s in entries:
        if s.name in names:
            raise errors.BadInput(
                f"two sources would both be {s.name} at the top of the zip: {names[s.name]} "
                f"and {s.path}.", hint="Rename one of them or package only one.")
        names[s.name] = s.path

    vendor_value = vendor if vendor is not None else config.get("vendor")
    vendor_path: Optional[Path]
    if vendor_value is not None:
        vendor_path = _inside(root, vendor_value, "--vendor" if vendor else where)
        if not vendor_path.is_dir():
            raise errors.BadInput(f"{vendor_path}: the vendor directory does not exist.",
                                  hint="Create it or leave the vendor setting out.")
    else:
        vendor_path = root / "vendor" if (root / "vendor").is_dir() else None

    req_value = requirements if requirements is not None else config.get("requirements")
    deps: Optional[Path]
    if req_value is not None:
        deps = _inside(root, req_value, "-r" if requirements else where, must_exist=False) \
            if not Path(req_value).is_absolute() else Path(req_value)
        if not deps.is_file():
            raise errors.BadInput(f"{deps}: dependency file not found.",
                                  hint="Pass a requirements file or a lock file with -r.")
    else:
        deps = _discover_dependencies(root)
    kind = "none" if deps is None else (lock_kind(deps) or "requirements")

    exclude_values = tuple(DEFAULT_EXCLUDE) + tuple(config.get("exclude") or ()) + tuple(exclude)
    return Project(root=root, sources=entries, vendor=vendor_path, dependencies=deps,
                   dependencies_kind=kind, exclude=exclude_values, config=config_path)


def _discover_dependencies(root: Path) -> Optional[Path]:
    if (root / "requirements.txt").is_file():
        return root / "requirements.txt"
    found = [root / n for n in DEPENDENCY_FILES[1:] if (root / n).is_file()]
    found += sorted(p for p in root.glob("pylock.*.toml") if lock_kind(p))
    if len(found) > 1:
        raise errors.BadInput(
            f"{root}: several lock files ({', '.join(p.name for p in found)}) and no "
            f"requirements.txt; which one describes the deployment is not clear.",
            hint="Choose one with -r FILE or requirements = \"...\" under "
                 "[tool.lambda-compat] in pyproject.toml.")
    return found[0] if found else None


def _read_config(root: Path):
    path = root / "pyproject.toml"
    if not path.is_file():
        return None, {}
    text = path.read_text(encoding="utf-8")
    try:
        data = _toml.loads(text)
    except _toml.TOMLDecodeError as exc:
        raise errors.BadInput(f"{path}: not valid TOML ({exc}).",
                              hint="Fix the syntax error.") from None
    table = (data.get("tool") or {}).get("lambda-compat")
    if table is None:
        return None, {}
    line = _line(text, "[tool.lambda-compat]")
    where = f"{path}:{line}" if line else str(path)
    if not isinstance(table, dict):
        raise errors.BadInput(f"{where}: [tool.lambda-compat] must be a table.")
    for key, value in table.items():
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
            raise errors.BadInput(
                f"{path}:{_line(text, key) or line}: unknown key {key!r} in "
                f"[tool.lambda-compat].",
                hint=(f"Did you mean {close[0]!r}? " if close else "")
                + f"Keys: {', '.join(CONFIG_KEYS)}.")
        if key in ("sources", "exclude"):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise errors.BadInput(f"{path}:{_line(text, key) or line}: {key} must be a "
                                      f"list of strings.", hint=f'For example {key} = ["..."]')
        elif not isinstance(value, str):
            raise errors.BadInput(f"{path}:{_line(text, key) or line}: {key} must be a string.")
    return path, table


def _line(text: str, needle: str) -> Optional[int]:
    idx = text.find(needle)
    return text.count("\n", 0, idx) + 1 if idx != -1 else None


def _inside(root: Path, value: str, where: Optional[str], must_exist: bool = True) -> Path:
    # normpath, not resolve(): a symlinked source keeps its own name and place.
    path = Path(os.path.normpath(root / value))
    try:
        path.relative_to(root)
    except ValueError:
        raise errors.BadInput(
            f"{value!r}{' (' + where + ')' if where else ''} is outside the project "
            f"directory {root}.", hint="Paths are relative to the project directory.") from None
    if must_exist and not path.exists():
        raise errors.BadInput(f"{path}{' (' + where + ')' if where else ''}: no such file or "
                              f"directory.", hint="Paths are relative to the project directory.")
    return path


def _source(root: Path, value: str, where: Optional[str]) -> Source:
    path = _inside(root, value, where)
    if path == root:
        raise errors.BadInput(
            f"the source {value!r} is the project directory itself.",
            hint="Name the package directory or module (e.g. src/myapp or app.py); its "
                 "name becomes the top-level name in the zip.")
    return Source(path, path.name)
