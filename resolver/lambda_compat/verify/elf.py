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
corrupt file raises :class:`~lambda_compat.errors.ELFError` (never ``IndexError``/``struct.error``), and loops that
follow offsets stored in the file cannot run forever. Errors opening the file (missing,
permission denied) propagate as ``OSError``.

The format (constants, record layouts, the block cache and the bounds-checked primitives)
is in :mod:`lambda_compat.verify.elf_io`; this module walks the tables. Standard library only.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

from ..errors import ELFError
from .elf_io import (
    BLOCK, DT_NEEDED, DT_NULL, DT_RPATH, DT_RUNPATH, DT_SONAME, DT_STRSZ, DT_STRTAB, DT_VERNEED,
    DT_VERNEEDNUM, DYN, DYN_SIZE, EHDR, EHDR_SIZE, ELF_MAGIC, ELF_TYPES, ELFCLASS32, ELFCLASS64,
    ELFDATA2LSB, ELFDATA2MSB, EI_CLASS, EI_DATA, EI_VERSION, PHDR_SIZE, PN_XNUM, PT_DYNAMIC,
    PT_LOAD, SHDR, SHDR_SIZE, SHN_UNDEF, SHT_DYNAMIC, SHT_GNU_VERNEED, SHT_NOBITS, VER_SIZE,
    VERNAUX, VERNEED, BlockSource, Reader, Section, Segment, StrTab, machine_name, split_path,
    structs_for,
)

__all__ = ["ELFInfo", "is_elf", "read_elf", "version_tuple"]

PathLike = Union[str, "os.PathLike[str]", bytes]


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
        return _Parser(name, BlockSource(fd, size)).parse()
    finally:
        os.close(fd)


_O_RDONLY = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


