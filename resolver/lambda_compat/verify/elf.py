"""A small, fast reader for the dynamic-linking facts of ELF files.

It answers the questions lambda-compat asks of every shared object in a bundle: which
architecture it is built for, which libraries it needs (``DT_NEEDED``), where it looks for
them (``DT_RPATH``/``DT_RUNPATH``) and which symbol versions it needs from them
(``.gnu.version_r``: ``GLIBC_2.28``, ``GLIBCXX_3.4.30``, ...).

Only the regions that carry these facts are read: the ELF header, the program headers, the
dynamic table, the version-needs table and the strings they point at, in 4 KiB blocks with
``pread`` (a 100 MB ``libarrow.so`` costs a few small reads). Section headers are read only when
the program headers do not lead to the dynamic table. ``pread`` rather than ``mmap``: a page
fault on a fresh mapping costs more than a small read, notably in virtual machines.

Every offset, size and count read from the file is checked before it is used: a truncated or
corrupt file raises :class:`ELFError` (never ``IndexError``/``struct.error``), and loops that
follow offsets stored in the file cannot run forever. Errors opening the file (missing,
permission denied) propagate as ``OSError``.

Standard library only.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

__all__ = ["ELFError", "ELFInfo", "is_elf", "read_elf", "version_tuple"]

PathLike = Union[str, "os.PathLike[str]", bytes]

ELF_MAGIC = b"\x7fELF"

# e_ident
_EI_CLASS = 4
_EI_DATA = 5
_EI_VERSION = 6
_ELFCLASS32 = 1
_ELFCLASS64 = 2
_ELFDATA2LSB = 1
_ELFDATA2MSB = 2

# Program header types
_PT_LOAD = 1
_PT_DYNAMIC = 2

# Section header types and special indices
_SHT_NOBITS = 8
_SHT_DYNAMIC = 6
_SHT_GNU_VERNEED = 0x6FFFFFFE
_SHN_UNDEF = 0
_PN_XNUM = 0xFFFF

# Dynamic tags
_DT_NULL = 0
_DT_NEEDED = 1
_DT_STRTAB = 5
_DT_STRSZ = 10
_DT_SONAME = 14
_DT_RPATH = 15
_DT_RUNPATH = 29
_DT_VERNEED = 0x6FFFFFFE
_DT_VERNEEDNUM = 0x6FFFFFFF

_ELF_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}

# e_machine -> name. Names follow the architecture names used in platform tags
# (manylinux_2_17_x86_64, ..._aarch64) where there is one.
_MACHINES = {
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
_EHDR = {32: "HHIIIIIHHHHHH", 64: "HHIQQQIHHHHHH"}
_EHDR_SIZE = {32: 52, 64: 64}
# Program header: only the fields used, in file order.
_PHDR_SIZE = {32: 32, 64: 56}
_SHDR = {32: "IIIIIIIIII", 64: "IIQQQQIIQQ"}
_SHDR_SIZE = {32: 40, 64: 64}
_DYN = {32: "iI", 64: "qQ"}
_DYN_SIZE = {32: 8, 64: 16}
_VERNEED = "HHIII"  # vn_version, vn_cnt, vn_file, vn_aux, vn_next (same for both classes)
_VERNAUX = "IHHII"  # vna_hash, vna_flags, vna_other, vna_name, vna_next
_VER_SIZE = 16

# Longest string read (a name or a search path); real ones are far shorter.
_MAX_STRING = 1 << 16


class ELFError(Exception):
    """The file is not an ELF file, is truncated, or is corrupt. The message names the path."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def version_tuple(name: str) -> Tuple[int, ...]:
    """``"GLIBC_2.2.5"`` -> ``(2, 2, 5)``; ``"GLIBCXX_3.4.21"`` -> ``(3, 4, 21)``.

    The version is what follows the last underscore. Raises ``ValueError`` when that is not a
    dotted sequence of decimal numbers (``"GLIBC_PRIVATE"``, ``"GLIBC_ABI_DT_RELR"``).
    """
    _, sep, number = name.rpartition("_")
    parsed = _parse_dotted(number) if sep else None
    if parsed is None:
        raise ValueError(f"{name!r} carries no numeric version")
    return parsed


