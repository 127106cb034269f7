"""The metadata of a source distribution, for the target, in bounded time.

pip needs an sdist's metadata (Requires-Dist, Requires-Python) to resolve. Left alone it
prepares it with the interpreter pip runs on, the tool's own, whatever the target; and a build
backend without ``prepare_metadata_for_build_wheel`` (meson-python, for numpy and scipy)
compiles the whole project for that. Here, in order:

1. **static**: a PKG-INFO with Metadata-Version >= 2.2 whose ``Dynamic`` fields name none of
   Requires-Dist, Requires-Python, Provides-Extra is the metadata (PEP 643): no build at all;
2. **cache**: metadata prepared before for the same sdist (sha256), Python version and machine;
3. **no build environment**: a backend that only builds native code, for a machine this host
   cannot compile for (arm64 from x86_64), is refused at once, without building; where there
   is no interpreter of the target's Python at all, an **any-Python pure build**
   (:mod:`.pure_build`) may stand in: built once without compilers by the newest local CPython
   its Requires-Python admits, used only when its wheel is pure for the target, else refused;
4. **build**: the wheel is built with an interpreter of the *target's* Python (with the
   compiler where the host runs the target's machine code, else with compilers disabled, as
   the builder's pure-Python fallback does), into the builder's own cache of built wheels (the
   builder then reuses it), and its METADATA is the metadata.

Progress events name the sdist being built and its elapsed time. Timeouts and the isolation
of the build belong to :func:`lambda_compat.resolve.sdist_build.build_wheel`.
"""

from __future__ import annotations

import email.parser
import json
import os
import shutil
import tarfile
import threading
import time
import uuid
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple

if TYPE_CHECKING:
    from ..host.interpreters import Interpreter

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - older Pythons
    import tomli as tomllib  # type: ignore[no-redef]

#: Build backends that exist to compile native code: without a compiler for the target's
#: machine they cannot produce a wheel (not even the metadata: they build to get it).
NATIVE_BACKENDS = {
    "mesonpy": "meson-python",
    "scikit_build_core.build": "scikit-build-core",
    "maturin": "maturin",
}
#: Fields that decide resolution; if any is dynamic, PKG-INFO cannot stand for the metadata.
_RESOLUTION_FIELDS = {"requires-dist", "requires-python", "provides-extra"}
#: What the compiler stand-ins of a compiler-less build print (sdist_build._NO_COMPILER).
COMPILER_DISABLED = "compiler disabled for the pure-Python fallback build"

Emit = Callable[..., None]


@dataclass(frozen=True)
class SdistInfo:
    pkg_info: Optional[str]         # the top-level PKG-INFO, if any
    build_backend: Optional[str]    # pyproject.toml [build-system] build-backend, if any


@dataclass
class Attempt:
    """One build made to read the metadata (the builder picks up from here)."""

    no_compiler: bool
    ok: bool
    interpreter: str
    log: str
    tail: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    #: the failure was remembered from an earlier run (resolve.failed_builds), not built now
    remembered: bool = False

    def to_json(self) -> dict:
        return {"no_compiler": self.no_compiler, "ok": self.ok, "interpreter": self.interpreter,
                "log": self.log, "tail": self.tail, "seconds": round(self.seconds, 1),
                "timed_out": self.timed_out, "remembered": self.remembered}


@dataclass
class Prepared:
    """The outcome: a metadata directory, or the reason there is none."""

    metadata_dir: Optional[Path] = None
    source: str = ""                 # static | cache | build
    wheel: Optional[Path] = None     # the wheel built to read it (source "build")
    reason_code: Optional[str] = None  # no-build-environment | sdist-build-failed
    message: str = ""
    attempts: List[Attempt] = field(default_factory=list)


#: read_sdist answers of this process, by the sdist's sha256
_SDIST_INFO: Dict[str, SdistInfo] = {}


def read_sdist(path: Path, sha256: Optional[str] = None,
               cache_dir: Optional[Path] = None) -> SdistInfo:
    """PKG-INFO and the build backend of an sdist (.tar.gz, .tar.*, .zip), without unpacking.

    With the file's ``sha256`` the answer is remembered for the process, and with
    ``cache_dir`` also in ``<cache_dir>/metadata/<sha256>-sdist.json``: listing a .tar.gz means
    inflating all of it (numpy's: 80 MB), for two small files that never change."""
    if sha256 is None:
        return _read_sdist(path)
    known = _SDIST_INFO.get(sha256)
    if known is not None:
        return known
    memo = cache_dir / "metadata" / f"{sha256}-sdist.json" if cache_dir is not None else None
    if memo is not None:
        try:
            data = json.loads(memo.read_text(encoding="utf-8"))
            known = SdistInfo(data["pkg_info"], data["build_backend"])
        except (OSError, ValueError, KeyError, TypeError):
            known = None
    if known is None:
        known = _read_sdist(path)
        if memo is not None and known != SdistInfo(None, None):  # unreadable: not kept
            try:
                memo.parent.mkdir(parents=True, exist_ok=True)
                tmp = memo.with_name(f".{memo.name}.{uuid.uuid4().hex}")
                tmp.write_text(json.dumps({"pkg_info": known.pkg_info,
                                           "build_backend": known.build_backend}),
                               encoding="utf-8")
                os.replace(tmp, memo)
            except OSError:
                pass
    _SDIST_INFO[sha256] = known
    return known


