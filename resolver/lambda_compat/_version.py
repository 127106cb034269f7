"""The version of lambda-compat (a leaf module: every part may import it)."""

import functools
import hashlib
from pathlib import Path

__version__ = "0.1.0"


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """The version and a digest of the package's own files (path, size, modification time).

    Part of the keys of what is remembered for a while from a run's *outcome* (resolutions,
    failed builds): another lambda-compat, even one between releases, decides afresh
    rather than repeat the answer of the code it replaced. (Built wheels and verdicts are
    keyed by their inputs' content and stay valid across versions.) File metadata, not
    contents: it is on the path of every warm run, and a file merely touched only costs
    one fresh decision."""
    h = hashlib.sha256(__version__.encode())
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        try:
            st = path.stat()
        except OSError:  # pragma: no cover - a file removed while we look
            continue
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return f"{__version__}+{h.hexdigest()[:16]}"
