"""Tests for lambda_compat.verify.elf against the committed fixtures in fixtures/elf (see its README),
synthetic ELF files built here (32/64-bit, little/big endian, with and without program
headers) and, when present, real system libraries."""

from __future__ import annotations

import os
import platform
import shutil
import struct
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_compat.errors import ELFError
from lambda_compat.verify.elf import ELFInfo, is_elf, read_elf, version_tuple

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "elf"

OLD_X86 = FIXTURES / "_oldglibc.cpython-311-x86_64-linux-gnu.so"
GLIBC234_X86 = FIXTURES / "_glibc234.cpython-312-x86_64-linux-gnu.so"
GLIBC236_X86 = FIXTURES / "_glibc236.abi3.so"
CXX_X86 = FIXTURES / "_cxx.cpython-311-x86_64-linux-gnu.so"
PQ_X86 = FIXTURES / "_pq.cpython-311-x86_64-linux-gnu.so"
RPATH_X86 = FIXTURES / "librpathfix.so.1"
OLD_ARM = FIXTURES / "_oldglibc.cpython-312-aarch64-linux-gnu.so"
GLIBC236_ARM = FIXTURES / "_glibc236.cpython-312-aarch64-linux-gnu.so"
TRUNCATED = FIXTURES / "_truncated.cpython-311-x86_64-linux-gnu.so"
NOT_ELF = FIXTURES / "_notelf.cpython-311-x86_64-linux-gnu.so"

GOOD_FIXTURES = [OLD_X86, GLIBC234_X86, GLIBC236_X86, CXX_X86, PQ_X86, RPATH_X86, OLD_ARM,
                 GLIBC236_ARM]


# -- committed fixtures ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "path, machine, glibc, glibc_versions",
    [
        (OLD_X86, "x86_64", (2, 14), ("GLIBC_2.2.5", "GLIBC_2.14")),
        (GLIBC234_X86, "x86_64", (2, 34), ("GLIBC_2.2.5", "GLIBC_2.34")),
        (GLIBC236_X86, "x86_64", (2, 36), ("GLIBC_2.2.5", "GLIBC_2.36")),
        (CXX_X86, "x86_64", (2, 2, 5), ("GLIBC_2.2.5",)),
        (PQ_X86, "x86_64", (2, 2, 5), ("GLIBC_2.2.5",)),
        (RPATH_X86, "x86_64", None, ()),
        (OLD_ARM, "aarch64", (2, 17), ("GLIBC_2.17",)),
        (GLIBC236_ARM, "aarch64", (2, 36), ("GLIBC_2.17", "GLIBC_2.36")),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else None,
)
def test_fixture_machine_and_glibc(path: Path, machine: str, glibc, glibc_versions) -> None:
    info = read_elf(path)
    assert info.path == str(path)
    assert info.machine == machine
    assert info.elf_class == 64
    assert info.little_endian is True
    assert info.elf_type == "ET_DYN"
    assert info.max_version("GLIBC_") == glibc
    assert info.versions_with_prefix("GLIBC_") == glibc_versions


def test_old_glibc_x86_64_needs_only_libc() -> None:
    info = read_elf(OLD_X86)
    assert info.needed == ("libc.so.6",)
    assert info.soname is None
    assert info.rpath == () and info.runpath == ()
    assert sorted(info.version_needs) == [("libc.so.6", "GLIBC_2.14"),
                                          ("libc.so.6", "GLIBC_2.2.5")]
    assert info.max_version("GLIBCXX_") is None


def test_cxx_needs_recent_glibcxx() -> None:
    info = read_elf(CXX_X86)
    assert info.needed == ("libstdc++.so.6", "libgcc_s.so.1", "libc.so.6")
    assert info.max_version("GLIBCXX_") == (3, 4, 30)
    assert info.versions_with_prefix("GLIBCXX_") == ("GLIBCXX_3.4.11", "GLIBCXX_3.4.30")
    assert info.max_version("CXXABI_") == (1, 3)
    assert info.max_version("GCC_") == (3, 0)
    assert ("libstdc++.so.6", "GLIBCXX_3.4.30") in info.version_needs
    assert ("libgcc_s.so.1", "GCC_3.0") in info.version_needs
    # GLIBC_ must not pick up GLIBCXX_ names.
    assert info.versions_with_prefix("GLIBC_") == ("GLIBC_2.2.5",)


