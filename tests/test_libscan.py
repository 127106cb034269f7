"""Libraries loaded at import through ctypes/cffi (issue 11, class 2): the static scan, the
judgement against the runtime's library set, and a dynamic proof that does not borrow the
host's libraries."""

from __future__ import annotations

import ctypes.util
import json
import textwrap
from pathlib import Path

import pytest

from lambda_compat.host import binfmt

from lambda_compat.cli import main as cli

from lambda_compat.verify import libscan, libscan_memo, libscan_verdict

from lambda_compat.host import sandbox
from lambda_compat.verify import bundle as _bundle
from lambda_compat.registry.runtimes import get_target
from compat_tests.local_env import has_python
from lambda_compat.verify.static_check import StaticChecker

from check_helpers import make_dist

HOST = binfmt.host_machine()
HOST_ARCH = "arm64" if HOST == "aarch64" else "x86_64"
AL2 = "python3.11"      # Amazon Linux 2: no libmagic recorded
AL2023 = "python3.12"   # Amazon Linux 2023: libmagic.so.1 recorded


def scan(tmp_path: Path, files: dict, modules=("pkg",)):
    site = "/var/task"
    real = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        real[f"{site}/{rel}"] = str(path)
    return libscan.scan_distribution(site, modules, real)


def kinds(loads):
    return sorted((l.kind, l.name) for l in loads)


def test_literal_names_constants_and_paths(tmp_path):
    loads = scan(tmp_path, {"pkg/__init__.py": """\
        import ctypes, os
        from ctypes import CDLL
        _NAME = "libgdal.so.30"
        a = ctypes.CDLL("libmagic.so.1")
        b = CDLL(_NAME)
        c = ctypes.cdll.LoadLibrary(os.path.join(os.path.dirname(__file__), "libown.so"))
        d = ctypes.CDLL(None)
        e = ctypes.CDLL(ctypes.util.find_library("c"))
        """})
    assert kinds(loads) == [("find_library", "libc"), ("literal", "libgdal.so.30"),
                            ("literal", "libmagic.so.1"), ("literal", "libown.so")]
    assert {l.line for l in loads if l.name == "libmagic.so.1"} == {4}


def test_names_next_to_a_computed_load_are_inferred_cairocffi_style(tmp_path):
    loads = scan(tmp_path, {"pkg/__init__.py": """\
        from ctypes.util import find_library
        def dlopen(ffi, names, filenames):
            for name in names:
                found = find_library(name)
            for filename in filenames:
                return ffi.dlopen(filename)
        cairo = dlopen(None, ("cairo-2", "cairo"), ("libcairo.so.2", "libcairo.2.dylib"))
        """})
    assert kinds(loads) == [("inferred", "libcairo.so.2")]
    assert loads[0].call == "ffi.dlopen"


def test_a_load_in_another_module_called_at_import_python_magic_style(tmp_path):
    loads = scan(tmp_path, {
        "pkg/__init__.py": "from . import loader\nlib = loader.load_lib()\n",
        "pkg/loader.py": """\
            import ctypes, sys
            from ctypes.util import find_library
            def _candidates():
                yield find_library('magic')
                if sys.platform == 'darwin':
                    yield '/usr/local/lib/libmagic.dylib'
                elif sys.platform == 'linux':
                    yield 'libmagic.so.1'
            def load_lib():
                for lib in _candidates():
                    try:
                        return ctypes.CDLL(lib)
                    except OSError:
                        pass
                raise ImportError('failed to find libmagic')
            """})
    assert kinds(loads) == [("find_library", "libmagic"), ("inferred", "libmagic.so.1")]


def test_loads_not_run_at_import_are_not_reported(tmp_path):
    loads = scan(tmp_path, {
        "pkg/__init__.py": "from .util import helper\n",
        "pkg/util.py": """\
            import ctypes, sys
            def helper():
                return 1
            def load_later(path):
                return ctypes.CDLL("libnotatimport.so.1")
            if sys.platform == "win32":
                ctypes.CDLL("libwindowsonly.so")
            """,
        "pkg/unimported.py": "import ctypes\nctypes.CDLL('libnever.so.1')\n"})
    assert loads == []


