"""Reuse a dynamic import proof when it would be the very same proof (like a build cache).

A proof is reused only when every input of it is the same: the bundle's and the layers'
content (path, kind, mode and sha256 of every file, link targets), the target (name, Python,
glibc, Lambda's environment and sys.path for it), the backend and what it runs (its
description and identity: the sha256 of the interpreter binary, of a root's stand-in record
and of its interpreter, the library view), the probe script (sha256 of its source), the
modules, handler, timeout and retry order, and lambda-compat's version. Any change of those
gives another key, so another proof. A result the backend could not produce (``error``) or
with a timed-out import (load-dependent) is never stored. The reused result says so:
``cached_from`` is the time the proof ran.

File hashes are remembered per inode (``file-hashes.json``): keyed by device, inode, size and
mtime, plus the ctime for files with a single link (any write changes it). Files with several
links are the install step's hard links into the unpacked-wheel cache, whose own integrity
check is size and mtime (:mod:`lambda_compat.build.install`); linking changes their ctime, so
it cannot be part of their key. Small files with a single link (under
:data:`_SMALL` bytes: mostly the RECORD and INSTALLER files each install writes anew) are
remembered for the process only: hashing them again costs less than the memo growing by the
files of every bundle ever checked, and rewriting it after each run.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from .._version import __version__
from .backends.results import DynamicResult, ImportOutcome

FORMAT = 1
_MEMO_NAME = "file-hashes.json"
_MEMO_LIMIT = 400_000
_SMALL = 64 * 1024


class FileHashes:
    """sha256 of files, remembered by inode and stat (see the module docstring)."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._known: Dict[str, str] = {}
        self._new: Dict[str, str] = {}      # to be saved
        self._local: Dict[str, str] = {}    # for this process only
        if path is not None:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("format") == FORMAT:
                    self._known = dict(data.get("hashes") or {})
            except (OSError, ValueError):
                pass

    @staticmethod
    def _key(st: os.stat_result) -> str:
        key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        return key if st.st_nlink > 1 else key + f":{st.st_ctime_ns}"

    def sha256(self, path: str, st: os.stat_result) -> str:
        key = self._key(st)
        with self._lock:
            known = self._known.get(key) or self._new.get(key) or self._local.get(key)
        if known:
            return known
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digest = h.hexdigest()
        if os.stat(path).st_mtime_ns == st.st_mtime_ns:  # not written while it was read
            keep = self._new if st.st_nlink > 1 or st.st_size >= _SMALL else self._local
            with self._lock:
                keep[key] = digest
        return digest

    def save(self) -> None:
        if self.path is None:
            return
        with self._lock:
            new, self._new = self._new, {}
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock  # here, not at start-up: ~30 ms
        with FileLock(str(self.path) + ".lock"):
            merged = FileHashes(self.path)._known
            if len(merged) > _MEMO_LIMIT:
                merged = {}
            merged.update(new)
            tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}")
            tmp.write_text(json.dumps({"format": FORMAT, "hashes": merged}), encoding="utf-8")
            os.replace(tmp, self.path)
        with self._lock:
            self._known.update(new)


