"""A cache of wheel verdicts: the findings of ``wheels.verify_wheel`` for (file, target).

A wheel's findings depend only on its bytes (named by sha256), the target's facts and the
checking code itself, so all three are in the key: a new runtimes.yaml or a change to the
checks (wheels.py, elf.py) never reuses an old verdict. Entries are small JSON files written
atomically; an unreadable entry is ignored and recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, List, Optional

from .._version import __version__
from . import elf
from . import wheels
from ..targets.target import Target
from .wheels import Finding


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    h = hashlib.sha256(__version__.encode())
    for module in (wheels, elf):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()


def target_digest(target: Target) -> str:
    """A stable digest of everything about the target that the wheel checks read."""
    facts = target.facts
    doc = {
        "name": target.name, "python": target.python_full_version, "glibc": target.glibc,
        "tags": list(target.tag_strings), "machine": target.machine,
        "facts": None if facts is None else {
            "glibcxx_max": facts.glibcxx_max, "cxxabi_max": facts.cxxabi_max,
            "gcc_max": facts.gcc_max, "sonames": sorted(facts.sonames),
        },
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=list).encode()).hexdigest()


def cached_findings(cache_dir: Optional[Path], sha256: str, target: Target,
                    compute: Callable[[], List[Finding]]) -> List[Finding]:
    if cache_dir is None or not sha256:
        return compute()
    key = hashlib.sha256(f"{_code_digest()}:{target_digest(target)}".encode()).hexdigest()[:24]
    path = cache_dir / sha256[:2] / f"{sha256}-{key}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [Finding(**f) for f in data["findings"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    findings = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"findings": [x.to_json() for x in findings]}, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs time
    return findings
