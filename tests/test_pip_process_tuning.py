"""How lambda-compat's pip process reads: large pieces, short GIL turns (pip_startup)."""

from __future__ import annotations

import pytest


def test_the_pip_process_reads_page_bodies_in_large_pieces_with_short_gil_turns(monkeypatch):
    """pip_startup.tune_threads: a response body requests reads whole (an index page) comes in
    256 kB pieces, not 10 kB ones, and a thread holds the GIL 0.5 ms while another waits."""
    import io
    import sys

    from pip._vendor.requests import models
    from pip._vendor.urllib3.response import HTTPResponse

    from lambda_compat.resolve import pip_startup

    monkeypatch.setattr(models, "CONTENT_CHUNK_SIZE", models.CONTENT_CHUNK_SIZE)
    saved = sys.getswitchinterval()
    try:
        pip_startup.tune_threads()
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    finally:
        sys.setswitchinterval(saved)
    body = bytes(3 * 1024 * 1024)
    reads = []

    class Recording(io.BytesIO):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    response = models.Response()
    response.raw = HTTPResponse(body=Recording(body), preload_content=False)
    assert response.content == body
    assert min(n for n in reads if n and n > 0) >= 256 * 1024
    assert len(reads) <= 16                   # 10 kB pieces would be about 300


def test_the_pip_process_leaves_its_modules_out_of_garbage_collection():
    """pip_startup.tune_gc, in a process of its own (it changes the interpreter's collector):
    what exists before the resolution is frozen, and collections are rarer than Python's
    default (700, 10, 10); a reference cycle made afterwards is still collected."""
    import subprocess
    import sys
    code = (
        "import gc, pip._internal.commands.download\n"
        "from lambda_compat.resolve import pip_startup\n"
        "assert gc.get_freeze_count() == 0\n"
        "pip_startup.tune_gc()\n"
        "assert gc.get_freeze_count() > 10000, gc.get_freeze_count()\n"
        "assert gc.get_threshold() == pip_startup.GC_THRESHOLD\n"
        "import weakref\n"
        "class Node: pass\n"
        "a = Node(); a.me = a; alive = weakref.ref(a); del a\n"
        "gc.collect()\n"
        "assert alive() is None\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr
