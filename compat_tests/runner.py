"""One cell of the matrix: build a case for a target, check it statically, import it, judge.

The three steps use lambda-compat's public API, exactly as a user's tooling would:

1. :func:`lambda_compat.build.builder.build_dependencies` builds the requirements for the target;
2. :func:`lambda_compat.verify.bundle_check.check_bundle` judges the bundle statically (the *prediction*);
3. the strongest dynamic backend available
   (:func:`lambda_compat.prove.backends.selection.select_backend`) imports every distribution's
   top-level modules (the *observation*).

:func:`judge` then compares the prediction with the case's expectation and with the
observation. A cell never claims more proof than it got: without an import its proof is
``static``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from filelock import FileLock
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from lambda_compat import errors
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.targets.target import Target
from lambda_compat.ui import RecordingUI

from .cases import ROOT, Case, Rule

#: Proof levels, weakest first (the same words lambda-compat check uses).
PROOFS = ("static", "host", "rootfs", "image")

#: Outcomes of a cell. Only ``proven`` is a pass on evidence; ``refuted`` fails the suite;
#: ``unproven`` (no import possible here, or nothing built) and ``not-refutable`` (an import
#: ran, but at a level that cannot contradict the predicted reason) are reported and counted,
#: and fail under ``--require-proof``.
EVIDENCE = ("proven", "refuted", "unproven", "not-refutable")

#: The weakest proof level whose successful import contradicts a predicted blocking code
#: (codes not listed: any import). ``None``: no import can, because a top-level import does
#: not exercise it (quotas; Requires-Python metadata; a missing dependency imported lazily).
#: Stand-ins and the host have a newer glibc/libstdc++ than Lambda, and the host has
#: libraries (libpq...) that Lambda lacks, which stand-in roots leave out on purpose.
REFUTED_FROM: Dict[str, Optional[str]] = {
    "glibc-too-new": "image", "libstdcxx-too-new": "image", "libgcc-too-new": "image",
    "missing-system-library": "rootfs",
    "size-limit": None, "too-many-layers": None, "requires-python": None,
    "missing-dependency": None,
}


def refutable_at(code: str, level: str) -> bool:
    """Whether a successful import at ``level`` contradicts the predicted ``code``."""
    weakest = REFUTED_FROM.get(code, "host")
    return weakest is not None and PROOFS.index(level) >= PROOFS.index(weakest)


@dataclass(frozen=True)
class BackendChoice:
    """How the suite asks for a dynamic backend (from the command-line options)."""

    requested: str = "auto"            # auto | container | rootfs | host | static
    run_containers: bool = False       # auto may use the container backend
    image: Optional[str] = None        # container image override
    rootfs: Optional[str] = None       # root directory override (default: stand-in roots)
    engine: Optional[str] = None
    timeout: float = 180.0
    #: fail a built cell whose import got weaker proof than this (the nightly asks "image")
    require_proof: Optional[str] = None

    def order(self) -> Tuple[str, ...]:
        if self.requested == "auto":
            return (("container",) if self.run_containers else ()) + ("rootfs", "host")
        if self.requested == "static":
            return ()
        return (self.requested,)


@dataclass
class Cell:
    """Everything observed for one (case, target); JSON-serialisable for the summary."""

    case: str
    target: str
    runtime: str
    arch: str
    expected: str
    expected_verdict: str
    verdict: Optional[str] = None          # compatible | incompatible | missing | error
    reasons: List[str] = field(default_factory=list)
    messages: List[str] = field(default_factory=list)
    versions: Dict[str, str] = field(default_factory=dict)
    build_status: Optional[str] = None
    build_seconds: Optional[float] = None
    proof: str = "static"
    #: set when the root or image that ran the import is a lambda-compat stand-in, not the
    #: runtime's image (a stand-in *image* proves what a stand-in root proves, no more)
    standin: Optional[str] = None
    backend: Optional[str] = None
    backend_note: Optional[str] = None     # why no (stronger) backend
    imported: Optional[str] = None         # ok | failed | error | None (no import)
    import_failures: List[str] = field(default_factory=list)
    agreement: Optional[str] = None        # agrees | disagrees | not-refutable | None
    problems: List[str] = field(default_factory=list)
    #: proven | refuted | unproven | not-refutable (EVIDENCE); why, for the last two
    evidence: Optional[str] = None
    evidence_note: Optional[str] = None
    #: the case's unproven_here rule the tool was held to (this machine cannot do better)
    unproven_here: Optional[str] = None
    outcome: Optional[str] = None          # passed | failed | skipped (set by the summary)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "Cell":
        return Cell(**json.loads(text))

    def headline(self) -> str:
        return (f"case {self.case} on {self.target}: expected {self.expected}; predicted "
                f"{self.predicted()}; observed {self.observed()}")

    def predicted(self) -> str:
        if self.verdict is None:
            return "nothing (the run stopped before a verdict)"
        return self.verdict + (f" ({', '.join(self.reasons)})" if self.reasons else "")

    def observed(self) -> str:
        if self.imported is None:
            return f"no import (static only: {self.backend_note or 'not importable'})"
        text = f"import {self.imported} in {self.proof} ({self.backend})"
        if self.import_failures:
            text += ": " + "; ".join(self.import_failures[:3])
        return text


# --------------------------------------------------------------------------- steps

def _location(value: Optional[str]) -> Optional[str]:
    """An index or find-links location of a case: a URL as given, a path relative to the
    repository (the offline fixture index: ``fixtures/index/simple``) as a file URL."""
    if value is None or "://" in value:
        return value
    return (ROOT / value).resolve().as_uri()


def _pip_options(case: Case) -> PipOptions:
    opts = case.pip_options
    return PipOptions(index_url=_location(opts.get("index_url")),
                      extra_index_urls=tuple(_location(u) or u
                                             for u in opts.get("extra_index_urls", ())),
                      find_links=tuple(_location(u) or u for u in opts.get("find_links", ())),
                      isolated=bool(opts.get("isolated", False)))


def _build_error_code(exc: errors.LambdaCompatError) -> str:
    """Reason code of a build that raised instead of reporting (resolution-level failures)."""
    code = getattr(exc, "reason_code", None)
    if code:
        return str(code)
    if "requires a different Python" in str(exc):
        return "requires-python"
    return "unresolvable"


def build(case: Case, target: Target, work: Path, cache_dir: Path, cell: Cell,
          lock_dir: Path) -> Optional[Path]:
    """Build the case for the target into ``work/bundle``; None when nothing was built."""
    reqs = work / "requirements.txt"
    reqs.write_text(case.requirements_text(), encoding="utf-8")
    bundle = work / "bundle"
    config = BuildConfig(cache_dir=cache_dir, pip=_pip_options(case))
    ui = RecordingUI()
    # Both architectures of one runtime may build the same sdist with the same interpreter
    # (the compiler-less fallback); the builder's per-key staging directory is not safe for
    # two processes at once, so one case and runtime build at a time across workers.
    lock = FileLock(str(lock_dir / f"build-{case.name}-{target.runtime}.lock"))
    started = time.monotonic()
    try:
        with lock:
            report = build_dependencies(bundle, reqs, target.runtime, ui=ui, config=config,
                                        architecture=target.arch)
    except (errors.DependenciesMissing, errors.HashMismatch) as exc:
        # no bundle for this target (no consistent set; hashes that cover other targets)
        cell.build_seconds = round(time.monotonic() - started, 1)
        cell.build_status = "unresolvable"
        cell.verdict = "missing"
        cell.reasons = [_build_error_code(exc)]
        cell.messages = ([p.describe() for p in getattr(exc, "mismatches", ())]
                         or [str(exc).splitlines()[0]])
        return None
    cell.build_seconds = round(time.monotonic() - started, 1)
    cell.build_status = report.status
    for d in report.distributions:
        if d.ok and d.version:
            cell.versions[canonicalize_name(d.name)] = d.version
    if not report.ok:
        cell.verdict = "missing"
        missing = report.missing
        subject = [m for m in missing if canonicalize_name(m.name) == case.subject]
        first = (subject or missing)[0]
        cell.reasons = [first.reason_code or "missing"]
        cell.messages = [f"{m.name} {m.version or ''}: {m.reason}" for m in missing]
        return None
    return bundle


def static_check(bundle: Path, target: Target, cell: Cell):
    from lambda_compat.verify.bundle_check import check_bundle
    report = check_bundle(bundle, [], target)
    errs = report.errors
    cell.verdict = "compatible" if report.ok else "incompatible"
    cell.reasons = sorted({f.code for f in errs})
    cell.messages = [f"{f.distribution}: {f.message}" for f in errs]
    # versions as the bundle really holds them (dist-info), overriding the build report
    for d in report.distributions:
        cell.versions[canonicalize_name(d.name)] = d.version
    return report


def dynamic_check(static_report, bundle: Path, target: Target, choice: BackendChoice,
                  cell: Cell) -> None:
    """Import with the strongest backend available; records proof and outcome in ``cell``."""
    from lambda_compat.prove.backends import selection
    notes = []
    backend = None
    for name in choice.order():
        try:
            image = None
            if name == "container":
                image, note = container_image(choice, target)
                if note:
                    notes.append(note)
            backend = selection.select_backend(
                target, name, image=image,
                rootfs=(choice.rootfs or "standin") if name == "rootfs" else None,
                engine=choice.engine)
        except errors.EnvironmentProblem as exc:
            notes.append(f"{name}: {str(exc).splitlines()[0]}")
            continue
        if backend is not None:
            break
    if backend is None:
        cell.backend_note = "; ".join(notes) if notes else "static backend requested"
        return
    modules = static_report.modules()
    if not modules:
        cell.backend_note = "nothing to import"
        return
    result = backend.import_modules(bundle, [], modules, timeout=choice.timeout,
                                    after=static_report.after())
    cell.backend = result.backend
    if result.error is not None:
        cell.imported = "error"
        cell.proof = "static"
        cell.backend_note = f"{result.proof} backend failed to run: {result.error}"
        return
    cell.proof = result.proof
    cell.standin = result.standin
    cell.imported = "ok" if result.ok else "failed"
    cell.import_failures = [f"{o.module}: {o.error}" for o in result.failures]


def container_image(choice: BackendChoice, target: Target) -> Tuple[str, Optional[str]]:
    """(image reference, note) for the container backend on ``target``.

    ``pinned``: the runtime's public image at the digest registry/runtimes.yaml records (the
    refresh-runtimes workflow keeps it current); without a digest the tag is used and the
    note says the image was not pinned. ``standin``: the stand-in image made from the
    stand-in root (no pull). Anything else is an image reference used as given.
    """
    if choice.image in (None, "pinned"):
        facts = target.facts
        if facts is not None and facts.image_digest:
            return f"{facts.image}@{facts.image_digest}", None
        image = facts.image if facts is not None else ""
        return image, f"{image} is not pinned: registry/runtimes.yaml has no digest for it"
    if choice.image == "standin":
        from lambda_compat.prove.standin import images, roots
        root = roots.ensure_standin(target)
        return images.ensure_standin_image(root, engine=choice.engine or "podman"), None
    return choice.image, None


# --------------------------------------------------------------------------- judging

def judge(case: Case, rule: Rule, cell: Cell) -> List[str]:
    """Problems with the cell: (a) expectation vs prediction, (b) prediction vs import."""
    problems: List[str] = []
    if cell.verdict != rule.verdict:
        problems.append(f"verdict {cell.verdict} != expected {rule.verdict}")
    elif set(cell.reasons) != set(rule.reasons):
        problems.append(f"reasons {', '.join(sorted(cell.reasons)) or '(none)'} != expected "
                        f"{', '.join(rule.reasons) or '(none)'}")
    if rule.detail and cell.verdict == rule.verdict and \
            not any(rule.detail in m for m in cell.messages):
        problems.append(f"no finding mentions {rule.detail!r}: {cell.messages[:3]}")
    for name in rule.present:
        if name not in cell.versions:
            problems.append(f"{name} is not in the bundle (bundle: "
                            f"{', '.join(sorted(cell.versions)) or 'empty'})")
    for name in rule.absent:
        if name in cell.versions:
            problems.append(f"{name} {cell.versions[name]} is in the bundle but must not be")
    for name, spec in rule.versions:
        have = cell.versions.get(name)
        if have is None:
            problems.append(f"{name} is not in the bundle (expected {spec})")
            continue
        try:
            ok = Version(have) in SpecifierSet(spec)
        except InvalidVersion:
            ok = False
        if not ok:
            problems.append(f"{name} {have} does not satisfy {spec}")
    problems += agreement(cell)
    return problems


def agreement(cell: Cell) -> List[str]:
    """(b): where an import ran, the prediction must agree with it."""
    if cell.imported not in ("ok", "failed") or cell.verdict not in ("compatible",
                                                                       "incompatible"):
        cell.agreement = None
        return []
    if cell.verdict == "compatible":
        if cell.imported == "ok":
            cell.agreement = "agrees"
            return []
        cell.agreement = "disagrees"
        return [f"predicted compatible but the import failed in {cell.proof}: "
                f"{'; '.join(cell.import_failures[:3])}"]
    # predicted incompatible
    if cell.imported == "failed":
        libraries = missing_libraries(cell)
        failures = " ".join(cell.import_failures)
        if libraries and not any(lib in failures for lib in libraries):
            cell.agreement = "disagrees"
            return [f"predicted missing {', '.join(sorted(libraries))}, but the import failed "
                    f"for another reason: {'; '.join(cell.import_failures[:3])}"]
        cell.agreement = "agrees"
        return []
    level = proof_level(cell)
    refutable = [code for code in cell.reasons if refutable_at(code, level)]
    if cell.reasons and not refutable:
        cell.agreement = "not-refutable"
        return []
    cell.agreement = "disagrees"
    return [f"predicted incompatible ({', '.join(refutable or cell.reasons)}) but every module "
            f"imported in {cell.proof} ({cell.backend})"]


def missing_libraries(cell: Cell) -> set:
    """Libraries the missing-system-library findings name (an import failure that confirms
    the prediction names one of them)."""
    if "missing-system-library" not in cell.reasons:
        return set()
    return {m.group(1) for text in cell.messages
            for m in re.finditer(r"needs (lib[\w+.-]*?\.so(?:\.\d+)*)\b", text)}


def rule_held(case: Case, rule: Rule, here: Optional[Rule], cell: Cell) -> Optional[Rule]:
    """The ``unproven_here`` rule the cell is held to: ``here``, or None where that rule
    accepts the expectation when proven (``unless_proven``) and the tool answered what
    ``rule`` expects and an import on this machine agreed."""
    if here is not None and here.unless_proven and not judge(case, rule, cell) \
            and cell.agreement == "agrees":
        return None
    return here


def classify(cell: Cell, here: Optional[Rule] = None) -> str:
    """The cell's evidence (EVIDENCE), from its problems and its import; sets the note."""
    if cell.problems:
        cell.evidence, cell.evidence_note = "refuted", None
    elif here is not None:
        cell.evidence = "unproven"
        why = here.why or "this machine cannot produce the expected verdict"
        cell.evidence_note = (f"unproven here: {why}; the tool answered {cell.predicted()}, "
                              f"as the case says it must here")
    elif cell.agreement == "agrees":
        cell.evidence, cell.evidence_note = "proven", None
    elif cell.agreement == "not-refutable":
        cell.evidence = "not-refutable"
        cell.evidence_note = (f"every module imported in {cell.proof}, which cannot refute "
                              f"{', '.join(cell.reasons)}: no evidence either way")
    else:
        cell.evidence = "unproven"
        cell.evidence_note = ("no import: " + (cell.backend_note or "nothing to import")
                              if cell.imported is None or cell.imported == "error" else
                              "the import cannot judge this verdict")
    return cell.evidence


