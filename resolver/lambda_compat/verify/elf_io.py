"""The ELF format as :mod:`lambda_compat.verify.elf` reads it: constants, record layouts, the
block cache over ``pread`` and the bounds-checked primitives every read goes through.

Every offset and size is checked before it is used: anything out of range raises
:class:`~lambda_compat.errors.ELFError` naming the file, never ``IndexError``/``struct.error``.

Standard library only.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, Tuple

from ..errors import ELFError

ELF_MAGIC = b"\x7fELF"

# e_ident
EI_CLASS = 4
EI_DATA = 5
EI_VERSION = 6
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2

# Program header types
PT_LOAD = 1
PT_DYNAMIC = 2

# Section header types and special indices
SHT_NOBITS = 8
SHT_DYNAMIC = 6
SHT_GNU_VERNEED = 0x6FFFFFFE
SHN_UNDEF = 0
PN_XNUM = 0xFFFF

# Dynamic tags
DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_STRSZ = 10
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29
DT_VERNEED = 0x6FFFFFFE
DT_VERNEEDNUM = 0x6FFFFFFF

ELF_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}

# e_machine -> name. Names follow the architecture names used in platform tags
# (manylinux_2_17_x86_64, ..._aarch64) where there is one.
MACHINES = {
    2: "sparc",
    3: "i386",
    8: "mips",
    18: "sparc32plus",
    20: "ppc",
    21: "ppc64",
    22: "s390",
    40: "arm",
    42: "sh",
    43: "sparcv9",
    50: "ia64",
    62: "x86_64",
    183: "aarch64",
    243: "riscv",
    258: "loongarch",
}

# Header layouts, keyed by ELF class. The leading 16 bytes (e_ident) are skipped.
EHDR = {32: "HHIIIIIHHHHHH", 64: "HHIQQQIHHHHHH"}
EHDR_SIZE = {32: 52, 64: 64}
# Program header: only the fields used, in file order.
PHDR_SIZE = {32: 32, 64: 56}
SHDR = {32: "IIIIIIIIII", 64: "IIQQQQIIQQ"}
SHDR_SIZE = {32: 40, 64: 64}
DYN = {32: "iI", 64: "qQ"}
DYN_SIZE = {32: 8, 64: 16}
VERNEED = "HHIII"  # vn_version, vn_cnt, vn_file, vn_aux, vn_next (same for both classes)
VERNAUX = "IHHII"  # vna_hash, vna_flags, vna_other, vna_name, vna_next
VER_SIZE = 16

# Longest string read (a name or a search path); real ones are far shorter.
MAX_STRING = 1 << 16

BLOCK = 4096


class BlockSource:
    """Reads a file in cached, aligned blocks. Callers bounds-check against ``size`` first."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.blocks: Dict[int, bytes] = {}

    def _pread(self, offset: int, length: int) -> bytes:
        if _pread is not None:
            return _pread(self.fd, length, offset)
        os.lseek(self.fd, offset, os.SEEK_SET)
        return os.read(self.fd, length)

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset``; fewer only if the file shrank while being read."""
        if length <= 0:
            return b""
        first, last = offset // BLOCK, (offset + length - 1) // BLOCK
        blocks = self.blocks
        if first == last:
            block = blocks.get(first)
            if block is not None:  # The common case: one cached block.
                start = offset - first * BLOCK
                return block[start:start + length]
        if last - first > 16:
            # Large regions (only in unusual or corrupt files) are read directly, uncached.
            return self._pread(offset, length)
        if not all(index in blocks for index in range(first, last + 1)):
            data = self._pread(first * BLOCK, (last - first + 1) * BLOCK)
            for index in range(first, last + 1):
                start = (index - first) * BLOCK
                blocks[index] = data[start:start + BLOCK]
        if first == last:
            start = offset - first * BLOCK
            return blocks[first][start:start + length]
        joined = b"".join(blocks[index] for index in range(first, last + 1))
        start = offset - first * BLOCK
        return joined[start:start + length]

    def find_nul(self, start: int, end: int) -> int:
        """Offset of the first NUL byte in [start, end), or -1."""
        position = start
        while position < end:
            index = position // BLOCK
            block = self.blocks.get(index)
            if block is None:
                block = self.read(index * BLOCK, min(BLOCK, self.size - index * BLOCK))
                block = self.blocks.get(index, block)
            base = index * BLOCK
            found = block.find(b"\0", position - base, min(end - base, len(block)))
            if found >= 0:
                return base + found
            if len(block) < BLOCK:
                return -1  # End of file (or the file shrank).
            position = base + BLOCK
        return -1


_pread = getattr(os, "pread", None)


class Reader:
    """Bounds-checked reads of one open file (``elf._Parser`` walks its tables with them)."""

    structs: Dict[str, struct.Struct]

    def __init__(self, path: str, source: BlockSource) -> None:
        self.path = path
        self.source = source
        self.size = source.size
        self.strings: Dict[Tuple[int, int], str] = {}

    # -- bounds-checked primitives -------------------------------------------------------

    def truncated(self, what: str) -> ELFError:
        return ELFError(self.path, f"truncated ELF file: {what} lies beyond the end of the "
                                   f"file ({self.size} bytes)")

    def corrupt(self, what: str) -> ELFError:
        return ELFError(self.path, f"corrupt ELF file: {what}")

    def check_range(self, offset: int, length: int, what: str) -> None:
        if offset < 0 or length < 0:
            raise self.corrupt(f"{what} has a negative offset or size")
        if offset + length > self.size:
            raise self.truncated(f"{what} (offset {offset:#x}, {length} bytes)")

    def read(self, offset: int, length: int, what: str) -> bytes:
        self.check_range(offset, length, what)
        data = self.source.read(offset, length)
        if len(data) != length:
            raise ELFError(self.path, f"truncated ELF file: {what} could not be read "
                                      f"(the file shrank while it was read)")
        return data

    def unpack(self, fmt: str, offset: int, what: str) -> Tuple[int, ...]:
        st = self.structs[fmt]
        return st.unpack(self.read(offset, st.size, what))

    def cstring(self, table: "StrTab", index: int, what: str) -> str:
        key = (table.offset, index)
        cached = self.strings.get(key)
        if cached is not None:
            return cached
        if index < 0 or index >= table.size:
            raise self.corrupt(f"{what}: string index {index} is outside the string table "
                               f"({table.size} bytes)")
        start = table.offset + index
        # Fast path: the string ends inside the (cached) block it starts in.
        block_index = start // BLOCK
        block = self.source.blocks.get(block_index)
        if block is not None and table.offset + table.size <= self.size:
            base = block_index * BLOCK
            nul = block.find(b"\0", start - base, min(table.size - index, MAX_STRING)
                             + start - base)
            if nul >= 0:
                value = block[start - base:nul].decode("utf-8", "surrogateescape")
                self.strings[key] = value
                return value
        end = min(table.offset + table.size, start + MAX_STRING, self.size)
        nul = self.source.find_nul(start, end)
        if nul < 0:
            if end == self.size and table.offset + table.size > self.size:
                raise self.truncated(f"{what} string at offset {start:#x}")
            raise self.corrupt(f"{what}: string at offset {start:#x} is not NUL-terminated")
        value = self.read(start, nul - start, what).decode("utf-8", "surrogateescape")
        self.strings[key] = value
        return value


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int = 0
    align: int = 0


@dataclass(frozen=True)
class Section:
    type: int
    addr: int
    offset: int
    size: int
    link: int
    info: int


@dataclass(frozen=True)
class StrTab:
    offset: int
    size: int


_STRUCT_CACHE: Dict[str, Dict[str, struct.Struct]] = {}


def structs_for(order: str) -> Dict[str, struct.Struct]:
    """Compiled structs for one byte order ("<" or ">"), keyed by format without the order."""
    cached = _STRUCT_CACHE.get(order)
    if cached is None:
        formats = {*EHDR.values(), *SHDR.values(), *DYN.values(), VERNEED, VERNAUX,
                   "IIIIII", "IIQQQQ", "IIIIIIII", "IIQQQQQQ"}
        cached = _STRUCT_CACHE[order] = {fmt: struct.Struct(order + fmt) for fmt in formats}
    return cached


def machine_name(e_machine: int, bits: int, little: bool) -> str:
    name = MACHINES.get(e_machine)
    if name is None:
        return f"unknown({e_machine})"
    if name == "ppc64" and little:
        return "ppc64le"
    if name == "s390" and bits == 64:
        return "s390x"
    if name == "mips":
        return ("mips64" if bits == 64 else "mips") + ("el" if little else "")
    if name in ("riscv", "loongarch"):
        return f"{name}{bits}"
    return name


def split_path(value: str) -> Tuple[str, ...]:
    return tuple(value.split(":")) if value else ()
