"""The builder's phases 2-6 for one resolved distribution (see :mod:`.builder`).

2. a compatible wheel -> done (its tags, Requires-Python and ELF files re-verified);
3. source only -> unless its wheels only need a newer glibc, built natively with an
   interpreter of the target's version, the wheel's tags and ELF files verified;
4. else rebuilt with the compilers disabled (pure-Python fallback) and verified again; with
   no interpreter of the target's version here, by any local one (an any-Python pure build,
   :mod:`lambda_compat.resolve.pure_build`) and accepted only as a pure wheel;
5. else the registry allowlist (platform tag, no native code, entry matches);
6. else missing, the real cause first (:mod:`.missing`).
"""

from __future__ import annotations

import platform
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from packaging.utils import canonicalize_name
from packaging.version import Version

from ..host.interpreters import find_interpreter, pick_pure_build, pure_build_interpreters
from ..registry.package_entry import PackageRegistry, tags_fit_except_platform
from ..resolve import failed_builds, pure_build
from ..resolve.diagnose import Diagnosis, diagnose
from ..resolve.engine import ResolvedItem, Resolution
from ..resolve.environments import BuildEnvironment, LocalEnvironment, PureEnvironment
from ..resolve.sdist_build import BuildResult, file_sha256
from ..resolve.source_metadata import COMPILER_DISABLED, NATIVE_BACKENDS, build_progress, read_sdist
from ..targets.target import Target
from ..ui import UI
from ..errors import WheelError
from ..verify.wheels import Finding, WheelInfo, read_wheel, read_wheel_known, verify_wheel
from .early import verified_findings
from .environments import EnvironmentChooser
from .missing import mark_missing
from .report import DistOutcome
from .resolution import no_binary_names

if TYPE_CHECKING:
    from .builder import BuildConfig

#: Findings that make a wheel unusable on the target. A missing system library is reported
#: but does not reject the wheel: the user may ship the library (a layer) - the check says so.
BLOCKING = {"wrong-arch", "glibc-too-new", "libstdcxx-too-new", "libgcc-too-new",
            "python-abi-mismatch", "requires-python", "incompatible-tags", "not-elf",
            "not-loadable"}

#: The "rejected" mark of a native build that ran out of time (no compiler-less retry).
_TIMED_OUT = "timed-out"

Judged = Tuple[DistOutcome, Optional[Path]]


@dataclass
class _Source:
    """One source distribution (or local project directory) on its way through 3-6."""

    item: ResolvedItem
    outcome: DistOutcome
    path: Path                     # the sdist, or the project directory
    key: str                       # of the built-wheel cache
    backend: Optional[str] = None  # the sdist's build backend, if it names one
    #: the builds the resolution already made to read the metadata, by no_compiler
    earlier: Dict[bool, Dict[str, Any]] = field(default_factory=dict)