def _read_sdist(path: Path) -> SdistInfo:
    pkg_info = pyproject = None
    try:
        if path.name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                pkg_info = _member(names, "PKG-INFO", zf.read)
                pyproject = _member(names, "pyproject.toml", zf.read)
        else:
            with tarfile.open(path) as tf:
                members = {m.name: m for m in tf.getmembers() if m.isfile()}

                def read(name: str) -> bytes:
                    f = tf.extractfile(members[name])
                    return f.read() if f else b""
                pkg_info = _member(list(members), "PKG-INFO", read)
                pyproject = _member(list(members), "pyproject.toml", read)
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError):
        return SdistInfo(None, None)
    backend = None
    if pyproject:
        try:
            data = tomllib.loads(pyproject)
            backend = (data.get("build-system") or {}).get("build-backend")
        except (ValueError, AttributeError):
            backend = None
    return SdistInfo(pkg_info, backend if isinstance(backend, str) else None)


def _member(names: List[str], leaf: str, read: Callable[[str], bytes]) -> Optional[str]:
    """``<top>/<leaf>`` (one directory deep, as sdists are laid out), decoded."""
    for name in names:
        parts = name.strip("/").split("/")
        if len(parts) == 2 and parts[1] == leaf:
            return read(name).decode("utf-8", "replace")
    return None


def is_static(pkg_info: Optional[str]) -> bool:
    """PKG-INFO is the metadata (PEP 643): version >= 2.2, no resolution field dynamic."""
    if not pkg_info:
        return False
    msg = email.parser.Parser().parsestr(pkg_info, headersonly=True)
    try:
        version = tuple(int(x) for x in (msg.get("Metadata-Version") or "").split("."))
    except ValueError:
        return False
    if version < (2, 2) or not msg.get("Name") or not msg.get("Version"):
        return False
    dynamic = {d.strip().lower() for d in msg.get_all("Dynamic") or []}
    return not (dynamic & _RESOLUTION_FIELDS)


def cache_key(sha256: str, version: Tuple[int, ...], machine: str) -> str:
    return f"{sha256}-cp{version[0]}{version[1]}-{machine}"


def cached(cache_dir: Path, key: str) -> Optional[str]:
    try:
        return (cache_dir / "metadata" / key / "METADATA").read_text(encoding="utf-8")
    except OSError:
        return None


def store(cache_dir: Path, key: str, text: str) -> None:
    dest = cache_dir / "metadata" / key
    dest.mkdir(parents=True, exist_ok=True)
    tmp = dest / f".METADATA.{uuid.uuid4().hex}"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest / "METADATA")


def metadata_dir(parent: Path, text: str) -> Path:
    """A ``NAME-VERSION.dist-info`` directory holding ``text`` as METADATA, for pip."""
    msg = email.parser.Parser().parsestr(text, headersonly=True)
    name = (msg.get("Name") or "unknown").replace("-", "_")
    d = parent / f"{name}-{msg.get('Version') or '0'}.dist-info"
    d.mkdir(parents=True, exist_ok=True)
    (d / "METADATA").write_text(text, encoding="utf-8")
    return d


