"""Reproducible zip archives of a directory tree: the same tree gives the same bytes.

* entries sorted by name (directories as ``name/`` entries, then their contents in order);
* every timestamp the same: ``SOURCE_DATE_EPOCH`` when set (clamped to the zip format's
  1980-2107 range, UTC), otherwise 1980-01-01 00:00:00;
* permissions normalised: 0o755 for directories and for files with any execute bit,
  0o644 for every other file; owner, group and extended attributes are not recorded
  (no extra fields at all), "made by" is always Unix;
* deflate at a fixed level (6 by default, zip's default) with a raw stream, window 15,
  memLevel 8; a file that does not shrink is stored. Byte identity therefore holds for the
  same zlib; a different deflate implementation (zlib-ng, a much newer zlib) may choose other
  matches and give different (equally valid) bytes.

Files are compressed in parallel threads (zlib releases the GIL) and written in order, so the
output does not depend on the thread count. A file installed unchanged from a wheel can reuse
that wheel's deflate stream (``reuse``: archive name -> :class:`RawEntry`): the entry is taken
only when the file's size and CRC-32 equal the wheel member's, so the content is the same; its
bytes then depend on the wheel (an input), not on the local zlib.

The writer is hand-rolled (local headers, central directory, end record; zip64 end records
when there are more than 65535 entries) because :mod:`zipfile` cannot take data compressed
elsewhere.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import stat
import struct
import time
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Deque, List, Mapping, Optional, Tuple

from .. import errors

#: 1980-01-01 00:00:00 UTC, the earliest time a zip entry can carry.
ZIP_EPOCH_MIN = 315532800
#: 2107-12-31 23:59:58 UTC, the latest.
ZIP_EPOCH_MAX = 4354819198
DEFAULT_LEVEL = 6
_MAX_INFLIGHT = 64

DateTime = Tuple[int, int, int, int, int, int]


@dataclass(frozen=True)
class RawEntry:
    """A deflated member of another zip (a wheel) whose stream can be copied as is."""

    archive: Path
    header_offset: int
    compress_size: int
    file_size: int
    crc: int


def _read_raw(entry: RawEntry) -> Optional[bytes]:
    with open(entry.archive, "rb") as f:
        f.seek(entry.header_offset)
        head = f.read(30)
        if len(head) != 30 or head[:4] != b"PK\x03\x04":
            return None
        name_len, extra_len = struct.unpack("<HH", head[26:30])
        f.seek(entry.header_offset + 30 + name_len + extra_len)
        data = f.read(entry.compress_size)
    return data if len(data) == entry.compress_size else None


@dataclass(frozen=True)
class ZipSummary:
    path: Path
    files: int
    dirs: int
    uncompressed_bytes: int     # sum of the files' sizes
    compressed_bytes: int       # size of the archive itself
    sha256: str                 # of the archive
    reused: int = 0             # files whose deflate stream was copied from a wheel

    def to_json(self) -> dict:
        return {"path": str(self.path), "files": self.files, "dirs": self.dirs,
                "uncompressed_bytes": self.uncompressed_bytes,
                "zip_bytes": self.compressed_bytes, "sha256": self.sha256,
                "reused_streams": self.reused}


def timestamp(environ: Optional[Mapping[str, str]] = None) -> DateTime:
    """The entries' date and time: SOURCE_DATE_EPOCH (UTC) or 1980-01-01 00:00:00."""
    env = os.environ if environ is None else environ
    raw = env.get("SOURCE_DATE_EPOCH")
    if raw is None or raw.strip() == "":
        epoch = ZIP_EPOCH_MIN
    else:
        try:
            epoch = int(raw.strip())
        except ValueError:
            raise errors.BadInput(f"SOURCE_DATE_EPOCH={raw!r} is not a whole number of "
                                  f"seconds.", hint="Set it to a Unix time, e.g. "
                                  "SOURCE_DATE_EPOCH=$(git log -1 --format=%ct), or unset "
                                  "it.") from None
        epoch = min(max(epoch, ZIP_EPOCH_MIN), ZIP_EPOCH_MAX)
    t = time.gmtime(epoch)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def list_tree(root: Path) -> List[Tuple[str, Optional[Path]]]:
    """(archive name, file path or None for a directory) for everything under ``root``,
    in archive order. Symbolic links are followed (their targets' contents are archived)."""
    out: List[Tuple[str, Optional[Path]]] = []
    root_s = str(root)
    for dirpath, dirnames, filenames in os.walk(root_s, followlinks=True):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root_s)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        if prefix:
            out.append((prefix, None))
        for name in filenames:
            out.append((prefix + name, Path(dirpath) / name))
    out.sort(key=lambda e: e[0].encode("utf-8"))
    return out