class Phases:
    def __init__(self, target: Target, config: BuildConfig, registry: PackageRegistry,
                 cache: Path, requirements: Path, ui: UI, resolution: Resolution,
                 shas: Dict[str, str], chooser: Optional[EnvironmentChooser] = None) -> None:
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
        self.chooser = chooser or EnvironmentChooser(target, config, cache, ui)

    # -- phase 2: a wheel chosen by resolution ------------------------------------------
    def from_wheel(self, item: ResolvedItem) -> Judged:
        assert item.path is not None  # a wheel is always a file
        sha = self._sha(item.path)
        outcome = DistOutcome(name=item.name, version=item.version, phase="wheel",
                              requested=item.user_supplied, source=item.path.name,
                              file=item.path.name, sha256=sha)
        self.ui.event("dist-start", name=item.name, version=item.version, phase="wheel")
        try:
            info = read_wheel_known(item.path, sha)
        except WheelError as exc:
            return self._missing(outcome, "bad-wheel", str(exc)), None
        # unpacked first (the install step then only links), verified from the unpacked
        # files; both often done already, while pip resolved (build/early.py)
        findings = verified_findings(item.path, info, sha, self.cache, self.target)
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
        return outcome, item.path

    # -- phases 3-6: source ----------------------------------------------------------------
    def from_source(self, item: ResolvedItem) -> Judged:
        src = self._source(item)
        outcome = src.outcome
        diag = diagnose(item.name, item.version, self.resolution.links.get(item.key, ()),
                        self.target)
        if (diag.glibc_blocked and not self.config.build_above_glibc_ceiling
                and item.key not in no_binary_names(self.config)):
            outcome.attempts.append("source build skipped: the project's own wheels for this "
                                    "version need a newer glibc")
            return self._missing(outcome, diag.reason_code, diag.reason, diag.suggestion), None
        if item.source_dir is None:
            src.backend = read_sdist(src.path, self._sha(src.path), self.cache).build_backend
        # the build environment for the target (a local interpreter, a target root, ...)
        native = self.chooser.get()
        # phase 3: build with the compiler, natively for the target's Python
        wheel, rejected = self._phase_native(src, native)
        if wheel is not None:
            return outcome, wheel
        if rejected is not None and rejected[0] == _TIMED_OUT:
            return self._missing(outcome, "sdist-build-failed", rejected[1],
                                 diag.suggestion), None
        # phases 4 and 5: rebuild with compilers disabled (any machine can), the registry
        fallback = native or _host_interpreter(self.target, self.host_machine,
                                               self.config.python)
        wheel = self._phase_no_compiler(src, fallback)
        if wheel is not None:
            return outcome, wheel
        # phase 6: missing, the real cause first
        code, reason = self._source_reason(item, diag, rejected, native, fallback,
                                           src.backend, outcome)
        return self._missing(outcome, code, reason, diag.suggestion), None

    def _source(self, item: ResolvedItem) -> _Source:
        """The outcome to fill in, the cache key and the builds the resolution made."""
        is_dir = item.source_dir is not None
        source = item.source_dir if item.source_dir is not None else item.path
        assert source is not None  # an sdist is a file, a local project a directory
        sha = None if item.path is None or is_dir else self._sha(item.path)
        outcome = DistOutcome(name=item.name, version=item.version, phase="missing",
                              requested=item.user_supplied,
                              source=str(source) if is_dir else source.name, sha256=sha)
        # A local directory's content can change between runs: a fresh key means no reuse.
        key = f"dir-{uuid.uuid4().hex}-d" if sha is None else sha
        # Builds the resolution already made to read the metadata (source_metadata).
        earlier = {a["no_compiler"]: a for a in self.resolution.sources.get(
            outcome.source or "", {}).get("attempts", ())}
        return _Source(item, outcome, Path(source), key, earlier=earlier)

    def _phase_native(self, src: _Source, native: Optional[BuildEnvironment]
                      ) -> Tuple[Optional[Path], Optional[Tuple[str, str]]]:
        """Phase 3, where it can run: (wheel, None) if accepted, else (None, (code, why) of
        a refused wheel or a build that timed out, or None)."""
        if native is not None:
            return self._native_build(src, native)
        src.outcome.attempts.append(f"no build environment: {self.chooser.reason}")
        return None, None

    def _phase_no_compiler(self, src: _Source,
                           fallback: Optional[BuildEnvironment]) -> Optional[Path]:
        """Phase 4 (and 5), where it can run: the usable wheel built without a compiler."""
        if src.backend in NATIVE_BACKENDS:
            src.outcome.attempts.append(f"no build without a compiler: "
                                        f"{NATIVE_BACKENDS[src.backend]} builds native code "
                                        f"only")
            return None
        if fallback is not None:
            wheel = self._fallback_build(src, fallback)
            if wheel is not None or fallback.kind == "local" or not self._pure_possible():
                return wheel
            # a target root or image that could not build it (its build dependencies not
            # to be had, say): a pure source still builds with any Python
            return self._pure_any_build(src)
        src.outcome.attempts.append(
            f"no CPython {self.target.python_version[0]}.{self.target.python_version[1]} "
            f"interpreter on this machine for a pure-Python build (use --python)")
        return self._pure_any_build(src)

    def _pure_possible(self) -> bool:
        """No CPython of the target's version here: only then may the pure build stand in."""
        return find_interpreter(self.target.python_version, self.host_machine,
                                self.config.python) is None

    def _pure_any_build(self, src: _Source) -> Optional[Path]:
        """Phase 4 without an interpreter of the target's version: the any-Python pure build
        (:mod:`lambda_compat.resolve.pure_build`), accepted only as a pure wheel."""
        item, outcome, t = src.item, src.outcome, self.target
        interp = pick_pure_build(pure_build_interpreters(self.host_machine),
                                 item.requires_python)
        if interp is None:
            outcome.attempts.append("no any-Python pure build: no local CPython satisfies "
                                    f"its Requires-Python ({item.requires_python})")
            return None
        result, attempt = self._build(src, PureEnvironment(interp), True)
        built = f"CPython {pure_build.version_text(interp)}"
        if result is None or not result.ok or result.wheel is None:
            outcome.attempts.append(f"any-Python pure build with {built} (compilers disabled) "
                                    f"failed:\n{attempt['tail']}\n(full log: {attempt['log']})")
            return None
        why = pure_build.problems(result.wheel, t.python_version, t.python_full_version)
        info = read_wheel(result.wheel)
        blocking = [f for f in verify_wheel(info, t) if f.code in BLOCKING]
        if not why and (info.native_files or blocking or not t.accepts_wheel_tags(info.tags)):
            why = [f"{result.wheel.name}: " + (blocking[0].message if blocking else
                                               "native files or tags not for the target")]
        if why:
            outcome.attempts.append(f"any-Python pure build with {built}, rejected: "
                                    + "; ".join(why))
            return None
        outcome.phase, outcome.file = "built-no-compiler", result.wheel.name
        outcome.interpreter = pure_build.describe(result.interpreter)
        outcome.build_environment = outcome.interpreter
        outcome.attempts.append(f"built without a compiler with {result.interpreter} "
                                f"(any-Python pure build, once for every target): "
                                + pure_build.CAVEAT.format(built=built, target=t.runtime))
        self.ui.event("dist-done", name=item.name, version=item.version, phase=outcome.phase)
        return result.wheel

    def _build(self, src: _Source, env: BuildEnvironment, no_compiler: bool
               ) -> Tuple[Optional[BuildResult], Dict[str, Any]]:
        """One build (or the resolution's earlier failed one, not repeated); the result."""
        item, outcome, source = src.item, src.outcome, src.path
        earlier = src.earlier.get(no_compiler)
        if earlier is not None and not earlier["ok"]:
            outcome.build_log, outcome.interpreter = earlier["log"], earlier["interpreter"]
            return None, earlier
        self.ui.event("dist-start", name=item.name, version=item.version,
                      phase="built-no-compiler" if no_compiler else "built",
                      interpreter=env.describe(),
                      size=None if source.is_dir() else source.stat().st_size)
        with build_progress(self.ui.event, outcome.source or source.name, env.describe(),
                            no_compiler) as state:
            request = failed_builds.BuildRequest(
                cache_dir=self.cache, pip=self.config.pip, no_compiler=no_compiler,
                timeout=self.config.build_timeout, cwd=self.requirements.resolve().parent,
                sandbox=self.config.build_sandbox)
            result = failed_builds.build(env, source, src.key, request,
                                         self.config.failure_ttl)
            state["ok"] = result.ok
        outcome.build_log = str(result.log)
        outcome.interpreter = result.interpreter
        return result, {"ok": result.ok, "log": str(result.log), "tail": result.error_tail,
                        "interpreter": result.interpreter, "timed_out": result.timed_out}

    def _native_build(self, src: _Source, native: BuildEnvironment
                      ) -> Tuple[Optional[Path], Optional[Tuple[str, str]]]:
        """Phase 3: (wheel, None) if accepted, else (None, (code, why) of a refused wheel)."""
        item, outcome = src.item, src.outcome
        result, attempt = self._build(src, native, False)
        if result is not None and result.ok and result.wheel is not None:
            code, why = self._accept_built(outcome, result.wheel)
            if code is None:
                outcome.phase, outcome.file = "built", result.wheel.name
                outcome.build_environment = result.interpreter
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

    def _fallback_build(self, src: _Source, fallback: BuildEnvironment) -> Optional[Path]:
        """Phase 4 (and 5, the registry): the wheel built without a compiler, if usable."""
        item, outcome = src.item, src.outcome
        result, attempt = self._build(src, fallback, True)
        if result is None or not result.ok or result.wheel is None:
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
            outcome.build_environment = result.interpreter
            self.ui.event("dist-done", name=item.name, version=item.version,
                          phase=outcome.phase)
            return result.wheel
        return self._registry_allowlist(src, result.wheel, info, problems)

    def _registry_allowlist(self, src: _Source, wheel: Path, info: WheelInfo,
                            problems: List[Finding]) -> Optional[Path]:
        """Phase 5: a compiler-less wheel the target's tags refuse, vouched for by an entry.

        Name, version and target must match an entry, the wheel must be the resolved
        distribution, for the target's Python (only the platform may be the build
        machine's), and hold no native file (checked by phase 4)."""
        item, outcome = src.item, src.outcome
        entry = self.registry.find(info.name, info.version, self.target)
        if entry is not None and (canonicalize_name(info.name) != item.key
                                  or Version(info.version) != Version(item.version)):
            entry = None
        if (entry is not None and not problems
                and not tags_fit_except_platform(info.tags, self.target)):
            problems = [Finding(
                "incompatible-tags", item.name, wheel.name,
                f"{wheel.name} is built for another Python than "
                f"{self.target.runtime}", "", "error")]
        if not problems and entry is not None:
            outcome.phase, outcome.file = "registry", wheel.name
            outcome.build_environment = outcome.interpreter
            outcome.registry_entry = (f"{entry.label} ({entry.kind}; "
                                      f"{Path(entry.path).name}; registry "
                                      f"{self.registry.version})")
            self.ui.event("dist-done", name=item.name, version=item.version,
                          phase="registry")
            return wheel
        why = (problems[0].message if problems else
               f"the wheel is tagged {', '.join(sorted(map(str, info.tags)))} and no "
               f"registry entry vouches that it needs no native code")
        outcome.attempts.append(f"built without a compiler, rejected: {why}")
        return None

    def _source_reason(self, item: ResolvedItem, diag: Diagnosis,
                       rejected: Optional[Tuple[str, str]],
                       native: Optional[BuildEnvironment],
                       fallback: Optional[BuildEnvironment], backend: Optional[str],
                       outcome: DistOutcome) -> Tuple[str, str]:
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
            pure = ("; an any-Python pure build gave no pure wheel (see attempts)"
                    if any(a.startswith("any-Python pure build") for a in outcome.attempts)
                    else "")
            return "no-build-environment", (
                f"{label} could not be built: nothing here builds for CPython {version} on "
                f"{t.machine}: {self.chooser.reason}{pure}. {context}")
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
        return mark_missing(self.ui, outcome, code, reason, suggestion)


def _host_interpreter(target: Target, host_machine: str,
                      explicit: Optional[str]) -> Optional[BuildEnvironment]:
    """A local interpreter of the target's version on this machine: its compiler-less
    build is the pure fallback when no environment builds for the target."""
    interp = find_interpreter(target.python_version, host_machine, explicit)
    return LocalEnvironment(interp) if interp is not None else None


def _soften(f: Finding) -> Finding:
    """In a build, a system library the image lacks is a warning: the user may provide it."""
    if f.code == "missing-system-library":
        return replace(f, severity="warning")
    return f


def _read_text(path: Optional[str]) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace") if path else ""
    except OSError:
        return ""
