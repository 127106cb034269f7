"""pip's TLS trust in a context configured once (resolve/pip_tls.patch_tls_context):
certificates are still verified, host names still checked, ``--cert`` still adds a CA, and
reloading the same CA file is skipped. Against a real HTTPS server on loopback, with a CA
and certificates made by the openssl command line."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, and a server certificate it signed for 127.0.0.1 / localhost."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=lambda-compat test CA", "-keyout", "ca.key", "-out", "ca.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.pem",
             cwd=d)
    return d


@pytest.fixture(scope="module")
def https_port(pki):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def patched_context(monkeypatch):
    """pip's context factory after the patch (pip's own is put back afterwards)."""
    from pip._internal.cli import index_command

    from lambda_compat.resolve import pip_tls
    monkeypatch.setattr(index_command, "_create_truststore_ssl_context",
                        index_command._create_truststore_ssl_context)
    pip_tls.patch_tls_context()
    factory = index_command._create_truststore_ssl_context
    assert isinstance(factory(), pip_tls._OnceConfiguredContext)
    return factory


def _handshake(context, port, host="127.0.0.1"):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.version()


def test_an_unknown_ca_is_refused_and_a_ca_given_like_cert_is_trusted(patched_context, pki,
                                                                      https_port):
    context = patched_context()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    # the system store and pip's certifi bundle are loaded (some hundred CAs), not ours
    assert context.cert_store_stats()["x509_ca"] > 50
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(context, https_port)
    # what urllib3 does with pip's --cert for each new connection
    context.load_verify_locations(str(pki / "ca.pem"))
    assert _handshake(context, https_port) is not None
    # the host name is still checked
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(context, https_port, host="not-this-host.example")


def test_loading_the_same_locations_again_is_skipped_and_new_ones_are_not(patched_context,
                                                                         pki):
    context = patched_context()
    before = context.cert_store_stats()["x509_ca"]
    context.load_verify_locations(str(pki / "ca.pem"))
    assert context.cert_store_stats()["x509_ca"] == before + 1
    # the same file again: skipped (it is what urllib3 would repeat per connection)
    context.load_verify_locations(str(pki / "ca.pem"))
    assert context.cert_store_stats()["x509_ca"] == before + 1
    assert str(pki / "ca.pem") in {k[0] for k in context.__dict__["_lc_loaded"]}


def test_pip_builds_its_session_with_the_context_configured_once(patched_context):
    """pip's own session factory (what the shim's pip command runs) takes the context."""
    from pip._internal.commands import create_command
    command = create_command("download")
    options, _ = command.parse_args(["--isolated", "pkg"])
    session = command._build_session(options)
    try:
        adapter = session.get_adapter("https://example.invalid/")
        assert adapter._ssl_context is patched_context()
    finally:
        session.close()


def test_connections_starting_together_load_the_same_locations_once(patched_context, pki,
                                                                     monkeypatch):
    """The first connections of a resolution start together; each asked the context to
    load the same bundle, and each did (a race on the 'already loaded' check)."""
    import time
    context = patched_context()
    calls = []
    plain = ssl.SSLContext.load_verify_locations

    def slow_load(self, *args, **kwargs):  # widen the window: OpenSSL takes ~0.1 s here
        calls.append(args)
        time.sleep(0.05)
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", slow_load)
    start = threading.Barrier(8)

    def connect():
        start.wait()
        context.load_verify_locations(str(pki / "ca.pem"))

    threads = [threading.Thread(target=connect) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    # and every one of them found it loaded when it went on
    assert str(pki / "ca.pem") in {k[0] for k in context.__dict__["_lc_loaded"]}


def test_the_default_ca_file_loaded_by_openssl_is_not_loaded_again(pki, https_port,
                                                                    monkeypatch):
    """set_default_verify_paths loads SSL_CERT_FILE at once; REQUESTS_CA_BUNDLE often names
    the same file, which urllib3 then asks to load for every new connection: skipped."""
    from lambda_compat.resolve import pip_tls
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(pki / "no-such-dir"))
    context = pip_tls._OnceConfiguredContext(ssl.PROTOCOL_TLS_CLIENT)
    context.set_default_verify_paths()
    assert _handshake(context, https_port) is not None  # the default file is trusted
    calls = []
    plain = ssl.SSLContext.load_verify_locations

    def counting(self, *args, **kwargs):
        calls.append(args)
        return plain(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    context.load_verify_locations(str(pki / "ca.pem"))
    assert calls == []
    context.load_verify_locations(str(pki / "server.pem"))  # another file: loaded
    assert len(calls) == 1


def test_a_context_made_ahead_is_the_one_pip_gets_first(patched_context, monkeypatch):
    """premake_tls_context (a standby pip process runs it while importing pip): the same
    trust, made before the spec, handed to pip's first session."""
    from lambda_compat.resolve import pip_tls
    monkeypatch.setattr(pip_tls, "_PREMADE", [])
    patched_context.cache_clear()
    pip_tls.premake_tls_context()
    premade = pip_tls._PREMADE[0]
    assert patched_context() is premade
    assert pip_tls._PREMADE == []
    assert premade.cert_store_stats()["x509_ca"] > 50 and premade.check_hostname
