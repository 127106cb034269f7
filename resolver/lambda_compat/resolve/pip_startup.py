"""How lambda-compat's pip process starts: what it imports ahead, how its threads and its
garbage collector are tuned, what it makes while a standby process waits for its spec
(:mod:`lambda_compat.resolve.pip_standby`). Used by :mod:`lambda_compat.resolve.pip_shim`
in that process only.
"""

from __future__ import annotations

import sys
import threading
from typing import Any


def import_pip() -> threading.Thread:
    """The modules every resolution imports (most of a pip process's start-up); pip's
    user agent is made on a thread as soon as its module is in (the thread it returns)."""
    from pip._internal.metadata import select_backend
    from pip._internal.network import session
    select_backend()  # imported here, not on the thread (user_agent() reads setuptools')
    agent = threading.Thread(target=_user_agent, args=(session,), name="lc-user-agent",
                             daemon=True)
    agent.start()
    from pip._internal.commands.download import DownloadCommand  # noqa: F401
    from pip._internal.index import collector, package_finder  # noqa: F401
    from pip._internal.operations import prepare  # noqa: F401
    from pip._internal.req import constructors, req_file  # noqa: F401
    from pip._internal.resolution.resolvelib import factory, resolver  # noqa: F401
    from lambda_compat.resolve import pip_patches, pip_prefetch, pip_sandbox  # noqa: F401
    return agent


def _user_agent(session: Any) -> None:
    """pip's User-Agent header, made once per process (``network.session.user_agent``, which
    pip caches): it runs ``rustc --version`` when rustc is on PATH and reads the Linux
    distribution (``lsb_release`` where installed): about 50 ms, mostly waiting for those
    processes, that a standby process spends while it imports the rest of pip instead of
    after its spec has come. It depends on the environment only, never on the spec."""
    try:
        session.user_agent()
    except Exception:  # pip makes it itself when it builds its session
        pass


#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
SWITCH_INTERVAL = 0.0005
#: The pieces in which requests reads a response body it is not streaming (its default:
#: 10 kB): an index page of several MB (pydantic-core's: 7 MB of JSON).
PAGE_CHUNK_BYTES = 256 * 1024


def tune_threads() -> None:
    """This process reads index pages and files on a dozen threads while others parse JSON
    and make links: a thread back from a socket read waited up to the switch interval for
    the GIL after every 10 kB piece, so a 3 MB page took 0.7-1.3 s to arrive where curl
    takes 0.1 s (traced cold python3.12/arm64 builds). Shorter GIL turns, bigger pieces:
    sqlalchemy's page 0.5-0.6 s, pydantic-core's 0.3 s."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    from pip._vendor.requests import models
    models.CONTENT_CHUNK_SIZE = max(models.CONTENT_CHUNK_SIZE, PAGE_CHUNK_BYTES)


#: Python's cyclic garbage collector in pip's process: a first generation of this many
#: objects, the older ones collected as rarely as mypy does (its ``gc.set_threshold``).
GC_THRESHOLD = (200_000, 30, 30)


def tune_gc() -> None:
    """The objects made so far (pip's modules, in a standby process) are left out of every
    collection, and collections are rarer. A cold resolution parses ~27 MB of JSON index
    pages into dicts and lists that live until pip takes them; with the default thresholds
    (700, 10, 10) the collector traversed them again and again: 0.2-0.38 s of this
    process's 1.8-2.2 s of CPU (traced, cold python3.12/arm64, issue 15's pins), 0.02 s
    after. Objects are still freed as soon as nothing refers to them; only reference
    cycles wait longer, in a process that lives for one resolution."""
    import gc
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def warm_up() -> None:
    """What every resolution does first that depends on nothing in its spec, done on a
    thread of a standby process while its main thread imports pip: pip's TLS context
    (pip_tls.premake_tls_context: OpenSSL loads the trust anchors without holding the
    GIL), the MIME types table (read from /etc/mime.types when pip saves its first
    download)."""
    import mimetypes

    from lambda_compat.resolve import pip_tls
    try:
        pip_tls.premake_tls_context()
    except Exception:  # pip makes its context itself, and reports what fails
        pass
    mimetypes.init()
