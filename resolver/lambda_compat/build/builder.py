"""``build_dependencies``: requirements in, a flat bundle for one Lambda target out.

The phases follow the aws-lambda-builders ``python_pip`` design, judged for the target:

1. resolve the whole closure for the target (pip engine, :mod:`lambda_compat.resolve.engine`);
2. a compatible wheel -> done (its tags, Requires-Python and ELF files re-verified);
3. source only -> if the same version has wheels that only need a newer glibc, stop there
   (missing, glibc-too-new); else build it with an interpreter of the target's version when
   the host machine matches, and verify the wheel's tags and ELF files;
4. else rebuild with the compilers disabled (pure-Python fallback) and verify again;
5. else the registry allowlist (platform tag, no native code, entry matches);
6. else missing, with the reason and a suggestion.

Then the wheels are installed flat into a staging directory beside the artifacts directory,
which is swapped in only on success.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Optional, Tuple, Union

from packaging.utils import canonicalize_name
from packaging.version import Version

from .. import errors
from . import install
from ..host import lifecycle
from ..host import outputs
from ..resolve import reqfile
from ..resolve import cache as resolution_cache
from ..host import sandbox as _sandbox
from ..resolve.diagnose import ALTERNATIVES, diagnose, requires_python_ok
from .install import install_all
from ..host.interpreters import find_interpreter
from ..registry.packages import PackageRegistry, load_packages, tags_fit_except_platform
from ..verify.cache import cached_findings
from .report import BuildReport, DistOutcome
from ..resolve.engine import PipOptions, ResolvedItem, Resolution, resolve
from ..registry.runtimes import load_runtimes
from .sdist import build_wheel, file_sha256
from .source_metadata import COMPILER_DISABLED, NATIVE_BACKENDS, build_progress, read_sdist
from ..targets.target import Target
from ..ui import UI, NullUI
from ..errors import WheelError
from ..verify.wheels import Finding, read_wheel, verify_wheel

#: Findings that make a wheel unusable on the target. A missing system library is reported
#: but does not reject the wheel: the user may ship the library (a layer) - the check says so.
BLOCKING = {"wrong-arch", "glibc-too-new", "libstdcxx-too-new", "libgcc-too-new",
            "python-abi-mismatch", "requires-python", "incompatible-tags", "not-elf",
            "not-loadable"}


@dataclass(frozen=True)
class BuildConfig:
    cache_dir: Optional[Path] = None
    python: Optional[str] = None               # interpreter for source builds (--python)
    pip: PipOptions = field(default_factory=PipOptions)
    # Wall-clock bound of each build step of third-party code (--build-timeout).
    build_timeout: float = 1800.0
    # Run build code (metadata preparation, wheel builds) in the build sandbox; False is
    # --no-build-sandbox (docs/security.md).
    build_sandbox: bool = True
    # Replace a non-empty output directory lambda-compat did not write (--force).
    force_output: bool = False
    allow_missing: bool = False                # install what works even if something is missing
    build_above_glibc_ceiling: bool = False    # build sdists whose wheels need a newer glibc
    # Projects always built from their sdist, even where a compatible wheel exists
    # (--no-binary NAME; pip's own option, so it also reaches the build's pip calls).
    no_binary: Tuple[str, ...] = ()
    jobs: int = 4
    registry_dir: Optional[Path] = None        # package registry root (tests, registry PRs)
    runtimes_file: Optional[Path] = None
    # Reuse a resolution of byte-identical inputs for this long (PyPI's own page cache
    # lifetime); 0 always resolves afresh (--refresh).
    resolution_ttl: float = 600.0


def default_cache_dir() -> Path:
    env = os.environ.get("LAMBDA_COMPAT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "lambda-compat"


def get_target(runtime: str, architecture: str = "x86_64",
               runtimes_file: Optional[Path] = None) -> Target:
    facts = load_runtimes(runtimes_file).get(runtime, architecture)
    return Target.from_facts(facts)


def build_dependencies(artifacts_dir_path: Union[str, os.PathLike],
                       requirements_path: Union[str, os.PathLike], runtime: str,
                       ui: Optional[UI] = None, config: Optional[BuildConfig] = None,
                       architecture: str = "x86_64") -> BuildReport:
    """Build the dependencies in ``requirements_path`` for ``runtime``/``architecture``.

    Returns the report. The artifacts directory is replaced only when every distribution
    was satisfied (or ``config.allow_missing``); otherwise it is left exactly as it was.
    Raises :class:`~lambda_compat.errors.LambdaCompatError` subclasses for bad input and
    environment problems.
    """
    config = _with_no_binary(config or BuildConfig())
    ui = ui or NullUI()
    started = time.monotonic()
    target = get_target(runtime, architecture, config.runtimes_file)
    requirements = Path(requirements_path)
    reqfile.validate(requirements)
    artifacts = Path(artifacts_dir_path).absolute()
    outputs.check_replaceable(artifacts, project_files=[requirements],
                              force=config.force_output)
    cache = (config.cache_dir or default_cache_dir()).absolute()
    for sub in ("files", "tmp", "built", "logs"):
        (cache / sub).mkdir(parents=True, exist_ok=True)
    _remove_stale(cache, artifacts)
    registry = load_packages(config.registry_dir)
    ui.event("start", target=target.name, requirements=str(requirements))
    report = BuildReport(target=target, requirements=str(requirements),
                         artifacts_dir=str(artifacts), registry_version=registry.version)
    if not config.build_sandbox:
        report.warnings.append(UNSANDBOXED_WARNING)
        ui.event("warning", message=UNSANDBOXED_WARNING)
    work = Path(tempfile.mkdtemp(prefix=lifecycle.owned_name("run-"), dir=cache / "tmp"))
    try:
        ui.event("resolve-start", target=target.name)
        rkey = resolution_cache.key(requirements, target, config.pip)
        resolution = resolution_cache.load(cache / "resolutions", rkey, cache / "files",
                                           config.resolution_ttl)
        policy = _SourcePolicy(target, config, registry)
        if resolution is None:
            resolution = resolve(target, requirements, workdir=work, cas_dir=cache / "files",
                                 pip=config.pip, on_event=lambda e: _engine_event(ui, e),
                                 allow_source=policy,
                                 log_dir=cache / "logs",
                                 source_build=source_build_spec(target, config, cache,
                                                                requirements),
                                 build_sandbox=config.build_sandbox,
                                 build_timeout=config.build_timeout)
        _require_index(resolution, config.pip, target)
        ui.event("resolved", count=len(resolution.items), cache_hits=len(resolution.cache_hits))
        for url, reason in resolution.fetch_failures:
            report.warnings.append(f"index page not reachable: {url} ({reason})")
        for nf in resolution.not_found:
            report.distributions.append(_not_found(nf, resolution, target, config,
                                                   policy.refused.get(nf.project)))
        rest = _the_rest(resolution, requirements, work, report, target, config, policy,
                         cache, ui)
        shas = _store_in_cas(rest or resolution, cache / "files", config.jobs)
        if rest is None:   # a partial resolution is never reused as the whole file's
            resolution_cache.store(cache / "resolutions", rkey, resolution, shas)
        else:
            resolution = rest
        phases = _Phases(target, config, registry, cache, requirements, ui, resolution, shas)
        wheels: List[Path] = []
        with ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool:
            binary = [i for i in resolution.items if i.is_wheel]
            for outcome, wheel in pool.map(phases.from_wheel, binary):
                report.distributions.append(outcome)
                if wheel:
                    wheels.append(wheel)
        for item in resolution.items:
            if item.is_wheel:
                continue
            outcome, wheel = phases.from_source(item)
            report.distributions.append(outcome)
            if wheel:
                wheels.append(wheel)
        if report.ok or config.allow_missing:
            ui.event("install-start", count=len(wheels), dest=str(artifacts))
            _install_and_swap(wheels, artifacts, config.jobs, cache / "unpacked")
            report.installed = True
            ui.event("install-done", count=len(wheels), dest=str(artifacts))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        # The pip engine builds sdists for their metadata in its own process: when it was
        # killed (a signal, a timeout), its build directory is left for us to remove.
        lifecycle.remove_stale(cache, "lc-build-")
        report.seconds = time.monotonic() - started
    ui.event("done", status=report.status, seconds=report.seconds)
    return report


#: The "rejected" mark of a native build that ran out of time (no compiler-less retry).
_TIMED_OUT = "timed-out"

UNSANDBOXED_WARNING = ("--no-build-sandbox: source distributions' build code ran WITHOUT the "
                       "build sandbox, with this user's files, network and credentials "
                       "(docs/security.md).")


def _require_index(resolution: Resolution, pip: PipOptions, target: Target) -> None:
    """The index the user named with -i must answer, even when another source did."""
    if not pip.index_url or pip.no_index:
        return
    base = pip.index_url.rstrip("/") + "/"
    failed = [(u, r) for u, r in resolution.fetch_failures if (u.rstrip("/") + "/")
              .startswith(base)]
    if failed:
        url, reason = failed[0]
        raise errors.IndexUnreachable(
            f"Could not reach the package index {pip.index_url} for {target.name}: {url} "
            f"({reason}).",
            hint="Check the network, the -i/--index-url value and proxy settings; other "
                 "sources answering is not enough, the index you named must answer.")


def _remove_stale(cache: Path, artifacts: Path) -> None:
    """Leftovers of runs that were killed (their process is gone): staging, temp dirs."""
    lifecycle.remove_stale(cache / "tmp", "run-")
    lifecycle.remove_stale(cache, "lc-build-")
    for kind in ("new", "old"):
        lifecycle.remove_stale(artifacts.parent, f".{artifacts.name}.lambda-compat-{kind}-")


def _the_rest(resolution: Resolution, requirements: Path, work: Path, report: BuildReport,
              target: Target, config: BuildConfig, policy, cache: Path,
              ui: UI) -> Optional[Resolution]:
    """pip stops at the first top-level requirement it cannot satisfy for the target, so the
    others would go unjudged: resolve them again without the ones already reported missing
    (their outcomes are in ``report``). None when nothing else is left to resolve."""
    if resolution.items or not resolution.not_found:
        return None
    dropped = set()
    current = resolution
    for attempt in range(5):
        if any(nf.parent is not None for nf in current.not_found):
            return None   # a dependency's failure: which requirement to leave out is unknown
        dropped |= {canonicalize_name(nf.project) for nf in current.not_found}
        rest_file = reqfile.without_projects(requirements, dropped,
                                             work / f"requirements-rest-{attempt}.txt")
        if rest_file is None:
            return None
        current = resolve(target, rest_file, workdir=work / f"rest-{attempt}",
                          cas_dir=cache / "files", pip=config.pip,
                          on_event=lambda e: _engine_event(ui, e), allow_source=policy,
                          log_dir=cache / "logs",
                          source_build=source_build_spec(target, config, cache, requirements),
                          build_sandbox=config.build_sandbox,
                          build_timeout=config.build_timeout)
        for nf in current.not_found:
            report.distributions.append(_not_found(nf, current, target, config,
                                                   policy.refused.get(nf.project)))
        if current.items or not current.not_found:
            return current
    return current


def _engine_event(ui: UI, event: dict) -> None:
    """Events of the pip engine; its source builds use the builder's own event names."""
    name = event.pop("event", "?")
    ui.event(name if name.startswith("sdist-") else "pip-" + name, **event)