def wheel_metadata(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist()
                   if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        return zf.read(name).decode("utf-8", "replace")


@contextmanager
def build_progress(emit: Emit, sdist: str, interpreter: str, no_compiler: bool,
                   every: float = 30.0) -> Iterator[Dict[str, Any]]:
    """Events for one build: start, every ``every`` seconds the elapsed time, done."""
    started = time.monotonic()
    state: Dict[str, Any] = {"ok": False}
    stop = threading.Event()
    emit("sdist-build-start", sdist=sdist, interpreter=interpreter, compiler=not no_compiler)

    def tick() -> None:
        while not stop.wait(every):
            emit("sdist-build-progress", sdist=sdist,
                 seconds=round(time.monotonic() - started, 1))

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        yield state
    finally:
        stop.set()
        ticker.join(timeout=5)
        emit("sdist-build-done", sdist=sdist, ok=bool(state.get("ok")),
             seconds=round(time.monotonic() - started, 1))


def prepare(sdist: Path, source: Dict[str, Any], workdir: Path, emit: Emit,
            sha256: Optional[str] = None) -> Prepared:
    """The metadata directory of ``sdist`` for the target described by ``source``.

    ``source`` (the builder's :func:`lambda_compat.build.resolution.source_build_spec`): ``interpreter``
    (an :class:`~lambda_compat.host.interpreters.Interpreter` as a dict, or None), ``native`` (the
    host runs the target's machine code), ``host_machine``, ``target_machine``, ``version``,
    ``cache_dir``, ``pip`` (PipOptions as a dict), ``timeout``, ``cwd``, ``progress_every``.
    """
    from .sdist_build import file_sha256

    cache_dir = Path(source["cache_dir"])
    sha = sha256 or file_sha256(sdist)
    info = read_sdist(sdist, sha, cache_dir)
    if is_static(info.pkg_info):
        emit("sdist-metadata", sdist=sdist.name, source="static")
        return Prepared(metadata_dir(workdir, info.pkg_info or ""), "static")
    _keep(sdist, sha, cache_dir / "files")  # a failed resolution must not cost a download again
    key = cache_key(sha, tuple(source["version"]), source["target_machine"])
    text = cached(cache_dir, key)
    if text is not None:
        emit("sdist-metadata", sdist=sdist.name, source="cache")
        return Prepared(metadata_dir(workdir, text), "cache")
    refused = no_build_environment(sdist.name, info.build_backend, source)
    if refused and pure_build_applies(info.build_backend, source):
        out = _pure_for_metadata(sdist, sha, info, source, emit, refused)
    elif refused:
        emit("sdist-metadata", sdist=sdist.name, source="refused")
        return Prepared(reason_code="no-build-environment", message=refused)
    else:
        out = _build_for_metadata(sdist, sha, info.build_backend, source, emit)
        if (out.wheel is None and source.get("environment") and source.get("pure_interpreters")
                and info.build_backend not in NATIVE_BACKENDS):
            # the target's root or image could not build it: a pure source builds anywhere
            out = _pure_for_metadata(sdist, sha, info, source, emit, out.message or "")
    if out.wheel is None:
        return out
    text = wheel_metadata(out.wheel)
    store(cache_dir, key, text)
    out.metadata_dir = metadata_dir(workdir, text)
    return out


def _keep(path: Path, sha: str, cas: Path) -> None:
    """The sdist into the content-addressed download cache (files/<sha[:2]>/<sha>/<name>)."""
    dest = cas / sha[:2] / sha / path.name
    if dest.exists():
        return
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
        try:
            os.link(path, tmp)
        except OSError:
            shutil.copyfile(path, tmp)
        os.replace(tmp, dest)
    except OSError:
        pass  # a cache, not a result


def no_build_environment(filename: str, backend: Optional[str],
                         source: Dict[str, Any]) -> Optional[str]:
    """Why this host cannot build ``filename`` for the target at all, or None."""
    if source.get("environment"):
        return None  # a build environment for the target (it compiles for its machine)
    version = ".".join(map(str, source["version"][:2]))
    if source.get("interpreter") is None:
        return (f"{filename} could not be built: this machine has no CPython {version} "
                f"interpreter (use --python)")
    if not source.get("native") and backend in NATIVE_BACKENDS:
        return (f"{filename} is built by {NATIVE_BACKENDS[backend]}, which compiles native "
                f"code, and this {source['host_machine']} machine cannot build "
                f"{source['target_machine']} code; nothing was built")
    return None


def pure_build_applies(backend: Optional[str], source: Dict[str, Any]) -> bool:
    """No build environment for the target, but an any-Python pure build may do: no
    interpreter of the target's version here, some other one, a backend that can build
    without a compiler."""
    return (not source.get("environment") and source.get("interpreter") is None
            and bool(source.get("pure_interpreters")) and backend not in NATIVE_BACKENDS)


def _pure_for_metadata(sdist: Path, sha: str, info: SdistInfo, source: Dict[str, Any],
                       emit: Emit, refused: str) -> Prepared:
    """The any-Python pure build (:mod:`.pure_build`) of ``sdist``, if its wheel is pure for
    the target; else today's refusal (``refused``), saying what was tried."""
    from ..host.interpreters import Interpreter, pick_pure_build
    from . import pure_build

    candidates = [Interpreter(**{**i, "version": tuple(i["version"])})
                  for i in source["pure_interpreters"]]
    interp = pick_pure_build(candidates, pure_build.requires_python(info.pkg_info))
    if interp is None:
        emit("sdist-metadata", sdist=sdist.name, source="refused")
        return Prepared(reason_code="no-build-environment", message=(
            f"{refused}; no local CPython satisfies its Requires-Python for a pure build"))
    out = _build_for_metadata(sdist, sha, info.build_backend, source, emit, pure=interp)
    if out.wheel is None:
        out.reason_code, out.message = "no-build-environment", (
            f"{refused}; its pure build without a compiler with CPython "
            f"{pure_build.version_text(interp)} failed (log: {out.attempts[-1].log})")
        return out
    why = pure_build.problems(out.wheel, source["version"], source["python_full_version"])
    if why:
        out.attempts[-1].ok, out.attempts[-1].tail = False, "; ".join(why)
        out.wheel, out.reason_code, out.message = None, "no-build-environment", (
            f"{refused}; its pure build with CPython {pure_build.version_text(interp)} "
            f"gave no pure wheel: {'; '.join(why)}")
        return out
    out.attempts[-1].interpreter = pure_build.describe(out.attempts[-1].interpreter)
    return out


def _build_for_metadata(sdist: Path, sha: str, backend: Optional[str],
                        source: Dict[str, Any], emit: Emit,
                        pure: Optional[Interpreter] = None) -> Prepared:
    """Build the wheel the builder would build first (into its cache of built wheels);
    ``pure``: the interpreter of an any-Python pure build instead (:mod:`.pure_build`)."""
    from ..host.interpreters import Interpreter
    from . import environments, failed_builds
    from .engine import PipOptions

    if source.get("sandbox_refused"):
        from .. import errors
        raise errors.BuildSandboxUnavailable(
            f"refusing to build {sdist.name}: no build sandbox (bubblewrap) works on this "
            f"machine, and building runs the distribution's own code.")
    options: Dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                               for k, v in source["pip"].items()}
    pip = PipOptions(**options)
    env: environments.BuildEnvironment
    if pure is not None:  # the any-Python pure build: no compiler, once for every target
        env = environments.PureEnvironment(pure)
    else:
        chosen = environments.from_spec(source.get("environment"))
        # no environment for the target: a local interpreter, no compiler
        env = chosen or environments.LocalEnvironment(Interpreter(**{
            **source["interpreter"], "version": tuple(source["interpreter"]["version"])}))
    native = pure is None and bool(source.get("native") or source.get("environment"))
    modes = [False, True] if native else [True]
    if backend in NATIVE_BACKENDS:
        modes = [m for m in modes if not m]  # a compiler-less build cannot succeed
    out = Prepared(source="build")
    for no_compiler in modes:
        started = time.monotonic()
        with build_progress(emit, sdist.name, env.describe(), no_compiler,
                            float(source.get("progress_every") or 30.0)) as state:
            request = failed_builds.BuildRequest(
                cache_dir=Path(source["cache_dir"]), pip=pip, no_compiler=no_compiler,
                timeout=float(source["timeout"]), cwd=Path(source["cwd"]),
                sandbox=bool(source.get("sandbox", True)))
            result = failed_builds.build(env, sdist, sha, request,
                                         float(source.get("failure_ttl") or 0))
            state["ok"] = result.ok
        out.attempts.append(Attempt(no_compiler, result.ok, result.interpreter,
                                    str(result.log), result.error_tail,
                                    time.monotonic() - started, result.timed_out,
                                    result.cached and not result.ok))
        if result.ok:
            out.wheel = result.wheel
            return out
        if result.timed_out:  # a compiler is not why it hung: no second wait
            break
    out.reason_code, out.message = failure_reason(sdist.name, out.attempts, source)
    return out


def failure_reason(filename: str, attempts: List[Attempt],
                   source: Dict[str, Any]) -> Tuple[str, str]:
    """(code, message) for builds that all failed: the real cause first."""
    last = attempts[-1]
    needed_compiler = last.no_compiler and COMPILER_DISABLED in _read(last.log)
    if needed_compiler and not source.get("native") and not source.get("environment"):
        return ("no-build-environment",
                f"{filename} needs a compiler for {source['target_machine']}, which this "
                f"{source['host_machine']} machine does not have (its compiler-less build "
                f"failed; log: {last.log})")
    how = "with and without a compiler" if len(attempts) > 1 else (
        "without a compiler" if last.no_compiler else "")
    return ("sdist-build-failed",
            f"building {filename} with {last.interpreter} {how} failed:\n{attempts[0].tail}\n"
            f"(full log: {attempts[0].log})".replace("  failed", " failed"))


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
