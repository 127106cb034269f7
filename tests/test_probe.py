"""lambda_compat.prove._payload.probe on this machine: the stdlib-only runtime probe (unit level).

Inside stand-in roots it is tested in compat_tests/test_probe_standin.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_compat.prove._payload import probe
from compat_tests.local_env import python_path, this_machine

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "resolver" / "lambda_compat" / "prove" / "_payload" / "probe.py"
KEYS = {"probe_version", "mode", "time", "machine", "python", "glibc", "libstdcxx", "libgcc",
        "openssl", "sqlite", "zlib", "expat", "os_release", "library_dirs", "sonames", "ld_so_cache_entries", "sys_path",
        "env", "distributions", "errors"}


def test_output_shape_and_facts_on_the_oldest_python_here(tmp_path):
    """Runs as a standalone file on the oldest CPython available (Lambda images go to 3.8)."""
    for minor in range(8, 15):
        interp = python_path((3, minor))
        if interp is not None:
            break
    else:
        pytest.skip("no CPython 3.8+ interpreter found")
    out = tmp_path / "probe.json"
    proc = subprocess.run([interp, "-I", str(PROBE), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert set(data) == KEYS
    assert data["mode"] == "cli" and data["probe_version"] == probe.PROBE_VERSION
    full = subprocess.run([interp, "-I", "-c", "import platform; "
                           "print(platform.python_version())"],
                          capture_output=True, text=True).stdout.strip()
    assert data["python"]["version"] == f"3.{minor}"
    assert data["python"]["full_version"] == full
    assert data["python"]["soabi"].startswith(f"cpython-3{minor}-")
    assert data["machine"] == this_machine()
    libc = subprocess.run(["getconf", "GNU_LIBC_VERSION"], capture_output=True,
                          text=True).stdout.split()
    if libc:
        assert data["glibc"] == libc[1]
    assert "libc.so.6" in data["sonames"]
    # the runtime's own sqlite3 and ssl library versions, read by the interpreter itself
    own = subprocess.run([interp, "-I", "-c", "import sqlite3, ssl, zlib, pyexpat; "
                          "print(sqlite3.sqlite_version); print(ssl.OPENSSL_VERSION); "
                          "print(zlib.ZLIB_RUNTIME_VERSION); print(pyexpat.EXPAT_VERSION)"],
                         capture_output=True, text=True).stdout.splitlines()
    assert [data["sqlite"], data["openssl"], data["zlib"], "expat_" + data["expat"]] == own
    # the script's own directory is not part of the runtime's sys.path
    assert str(PROBE.parent) not in data["sys_path"]
    assert data["errors"] == []


def test_ld_so_cache_matches_ldconfig():
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not Path(ldconfig).exists() or not Path("/etc/ld.so.cache").exists():
        pytest.skip("no ldconfig / ld.so.cache here")
    text = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
    expected = set()
    for line in text.splitlines()[1:]:
        if "=>" in line:
            left, right = line.rsplit("=>", 1)
            expected.add((left.strip().split(" ", 1)[0], right.strip()))
    assert set(probe.read_ld_so_cache()) == expected
    assert len(expected) > 10


def test_elf_soname_reads_dt_soname():
    assert probe.elf_soname(str(ROOT / "fixtures/elf/librpathfix.so.1")) == "librpathfix.so.1"
    # an extension module has no DT_SONAME; a non-ELF file and a truncated one give None
    assert probe.elf_soname(str(ROOT / "fixtures/elf/_oldglibc.cpython-311-x86_64-linux-gnu.so")) \
        is None
    assert probe.elf_soname(str(ROOT / "fixtures/elf/_notelf.cpython-311-x86_64-linux-gnu.so")) \
        is None
    assert probe.elf_soname(str(ROOT / "fixtures/elf/_truncated.cpython-311-x86_64-linux-gnu.so")) \
        is None


def test_scan_keeps_sonames_not_dev_links_or_full_versions(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(ROOT / "fixtures/elf/librpathfix.so.1", lib / "librpathfix.so.1.2.3")
    (lib / "librpathfix.so.1").symlink_to("librpathfix.so.1.2.3")
    (lib / "librpathfix.so").symlink_to("librpathfix.so.1")
    (lib / "libdangling.so.2").symlink_to("nowhere.so.2")
    assert probe.scan_library_dirs([str(lib)]) == {"librpathfix.so.1":
                                                   str(lib / "librpathfix.so.1")}


def test_max_symbol_version_is_numeric(tmp_path):
    f = tmp_path / "libfake.so.6"
    f.write_bytes(b"\x00GLIBCXX_3.4.9\x00GLIBCXX_3.4.30\x00GLIBCXX_3.4.29\x00CXXABI_1.3.13\x00"
                  b"GLIBCXX_DEBUG_MESSAGE_LENGTH\x00GCC_7.0.0\x00GCC_12.0.0\x00")
    assert probe.max_symbol_version(str(f), "GLIBCXX_") == "3.4.30"
    assert probe.max_symbol_version(str(f), "CXXABI_") == "1.3.13"
    assert probe.max_symbol_version(str(f), "GCC_") == "12.0.0"
    assert probe.max_symbol_version(str(f), "GLIBC_") is None


def test_libstdcxx_ceiling_agrees_with_readelf():
    """The byte scan finds the same highest GLIBCXX_ definition binutils lists."""
    readelf = shutil.which("readelf")
    found = probe.scan_library_dirs([d for d in probe.LIBRARY_DIRS if Path(d).is_dir()])
    path = found.get("libstdc++.so.6")
    if readelf is None or path is None:
        pytest.skip("no readelf or no libstdc++ here")
    text = subprocess.run([readelf, "-V", "--wide", path], capture_output=True,
                          text=True).stdout
    defined = re.findall(r"Name: GLIBCXX_([0-9.]+)", text)
    best = max(defined, key=lambda v: tuple(int(p) for p in v.split(".")))
    assert probe.max_symbol_version(path, "GLIBCXX_") == best


def test_handler_mode():
    data = probe.handler({}, None)
    assert data["mode"] == "handler"
    assert data["sys_path"] == list(sys.path)
    json.dumps(data)
