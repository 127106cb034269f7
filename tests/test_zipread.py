"""Zip members read with one pread and one inflate (verify/zipread.py): the bytes zipfile
reads, and zipfile's verdicts on archives that disagree with themselves; each test with
zlib-ng (a dependency) and with the standard library's zlib (the fallback)."""

from __future__ import annotations

import io
import os
import zipfile

import zlib

import pytest

from lambda_compat.verify import zipread


@pytest.fixture(autouse=True, params=["zlib-ng", "zlib"])
def inflater(request, monkeypatch):
    module = zlib if request.param == "zlib" else pytest.importorskip("zlib_ng.zlib_ng")
    monkeypatch.setattr(zipread, "_inflater", module)
    return module


def test_zlib_ng_is_what_inflates_where_it_is_installed():
    import importlib
    fresh = importlib.reload(zipread)   # the module as imported, not as the fixture set it
    assert fresh._inflater.__name__ == "zlib_ng.zlib_ng"


def _archive(path, members):
    with zipfile.ZipFile(path, "w") as z:
        for name, data, method in members:
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return path


MEMBERS = [("p/__init__.py", b"", zipfile.ZIP_DEFLATED),
           ("p/stored.bin", os.urandom(70_000), zipfile.ZIP_STORED),
           ("p/deflated.py", b"x = 1\n" * 20_000, zipfile.ZIP_DEFLATED),
           ("p/r\u00e9sum\u00e9.txt", "caf\u00e9".encode(), zipfile.ZIP_DEFLATED),   # UTF-8 name
           ("p/bz.txt", b"bz" * 1000, zipfile.ZIP_BZIP2)]                           # zipfile's


def test_every_member_reads_as_zipfile_reads_it(tmp_path):
    path = _archive(tmp_path / "a.whl", MEMBERS)
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        for info in zf.infolist():
            assert zipread.member_bytes(raw.fileno(), zf, info) == zf.read(info)


def _corrupt(path, old, new):
    data = path.read_bytes()
    at = data.index(old)
    path.write_bytes(data[:at] + new + data[at + len(old):])


def test_a_changed_byte_fails_the_crc_check(tmp_path):
    path = _archive(tmp_path / "a.whl", [("p/data.bin", b"A" * 100 + b"B" * 100,
                                          zipfile.ZIP_STORED)])
    _corrupt(path, b"B" * 100, b"C" + b"B" * 99)
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        with pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
            zipread.member_bytes(raw.fileno(), zf, zf.infolist()[0])
        with pytest.raises(zipfile.BadZipFile):          # zipfile agrees
            zf.read(zf.infolist()[0])


def test_a_local_header_naming_another_file_is_refused(tmp_path):
    path = _archive(tmp_path / "a.whl", [("p/good.py", b"x", zipfile.ZIP_STORED)])
    data = path.read_bytes()
    at = data.index(b"p/good.py")                          # the local header's copy
    path.write_bytes(data[:at] + b"p/evil.py" + data[at + 9:])
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        with pytest.raises(zipfile.BadZipFile, match="differ"):
            zipread.member_bytes(raw.fileno(), zf, zf.infolist()[0])


def test_a_truncated_deflate_stream_is_a_bad_zip(tmp_path):
    payload = os.urandom(4000) * 3
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("p/m.so", payload)
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len("p/m.so")
    data[start + 10:start + info.compress_size] = bytes(info.compress_size - 10)  # zeroed
    path = tmp_path / "t.whl"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        with pytest.raises(zipfile.BadZipFile):
            zipread.member_bytes(raw.fileno(), zf, zf.infolist()[0])


def test_a_member_zipfile_must_decode_is_read_through_the_path_too(tmp_path):
    path = _archive(tmp_path / "a.whl", MEMBERS)
    infos = {i.filename: i for i in zipread.entries(path)}
    with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
        for name, info in infos.items():
            assert zipread.member_bytes(raw.fileno(), path, info) == zf.read(name)


def test_the_central_directory_is_read_once_per_file(tmp_path, monkeypatch):
    path = _archive(tmp_path / "a.whl", MEMBERS[:2])
    reads = []
    real = zipfile.ZipFile._RealGetContents

    def counting(self):
        reads.append(1)
        return real(self)

    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", counting)
    first = zipread.entries(path)
    assert zipread.entries(str(path)) is first and len(reads) == 1
    os.link(path, tmp_path / "linked.whl")          # pip's copy and the cache's: one file
    assert zipread.entries(tmp_path / "linked.whl") is first and len(reads) == 1
    assert [i.filename for i in first] == [m[0] for m in MEMBERS[:2]]
    path.unlink()                                   # another file at the same path
    _archive(path, MEMBERS[2:4])
    changed = zipread.entries(path)
    assert [i.filename for i in changed] == [m[0] for m in MEMBERS[2:4]] and len(reads) == 2
