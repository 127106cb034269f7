"""Reuse a recent resolution of the same inputs for the same target.

PyPI lets clients cache its index pages for 10 minutes; pip does so through its HTTP cache,
but some mirrors send no caching headers at all, and then every run re-downloads and re-parses
tens of thousands of links. Within the same lifetime (``ttl``), a resolution of byte-identical
inputs (requirements and the files they include, target, index options, pip configuration and
PIP_* variables, lambda-compat version) is taken from here; its files come from the
content-addressed cache. Resolutions with local paths are never cached (their content can
change), and ``--refresh`` (ttl 0) bypasses the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from .._version import __version__
from .reqfile import referenced_files
from .engine import LinkInfo, PipOptions, ResolvedItem, Resolution
from ..targets.target import Target

_PIP_CONFIGS = ("/etc/pip.conf", "~/.config/pip/pip.conf", "~/.pip/pip.conf")


def key(requirements: Path, target: Target, pip: PipOptions) -> str:
    h = hashlib.sha256()
    h.update(f"{__version__}\0{target.name}\0{target.python_full_version}\0"
             f"{target.glibc}\0{pip.args()}\0{requirements.resolve()}\0".encode())
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


def load(cache_dir: Path, k: str, cas: Path, ttl: float) -> Optional[Resolution]:
    path = cache_dir / f"{k}.json"
    if ttl <= 0 or not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if time.time() - data.get("created", 0) > ttl:
        return None
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
    return Resolution(items=tuple(items), links=links, cache_hits=tuple(files), log_path=None,
                      message="resolution reused")


def store(cache_dir: Path, k: str, resolution: Resolution, shas: dict) -> None:
    if not resolution.ok or any(i.source_dir or i.path is None for i in resolution.items):
        return
    if any(i.link and i.link.url.startswith("file:") and i.is_direct for i in resolution.items):
        return
    items = []
    for i in resolution.items:
        if i.path is None or i.path.name not in shas:
            return
        items.append({"name": i.name, "version": i.version,
                      "link": asdict(i.link) if i.link else None,
                      "filename": i.path.name, "sha256": shas[i.path.name],
                      "is_direct": i.is_direct, "user_supplied": i.user_supplied,
                      "requires_python": i.requires_python, "extras": list(i.extras)})
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{k}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps({"created": time.time(), "items": items,
                               "links": {n: [asdict(l) for l in v]
                                         for n, v in resolution.links.items()}}),
                   encoding="utf-8")
    os.replace(tmp, cache_dir / f"{k}.json")