def test_a_computed_name_is_reported_as_undetermined(tmp_path):
    loads = scan(tmp_path, {"pkg/__init__.py": """\
        import ctypes, os
        lib = ctypes.CDLL(os.environ.get("MYLIB_PATH", "x"))
        """})
    assert kinds(loads) == [("computed", None)]
    facts = get_target(AL2, HOST_ARCH).facts
    (f,) = libscan_verdict.judge("pkg", loads, facts, set())
    assert (f.code, f.severity) == ("unresolved-library-load", "warning")
    assert "cannot tell which library" in f.message


def _magic_bundle(site: Path, *, bundled: bool = False) -> None:
    files = {"magicish/__init__.py": "import ctypes\nlib = ctypes.CDLL('libmagic.so.1')\n"}
    if bundled:
        files["lib/libmagic.so.1"] = b"\x7fELF not really, but named so"
    make_dist(site, "magicish", files=files)


def _static(site: Path, runtime: str):
    report = StaticChecker(_bundle.load(site, [])).check(get_target(runtime, HOST_ARCH))
    return [f for f in report.findings if f.code in ("missing-system-library",
                                                     "unresolved-library-load")]


def test_judged_like_dt_needed_against_the_runtimes_library_set(tmp_path):
    _magic_bundle(tmp_path)
    (f,) = _static(tmp_path, AL2)
    assert f.severity == "error" and f.distribution == "magicish"
    assert "libmagic.so.1" in f.message and "/var/task/magicish/__init__.py:2" in f.message
    assert _static(tmp_path, AL2023) == []   # AL2023 records libmagic.so.1


def test_a_bundled_copy_satisfies_the_load(tmp_path):
    _magic_bundle(tmp_path, bundled=True)
    assert _static(tmp_path, AL2) == []


def _run_check(capsys, path, runtime, *args):
    code = cli.main(["check", str(path), "--runtime", runtime, "--arch", HOST_ARCH,
                     "--format", "json", *args])
    (t,) = json.loads(capsys.readouterr().out)["targets"]
    return code, t


def test_check_of_a_ctypes_load_is_incompatible_statically(capsys, tmp_path):
    _magic_bundle(tmp_path)
    code, t = _run_check(capsys, tmp_path, AL2, "--backend", "static")
    assert code == 1 and t["verdict"] == "incompatible"
    assert [f["code"] for f in t["findings"] if f["severity"] == "error"] == [
        "missing-system-library"]


@pytest.mark.skipif(ctypes.util.find_library("magic") is None, reason="host has no libmagic")
@pytest.mark.skipif(not sandbox.bwrap_works(), reason="needs bwrap")
@pytest.mark.skipif(not has_python((3, 11), HOST), reason="needs a local CPython 3.11")
def test_host_proof_does_not_borrow_the_hosts_libmagic(capsys, tmp_path):
    _magic_bundle(tmp_path)
    code, t = _run_check(capsys, tmp_path, AL2, "--backend", "host")
    assert t["proof"] == "host"
    (imp,) = t["dynamic"]["imports"]
    assert not imp["ok"] and "libmagic.so.1" in imp["error"]
    assert code == 1 and t["disagreements"] == []


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("requirement,library", [("cairocffi==1.7.1", "libcairo.so.2"),
                                                 ("python-magic==0.4.27", "libmagic")])
def test_real_packages_that_load_a_missing_library(capsys, tmp_path, requirement, library):
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(requirement + "\n")
    code, t = _run_check(capsys, reqs, AL2, "--backend", "static", "--isolated",
                         "-i", "https://pypi.org/simple")
    assert code == 1 and t["verdict"] == "incompatible"
    (f,) = [f for f in t["findings"] if f["code"] == "missing-system-library"]
    assert library in f["message"] and f["severity"] == "error"


