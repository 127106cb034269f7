"""``build_dependencies``: requirements in, a flat bundle for one Lambda target out.

The phases follow the aws-lambda-builders ``python_pip`` design, judged for the target:

1. resolve the whole closure for the target (pip engine, :mod:`lambda_compat.resolve`);
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

from . import errors, install, lifecycle, outputs, reqfile, resolution_cache
from .diagnose import ALTERNATIVES, diagnose
from .install import install_all
from .interpreters import find_interpreter
from .packages import PackageRegistry, load_packages, tags_fit_except_platform
from .verify_cache import cached_findings
from .report import BuildReport, DistOutcome
from .resolve import PipOptions, ResolvedItem, Resolution, resolve
from .runtimes import load_runtimes
from .sdist_build import build_wheel, file_sha256
from .targets import Target
from .ui import UI, NullUI
from .wheels import Finding, WheelError, read_wheel, verify_wheel

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
        if resolution is None:
            resolution = resolve(target, requirements, workdir=work, cas_dir=cache / "files",
                                 pip=config.pip,
                                 on_event=lambda e: ui.event("pip-" + e.pop("event", "?"), **e),
                                 allow_source=_source_policy(target, config),
                                 log_dir=cache / "logs", build_sandbox=config.build_sandbox,
                                 build_timeout=config.build_timeout)
        _require_index(resolution, config.pip, target)
        ui.event("resolved", count=len(resolution.items), cache_hits=len(resolution.cache_hits))
        for url, reason in resolution.fetch_failures:
            report.warnings.append(f"index page not reachable: {url} ({reason})")
        for nf in resolution.not_found:
            links = resolution.links.get(nf.project, ())
            version = _candidate_version(nf.requirement, links, target)
            d = diagnose(nf.project, version, links, target)
            code, reason = d.reason_code, d.reason
            if nf.message.startswith("building the metadata"):
                code, reason = "build-failed", nf.message
            elif (d.reason_code == "no-wheel" and _versions(links, nf.requirement, target, True)
                  and find_interpreter(target.python_version, platform.machine(),
                                       config.python) is None):
                reason += (f"; its sdist was not built: no CPython {target.python_version[0]}."
                           f"{target.python_version[1]} interpreter on this machine (use "
                           f"--python)")
            report.distributions.append(DistOutcome(
                name=nf.project, version=version, phase="missing",
                requested=nf.parent is None, reason_code=code,
                reason=reason + (f" (required by {nf.parent})" if nf.parent else ""),
                suggestion=d.suggestion))
        shas = _store_in_cas(resolution, cache / "files", config.jobs)
        resolution_cache.store(cache / "resolutions", rkey, resolution, shas)
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
        report.seconds = time.monotonic() - started
    ui.event("done", status=report.status, seconds=report.seconds)
    return report


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


def _source_policy(target: Target, config: BuildConfig):
    """Allow building a project from source only where that can produce a usable wheel.

    Not when the project's wheels for that version only need a newer glibc (unless asked), and
    not when this machine has no CPython of the target's version at all: every build phase
    needs one, so pip would only build the sdist (numpy: minutes of C++) to read metadata.
    """
    forced = _no_binary_names(config)
    interpreter: list = []

    def can_build() -> bool:
        if not interpreter:
            interpreter.append(find_interpreter(target.python_version, platform.machine(),
                                                config.python) is not None)
        return interpreter[0]

    def allow(project: str, requirement: str, links) -> bool:
        versions = _versions(links, requirement, target, sdist_only=True)
        if not versions or not can_build():
            return False
        if project in forced:  # the user asked for the source (--no-binary)
            return True
        d = diagnose(project, str(max(versions)), links, target)
        return not (d.glibc_blocked and not config.build_above_glibc_ceiling)
    return allow


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
        source_key = sha or f"dir-{uuid.uuid4().hex}"
        native = None
        if self.host_machine == self.target.machine:
            native = find_interpreter(self.target.python_version, self.target.machine,
                                      self.config.python)
        # phase 3: build with the compiler, natively for the target's Python
        if native is not None:
            self.ui.event("dist-start", name=item.name, version=item.version, phase="built",
                          interpreter=native.describe(),
                          size=None if is_dir else item.path.stat().st_size)
            result = build_wheel(Path(source), source_key if not is_dir else source_key + "-d",
                                 native, cache_dir=self.cache, pip=self.config.pip,
                                 no_compiler=False, timeout=self.config.build_timeout,
                                 cwd=self.requirements.resolve().parent,
                                 sandbox=self.config.build_sandbox)
            outcome.build_log = str(result.log)
            outcome.interpreter = result.interpreter
            if result.ok:
                ok, why = self._accept_built(outcome, result.wheel)
                if ok:
                    outcome.phase, outcome.file = "built", result.wheel.name
                    self.ui.event("dist-done", name=item.name, version=item.version,
                                  phase="built")
                    return outcome, result.wheel
                outcome.attempts.append(f"built with {result.interpreter}, rejected: {why}")
            else:
                outcome.attempts.append(f"build with {result.interpreter} failed:\n"
                                        f"{result.error_tail}\n(full log: {result.log})")
                if result.timed_out:  # a compiler is not why it hung: no second wait
                    return self._missing(
                        outcome, "build-failed",
                        f"building {item.name} {item.version} did not finish within "
                        f"{self.config.build_timeout:g} s (--build-timeout)"), None
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
        if fallback is not None:
            self.ui.event("dist-start", name=item.name, version=item.version,
                          phase="built-no-compiler", interpreter=fallback.describe())
            result = build_wheel(Path(source), source_key + ("-d" if is_dir else ""), fallback,
                                 cache_dir=self.cache, pip=self.config.pip, no_compiler=True,
                                 timeout=self.config.build_timeout,
                                 cwd=self.requirements.resolve().parent,
                                 sandbox=self.config.build_sandbox)
            outcome.build_log = str(result.log)
            outcome.interpreter = result.interpreter
            if result.ok:
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
                    return outcome, result.wheel
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
                    return outcome, result.wheel
                why = (problems[0].message if problems else
                       f"the wheel is tagged {', '.join(sorted(map(str, info.tags)))} and no "
                       f"registry entry vouches that it needs no native code")
                outcome.attempts.append(f"built without a compiler, rejected: {why}")
            else:
                outcome.attempts.append(
                    f"build without a compiler failed:\n{result.error_tail}\n"
                    f"(full log: {result.log})")
        else:
            outcome.attempts.append(
                f"no CPython {self.target.python_version[0]}.{self.target.python_version[1]} "
                f"interpreter on this machine for a pure-Python build (use --python)")
        # phase 6: missing
        reason = diag.reason if diag.reason_code != "no-wheel" else (
            f"{item.name} {item.version} has no wheel for {self.target.name} and could not be "
            f"built for it")
        return self._missing(outcome, "build-failed" if diag.reason_code == "no-wheel"
                             else diag.reason_code, reason, diag.suggestion), None

    def _sha(self, path: Path) -> str:
        return self.shas.get(path.name) or file_sha256(path)

    def _accept_built(self, outcome: DistOutcome, wheel: Path) -> Tuple[bool, str]:
        try:
            info = read_wheel(wheel)
        except WheelError as exc:
            return False, str(exc)
        findings = verify_wheel(info, self.target)
        blocking = [f for f in findings if f.code in BLOCKING]
        if blocking:
            return False, "; ".join(f.message.rstrip(".") for f in blocking) + "."
        outcome.findings = [_soften(f) for f in findings]
        return True, ""

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
