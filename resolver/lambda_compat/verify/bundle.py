"""A read-only view of what a Lambda function gets: its bundle at /var/task, its layers at /opt.

Inputs are a bundle directory or deployment ``.zip`` and any number of layers (directories or
``.zip`` files, in order). Zips are extracted into a temporary directory; entries that would
land outside it (absolute paths, ``..``, symlinks pointing outside) are not extracted and become
``unsafe-path`` findings; a corrupt zip is a :class:`~lambda_compat.errors.BadInput` naming the
file. Directories are only read, never written.

Every file is keyed by the path it has on Lambda (``/var/task/numpy/__init__.py``,
``/opt/python/yaml/__init__.py``); later layers replace earlier layers' files, as Lambda
extracts them in order into /opt. Distributions are read from ``*.dist-info`` (METADATA,
WHEEL, RECORD, top_level.txt); files no RECORD claims are "vendored" and grouped by their
top-level name. ELF facts of shared objects are read once per file and shared by every target.
"""

from __future__ import annotations

import csv
import functools
import email.parser
import io
import os
import posixpath
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from packaging.requirements import InvalidRequirement, Requirement
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name

from . import elf
from .. import errors
from .wheels import Finding
from .zips import Opened, Workspace, open_input

TASK = "/var/task"
OPT = "/opt"
#: Files the ELF checks read: shared objects by name (``x.so``, ``libfoo.so.1.2``).
NATIVE_NAME = re.compile(r"\.so(\.[0-9]+)*$")
_SITE_VERSIONED = re.compile(r"^/opt/python/lib/python(\d+)\.(\d+)/site-packages$")
#: Top-level names in a RECORD that are not importable modules.
_NOT_MODULES = {"__pycache__", "bin", "test", "tests", "..", "."}


@dataclass(frozen=True)
class FileEntry:
    """One file of the function's file system."""

    path: str                    # where Lambda sees it: /var/task/... or /opt/...
    real: str                    # where it is on this machine
    size: int
    origin: str                  # "bundle" or the layer's label
    link: Optional[str] = None   # symlink target (inside the root), else None


@dataclass(frozen=True)
class Distribution:
    """An installed distribution (one ``*.dist-info`` directory)."""

    name: str
    key: str                         # canonical name
    version: str
    site: str                        # the directory holding the .dist-info (Lambda path)
    dist_info: str                   # Lambda path of the .dist-info directory
    origin: str
    placement: str                   # "site" or "misplaced" (see :func:`placement`)
    requires_python: Optional[str]
    requires_dist: Tuple[Requirement, ...]
    tags: Tuple[Tag, ...]            # from WHEEL (empty when WHEEL is missing)
    has_record: bool
    has_wheel: bool
    files: Tuple[str, ...]           # Lambda paths RECORD names (existing ones)
    modules: Tuple[str, ...]         # top-level modules to import
    size: int                        # bytes of its files
    problems: Tuple[str, ...] = ()   # unreadable metadata, bad Requires-Dist lines ...


@dataclass
class Bundle:
    """Everything one check reads, built by :func:`load`. Treat as read-only."""

    files: Dict[str, FileEntry]
    distributions: Tuple[Distribution, ...]
    #: Lambda path -> owning distribution key (files no RECORD claims are absent).
    owner: Dict[str, str]
    findings: Tuple[Finding, ...]                    # input problems (unsafe paths, no RECORD)
    task_dir: Optional[Path]
    layer_dirs: Tuple[Path, ...]
    layer_labels: Tuple[str, ...]
    zip_bytes: Optional[int] = None                  # deployment zip size, when one was given
    layer_zip_bytes: Tuple[Optional[int], ...] = ()
    source: str = ""
    _elf: Dict[str, Union[elf.ELFInfo, errors.ELFError]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- derived views -------------------------------------------------------------------
    @property
    def unzipped_bytes(self) -> int:
        return sum(f.size for f in self.files.values())

    @property
    def native_files(self) -> List[FileEntry]:
        return [f for p, f in sorted(self.files.items()) if NATIVE_NAME.search(p)]

    def dist(self, key: str) -> Optional[Distribution]:
        for d in self.distributions:
            if d.key == key:
                return d
        return None

    def elf(self, path: str) -> Union[elf.ELFInfo, errors.ELFError]:
        """ELF facts of the file at Lambda path ``path`` (read once, then shared)."""
        cached = self._elf.get(path)
        if cached is not None:
            return cached
        entry = self.files[path]
        try:
            info: Union[elf.ELFInfo, errors.ELFError] = elf.read_elf(entry.real)
        except errors.ELFError as exc:
            info = exc
        except OSError as exc:
            info = errors.ELFError(path, f"cannot be read ({exc.strerror or exc})")
        with self._lock:
            self._elf[path] = info
        return info

    def read_all_elf(self, jobs: int = 4) -> None:
        """Read the ELF facts of every shared object now (in parallel)."""
        paths = [f.path for f in self.native_files if f.path not in self._elf]
        if len(paths) < 32 or jobs <= 1:
            for p in paths:
                self.elf(p)
            return
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(self.elf, paths))

    def site_dirs(self) -> List[str]:
        """Every directory holding a ``*.dist-info`` (Lambda paths), sorted."""
        return sorted({d.site for d in self.distributions})

    def vendored_group(self, path: str) -> str:
        """The name under which a file no distribution owns is reported."""
        for root in (f"{OPT}/python/lib/", f"{OPT}/python/", f"{TASK}/", f"{OPT}/"):
            if path.startswith(root):
                rest = path[len(root):]
                if root == f"{OPT}/python/lib/":
                    m = re.match(r"python\d+\.\d+/site-packages/(.*)$", rest)
                    if m:
                        rest = m.group(1)
                    else:
                        continue
                top = rest.split("/", 1)[0]
                top = re.sub(r"\..*$", "", top) if "/" not in rest else top
                return f"{top} (no dist-info)"
        return f"{path} (no dist-info)"


