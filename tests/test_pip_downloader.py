"""Guessed wheels downloaded by a process forked from pip's (resolve/pip_downloader.py): it
forks only when that is safe, answers with the file's own sha256, fails what it cannot fetch,
dies with its parent, and a resolution through it is pip's answer (test_pip_prefetch.py's
loopback resolutions run pip's process, which forks it)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pip._internal.network.session import PipSession

from lambda_compat.resolve import pip_downloader

RESOLVER = Path(__file__).resolve().parents[1] / "resolver"
BODY = os.urandom(700_000)  # a few pieces of CHUNK_BYTES


SERVED: list = []  # the paths the server answered
PAGE = json.dumps({"meta": {"api-version": "1.1"}, "name": "j",
                   "files": [{"filename": f"j-{i}.0.tar.gz", "url": f"j-{i}.0.tar.gz",
                              "hashes": {}} for i in range(300)]}).encode()


@pytest.fixture(scope="module")
def server():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path in ("/simple/j/", "/simple/gz/"):  # pages the index lets pip cache
                SERVED.append(self.path)
                body = PAGE if self.path == "/simple/j/" else gzip.compress(PAGE)
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                self.send_header("Cache-Control", "max-age=600, public")
                if self.path == "/simple/gz/":
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if self.path not in ("/files/p-1.0-py3-none-any.whl", "/files/c-1.0-py3-none-any.whl",
                                 "/files/e-1.0-py3-none-any.whl"):
                self.send_error(404)
                return
            SERVED.append(self.path)
            if self.path.startswith("/files/e-"):  # revalidated every time, by its ETag
                if self.headers.get("If-None-Match") == '"e1"':
                    self.send_response(304)
                    self.send_header("ETag", '"e1"')
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", '"e1"')
                self.send_header("Cache-Control", "max-age=0, must-revalidate")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)
                return
            self.send_response(200)
            self.send_header("Content-Type", "binary/octet-stream")
            self.send_header("Content-Length", str(len(BODY)))
            if self.path.startswith("/files/c-"):  # as the index serves its files
                self.send_header("Cache-Control", "max-age=365000000, immutable, public")
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _scenario(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter (this one may run threads: pytest-xdist's), where
    ``session`` is a new PipSession and ``out(**kw)`` records the result."""
    script = textwrap.dedent("""
        import json, os, sys, threading
        from pip._internal.network.session import PipSession
        from lambda_compat.resolve import pip_downloader
        result = {}
        def out(**kw):
            result.update(kw)
        session = PipSession()
    """) + textwrap.dedent(code) + "\nprint(json.dumps(result))\n"
    env = dict(os.environ, PYTHONPATH=str(RESOLVER))
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_child_writes_the_file_and_answers_with_its_own_sha256(server, tmp_path):
    found = _scenario(f"""
        d = pip_downloader.ForkedDownloader.start(session, threads=2)
        out(forked=d is not None, child=d.pid != os.getpid())
        good = d.get("{server}/files/p-1.0-py3-none-any.whl", "{tmp_path}/a.whl")
        missing = d.get("{server}/files/none.whl", "{tmp_path}/b.whl")
        out(good=list(good.result(30)))
        try:
            missing.result(30)
        except OSError as exc:
            out(missing=str(exc))
        d.close()
        out(reaped=not os.path.exists(f"/proc/{{d.pid}}"))
    """, tmp_path)
    assert found["forked"] and found["child"]
    assert found["good"] == ["binary/octet-stream", hashlib.sha256(BODY).hexdigest()]
    assert (tmp_path / "a.whl").read_bytes() == BODY
    assert "404" in found["missing"]  # pip fetches it itself, and reports what is wrong
    assert found["reaped"]


def test_no_fork_beside_another_thread_or_after_a_connection_was_made(server, tmp_path):
    found = _scenario(f"""
        out(fresh=pip_downloader.fork_safe(session))
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        out(beside_a_thread=pip_downloader.ForkedDownloader.start(session, 2) is None)
        stop.set(); t.join()
        session.get("{server}/files/p-1.0-py3-none-any.whl").content
        out(after_a_connection=pip_downloader.fork_safe(session))
        out(refused=pip_downloader.ForkedDownloader.start(session, 2) is None)
    """, tmp_path)
    assert found == {"fresh": True, "beside_a_thread": True, "after_a_connection": False,
                     "refused": True}
    assert not pip_downloader.fork_safe(object())  # a session it cannot see into