def _parse_dotted(text: str) -> Optional[Tuple[int, ...]]:
    parts = text.split(".")
    # isdigit() accepts non-ASCII digits; only plain 0-9 are versions.
    if not all(part and part.isascii() and part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


@dataclass(frozen=True)
class ELFInfo:
    path: str
    elf_class: int  # 32 or 64
    little_endian: bool
    machine: str  # "x86_64", "aarch64", ... or "unknown(<e_machine>)"
    elf_type: str  # "ET_DYN", "ET_EXEC", "ET_REL", ... or "unknown(<e_type>)"
    needed: Tuple[str, ...]  # DT_NEEDED, in file order
    soname: Optional[str]
    rpath: Tuple[str, ...]  # DT_RPATH split on ':'
    runpath: Tuple[str, ...]  # DT_RUNPATH split on ':'
    version_needs: Tuple[Tuple[str, str], ...]  # (library file, version name), in file order
    #: Why the dynamic loader would refuse to map the file (no PT_LOAD segment, a segment
    #: outside the file, misaligned or inconsistent), or None.
    load_problem: Optional[str] = None

    def _numeric_versions(self, prefix: str) -> Dict[str, Tuple[int, ...]]:
        found: Dict[str, Tuple[int, ...]] = {}
        for _, name in self.version_needs:
            if name.startswith(prefix) and name not in found:
                parsed = _parse_dotted(name[len(prefix):])
                if parsed is not None:
                    found[name] = parsed
        return found

    def max_version(self, prefix: str) -> Optional[Tuple[int, ...]]:
        """Highest numeric version among needed versions named ``prefix + "<n.n...>"``.

        ``max_version("GLIBC_")`` -> ``(2, 17)``. Non-numeric names such as
        ``GLIBC_PRIVATE`` are ignored; ``None`` when nothing matches.
        """
        versions = self._numeric_versions(prefix)
        return max(versions.values()) if versions else None

    def versions_with_prefix(self, prefix: str) -> Tuple[str, ...]:
        """Distinct numeric version names with ``prefix``, lowest version first."""
        versions = self._numeric_versions(prefix)
        return tuple(sorted(versions, key=lambda name: (versions[name], name)))


def is_elf(path: PathLike) -> bool:
    """True when the file starts with the ELF magic. Reads 4 bytes; False for directories."""
    try:
        fd = os.open(path, _O_RDONLY)
    except IsADirectoryError:
        return False
    try:
        return os.read(fd, 4) == ELF_MAGIC
    except IsADirectoryError:
        return False
    finally:
        os.close(fd)


def read_elf(path: PathLike) -> ELFInfo:
    """Read the dynamic-linking facts of the ELF file at ``path``.

    Raises :class:`ELFError` when the file is not ELF, is truncated or is corrupt.
    """
    name = os.fsdecode(path)
    fd = os.open(path, _O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return _Parser(name, _Source(fd, size)).parse()
    finally:
        os.close(fd)


_O_RDONLY = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
_BLOCK = 4096


class _Source:
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
        first, last = offset // _BLOCK, (offset + length - 1) // _BLOCK
        blocks = self.blocks
        if first == last:
            block = blocks.get(first)
            if block is not None:  # The common case: one cached block.
                start = offset - first * _BLOCK
                return block[start:start + length]
        if last - first > 16:
            # Large regions (only in unusual or corrupt files) are read directly, uncached.
            return self._pread(offset, length)
        if not all(index in blocks for index in range(first, last + 1)):
            data = self._pread(first * _BLOCK, (last - first + 1) * _BLOCK)
            for index in range(first, last + 1):
                start = (index - first) * _BLOCK
                blocks[index] = data[start:start + _BLOCK]
        if first == last:
            start = offset - first * _BLOCK
            return blocks[first][start:start + length]
        joined = b"".join(blocks[index] for index in range(first, last + 1))
        start = offset - first * _BLOCK
        return joined[start:start + length]

    def find_nul(self, start: int, end: int) -> int:
        """Offset of the first NUL byte in [start, end), or -1."""
        position = start
        while position < end:
            index = position // _BLOCK
            block = self.blocks.get(index)
            if block is None:
                block = self.read(index * _BLOCK, min(_BLOCK, self.size - index * _BLOCK))
                block = self.blocks.get(index, block)
            base = index * _BLOCK
            found = block.find(b"\0", position - base, min(end - base, len(block)))
            if found >= 0:
                return base + found
            if len(block) < _BLOCK:
                return -1  # End of file (or the file shrank).
            position = base + _BLOCK
        return -1


_pread = getattr(os, "pread", None)


class _Parser:
    """Parses one open file. Every read goes through the bounds-checked helpers."""

    def __init__(self, path: str, source: _Source) -> None:
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

    def cstring(self, table: "_StrTab", index: int, what: str) -> str:
        key = (table.offset, index)
        cached = self.strings.get(key)
        if cached is not None:
            return cached
        if index < 0 or index >= table.size:
            raise self.corrupt(f"{what}: string index {index} is outside the string table "
                               f"({table.size} bytes)")
        start = table.offset + index
        # Fast path: the string ends inside the (cached) block it starts in.
        block_index = start // _BLOCK
        block = self.source.blocks.get(block_index)
        if block is not None and table.offset + table.size <= self.size:
            base = block_index * _BLOCK
            nul = block.find(b"\0", start - base, min(table.size - index, _MAX_STRING)
                             + start - base)
            if nul >= 0:
                value = block[start - base:nul].decode("utf-8", "surrogateescape")
                self.strings[key] = value
                return value
        end = min(table.offset + table.size, start + _MAX_STRING, self.size)
        nul = self.source.find_nul(start, end)
        if nul < 0:
            if end == self.size and table.offset + table.size > self.size:
                raise self.truncated(f"{what} string at offset {start:#x}")
            raise self.corrupt(f"{what}: string at offset {start:#x} is not NUL-terminated")
        value = self.read(start, nul - start, what).decode("utf-8", "surrogateescape")
        self.strings[key] = value
        return value

    # -- parsing -----------------------------------------------------------------------

    def parse(self) -> ELFInfo:
        data = self.source.read(0, 64)
        magic = data[:4]
        if magic != ELF_MAGIC:
            if not magic:
                raise ELFError(self.path, "not an ELF file (the file is empty)")
            if len(magic) < 4 and ELF_MAGIC.startswith(magic):
                raise self.truncated("the ELF magic number (4 bytes)")
            raise ELFError(self.path, f"not an ELF file (starts with {magic!r}, "
                                      f"not {ELF_MAGIC!r})")
        if len(data) < 16:
            raise self.truncated("the ELF identification (16 bytes)")
        ei_class, ei_data, ei_version = data[_EI_CLASS], data[_EI_DATA], data[_EI_VERSION]
        if ei_class == _ELFCLASS32:
            self.bits = 32
        elif ei_class == _ELFCLASS64:
            self.bits = 64
        else:
            raise self.corrupt(f"unknown ELF class {ei_class} (expected 1 or 2)")
        if ei_data == _ELFDATA2LSB:
            order = "<"
        elif ei_data == _ELFDATA2MSB:
            order = ">"
        else:
            raise self.corrupt(f"unknown ELF data encoding {ei_data} (expected 1 or 2)")
        if ei_version != 1:
            raise self.corrupt(f"unknown ELF version {ei_version} (expected 1)")
        self.little = order == "<"
        bits = self.bits
        self.structs = _structs(order)

        if self.size < _EHDR_SIZE[bits]:
            raise self.truncated(f"the {bits}-bit ELF header ({_EHDR_SIZE[bits]} bytes)")
        (e_type, e_machine, _version, _entry, e_phoff, e_shoff, _flags, _ehsize,
         e_phentsize, e_phnum, e_shentsize, e_shnum, _shstrndx) = self.unpack(
            _EHDR[bits], 16, "ELF header")
        self.e_phoff, self.e_phentsize, self.e_phnum = e_phoff, e_phentsize, e_phnum
        self.e_shoff, self.e_shentsize, self.e_shnum = e_shoff, e_shentsize, e_shnum
        self._sections: Optional[List[_Section]] = None

        machine = _machine_name(e_machine, bits, self.little)
        elf_type = _ELF_TYPES.get(e_type, f"unknown({e_type})")

        segments = self.program_headers()
        self.loads = [seg for seg in segments if seg.type == _PT_LOAD]
        load_problem = self.load_problem(elf_type, self.loads)
        dynamic = next((seg for seg in segments if seg.type == _PT_DYNAMIC), None)

        needed: List[str] = []
        soname: Optional[str] = None
        rpath: Tuple[str, ...] = ()
        runpath: Tuple[str, ...] = ()
        version_needs: Tuple[Tuple[str, str], ...] = ()

        dyn_section: Optional[_Section] = None
        if dynamic is not None:
            dyn_offset, dyn_size = dynamic.offset, dynamic.filesz
        else:
            dyn_section = next((s for s in self.sections() if s.type == _SHT_DYNAMIC), None)
            dyn_offset, dyn_size = (
                (dyn_section.offset, dyn_section.size) if dyn_section is not None else (0, 0))

        if dynamic is not None or dyn_section is not None:
            entries = self.dynamic_entries(dyn_offset, dyn_size)
            strtab = self.dynamic_strtab(entries, dyn_section)
            for tag, value in entries:
                if tag == _DT_NEEDED:
                    needed.append(self.cstring(self._need(strtab), value, "DT_NEEDED"))
                elif tag == _DT_SONAME:
                    soname = self.cstring(self._need(strtab), value, "DT_SONAME")
                elif tag == _DT_RPATH:
                    rpath = _split_path(self.cstring(self._need(strtab), value, "DT_RPATH"))
                elif tag == _DT_RUNPATH:
                    runpath = _split_path(self.cstring(self._need(strtab), value, "DT_RUNPATH"))
            version_needs = self.version_needs(entries, strtab, dyn_section is not None)

        return ELFInfo(
            path=self.path,
            elf_class=bits,
            little_endian=self.little,
            machine=machine,
            elf_type=elf_type,
            needed=tuple(needed),
            soname=soname,
            rpath=rpath,
            runpath=runpath,
            version_needs=version_needs,
            load_problem=load_problem,
        )

    def load_problem(self, elf_type: str, loads: List["_Segment"]) -> Optional[str]:
        """What glibc's loader checks in the program headers before mapping an object."""
        if elf_type not in ("ET_DYN", "ET_EXEC"):
            return f"it is an {elf_type} object, which the dynamic loader cannot load"
        if not loads:
            return (f"it has no loadable segment ({self.e_phnum} program header"
                    f"{'s' if self.e_phnum != 1 else ''}, none of them PT_LOAD)")
        for n, seg in enumerate(loads, 1):
            if seg.offset + seg.filesz > self.size:
                return (f"loadable segment {n} lies outside the file (offset {seg.offset} + "
                        f"size {seg.filesz} > file size {self.size})")
            if seg.filesz > seg.memsz:
                return (f"loadable segment {n} is larger in the file ({seg.filesz}) than in "
                        f"memory ({seg.memsz})")
            if seg.align > 1 and (seg.vaddr - seg.offset) % seg.align:
                return (f"loadable segment {n}: address {seg.vaddr:#x} and offset "
                        f"{seg.offset:#x} are not aligned to {seg.align:#x}")
        return None

    def _need(self, strtab: Optional["_StrTab"]) -> "_StrTab":
        if strtab is None:
            raise self.corrupt("the dynamic table has string entries but no DT_STRTAB")
        return strtab

    def program_headers(self) -> List["_Segment"]:
        phnum = self.e_phnum
        if phnum == 0 or self.e_phoff == 0:
            return []
        if phnum == _PN_XNUM:
            # The real count is in sh_info of section 0.
            zero = self.section_zero()
            phnum = zero.info if zero is not None else 0
        bits = self.bits
        entsize = self.e_phentsize
        if entsize < _PHDR_SIZE[bits]:
            raise self.corrupt(f"program header entry size {entsize} is smaller than "
                               f"{_PHDR_SIZE[bits]}")
        table = self.read(self.e_phoff, phnum * entsize, f"program header table ({phnum} entries)")
        # Only p_type, p_offset, p_vaddr and p_filesz are needed; their positions differ
        # between the classes (64-bit moves p_flags up to keep the 8-byte fields aligned).
        st = self.structs["IIIIIIII" if bits == 32 else "IIQQQQQQ"]
        segments = []
        unpack_from = st.unpack_from
        for offset in range(0, phnum * entsize, entsize):
            if bits == 32:
                (p_type, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _flags,
                 p_align) = unpack_from(table, offset)
            else:
                (p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz,
                 p_align) = unpack_from(table, offset)
            if p_type in (_PT_LOAD, _PT_DYNAMIC):
                segments.append(_Segment(p_type, p_offset, p_vaddr, p_filesz, p_memsz,
                                         p_align))
        return segments

    def section_zero(self) -> Optional["_Section"]:
        if self.e_shoff == 0:
            return None
        return self.section_at(self.e_shoff, "section header 0")

    def section_at(self, offset: int, what: str) -> "_Section":
        if self.e_shentsize < _SHDR_SIZE[self.bits]:
            raise self.corrupt(f"section header entry size {self.e_shentsize} is smaller than "
                               f"{_SHDR_SIZE[self.bits]}")
        (_name, sh_type, _flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, _align,
         _entsize) = self.unpack(_SHDR[self.bits], offset, what)
        return _Section(sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info)

    def sections(self) -> List["_Section"]:
        """All section headers (read on first use only)."""
        if self._sections is not None:
            return self._sections
        sections: List[_Section] = []
        if self.e_shoff != 0:
            shnum = self.e_shnum
            if shnum == 0:
                # Extended numbering: the real count is in sh_size of section 0.
                zero = self.section_zero()
                shnum = zero.size if zero is not None else 0
            entsize = self.e_shentsize
            if shnum and entsize < _SHDR_SIZE[self.bits]:
                raise self.corrupt(f"section header entry size {entsize} is smaller than "
                                   f"{_SHDR_SIZE[self.bits]}")
            table = self.read(self.e_shoff, shnum * entsize,
                              f"section header table ({shnum} entries)")
            unpack_from = self.structs[_SHDR[self.bits]].unpack_from
            for offset in range(0, shnum * entsize, entsize):
                (_name, sh_type, _flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, _align,
                 _entsize) = unpack_from(table, offset)
                sections.append(_Section(sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info))
        self._sections = sections
        return sections

    def dynamic_entries(self, offset: int, size: int) -> List[Tuple[int, int]]:
        entsize = _DYN_SIZE[self.bits]
        self.check_range(offset, size, "dynamic table")
        st = self.structs[_DYN[self.bits]]
        entries: List[Tuple[int, int]] = []
        count = size // entsize
        chunk = 256  # entries per read; real tables end (DT_NULL) well within the first chunk
        for first in range(0, count, chunk):
            n = min(chunk, count - first)
            data = self.read(offset + first * entsize, n * entsize, "dynamic table")
            for tag, value in st.iter_unpack(data):
                if tag == _DT_NULL:
                    return entries
                entries.append((tag, value))
        return entries

    def address_to_offset(self, address: int, what: str) -> int:
        """File offset of a virtual address: through PT_LOAD segments, else through sections."""
        for seg in self.loads:
            if seg.vaddr <= address < seg.vaddr + seg.filesz:
                return seg.offset + (address - seg.vaddr)
        for section in self.sections():
            if (section.type != _SHT_NOBITS and section.addr != 0
                    and section.addr <= address < section.addr + section.size):
                return section.offset + (address - section.addr)
        raise self.corrupt(f"{what} address {address:#x} is not in any loaded segment or section")

    def dynamic_strtab(self, entries: List[Tuple[int, int]],
                       dyn_section: Optional["_Section"]) -> Optional["_StrTab"]:
        """The dynamic string table; None when the dynamic table names none."""
        address = size = None
        for tag, value in entries:
            if tag == _DT_STRTAB:
                address = value
            elif tag == _DT_STRSZ:
                size = value
        if dyn_section is not None:
            # Read through the section headers: sh_link names the string table.
            linked = self.linked_section(dyn_section, "dynamic section")
            if linked is not None:
                return self.strtab(linked.offset, linked.size, "dynamic string table")
        if address is None:
            return None
        offset = self.address_to_offset(address, "DT_STRTAB")
        if size is None:
            size = self.size - offset
        return self.strtab(offset, size, "dynamic string table")

    def strtab(self, offset: int, size: int, what: str) -> "_StrTab":
        if offset < 0 or offset >= self.size:
            raise self.truncated(f"{what} (offset {offset:#x})")
        # A table that runs past the end is kept: strings wholly inside the file still read,
        # and the one that does not raises "truncated" when it is asked for.
        return _StrTab(offset, size)

    def linked_section(self, section: "_Section", what: str) -> Optional["_Section"]:
        link = section.link
        if link == _SHN_UNDEF:
            return None
        sections = self.sections()
        if link >= len(sections):
            raise self.corrupt(f"{what} links to section {link}, but there are only "
                               f"{len(sections)} sections")
        return sections[link]

    def version_needs(self, entries: List[Tuple[int, int]], strtab: Optional["_StrTab"],
                      from_sections: bool) -> Tuple[Tuple[str, str], ...]:
        address = count = None
        for tag, value in entries:
            if tag == _DT_VERNEED:
                address = value
            elif tag == _DT_VERNEEDNUM:
                count = value
        if address is not None:
            offset = self.address_to_offset(address, "DT_VERNEED")
        else:
            # A dynamic table read from the program headers names its version-needs table when
            # there is one; only a table found through the section headers needs the search.
            verneed = next((s for s in self.sections() if s.type == _SHT_GNU_VERNEED),
                           None) if from_sections else None
            if verneed is None:
                return ()
            offset, count = verneed.offset, verneed.info
            linked = self.linked_section(verneed, "version-needs section")
            if linked is not None:
                strtab = self.strtab(linked.offset, linked.size, "version string table")
        if strtab is None:
            raise self.corrupt("the version-needs table has no string table")
        if count is None:
            count = 0  # Without DT_VERNEEDNUM: follow vn_next until it is 0.

        # The entries are normally contiguous and small: read them in one go and parse from
        # that chunk, going back to bounds-checked single reads for anything outside it.
        chunk_offset = offset
        chunk = self.source.read(offset, max(0, min(_BLOCK, self.size - offset)))
        verneed_st, vernaux_st = self.structs[_VERNEED], self.structs[_VERNAUX]

        def entry(st: struct.Struct, at: int, what: str) -> Tuple[int, ...]:
            relative = at - chunk_offset
            if 0 <= relative <= len(chunk) - _VER_SIZE:
                return st.unpack_from(chunk, relative)
            return st.unpack(self.read(at, _VER_SIZE, what))

        # Each real entry occupies its own 16 bytes, so a file cannot hold more entries than
        # this; a corrupt one whose offsets revisit entries stops here instead of looping.
        budget = self.size // _VER_SIZE
        result: List[Tuple[str, str]] = []
        index = 0
        while True:
            budget -= 1
            if budget < 0:
                raise self.corrupt("the version-needs entries overlap (more entries than fit "
                                   "in the file)")
            _vn_version, vn_cnt, vn_file, vn_aux, vn_next = entry(
                verneed_st, offset, "version-needs entry")
            library = self.cstring(strtab, vn_file, "version-needs file name")
            aux_offset = offset + vn_aux
            for _ in range(vn_cnt):
                budget -= 1
                if budget < 0:
                    raise self.corrupt("the version-needs entries overlap (more entries than "
                                       "fit in the file)")
                _hash, _flags, _other, vna_name, vna_next = entry(
                    vernaux_st, aux_offset, "version-needs auxiliary entry")
                result.append((library, self.cstring(strtab, vna_name, "version name")))
                if vna_next == 0:
                    break
                aux_offset += vna_next
            index += 1
            # Offsets only grow (vn_next is unsigned), so this ends at the end of the file.
            if vn_next == 0 or (count and index >= count):
                break
            offset += vn_next
        return tuple(result)


@dataclass(frozen=True)
class _Segment:
    type: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int = 0
    align: int = 0


@dataclass(frozen=True)
class _Section:
    type: int
    addr: int
    offset: int
    size: int
    link: int
    info: int


@dataclass(frozen=True)
class _StrTab:
    offset: int
    size: int


_STRUCT_CACHE: Dict[str, Dict[str, struct.Struct]] = {}


def _structs(order: str) -> Dict[str, struct.Struct]:
    """Compiled structs for one byte order ("<" or ">"), keyed by format without the order."""
    cached = _STRUCT_CACHE.get(order)
    if cached is None:
        formats = {*_EHDR.values(), *_SHDR.values(), *_DYN.values(), _VERNEED, _VERNAUX,
                   "IIIIII", "IIQQQQ", "IIIIIIII", "IIQQQQQQ"}
        cached = _STRUCT_CACHE[order] = {fmt: struct.Struct(order + fmt) for fmt in formats}
    return cached


def _machine_name(e_machine: int, bits: int, little: bool) -> str:
    name = _MACHINES.get(e_machine)
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


def _split_path(value: str) -> Tuple[str, ...]:
    return tuple(value.split(":")) if value else ()
