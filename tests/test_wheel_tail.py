"""A remote wheel's METADATA read from its last bytes (resolve/wheel_tail.py)."""

from __future__ import annotations

import io
import os
import zipfile

from lambda_compat.resolve import wheel_tail

METADATA = b"Metadata-Version: 2.1\nName: p\nVersion: 1.0\nRequires-Dist: greenlet!=0.4.17\n\n"


def _wheel(first=(), files=200, payload=4096, metadata_first=False):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        if metadata_first:
            z.writestr("p-1.0.dist-info/METADATA", METADATA)
        for i in range(files):
            z.writestr(f"p/m{i}.so", os.urandom(payload))   # incompressible
        z.writestr("vendored/q-2.0.dist-info/METADATA", b"Name: q\n")
        if not metadata_first:
            z.writestr("p-1.0.dist-info/METADATA", METADATA)
        z.writestr("p-1.0.dist-info/RECORD", b"")
    return out.getvalue()


def _server(data):
    calls = []

    def fetch(start, end):
        calls.append((start, end))
        return data[start:end]
    return fetch, calls


def test_the_metadata_of_a_big_wheel_comes_from_one_request_at_its_end():
    data = _wheel()                          # about 800 kB
    fetch, calls = _server(data)
    assert wheel_tail.metadata(len(data), fetch) == METADATA
    assert calls == [(len(data) - wheel_tail.TAIL_BYTES, len(data))]


def test_a_central_directory_larger_than_the_tail_takes_more_requests():
    data = _wheel(files=6000, payload=64)    # a central directory of about 350 kB
    fetch, calls = _server(data)
    assert wheel_tail.metadata(len(data), fetch) == METADATA
    assert calls[0] == (len(data) - wheel_tail.TAIL_BYTES, len(data))
    assert len(calls) >= 2                   # grown towards the start, never past MAX_BYTES
    assert sum(end - start for start, end in calls) <= wheel_tail.MAX_BYTES
    assert sum(end - start for start, end in calls) <= wheel_tail.MAX_BYTES


def test_metadata_far_from_the_end_is_given_up_not_downloaded():
    data = _wheel(files=400, metadata_first=True)   # METADATA first, 1.6 MB before the end
    fetch, calls = _server(data)
    assert wheel_tail.metadata(len(data), fetch) is None
    assert sum(end - start for start, end in calls) <= wheel_tail.MAX_BYTES


def test_a_small_wheel_is_read_whole_in_one_request():
    data = _wheel(files=2, payload=100)
    fetch, calls = _server(data)
    assert wheel_tail.metadata(len(data), fetch) == METADATA
    assert calls == [(0, len(data))]


def test_wrong_bytes_are_caught_by_the_archive_checks():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:                 # stored: the bytes appear as is
        z.writestr("p/m.so", os.urandom(50_000))
        z.writestr("p-1.0.dist-info/METADATA", METADATA)
    data = out.getvalue()
    fetch, _ = _server(data)
    assert wheel_tail.metadata(len(data), fetch) == METADATA
    at = data.rindex(b"greenlet")
    fetch, _ = _server(data[:at] + b"G" + data[at + 1:])  # one byte changed: CRC fails
    assert wheel_tail.metadata(len(data), fetch) is None
    fetch, _ = _server(data[:-10])                        # a short answer
    assert wheel_tail.metadata(len(data), fetch) is None


class _Response:
    def __init__(self, status, headers, body):
        self.status_code, self.headers, self.content = status, headers, body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_server_without_ranges_is_not_read_on():
    class Session:
        def get(self, url, headers, stream):
            assert headers["Range"] == "bytes=100-199" and stream
            return _Response(200, {}, b"whole file")
    fetch = wheel_tail.range_fetch(Session(), "https://files.example/p.whl")
    try:
        fetch(100, 200)
    except OSError:
        pass
    else:
        raise AssertionError("a 200 answer was taken as the range")

    class Ranged:
        def get(self, url, headers, stream):
            return _Response(206, {"Content-Range": "bytes 100-199/1000"}, b"x" * 100)
    assert wheel_tail.range_fetch(Ranged(), "u")(100, 200) == b"x" * 100