# --------------------------------------------------------------------------- loading

def _walk(root: Path, prefix: str, origin: str, files: Dict[str, FileEntry],
          findings: List[Finding], input_label: str) -> None:
    """Add every file under ``root`` to ``files`` as ``prefix/<relative path>``."""
    root_real = os.path.realpath(root)
    stack = [(os.fspath(root), prefix)]
    while stack:
        real_dir, lambda_dir = stack.pop()
        try:
            entries = list(os.scandir(real_dir))
        except OSError:
            continue
        for de in entries:
            lpath = f"{lambda_dir}/{de.name}"
            try:
                if de.is_symlink():
                    _check_link(de.path, root_real, lpath, origin, files, findings, input_label)
                elif de.is_dir(follow_symlinks=False):
                    stack.append((de.path, lpath))
                elif de.is_file(follow_symlinks=False):
                    files[lpath] = FileEntry(lpath, de.path, de.stat(follow_symlinks=False).st_size,
                                             origin)
            except OSError:
                continue


def _check_link(real: str, root: str, lpath: str, origin: str, files: Dict[str, FileEntry],
                findings: List[Finding], label: str) -> None:
    link = os.readlink(real)
    resolved = os.path.realpath(real)
    inside = resolved == root or resolved.startswith(root + os.sep)
    if not inside or link.startswith("/"):
        findings.append(Finding(
            "unsafe-path", f"({label})", lpath,
            f"{lpath} is a symbolic link to {link!r}, outside the {label}; on Lambda it "
            f"dangles (or, if the zip tool follows it, takes a copy from the build machine).",
            "Replace the link with the file itself, or point it at a file inside the bundle.",
            severity="warning"))
        return
    if os.path.isfile(resolved):
        files[lpath] = FileEntry(lpath, resolved, 0, origin, link=link)


def load(task: Union[None, Path, Opened], layers: Sequence[Union[Path, Opened]] = (), *,
         workspace: Optional[Workspace] = None) -> Bundle:
    """Read a bundle (directory or zip) and its layers (directories or zips, in order).

    Zips are extracted into ``workspace`` (required when any input is a zip); already opened
    inputs (:func:`~lambda_compat.verify.zips.open_input`) are used as they are, so layers shared by several bundles
    are extracted once. Raises BadInput for a missing input or a corrupt zip.
    """
    files: Dict[str, FileEntry] = {}
    findings: List[Finding] = []
    zip_bytes: Optional[int] = None
    task_dir: Optional[Path] = None
    source = ""
    if task is not None:
        opened = task if isinstance(task, Opened) else open_input(Path(task), "bundle",
                                                                   workspace)
        findings += opened.findings
        task_dir, zip_bytes, source = opened.directory, opened.zip_bytes, str(opened.path)
        _walk(task_dir, TASK, "bundle", files, findings, "bundle")
    layer_dirs: List[Path] = []
    labels: List[str] = []
    layer_zip: List[Optional[int]] = []
    for i, layer in enumerate(layers, 1):
        label = f"layer {i} ({Path(layer.path if isinstance(layer, Opened) else layer).name})"
        opened = layer if isinstance(layer, Opened) else open_input(Path(layer), label,
                                                                    workspace)
        findings += opened.findings
        layer_dirs.append(opened.directory)
        labels.append(label)
        layer_zip.append(opened.zip_bytes)
        # Later layers overwrite earlier ones in /opt, file by file.
        _walk(opened.directory, OPT, label, files, findings, label)
    distributions, owner, found = _read_distributions(files)
    findings += found
    return Bundle(files=files, distributions=tuple(distributions), owner=owner,
                  findings=tuple(findings), task_dir=task_dir, layer_dirs=tuple(layer_dirs),
                  layer_labels=tuple(labels), zip_bytes=zip_bytes,
                  layer_zip_bytes=tuple(layer_zip), source=source)