def _dos(dt: DateTime) -> Tuple[int, int]:
    year, month, day, hour, minute, second = dt
    return ((year - 1980) << 9 | month << 5 | day, hour << 11 | minute << 5 | second // 2)


def _compress(path: Path, level: int, raw: Optional[RawEntry] = None
              ) -> Tuple[bytes, int, int, int, bool, bool]:
    """(data as stored, crc32, uncompressed size, method, executable, stream reused)."""
    st = os.stat(path)
    with open(path, "rb") as f:
        data = f.read()
    crc = binascii.crc32(data)
    executable = bool(st.st_mode & 0o111)
    if raw is not None and raw.crc == crc and raw.file_size == len(data) and data:
        packed = _read_raw(raw)
        if packed is not None and len(packed) < len(data):
            return packed, crc, len(data), 8, executable, True
    if level > 0 and data:
        c = zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY)
        packed = c.compress(data) + c.flush()
        if len(packed) < len(data):
            return packed, crc, len(data), 8, executable, False
    return data, crc, len(data), 0, executable, False


class _Out:
    """A file being written, with its sha256 and offset kept up to date."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.offset = 0

    def write(self, b: bytes) -> None:
        self.f.write(b)
        self.h.update(b)
        self.offset += len(b)


def write_zip(root: Path, dest: Path, *, date_time: Optional[DateTime] = None,
              level: int = DEFAULT_LEVEL, jobs: Optional[int] = None,
              reuse: Optional[Mapping[str, RawEntry]] = None) -> ZipSummary:
    """Archive everything under ``root`` into ``dest`` (written in place: callers write to a
    temporary name and rename). Returns the summary of what was written.

    ``reuse`` maps archive names to wheel members whose deflate streams may be copied (see the
    module docstring); ignored at level 0 (everything stored)."""
    if not 0 <= level <= 9:
        raise errors.BadInput(f"compression level {level} is not between 0 and 9.")
    dt = date_time or timestamp()
    dos_date, dos_time = _dos(dt)
    entries = list_tree(root)
    jobs = jobs or min(4, os.cpu_count() or 1)
    central: List[bytes] = []
    files = dirs = total = 0
    reused = 0
    with open(dest, "wb", buffering=1 << 20) as raw, \
            ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        out = _Out(raw)
        pending: Deque = deque()
        it = iter(entries)

        def submit_next() -> bool:
            for name, path in it:
                raw = reuse.get(name) if reuse and level > 0 else None
                pending.append((name, None if path is None else pool.submit(_compress, path,
                                                                              level, raw)))
                return True
            return False

        for _ in range(_MAX_INFLIGHT):
            if not submit_next():
                break
        while pending:
            name, fut = pending.popleft()
            submit_next()
            name_b = name.encode("utf-8")
            flags = 0 if name_b.isascii() else 0x800
            if fut is None:
                data, crc, size, method = b"", 0, 0, 0
                attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                dirs += 1
            else:
                data, crc, size, method, executable, was_reused = fut.result()
                reused += was_reused
                attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
                files += 1
                total += size
            if size >= 0xFFFFFFFF or len(data) >= 0xFFFFFFFF or out.offset >= 0xFFFFFFFF:
                raise errors.BadInput(f"{name}: the archive would exceed 4 GiB, far beyond "
                                      f"what Lambda accepts (250 MB unzipped).")
            offset = out.offset
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, dos_time,
                                  dos_date, crc, len(data), size, len(name_b), 0))
            out.write(name_b)
            out.write(data)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | 20, 20,
                                       flags, method, dos_time, dos_date, crc, len(data),
                                       size, len(name_b), 0, 0, 0, 0, attr, offset) + name_b)
        cd_offset = out.offset
        for c in central:
            out.write(c)
        cd_size = out.offset - cd_offset
        count = len(central)
        if count > 0xFFFF or cd_offset > 0xFFFFFFFF or cd_size > 0xFFFFFFFF:
            z64 = out.offset
            out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, (3 << 8) | 45, 45, 0, 0,
                                  count, count, cd_size, cd_offset))
            out.write(struct.pack("<IIQI", 0x07064B50, 0, z64, 1))
            out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF),
                                  min(count, 0xFFFF), min(cd_size, 0xFFFFFFFF),
                                  min(cd_offset, 0xFFFFFFFF), 0))
        else:
            out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, cd_size,
                                  cd_offset, 0))
        size_out = out.offset
        digest = out.h.hexdigest()
    return ZipSummary(path=dest, files=files, dirs=dirs, uncompressed_bytes=total,
                      compressed_bytes=size_out, sha256=digest, reused=reused)
