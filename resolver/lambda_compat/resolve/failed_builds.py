"""Remember a build that failed, so that the same build is not repeated within a lifetime.

A successful build is cached for good (``<cache>/built/<key>``, by the source's sha256, the
target and the environment). A failed one is remembered for a day (``BuildConfig.failure_ttl``;
``--refresh`` makes it 0): a build can fail for reasons outside its inputs (a system library
installed since, a loaded machine hitting ``--build-timeout``), but a build that failed once
almost always fails again, and a second ``check`` should not wait for the same failing compile
(numpy for a Python it does not support takes tens of minutes to fail). The memo's key is the
source's sha256, the build environment's key and description, the target Python and machine,
the mode (with or without a compiler), the time limit, the sandbox, the pip options and
the code that builds (:data:`BUILD_MODULES`, by :func:`lambda_compat._version.code_fingerprint`):
raising ``--build-timeout``, or a lambda-compat whose build code differs, builds again (a
change elsewhere, in how pip is driven or how bundles are checked, does not repeat an hour of
failing compiles). A local project directory is never remembered
(its content changes).

The remembered result is reported as such: its first line says when the build failed and how
to build again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

from .._version import code_fingerprint
from .engine import PipOptions
from .sdist_build import BuildResult

if TYPE_CHECKING:
    from .environments import BuildEnvironment

_DIR = "failed-builds"

#: The modules whose code decides a build's outcome: the build environments and everything
#: they import from lambda-compat (``tests/test_failed_builds.py`` recomputes this import
#: closure and fails when it changes). Their fingerprint is part of the memo's key.
BUILD_MODULES = (
    "_version.py", "errors.py", "ui.py",
    "host/binfmt.py", "host/engines.py", "host/interpreters.py", "host/lifecycle.py",
    "host/once.py", "host/sandbox.py", "host/toolchain.py",
    "resolve/engine.py", "resolve/environments.py", "resolve/environments_container.py",
    "resolve/environments_root.py", "resolve/failed_builds.py", "resolve/pip_sandbox.py",
    "resolve/pip_standby.py",
    "resolve/pure_build.py", "resolve/sdist_build.py", "resolve/wheelhouse.py",
    "targets/arch.py", "targets/facts.py", "targets/target.py",
)


@dataclass(frozen=True)
class BuildRequest:
    """What a build depends on besides its environment (the memo's key)."""

    cache_dir: Path
    pip: PipOptions
    no_compiler: bool
    timeout: float
    cwd: Path
    sandbox: bool


def memo_key(env: BuildEnvironment, source_key: str, request: BuildRequest) -> str:
    h = hashlib.sha256()
    for part in (code_fingerprint(BUILD_MODULES), source_key, env.kind, env.key, env.describe(),
                 "%d.%d" % tuple(env.python_version), env.machine,
                 "nocc" if request.no_compiler else "cc", f"{request.timeout:g}",
                 str(bool(request.sandbox)), " ".join(request.pip.args())):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def remembered(cache_dir: Path, key: str, ttl: float) -> Optional[BuildResult]:
    """The failed result stored under ``key`` less than ``ttl`` seconds ago, if any."""
    if ttl <= 0:
        return None
    path = Path(cache_dir) / _DIR / f"{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        age = time.time() - float(data["created"])
        if not 0 <= age <= ttl:
            return None
        note = (f"(the same build failed {_ago(age)} and is not repeated for "
                f"{_ago(ttl, suffix='')}: --refresh builds it again)")
        return BuildResult(False, None, Path(data["log"]), str(data["interpreter"]),
                           bool(data["no_compiler"]), cached=True,
                           error_tail=note + "\n" + str(data["error_tail"]),
                           timed_out=bool(data["timed_out"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remember(cache_dir: Path, key: str, result: BuildResult) -> None:
    """Store a failed ``result`` (atomically; the log stays where the build wrote it)."""
    if result.ok or result.cached:
        return
    directory = Path(cache_dir) / _DIR
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{key}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps({"created": time.time(), "log": str(result.log),
                               "interpreter": result.interpreter,
                               "no_compiler": result.no_compiler,
                               "error_tail": result.error_tail,
                               "timed_out": result.timed_out}), encoding="utf-8")
    os.replace(tmp, directory / f"{key}.json")


def build(env: BuildEnvironment, source: Path, source_key: str, request: BuildRequest,
          ttl: float) -> BuildResult:
    """``env.build_wheel`` unless the same build failed less than ``ttl`` seconds ago."""
    local_dir = source.is_dir() or source_key.startswith("dir-")
    key = memo_key(env, source_key, request)
    if not local_dir:
        hit = remembered(request.cache_dir, key, ttl)
        if hit is not None:
            return hit
    result = env.build_wheel(source, source_key, cache_dir=request.cache_dir, pip=request.pip,
                             no_compiler=request.no_compiler, timeout=request.timeout,
                             cwd=request.cwd, sandbox=request.sandbox)
    result = refuse_ignored_plugins(result)
    if not result.ok and not local_dir and ttl > 0:
        remember(request.cache_dir, key, result)
    return result


def refuse_ignored_plugins(result: BuildResult) -> BuildResult:
    """A built wheel whose log shows setuptools ignoring a keyword that builds native code
    (:data:`NATIVE_PLUGIN_KEYWORDS`) becomes a failed build: it lacks its compiled modules.

    This is what PEP 517 builds do to a ``setup.py`` that hides its ``setup_requires`` from
    ``egg_info`` (cryptography 1.9): ``build_meta`` never fetches them, so ``cffi_modules``
    is an "Unknown distribution option" and the wheel comes out pure, imports at the top
    level and fails at first use. Checked on cache hits too (the log is the build's own).
    """
    if not result.ok or result.wheel is None:
        return result
    try:
        text = Path(result.log).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return result
    ignored = ignored_native_plugins(text)
    if not ignored:
        return result
    why = "; ".join(f"setup() keyword {kw!r} was ignored ({provider} was not in the build "
                    f"environment)" for kw, provider in ignored)
    tail = (f"the build made {result.wheel.name} without the compiled modules its setup.py "
            f"declares: {why}. The project asks for them in setup_requires, which PEP 517 "
            f"builds do not install; such a wheel imports but fails at first use.")
    return BuildResult(False, None, result.log, result.interpreter, result.no_compiler,
                       error_tail=tail)


#: setup() keywords that add compiled code through a setuptools plugin, and the plugin's
#: distribution: setuptools warns "Unknown distribution option" and drops them when the
#: plugin is not installed in the build environment.
NATIVE_PLUGIN_KEYWORDS = {"cffi_modules": "cffi", "rust_extensions": "setuptools-rust",
                          "milksnake_tasks": "milksnake"}
_UNKNOWN_OPTION = re.compile(r"Unknown distribution option: '([A-Za-z_]+)'")


def ignored_native_plugins(log_text: str) -> List[Tuple[str, str]]:
    """(keyword, provider) for each native-code plugin keyword the build's log says was
    ignored, in order, once each."""
    seen: List[Tuple[str, str]] = []
    for keyword in _UNKNOWN_OPTION.findall(log_text):
        provider = NATIVE_PLUGIN_KEYWORDS.get(keyword)
        if provider is not None and (keyword, provider) not in seen:
            seen.append((keyword, provider))
    return seen


def _ago(seconds: float, suffix: str = " ago") -> str:
    if seconds < 90:
        return f"{seconds:.0f} s{suffix}"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min{suffix}"
    return f"{seconds / 3600:.0f} h{suffix}"