# --------------------------------------------------------------------------- distributions

def placement(site: str, children: Dict[str, set]) -> Optional[str]:
    """Where a ``*.dist-info`` directory sits: ``"site"`` (on some target's sys.path),
    ``"misplaced"`` (a classic packaging mistake: not on sys.path for any runtime), or None
    (metadata nested inside a package, e.g. setuptools/_vendor: not a distribution)."""
    if site in (TASK, f"{OPT}/python") or _SITE_VERSIONED.match(site):
        return "site"
    if site == OPT:
        return "misplaced"
    if re.fullmatch(r"/opt/python/lib/python\d+\.\d+", site):
        return "misplaced"
    if re.fullmatch(r"/var/task/python(/lib/python\d+\.\d+/site-packages)?", site):
        return "misplaced"     # a layer zip used as the function's bundle
    m = re.fullmatch(r"(/var/task|/opt|/opt/python)/([^/]+)", site)
    if m and "__init__.py" not in children.get(site, set()):
        return "misplaced"     # the folder was zipped, not its content
    return None


def _read_distributions(files: Dict[str, FileEntry]):
    dist_infos: Dict[str, str] = {}     # dist-info dir -> origin of its files
    for p, entry in files.items():
        i = p.find(".dist-info/")
        if i >= 0:
            dist_infos.setdefault(p[:i + len(".dist-info")], entry.origin)
    dists: List[Distribution] = []
    owner: Dict[str, str] = {}
    findings: List[Finding] = []
    children = _children(files)
    for d in sorted(dist_infos):
        where = placement(d.rsplit("/", 1)[0], children)
        if where is None:
            continue
        dist = _read_dist(d, files, children, where, dist_infos[d])
        dists.append(dist)
        if not dist.has_record:
            findings.append(Finding(
                "no-record", dist.name, d + "/",
                f"{d}/ has no RECORD, so the files of {dist.name} are not known; its modules "
                f"are guessed from top_level.txt or its name.",
                "Install with pip (pip install --target) rather than copying directories; "
                "pip writes RECORD.", severity="warning"))
        for p in dist.files:
            owner.setdefault(p, dist.key)
    return dists, owner, findings


def _children(files: Dict[str, FileEntry]) -> Dict[str, set]:
    out: Dict[str, set] = {}
    for p in files:
        parent, _, name = p.rpartition("/")
        while parent:
            s = out.setdefault(parent, set())
            if name in s:
                break
            s.add(name)
            parent, _, name = parent.rpartition("/")
    return out