def test_what_a_dead_child_was_asked_fails_and_so_does_what_is_asked_later(server, tmp_path):
    found = _scenario(f"""
        import signal, time
        d = pip_downloader.ForkedDownloader.start(session, threads=1)
        os.kill(d.pid, signal.SIGKILL)
        os.waitpid(d.pid, 0)
        errors = []
        for name in ("a", "b"):
            try:
                d.get("{server}/files/p-1.0-py3-none-any.whl", f"{tmp_path}/{{name}}").result(30)
            except OSError:  # BrokenPipeError when the write finds the pipe closed
                errors.append("OSError")
            time.sleep(0.2)
        out(errors=errors)
    """, tmp_path)
    assert found["errors"] == ["OSError", "OSError"]


def test_the_child_dies_with_its_parent(tmp_path):
    found = _scenario("""
        import time
        r, w = os.pipe()
        if os.fork() == 0:  # a parent that forks the downloader, reports its pid, and dies
            d = pip_downloader.ForkedDownloader.start(PipSession(), threads=1)
            os.write(w, str(d.pid).encode())
            os._exit(0)
        os.waitpid(-1, 0)
        pid = int(os.read(r, 32))
        for _ in range(100):
            try:
                state = open(f"/proc/{pid}/stat").read().split()[2]
            except OSError:
                break
            if state == "Z":
                break
            time.sleep(0.05)
        else:
            state = "alive"
        out(gone=state != "alive")
    """, tmp_path)
    assert found["gone"]


def test_the_same_download_in_process_when_no_child_can_be_had(server, tmp_path):
    content_type, sha = pip_downloader.download(
        PipSession(), f"{server}/files/p-1.0-py3-none-any.whl", str(tmp_path / "c.whl"))
    assert (content_type, sha) == ("binary/octet-stream", hashlib.sha256(BODY).hexdigest())
    assert (tmp_path / "c.whl").read_bytes() == BODY


def test_a_page_is_fetched_by_pips_own_fetch_in_the_child_and_narrowed_there(server, tmp_path):
    """The child runs pip's page fetch through its copy of the session; a JSON page comes
    back narrowed, anything else as it was, each as the response pip's fetch returns."""
    found = _scenario(f"""
        def fetch(url, session, force_revalidate=False):
            r = session.get("{server}/files/p-1.0-py3-none-any.whl")
            r.headers["X-Pid"], r.headers["X-Force"] = str(os.getpid()), str(force_revalidate)
            if url.endswith("j"):  # as the index sends it: the name in lower case
                del r.headers["Content-Type"]
                r.headers["content-type"] = "application/vnd.pypi.simple.v1+json"
            return r
        page = pip_downloader.page_fetch(fetch, session, narrow=lambda body: b"narrowed")
        d = pip_downloader.ForkedDownloader.start(session, 1, page=page, page_threads=2)
        j = d.page_response("https://i/j", {{"force_revalidate": True}}, "{tmp_path}/j")
        h = d.page_response("https://i/h", {{}}, "{tmp_path}/h")
        out(parent=str(os.getpid()), pid_j=j.headers["x-pid"], pid_h=h.headers["x-pid"],
            force_j=j.headers["x-force"], force_h=h.headers["x-force"],
            j=j.content.decode(), j_type=j.headers["content-type"],
            j_length=j.headers.get("content-length"), h_length=h.headers.get("content-length"),
            h_len=len(h.content), h_url=h.url, left=os.listdir("{tmp_path}"))
        d.close()
    """, tmp_path)
    assert found["pid_j"] == found["pid_h"] != found["parent"]  # fetched in the child
    assert (found["force_j"], found["force_h"]) == ("True", "False")
    assert found["j"] == "narrowed" and found["j_type"].startswith("application/vnd.pypi")
    assert found["j_length"] is None and found["h_length"] == str(len(BODY))
    assert found["h_len"] == len(BODY)  # not JSON: as pip's fetch returned it
    assert found["h_url"].endswith("/files/p-1.0-py3-none-any.whl")
    assert found["left"] == []  # the bodies' files are removed once read


def test_an_announced_file_outlives_pips_copy(tmp_path, monkeypatch):
    """file-ready hands the parent a hard link in its own pass directory: pip may move or
    remove its copy (its temporary directories go when it exits) before the parent, busy on
    a loaded machine, takes the file."""
    import io
    from lambda_compat.resolve import pip_shim
    pips = tmp_path / "pip-tmp" / "p-1.0-py3-none-any.whl"
    pips.parent.mkdir()
    pips.write_bytes(BODY)
    events = io.StringIO()
    monkeypatch.setattr(pip_shim, "_EVENTS", events)
    monkeypatch.setattr(pip_shim, "_ANNOUNCE_DIR", str(tmp_path / "pass1" / "announced"))
    pip_shim._emit("file-ready", path=str(pips), sha256="ab", filename=pips.name)
    pip_shim._emit("downloading", path=str(pips))  # other events: as they are
    announced, other = (json.loads(line) for line in events.getvalue().splitlines())
    pips.unlink()  # pip's exit
    kept = Path(announced["path"])
    assert kept.parent.parent == tmp_path / "pass1" / "announced" and kept.name == pips.name
    assert kept.read_bytes() == BODY and announced["sha256"] == "ab"
    assert other["path"] == str(pips)