def test_libpq_needed_and_runpath() -> None:
    info = read_elf(PQ_X86)
    assert info.needed == ("libpq.so.5", "libc.so.6")
    assert info.runpath == ("$ORIGIN/../mypkg.libs",)
    assert info.rpath == ()
    assert info.soname is None


def test_soname_and_rpath() -> None:
    info = read_elf(RPATH_X86)
    assert info.soname == "librpathfix.so.1"
    assert info.rpath == ("$ORIGIN", "$ORIGIN/../lib")
    assert info.runpath == ()
    assert info.needed == ()
    assert info.version_needs == ()
    assert info.max_version("GLIBC_") is None
    assert info.versions_with_prefix("GLIBC_") == ()


def test_aarch64_new_glibc() -> None:
    info = read_elf(GLIBC236_ARM)
    assert info.machine == "aarch64"
    assert info.needed == ("libc.so.6",)
    assert set(info.version_needs) == {("libc.so.6", "GLIBC_2.17"), ("libc.so.6", "GLIBC_2.36")}


def test_accepts_str_bytes_and_pathlike() -> None:
    by_path = read_elf(OLD_X86)
    assert read_elf(str(OLD_X86)) == by_path
    assert read_elf(os.fsencode(OLD_X86)).needed == by_path.needed


def test_truncated_fixture_raises_elf_error() -> None:
    with pytest.raises(ELFError) as caught:
        read_elf(TRUNCATED)
    message = str(caught.value)
    assert str(TRUNCATED) in message
    assert "truncated" in message
    assert caught.value.path == str(TRUNCATED)


def test_not_elf_fixture_raises_elf_error() -> None:
    with pytest.raises(ELFError) as caught:
        read_elf(NOT_ELF)
    message = str(caught.value)
    assert str(NOT_ELF) in message
    assert "not an ELF file" in message


def test_is_elf(tmp_path: Path) -> None:
    for path in GOOD_FIXTURES + [TRUNCATED]:
        assert is_elf(path), path
    assert not is_elf(NOT_ELF)
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    assert not is_elf(empty)
    short = tmp_path / "short.so"
    short.write_bytes(b"\x7fEL")
    assert not is_elf(short)
    assert not is_elf(tmp_path)  # a directory
    with pytest.raises(FileNotFoundError):
        is_elf(tmp_path / "missing.so")


