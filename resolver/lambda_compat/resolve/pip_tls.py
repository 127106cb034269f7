"""pip's TLS trust in a context configured once (pip's process only).

On Linux pip trusts its certifi bundle plus the system's CA store (truststore). truststore
verifies through OpenSSL there, but loads the system store again for every new connection and
holds one lock across each handshake; urllib3 asks the context to load ``--cert`` (or
REQUESTS_CA_BUNDLE's file) for every new connection too. :func:`patch_tls_context` gives pip
the same trust in a context whose anchors are loaded once per file; a standby pip process
makes it ahead (:func:`premake_tls_context`).
"""

from __future__ import annotations

import functools
import os
import ssl
import threading
from typing import Any, Optional, Tuple

#: Held while a context loads trust anchors: the first connections of a resolution start
#: together, and each would load the same file (see :class:`_OnceConfiguredContext`).
_LOAD_LOCK = threading.Lock()


class _OnceConfiguredContext(ssl.SSLContext):
    """An SSL context whose trust anchors are loaded once: loading the same locations
    again (urllib3 does so for every new connection when pip has ``--cert``, or when
    REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE is set) is skipped. A connection that asks for
    locations being loaded waits for that load: the eight connections a cold resolution
    opens at once each loaded the system bundle (0.11-0.22 s of CPU each, traced)."""

    def load_verify_locations(self, cafile: Any = None, capath: Any = None,
                              cadata: Any = None) -> None:
        if cadata is not None and not isinstance(cadata, (str, bytes)):
            return super().load_verify_locations(cafile, capath, cadata)  # not hashable
        key = (os.fspath(cafile) if cafile is not None else None,
               os.fspath(capath) if capath is not None else None, cadata)
        with _LOAD_LOCK:
            loaded = self.__dict__.setdefault("_lc_loaded", set())
            if key in loaded:
                return
            super().load_verify_locations(cafile, capath, cadata)
            loaded.add(key)

    def set_default_verify_paths(self) -> None:
        """OpenSSL's defaults, as always; its default CA file (SSL_CERT_FILE, else the one
        OpenSSL was built with) is loaded at once, so a later request to load that very
        file (REQUESTS_CA_BUNDLE often names it) adds nothing and is skipped."""
        with _LOAD_LOCK:
            super().set_default_verify_paths()
            cafile = ssl.get_default_verify_paths().cafile  # None unless the file exists
            if cafile:
                self.__dict__.setdefault("_lc_loaded", set()).add((cafile, None, None))


def patch_tls_context() -> None:
    """On Linux, pip's default TLS trust (truststore: the certifi bundle plus the system's CA
    store) in a context configured once, instead of a truststore context.

    truststore verifies through OpenSSL on Linux (its peer check after the handshake is a
    no-op there), but for every new connection it loads the system CA store again (about
    55 ms of CPU here) and holds one lock across the whole handshake, so the connections a
    cold resolution opens at once (index pages, files) queue behind each other. The same
    trust, configured once: pip's certifi bundle, then the system store chosen by
    truststore's own rule (``_openssl._configure_context``). pip's ``--cert``,
    ``--client-cert`` and ``--use-deprecated=legacy-certs`` work as before; off Linux, or
    if truststore's layout is not the one expected, pip keeps its own context."""
    parts = _trust_parts()
    if parts is None:
        return
    certifi, configure = parts
    try:
        from pip._internal.cli import index_command
    except ImportError:
        return
    original = getattr(index_command, "_create_truststore_ssl_context", None)
    if original is None or getattr(original, "lc_once", False):
        return  # not the layout expected, or patched already

    @functools.lru_cache(maxsize=None)
    def create_ssl_context() -> Any:
        if original() is None:  # pip found no ssl or no truststore: as pip would
            return None
        with _PREMADE_LOCK:
            premade = _PREMADE.pop() if _PREMADE else None
        return premade if premade is not None else _configured_context(certifi, configure)

    create_ssl_context.lc_once = True  # type: ignore[attr-defined]
    index_command._create_truststore_ssl_context = create_ssl_context


def _trust_parts() -> Optional[Tuple[Any, Any]]:
    """pip's vendored certifi and truststore's OpenSSL configuration step, on Linux and in
    the layout expected; None otherwise (pip keeps its own context)."""
    import sys
    if not sys.platform.startswith("linux"):
        return None
    try:
        from pip._vendor import certifi
        from pip._vendor.truststore import _openssl
    except ImportError:
        return None
    configure = getattr(_openssl, "_configure_context", None)
    return None if configure is None else (certifi, configure)


def _configured_context(certifi: Any, configure: Any) -> ssl.SSLContext:
    """pip's certifi bundle, then the system CA store as truststore picks it."""
    context = _OnceConfiguredContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certifi.where())
    with configure(context):
        pass
    return context


#: A context :func:`premake_tls_context` made ahead, for :func:`patch_tls_context`'s first.
_PREMADE: list = []
_PREMADE_LOCK = threading.Lock()


def premake_tls_context() -> None:
    """Make the context of :func:`patch_tls_context` ahead (its trust anchors loaded, about
    0.05-0.1 s, mostly inside OpenSSL without the GIL), importing only pip's certifi and
    truststore's OpenSSL part: a standby pip process does it on a thread while its main
    thread imports pip. The context depends on nothing in the spec (``--cert`` and the like
    are applied per connection, as always); unused if the patch is not installed."""
    parts = _trust_parts()
    if parts is None:
        return
    context = _configured_context(*parts)
    with _PREMADE_LOCK:
        _PREMADE.append(context)