def test_a_download_reads_pips_http_cache_but_does_not_store_into_it(server, tmp_path):
    """pip's cache adapter tees every body into a temporary file to store it once read: a
    second copy of each wheel written. Downloads here are kept by lambda-compat's own cache;
    they still take what pip's cache holds."""
    url = f"{server}/files/c-1.0-py3-none-any.whl"
    # a trusted host: pip caches plain-HTTP responses only from those
    cached = PipSession(cache=str(tmp_path / "http"), trusted_hosts=[server.split("//")[1]])
    SERVED.clear()
    content_type, sha = pip_downloader.download(cached, url, str(tmp_path / "a.whl"))
    assert sha == hashlib.sha256(BODY).hexdigest() and SERVED == ["/files/c-1.0-py3-none-any.whl"]
    stored = [p for p in (tmp_path / "http").rglob("*") if p.is_file()]
    assert stored == []                                   # nothing stored
    cached.get(url).content                               # pip's own fetch stores it
    assert [p for p in (tmp_path / "http").rglob("*") if p.is_file()]
    SERVED.clear()
    content_type, sha = pip_downloader.download(cached, url, str(tmp_path / "b.whl"))
    assert SERVED == [] and (tmp_path / "b.whl").read_bytes() == BODY   # from pip's cache
    twin = pip_downloader.without_cache_writes(cached)
    assert twin is pip_downloader.without_cache_writes(cached)           # made once
    assert twin.timeout == cached.timeout and twin.auth is cached.auth   # pip's settings
    plain = PipSession()                                  # no cache: the session itself
    assert pip_downloader.without_cache_writes(plain) is plain


def test_a_download_revalidated_by_pips_cache_is_the_cached_file(server, tmp_path):
    """A 304 still goes through pip's cache adapter: the answer is the cached body."""
    url = f"{server}/files/e-1.0-py3-none-any.whl"
    cached = PipSession(cache=str(tmp_path / "http"), trusted_hosts=[server.split("//")[1]])
    cached.get(url).content                                # stored, with its ETag
    SERVED.clear()
    content_type, sha = pip_downloader.download(cached, url, str(tmp_path / "e.whl"))
    assert SERVED == ["/files/e-1.0-py3-none-any.whl"]     # asked again, answered 304
    assert sha == hashlib.sha256(BODY).hexdigest()
    assert (tmp_path / "e.whl").read_bytes() == BODY


@pytest.mark.parametrize("path, tees", [("/simple/j/", 0), ("/simple/gz/", 1)])
def test_a_page_is_stored_in_pips_cache_as_pips_adapter_stores_it(server, tmp_path, path, tees,
                                                                   monkeypatch):
    """A page sent as it is: fetched without the tee and stored once read; a compressed
    one: teed by the adapter as before. Either way pip's next fetch takes it from its cache,
    decoded as sent."""
    url = f"{server}{path}"
    cached = PipSession(cache=str(tmp_path / "http"), trusted_hosts=[server.split("//")[1]])

    def fetch(url, session):
        r = session.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        r.raise_for_status()
        return r

    from pip._vendor.cachecontrol import adapter as cache_adapter
    teed = []

    class Counting(cache_adapter.CallbackFileWrapper):
        def __init__(self, *args, **kwargs):
            teed.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(cache_adapter, "CallbackFileWrapper", Counting)
    SERVED.clear()
    headers, final, body = pip_downloader.page_fetch(fetch, cached)(url, {})
    assert body == PAGE and SERVED == [path] and len(teed) == tees
    again = cached.get(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    assert again.content == PAGE and SERVED == [path]          # from pip's cache
    assert getattr(again, "from_cache", False)


def test_each_session_gets_its_own_copy_even_at_a_reused_address(tmp_path):
    """The copy is remembered per session object, not per id(): a session made after
    another was freed often gets its address, and must not be handed the freed one's copy
    (its cache directory, its connection pools)."""
    import gc
    for i in range(40):
        session = PipSession(cache=str(tmp_path / f"http{i}"))
        twin = pip_downloader.without_cache_writes(session)
        pool = session.adapters["https://"].poolmanager
        assert twin.adapters["https://"].poolmanager is pool
        assert twin.adapters["https://"].controller is session.adapters["https://"].controller
        del session, twin
        gc.collect()