def test_an_auditwheel_copy_under_a_hashed_name_satisfies_the_load(tmp_path):
    make_dist(tmp_path, "geosish", files={
        "geosish/__init__.py": "import ctypes\n_lib = ctypes.CDLL('libgeos_c.so.1')\n",
        "geosish.libs/libgeos_c-a68605fd.so.1.16.0": b"not really ELF"})
    assert _static(tmp_path, AL2) == []


def test_a_versioned_name_needs_that_version_in_the_runtime(tmp_path):
    # AL2 records libssl.so.10 (OpenSSL 1.0.2); a load of libssl.so.3 finds nothing there
    make_dist(tmp_path, "sslish", files={
        "sslish/__init__.py": "import ctypes\n_lib = ctypes.CDLL('libssl.so.3')\n"})
    (f,) = _static(tmp_path, AL2)
    assert "libssl.so.3" in f.message and "does not have it" in f.message


def test_a_load_only_under_a_condition_at_import_is_a_warning(tmp_path):
    # numba style: a function that loads an optional library, called at import only when an
    # environment variable is set; pyvips style: a fallback in an except handler
    make_dist(tmp_path, "condish", files={"condish/__init__.py": textwrap.dedent("""\
        import ctypes, os
        def _launch():
            return ctypes.CDLL("libtbb.so.12")
        if os.environ.get("CONDISH_THREADS"):
            _launch()
        try:
            import _condish_binary
        except ImportError:
            lib = ctypes.CDLL("libvips.so.42")
        """)})
    found = _static(tmp_path, AL2)
    assert sorted((f.severity, "libtbb" in f.message, "libvips" in f.message)
                  for f in found) == [("warning", False, True), ("warning", True, False)]
    assert all("only under a condition" in f.message for f in found)


def test_a_platform_test_for_linux_is_not_a_condition(tmp_path):
    make_dist(tmp_path, "platish", files={"platish/__init__.py": textwrap.dedent("""\
        import ctypes, sys
        if sys.platform == "darwin":
            lib = ctypes.CDLL("libmagic.1.dylib")
        elif sys.platform.startswith("linux"):
            lib = ctypes.CDLL("libmagic.so.1")
        """)})
    (f,) = _static(tmp_path, AL2)
    assert f.severity == "error" and "libmagic.so.1" in f.message


def test_the_same_files_are_scanned_once_per_process(tmp_path, monkeypatch):
    # each target's bundle hard-links the same unpacked files: read them once
    code = 'import ctypes\nlib = ctypes.CDLL("libmagic.so.1")\n'
    first = tmp_path / "a" / "pkg" / "__init__.py"
    first.parent.mkdir(parents=True)
    first.write_text(code)
    linked = tmp_path / "b" / "pkg" / "__init__.py"
    linked.parent.mkdir(parents=True)
    import os
    os.link(first, linked)
    site = "/var/task"
    before = libscan_memo.scan_distribution(site, ["pkg"], {f"{site}/pkg/__init__.py": str(first)})
    assert kinds(before) == [("literal", "libmagic.so.1")]
    opened: list = []
    real_open = open
    monkeypatch.setattr("builtins.open",
                        lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    again = libscan_memo.scan_distribution(site, ["pkg"], {f"{site}/pkg/__init__.py": str(linked)})
    assert again == before and not opened
    # another file (a copy: another inode) or the same one rewritten is read again
    copy = tmp_path / "c" / "pkg" / "__init__.py"
    copy.parent.mkdir(parents=True)
    copy.write_text(code.replace("libmagic.so.1", "libgdal.so.30"))
    other = libscan_memo.scan_distribution(site, ["pkg"], {f"{site}/pkg/__init__.py": str(copy)})
    assert kinds(other) == [("literal", "libgdal.so.30")] and opened
    opened.clear()
    first.write_text(code.replace("libmagic.so.1", "libmagic.so.2") + "# rewritten\n")
    changed = libscan_memo.scan_distribution(site, ["pkg"], {f"{site}/pkg/__init__.py": str(first)})
    assert kinds(changed) == [("literal", "libmagic.so.2")] and opened