def tree_fingerprint(root: Path, hashes: FileHashes) -> str:
    """sha256 over every entry below ``root``: relative path, kind, mode, content or link."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted(filenames + [d for d in dirnames
                                        if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            rel = os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(path)
            if os.path.islink(path):
                h.update(f"L\0{rel}\0{os.readlink(path)}\n".encode())
            elif os.path.isfile(path):
                mode = st.st_mode & 0o777
                h.update(f"F\0{rel}\0{mode:o}\0{hashes.sha256(path, st)}\n".encode())
            else:
                h.update(f"O\0{rel}\0{st.st_mode:o}\n".encode())
        for d in dirnames:
            h.update(f"D\0{os.path.normpath(os.path.join(rel_dir, d))}\n".encode())
    return h.hexdigest()


def _result_from_json(data: Mapping[str, Any], cached_from: str) -> DynamicResult:
    def outcome(o: Mapping[str, Any]) -> ImportOutcome:
        return ImportOutcome(**{**o, "after": tuple(o.get("after") or ())})

    fields = dict(data)
    fields.pop("ok", None)
    fields["outcomes"] = tuple(outcome(o) for o in data["outcomes"])
    fields["handler"] = outcome(data["handler"]) if data.get("handler") else None
    fields["sys_path"] = tuple(data.get("sys_path") or ())
    fields["cached_from"] = cached_from
    return DynamicResult(**fields)


def _storable(result: DynamicResult) -> bool:
    return result.error is None and not any(o.reason == "timeout"
                                            for o in result.outcomes + ((result.handler,)
                                                                        if result.handler else ()))


class ProofCache:
    """``<cache>/proofs/``: one JSON file per proof key."""

    def __init__(self, directory: Path, *, reuse: bool = True) -> None:
        self.directory = directory
        self.reuse = reuse
        self.hashes = FileHashes(directory / _MEMO_NAME)

    def key(self, backend: Any, identity: Mapping[str, Any], task_dir: Path,
            layer_dirs: Sequence[Path], modules: Sequence[Tuple[str, str]],
            handler: Optional[str], timeout: float,
            after: Optional[Mapping[str, Sequence[str]]], probe: str,
            environment: Mapping[str, str], sys_path: Sequence[str],
            bundle_fingerprint: Optional[str] = None) -> str:
        """``bundle_fingerprint``: :func:`tree_fingerprint` of ``task_dir``, when the caller
        knows it (``task_dir`` is then not read)."""
        t = backend.target
        parts = {
            "format": FORMAT, "version": __version__,
            "probe": hashlib.sha256(probe.encode()).hexdigest(),
            "target": [t.name, t.python_full_version, t.glibc],
            "environment": dict(sorted(environment.items())), "sys_path": list(sys_path),
            "backend": [type(backend).__name__, backend.proof, backend.describe()],
            "identity": dict(identity),
            "bundle": bundle_fingerprint or tree_fingerprint(Path(task_dir), self.hashes),
            "layers": [tree_fingerprint(Path(p), self.hashes) for p in layer_dirs],
            "modules": [list(m) for m in modules], "handler": handler, "timeout": timeout,
            "after": {d: list(m) for d, m in sorted((after or {}).items())},
        }
        self.hashes.save()
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def load(self, key: str) -> Optional[DynamicResult]:
        if not self.reuse:
            return None
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("key") != key:
                return None
            return _result_from_json(data["result"], data["created"])
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def store(self, key: str, result: DynamicResult) -> None:
        if not _storable(result) or result.cached_from:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        data = {"format": FORMAT, "key": key, "created": created, "result": result.to_dict()}
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, path)


def import_modules(backend: Any, cache: Optional[ProofCache], task_dir: Path,
                   layer_dirs: Sequence[Path], modules: Sequence[Tuple[str, str]], *,
                   handler: Optional[str], timeout: float,
                   after: Optional[Mapping[str, Sequence[str]]],
                   bundle_fingerprint: Optional[str] = None,
                   prepare: Optional[Callable[[], Any]] = None) -> DynamicResult:
    """``backend.import_modules(...)``, or the same proof from ``cache`` when every input of it
    is unchanged. Backends without an ``identity()`` (or returning None) always run.

    ``bundle_fingerprint``: the bundle's :func:`tree_fingerprint`, when known (a remembered
    static proof); ``prepare()`` installs the bundle in ``task_dir`` when it is not there
    yet: before the imports run, and before the key is computed unless the fingerprint is
    known (a key made from a directory not yet installed would be an empty bundle's)."""
    identity = getattr(backend, "identity", lambda: None)() if cache is not None else None
    if prepare is not None and (bundle_fingerprint is None or cache is None or identity is None):
        prepare()
        prepare = None
    if cache is None or identity is None:
        return backend.import_modules(task_dir, list(layer_dirs), list(modules),
                                      handler=handler, timeout=timeout, after=after)
    from .backends.base import lambda_environment, probe_source, target_facts
    key = cache.key(backend, identity, task_dir, layer_dirs, modules, handler, timeout, after,
                    probe_source(), lambda_environment(backend.target, handler=handler),
                    target_facts(backend.target).sys_path, bundle_fingerprint)
    found = cache.load(key)
    if found is not None:
        return found
    if prepare is not None:
        prepare()
    result = backend.import_modules(task_dir, list(layer_dirs), list(modules), handler=handler,
                                    timeout=timeout, after=after)
    cache.store(key, result)
    return replace(result, cached_from=None)

