"""Build environments: where an sdist is built into a wheel for a target, behind one interface.

A :class:`BuildEnvironment` builds a source distribution (or a local project) into a wheel for
one target Python and machine and says, in a sentence, what it is ("built in: ..."). Kinds:

``local`` (:class:`LocalEnvironment`)
    an interpreter of the target's version running natively here; compiles with zig for the
    target's machine and glibc when zig is available (the runtime's glibc is then a ceiling
    by construction), else with the host's compiler (the static check then refuses a wheel
    needing a newer glibc, naming the symbol);
``target-root`` (:class:`lambda_compat.resolve.environments_root.RootEnvironment`)
    the whole ``pip wheel`` inside a Debian root of the target's Python and machine (through
    qemu-user for a foreign machine), in bwrap, compiling with zig;
``container`` (``lambda_compat.resolve.environments_container.ContainerEnvironment``)
    a container with the runtime's public build image.

Every environment is described by a JSON-serialisable spec (:meth:`BuildEnvironment.to_spec`,
:func:`from_spec`) so that the pip engine's own process (:mod:`.source_metadata`) builds an
sdist for its metadata in the environment the builder then reuses. Built wheels are cached by
the source's sha256, the target (Python, machine), the mode and :attr:`BuildEnvironment.key`.
"""

from __future__ import annotations

import functools
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python 3.7
    from typing_extensions import Protocol  # type: ignore[assignment]

from ..host import lifecycle
from ..host.interpreters import Interpreter
from .engine import PipOptions
from .sdist_build import (BuildResult, build_wheel, built_key, cached_wheel, compiler_key,
                          glibc_text)

KINDS = ("local", "target-root", "container")


class BuildEnvironment(Protocol):
    """Where sdists are built for one target (see the module doc)."""

    @property
    def kind(self) -> str:
        """``local`` | ``target-root`` | ``container``."""
        ...

    @property
    def python_version(self) -> Tuple[int, int]:
        ...

    @property
    def machine(self) -> str:
        """``x86_64`` | ``aarch64``."""
        ...

    @property
    def key(self) -> str:
        """A stable, filesystem-safe id: part of the built-wheel cache key."""
        ...

    def describe(self) -> str:
        """What follows "built in: " in reports."""
        ...

    def build_wheel(self, source: Path, source_key: str, *, cache_dir: Path,
                    pip: PipOptions, no_compiler: bool, timeout: float, cwd: Path,
                    sandbox: bool) -> BuildResult:
        ...

    def to_spec(self) -> Dict[str, Any]:
        ...


def _tuple(value: Any) -> Optional[Tuple[int, int]]:
    return (int(value[0]), int(value[1])) if value else None


def _interpreter(spec: Dict[str, Any]) -> Interpreter:
    data = dict(spec["interpreter"])
    data["version"] = tuple(data["version"])
    return Interpreter(**data)