def source_build_spec(target: Target, config: BuildConfig, cache: Path,
                      requirements: Path) -> dict:
    """How the pip engine may have an sdist's metadata (lambda_compat.build.source_metadata): with
    an interpreter of the target's Python only, natively where this machine runs the
    target's machine code, into the builder's cache of built wheels."""
    from dataclasses import asdict
    host = platform.machine()
    native = host == target.machine
    interp = find_interpreter(target.python_version, host, config.python)
    return {"interpreter": asdict(interp) if interp else None, "native": native,
            "host_machine": host, "target_machine": target.machine,
            "version": list(target.python_version), "cache_dir": str(cache),
            "pip": asdict(config.pip), "timeout": config.build_timeout,
            "sandbox": config.build_sandbox, "cwd": str(requirements.resolve().parent),
            # decided here, once: the pip engine's builds refuse when no sandbox can be had
            "sandbox_refused": (config.build_sandbox and not _sandbox.bwrap_works())}


def _not_found(nf, resolution: Resolution, target: Target, config: BuildConfig,
               refused: Optional[Tuple[str, str]] = None) -> DistOutcome:
    """The outcome of a distribution the resolution found no usable file for."""
    links = resolution.links.get(nf.project, ())
    version = _candidate_version(nf.requirement, links, target)
    d = diagnose(nf.project, version, links, target)
    code, reason = d.reason_code, d.reason
    if refused is not None and code == "no-compatible-wheel":
        code, reason = refused[0], f"{refused[1]} {d.reason}"
    elif nf.reason_code == "no-build-environment":
        code, reason = nf.reason_code, f"{nf.message.rstrip('.')}. {d.reason}"
    elif nf.reason_code:
        code, reason = nf.reason_code, nf.message
    elif nf.message.startswith("building the metadata"):
        code, reason = "sdist-build-failed", nf.message
    elif (code == "no-compatible-wheel" and _versions(links, nf.requirement, target, True)
          and find_interpreter(target.python_version, platform.machine(),
                               config.python) is None):
        v = target.python_version
        code = "no-build-environment"
        reason = (f"{nf.project} {version or ''}".rstrip() + f": its sdist was not built, "
                  f"this machine has no CPython {v[0]}.{v[1]} interpreter (use --python). "
                  f"{reason}")
    outcome = DistOutcome(
        name=nf.project, version=version, phase="missing", requested=nf.parent is None,
        reason_code=code, reason=reason + (f" (required by {nf.parent})" if nf.parent else ""),
        suggestion=d.suggestion)
    host = platform.machine()
    if refused is not None and code == refused[0]:
        outcome.attempts.append(f"no build: this machine is {host}, the target is "
                                f"{target.machine}, and {nf.project}'s code is native")
    if nf.reason_code:  # the metadata step's builds (pip stops at the first that fails)
        if host != target.machine:
            outcome.attempts.append(f"no native build: this machine is {host}, the target is "
                                    f"{target.machine}")
        for filename, src in resolution.sources.items():
            if not src.get("reason_code"):
                continue
            outcome.source = filename
            for a in src.get("attempts", ()):
                how = "without a compiler" if a["no_compiler"] else f"with {a['interpreter']}"
                outcome.attempts.append(f"build {how} failed:\n{a['tail']}\n"
                                        f"(full log: {a['log']})")
                outcome.build_log, outcome.interpreter = a["log"], a["interpreter"]
    return outcome


