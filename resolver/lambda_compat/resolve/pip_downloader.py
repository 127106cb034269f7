"""Index pages and wheels fetched ahead of pip, by a process of their own (pip's process
only).

pip's process resolves on one thread and, beside it, reads index pages, parses their JSON
and makes links on a dozen more: all of it under one GIL. A wheel downloading there took
the GIL back for every TLS record (16 kB): numpy's 14 MB took 0.9 s where curl takes 0.07 s;
parsing a page (sqlalchemy's: 3 MB of JSON, 6,800 files of which the target can use a few
dozen) held it for tens of milliseconds at a time. Meanwhile the resolver waited (traced cold
python3.12/arm64 builds of issue 15's pins: in that phase pip's process used one core, the
other idled).

:meth:`ForkedDownloader.start` forks pip's process once its session exists and before that
session has opened any connection, while it has no other thread. The child shares nothing
with its parent but the session's configuration (certificates, proxies, credentials, cache:
the very objects pip made, copied by the fork) and works with its own GIL, on threads of its
own, on what the parent asks:

* a file (:meth:`~ForkedDownloader.get`: a URL and the path to write it to), answered with
  its content type and sha256;
* a page (:meth:`~ForkedDownloader.page_response`): pip's own page fetch, run in the child
  (:func:`page_fetch`), a JSON page narrowed there to the files the target can use (the
  filter pip's process applies to every page anyway: the target's tags, the versions the
  requirements allow), handed back as the response pip's fetch returns.

Where it cannot be forked (another thread runs, a connection is open, no ``fork``),
:meth:`start` returns None and the parent fetches as before. A child that dies fails what it
was asked: pip then fetches those pages and files itself, and reports what goes wrong. The
child dies with its parent (``PR_SET_PDEATHSIG``), and :meth:`close` kills it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import signal
import sys
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

#: The size of the pieces a download is read in (requests' streaming default: 10 kB).
CHUNK_BYTES = 256 * 1024

#: What the child runs for a page: (url, options) -> (response headers, final URL, body).
PageFetch = Callable[[str, Dict[str, Any]], Tuple[Dict[str, str], str, bytes]]


def fork_safe(session: Any) -> bool:
    """True when ``session`` has network adapters (pip's ``https://`` and ``http://``) and
    none of them has a connection pool yet: nothing a forked copy could share with its
    original. False for anything else (a session this cannot see into)."""
    adapters = [a for a in getattr(session, "adapters", {}).values()
                if hasattr(a, "poolmanager")]  # pip's file:// adapter has none
    for adapter in adapters:
        pools = getattr(adapter.poolmanager, "pools", None)
        if pools is None or len(pools) or getattr(adapter, "proxy_manager", None):
            return False
    return bool(adapters)


def download(session: Any, url: str, path: str) -> Tuple[str, str]:
    """``url`` written to ``path`` through ``session``: (content type, sha256)."""
    digest = hashlib.sha256()
    with without_cache_writes(session).get(url, stream=True) as response:
        response.raise_for_status()
        with open(path, "wb") as out:
            for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
        return response.headers.get("Content-Type", ""), digest.hexdigest()


#: session -> {pages: its copy}; weakly keyed: a session made after another was freed often
#: gets the freed one's id(), and must not be handed that one's copy (its cache, its pools)
_TWINS: "weakref.WeakKeyDictionary[Any, Dict[bool, Any]]" = weakref.WeakKeyDictionary()
_TWINS_LOCK = threading.Lock()


def without_cache_writes(session: Any, pages: bool = False) -> Any:
    """``session`` (one copy per session) whose caching adapters answer from pip's HTTP
    cache (a 304 included) but do not tee what they fetch. pip's cache adapter copies every
    GET body into a temporary file while it is read, to store it once it is complete (if
    its headers allow): a second copy of every wheel and page written to disk, on the
    download process's one GIL (38 MB of wheels and 27 MB of pages in a cold build of issue
    15's pins). The wheels downloaded here are kept in lambda-compat's own file cache (by
    sha256), where every later run looks first: never stored. ``pages``: a page sent as it
    is (no Content-Encoding) is stored by :func:`store_read_page` once read, as the adapter
    would have stored it; a compressed one is teed as before (only the adapter sees its
    bytes as sent). A session without caching adapters: itself."""
    adapters: Any = getattr(session, "adapters", None)
    caching = {prefix: a for prefix, a in (adapters or {}).items()
               if hasattr(a, "cacheable_methods") and hasattr(a, "controller")}
    if not caching:
        return session
    with _TWINS_LOCK:
        twins = _TWINS.setdefault(session, {})
        if pages not in twins:
            import functools
            twin = _shallow_copy(session)
            twin.adapters = type(adapters)(adapters)
            for prefix, adapter in caching.items():
                plain = _shallow_copy(adapter)  # the same connection pools and settings
                plain.build_response = functools.partial(  # type: ignore[method-assign]
                    _build_without_tee, type(adapter).build_response, plain, pages)
                twin.adapters[prefix] = plain
            twins[pages] = twin  # holds the session's attributes, not the session
        return twins[pages]


def _build_without_tee(build: Callable[..., Any], adapter: Any, pages: bool, request: Any,
                       response: Any, from_cache: bool = False, cacheable_methods: Any = None
                       ) -> Any:
    """The cache adapter's ``build_response`` as it is, but for a fresh answer (not a 304,
    not from the cache; for ``pages``, not compressed): built as for a method it does not
    cache (no tee); a page built so is marked to be stored once read."""
    fresh = not from_cache and getattr(response, "status", None) != 304
    encoded = str(getattr(response, "headers", {}).get("Content-Encoding", "identity")
                  ).strip().lower() not in ("", "identity")
    if not fresh or (pages and encoded):
        return build(adapter, request, response, from_cache, cacheable_methods)
    built = build(adapter, request, response, from_cache, ("NO-STORE",))
    built.lc_store_when_read = pages
    return built


def store_read_page(response: Any, body: bytes) -> None:
    """A page built without the tee (:func:`without_cache_writes` with ``pages``), stored in
    pip's HTTP cache now that its ``body`` is read, by the adapter's own controller (which
    decides from the headers whether to keep it). One that cannot be is only not cached."""
    if not getattr(response, "lc_store_when_read", False):
        return
    try:
        adapter = response.connection
        adapter.controller.cache_response(response.request, response.raw, body)
    except Exception:
        pass


def _shallow_copy(obj: Any) -> Any:
    """A copy sharing every attribute (requests' own copy protocol rebuilds the connection
    pools, and keeps only requests' attributes, not pip's)."""
    twin = object.__new__(type(obj))
    twin.__dict__.update(obj.__dict__)
    return twin


def page_fetch(fetch: Callable[..., Any], session: Any,
               narrow: Optional[Callable[[bytes], bytes]] = None) -> PageFetch:
    """What the child runs for a page: pip's own page fetch ``fetch``
    (``collector._get_simple_response``) through the child's copy of ``session`` (pip's
    cache, credentials, certificates), a JSON page narrowed by ``narrow`` to what the target
    can use (pip_patches.target_link_parser's ``narrow_json_page``)."""
    force_arg = "force_revalidate" in inspect.signature(fetch).parameters

    untee = without_cache_writes(session, pages=True)

    def page(url: str, options: Dict[str, Any]) -> Tuple[Dict[str, str], str, bytes]:
        kwargs: Dict[str, Any] = {"session": untee}
        if force_arg:
            kwargs["force_revalidate"] = bool(options.get("force_revalidate"))
        response = fetch(url, **kwargs)
        body, headers = response.content, dict(response.headers)
        store_read_page(response, body)
        # the response's own (case-insensitive) headers: an index sends "content-type" too
        if narrow is not None and str(response.headers.get("Content-Type", "")).startswith(
                "application/vnd.pypi.simple.v1+json"):
            body = narrow(body)
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        return headers, str(response.url), body

    return page


class ForkedDownloader:
    """The parent's side of a download process (:meth:`start`)."""

    def __init__(self, pid: int, requests_fd: int, replies_fd: int) -> None:
        self.pid = pid
        self._requests = requests_fd
        self._pending: Dict[int, "Future[Tuple[str, str]]"] = {}
        self._next_id = 0
        self._lock = threading.Lock()
        self._closed = False
        self._reader = threading.Thread(target=self._read_replies, args=(replies_fd,),
                                        name="lc-downloader", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, session: Any, threads: int, page: Optional[PageFetch] = None,
              page_threads: int = 0) -> Optional["ForkedDownloader"]:
        """Fork the download process now, or None where that is not safe (see the module).
        ``page``: what the child runs for :meth:`page` (on ``page_threads`` threads)."""
        if not hasattr(os, "fork") or threading.active_count() != 1 \
                or not fork_safe(session):
            return None
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()  # nothing buffered is written twice
            except (OSError, ValueError, AttributeError):
                pass
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            status = 1
            try:
                os.close(requests_w)
                os.close(replies_r)
                from lambda_compat.resolve.pip_sandbox import die_with_parent
                die_with_parent(signal.SIGKILL)
                _serve(session, requests_r, replies_w, threads, page, page_threads)
                status = 0
            finally:
                os._exit(status)
        os.close(requests_r)
        os.close(replies_w)
        return cls(pid, requests_w, replies_r)

    def get(self, url: str, path: str) -> "Future[Tuple[str, str]]":
        """Have the child write ``url`` to ``path``: a future of (content type, sha256)."""
        return self._ask({"kind": "file", "url": url, "path": path})

    def page(self, url: str, options: Dict[str, Any], path: str
             ) -> "Future[Tuple[Dict[str, str], str]]":
        """Have the child run its ``page`` function (:meth:`start`) for ``url`` and write the
        body it returns to ``path``: a future of (response headers, final URL)."""
        return self._ask({"kind": "page", "url": url, "options": options, "path": path})

    def page_response(self, url: str, options: Dict[str, Any], path: str) -> Any:
        """:meth:`page` as pip's page fetch returns it: a requests ``Response`` (pip reads
        its content, its headers and its final URL); ``path`` is removed."""
        from pip._vendor.requests.models import Response
        from pip._vendor.requests.structures import CaseInsensitiveDict
        headers, final = self.page(url, options, path).result()
        try:
            with open(path, "rb") as f:
                body = f.read()
        finally:
            os.unlink(path)
        response = Response()
        response.status_code, response.url = 200, final
        response.headers = CaseInsensitiveDict(headers)
        response._content = body
        return response

    def _ask(self, request: Dict[str, Any]) -> "Future[Any]":
        future: "Future[Any]" = Future()
        with self._lock:
            if self._closed:
                future.set_exception(OSError("the download process has ended"))
                return future
            self._next_id += 1
            ident = self._next_id
            self._pending[ident] = future
            try:
                _send(self._requests, dict(request, id=ident))
            except OSError as exc:
                del self._pending[ident]
                future.set_exception(exc)
        return future

    def _read_replies(self, fd: int) -> None:
        for reply in _received(fd):
            ident = reply.get("id")
            with self._lock:
                future = self._pending.pop(ident, None) if isinstance(ident, int) else None
            if future is None:
                continue
            if "error" in reply:
                future.set_exception(OSError(reply["error"]))
            elif "headers" in reply:
                future.set_result((reply["headers"], reply["url"]))
            else:
                future.set_result((reply["content_type"], reply["sha256"]))
        self._fail_pending()  # the child is gone

    def _fail_pending(self) -> None:
        with self._lock:
            self._closed = True
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(OSError("the download process has ended"))

    def close(self) -> None:
        """Kill the child (downloads under way are abandoned) and reap it."""
        with self._lock:
            self._closed = True
        for end in (lambda: os.close(self._requests), lambda: os.kill(self.pid, signal.SIGKILL),
                    lambda: os.waitpid(self.pid, 0)):
            try:
                end()
            except OSError:
                pass


def _serve(session: Any, requests_fd: int, replies_fd: int, threads: int,
           page: Optional[PageFetch], page_threads: int) -> None:
    """The child: do what each request line asks, files on ``threads`` threads and pages on
    ``page_threads`` (a page never waits behind a download), and answer each with one line;
    returns when the parent closes its end."""
    lock = threading.Lock()

    def one(request: Dict[str, Any]) -> None:
        reply: Dict[str, Any] = {"id": request.get("id")}
        url, path = str(request.get("url")), str(request.get("path"))
        try:
            if request.get("kind") == "page":
                if page is None:
                    raise OSError("no page function in this download process")
                reply["headers"], reply["url"], body = page(url, request.get("options") or {})
                with open(path, "wb") as out:
                    out.write(body)
            else:
                reply["content_type"], reply["sha256"] = download(session, url, path)
        except BaseException as exc:  # the parent's pip fetches it itself
            reply["error"] = f"{type(exc).__name__}: {exc}"
        with lock:
            _send(replies_fd, reply)

    files = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lc-child-file")
    pages = ThreadPoolExecutor(max_workers=max(1, page_threads),
                               thread_name_prefix="lc-child-page")
    for request in _received(requests_fd):
        (pages if request.get("kind") == "page" else files).submit(one, request)
    for pool in (files, pages):
        pool.shutdown(wait=False, cancel_futures=True)


def _send(fd: int, message: Dict[str, Any]) -> None:
    """``message`` as one JSON line on the pipe ``fd``, all of it (a write a signal cut short
    is continued: a line cut in two would leave its future waiting forever)."""
    view = memoryview((json.dumps(message) + "\n").encode())
    while view:
        view = view[os.write(fd, view):]


def _received(fd: int) -> Iterator[Dict[str, Any]]:
    """The JSON objects on the pipe ``fd``, one per line, until the other end closes it."""
    with os.fdopen(fd, "rb") as lines:
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                yield message
