"""A remote wheel's METADATA read from the end of the file, by HTTP range requests.

A wheel is a zip archive: its central directory is at its very end, and its
``.dist-info/METADATA`` is one of the last entries written. Where an index offers no PEP 658
metadata file, the prefetcher (:mod:`lambda_compat.resolve.pip_prefetch`) learns a big
guessed wheel's dependencies from its last bytes (one range request; more only for a
central directory larger than the first request) while the
whole file is still downloading: SQLAlchemy's 3 MB before greenlet's page is asked for,
numpy's 14 MB before nothing else. pip's own ``lazy_wheel`` does the same with small chunks
and a HEAD request first; the index page gives the size, so one request usually does.

Only a hint for prefetching: anything unexpected (no range support, an entry too far from
the end, a bad archive) gives None and costs nothing more; the zip's CRC check guards the
bytes that are read.
"""

from __future__ import annotations

import io
import zipfile
from typing import Any, Callable, Optional

#: The first request: the last this many bytes (a wheel's central directory and its last
#: entries; numpy's central directory is about 150 kB).
TAIL_BYTES = 256 * 1024
#: Never read more than this many bytes in all (METADATA far from the end: give up).
MAX_BYTES = 1024 * 1024

Fetch = Callable[[int, int], bytes]  # (start, end) -> the bytes [start, end) of the file


class _TooFar(Exception):
    """The bytes wanted are further from the end than :data:`MAX_BYTES`."""


class _Tail(io.RawIOBase):
    """A read-only view of a file of ``size`` bytes of which only a tail is fetched, grown
    towards the start on demand (one request per growth)."""

    def __init__(self, size: int, fetch: Fetch) -> None:
        super().__init__()
        self._size, self._fetch, self._pos = size, fetch, 0
        self._start = size
        self._data = b""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: Optional[int] = -1) -> bytes:
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        if self._pos >= end:
            return b""
        if self._pos < self._start:
            self._grow(self._pos)
        data = self._data[self._pos - self._start:end - self._start]
        self._pos = end
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _grow(self, start: int) -> None:
        start = max(0, min(start, self._size - TAIL_BYTES))
        if self._size - start > MAX_BYTES:
            raise _TooFar(start)
        data = self._fetch(start, self._start)
        if len(data) != self._start - start:
            raise OSError("short range response")
        self._data, self._start = data + self._data, start


def metadata(size: int, fetch: Fetch) -> Optional[bytes]:
    """The ``*.dist-info/METADATA`` of the wheel of ``size`` bytes that ``fetch`` reads
    ranges of, or None when it cannot be had from the file's last :data:`MAX_BYTES`."""
    if size <= 0:
        return None
    try:
        with zipfile.ZipFile(_Tail(size, fetch)) as wheel:  # type: ignore[arg-type]
            names = [n for n in wheel.namelist() if n.count("/") == 1
                     and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                return None
            return wheel.read(names[0])
    except (_TooFar, OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
            NotImplementedError):
        return None


def range_fetch(session: Any, url: str) -> Fetch:
    """``fetch(start, end)`` through ``session`` (pip's): one ``Range`` request, which must be
    answered with exactly those bytes (206); a server that sends the whole file instead is
    not read on (OSError)."""
    def fetch(start: int, end: int) -> bytes:
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        with session.get(url, headers=headers, stream=True) as response:
            expected = f"bytes {start}-{end - 1}/"
            if response.status_code != 206 or not str(
                    response.headers.get("Content-Range", "")).startswith(expected):
                raise OSError(f"no range response from {url}")
            return bytes(response.content)
    return fetch
