"""Static proof: judge a bundle's files and metadata against one target's facts.

Per shared object: ELF machine, needed GLIBC_/GLIBCXX_/CXXABI_/GCC_ versions against the
runtime's ceilings, every DT_NEEDED library found in the bundle (DT_RPATH/DT_RUNPATH with
``$ORIGIN``, Lambda's LD_LIBRARY_PATH dirs /var/task, /var/task/lib, /opt/lib, ``*.libs``
folders) or among the image's libraries, and extension module names the target's Python
loads. Per distribution: WHEEL tags, Requires-Python, Requires-Dist whose marker holds on the
target. Per bundle: size limits, layer count, layout. Nothing here reads the host: every
decision comes from the :class:`~lambda_compat.targets.target.Target` and its registry facts.

A :class:`StaticChecker` reads the bundle once (files, metadata, ELF headers) and then checks
any number of targets from that shared view.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Set, Tuple

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import libscan, libscan_memo
from .bundle import OPT, TASK, Bundle, Distribution
from .capabilities import capability_findings
from .libscan_verdict import judge
from .native_check import check_native
from ..targets.target import Target
from ..units import mib

if TYPE_CHECKING:
    from ..registry.packages import PackageRegistry
from .wheels import Finding, check_requires_python

#: Lambda quotas (docs: "Lambda quotas"): 250 MB unzipped for function + layers, 50 MB for a
#: zip uploaded directly (larger ones go through S3), at most 5 layers.
UNZIPPED_LIMIT = 262_144_000
ZIP_LIMIT = 52_428_800
MAX_LAYERS = 5
#: What the Python runtimes ship outside the bundle (registry/runtimes.yaml
#: ``preinstalled.packages``; marked unverified there, versions vary).
PREINSTALLED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil",
                          "six", "urllib3", "awslambdaric"})
_VERSIONED_SITE = re.compile(r"^/opt/python/lib/python(\d+\.\d+)/site-packages$")


@dataclass(frozen=True)
class SizeInfo:
    """Sizes against Lambda's quotas. ``zip_bytes`` is None when no zip was given."""

    unzipped_bytes: int
    zip_bytes: Optional[int]
    layer_zip_bytes: Tuple[Optional[int], ...]
    largest: Tuple[Tuple[str, int], ...]          # (distribution, bytes), biggest first
    unzipped_limit: int = UNZIPPED_LIMIT
    zip_limit: int = ZIP_LIMIT

    def to_json(self) -> dict:
        return {"unzipped_bytes": self.unzipped_bytes, "unzipped_limit": self.unzipped_limit,
                "zip_bytes": self.zip_bytes, "zip_limit": self.zip_limit,
                "layer_zip_bytes": list(self.layer_zip_bytes),
                "largest": [{"distribution": n, "bytes": b} for n, b in self.largest]}


@dataclass(frozen=True)
class DistSummary:
    """A distribution as the target sees it (visible on its sys.path)."""

    name: str
    version: str
    location: str                 # directory holding its .dist-info (Lambda path)
    origin: str                   # "bundle" or "layer N (file)"
    modules: Tuple[str, ...]      # top-level modules the dynamic proof imports
    size: int
    #: visible distributions that depend on this one (any extra): a module of it that refuses
    #: to be imported alone is imported after theirs
    dependents: Tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"name": self.name, "version": self.version, "location": self.location,
                "origin": self.origin, "modules": list(self.modules), "bytes": self.size}


@dataclass(frozen=True)
class StaticReport:
    target: Target
    findings: Tuple[Finding, ...]
    size: SizeInfo
    distributions: Tuple[DistSummary, ...]

    @property
    def ok(self) -> bool:
        """No finding of severity ``error``."""
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> Tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    def modules(self) -> Tuple[Tuple[str, str], ...]:
        """(distribution, module) pairs to import, for a dynamic backend."""
        return tuple((d.name, m) for d in self.distributions for m in d.modules)

    def after(self) -> Dict[str, Tuple[str, ...]]:
        """distribution -> modules of the distributions that depend on it (the ``after`` of
        :meth:`~lambda_compat.prove.backends.results.Backend.import_modules`)."""
        by_name = {d.name: d for d in self.distributions}
        out: Dict[str, Tuple[str, ...]] = {}
        for d in self.distributions:
            mods = tuple(m for dep in d.dependents if dep in by_name
                         for m in by_name[dep].modules if m not in d.modules)
            if mods:
                out[d.name] = mods
        return out