class _Parser(Reader):
    """Parses one open file. Every read goes through the bounds-checked helpers."""

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
        ei_class, ei_data, ei_version = data[EI_CLASS], data[EI_DATA], data[EI_VERSION]
        if ei_class == ELFCLASS32:
            self.bits = 32
        elif ei_class == ELFCLASS64:
            self.bits = 64
        else:
            raise self.corrupt(f"unknown ELF class {ei_class} (expected 1 or 2)")
        if ei_data == ELFDATA2LSB:
            order = "<"
        elif ei_data == ELFDATA2MSB:
            order = ">"
        else:
            raise self.corrupt(f"unknown ELF data encoding {ei_data} (expected 1 or 2)")
        if ei_version != 1:
            raise self.corrupt(f"unknown ELF version {ei_version} (expected 1)")
        self.little = order == "<"
        bits = self.bits
        self.structs = structs_for(order)

        if self.size < EHDR_SIZE[bits]:
            raise self.truncated(f"the {bits}-bit ELF header ({EHDR_SIZE[bits]} bytes)")
        (e_type, e_machine, _version, _entry, e_phoff, e_shoff, _flags, _ehsize,
         e_phentsize, e_phnum, e_shentsize, e_shnum, _shstrndx) = self.unpack(
            EHDR[bits], 16, "ELF header")
        self.e_phoff, self.e_phentsize, self.e_phnum = e_phoff, e_phentsize, e_phnum
        self.e_shoff, self.e_shentsize, self.e_shnum = e_shoff, e_shentsize, e_shnum
        self._sections: Optional[List[Section]] = None

        machine = machine_name(e_machine, bits, self.little)
        elf_type = ELF_TYPES.get(e_type, f"unknown({e_type})")

        segments = self.program_headers()
        self.loads = [seg for seg in segments if seg.type == PT_LOAD]
        load_problem = self.load_problem(elf_type, self.loads)
        dynamic = next((seg for seg in segments if seg.type == PT_DYNAMIC), None)

        needed: List[str] = []
        soname: Optional[str] = None
        rpath: Tuple[str, ...] = ()
        runpath: Tuple[str, ...] = ()
        version_needs: Tuple[Tuple[str, str], ...] = ()

        dyn_section: Optional[Section] = None
        if dynamic is not None:
            dyn_offset, dyn_size = dynamic.offset, dynamic.filesz
        else:
            dyn_section = next((s for s in self.sections() if s.type == SHT_DYNAMIC), None)
            dyn_offset, dyn_size = (
                (dyn_section.offset, dyn_section.size) if dyn_section is not None else (0, 0))

        if dynamic is not None or dyn_section is not None:
            entries = self.dynamic_entries(dyn_offset, dyn_size)
            strtab = self.dynamic_strtab(entries, dyn_section)
            for tag, value in entries:
                if tag == DT_NEEDED:
                    needed.append(self.cstring(self._need(strtab), value, "DT_NEEDED"))
                elif tag == DT_SONAME:
                    soname = self.cstring(self._need(strtab), value, "DT_SONAME")
                elif tag == DT_RPATH:
                    rpath = split_path(self.cstring(self._need(strtab), value, "DT_RPATH"))
                elif tag == DT_RUNPATH:
                    runpath = split_path(self.cstring(self._need(strtab), value, "DT_RUNPATH"))
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

    def load_problem(self, elf_type: str, loads: List["Segment"]) -> Optional[str]:
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

    def _need(self, strtab: Optional["StrTab"]) -> "StrTab":
        if strtab is None:
            raise self.corrupt("the dynamic table has string entries but no DT_STRTAB")
        return strtab

    def program_headers(self) -> List["Segment"]:
        phnum = self.e_phnum
        if phnum == 0 or self.e_phoff == 0:
            return []
        if phnum == PN_XNUM:
            # The real count is in sh_info of section 0.
            zero = self.section_zero()
            phnum = zero.info if zero is not None else 0
        bits = self.bits
        entsize = self.e_phentsize
        if entsize < PHDR_SIZE[bits]:
            raise self.corrupt(f"program header entry size {entsize} is smaller than "
                               f"{PHDR_SIZE[bits]}")
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
            if p_type in (PT_LOAD, PT_DYNAMIC):
                segments.append(Segment(p_type, p_offset, p_vaddr, p_filesz, p_memsz,
                                         p_align))
        return segments

    def section_zero(self) -> Optional["Section"]:
        if self.e_shoff == 0:
            return None
        return self.section_at(self.e_shoff, "section header 0")

    def section_at(self, offset: int, what: str) -> "Section":
        if self.e_shentsize < SHDR_SIZE[self.bits]:
            raise self.corrupt(f"section header entry size {self.e_shentsize} is smaller than "
                               f"{SHDR_SIZE[self.bits]}")
        (_name, sh_type, _flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, _align,
         _entsize) = self.unpack(SHDR[self.bits], offset, what)
        return Section(sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info)

    def sections(self) -> List["Section"]:
        """All section headers (read on first use only)."""
        if self._sections is not None:
            return self._sections
        sections: List[Section] = []
        if self.e_shoff != 0:
            shnum = self.e_shnum
            if shnum == 0:
                # Extended numbering: the real count is in sh_size of section 0.
                zero = self.section_zero()
                shnum = zero.size if zero is not None else 0
            entsize = self.e_shentsize
            if shnum and entsize < SHDR_SIZE[self.bits]:
                raise self.corrupt(f"section header entry size {entsize} is smaller than "
                                   f"{SHDR_SIZE[self.bits]}")
            table = self.read(self.e_shoff, shnum * entsize,
                              f"section header table ({shnum} entries)")
            unpack_from = self.structs[SHDR[self.bits]].unpack_from
            for offset in range(0, shnum * entsize, entsize):
                (_name, sh_type, _flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, _align,
                 _entsize) = unpack_from(table, offset)
                sections.append(Section(sh_type, sh_addr, sh_offset, sh_size, sh_link, sh_info))
        self._sections = sections
        return sections

    def dynamic_entries(self, offset: int, size: int) -> List[Tuple[int, int]]:
        entsize = DYN_SIZE[self.bits]
        self.check_range(offset, size, "dynamic table")
        st = self.structs[DYN[self.bits]]
        entries: List[Tuple[int, int]] = []
        count = size // entsize
        chunk = 256  # entries per read; real tables end (DT_NULL) well within the first chunk
        for first in range(0, count, chunk):
            n = min(chunk, count - first)
            data = self.read(offset + first * entsize, n * entsize, "dynamic table")
            for tag, value in st.iter_unpack(data):
                if tag == DT_NULL:
                    return entries
                entries.append((tag, value))
        return entries

    def address_to_offset(self, address: int, what: str) -> int:
        """File offset of a virtual address: through PT_LOAD segments, else through sections."""
        for seg in self.loads:
            if seg.vaddr <= address < seg.vaddr + seg.filesz:
                return seg.offset + (address - seg.vaddr)
        for section in self.sections():
            if (section.type != SHT_NOBITS and section.addr != 0
                    and section.addr <= address < section.addr + section.size):
                return section.offset + (address - section.addr)
        raise self.corrupt(f"{what} address {address:#x} is not in any loaded segment or section")

    def dynamic_strtab(self, entries: List[Tuple[int, int]],
                       dyn_section: Optional["Section"]) -> Optional["StrTab"]:
        """The dynamic string table; None when the dynamic table names none."""
        address = size = None
        for tag, value in entries:
            if tag == DT_STRTAB:
                address = value
            elif tag == DT_STRSZ:
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

    def strtab(self, offset: int, size: int, what: str) -> "StrTab":
        if offset < 0 or offset >= self.size:
            raise self.truncated(f"{what} (offset {offset:#x})")
        # A table that runs past the end is kept: strings wholly inside the file still read,
        # and the one that does not raises "truncated" when it is asked for.
        return StrTab(offset, size)

    def linked_section(self, section: "Section", what: str) -> Optional["Section"]:
        link = section.link
        if link == SHN_UNDEF:
            return None
        sections = self.sections()
        if link >= len(sections):
            raise self.corrupt(f"{what} links to section {link}, but there are only "
                               f"{len(sections)} sections")
        return sections[link]

    def version_needs(self, entries: List[Tuple[int, int]], strtab: Optional["StrTab"],
                      from_sections: bool) -> Tuple[Tuple[str, str], ...]:
        address = count = None
        for tag, value in entries:
            if tag == DT_VERNEED:
                address = value
            elif tag == DT_VERNEEDNUM:
                count = value
        if address is not None:
            offset = self.address_to_offset(address, "DT_VERNEED")
        else:
            # A dynamic table read from the program headers names its version-needs table when
            # there is one; only a table found through the section headers needs the search.
            verneed = next((s for s in self.sections() if s.type == SHT_GNU_VERNEED),
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
        chunk = self.source.read(offset, max(0, min(BLOCK, self.size - offset)))
        verneed_st, vernaux_st = self.structs[VERNEED], self.structs[VERNAUX]

        def entry(st: struct.Struct, at: int, what: str) -> Tuple[int, ...]:
            relative = at - chunk_offset
            if 0 <= relative <= len(chunk) - VER_SIZE:
                return st.unpack_from(chunk, relative)
            return st.unpack(self.read(at, VER_SIZE, what))

        # Each real entry occupies its own 16 bytes, so a file cannot hold more entries than
        # this; a corrupt one whose offsets revisit entries stops here instead of looping.
        budget = self.size // VER_SIZE
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
