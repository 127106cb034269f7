"""Install wheels flat into a bundle directory, the way Lambda imports them.

* ``<dist>.data/purelib`` and ``platlib`` move up to the top level;
* ``scripts`` (host shebangs), ``headers`` and ``data`` are left out, and counted;
* no ``.pyc`` is written or copied (the host's bytecode is for the host's Python);
* RECORD is rewritten for the installed paths, INSTALLER says lambda-compat;
* an entry that would escape the bundle, or a file two wheels both claim, is an error.

With an unpacked-wheel cache (``install_all(..., unpacked=DIR)``) every wheel is unzipped
once, into ``DIR/<sha[:2]>/<sha256 of the wheel>/``, with a manifest of its installed paths,
RECORD hashes and modes; later installs hard-link those files into the bundle instead of
inflating and writing them again (copying where a hard link is not possible). Each cached
file's size and mtime are in the manifest and checked before it is linked: a file changed
since (for instance through a bundle that shares its inode) is taken from the wheel again.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import io
import json
import os
import re
import shutil
import uuid
import posixpath
import stat
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Set, Tuple, Union

from .. import errors
from ..resolve.sdist_build import file_sha256
from ..verify import zipread
from . import workers

INSTALLER = b"lambda-compat\n"


class _Claims:
    """Which thread writes which path (the first to claim it), and when it is written."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: Dict[str, threading.Event] = {}

    def claim(self, path: str) -> Tuple[bool, threading.Event]:
        with self._lock:
            event = self._events.get(path)
            if event is not None:
                return False, event
            event = self._events[path] = threading.Event()
            return True, event


@dataclass(frozen=True)
class Installed:
    wheel: str
    files: Tuple[str, ...]
    skipped: Tuple[str, ...]     # scripts/headers/data/pyc left out


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _safe_target(root: Path, rel: str, wheel: str) -> Path:
    return root / _safe_rel(rel, wheel)


def _safe_rel(rel: str, wheel: str) -> str:
    norm = posixpath.normpath(rel)
    if rel.startswith("/") or norm.startswith("../") or norm == ".." or "\\" in rel:
        raise errors.BadInput(f"{wheel}: entry {rel!r} would be written outside the bundle.",
                              hint="The wheel is malformed or malicious; do not use it.")
    return norm


def plan_wheel(wheel_path: Path) -> Tuple[str, List[Tuple[zipfile.ZipInfo, str]], List[str]]:
    """(dist-info dir, [(zip entry, installed relative path)], skipped entries)."""
    infos = zipread.entries(wheel_path)
    dist_info = next((i.filename.split("/", 1)[0] for i in infos
                      if i.filename.split("/", 1)[0].endswith(".dist-info")), None)
    if dist_info is None:
        raise errors.BadInput(f"{wheel_path.name}: no .dist-info directory.",
                              hint="The wheel is malformed.")
    data_dir = dist_info[: -len(".dist-info")] + ".data"
    plan: List[Tuple[zipfile.ZipInfo, str]] = []
    skipped: List[str] = []
    for info in infos:
        name = info.filename
        if name.endswith("/"):
            continue
        if name.endswith(".pyc") or "/__pycache__/" in f"/{name}":
            skipped.append(name)
            continue
        if name == f"{dist_info}/RECORD" or name.startswith(f"{dist_info}/RECORD."):
            continue  # rewritten (signatures no longer apply to the moved files)
        if name.startswith(data_dir + "/"):
            parts = name.split("/", 2)
            if len(parts) == 3 and parts[1] in ("purelib", "platlib"):
                plan.append((info, parts[2]))
            else:
                skipped.append(name)
            continue
        plan.append((info, name))
    return dist_info, plan, skipped