def run_cell(case: Case, target: Target, rule: Rule, *, work: Path, cache_dir: Path,
             lock_dir: Path, choice: BackendChoice, here: Optional[Rule] = None) -> Cell:
    """Build, check and import one cell. ``here``: the case's unproven_here rule for this
    machine; the tool is then held to it instead of ``rule``, and the cell is unproven."""
    started = time.monotonic()
    cell = Cell(case=case.name, target=target.name, runtime=target.runtime, arch=target.arch,
                expected=rule.describe(), expected_verdict=rule.verdict,
                unproven_here=here.describe() if here else None)
    try:
        bundle = build(case, target, work, cache_dir, cell, lock_dir)
        if bundle is not None:
            report = static_check(bundle, target, cell)
            dynamic_check(report, bundle, target, choice, cell)
        else:
            cell.backend_note = "nothing was built"
    except errors.LambdaCompatError as exc:
        cell.verdict = "error"
        cell.reasons = [type(exc).__name__]
        cell.messages = [str(exc)]
    here = rule_held(case, rule, here, cell)
    if here is None:
        cell.unproven_here = None
    cell.problems = judge(case, here or rule, cell)
    classify(cell, here)
    cell.problems += proof_problems(cell, choice.require_proof)
    cell.seconds = round(time.monotonic() - started, 1)
    return cell


