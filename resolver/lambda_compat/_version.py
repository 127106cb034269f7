"""The version of lambda-compat (a leaf module: every part may import it)."""

import functools
import hashlib
from pathlib import Path
from typing import Optional, Tuple

__version__ = "0.1.0"


@functools.lru_cache(maxsize=None)
def code_fingerprint(modules: Optional[Tuple[str, ...]] = None) -> str:
    """The version and a digest of the package's own files (path, size, modification time):
    all of them, or only ``modules`` (paths relative to the package, e.g.
    ``"resolve/sdist_build.py"``).

    Part of the keys of what is remembered for a while from a run's *outcome* (resolutions,
    failed builds): another lambda-compat, even one between releases, decides afresh
    rather than repeat the answer of the code it replaced. (Built wheels and verdicts are
    keyed by their inputs' content and stay valid across versions.) File metadata, not
    contents: it is on the path of every warm run, and a file merely touched only costs
    one fresh decision."""
    h = hashlib.sha256(__version__.encode())
    root = Path(__file__).resolve().parent
    paths = sorted(root.rglob("*.py")) if modules is None else [root / m for m in
                                                                 sorted(modules)]
    for path in paths:
        try:
            st = path.stat()
        except OSError:  # a file removed while we look (or a module that is not there)
            h.update(f"{path.relative_to(root)}\0-\0".encode())
            continue
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return f"{__version__}+{h.hexdigest()[:16]}"