def install_wheel(wheel_path: Path, root: Path, claims: Optional["_Claims"] = None) -> Installed:
    claims = claims if claims is not None else _Claims()
    dist_info, plan, skipped = plan_wheel(wheel_path)
    records: List[Tuple[str, str, str]] = []
    with zipfile.ZipFile(wheel_path) as zf:
        for info, rel in plan:
            dest = _safe_target(root, rel, wheel_path.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            data = zf.read(info)
            # The first wheel to claim a path writes it (O_EXCL: a file that already exists is
            # a conflict, never an overwrite); a later claimant waits until it is written and
            # compares. Creating files is the slow part, so it happens outside the lock.
            first, written = claims.claim(str(dest))
            fd = None
            if first:
                try:
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    written.set()
            else:
                written.wait()
            if fd is None:
                # Old-style namespace packages ship identical __init__.py files: fine.
                if dest.read_bytes() == data:
                    records.append((rel, _record_hash(data), str(len(data))))
                    continue
                raise errors.BadInput(
                    f"{wheel_path.name} and another distribution both install {rel}, "
                    f"with different contents.",
                    hint="Two requirements provide the same module; keep only one of them.",
                ) from None
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
            finally:
                written.set()
            mode = (info.external_attr >> 16) & 0o777
            if mode & stat.S_IXUSR:
                os.chmod(dest, 0o755)
            records.append((rel, _record_hash(data), str(len(data))))
    _write_dist_info(root, dist_info, records)
    return Installed(wheel=wheel_path.name, files=tuple(r[0] for r in records),
                     skipped=tuple(skipped))


def _write_dist_info(root: Path, dist_info: str, records: List[Tuple[str, str, str]]) -> None:
    """INSTALLER and the rewritten RECORD (appends INSTALLER's row to ``records``)."""
    (root / dist_info).mkdir(parents=True, exist_ok=True)
    installer = root / dist_info / "INSTALLER"
    # Unlink first: a file placed from the wheel may be a hard link into the unpacked cache.
    installer.unlink(missing_ok=True)
    installer.write_bytes(INSTALLER)
    records.append((f"{dist_info}/INSTALLER", _record_hash(INSTALLER), str(len(INSTALLER))))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in sorted(records):
        writer.writerow(row)
    writer.writerow((f"{dist_info}/RECORD", "", ""))
    (root / dist_info / "RECORD").unlink(missing_ok=True)
    (root / dist_info / "RECORD").write_text(buf.getvalue(), encoding="utf-8")


def install_all(wheels: Iterable[Path], root: Path, jobs: int = 4,
                unpacked: Optional[Path] = None, claims: Optional[_Claims] = None
                ) -> Dict[str, Installed]:
    """Install every wheel into ``root`` (in parallel; conflicts are detected).

    ``unpacked``: the unpacked-wheel cache directory (see the module docstring), or None to
    inflate every file from its wheel. ``claims``: those of the wheels installed into
    ``root`` before (build/staging.py), else none."""
    wheels = list(wheels)
    root.mkdir(parents=True, exist_ok=True)
    claims = claims if claims is not None else _Claims()

    def one(w: Path) -> Installed:
        if unpacked is None:
            return install_wheel(w, root, claims)
        return install_from_cache(w, root, unpacked, claims)

    results = workers.map_all(one, wheels, jobs)
    return {r.wheel: r for r in results}


# ----------------------------------------------------------------- unpacked-wheel cache

UNPACKED_FORMAT = 1
_SHA_DIR = re.compile(r"[0-9a-f]{64}")


def wheel_sha256(path: Path) -> str:
    """The wheel's sha256: the name of its directory in the content-addressed file cache
    (``files/<sha[:2]>/<sha>/<name>``), else computed (once per file and process)."""
    parent = path.parent
    if _SHA_DIR.fullmatch(parent.name) and parent.parent.name == parent.name[:2]:
        return parent.name
    return file_sha256(path)


def _conflict(wheel: str, rel: str) -> errors.BadInput:
    return errors.BadInput(
        f"{wheel} and another distribution both install {rel}, with different contents.",
        hint="Two requirements provide the same module; keep only one of them.")


def _read_manifest(entry: Path, wheel: str) -> Optional[dict]:
    try:
        m = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("format") != UNPACKED_FORMAT or m.get("wheel") != wheel:
        return None
    return m


def unpack_wheel(wheel_path: Path, cache_dir: Path) -> Tuple[dict, Path]:
    """(manifest, tree) of the wheel's unpacked copy, unzipping it first if needed."""
    sha = wheel_sha256(wheel_path)
    entry = cache_dir / sha[:2] / sha
    manifest = _read_manifest(entry, wheel_path.name)
    if manifest is not None:
        return manifest, entry / "tree"
    dist_info, plan, skipped = plan_wheel(wheel_path)
    tmp = cache_dir / sha[:2] / f".tmp-{sha[:16]}-{uuid.uuid4().hex}"
    tree = tmp / "tree"
    try:
        written: Dict[str, list] = {}
        parts = _parts(plan)
        if len(parts) > 1:  # inflated side by side (zlib runs without the GIL)
            later = [_inflate_pool().submit(_extract, wheel_path, tree, p) for p in parts[1:]]
            try:
                written.update(_extract(wheel_path, tree, parts[0]))
                for future, part in zip(later, parts[1:]):
                    if future.cancel():  # still queued (behind another wheel's): do it here
                        written.update(_extract(wheel_path, tree, part))
            finally:
                for future in later:
                    future.cancel()  # after a failure: what has not started never will
                wait([f for f in later if not f.cancelled()])  # a cancelled one may never be
            for f in later:
                if not f.cancelled():
                    written.update(f.result())
        else:
            written = _extract(wheel_path, tree, plan)
        files: List[list] = []
        for _info, rel in plan:  # in the wheel's order; a path named twice, once
            record = written.pop(_safe_rel(rel, wheel_path.name), None)
            if record is not None:
                files.append([rel] + record[1:])
        manifest = {"format": UNPACKED_FORMAT, "wheel": wheel_path.name, "dist_info": dist_info,
                    "skipped": skipped, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        theirs = _read_manifest(entry, wheel_path.name)
        if theirs is not None:  # another thread or process finished it meanwhile: use theirs
            return theirs, entry / "tree"
        if entry.exists():  # an unreadable or older-format entry
            shutil.rmtree(entry, ignore_errors=True)
        try:
            os.rename(tmp, entry)
        except OSError:  # another process unpacked it at the same time: use theirs
            theirs = _read_manifest(entry, wheel_path.name)
            if theirs is None:
                raise
            return theirs, entry / "tree"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest, entry / "tree"


#: A wheel whose entries cost more than this (compressed bytes, plus :data:`_FILE_COST` for
#: each file) is unpacked by several threads.
_SPLIT_BYTES = 4 << 20
#: What making one file costs, counted in compressed bytes to inflate. Inflating and writing
#: runs at ~11 ns per compressed byte here; creating a file at 0.03-1 ms (ext4 without a
#: journal steps over recently freed inodes). numpy's wheel is one 7.9 MB library and 786
#: files holding 5.9 MB: split by bytes alone, one thread made 786 files while the other
#: inflated one.
_FILE_COST = 32 << 10


@functools.lru_cache(maxsize=1)
def _inflate_pool() -> ThreadPoolExecutor:
    """The threads that inflate the other parts of a large wheel (not the build's worker
    pool: unpacking runs on those, and waiting there for tasks queued behind would hang)."""
    return ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 2) - 1),
                              thread_name_prefix="lc-inflate")