def _without_pip_trackers() -> Dict[str, str]:
    """The environment without what a running pip set for itself: its build tracker would
    make the build's own pip refuse the sdist as "already being built" (source_metadata
    builds from inside the pip engine's process)."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PIP_BUILD_TRACKER", "PIP_REQ_TRACKER")}


@dataclass(frozen=True)
class _WithInterpreter:
    """An environment that builds with a local ``interpreter``: its Python and machine."""

    interpreter: Interpreter

    @property
    def python_version(self) -> Tuple[int, int]:
        return (self.interpreter.version[0], self.interpreter.version[1])

    @property
    def machine(self) -> str:
        return self.interpreter.machine


@dataclass(frozen=True)
class LocalEnvironment(_WithInterpreter):
    """A local interpreter of the target's version on this machine's architecture.

    With ``zig`` (and the target's ``glibc``), compiling builds use zig's wrappers for
    ``<machine>-linux-gnu.<glibc>`` (:func:`lambda_compat.host.toolchain.compiler_env`);
    zig and its cache are shown inside the build sandbox. Without, the host's compiler.
    """

    glibc: Optional[Tuple[int, int]] = None
    zig: Optional[Path] = None
    zig_version: Optional[str] = None
    kind: str = "local"

    @property
    def uses_zig(self) -> bool:
        return self.zig is not None and self.glibc is not None

    @property
    def key(self) -> str:
        v = "".join(map(str, self.interpreter.version))
        zig_version = self.zig_version if self.uses_zig else None
        return f"local-cp{v}-{self.machine}-{compiler_key(zig_version, self.glibc)}"

    def describe(self) -> str:
        compiler = (f"zig cc for glibc {glibc_text(self.glibc)}" if self.uses_zig
                    else "the host's C compiler")
        return f"local {self.interpreter.describe()}, {compiler}"

    def build_wheel(self, source: Path, source_key: str, *, cache_dir: Path,
                    pip: PipOptions, no_compiler: bool, timeout: float, cwd: Path,
                    sandbox: bool, env: Optional[dict] = None) -> BuildResult:
        if env is None:
            env = _without_pip_trackers()
        build = functools.partial(
            build_wheel, source, source_key, self.interpreter, cache_dir=cache_dir, pip=pip,
            no_compiler=no_compiler, timeout=timeout, cwd=cwd, env=env, sandbox=sandbox,
            env_key=self.key, label=self.describe())
        key = built_key(source_key, self.interpreter.version, self.machine, no_compiler,
                        self.key)
        if not self.uses_zig or no_compiler or cached_wheel(Path(cache_dir), key) is not None:
            return build()
        from ..host import toolchain
        assert self.zig is not None and self.glibc is not None
        # the build's own zig cache (toolchain.private_cache) and compiler wrappers (they
        # name that cache), gone with the build
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=lifecycle.owned_name("lc-build-zig-"),
                                         dir=cache_dir) as tmp:
            wrappers = Path(tmp) / "cc"
            zig = Path(self.zig).resolve()   # the path the sandbox shows (no symlinks)
            zig_cache = toolchain.private_cache(zig, Path(cache_dir), self.machine,
                                                self.glibc, Path(tmp) / "zig-cache")
            compiler = toolchain.compiler_env(zig, self.machine, self.glibc, wrappers,
                                              zig_cache=zig_cache)
            result = build(compiler=compiler, readable=(zig.parent, wrappers),
                           writable=(zig_cache,))
        if result.ok or result.timed_out:
            return result
        # zig is not gcc: headers it does not ship (crypt.h, which Python 3.8's Python.h
        # includes), clang's errors where gcc warns (implicit declarations). The host's
        # compiler gets its turn; the static check then judges the wheel's glibc needs
        # (glibc-too-new names the symbol), as for every build with it.
        host = replace(self, zig=None, glibc=None, zig_version=None)
        fallback = host.build_wheel(source, source_key, cache_dir=cache_dir, pip=pip,
                                    no_compiler=False, timeout=timeout, cwd=cwd,
                                    sandbox=sandbox, env=env)
        if fallback.ok:
            return fallback
        return replace(result, error_tail=result.error_tail + "\n(the host's C compiler "
                       f"failed too: {fallback.log})")

    def to_spec(self) -> Dict[str, Any]:
        return {"kind": self.kind, "interpreter": asdict(self.interpreter),
                "glibc": list(self.glibc) if self.glibc else None,
                "zig": str(self.zig) if self.zig else None, "zig_version": self.zig_version}

    @classmethod
    def from_spec(cls, spec: Dict[str, Any]) -> "LocalEnvironment":
        return cls(_interpreter(spec), glibc=_tuple(spec.get("glibc")),
                   zig=Path(spec["zig"]) if spec.get("zig") else None,
                   zig_version=spec.get("zig_version"))


@dataclass(frozen=True)
class PureEnvironment(_WithInterpreter):
    """The any-Python pure build (:mod:`lambda_compat.resolve.pure_build`): any local
    CPython, compilers disabled, one build for every target; its wheel is used only when it
    is pure for the target (judged by the caller)."""

    kind: str = "pure"

    @property
    def key(self) -> str:
        return "pure"

    def describe(self) -> str:
        return self.interpreter.describe()

    def build_wheel(self, source: Path, source_key: str, *, cache_dir: Path,
                    pip: PipOptions, no_compiler: bool, timeout: float, cwd: Path,
                    sandbox: bool, env: Optional[dict] = None) -> BuildResult:
        if env is None:
            env = _without_pip_trackers()
        return build_wheel(source, source_key, self.interpreter, cache_dir=cache_dir,
                           pip=pip, no_compiler=True, timeout=timeout, cwd=cwd, env=env,
                           sandbox=sandbox, pure=True)

    def to_spec(self) -> Dict[str, Any]:
        return {"kind": self.kind, "interpreter": asdict(self.interpreter)}

    @classmethod
    def from_spec(cls, spec: Dict[str, Any]) -> "PureEnvironment":
        return cls(_interpreter(spec))


def from_spec(spec: Optional[Dict[str, Any]]) -> Optional[BuildEnvironment]:
    """The environment :meth:`BuildEnvironment.to_spec` described (None stays None)."""
    if not spec:
        return None
    kind = spec.get("kind")
    if kind == "local":
        return LocalEnvironment.from_spec(spec)
    if kind == "pure":
        return PureEnvironment.from_spec(spec)
    if kind == "target-root":
        from .environments_root import RootEnvironment
        return RootEnvironment.from_spec(spec)
    if kind == "container":
        # Implemented in resolve/environments_container.py (issue 14, the container kind).
        from . import environments_container  # type: ignore[attr-defined]
        return environments_container.ContainerEnvironment.from_spec(spec)  # type: ignore
    raise ValueError(f"unknown build environment kind {kind!r}")


# Each kind's module imports nothing from this one (only .sdist_build, .engine), so this
# module's dispatch (deferred imports count) makes no import cycle.