def proof_level(cell: Cell) -> str:
    """The proof a cell really got: a stand-in image counts as a stand-in root."""
    if cell.imported not in ("ok", "failed"):
        return "static"
    return "rootfs" if cell.proof == "image" and cell.standin else cell.proof


def proof_problems(cell: Cell, required: Optional[str]) -> List[str]:
    """Under ``--require-proof``: every cell must be proven, by an import at least that
    strong. Unproven cells (nothing imported, nothing built, expected-missing cells too)
    and not-refutable ones fail."""
    if not required or cell.evidence == "refuted":
        return []
    if cell.evidence != "proven":
        return [f"{cell.evidence}, and --require-proof {required} asks for proof: "
                f"{cell.evidence_note}"]
    got = proof_level(cell)
    if PROOFS.index(got) >= PROOFS.index(required):
        return []
    return [f"proof {got} is weaker than the required {required}"
            + (f" ({cell.backend_note})" if cell.backend_note else "")]


def failure_message(case: Case, cell: Cell) -> str:
    lines = [cell.headline(), f"  case file: {case.path}"]
    if cell.unproven_here:
        lines.append(f"  held to the case's unproven_here rule: {cell.unproven_here}")
    lines += [f"  - {p}" for p in cell.problems]
    if cell.messages:
        lines.append("  tool said:")
        lines += [f"    {m}" for m in cell.messages[:6]]
    return "\n".join(lines)


def describe_modules(pairs: Sequence[Tuple[str, str]]) -> str:
    return ", ".join(f"{d}:{m}" for d, m in pairs)


def as_dict(cell: Cell) -> Dict[str, Any]:
    return asdict(cell)