def _read_text(files: Dict[str, FileEntry], path: str) -> Optional[str]:
    entry = files.get(path)
    if entry is None:
        return None
    try:
        with open(entry.real, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


@functools.lru_cache(maxsize=4096)
def _requirement(line: str) -> Requirement:
    """A Requires-Dist line, parsed once per process (each target's bundle has the same
    METADATA files; nothing changes a parsed Requirement)."""
    return Requirement(line)


def _read_dist(dist_info: str, files: Dict[str, FileEntry],
               children: Dict[str, set], where: str, origin: str) -> Distribution:
    site = dist_info.rsplit("/", 1)[0]
    base = dist_info.rsplit("/", 1)[1][: -len(".dist-info")]
    problems: List[str] = []
    meta_text = _read_text(files, dist_info + "/METADATA")
    meta = _headers(meta_text or "")
    if meta_text is None:
        problems.append("METADATA is missing")
    guess_name, _, guess_version = base.partition("-")
    name = meta.get("Name") or guess_name
    version = meta.get("Version") or guess_version or "?"
    reqs: List[Requirement] = []
    for line in meta.get_all("Requires-Dist") or []:
        try:
            reqs.append(_requirement(line))
        except InvalidRequirement:
            problems.append(f"invalid Requires-Dist {line!r}")
    wheel_text = _read_text(files, dist_info + "/WHEEL")
    tags: List[Tag] = []
    if wheel_text is not None:
        wmeta = _headers(wheel_text)
        for line in wmeta.get_all("Tag") or []:
            try:
                tags.extend(parse_tag(line.strip()))
            except ValueError:
                problems.append(f"invalid WHEEL tag {line!r}")
    record_text = _read_text(files, dist_info + "/RECORD")
    owned: List[str] = []
    rel: List[str] = []
    if record_text is not None:
        for row in csv.reader(io.StringIO(record_text)):
            if not row or not row[0]:
                continue
            r = row[0]
            full = f"{site}/{r}"
            if "./" in r or r.startswith("/") or "//" in r:
                full = posixpath.normpath(posixpath.join(site, r))
            if full in files:
                owned.append(full)
            if not r.startswith("../") and not r.startswith("/"):
                rel.append(r)
    else:
        owned = [p for p in files if p.startswith(dist_info + "/")]
    size = sum(files[p].size for p in set(owned))
    if record_text is not None:
        modules = _modules_from_record(rel)
    else:
        top = _read_text(files, dist_info + "/top_level.txt")
        modules = tuple(sorted({m.strip().replace("/", ".") for m in (top or "").splitlines()
                                if m.strip() and m.strip() not in _NOT_MODULES}))
        if not modules:
            guess = canonicalize_name(name).replace("-", "_")
            if guess in children.get(site, set()) or f"{guess}.py" in children.get(site, set()):
                modules = (guess,)
    if record_text is not None and not modules:
        top = _read_text(files, dist_info + "/top_level.txt")
        modules = tuple(sorted({m.strip().replace("/", ".") for m in (top or "").splitlines()
                                if m.strip().isidentifier() and m.strip() not in _NOT_MODULES
                                and _exists_module(site, m.strip(), children)}))
    return Distribution(
        name=name, key=canonicalize_name(name), version=version, site=site,
        dist_info=dist_info, placement=where,
        origin=origin,
        requires_python=meta.get("Requires-Python"), requires_dist=tuple(reqs),
        tags=tuple(tags), has_record=record_text is not None, has_wheel=wheel_text is not None,
        files=tuple(sorted(set(owned))), modules=modules, size=size, problems=tuple(problems))


def _headers(text: str):
    """The header block of a METADATA/WHEEL file (the long description is not parsed)."""
    cut = text.find("\n\n")
    return email.parser.Parser().parsestr(text if cut < 0 else text[:cut + 1], headersonly=True)


def _exists_module(site: str, name: str, children: Dict[str, set]) -> bool:
    here = children.get(site, set())
    return name in here or f"{name}.py" in here or any(
        c.startswith(name + ".") and c.endswith(".so") for c in here)


_EXT_MODULE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(\.[A-Za-z0-9_-]+)?\.so$")


def _module_name(filename: str) -> Optional[str]:
    """``x.py`` -> ``x``; ``_x.cpython-312-x86_64-linux-gnu.so``/``_x.abi3.so``/``_x.so`` -> ``_x``."""
    if filename.endswith(".py"):
        stem = filename[:-3]
        return stem if stem.isidentifier() else None
    m = _EXT_MODULE.match(filename)
    return m.group(1) if m else None


def _modules_from_record(paths: Iterable[str]) -> Tuple[str, ...]:
    """Top-level importable names from RECORD paths (relative to the site directory).

    A directory with ``__init__.py`` is a package; a directory without one is a namespace
    package, for which the packages one level down are imported instead (``google.protobuf``
    rather than ``google``).
    """
    tops: Dict[str, set] = {}
    modules = set()
    for p in paths:
        parts = p.split("/")
        if len(parts) == 1:
            m = _module_name(parts[0])
            if m and m not in _NOT_MODULES:
                modules.add(m)
            continue
        top = parts[0]
        if (top in _NOT_MODULES or not top.isidentifier() or top.endswith(".libs")):
            continue
        tops.setdefault(top, set()).add("/".join(parts[1:]))
    for top, rest in tops.items():
        if "__init__.py" in rest or any(r.startswith("__init__.") and r.endswith(".so")
                                        for r in rest):
            modules.add(top)
            continue
        sub = _modules_from_record(rest)
        modules.update(f"{top}.{s}" for s in sub)
    return tuple(sorted(modules))


def requirement_key(req: Requirement) -> str:
    return canonicalize_name(req.name)