def _parts(plan: List[Tuple[zipfile.ZipInfo, str]]) -> List[List[Tuple[zipfile.ZipInfo, str]]]:
    """``plan`` in one part per CPU (at most 4) of about equal cost (compressed bytes and
    files), for a large wheel; in one part otherwise. Entries installed at the same path
    stay in one part."""
    cost = lambda info: info.compress_size + _FILE_COST  # noqa: E731
    n = min(4, os.cpu_count() or 1)
    if sum(cost(info) for info, _rel in plan) <= _SPLIT_BYTES or n < 2:
        return [plan]
    parts: List[List[Tuple[zipfile.ZipInfo, str]]] = [[] for _ in range(n)]
    sizes = [0] * n
    where: Dict[str, int] = {}
    for info, rel in sorted(plan, key=lambda e: -e[0].compress_size):
        i = where.setdefault(posixpath.normpath(rel), sizes.index(min(sizes)))
        parts[i].append((info, rel))
        sizes[i] += cost(info)
    return [p for p in parts if p]


def _extract(wheel_path: Path, tree: Path, entries: List[Tuple[zipfile.ZipInfo, str]]
             ) -> Dict[str, list]:
    """Write ``entries`` under ``tree``: normalised installed path -> [path, RECORD hash,
    size, mtime]. Plain ``os`` calls on strings, each directory made once, each member read
    by :func:`~lambda_compat.verify.zipread.member_bytes`: this runs for every file of every
    wheel of a cold build."""
    out: Dict[str, list] = {}
    made: Set[str] = set()
    root = os.fspath(tree)
    with open(wheel_path, "rb") as raw:
        for info, rel in entries:
            norm = _safe_rel(rel, wheel_path.name)
            dest = os.path.join(root, norm)
            parent = os.path.dirname(dest)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            data = zipread.member_bytes(raw.fileno(), wheel_path, info)
            if norm in out:  # the wheel names the same installed path twice
                with open(dest, "rb") as f:
                    if f.read() != data:
                        raise _conflict(wheel_path.name, rel)
                continue
            mode = 0o755 if (info.external_attr >> 16) & stat.S_IXUSR else 0o644
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fchmod(fd, mode)  # exactly this mode, whatever the umask
                mtime_ns = os.fstat(fd).st_mtime_ns
            finally:
                os.close(fd)
            out[norm] = [rel, _record_hash(data), len(data), mtime_ns]
    return out