@pytest.mark.parametrize("content, problem", [
    (b"", "not an ELF file (the file is empty)"),
    (b"\x7fE", "truncated"),
    (b"\x7fELF", "truncated"),
    (b"\x7fELF\x02\x01\x01" + bytes(9), "truncated"),
    (b"\x7fELF\x03\x01\x01" + bytes(60), "unknown ELF class 3"),
    (b"\x7fELF\x02\x03\x01" + bytes(60), "unknown ELF data encoding 3"),
    (b"\x7fELF\x02\x01\x07" + bytes(60), "unknown ELF version 7"),
    (b"MZ\x90\x00" + bytes(60), "not an ELF file"),
])
def test_bad_headers(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.so"
    path.write_bytes(content)
    with pytest.raises(ELFError, match="bad.so") as caught:
        read_elf(path)
    assert problem in str(caught.value)


def test_missing_file_is_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_elf(tmp_path / "missing.so")


def test_every_truncation_of_a_fixture_raises_elf_error_or_parses(tmp_path: Path) -> None:
    data = CXX_X86.read_bytes()
    path = tmp_path / "cut.so"
    full = read_elf(CXX_X86)
    for length in list(range(0, 128)) + list(range(128, len(data), 23)):
        path.write_bytes(data[:length])
        try:
            info = read_elf(path)
        except ELFError as error:
            assert str(path) in str(error)
        else:
            # The section headers sit at the end of the file and are not needed:
            # whatever parses must be the whole truth.
            assert info.needed == full.needed and info.version_needs == full.version_needs


def test_section_header_fallback_when_pt_dynamic_is_missing(tmp_path: Path) -> None:
    """With PT_DYNAMIC blanked out, .dynamic/.dynstr/.gnu.version_r come from the sections."""
    for fixture in (CXX_X86, PQ_X86, RPATH_X86, GLIBC236_ARM):
        data = bytearray(fixture.read_bytes())
        phoff, = struct.unpack_from("<Q", data, 32)
        phentsize, phnum = struct.unpack_from("<HH", data, 54)
        blanked = 0
        for index in range(phnum):
            offset = phoff + index * phentsize
            if struct.unpack_from("<I", data, offset)[0] == 2:  # PT_DYNAMIC
                struct.pack_into("<I", data, offset, 0)  # PT_NULL
                blanked += 1
        assert blanked == 1
        path = tmp_path / fixture.name
        path.write_bytes(bytes(data))
        assert read_elf(path) == ELFInfo(**{**read_elf(fixture).__dict__, "path": str(path)})


# -- version helpers ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, expected", [
    ("GLIBC_2.2.5", (2, 2, 5)),
    ("GLIBC_2.17", (2, 17)),
    ("GLIBCXX_3.4.21", (3, 4, 21)),
    ("CXXABI_1.3.9", (1, 3, 9)),
    ("GCC_3.0", (3, 0)),
])
def test_version_tuple(name: str, expected: Tuple[int, ...]) -> None:
    assert version_tuple(name) == expected


@pytest.mark.parametrize("name", ["GLIBC_PRIVATE", "GLIBC_ABI_DT_RELR", "GLIBC_", "GLIBC",
                                  "GLIBC_2..3", "GLIBC_2.x", "GLIBC_\u0662.3"])
def test_version_tuple_rejects_non_numeric(name: str) -> None:
    with pytest.raises(ValueError):
        version_tuple(name)


def _info(version_needs: Sequence[Tuple[str, str]]) -> ELFInfo:
    return ELFInfo(path="x.so", elf_class=64, little_endian=True, machine="x86_64",
                   elf_type="ET_DYN", needed=(), soname=None, rpath=(), runpath=(),
                   version_needs=tuple(version_needs))


def test_max_version_and_sorting() -> None:
    info = _info([
        ("libc.so.6", "GLIBC_2.14"),
        ("libc.so.6", "GLIBC_2.2.5"),
        ("libc.so.6", "GLIBC_PRIVATE"),
        ("libc.so.6", "GLIBC_ABI_DT_RELR"),
        ("libm.so.6", "GLIBC_2.29"),
        ("libm.so.6", "GLIBC_2.2.5"),
        ("libstdc++.so.6", "GLIBCXX_3.4.9"),
        ("libstdc++.so.6", "GLIBCXX_3.4.21"),
    ])
    assert info.max_version("GLIBC_") == (2, 29)
    # Numeric order, not string order; duplicates across libraries once.
    assert info.versions_with_prefix("GLIBC_") == ("GLIBC_2.2.5", "GLIBC_2.14", "GLIBC_2.29")
    assert info.max_version("GLIBCXX_") == (3, 4, 21)
    assert info.versions_with_prefix("GLIBCXX_") == ("GLIBCXX_3.4.9", "GLIBCXX_3.4.21")
    assert info.max_version("CXXABI_") is None
    assert _info([("libc.so.6", "GLIBC_PRIVATE")]).max_version("GLIBC_") is None


# -- synthetic ELF files: 32/64-bit, little/big endian ----------------------------------------

