"""pip's gzip/deflate responses inflated with zlib-ng (resolve/pip_patches._patch_gzip_inflater):
the same bytes as with the stdlib's zlib, for one gzip member, several, a raw deflate body and
a chunked body; a corrupt body is still urllib3's decoding error (requests'
ContentDecodingError), as it was. Against a real HTTP server on loopback, through pip's own
vendored requests."""

from __future__ import annotations

import gzip
import os
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("zlib_ng")
from pip._vendor import requests  # noqa: E402
from pip._vendor.urllib3 import response  # noqa: E402

from lambda_compat.resolve import pip_patches  # noqa: E402

PAGE = (b'{"meta": {"api-version": "1.1"}, "files": ['
        + b",".join(b'{"filename": "demo-%d.0-py3-none-any.whl"}' % i for i in range(20000))
        + b"]}") + os.urandom(4096)
HALF = len(PAGE) // 2


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


BODIES = {
    "/gzip": ("gzip", gzip.compress(PAGE)),
    "/two-members": ("gzip", gzip.compress(PAGE[:HALF]) + gzip.compress(PAGE[HALF:])),
    "/deflate": ("deflate", zlib.compress(PAGE)),
    "/raw-deflate": ("deflate", _deflate_raw(PAGE)),
    "/corrupt": ("gzip", gzip.compress(PAGE)[:20] + b"\x00" * 64 + gzip.compress(PAGE)[84:]),
}


@pytest.fixture(scope="module")
def base_url():
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            path, chunked = self.path, self.path.endswith("?chunked")
            encoding, body = BODIES[path.split("?")[0]]
            self.send_response(200)
            self.send_header("Content-Encoding", encoding)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 7000):
                    part = body[i:i + 7000]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # the client of /corrupt drops the connection before the body ends

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def patched(monkeypatch):
    # registered first, so that the patch's changes are undone after the test
    monkeypatch.setattr(response, "zlib", response.zlib)
    monkeypatch.setattr(response.BaseHTTPResponse, "DECODER_ERROR_CLASSES",
                        response.BaseHTTPResponse.DECODER_ERROR_CLASSES)
    pip_patches._patch_gzip_inflater()
    yield


def test_the_patch_puts_zlib_ng_behind_urllib3s_decoders(patched):
    from zlib_ng import zlib_ng
    assert response.zlib is not zlib
    assert type(response.GzipDecoder()._obj) is type(zlib_ng.decompressobj())
    assert type(response.DeflateDecoder()._obj) is type(zlib_ng.decompressobj())


def test_installing_it_twice_changes_nothing_more(patched):
    once = (response.zlib, response.BaseHTTPResponse.DECODER_ERROR_CLASSES)
    pip_patches._patch_gzip_inflater()
    assert (response.zlib, response.BaseHTTPResponse.DECODER_ERROR_CLASSES) == once


@pytest.mark.parametrize("path", ["/gzip", "/two-members", "/deflate", "/raw-deflate"])
@pytest.mark.parametrize("chunked", [False, True])
def test_bodies_inflate_to_the_same_bytes(patched, base_url, path, chunked):
    with requests.Session() as session:
        got = session.get(base_url + path + ("?chunked" if chunked else "")).content
    assert got == PAGE


@pytest.mark.parametrize("path", ["/gzip", "/deflate"])
def test_streamed_reads_inflate_to_the_same_bytes(patched, base_url, path):
    with requests.Session() as session:
        r = session.get(base_url + path, stream=True)
        got = b"".join(r.iter_content(chunk_size=10240))
    assert got == PAGE


@pytest.mark.parametrize("patch", [False, True])
def test_a_corrupt_body_is_still_a_decoding_error(monkeypatch, base_url, patch):
    if patch:
        monkeypatch.setattr(response, "zlib", response.zlib)
        monkeypatch.setattr(response.BaseHTTPResponse, "DECODER_ERROR_CLASSES",
                            response.BaseHTTPResponse.DECODER_ERROR_CLASSES)
        pip_patches._patch_gzip_inflater()
    with requests.Session() as session:
        with pytest.raises(requests.exceptions.ContentDecodingError):
            session.get(base_url + "/corrupt").content