class StaticChecker:
    """Checks one bundle against any number of targets; the bundle is read once."""

    def __init__(self, bundle: Bundle, *, empty_is_error: bool = True,
                 registry_dir: Optional[Path] = None) -> None:
        """``registry_dir``: the package registry to consult (the shipped one when None)."""
        self.bundle = bundle
        self._registry_dir = registry_dir
        self._registry: Optional[Tuple[Optional[PackageRegistry]]] = None  # read on first use
        self._registry_lock = threading.Lock()
        bundle.read_all_elf()
        self._size_parts = self._size_parts_by_group()
        self._lib_index = self._library_index()
        self._common = tuple(self._bundle_findings(empty_is_error))
        self._loads: Optional[Dict[str, List[libscan.LibraryLoad]]] = None
        self._loads_lock = threading.Lock()  # targets are checked in parallel threads

    # -- bundle-wide -----------------------------------------------------------------------
    def _bundle_findings(self, empty_is_error: bool) -> Iterable[Finding]:
        b = self.bundle
        yield from b.findings
        if not b.files and empty_is_error:
            yield Finding("empty-bundle", "(bundle)", None,
                          "The bundle and its layers contain no files at all.",
                          "Check the path; build the bundle first (lambda-compat build).")
        total = b.unzipped_bytes
        if total > UNZIPPED_LIMIT:
            yield Finding(
                "size-limit", "(bundle)", None,
                f"Unzipped, the function and its layers take {mib(total)}; Lambda allows "
                f"{mib(UNZIPPED_LIMIT)} in total. Largest: "
                + ", ".join(f"{n} {mib(b)}" for n, b in self.size_info().largest[:5]) + ".",
                "Remove what the function does not import (tests, docs, other platforms' "
                "files), move heavy dependencies to a container image function, or use "
                "smaller alternatives.")
        zips = [("the deployment zip", b.zip_bytes)] + [
            (label, z) for label, z in zip(b.layer_labels, b.layer_zip_bytes)]
        for label, z in zips:
            if z is not None and z > ZIP_LIMIT:
                yield Finding(
                    "size-limit", "(bundle)", None,
                    f"{label[0].upper() + label[1:]} is {mib(z)}; a direct upload to Lambda is "
                    f"limited to {mib(ZIP_LIMIT)}.",
                    "Upload it through S3 (aws lambda update-function-code --s3-bucket ...), "
                    "which allows up to the 250 MiB unzipped limit.", severity="warning")
        if len(b.layer_dirs) > MAX_LAYERS:
            yield Finding("too-many-layers", "(bundle)", None,
                          f"{len(b.layer_dirs)} layers given; a function can use at most "
                          f"{MAX_LAYERS}.", "Merge layers.")
        for d in b.distributions:
            if d.placement == "misplaced":
                yield Finding(
                    "layout-mismatch", d.name, d.dist_info,
                    f"{d.name} is installed in {d.site}, which is not on sys.path for any "
                    f"Python runtime, so it cannot be imported.",
                    _placement_fix(d.site))
            for problem in d.problems:
                yield Finding("bad-metadata", d.name, d.dist_info,
                              f"{d.dist_info}: {problem}.",
                              f"Reinstall {d.name} with pip.", severity="warning")

    def _size_parts_by_group(self) -> Dict[str, int]:
        sizes: Dict[str, int] = {}
        names = {d.key: d.name for d in self.bundle.distributions}
        for path, f in self.bundle.files.items():
            key = self.bundle.owner.get(path)
            group = names[key] if key else self.bundle.vendored_group(path)
            sizes[group] = sizes.get(group, 0) + f.size
        return sizes

    def _library_index(self) -> Dict[str, List[str]]:
        """File name -> directories (Lambda paths) holding a file of that name."""
        index: Dict[str, List[str]] = {}
        for path in self.bundle.files:
            if "so" in path:
                d, _, name = path.rpartition("/")
                index.setdefault(name, []).append(d)
        return index

    def size_info(self) -> SizeInfo:
        b = self.bundle
        largest = sorted(self._size_parts.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
        return SizeInfo(unzipped_bytes=b.unzipped_bytes, zip_bytes=b.zip_bytes,
                        layer_zip_bytes=b.layer_zip_bytes, largest=tuple(largest))

    # -- one target ------------------------------------------------------------------------
    def check(self, target: Target) -> StaticReport:
        findings: List[Finding] = list(self._common)
        visible, hidden_dirs, f_layout = self._visible(target)
        findings += f_layout
        for d in visible.values():
            findings += self._check_dist(d, target)
        findings += self._check_requirements(visible, target)
        findings += capability_findings(visible.values(), target, self.package_registry)
        findings += check_native(self.bundle, self._lib_index, target, hidden_dirs)
        findings += self._check_library_loads(visible, target)
        dependents = _dependents(visible, target)
        dists = tuple(DistSummary(d.name, d.version, d.site, d.origin, d.modules, d.size,
                                  dependents.get(d.key, ()))
                      for d in sorted(visible.values(), key=lambda d: d.key))
        return StaticReport(target=target, findings=tuple(_dedupe(findings)),
                            size=self.size_info(), distributions=dists)

    def _visible(self, target: Target):
        """Distributions on the target's sys.path (first one wins), hidden site dirs."""
        sites = _task_sites(target)
        by_site: Dict[str, List[Distribution]] = {}
        for d in self.bundle.distributions:
            if d.placement == "site":
                by_site.setdefault(d.site, []).append(d)
        visible: Dict[str, Distribution] = {}
        findings: List[Finding] = []
        for s in sites:
            for d in by_site.get(s, ()):
                first = visible.get(d.key)
                if first is None:
                    visible[d.key] = d
                elif first.site != d.site:
                    findings.append(Finding(
                        "shadowed-distribution", d.name, d.dist_info,
                        f"{d.name} {d.version} in {d.site} is hidden by {first.name} "
                        f"{first.version} in {first.site}, which comes first on sys.path.",
                        "Keep one copy (usually the one in the function's bundle).",
                        severity="warning"))
        hidden = sorted(s for s in by_site if s not in sites)
        for s in hidden:
            m = _VERSIONED_SITE.match(s)
            for d in by_site[s]:
                if d.key in visible:
                    continue
                findings.append(Finding(
                    "layout-mismatch", d.name, d.dist_info,
                    f"{d.name} is in {s}, which is on sys.path only for python"
                    f"{m.group(1) if m else '?'}, so this runtime cannot import it.",
                    f"Install it under python/ in the layer (every runtime) or under "
                    f"python/lib/python{target.python_version[0]}.{target.python_version[1]}"
                    f"/site-packages/ for this runtime."))
        return visible, tuple(hidden), findings

    def _check_dist(self, d: Distribution, target: Target) -> List[Finding]:
        out: List[Finding] = []
        vouched = (self._registry_vouches(d, target)
                   if d.tags and not target.accepts_wheel_tags(d.tags) else None)
        if vouched is not None:
            entry, version = vouched
            tags = ", ".join(sorted({str(t) for t in d.tags}))
            out.append(Finding(
                "registry-vouched", d.name, d.dist_info + "/WHEEL",
                f"{d.name} {d.version} was installed from a wheel tagged {tags}, which this "
                f"target does not accept by its tag; it holds no native code and registry "
                f"entry {entry.label} ({entry.kind}; registry {version}) vouches that it "
                f"runs here.",
                f"Nothing needed; to rely on no registry entry, build {d.name} for the target "
                f"(lambda-compat build --runtime ... --arch ...).", severity="warning"))
        elif d.tags and not target.accepts_wheel_tags(d.tags):
            tags = ", ".join(sorted({str(t) for t in d.tags}))
            out.append(Finding(
                "incompatible-tags", d.name, d.dist_info + "/WHEEL",
                f"{d.name} {d.version} was installed from a wheel tagged {tags}, which this "
                f"target does not accept.",
                f"Reinstall {d.name} for each target it runs on (lambda-compat build "
                f"--runtime ... --arch ...)."))
        out += check_requires_python(d.name, d.requires_python, target,
                                     file=d.dist_info + "/METADATA")
        return out

    def package_registry(self) -> Optional[PackageRegistry]:
        """The package registry at ``registry_dir`` (the shipped one when None), read on first
        use; None when it does not load (the findings that need it are then not made)."""
        with self._registry_lock:
            if self._registry is None:
                from .. import errors
                from ..registry.packages import load_packages
                try:
                    self._registry = (load_packages(self._registry_dir),)
                except errors.LambdaCompatError:
                    self._registry = (None,)
            return self._registry[0]

    def _registry_vouches(self, d: Distribution, target: Target):
        """(entry, registry version) if the package registry vouches for ``d`` on ``target``:
        an entry matches name, version and target, the tag is only wrong in its platform,
        and none of the distribution's files is native code."""
        from ..registry.package_entry import tags_fit_except_platform
        registry = self.package_registry()
        if registry is None:
            return None
        entry = registry.find(d.name, d.version, target)
        if entry is None or not tags_fit_except_platform(d.tags, target):
            return None
        native = {f.path for f in self.bundle.native_files}
        if any(path in native for path in d.files):
            return None
        return entry, registry.version

    def _check_requirements(self, visible: Dict[str, Distribution],
                            target: Target) -> List[Finding]:
        env = dict(target.marker_environment())
        preinstalled = set(getattr(target.facts, "preinstalled", None) or PREINSTALLED)
        wanted: Dict[str, Set[str]] = {k: {""} for k in visible}
        done: Dict[str, Set[str]] = {k: set() for k in visible}
        findings: Dict[Tuple[str, str], Finding] = {}
        queue = sorted(visible)
        while queue:
            key = queue.pop()
            d = visible[key]
            for extra in sorted(wanted[key] - done[key]):
                done[key].add(extra)
                for req in d.requires_dist:
                    if req.marker is not None and not req.marker.evaluate({**env,
                                                                           "extra": extra}):
                        continue
                    dep_key = canonicalize_name(req.name)
                    dep = visible.get(dep_key)
                    if dep is None:
                        findings.setdefault((key, dep_key), self._missing(
                            d, req, extra, dep_key in preinstalled, target))
                        continue
                    if not _satisfies(req, dep.version):
                        findings.setdefault((key, dep_key), Finding(
                            "missing-dependency", d.name, d.dist_info + "/METADATA",
                            f"{d.name} requires {_req_text(req)}, but the bundle has {dep.name} "
                            f"{dep.version}.",
                            f"Reinstall the whole set together so that pip resolves one "
                            f"consistent version of {dep.name}."))
                    new = set(req.extras) - wanted[dep_key]
                    if new:
                        wanted[dep_key] |= new
                        queue.append(dep_key)
        return list(findings.values())

    @staticmethod
    def _missing(d: Distribution, req: Requirement, extra: str, preinstalled: bool,
                 target: Target) -> Finding:
        via = f" (extra [{extra}])" if extra else ""
        if preinstalled:
            return Finding(
                "missing-dependency", d.name, d.dist_info + "/METADATA",
                f"{d.name}{via} requires {_req_text(req)}, which is not in the bundle; the runtime's own "
                f"copy (outside the bundle, version chosen by AWS) will be imported instead.",
                f"Add {req.name} to the requirements so the function does not depend on the "
                f"runtime's copy.", severity="warning")
        return Finding(
            "missing-dependency", d.name, d.dist_info + "/METADATA",
            f"{d.name}{via} requires {_req_text(req)}, which is not in the bundle (or not on sys.path "
            f"for this runtime).",
            f"Install {req.name} into the bundle with the rest (lambda-compat build resolves "
            f"the whole closure for the target).")

    # -- libraries loaded from Python (ctypes, cffi) ---------------------------------------
    def library_loads(self) -> Dict[str, List[libscan.LibraryLoad]]:
        """distribution key -> the libraries its code loads at import (read once)."""
        with self._loads_lock:
            if self._loads is None:
                self._loads = self._scan_library_loads()
        return self._loads

    def _scan_library_loads(self) -> Dict[str, List[libscan.LibraryLoad]]:
        by_site: Dict[str, Dict[str, str]] = {}
        for path, f in self.bundle.files.items():
            if path.endswith(".py") and f.link is None:
                by_site.setdefault(path.rpartition("/")[0], {})[path] = f.real
        loads: Dict[str, List[libscan.LibraryLoad]] = {}
        for d in self.bundle.distributions:
            if d.placement != "site" or not d.modules:
                continue
            # the distribution's own modules: other distributions are scanned from theirs
            tops = tuple(f"{d.site}/{m}" for m in d.modules)
            own = {p: r for directory, files in by_site.items()
                   if directory in tops or directory.startswith(tuple(t + "/" for t in tops))
                   or directory == d.site
                   for p, r in files.items()
                   if directory != d.site or p[:-3] in tops}
            loads[d.key] = libscan_memo.scan_distribution(d.site, d.modules, own)
        return loads

    def _check_library_loads(self, visible: Dict[str, Distribution],
                             target: Target) -> List[Finding]:
        if target.facts is None:
            return []
        loads = self.library_loads()
        out: List[Finding] = []
        for key, d in sorted(visible.items()):
            if loads.get(key):
                out += judge(d.name, loads[key], target.facts, set(self._lib_index))
        return out



# --------------------------------------------------------------------------- helpers

_EXTRA_IN_MARKER = re.compile(r"""\bextra\s*==\s*['"]([^'"]+)['"]""")


def _dependents(visible: Dict[str, Distribution], target: Target) -> Dict[str, Tuple[str, ...]]:
    """canonical name -> names of the visible distributions that require it, under any of
    their extras (the bundle does not record which extras were asked for)."""
    env = dict(target.marker_environment())
    out: Dict[str, Set[str]] = {}
    for key, d in visible.items():
        extras = {""} | {e for r in d.requires_dist if r.marker is not None
                         for e in _EXTRA_IN_MARKER.findall(str(r.marker))}
        for req in d.requires_dist:
            dep = canonicalize_name(req.name)
            if dep == key or dep not in visible:
                continue
            if req.marker is not None and not any(
                    req.marker.evaluate({**env, "extra": e}) for e in sorted(extras)):
                continue
            out.setdefault(dep, set()).add(d.name)
    return {k: tuple(sorted(v)) for k, v in out.items()}

def _dedupe(findings: Iterable[Finding]) -> List[Finding]:
    seen = set()
    out = []
    for f in findings:
        k = (f.code, f.distribution, f.file, f.message)
        if k not in seen:
            seen.add(k)
            out.append(f)
    return out


def _task_sites(target: Target) -> List[str]:
    """The bundle's and layers' directories on the target's sys.path, in order."""
    version = f"{target.python_version[0]}.{target.python_version[1]}"
    default = [TASK, f"/opt/python/lib/python{version}/site-packages", "/opt/python"]
    facts = target.facts
    if facts is None:
        return default
    sites = [p.rstrip("/") for p in facts.sys_path if p.startswith((TASK, OPT))]
    return sites or default


def _req_text(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def _satisfies(req: Requirement, version: str) -> bool:
    if not req.specifier:
        return True
    try:
        return req.specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True  # cannot tell; not claimed as a problem


def _placement_fix(site: str) -> str:
    if site.startswith("/var/task/python"):
        return ("This looks like a layer zip used as the function's code: publish it as a "
                "layer, or zip the content of python/ instead.")
    if site.startswith(OPT):
        return ("Put the layer's packages under python/ (or python/lib/pythonX.Y/"
                "site-packages/) inside the layer zip.")
    return ("Zip the content of the folder, not the folder itself (cd folder && zip -r "
            "../function.zip .).")
