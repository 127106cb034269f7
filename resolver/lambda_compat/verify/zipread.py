"""A zip member's bytes, read with one ``pread`` and inflated with one zlib call.

``ZipFile.read`` goes through a ``ZipExtFile``: a file object over a shared file position
(a lock), the compressed data read in pieces and each piece inflated from Python; for a
wheel of 800 files that was a third of the unpacking's Python time, which runs beside pip's
resolution on the same two cores (a GIL-sampling profile of a cold build). Here: the local
header and the compressed bytes are read with ``os.pread`` (no shared position: threads
read one archive side by side), inflated by one call (zlib-ng's where installed, else
zlib's; both without the GIL), and checked as zipfile checks them: the header's signature
and file name, the size, the CRC-32. A member zipfile must decode itself (encrypted, or
compressed otherwise than stored/deflated) is read by zipfile.
"""

from __future__ import annotations

import os
import struct
import threading
import zipfile
import zlib
from typing import Any, Dict, Tuple, Union

_inflater: Any
try:  # zlib-ng: the same deflate format, inflated in half the CPU time (see pyproject.toml)
    from zlib_ng import zlib_ng as _inflater
except ImportError:  # an interpreter without its wheel: the standard library's zlib
    _inflater = zlib

#: A local file header (zipfile's ``structFileHeader``): signature, versions, flags,
#: method, time, date, CRC-32, sizes, name length, extra field length.
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_SIGNATURE = b"PK\x03\x04"
_UTF8_NAME = 0x800
_ENCRYPTED = 0x1


def entries(path: Union[str, "os.PathLike[str]"]) -> Tuple[zipfile.ZipInfo, ...]:
    """The archive's central directory as zipfile reads it (``infolist()``), read once per
    file and process: a cold build read each wheel's four times (planning, each inflating
    thread, the verifier; under two names, pip's copy and the cache's hard link of it),
    85 readings of issue 15's twenty wheels. Keyed by the file's identity (device, inode,
    size, modification time); the ZipInfo objects are shared: read them, never change
    them."""
    with open(path, "rb") as f:  # the identity and the directory of the same file
        st = os.fstat(f.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _ENTRIES_LOCK:
            known = _ENTRIES.get(key)
        if known is not None:
            return known
        with zipfile.ZipFile(f) as archive:
            infos = tuple(archive.infolist())
    with _ENTRIES_LOCK:
        _ENTRIES[key] = infos
        while len(_ENTRIES) > _ENTRIES_KEPT:
            _ENTRIES.pop(next(iter(_ENTRIES)))  # the oldest
    return infos


_ENTRIES: Dict[Tuple[int, int, int, int], Tuple[zipfile.ZipInfo, ...]] = {}
_ENTRIES_LOCK = threading.Lock()
_ENTRIES_KEPT = 256


def member_bytes(fd: int, archive: Union[zipfile.ZipFile, str, "os.PathLike[str]"],
                 info: zipfile.ZipInfo) -> bytes:
    """The bytes of ``info`` in the zip open as the descriptor ``fd`` (``archive``: the same
    zip open as a ZipFile, or its path, opened only for a member zipfile must decode);
    ``zipfile.BadZipFile`` when the archive disagrees with itself."""
    if info.flag_bits & _ENCRYPTED or info.compress_type not in (zipfile.ZIP_STORED,
                                                                  zipfile.ZIP_DEFLATED):
        if isinstance(archive, zipfile.ZipFile):
            return archive.read(info)
        with zipfile.ZipFile(archive) as opened:
            return opened.read(info)
    header = os.pread(fd, _LOCAL.size, info.header_offset)
    if len(header) != _LOCAL.size:
        raise zipfile.BadZipFile(f"Truncated file header for {info.orig_filename!r}")
    fields = _LOCAL.unpack(header)
    if fields[0] != _SIGNATURE:
        raise zipfile.BadZipFile("Bad magic number for file header")
    name_length, extra_length = fields[10], fields[11]
    start = info.header_offset + _LOCAL.size
    raw_name = os.pread(fd, name_length, start)
    name = raw_name.decode("utf-8" if fields[3] & _UTF8_NAME else "cp437")
    if name != info.orig_filename:
        raise zipfile.BadZipFile(f"File name in directory {info.orig_filename!r} and "
                                 f"header {raw_name!r} differ.")
    data = os.pread(fd, info.compress_size, start + name_length + extra_length)
    if len(data) != info.compress_size:
        raise zipfile.BadZipFile(f"Truncated data for {info.orig_filename!r}")
    if info.compress_type == zipfile.ZIP_DEFLATED:
        try:
            data = _inflater.decompress(data, -zlib.MAX_WBITS, max(info.file_size, 1))
        except (zlib.error, _inflater.error) as exc:
            raise zipfile.BadZipFile(f"Bad deflate data for {info.orig_filename!r}: "
                                     f"{exc}") from None
    if len(data) != info.file_size or _inflater.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"Bad CRC-32 for file {info.orig_filename!r}")
    return data
