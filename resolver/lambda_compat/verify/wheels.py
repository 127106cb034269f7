"""Read wheels (metadata, tags, native files) and judge them against a target."""

from __future__ import annotations

import email.parser
import functools
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Mapping, Optional, Tuple

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.tags import Tag, parse_tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from . import elf, zipread
from ..errors import ELFError, WheelError
from ..targets.target import Target

_NATIVE = re.compile(r"\.so(\.[0-9]+)*$")


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) about a distribution on a target."""

    code: str            # stable reason code: wrong-arch, glibc-too-new, ...
    distribution: str
    file: Optional[str]
    message: str
    fix: str
    severity: str = "error"   # "error": will not work; "warning": may not work

    def to_json(self) -> dict:
        return {"code": self.code, "distribution": self.distribution, "file": self.file,
                "message": self.message, "fix": self.fix, "severity": self.severity}


@dataclass(frozen=True)
class WheelInfo:
    path: Path
    name: str
    version: str
    tags: Tuple[Tag, ...]
    root_is_purelib: bool
    requires_python: Optional[str]
    requires_dist: Tuple[str, ...]
    native_files: Tuple[str, ...]
    dist_info: str

    @property
    def is_pure(self) -> bool:
        return not self.native_files and all(t.platform == "any" for t in self.tags)


@functools.lru_cache(maxsize=4096)
def read_wheel_known(path: Path, sha256: str) -> WheelInfo:
    """:func:`read_wheel` of a file whose content is known by its ``sha256`` (a file of the
    content-addressed cache), read once per process: each target of a check reads the same
    wheels."""
    return read_wheel(path)


def read_wheel(path: Path) -> WheelInfo:
    try:
        name, version, _build, tags = parse_wheel_filename(path.name)
    except InvalidWheelFilename as exc:
        raise WheelError(f"{path.name}: not a valid wheel file name ({exc})") from None
    try:
        infos = {i.filename: i for i in zipread.entries(path)}
        names = list(infos)
        dist_infos = {n.split("/", 1)[0] for n in names
                      if n.split("/", 1)[0].endswith(".dist-info") and "/" in n}
        if len(dist_infos) != 1:
            raise WheelError(f"{path.name}: expected one .dist-info directory, "
                             f"found {sorted(dist_infos) or 'none'}")
        dist_info = dist_infos.pop()
        with open(path, "rb") as raw:
            meta = email.parser.Parser().parsestr(zipread.member_bytes(
                raw.fileno(), path, infos[f"{dist_info}/METADATA"]).decode("utf-8", "replace"))
            wheel_meta = email.parser.Parser().parsestr(zipread.member_bytes(
                raw.fileno(), path, infos[f"{dist_info}/WHEEL"]).decode("utf-8", "replace"))
    except zipfile.BadZipFile as exc:
        raise WheelError(f"{path.name}: not a valid zip archive ({exc})") from None
    except KeyError as exc:
        raise WheelError(f"{path.name}: missing {exc.args[0]}") from None
    wheel_tags = tuple(t for line in wheel_meta.get_all("Tag") or [] for t in parse_tag(line))
    native = tuple(n for n in names if _NATIVE.search(n) and not n.endswith("/"))
    return WheelInfo(
        path=path, name=meta.get("Name") or str(name), version=meta.get("Version") or str(version),
        tags=tuple(tags) if tags else wheel_tags,
        root_is_purelib=(wheel_meta.get("Root-Is-Purelib", "true").strip().lower() == "true"),
        requires_python=meta.get("Requires-Python"),
        requires_dist=tuple(meta.get_all("Requires-Dist") or ()),
        native_files=native, dist_info=dist_info,
    )


def _vstr(v: Tuple[int, ...]) -> str:
    return ".".join(map(str, v))


def check_requires_python(dist: str, requires_python: Optional[str], target: Target,
                          file: Optional[str] = None) -> List[Finding]:
    if not requires_python:
        return []
    try:
        spec = SpecifierSet(requires_python)
    except InvalidSpecifier:
        return []
    if spec.contains(Version(target.python_full_version), prereleases=True):
        return []
    return [Finding("requires-python", dist, file,
                    f"{dist} declares Requires-Python {requires_python}; {target.runtime} is "
                    f"Python {target.python_full_version}.",
                    f"Pin a version of {dist} that supports Python "
                    f"{target.python_version[0]}.{target.python_version[1]}.")]


def check_tags(info: WheelInfo, target: Target) -> List[Finding]:
    if target.accepts_wheel_tags(info.tags):
        return []
    tags = ", ".join(sorted({str(t) for t in info.tags}))
    return [Finding("incompatible-tags", info.name, info.path.name,
                    f"{info.path.name} is tagged {tags}; none of these is accepted by "
                    f"{target.name} (CPython {target.python_version[0]}.{target.python_version[1]},"
                    f" glibc {_vstr(target.glibc)}, {target.machine}).",
                    "Use a version that publishes a wheel for the target, or build it for the "
                    "target.")]


def _ext_suffix_ok(filename: str, target: Target) -> Optional[str]:
    """None if an extension module name can be loaded by the target; else the reason."""
    base = os.path.basename(filename)
    m = re.search(r"\.(cpython-(\d)(\d+)[a-z]*-([a-z0-9_]+)-linux-gnu)\.so$", base)
    if m:
        major, minor, machine = int(m.group(2)), int(m.group(3)), m.group(4)
        if (major, minor) != tuple(target.python_version):
            return f"built for CPython {major}.{minor}"
        if machine != target.machine:
            return f"named for {machine}"
    return None


def check_native_files(dist: str, files: List[Tuple[str, Path]], target: Target) -> List[Finding]:
    """ELF facts of ``files`` ((name in bundle, path on disk)) against the target's facts."""
    findings: List[Finding] = []
    facts = target.facts
    provided = set()
    for name, _ in files:
        provided.add(os.path.basename(name))
    for name, path in files:
        reason = _ext_suffix_ok(name, target)
        if reason:
            findings.append(Finding(
                "python-abi-mismatch", dist, name,
                f"{name} is an extension module {reason}; {target.runtime} on {target.machine} "
                f"will not load it.", f"Use a wheel of {dist} built for {target.interpreter}."))
        try:
            info = elf.read_elf(str(path))
        except ELFError as exc:
            findings.append(Finding("not-elf", dist, name, f"{name}: {exc}",
                                    "Reinstall the distribution; the file is damaged.",
                                    severity="warning"))
            continue
        if info.load_problem:
            findings.append(Finding("not-loadable", dist, name,
                                    f"{name}: the dynamic loader refuses it: "
                                    f"{info.load_problem}.",
                                    "Rebuild or reinstall the distribution; the file is "
                                    "damaged.", severity="error"))
            continue
        if info.machine != target.machine:
            findings.append(Finding(
                "wrong-arch", dist, name,
                f"{name} is {info.machine} code; {target.name} runs {target.machine}.",
                f"Use a wheel of {dist} for {target.machine} (arch {target.arch})."))
            continue
        glibc = info.max_version("GLIBC_")
        if glibc and tuple(glibc[:2]) > tuple(target.glibc):
            findings.append(Finding(
                "glibc-too-new", dist, name,
                f"{name} needs GLIBC_{_vstr(glibc)}; {target.runtime} has glibc "
                f"{_vstr(target.glibc)}.",
                f"Use a wheel of {dist} tagged manylinux_2_{target.glibc[1]} or older."))
        if facts is not None:
            for prefix, ceiling, code in (("GLIBCXX_", facts.glibcxx_max, "libstdcxx-too-new"),
                                          ("CXXABI_", facts.cxxabi_max, "libstdcxx-too-new"),
                                          ("GCC_", facts.gcc_max, "libgcc-too-new")):
                need = info.max_version(prefix)
                if need and ceiling and tuple(need) > tuple(ceiling):
                    findings.append(Finding(
                        code, dist, name,
                        f"{name} needs {prefix}{_vstr(need)}; the {target.runtime} image "
                        f"provides up to {prefix}{_vstr(ceiling)}.",
                        f"Use a manylinux wheel of {dist} (it bundles its C++ runtime) or "
                        f"build with an older toolchain."))
            for lib in info.needed:
                if lib in provided or lib in facts.sonames or lib.startswith("libpython"):
                    continue
                findings.append(Finding(
                    "missing-system-library", dist, name,
                    f"{name} needs {lib}, which the {target.runtime} image does not provide "
                    f"and the bundle does not contain.",
                    f"Ship {lib} with the function (a layer or the bundle's lib/ directory), or "
                    f"use a wheel that bundles it (for psycopg2: psycopg2-binary).",
                    severity="error"))
    return findings


def verify_wheel(info: WheelInfo, target: Target, *, check_tag: bool = True,
                 on_disk: Optional[Mapping[str, Path]] = None) -> List[Finding]:
    """Tags, Requires-Python and every native file of a wheel against the target.
    ``on_disk`` maps archive names to files already unpacked from this wheel: those are read
    where they are, the others are extracted to a temporary directory."""
    findings = check_tags(info, target) if check_tag else []
    findings += check_requires_python(info.name, info.requires_python, target, info.path.name)
    if info.native_files:
        on_disk = on_disk or {}
        with tempfile.TemporaryDirectory(prefix="lc-wheel-") as tmp:
            files = []
            zf: Optional[zipfile.ZipFile] = None
            try:
                for i, name in enumerate(info.native_files):
                    if name in on_disk:
                        files.append((name, on_disk[name]))
                        continue
                    zf = zf or zipfile.ZipFile(info.path)
                    dest = Path(tmp) / f"{i}.so"
                    with zf.open(name) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                    files.append((name, dest))
            finally:
                if zf is not None:
                    zf.close()
            findings += check_native_files(info.name, files, target)
    return findings


def wheel_version_key(filename: str):
    name, version, _b, _t = parse_wheel_filename(filename)
    return canonicalize_name(name), version