def build_elf(*, bits: int = 64, little: bool = True, machine: int = 62, elf_type: int = 3,
              needed: Sequence[str] = (), soname: Optional[str] = None, rpath: Optional[str] = None,
              runpath: Optional[str] = None,
              verneed: Sequence[Tuple[str, Sequence[str]]] = (),
              pt_dynamic: bool = True, sections: bool = True) -> bytes:
    """A minimal ELF file with one PT_LOAD mapping the whole file at 0x10000 + offset."""
    o = "<" if little else ">"
    word = "I" if bits == 32 else "Q"
    ehsize, phentsize, shentsize, dynentsize = ((52, 32, 40, 8) if bits == 32
                                                else (64, 56, 64, 16))
    base = 0x10000

    strings = bytearray(b"\0")
    index = {}

    def add(text: str) -> int:
        if text not in index:
            index[text] = len(strings)
            strings.extend(text.encode() + b"\0")
        return index[text]

    dyn: List[Tuple[int, int]] = [(1, add(name)) for name in needed]
    if soname is not None:
        dyn.append((14, add(soname)))
    if rpath is not None:
        dyn.append((15, add(rpath)))
    if runpath is not None:
        dyn.append((29, add(runpath)))
    version_blob = bytearray()
    for number, (library, names) in enumerate(verneed):
        last = number == len(verneed) - 1
        version_blob += struct.pack(o + "HHIII", 1, len(names), add(library), 16,
                                    0 if last else 16 + 16 * len(names))
        for position, name in enumerate(names):
            version_blob += struct.pack(o + "IHHII", 0, 0, 0, add(name),
                                        0 if position == len(names) - 1 else 16)

    def align(value: int, to: int = 8) -> int:
        return (value + to - 1) // to * to

    phnum = 2 if pt_dynamic else 1
    strtab_off = ehsize + phnum * phentsize
    verneed_off = align(strtab_off + len(strings))
    dyn_off = align(verneed_off + len(version_blob))
    dyn.append((5, base + strtab_off))
    dyn.append((10, len(strings)))
    if verneed:
        dyn.append((0x6FFFFFFE, base + verneed_off))
        dyn.append((0x6FFFFFFF, len(verneed)))
    dyn.append((0, 0))
    dyn_size = len(dyn) * dynentsize
    shoff = align(dyn_off + dyn_size)
    section_rows = []
    if sections:
        # null, .dynstr (1), .gnu.version_r (2), .dynamic (3)
        section_rows = [
            (0, 0, 0, 0, 0, 0, 0),
            (3, base + strtab_off, strtab_off, len(strings), 0, 0, 1),
            (0x6FFFFFFE, base + verneed_off, verneed_off, len(version_blob), 1, len(verneed), 8),
            (6, base + dyn_off, dyn_off, dyn_size, 1, 0, dynentsize),
        ]
    total = shoff + len(section_rows) * shentsize

    out = bytearray(total)
    out[0:16] = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if little else 2, 1]) + bytes(9)
    struct.pack_into(o + "HHI" + word * 3 + "IHHHHHH", out, 16, elf_type, machine, 1, 0,
                     ehsize, shoff if sections else 0, 0, ehsize, phentsize, phnum, shentsize,
                     len(section_rows), 0)
    phdrs = [(1, 0, base, total, 5)]  # PT_LOAD, offset, vaddr, filesz, flags
    if pt_dynamic:
        phdrs.append((2, dyn_off, base + dyn_off, dyn_size, 6))
    for number, (p_type, offset, vaddr, filesz, flags) in enumerate(phdrs):
        at = ehsize + number * phentsize
        if bits == 32:
            struct.pack_into(o + "8I", out, at, p_type, offset, vaddr, vaddr, filesz, filesz,
                             flags, 4)
        else:
            struct.pack_into(o + "IIQQQQQQ", out, at, p_type, flags, offset, vaddr, vaddr,
                             filesz, filesz, 8)
    out[strtab_off:strtab_off + len(strings)] = strings
    out[verneed_off:verneed_off + len(version_blob)] = version_blob
    for number, (tag, value) in enumerate(dyn):
        struct.pack_into(o + ("iI" if bits == 32 else "qQ"), out, dyn_off + number * dynentsize,
                         tag, value)
    for number, (sh_type, addr, offset, size, link, info, entsize) in enumerate(section_rows):
        fields = (0, sh_type, 0, addr, offset, size, link, info, 1, entsize)
        fmt = "10I" if bits == 32 else "IIQQQQIIQQ"
        struct.pack_into(o + fmt, out, shoff + number * shentsize, *fields)
    return bytes(out)