def unpacked_files(wheel_path: Path, cache_dir: Path) -> Dict[str, Path]:
    """Unpack the wheel into the cache (the install step then only links) and map each of
    its archive entries to the unpacked file, for the verifier to read native files there
    instead of decompressing them a second time. Only files still as unpacked (size and
    modification time of the manifest) are mapped. Empty when the wheel cannot be unpacked:
    the verifier then extracts what it reads itself, and the install step reports why."""
    try:
        manifest, tree = unpack_wheel(wheel_path, cache_dir)
    except (errors.LambdaCompatError, OSError, zipfile.BadZipFile, ValueError):
        return {}
    data_dir = manifest["dist_info"][: -len(".dist-info")] + ".data"
    out: Dict[str, Path] = {}
    for rel, _hash, size, mtime_ns in manifest["files"]:
        path = tree / rel
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            continue
        out[rel] = path
        for scheme in ("purelib", "platlib"):  # the archive names of .data/ entries
            out[f"{data_dir}/{scheme}/{rel}"] = path
    return out


def _place(src: Union[str, Path], dest: Union[str, Path]) -> bool:
    """Hard-link (else copy) src to dest; False if dest already exists."""
    try:
        os.link(src, dest)
        return True
    except FileExistsError:
        return False
    except OSError:
        pass  # another file system, or links not allowed: copy
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)
    shutil.copymode(src, dest)
    return True


def _same_file_content(dest: Union[str, Path], record_hash: str) -> bool:
    with open(dest, "rb") as f:
        return _record_hash(f.read()) == record_hash


def install_from_cache(wheel_path: Path, root: Path, cache_dir: Path,
                       claims: Optional[_Claims] = None) -> Installed:
    """Like :func:`install_wheel`, with the files hard-linked from the unpacked-wheel cache."""
    claims = claims if claims is not None else _Claims()
    manifest, tree = unpack_wheel(wheel_path, cache_dir)
    dist_info = manifest["dist_info"]
    records: List[Tuple[str, str, str]] = []
    stale = False
    made: Set[str] = set()   # directories known to exist (one mkdir each, not one per file)
    root_s, tree_s = os.fspath(root), os.fspath(tree)
    for rel, rhash, size, mtime_ns in manifest["files"]:
        norm = _safe_rel(rel, wheel_path.name)
        dest = os.path.join(root_s, norm)
        src = os.path.join(tree_s, norm)
        parent = os.path.dirname(dest)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        first, written = claims.claim(dest)
        placed = False
        if first:
            try:
                try:
                    st = os.stat(src)
                    intact = st.st_size == size and st.st_mtime_ns == mtime_ns
                except OSError:
                    intact = False
                if not intact:
                    stale = True
                    placed = _write_from_wheel(wheel_path, rel, dest)
                else:
                    placed = _place(src, dest)
            finally:
                written.set()
        else:
            written.wait()
        if not placed and not _same_file_content(dest, rhash):
            raise _conflict(wheel_path.name, rel)
        records.append((rel, rhash, str(size)))
    if stale:  # rebuilt from the wheel next time
        (tree.parent / "manifest.json").unlink(missing_ok=True)
    _write_dist_info(root, dist_info, records)
    return Installed(wheel=wheel_path.name, files=tuple(r[0] for r in records),
                     skipped=tuple(manifest["skipped"]))


def _write_from_wheel(wheel_path: Path, rel: str, dest: Union[str, Path]) -> bool:
    _, plan, _ = plan_wheel(wheel_path)
    info = next(i for i, r in plan if r == rel)
    with zipfile.ZipFile(wheel_path) as zf:
        data = zf.read(info)
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    if (info.external_attr >> 16) & stat.S_IXUSR:
        os.chmod(dest, 0o755)
    return True
