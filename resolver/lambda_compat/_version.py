"""The version of lambda-compat (a leaf module: every part may import it)."""

import functools
import hashlib
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The version and a sha256 of the package's own code (every ``.py`` file, by path).

    Part of the keys of what is remembered for a while from a run's *outcome* (resolutions,
    failed builds): another lambda-compat, even one between releases, decides afresh
    rather than repeat the answer of the code it replaced. (Built wheels and verdicts are
    keyed by their inputs' content and stay valid across versions.)"""
    h = hashlib.sha256(__version__.encode())
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:  # pragma: no cover - a file removed while we read
            pass
        h.update(b"\0")
    return f"{__version__}+{h.hexdigest()[:16]}"
