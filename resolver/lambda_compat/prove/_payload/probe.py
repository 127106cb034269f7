"""Probe the Python runtime this file runs in: the facts ``registry/runtimes.yaml`` records.

Standalone and stdlib-only, compatible with Python 3.8+: it is copied into a Lambda image (or
a stand-in root) and run there, never imported from the lambda-compat package. Two ways:

- ``python3 probe.py [-o FILE]`` prints (or writes) one JSON document;
- as a Lambda handler, ``probe.handler`` returns the same document, with ``sys.path`` as the
  handler really sees it (``mode`` is ``handler``). The refresh-runtimes workflow uses this
  through the image's runtime interface emulator.

What it reports: the interpreter (version, SOABI, extension suffixes, executable, prefix,
free-threading), ``platform.machine()``, the glibc version (``os.confstr``, else
``gnu_get_libc_version`` through ctypes), the highest ``GLIBCXX_``/``CXXABI_`` versions
libstdc++ defines and the highest ``GCC_`` version of libgcc_s, the shared libraries the
dynamic loader can find by name (the library directories, ``LD_LIBRARY_PATH`` and the
``/etc/ld.so.cache`` keys), ``sys.path``, the Lambda environment variables, ``/etc/os-release``
and the distributions importable from ``sys.path``. Facts that cannot be read are ``null``,
with the reason in ``errors``; the probe itself never fails on a missing fact.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import struct
import subprocess
import sys
import sysconfig

PROBE_VERSION = 1

#: Directories the dynamic loader searches by default on the images, plus the Debian-style
#: multiarch ones (stand-in roots) and the Lambda runtime's own library directory.
LIBRARY_DIRS = (
    "/lib64", "/usr/lib64", "/lib", "/usr/lib",
    "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
    "/var/lang/lib",
)
#: Environment variables Lambda sets that matter for imports.
ENV_KEYS = ("LD_LIBRARY_PATH", "PATH", "PYTHONPATH", "LANG", "TZ", "LAMBDA_TASK_ROOT",
            "LAMBDA_RUNTIME_DIR", "AWS_EXECUTION_ENV", "AWS_LAMBDA_RUNTIME_API")
_SONAME = re.compile(r"^(lib[^/]*|ld-[^/]*)\.so(\.[0-9]+)*$")
_LD_CACHE_NEW = b"glibc-ld.so.cache1.1"
_LD_CACHE_OLD = b"ld.so-1.7.0"


def _version_key(text):
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def glibc_version(errors):
    """``"2.34"`` from ``os.confstr``, else from ``gnu_get_libc_version()``; None if neither."""
    try:
        value = os.confstr("CS_GNU_LIBC_VERSION")
        if value and value.startswith("glibc "):
            return value.split()[1]
    except (ValueError, OSError, AttributeError) as exc:
        errors.append("os.confstr(CS_GNU_LIBC_VERSION): %s" % exc)
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        fn = libc.gnu_get_libc_version
        fn.restype = ctypes.c_char_p
        return fn().decode("ascii")
    except Exception as exc:  # noqa: BLE001 - any failure means "not glibc / not readable"
        errors.append("gnu_get_libc_version: %s" % exc)
    return None


def max_symbol_version(path, prefix):
    """Highest ``<prefix>N.N[.N]`` version string defined in the file at ``path``.

    The version definitions of libstdc++/libgcc_s are plain strings in ``.dynstr``; reading
    the bytes is enough and needs no ELF parser.
    """
    with open(path, "rb") as f:
        data = f.read()
    pattern = re.compile(re.escape(prefix.encode()) + rb"([0-9]+(?:\.[0-9]+)+)\x00")
    found = {m.group(1).decode() for m in pattern.finditer(data)}
    return max(found, key=_version_key) if found else None


def _library_dirs():
    dirs = []
    for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") + list(LIBRARY_DIRS):
        if d and d not in dirs and os.path.isdir(d):
            dirs.append(d)
    return dirs


def elf_soname(path):
    """The ``DT_SONAME`` of the ELF shared object at ``path``; None if it has none / not ELF.

    Reads the program headers, the ``PT_DYNAMIC`` segment and the string the ``DT_SONAME``
    entry points at (``DT_STRTAB`` is a virtual address, mapped back through ``PT_LOAD``).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return None
            is64 = head[4] == 2
            end = "<" if head[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack_from(end + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
            else:
                phoff, = struct.unpack_from(end + "I", head, 28)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
            if phnum == 0 or phnum > 512:
                return None
            f.seek(phoff)
            table = f.read(phentsize * phnum)
            loads, dynamic = [], None
            for i in range(phnum):
                off = i * phentsize
                if is64:
                    p_type, _fl, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from(
                        end + "IIQQQQ", table, off)
                else:
                    p_type, p_offset, p_vaddr, _pa, p_filesz = struct.unpack_from(
                        end + "IIIII", table, off)
                if p_type == 1:
                    loads.append((p_vaddr, p_offset, p_filesz))
                elif p_type == 2:
                    dynamic = (p_offset, p_filesz)
            if dynamic is None:
                return None
            f.seek(dynamic[0])
            dyn = f.read(dynamic[1])
            fmt, size = (end + "qQ", 16) if is64 else (end + "iI", 8)
            strtab = soname = None
            for i in range(len(dyn) // size):
                tag, val = struct.unpack_from(fmt, dyn, i * size)
                if tag == 0:
                    break
                if tag == 5:
                    strtab = val
                elif tag == 14:
                    soname = val
            if strtab is None or soname is None:
                return None
            for vaddr, offset, filesz in loads:
                if vaddr <= strtab < vaddr + filesz:
                    f.seek(offset + (strtab - vaddr) + soname)
                    raw = f.read(256)
                    return raw.split(b"\x00", 1)[0].decode("utf-8", "replace") or None
    except (OSError, struct.error, IndexError):
        return None
    return None


def scan_library_dirs(dirs):
    """``{soname: path}`` for the shared objects the loader can find by name in ``dirs``.

    A file counts under its ``DT_SONAME`` when a file of that name exists in the same
    directory (that is the name ``DT_NEEDED`` entries use and the loader looks up); development
    symlinks (``libfoo.so``) and fully versioned file names are not sonames.
    """
    found = {}
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        present = set(names)
        for name in names:
            if not _SONAME.match(name):
                continue
            path = os.path.join(d, name)
            if not os.path.isfile(path):  # follows symlinks: a dangling link is not a library
                continue
            soname = elf_soname(path)
            if soname and soname in present and soname not in found:
                found[soname] = os.path.join(d, soname)
    return found


def read_ld_so_cache(path="/etc/ld.so.cache"):
    """``(name, path)`` entries of the dynamic loader's cache; [] if absent.

    Format (glibc ``elf/cache.c``): optionally an old-format table, then the new-format
    header ``glibc-ld.so.cache1.1``, ``nlibs`` (uint32), ``len_strings`` (uint32),
    flags/padding, ``unused[3]`` and ``nlibs`` entries of (flags int32, key uint32,
    value uint32, osversion uint32, hwcap uint64). Offsets are relative to the new header.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    start = data.find(_LD_CACHE_NEW)
    if start < 0:
        return []
    nlibs, = struct.unpack_from("<I", data, start + 20)
    entries = start + 48  # 20 magic + nlibs + len_strings + flags(1)+pad(3) + extension + unused[2]
    out = []

    def string(offset):
        pos = start + offset
        end = data.find(b"\x00", pos)
        if pos >= len(data) or end < 0:
            return None
        return data[pos:end].decode("utf-8", "replace")

    for i in range(nlibs):
        off = entries + i * 24
        if off + 24 > len(data):
            break
        _flags, key, value, _osv, _hwcap = struct.unpack_from("<iIIIQ", data, off)
        name, target = string(key), string(value)
        if name and target:
            out.append((name, target))
    return out


def ldconfig_names(errors):
    """``(name, path)`` from ``ldconfig -p`` when the tool exists (it reads the same cache)."""
    for exe in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if not os.path.exists(exe):
            continue
        try:
            out = subprocess.run([exe, "-p"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 timeout=30, universal_newlines=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            errors.append("%s -p: %s" % (exe, exc))
            return []
        entries = []
        for line in out.splitlines()[1:]:
            if line.startswith(("\t", " ")) and "=>" in line:
                left, right = line.rsplit("=>", 1)
                entries.append((left.strip().split(" ", 1)[0], right.strip()))
        return entries
    return []


def _libstdcxx(sonames, errors):
    out = {"path": None, "GLIBCXX": None, "CXXABI": None}
    path = sonames.get("libstdc++.so.6")
    if path:
        out["path"] = path
        try:
            out["GLIBCXX"] = max_symbol_version(path, "GLIBCXX_")
            out["CXXABI"] = max_symbol_version(path, "CXXABI_")
        except OSError as exc:
            errors.append("reading %s: %s" % (path, exc))
    return out


def _libgcc(sonames, errors):
    path = sonames.get("libgcc_s.so.1")
    if not path:
        return {"path": None, "GCC": None}
    try:
        return {"path": path, "GCC": max_symbol_version(path, "GCC_")}
    except OSError as exc:
        errors.append("reading %s: %s" % (path, exc))
        return {"path": path, "GCC": None}


def _os_release():
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        out = {}
        for line in lines:
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                if key in ("ID", "VERSION_ID", "PRETTY_NAME"):
                    out[key] = value.strip().strip('"')
        return out
    return {}


def _distributions(errors):
    try:
        from importlib import metadata
    except ImportError as exc:  # pragma: no cover - 3.8+ has it
        errors.append("importlib.metadata: %s" % exc)
        return []
    seen = {}
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
            location = str(dist.locate_file(""))
        except Exception as exc:  # noqa: BLE001 - a broken dist-info must not stop the probe
            errors.append("distribution metadata: %s" % exc)
            continue
        if name and name.lower() not in seen:
            seen[name.lower()] = {"name": name, "version": version,
                                  "location": location.rstrip("/")}
    return sorted(seen.values(), key=lambda d: d["name"].lower())


def _python():
    import importlib.machinery
    version = "%d.%d" % sys.version_info[:2]
    full = platform.python_version()
    return {
        "implementation": sys.implementation.name,
        "version": version,
        "full_version": full,
        "executable": sys.executable,
        "prefix": sys.prefix,
        "soabi": sysconfig.get_config_var("SOABI"),
        "ext_suffixes": list(importlib.machinery.EXTENSION_SUFFIXES),
        "sysconfig_platform": sysconfig.get_platform(),
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    }


def collect(mode="cli", sys_path=None):
    """The probe document (a JSON-serialisable dict)."""
    errors = []
    dirs = _library_dirs()
    sonames = scan_library_dirs(dirs)
    cache = read_ld_so_cache()
    if not cache:
        cache = ldconfig_names(errors)
    # A cache entry is a soname when the file it points at declares that soname (the cache
    # also lists development links such as libfoo.so).
    all_names = set(sonames) | {name for name, path in cache
                                if _SONAME.match(name) and elf_soname(path) == name}
    try:
        import ssl
        openssl = ssl.OPENSSL_VERSION
    except Exception as exc:  # noqa: BLE001 - ssl may be missing or unloadable
        openssl = None
        errors.append("import ssl: %s" % exc)
    try:
        import sqlite3
        sqlite = sqlite3.sqlite_version
    except Exception as exc:  # noqa: BLE001 - _sqlite3 may be missing or unloadable
        sqlite = None
        errors.append("import sqlite3: %s" % exc)
    try:
        import zlib
        zlib_version = zlib.ZLIB_RUNTIME_VERSION
    except Exception as exc:  # noqa: BLE001
        zlib_version = None
        errors.append("import zlib: %s" % exc)
    try:
        import pyexpat
        expat = pyexpat.EXPAT_VERSION.replace("expat_", "")
    except Exception as exc:  # noqa: BLE001
        expat = None
        errors.append("import pyexpat: %s" % exc)
    return {
        "probe_version": PROBE_VERSION,
        "mode": mode,
        "time": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        .isoformat(),
        "machine": platform.machine(),
        "python": _python(),
        "glibc": glibc_version(errors),
        "libstdcxx": _libstdcxx(sonames, errors),
        "libgcc": _libgcc(sonames, errors),
        "openssl": openssl,
        "sqlite": sqlite,
        "zlib": zlib_version,
        "expat": expat,
        "os_release": _os_release(),
        "library_dirs": dirs,
        "sonames": sorted(all_names),
        "ld_so_cache_entries": len(cache),
        "sys_path": list(sys.path if sys_path is None else sys_path),
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
        "distributions": _distributions(errors),
        "errors": errors,
    }


def handler(event, context):  # noqa: ARG001 - Lambda handler signature
    """Lambda handler: the probe as the function sees its own runtime."""
    return collect(mode="handler")


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description="Print facts about this Python runtime as JSON.")
    parser.add_argument("-o", "--output", help="write the JSON here instead of stdout")
    args = parser.parse_args(argv)
    # sys.path[0] is this script's directory when run as a file: not part of the runtime.
    path = list(sys.path)
    here = os.path.dirname(os.path.abspath(__file__))
    if path and os.path.abspath(path[0] or ".") == here:
        path = path[1:]
    text = json.dumps(collect(mode="cli", sys_path=path), indent=2, sort_keys=True) + "\n"
    if args.output:
        tmp = args.output + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, args.output)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
