"""Merge probe outputs (:mod:`lambda_compat.prove._payload.probe`, run inside the images) into
``registry/runtimes.yaml``.

The refresh-runtimes workflow runs the probe in every public Lambda Python image, wraps each
output as::

    {"target": "python3.12/x86_64", "image": "public.ecr.aws/lambda/python:3.12-x86_64",
     "digest": "sha256:...", "probe": {...probe output...}}

and calls ``python -m lambda_compat.cli.probe_merge --date YYYY-MM-DD FILE...``. (A bare probe
output is accepted too; its target then follows from the Python version and machine.)

What is merged, per target: the interpreter facts (full version, SOABI, extension suffixes,
sysconfig platform, free-threading, executable, prefix), the glibc version, the libstdc++ /
libgcc_s symbol ceilings, the sonames the loader finds (``inferred_sonames`` now seen are
dropped from it; ``absent`` patterns matching a seen soname are dropped), ``sys.path`` (only
from a probe that ran as the handler, which sees the real order) and the image digest.

Provenance: every group the probe changed or confirmed cites one probe source
(``lambda_compat.prove._payload.probe ... on DATE``; created once, its text updated on later runs), and the
probed keys lose their ``inferred``/``derived``/``unverified`` marks: they are now observed.
``data_version`` becomes the date. Comments, key order, quoting and anchors of the file are
kept (ruamel.yaml round trip; install ``lambda-compat[refresh]``). The result is validated
with the registry loader before it replaces the file; on any problem the file is unchanged.
"""

from __future__ import annotations

import datetime
import fnmatch
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from .. import errors
from ..targets.arch import ARCH_OF_MACHINE

