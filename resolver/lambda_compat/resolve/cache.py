"""Reuse a recent resolution of the same inputs for the same target.

PyPI lets clients cache its index pages for 10 minutes; pip does so through its HTTP cache,
but some mirrors send no caching headers at all, and then every run re-downloads and re-parses
tens of thousands of links. Within the same lifetime (``ttl``), a resolution of byte-identical
inputs (requirements and the files they include, target, index options, pip configuration and
PIP_* variables, lambda-compat's version and code) is taken from here; its files come from the
content-addressed cache. A failed resolution (pip found no file for a requirement, or its
sdist would not build) is remembered the same way, with the passes over the rest of the file
and the reasons, so a second run within minutes reports the same verdict without starting pip
again. Resolutions with local paths, unreachable index pages or a build that ran out of time
in this run are never cached (their outcome can change; a time-out remembered from an earlier
run by :mod:`resolve.failed_builds` stands for longer than this cache's lifetime, so a
resolution that met one is cached), and ``--refresh`` (ttl 0) bypasses the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Tuple

from .._version import code_fingerprint
from .reqfile import referenced_files
from .engine import LinkInfo, NotFound, PipOptions, ResolvedItem, Resolution
from ..targets.target import Target

_PIP_CONFIGS = ("/etc/pip.conf", "~/.config/pip/pip.conf", "~/.pip/pip.conf")


def key(requirements: Path, target: Target, pip: PipOptions, options: str = "") -> str:
    """``options``: the caller's other settings that decide the outcome (which sources may
    be built, where, with what limits; the registry's version)."""
    h = hashlib.sha256()
    h.update(f"{code_fingerprint()}\0{target.name}\0{target.python_full_version}\0"
             f"{target.glibc}\0{pip.args()}\0{requirements.resolve()}\0{options}\0".encode())
    for path in referenced_files(requirements):
        h.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    for name, value in sorted(os.environ.items()):
        if name.startswith("PIP_"):
            h.update(f"{name}={value}\0".encode())
    configs = list(_PIP_CONFIGS)
    if os.environ.get("PIP_CONFIG_FILE"):
        configs.append(os.environ["PIP_CONFIG_FILE"])
    if os.environ.get("VIRTUAL_ENV"):
        configs.append(os.path.join(os.environ["VIRTUAL_ENV"], "pip.conf"))
    for cfg in configs:
        p = Path(os.path.expanduser(cfg))
        if p.is_file():
            h.update(str(p).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Outcome:
    """A whole resolution of the file for a target: pip's passes (the first on the whole
    file; when it stopped at a top-level requirement, the passes over the rest), the one
    the build goes on from, and the sources refused before download (project -> (code,
    reason)). Failed resolutions are remembered as well as successful ones."""

    passes: Tuple[Resolution, ...]
    final: int = 0
    refused: Mapping[str, Tuple[str, str]] = field(default_factory=dict)

    @property
    def resolution(self) -> Resolution:
        return self.passes[self.final]


_FORMAT = 2


def load(cache_dir: Path, k: str, cas: Path, ttl: float) -> Optional[Outcome]:
    """The outcome stored under ``k`` less than ``ttl`` seconds ago whose files are all
    still in the content-addressed cache ``cas``."""
    path = cache_dir / f"{k}.json"
    if ttl <= 0 or not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT or not 0 <= time.time() - data["created"] <= ttl:
            return None
        passes = tuple(_resolution(p, cas) for p in data["passes"])
        if any(p is None for p in passes):
            return None
        refused = {name: (str(v[0]), str(v[1])) for name, v in data["refused"].items()}
        return Outcome(passes=passes, final=int(data["final"]),  # type: ignore[arg-type]
                       refused=refused)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def _resolution(data: dict, cas: Path) -> Optional[Resolution]:
    items = []
    files = []
    for i in data["items"]:
        file = cas / i["sha256"][:2] / i["sha256"] / i["filename"]
        if not file.exists():
            return None
        link = LinkInfo(**i["link"]) if i.get("link") else None
        items.append(ResolvedItem(name=i["name"], version=i["version"], link=link, path=file,
                                  source_dir=None, is_direct=i["is_direct"],
                                  user_supplied=i["user_supplied"],
                                  requires_python=i["requires_python"],
                                  extras=tuple(i["extras"])))
        files.append(file.name)
    links = {k2: tuple(LinkInfo(**x) for x in v) for k2, v in data.get("links", {}).items()}
    not_found = tuple(NotFound(**nf) for nf in data.get("not_found", ()))
    return Resolution(items=tuple(items), links=links, not_found=not_found,
                      cache_hits=tuple(files), log_path=None, message="resolution reused",
                      sources=dict(data.get("sources") or {}))


def store(cache_dir: Path, k: str, outcome: Outcome, shas: dict) -> None:
    """Remember ``outcome`` unless it depends on what can change under the same inputs:
    local directories and files named directly, index pages that could not be fetched, a
    build that ran out of time in this run."""
    passes = []
    for resolution in outcome.passes:
        data = _resolution_data(resolution, shas)
        if data is None:
            return
        passes.append(data)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{k}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps({"format": _FORMAT, "created": time.time(), "passes": passes,
                               "final": outcome.final,
                               "refused": {n: list(v) for n, v in outcome.refused.items()}}),
                   encoding="utf-8")
    os.replace(tmp, cache_dir / f"{k}.json")


def _resolution_data(resolution: Resolution, shas: dict) -> Optional[dict]:
    if resolution.fetch_failures or any(i.source_dir or i.path is None
                                        for i in resolution.items):
        return None
    if any(i.link and i.link.url.startswith("file:") and i.is_direct for i in resolution.items):
        return None
    # a build that ran out of time now may finish next time; one whose time-out was
    # remembered (resolve.failed_builds) is not tried again within the memo's lifetime,
    # which is longer than this cache's, so the outcome stands
    if any(a.get("timed_out") and not a.get("remembered")
           for src in resolution.sources.values() for a in src.get("attempts", ())):
        return None
    items = []
    for i in resolution.items:
        if i.path is None or i.path.name not in shas:
            return None
        items.append({"name": i.name, "version": i.version,
                      "link": asdict(i.link) if i.link else None,
                      "filename": i.path.name, "sha256": shas[i.path.name],
                      "is_direct": i.is_direct, "user_supplied": i.user_supplied,
                      "requires_python": i.requires_python, "extras": list(i.extras)})
    return {"items": items,
            "links": {n: [asdict(x) for x in v] for n, v in resolution.links.items()},
            "not_found": [asdict(nf) for nf in resolution.not_found],
            "sources": resolution.sources}