def _read_text(path: Optional[str]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        return ""


def _versions(links, requirement: str, target: Target, sdist_only: bool = False):
    """Versions offered (by any file, or by sdists only) that satisfy ``requirement``."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename,
                                 parse_sdist_filename, parse_wheel_filename)
    try:
        spec = Requirement(requirement).specifier
    except InvalidRequirement:
        spec = None
    found = set()
    for link in links:
        if link.yanked:
            continue
        try:
            if link.is_wheel:
                if sdist_only:
                    continue
                version = parse_wheel_filename(link.filename)[1]
            else:
                version = parse_sdist_filename(link.filename)[1]
        except (InvalidSdistFilename, InvalidWheelFilename, ValueError):
            continue
        if spec is None or spec.contains(version, prereleases=True):
            found.add(version)
    return found


def _candidate_version(requirement: str, links, target: Target) -> Optional[str]:
    """The version pip would have picked had sources been allowed (for messages)."""
    versions = _versions(links, requirement, target)
    return str(max(versions)) if versions else None


def _no_binary_names(config: BuildConfig) -> frozenset:
    return frozenset(canonicalize_name(n) for n in config.no_binary)


def _with_no_binary(config: BuildConfig) -> BuildConfig:
    """Validate ``no_binary`` and hand it to pip (resolution and builds) as --no-binary."""
    if not config.no_binary:
        return config
    import re
    names = []
    for value in config.no_binary:
        for name in filter(None, (n.strip() for n in str(value).split(","))):
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", name):
                raise errors.BadInput(
                    f"--no-binary {name!r}: not a project name.",
                    hint="Name the projects to build from source, e.g. --no-binary pyyaml "
                         "(':all:' is not supported: wheels are what makes a bundle fit).")
            names.append(name)
    pip = replace(config.pip, extra_args=tuple(config.pip.extra_args)
                  + ("--no-binary", ",".join(names)))
    return replace(config, no_binary=tuple(names), pip=pip)


class _SourcePolicy:
    """Allow building a project from source only where that can produce a usable wheel.

    Not when the project's wheels for that version only need a newer glibc (unless asked);
    not when this machine has no CPython of the target's version at all (every build phase
    needs one, so pip would only build the sdist, numpy: minutes of C++, to read metadata);
    not for a machine this host cannot compile for when the project's code is native (it
    publishes only platform wheels) and no registry entry could vouch for a compiler-less
    build: decided from the index page, before the sdist is even downloaded.
    ``refused`` keeps (code, reason) of the last two, for the report.
    """

    def __init__(self, target: Target, config: BuildConfig, registry: PackageRegistry) -> None:
        self.target, self.config, self.registry = target, config, registry
        self.forced = _no_binary_names(config)
        self.refused: dict = {}
        self._interpreter: list = []

    def can_build(self) -> bool:
        if not self._interpreter:
            self._interpreter.append(find_interpreter(
                self.target.python_version, platform.machine(), self.config.python) is not None)
        return self._interpreter[0]

    def __call__(self, project: str, requirement: str, links) -> bool:
        target = self.target
        # sdists the target's Python may install (Requires-Python), of a wanted version
        links = [link for link in links if requires_python_ok(link, target)]
        versions = _versions(links, requirement, target, sdist_only=True)
        if not versions or not self.can_build():
            return False
        if project in self.forced:  # the user asked for the source (--no-binary)
            return True
        host = platform.machine()
        wheels = [link for link in links if link.is_wheel and not link.yanked]
        if (host != target.machine and wheels and self.registry.get(project) is None
                and all(not link.filename.endswith("-any.whl") for link in wheels)):
            self.refused[project] = ("no-build-environment", (
                f"{project} has native code (it publishes only platform wheels) and this "
                f"{host} machine cannot build {target.machine} code; its sdist was not "
                f"built."))
            return False
        d = diagnose(project, str(max(versions)), links, target)
        return not (d.glibc_blocked and not self.config.build_above_glibc_ceiling)


def _store_in_cas(resolution: Resolution, cas: Path, jobs: int) -> dict:
    """Keep every downloaded file under files/<sha[:2]>/<sha>/<name> for later runs."""
    shas = {}

    def store(item: ResolvedItem) -> None:
        if item.path is None or not item.path.exists():
            return
        sha = file_sha256(item.path)
        shas[item.path.name] = sha
        dest = cas / sha[:2] / sha / item.path.name
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}")
        try:
            os.link(item.path, tmp)
        except OSError:
            shutil.copyfile(item.path, tmp)
        os.replace(tmp, dest)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(store, resolution.items))
    return shas


def _install_and_swap(wheels: List[Path], artifacts: Path, jobs: int,
                      unpacked: Optional[Path] = None) -> None:
    artifacts.parent.mkdir(parents=True, exist_ok=True)
    token = lifecycle.owned_name("") + uuid.uuid4().hex[:8]
    staging = artifacts.parent / f".{artifacts.name}.lambda-compat-new-{token}"
    old = artifacts.parent / f".{artifacts.name}.lambda-compat-old-{token}"
    try:
        install_all(wheels, staging, jobs, unpacked)
        outputs.write_marker(staging)
        if artifacts.exists():
            os.rename(artifacts, old)
        try:
            os.rename(staging, artifacts)
        except OSError:
            if old.exists():
                os.rename(old, artifacts)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


class _Phases:
    def __init__(self, target: Target, config: BuildConfig, registry: PackageRegistry,
                 cache: Path, requirements: Path, ui: UI, resolution: Resolution,
                 shas: dict) -> None:
        self.shas = shas  # filename -> sha256, computed once when stored in the cache
        self.target = target
        self.config = config
        self.registry = registry
        self.cache = cache
        self.requirements = requirements
        self.ui = ui
        self.resolution = resolution
        # Building is possible natively only where the host runs the target's machine code.
        self.host_machine = platform.machine()

    # -- phase 2: a wheel chosen by resolution ------------------------------------------
    def from_wheel(self, item: ResolvedItem) -> Tuple[DistOutcome, Optional[Path]]:
        outcome = DistOutcome(name=item.name, version=item.version, phase="wheel",
                              requested=item.user_supplied, source=item.path.name,
                              file=item.path.name, sha256=self._sha(item.path))
        self.ui.event("dist-start", name=item.name, version=item.version, phase="wheel")
        try:
            info = read_wheel(item.path)
        except WheelError as exc:
            return self._missing(outcome, "bad-wheel", str(exc)), None
        findings = cached_findings(self.cache / "verified", outcome.sha256, self.target,
                                   lambda: verify_wheel(info, self.target))
        outcome.findings = [_soften(f) for f in findings]
        blocking = [f for f in findings if f.code in BLOCKING]
        if blocking:
            d = diagnose(item.name, item.version,
                         self.resolution.links.get(item.key, ()), self.target)
            outcome.file = None
            return self._missing(outcome, blocking[0].code,
                                 f"{item.path.name}: " + " ".join(f.message for f in blocking),
                                 d.suggestion), None
        self.ui.event("dist-done", name=item.name, version=item.version, phase="wheel")
        install.prefetch_unpacked(item.path, self.cache / "unpacked")  # overlaps verification
        return outcome, item.path

    # -- phases 3-6: source ----------------------------------------------------------------
    def from_source(self, item: ResolvedItem) -> Tuple[DistOutcome, Optional[Path]]:
        source = item.source_dir or item.path
        is_dir = item.source_dir is not None
        sha = None if is_dir else self._sha(item.path)
        outcome = DistOutcome(name=item.name, version=item.version, phase="missing",
                              requested=item.user_supplied,
                              source=str(source) if is_dir else item.path.name, sha256=sha)
        links = self.resolution.links.get(item.key, ())
        diag = diagnose(item.name, item.version, links, self.target)
        if (diag.glibc_blocked and not self.config.build_above_glibc_ceiling
                and item.key not in _no_binary_names(self.config)):
            outcome.attempts.append("source build skipped: the project's own wheels for this "
                                    "version need a newer glibc")
            return self._missing(outcome, diag.reason_code, diag.reason, diag.suggestion), None
        # A local directory's content can change between runs: a fresh key means no reuse.
        key = (f"dir-{uuid.uuid4().hex}-d" if is_dir else sha)
        # Builds the resolution already made to read the metadata (source_metadata).
        earlier = {a["no_compiler"]: a for a in self.resolution.sources.get(
            outcome.source, {}).get("attempts", ())}
        backend = None if is_dir else read_sdist(item.path).build_backend
        native = None
        if self.host_machine == self.target.machine:
            native = find_interpreter(self.target.python_version, self.target.machine,
                                      self.config.python)
        rejected: Optional[Tuple[str, str]] = None
        # phase 3: build with the compiler, natively for the target's Python
        if native is not None:
            wheel, rejected = self._native_build(item, outcome, Path(source), key, native,
                                                 earlier.get(False))
            if wheel is not None:
                return outcome, wheel
            if rejected is not None and rejected[0] == _TIMED_OUT:
                return self._missing(outcome, "sdist-build-failed", rejected[1],
                                     diag.suggestion), None
        elif self.host_machine != self.target.machine:
            outcome.attempts.append(
                f"no native build: this machine is {self.host_machine}, the target is "
                f"{self.target.machine}")
        else:
            outcome.attempts.append(
                f"no native build: no CPython {self.target.python_version[0]}."
                f"{self.target.python_version[1]} interpreter found (use --python)")
        # phase 4: rebuild with compilers disabled; any machine can do this
        fallback = native or find_interpreter(self.target.python_version, self.host_machine,
                                              self.config.python)
        if backend in NATIVE_BACKENDS:
            outcome.attempts.append(f"no build without a compiler: {NATIVE_BACKENDS[backend]} "
                                    f"builds native code only")
        elif fallback is not None:
            wheel = self._fallback_build(item, outcome, Path(source), key, fallback,
                                         earlier.get(True))
            if wheel is not None:
                return outcome, wheel
        else:
            outcome.attempts.append(
                f"no CPython {self.target.python_version[0]}.{self.target.python_version[1]} "
                f"interpreter on this machine for a pure-Python build (use --python)")
        # phase 6: missing, the real cause first
        code, reason = self._source_reason(item, diag, rejected, native, fallback, backend,
                                           outcome)
        return self._missing(outcome, code, reason, diag.suggestion), None

    def _build(self, item: ResolvedItem, outcome: DistOutcome, source: Path, key: str,
               interp, no_compiler: bool, earlier: Optional[dict]):
        """One build (or the resolution's earlier failed one, not repeated); the result."""
        if earlier is not None and not earlier["ok"]:
            outcome.build_log, outcome.interpreter = earlier["log"], earlier["interpreter"]
            return None, earlier
        self.ui.event("dist-start", name=item.name, version=item.version,
                      phase="built-no-compiler" if no_compiler else "built",
                      interpreter=interp.describe(),
                      size=None if source.is_dir() else source.stat().st_size)
        with build_progress(self.ui.event, outcome.source or source.name, interp.describe(),
                            no_compiler) as state:
            result = build_wheel(source, key, interp, cache_dir=self.cache,
                                 pip=self.config.pip, no_compiler=no_compiler,
                                 timeout=self.config.build_timeout,
                                 cwd=self.requirements.resolve().parent,
                                 sandbox=self.config.build_sandbox)
            state["ok"] = result.ok
        outcome.build_log = str(result.log)
        outcome.interpreter = result.interpreter
        return result, {"ok": result.ok, "log": str(result.log), "tail": result.error_tail,
                        "interpreter": result.interpreter, "timed_out": result.timed_out}

    def _native_build(self, item, outcome, source, key, native, earlier):
        """Phase 3: (wheel, None) if accepted, else (None, (code, why) of a refused wheel)."""
        result, attempt = self._build(item, outcome, source, key, native, False, earlier)
        if result is not None and result.ok:
            code, why = self._accept_built(outcome, result.wheel)
            if code is None:
                outcome.phase, outcome.file = "built", result.wheel.name
                self.ui.event("dist-done", name=item.name, version=item.version,
                              phase="built")
                return result.wheel, None
            outcome.attempts.append(f"built with {result.interpreter}, rejected: {why}")
            return None, (code, why)
        outcome.attempts.append(f"build with {attempt['interpreter']} failed:\n"
                                f"{attempt['tail']}\n(full log: {attempt['log']})")
        if attempt.get("timed_out"):  # a compiler is not why it hung: no second wait
            return None, (_TIMED_OUT, f"building {item.name} {item.version} did not finish "
                                      f"within {self.config.build_timeout:g} s "
                                      f"(--build-timeout)")
        return None, None

    def _fallback_build(self, item, outcome, source, key, fallback, earlier) -> Optional[Path]:
        """Phase 4 (and 5, the registry): the wheel built without a compiler, if usable."""
        result, attempt = self._build(item, outcome, source, key, fallback, True, earlier)
        if result is None or not result.ok:
            outcome.attempts.append(
                f"build without a compiler failed:\n{attempt['tail']}\n"
                f"(full log: {attempt['log']})")
            return None
        info = read_wheel(result.wheel)
        problems = [f for f in verify_wheel(info, self.target, check_tag=False)
                    if f.code in BLOCKING]
        if info.native_files:
            problems = problems or [Finding(
                "native-code", item.name, info.native_files[0],
                "contains native code built for this machine", "", "error")]
        if not problems and self.target.accepts_wheel_tags(info.tags):
            outcome.phase, outcome.file = "built-no-compiler", result.wheel.name
            self.ui.event("dist-done", name=item.name, version=item.version,
                          phase=outcome.phase)
            return result.wheel
        # The registry: name, version and target must match an entry, the wheel must
        # be the resolved distribution, for the target's Python (only the platform
        # may be the build machine's), and hold no native file (checked above).
        entry = self.registry.find(info.name, info.version, self.target)
        if entry is not None and (canonicalize_name(info.name) != item.key
                                  or Version(info.version) != Version(item.version)):
            entry = None
        if (entry is not None and not problems
                and not tags_fit_except_platform(info.tags, self.target)):
            problems = [Finding(
                "incompatible-tags", item.name, result.wheel.name,
                f"{result.wheel.name} is built for another Python than "
                f"{self.target.runtime}", "", "error")]
        if not problems and entry is not None:
            outcome.phase, outcome.file = "registry", result.wheel.name
            outcome.registry_entry = (f"{entry.label} ({entry.kind}; "
                                      f"{Path(entry.path).name}; registry "
                                      f"{self.registry.version})")
            self.ui.event("dist-done", name=item.name, version=item.version,
                          phase="registry")
            return result.wheel
        why = (problems[0].message if problems else
               f"the wheel is tagged {', '.join(sorted(map(str, info.tags)))} and no "
               f"registry entry vouches that it needs no native code")
        outcome.attempts.append(f"built without a compiler, rejected: {why}")
        return None

    def _source_reason(self, item, diag, rejected, native, fallback, backend,
                       outcome) -> Tuple[str, str]:
        """Why a source distribution is missing: the real cause first, then the context."""
        label = f"{item.name} {item.version}"
        context = diag.reason or ""
        if rejected is not None:
            code, why = rejected
            return code, (f"{label} was built here for {self.target.name} "
                          f"({outcome.interpreter}), but the wheel cannot load there: {why}. "
                          f"{context}")
        t = self.target
        version = f"{t.python_version[0]}.{t.python_version[1]}"
        if fallback is None:
            return "no-build-environment", (
                f"{label} could not be built: this machine has no CPython {version} "
                f"interpreter (use --python). {context}")
        if native is None and t.machine != self.host_machine:
            needs_cc = backend in NATIVE_BACKENDS or COMPILER_DISABLED in _read_text(
                outcome.build_log)
            if needs_cc:
                return "no-build-environment", (
                    f"{label} needs a compiler for {t.machine} to be built, and this "
                    f"{self.host_machine} machine has none (its build without a compiler "
                    f"failed or cannot work). {context}")
        return "sdist-build-failed", (f"{label} has no wheel for {t.name} and its sdist could "
                                      f"not be built for it (see attempts). {context}")

    def _sha(self, path: Path) -> str:
        return self.shas.get(path.name) or file_sha256(path)

    def _accept_built(self, outcome: DistOutcome,
                      wheel: Path) -> Tuple[Optional[str], str]:
        """(None, "") for a wheel that fits the target, else (reason code, why)."""
        try:
            info = read_wheel(wheel)
        except WheelError as exc:
            return "bad-wheel", str(exc)
        findings = verify_wheel(info, self.target)
        blocking = [f for f in findings if f.code in BLOCKING]
        if blocking:
            why = blocking[0].message.rstrip(".")
            if len(blocking) > 1:
                why += f" (and {len(blocking) - 1} more like it)"
            return blocking[0].code, why
        outcome.findings = [_soften(f) for f in findings]
        return None, ""

    def _missing(self, outcome: DistOutcome, code: Optional[str], reason: str,
                 suggestion: Optional[str] = None) -> DistOutcome:
        outcome.phase = "missing"
        outcome.reason_code = code
        outcome.reason = reason
        if suggestion is None:
            alt = ALTERNATIVES.get(outcome.name.lower())
            suggestion = f"Use {alt}." if alt else None
        outcome.suggestion = suggestion
        self.ui.event("dist-done", name=outcome.name, version=outcome.version, phase="missing",
                      reason=reason)
        return outcome


def _soften(f: Finding) -> Finding:
    """In a build, a system library the image lacks is a warning: the user may provide it."""
    if f.code == "missing-system-library":
        return replace(f, severity="warning")
    return f