PROBE_SOURCE_PREFIX = "lambda_compat.prove._payload.probe"
_SONAME_RE = re.compile(r"^[A-Za-z0-9_+.-]+\.so(\.[0-9]+)*$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_MARKS = ("inferred", "derived", "unverified")


@dataclass
class MergeResult:
    text: str
    changes: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProbeInput:
    target: str                  # python3.12/x86_64
    probe: Dict[str, Any]
    image: Optional[str] = None
    digest: Optional[str] = None
    origin: str = "?"            # file name, for messages


def _yaml():
    try:
        from ruamel.yaml import YAML
    except ImportError:
        raise errors.EnvironmentProblem(
            "Merging probe results needs ruamel.yaml (it keeps the registry's comments and "
            "anchors).", hint="pip install 'lambda-compat[refresh]' (or: pip install "
                              "ruamel.yaml)") from None
    y = YAML()
    y.preserve_quotes = True
    y.width = 4096
    y.indent(mapping=2, sequence=4, offset=2)
    y.representer.add_representer(
        type(None), lambda r, d: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    return y


def read_probe(path: Path) -> ProbeInput:
    """A probe file (wrapped or bare). BadInput naming the file when it is not one."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise errors.BadInput(f"{path}: not a readable probe JSON file ({exc}).",
                              hint="Pass the output of lambda_compat/prove/_payload/probe.py.") from None
    wrapped = isinstance(data, dict) and "probe" in data
    probe = data["probe"] if wrapped else data
    if not isinstance(probe, dict) or "probe_version" not in probe or "python" not in probe:
        raise errors.BadInput(f"{path}: not a probe output (no probe_version/python keys).",
                              hint="Pass the output of lambda_compat/prove/_payload/probe.py.")
    target = data.get("target") if wrapped else None
    if not target:
        arch = ARCH_OF_MACHINE.get(str(probe.get("machine")))
        if arch is None:
            raise errors.BadInput(f"{path}: unknown machine {probe.get('machine')!r}.",
                                  hint="Probe an x86_64 or aarch64 image.")
        target = f"python{probe['python']['version']}/{arch}"
    digest = data.get("digest") if wrapped else None
    if digest is not None and not _DIGEST_RE.match(str(digest)):
        raise errors.BadInput(f"{path}: digest {digest!r} is not sha256:<64 hex>.",
                              hint="Record the image's repo digest (docker inspect "
                                   "--format '{{index .RepoDigests 0}}').")
    return ProbeInput(target=str(target), probe=probe, image=data.get("image") if wrapped
                      else None, digest=digest, origin=str(path))


def _version_key(text: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in str(text).split(".") if p.isdigit())


class _Merger:
    def __init__(self, doc: Any, source_key: str, changes: List[str]) -> None:
        self.doc = doc
        self.source_key = source_key
        self.changes = changes

    def _set(self, entry: Any, group: str, key: str, value: Any, label: str) -> None:
        g = entry[group]
        old = g.get(key)
        if _plain(old) != _plain(value):
            g[key] = value
            self.changes.append(f"{label}: {group}.{key}: {_plain(old)!r} -> {_plain(value)!r}")
        self._observed(g, key)

    def _observed(self, g: Any, key: str) -> None:
        for mark in _MARKS:
            seq = g.get(mark)
            if seq is not None and key in seq:
                seq.remove(key)
                if not seq:
                    del g[mark]
        src = g.get("src")
        if src is not None and self.source_key not in src:
            src.append(self.source_key)

    def merge(self, entry: Any, p: ProbeInput) -> None:
        label = p.target
        probe = p.probe
        py = probe["python"]
        arch = entry["arch"]
        version = str(entry["python"]["version"])
        if str(py.get("version")) != version:
            raise errors.BadInput(
                f"{p.origin}: the probe ran Python {py.get('version')}, but {label} is Python "
                f"{version}.", hint="Probe the right image for this target.")
        if ARCH_OF_MACHINE.get(str(probe.get("machine"))) != arch:
            raise errors.BadInput(
                f"{p.origin}: the probe ran on {probe.get('machine')}, but {label} is {arch}.",
                hint="Run the probe in the image of this architecture (--platform).")
        for key in ("full_version", "soabi", "sysconfig_platform", "prefix"):
            if py.get(key):
                self._set(entry, "python", key, py[key], label)
        if py.get("ext_suffixes"):
            self._set(entry, "python", "ext_suffixes", _flow(list(py["ext_suffixes"])), label)
        if "free_threaded" in py:
            self._set(entry, "python", "free_threaded", bool(py["free_threaded"]), label)
        exe = py.get("executable") or ""
        if exe.endswith(f"/python{version}"):
            self._set(entry, "python", "executable", exe, label)
        if probe.get("glibc"):
            self._set(entry, "os", "glibc", str(probe["glibc"]), label)
        cxx = probe.get("libstdcxx") or {}
        if cxx.get("GLIBCXX"):
            self._set(entry, "libstdcxx", "GLIBCXX", cxx["GLIBCXX"], label)
        if cxx.get("CXXABI"):
            self._set(entry, "libstdcxx", "CXXABI", cxx["CXXABI"], label)
        gcc = (probe.get("libgcc") or {}).get("GCC")
        if gcc:
            self._set(entry, "libstdcxx", "GCC", gcc, label)
        if not cxx.get("path"):
            self.changes.append(f"{label}: libstdc++.so.6 not found by the probe; "
                                f"libstdcxx ceilings left as they were")
        self._merge_sonames(entry, probe, label)
        self._merge_capabilities(entry, probe, label)
        if probe.get("mode") == "handler" and probe.get("sys_path"):
            order = [s for s in probe["sys_path"] if isinstance(s, str) and s.startswith("/")]
            if order:
                self._set(entry, "sys_path", "order", _block(order), label)
        if p.digest:
            image = entry["image"]
            comments = getattr(image, "ca", None)
            if image.get("digest") != p.digest and comments is not None:
                # the end-of-line comment explained the missing digest; it no longer applies
                comments.items.pop("digest", None)
            self._set(entry, "image", "digest", p.digest, label)

    def _merge_capabilities(self, entry: Any, probe: Dict[str, Any], label: str) -> None:
        """``capabilities`` (sqlite, openssl, zlib, expat) from the runtime's own modules."""
        found = {}
        if probe.get("sqlite") and re.fullmatch(r"[0-9]+(\.[0-9]+)+", str(probe["sqlite"])):
            found["sqlite"] = str(probe["sqlite"])
        m = re.match(r"OpenSSL ([0-9]+\.[0-9]+\.[0-9]+[a-z]*)", str(probe.get("openssl") or ""))
        if m:
            found["openssl"] = m.group(1)
        for key in ("zlib", "expat"):
            value = str(probe.get(key) or "")
            if re.fullmatch(r"[0-9]+(\.[0-9]+)+", value):
                found[key] = value
        if not found:
            return
        if "capabilities" not in entry:
            from ruamel.yaml.comments import CommentedMap
            group = CommentedMap()
            group["src"] = _flow([self.source_key])
            keys = list(entry)
            entry.insert(keys.index("lifecycle") if "lifecycle" in keys else len(keys),
                         "capabilities", group)
        for key, value in found.items():
            self._set(entry, "capabilities", key, value, label)

    def _merge_sonames(self, entry: Any, probe: Dict[str, Any], label: str) -> None:
        seen = sorted({s for s in probe.get("sonames") or () if _SONAME_RE.match(str(s))})
        if not seen:
            self.changes.append(f"{label}: the probe found no sonames; shared_libraries "
                                f"left as they were")
            return
        libs = entry["shared_libraries"]
        old = set(libs.get("sonames") or ())
        inferred = list(libs.get("inferred_sonames") or ())
        now_seen = [s for s in inferred if s in seen]
        if set(seen) != old:
            added, removed = sorted(set(seen) - old), sorted(old - set(seen))
            libs["sonames"] = _block(seen)
            self.changes.append(f"{label}: shared_libraries.sonames: +{len(added)} "
                                f"{added[:8]}{'...' if len(added) > 8 else ''} -{len(removed)} "
                                f"{removed[:8]}{'...' if len(removed) > 8 else ''}")
        if now_seen:
            rest = [s for s in inferred if s not in seen]
            if rest:
                libs["inferred_sonames"] = _block(rest)
            else:
                del libs["inferred_sonames"]
            self.changes.append(f"{label}: inferred sonames now seen: {now_seen}")
        absent = list(libs.get("absent") or ())
        contradicted = [a for a in absent if any(fnmatch.fnmatchcase(s, a) for s in seen)]
        unverified = list(libs.get("unverified_sonames") or ())
        # The probe settles every unverified soname: found (now in sonames) or not found by
        # the loader anywhere (now absent).
        missing = [u for u in unverified if not any(fnmatch.fnmatchcase(s, u) for s in seen)]
        if contradicted or missing:
            libs["absent"] = _block([a for a in absent if a not in contradicted] +
                                    [m for m in missing if m not in absent])
        if contradicted:
            self.changes.append(f"{label}: no longer absent (the probe found them): "
                                f"{contradicted}")
        if unverified:
            del libs["unverified_sonames"]
            found = [u for u in unverified if u not in missing]
            self.changes.append(f"{label}: unverified sonames settled: found {found}, "
                                f"absent {missing}")
            for mark in _MARKS:
                seq = libs.get(mark)
                if seq is not None and "unverified_sonames" in seq:
                    seq.remove("unverified_sonames")
                    if not seq:
                        del libs[mark]
        cite = libs.get("cite")
        if cite is not None:
            listed = set(seen) | set(libs.get("inferred_sonames") or ()) | set(libs["absent"])
            for name in [n for n in cite if n not in listed]:
                del cite[name]
            if not cite:
                del libs["cite"]
        self._observed(libs, "sonames")
        if "inferred_sonames" not in libs:  # a mark on a key that is gone goes too
            for mark in _MARKS:
                seq = libs.get(mark)
                if seq is not None and "inferred_sonames" in seq:
                    seq.remove("inferred_sonames")
                    if not seq:
                        del libs[mark]


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _flow(items: Sequence[Any]):
    from ruamel.yaml.comments import CommentedSeq
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq


def _block(items: Sequence[Any]):
    from ruamel.yaml.comments import CommentedSeq
    seq = CommentedSeq(items)
    seq.fa.set_block_style()
    return seq


def _source_key(doc: Any, date: datetime.date, probe_version: int) -> str:
    text = (f"{PROBE_SOURCE_PREFIX} v{probe_version} run inside each public.ecr.aws/lambda/python "
            f"image by the refresh-runtimes workflow on {date.isoformat()} (the image digest "
            f"probed is recorded per target in image.digest; sys.path as seen by a handler)")
    return set_source(doc, PROBE_SOURCE_PREFIX, text)


def set_source(doc: Any, prefix: str, text: str) -> str:
    """Record ``text`` in the registry's ``sources``: in place of the source whose citation
    starts with ``prefix`` (a refresh replaces its own earlier citation), else under the next
    free ``S<n>`` key. Returns the key."""
    sources = doc["sources"]
    for key, value in sources.items():
        if str(value).startswith(prefix):
            sources[key] = text
            return str(key)
    numbers = [int(str(k)[1:]) for k in sources if str(k)[1:].isdigit()]
    key = f"S{max(numbers, default=0) + 1}"
    sources[key] = text
    return key


def merge_text(text: str, probes: Iterable[ProbeInput], date: datetime.date) -> MergeResult:
    """The registry text with the probes merged (not yet validated; see :func:`merge_file`)."""
    probes = list(probes)
    y = _yaml()
    doc = y.load(text)
    changes: List[str] = []
    if not probes:
        return MergeResult(text, changes)
    version = max(int(p.probe.get("probe_version", 1)) for p in probes)
    key = _source_key(doc, date, version)
    merger = _Merger(doc, key, changes)
    entries = {f"{t['runtime']}/{t['arch']}": t for t in doc["targets"]}
    seen = set()
    for p in probes:
        if p.target in seen:
            raise errors.BadInput(f"{p.origin}: a second probe for {p.target}.",
                                  hint="Pass one probe file per target.")
        seen.add(p.target)
        entry = entries.get(p.target)
        if entry is None:
            raise errors.BadInput(
                f"{p.origin}: {p.target} is not in registry/runtimes.yaml.",
                hint="Add the runtime's entry by hand first (sources, lifecycle, image); the "
                     "probe fills in what it can observe.")
        merger.merge(entry, p)
    doc["data_version"] = date.strftime("%Y.%m.%d")
    out = io.StringIO()
    y.dump(doc, out)
    return MergeResult(out.getvalue(), changes)


def merge_file(runtimes: Path, probe_files: Sequence[Path], date: datetime.date,
               output: Optional[Path] = None) -> MergeResult:
    """Merge into ``runtimes`` (or write ``output``); validated with the registry loader."""
    runtimes = Path(runtimes)
    probes = [read_probe(Path(f)) for f in probe_files]
    try:
        text = runtimes.read_text(encoding="utf-8")
    except OSError as exc:
        raise errors.BadInput(f"{runtimes}: cannot read ({exc.strerror}).") from None
    result = merge_text(text, probes, date)
    write_validated(Path(output) if output else runtimes, result.text)
    return result


def write_validated(dest: Path, text: str) -> None:
    """Replace ``dest`` (a runtimes.yaml) with ``text`` atomically, only once the registry
    loader accepts it: written next to ``dest`` (the loader finds registry/schema via the
    file's parent), loaded, then renamed over it; never half-written."""
    from .runtimes import load_runtimes
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=str(dest.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        load_runtimes(tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