SYNTHETIC = dict(
    needed=("libfoo.so.1", "libc.so.6"),
    soname="libsynthetic.so.2",
    rpath="/opt/a:/opt/b",
    runpath="$ORIGIN/lib",
    verneed=(("libc.so.6", ("GLIBC_2.17", "GLIBC_2.28", "GLIBC_PRIVATE")),
             ("libstdc++.so.6", ("GLIBCXX_3.4.21",))),
)


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("little", [True, False], ids=["le", "be"])
@pytest.mark.parametrize("layout", ["phdr+sections", "phdr-only", "sections-only"])
def test_synthetic_classes_and_byte_orders(tmp_path: Path, bits: int, little: bool,
                                           layout: str) -> None:
    data = build_elf(bits=bits, little=little, pt_dynamic=layout != "sections-only",
                     sections=layout != "phdr-only", **SYNTHETIC)
    path = tmp_path / "synthetic.so"
    path.write_bytes(data)
    info = read_elf(path)
    assert info.elf_class == bits
    assert info.little_endian is little
    assert info.elf_type == "ET_DYN"
    assert info.machine == "x86_64"
    assert info.needed == ("libfoo.so.1", "libc.so.6")
    assert info.soname == "libsynthetic.so.2"
    assert info.rpath == ("/opt/a", "/opt/b")
    assert info.runpath == ("$ORIGIN/lib",)
    assert info.version_needs == (("libc.so.6", "GLIBC_2.17"), ("libc.so.6", "GLIBC_2.28"),
                                  ("libc.so.6", "GLIBC_PRIVATE"),
                                  ("libstdc++.so.6", "GLIBCXX_3.4.21"))
    assert info.max_version("GLIBC_") == (2, 28)
    assert info.max_version("GLIBCXX_") == (3, 4, 21)


def test_synthetic_no_dynamic_at_all(tmp_path: Path) -> None:
    path = tmp_path / "static"
    path.write_bytes(build_elf(elf_type=2, pt_dynamic=False, sections=False))
    info = read_elf(path)
    assert info.elf_type == "ET_EXEC"
    assert (info.needed, info.soname, info.rpath, info.runpath, info.version_needs) == (
        (), None, (), (), ())


@pytest.mark.parametrize("machine, bits, little, expected", [
    (62, 64, True, "x86_64"),
    (183, 64, True, "aarch64"),
    (3, 32, True, "i386"),
    (40, 32, True, "arm"),
    (21, 64, True, "ppc64le"),
    (21, 64, False, "ppc64"),
    (22, 64, False, "s390x"),
    (243, 64, True, "riscv64"),
    (4242, 64, True, "unknown(4242)"),
])
def test_machine_names(tmp_path: Path, machine: int, bits: int, little: bool,
                       expected: str) -> None:
    path = tmp_path / "m.so"
    path.write_bytes(build_elf(machine=machine, bits=bits, little=little))
    assert read_elf(path).machine == expected


def test_corrupt_string_index(tmp_path: Path) -> None:
    data = bytearray(build_elf(needed=("libc.so.6",), sections=False))
    # The first dynamic entry is DT_NEEDED; point it far outside the string table.
    dyn_off = next(off for off in range(64, len(data), 8)
                   if struct.unpack_from("<qQ", data, off) == (1, 1))
    struct.pack_into("<qQ", data, dyn_off, 1, 10_000)
    path = tmp_path / "corrupt.so"
    path.write_bytes(bytes(data))
    with pytest.raises(ELFError, match="corrupt ELF file: DT_NEEDED"):
        read_elf(path)


