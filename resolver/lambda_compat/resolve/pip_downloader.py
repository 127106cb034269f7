"""Wheels fetched on a guess, downloaded by a process of their own (pip's process only).

pip's process resolves on one thread and, beside it, reads index pages, parses their JSON
and makes links on a dozen more: all of it under one GIL. A wheel downloading there took
the GIL back for every TLS record (16 kB): numpy's 14 MB took 0.9 s where curl takes 0.07 s,
and the GIL the downloads held was time the resolver waited (traced cold python3.12/arm64
builds of issue 15's pins: in that phase pip's process used one core, the other idled).

:meth:`ForkedDownloader.start` forks pip's process once its session exists and before that
session has opened any connection, while it has no other thread: the child shares nothing
with its parent but the session's configuration (certificates, proxies, credentials, cache:
the very objects pip made, copied by the fork) and downloads with its own GIL, on threads
of its own, what the parent asks for (a URL and the path to write it to), answering with the
file's content type and sha256. Where it cannot be forked (another thread runs, a
connection is open, no ``fork``), :meth:`start` returns None and the parent downloads as
before. A child that dies fails what it was asked: pip then fetches those files itself.
The child dies with its parent (``PR_SET_PDEATHSIG``), and :meth:`close` kills it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Dict, Optional, Tuple

#: The size of the pieces a download is read in (requests' streaming default: 10 kB).
CHUNK_BYTES = 256 * 1024


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
    with session.get(url, stream=True) as response:
        response.raise_for_status()
        with open(path, "wb") as out:
            for chunk in response.iter_content(chunk_size=CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
        return response.headers.get("Content-Type", ""), digest.hexdigest()


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
    def start(cls, session: Any, threads: int) -> Optional["ForkedDownloader"]:
        """Fork the download process now, or None where that is not safe (see the module)."""
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
                _serve(session, requests_r, replies_w, threads)
                status = 0
            finally:
                os._exit(status)
        os.close(requests_r)
        os.close(replies_w)
        return cls(pid, requests_w, replies_r)

    def get(self, url: str, path: str) -> "Future[Tuple[str, str]]":
        """Have the child write ``url`` to ``path``: a future of (content type, sha256)."""
        future: "Future[Tuple[str, str]]" = Future()
        with self._lock:
            if self._closed:
                future.set_exception(OSError("the download process has ended"))
                return future
            self._next_id += 1
            ident = self._next_id
            self._pending[ident] = future
            line = json.dumps({"id": ident, "url": url, "path": path}) + "\n"
            try:
                os.write(self._requests, line.encode())
            except OSError as exc:
                del self._pending[ident]
                future.set_exception(exc)
        return future

    def _read_replies(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as replies:
            for line in replies:
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue
                with self._lock:
                    future = self._pending.pop(reply.get("id"), None)
                if future is None:
                    continue
                if "error" in reply:
                    future.set_exception(OSError(reply["error"]))
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


def _serve(session: Any, requests_fd: int, replies_fd: int, threads: int) -> None:
    """The child: download what each request line names, on ``threads`` threads, and answer
    each with one line; returns when the parent closes its end."""
    lock = threading.Lock()

    def one(request: Dict[str, Any]) -> None:
        reply: Dict[str, Any] = {"id": request.get("id")}
        try:
            reply["content_type"], reply["sha256"] = download(
                session, str(request["url"]), str(request["path"]))
        except BaseException as exc:  # the parent's pip fetches it itself
            reply["error"] = f"{type(exc).__name__}: {exc}"
        data = (json.dumps(reply) + "\n").encode()
        with lock:
            os.write(replies_fd, data)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lc-child-file") as pool, \
            os.fdopen(requests_fd, "rb") as requests:
        for line in requests:
            try:
                pool.submit(one, json.loads(line))
            except ValueError:
                continue
        pool.shutdown(wait=False, cancel_futures=True)