# -- robustness: nothing but ELFError escapes ---------------------------------------------------

@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("elf-fuzz") / "fuzz.so"


def _read_or_elf_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        info = read_elf(path)
    except ELFError as error:
        assert str(path) in str(error)
    else:
        # a file that parses is described as its identification bytes say, not by defaults
        assert info.path == str(path)
        assert (info.elf_class, info.little_endian) == ({1: 32, 2: 64}[data[4]], data[5] == 1)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_after_magic_only_raise_elf_error(scratch: Path, tail: bytes) -> None:
    _read_or_elf_error(scratch, b"\x7fELF" + tail)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([1, 2]), st.sampled_from([1, 2]), st.binary(min_size=0, max_size=1024))
def test_random_headers_with_valid_ident_only_raise_elf_error(scratch: Path, ei_class: int,
                                                              ei_data: int, tail: bytes) -> None:
    # A valid identification gets the parser past the first checks into the tables.
    _read_or_elf_error(scratch, b"\x7fELF" + bytes([ei_class, ei_data, 1]) + bytes(9) + tail)


_FUZZ_BASES = [CXX_X86.read_bytes(), OLD_ARM.read_bytes(),
               build_elf(bits=32, little=False, **SYNTHETIC),
               build_elf(bits=64, little=True, pt_dynamic=False, **SYNTHETIC)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(_FUZZ_BASES))),
       st.lists(st.tuples(st.integers(min_value=0, max_value=8191), st.integers(0, 255)),
                min_size=1, max_size=16),
       st.integers(min_value=0, max_value=8192))
def test_mutated_real_files_only_raise_elf_error(scratch: Path, base: int,
                                                 edits: List[Tuple[int, int]],
                                                 cut: int) -> None:
    data = bytearray(_FUZZ_BASES[base])
    for position, value in edits:
        data[position % len(data)] = value
    _read_or_elf_error(scratch, bytes(data[:max(cut, 16)]) if cut < len(data) else bytes(data))


# -- real system files ----------------------------------------------------------------------

SYSTEM_LIBC = [
    ("/lib/x86_64-linux-gnu/libc.so.6", "x86_64", "ld-linux-x86-64.so.2"),
    ("/usr/aarch64-linux-gnu/lib/libc.so.6", "aarch64", "ld-linux-aarch64.so.1"),
    ("/lib/aarch64-linux-gnu/libc.so.6", "aarch64", "ld-linux-aarch64.so.1"),
]


@pytest.mark.parametrize("path, machine, loader", SYSTEM_LIBC, ids=[p for p, _, _ in SYSTEM_LIBC])
def test_system_libc(path: str, machine: str, loader: str) -> None:
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    info = read_elf(path)
    assert info.soname == "libc.so.6"
    assert info.machine == machine
    assert info.elf_type == "ET_DYN"
    assert loader in info.needed
    version = info.max_version("GLIBC_")
    assert version is not None and version >= (2, 2)


def test_running_interpreter_matches_platform() -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("ELF only on Linux")
    executable = os.path.realpath(sys.executable)
    if not is_elf(executable):
        pytest.skip(f"{executable} is not an ELF file")
    info = read_elf(executable)
    expected = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64",
                "arm64": "aarch64"}.get(platform.machine())
    if expected is None:
        pytest.skip(f"no expectation for {platform.machine()}")
    assert info.machine == expected
    assert info.elf_type in ("ET_DYN", "ET_EXEC")


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf not installed")
def test_agrees_with_readelf_on_fixtures() -> None:
    import re
    import subprocess

    for path in GOOD_FIXTURES:
        out = subprocess.run(["readelf", "-W", "-d", "-V", str(path)], capture_output=True,
                             text=True, check=True).stdout
        info = read_elf(path)
        assert list(info.needed) == re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)
        names = re.findall(r"Name: (\S+)\s+Flags:", out.split("Version needs section")[-1]) \
            if "Version needs section" in out else []
        assert [name for _, name in info.version_needs] == names
