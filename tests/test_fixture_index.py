"""The offline fixture index (fixtures/index/) is valid, reproducible and usable by pip.

The index itself is committed output of ``fixtures/index/make_index.py``; these tests make
sure it stays byte-identical to what the generator produces, that every distribution in it
is well-formed, and that pip can actually consume it offline (download from the PEP 503
pages, build the sdists with their in-tree backend).
"""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import html.parser
import io
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import sysconfig
import tarfile
import urllib.parse
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from packaging.tags import Tag, sys_tags
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename

INDEX = Path(__file__).resolve().parents[1] / "fixtures" / "index"
FILES = INDEX / "files"
MAKE_INDEX = INDEX / "make_index.py"
OUTPUTS = ("files", "simple", "simple-no-rp", "hashes.json")

WHEELS = sorted(p.name for p in FILES.glob("*.whl"))
SDISTS = sorted(p.name for p in FILES.glob("*.tar.gz"))
NATIVE_WHEELS = [w for w in WHEELS if not w.endswith("-none-any.whl")]
ELF_MACHINE = {62: "x86_64", 183: "aarch64"}
NO_COMPILER = "/bin/false" if os.path.exists("/bin/false") else "false"


# --- helpers -----------------------------------------------------------------------------

def tree(root: Path) -> Dict[str, bytes]:
    """Relative path -> bytes for every generated output under ``root``."""
    out = {}
    for name in OUTPUTS:
        path = root / name
        if path.is_file():
            out[name] = path.read_bytes()
        for p in sorted(path.rglob("*")) if path.is_dir() else ():
            if p.is_file():
                out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def read_wheel(name: str) -> Dict[str, bytes]:
    with zipfile.ZipFile(FILES / name) as zf:
        assert zf.testzip() is None
        return {info.filename: zf.read(info) for info in zf.infolist()}


def dist_info_dir(members: Dict[str, bytes]) -> str:
    dirs = {m.split("/")[0] for m in members if m.split("/")[0].endswith(".dist-info")}
    assert len(dirs) == 1, dirs
    return dirs.pop()


def parse_metadata(data: bytes):
    return email.parser.BytesParser().parsebytes(data)


def pip(*args: str, env: Optional[Dict[str, str]] = None, timeout: float = 180):
    """Run this interpreter's pip hermetically: no config file, no PIP_* variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    full_env["PIP_CONFIG_FILE"] = os.devnull
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", "--no-input"],
        env=full_env, capture_output=True, text=True, timeout=timeout)


def host_tag() -> str:
    """The tag the in-tree backend gives an extension wheel built by this interpreter."""
    interp = "cp%d%d" % sys.version_info[:2]
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return f"{interp}-{interp}{getattr(sys, 'abiflags', '')}-{plat}"


def import_in_subprocess(path: Path, module: str, code: str) -> str:
    """Import ``module`` from ``path`` in a fresh interpreter and print ``code``'s value."""
    script = (f"import sys; sys.path.insert(0, {str(path)!r}); import {module} as m; "
              f"print(repr(({code})))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class _Anchors(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: List[Dict[str, Optional[str]]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.anchors.append(dict(attrs))


def anchors(page: Path) -> List[Dict[str, Optional[str]]]:
    parser = _Anchors()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.anchors


def project_pages(index: str) -> Dict[str, Path]:
    root = INDEX / index
    return {p.parent.name: p for p in sorted(root.glob("*/index.html"))}


# --- (a) reproducibility -----------------------------------------------------------------

@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index")
    proc = subprocess.run([sys.executable, str(MAKE_INDEX), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def test_regeneration_is_byte_identical(regenerated):
    committed, fresh = tree(INDEX), tree(regenerated)
    assert sorted(committed) == sorted(fresh), "stale or missing files: regenerate the index"
    changed = [name for name in committed if committed[name] != fresh[name]]
    assert not changed, f"differs from make_index.py output: {changed}"


def test_hashes_json_matches_files():
    hashes = json.loads((INDEX / "hashes.json").read_text())
    assert sorted(hashes) == sorted(WHEELS + SDISTS)
    for name, digest in hashes.items():
        assert hashlib.sha256((FILES / name).read_bytes()).hexdigest() == digest, name


def test_index_is_small():
    total = sum(len(data) for data in tree(INDEX).values())
    assert total < 1_000_000


# --- (b) wheels are well-formed ----------------------------------------------------------

@pytest.mark.parametrize("wheel", WHEELS)
def test_wheel_tags_record_and_metadata(wheel):
    name, version, build, file_tags = parse_wheel_filename(wheel)
    members = read_wheel(wheel)
    dist_info = dist_info_dir(members)
    assert dist_info == f"{wheel.split('-')[0]}-{version}.dist-info"

    wheel_file = parse_metadata(members[f"{dist_info}/WHEEL"])
    assert wheel_file["Wheel-Version"] == "1.0"
    tag_lines = wheel_file.get_all("Tag")
    assert len(tag_lines) == len(set(tag_lines))
    assert {Tag(*t.split("-")) for t in tag_lines} == set(file_tags)
    pure = all(t.platform == "any" for t in file_tags)
    assert wheel_file["Root-Is-Purelib"] == ("true" if pure else "false")

    metadata = parse_metadata(members[f"{dist_info}/METADATA"])
    assert metadata["Metadata-Version"] == "2.1"
    assert canonicalize_name(metadata["Name"]) == name
    assert metadata["Name"] == name  # fixture names are already canonical
    assert metadata["Version"] == str(version)

    record_name = f"{dist_info}/RECORD"
    rows = list(csv.reader(io.StringIO(members[record_name].decode("utf-8"))))
    assert {row[0] for row in rows} == set(members)
    for path, digest, size in rows:
        if path == record_name:
            assert digest == size == ""
            continue
        algo, _, b64 = digest.partition("=")
        assert algo == "sha256"
        expected = base64.urlsafe_b64encode(hashlib.sha256(members[path]).digest())
        assert b64 == expected.rstrip(b"=").decode(), path
        assert int(size) == len(members[path]), path


@pytest.mark.parametrize("wheel", NATIVE_WHEELS)
def test_native_wheel_has_elf_for_its_tags(wheel):
    _, _, _, file_tags = parse_wheel_filename(wheel)
    members = read_wheel(wheel)
    objects = [m for m in members if m.endswith(".so")]
    assert len(objects) == 1, objects
    data = members[objects[0]]
    assert data[:4] == b"\x7fELF"
    (e_machine,) = struct.unpack_from("<H", data, 18)
    for tag in file_tags:
        assert tag.platform.endswith("_" + ELF_MACHINE[e_machine]), (tag, e_machine)
        if tag.abi == "abi3":
            assert objects[0].endswith("/_speedups.abi3.so")
        else:
            suffix = f".cpython-{tag.interpreter[2:]}-{ELF_MACHINE[e_machine]}-linux-gnu.so"
            assert objects[0].endswith("/_speedups" + suffix)


def test_pure_wheels_have_no_objects():
    for wheel in set(WHEELS) - set(NATIVE_WHEELS):
        assert not [m for m in read_wheel(wheel) if m.endswith(".so")], wheel


def test_native_wheels_import_on_this_host(tmp_path):
    supported = set(sys_tags())
    usable = [w for w in NATIVE_WHEELS if parse_wheel_filename(w)[3] & supported]
    if not usable:
        pytest.skip("no fixture native wheel matches this interpreter/platform")
    for wheel in usable:
        target = tmp_path / wheel
        with zipfile.ZipFile(FILES / wheel) as zf:
            zf.extractall(target)
        module = wheel.split("-")[0]
        out = import_in_subprocess(target, module, "m.__version__, m.answer(), m.machine()")
        version = parse_wheel_filename(wheel)[1]
        assert out == repr((str(version), 42, platform.machine())), wheel


def test_marker_metadata():
    meta = parse_metadata(read_wheel("lc_markers-1.0-py3-none-any.whl")
                          ["lc_markers-1.0.dist-info/METADATA"])
    assert meta.get_all("Provides-Extra") == ["fancy"]
    assert meta.get_all("Requires-Dist") == [
        'lc-arm-only; platform_machine == "aarch64"',
        'lc-old-python; python_version < "3.11"',
        "lc-pure>=1.0",
        'lc-extra-dep; extra == "fancy"',
    ]
    old = parse_metadata(read_wheel("lc_old_python-1.0-py3-none-any.whl")
                         ["lc_old_python-1.0.dist-info/METADATA"])
    assert old.get_all("Requires-Dist") == ['lc-transitive; python_version < "3.10"']


@pytest.mark.parametrize("sdist", SDISTS)
def test_sdist_layout(sdist):
    name, version = parse_sdist_filename(sdist)
    base = sdist[: -len(".tar.gz")]
    with tarfile.open(FILES / sdist) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for member in members.values():
            assert member.name == base or member.name.startswith(base + "/"), member.name
            assert member.isfile() or member.isdir(), member.name
        pyproject = tar.extractfile(f"{base}/pyproject.toml").read().decode()
        backend = tar.extractfile(f"{base}/_backend/lcbackend.py").read()
        pkg_info = parse_metadata(tar.extractfile(f"{base}/PKG-INFO").read())
    assert "requires = []\n" in pyproject
    assert 'build-backend = "lcbackend"\n' in pyproject
    assert 'backend-path = ["_backend"]\n' in pyproject
    assert backend == (INDEX / "sources" / "lcbackend.py").read_bytes()
    assert pkg_info["Name"] == name and pkg_info["Version"] == str(version)


# --- (c) the two simple indexes ----------------------------------------------------------

@pytest.mark.parametrize("index", ["simple", "simple-no-rp"])
def test_simple_index_links_every_file_with_its_hash(index):
    pages = project_pages(index)
    root = anchors(INDEX / index / "index.html")
    assert [a["href"] for a in root] == [f"{p}/" for p in pages]
    linked = []
    for project, page in pages.items():
        for anchor in anchors(page):
            url, _, fragment = anchor["href"].partition("#")
            target = (page.parent / urllib.parse.unquote(url)).resolve()
            assert target.parent == FILES.resolve(), anchor["href"]
            algo, _, digest = fragment.partition("=")
            assert algo == "sha256"
            assert hashlib.sha256(target.read_bytes()).hexdigest() == digest
            if target.name.endswith(".whl"):
                assert str(parse_wheel_filename(target.name)[0]) == project
            else:
                assert str(parse_sdist_filename(target.name)[0]) == project
            linked.append(target.name)
    assert sorted(linked) == sorted(WHEELS + SDISTS)


def _declared_requires_python(filename: str) -> Optional[str]:
    if filename.endswith(".whl"):
        members = read_wheel(filename)
        return parse_metadata(members[f"{dist_info_dir(members)}/METADATA"])["Requires-Python"]
    base = filename[: -len(".tar.gz")]
    with tarfile.open(FILES / filename) as tar:
        return parse_metadata(tar.extractfile(f"{base}/PKG-INFO").read())["Requires-Python"]


def test_simple_has_requires_python_and_no_rp_has_none():
    raw = (INDEX / "simple" / "lc-rp-trap" / "index.html").read_text()
    assert 'data-requires-python="&gt;=3.13">lc_rp_trap-2.0-py3-none-any.whl<' in raw
    assert 'data-requires-python="&gt;=3.8">lc_rp_trap-1.0-py3-none-any.whl<' in raw

    with_rp, without_rp = project_pages("simple"), project_pages("simple-no-rp")
    assert list(with_rp) == list(without_rp)
    for project in with_rp:
        assert "data-requires-python" not in without_rp[project].read_text()
        full, bare = anchors(with_rp[project]), anchors(without_rp[project])
        assert [dict(a, **{"data-requires-python": None}) for a in full] == [
            dict(a, **{"data-requires-python": None}) for a in bare]
        for anchor in full:
            filename = anchor["href"].split("#")[0].rsplit("/", 1)[1]
            assert anchor.get("data-requires-python") == _declared_requires_python(filename)


# --- (d) pip resolves from it offline ----------------------------------------------------

def test_pip_downloads_from_file_index(tmp_path):
    proc = pip("download", "--isolated", "--no-deps", "--index-url",
               (INDEX / "simple").as_uri(), "-d", str(tmp_path), "lc-pure==1.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = tmp_path / "lc_pure-1.1-py3-none-any.whl"
    assert [p.name for p in tmp_path.iterdir()] == [got.name]
    assert got.read_bytes() == (FILES / got.name).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("index", ["simple", "simple-no-rp"])
def test_pip_honours_requires_python_for_target(tmp_path, index):
    # pip gets 1.0 either way: without data-requires-python it has to fetch 2.0's metadata
    # first and backtrack. A resolver that trusts the listing alone would pick 2.0.
    proc = pip("download", "--isolated", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
               "--python-version", "3.11", "--index-url", (INDEX / index).as_uri(),
               "-d", str(tmp_path), "lc-rp-trap")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["lc_rp_trap-1.0-py3-none-any.whl"]


@pytest.mark.slow
def test_pip_require_hashes(tmp_path):
    hashes = json.loads((INDEX / "hashes.json").read_text())
    wheels = [n for n in hashes if n.startswith("lc_hashes-")]
    assert len(wheels) == 2
    good = " ".join(f"--hash=sha256:{hashes[n]}" for n in wheels)
    args = ["download", "--isolated", "--no-deps", "--no-cache-dir", "--only-binary=:all:",
            "--python-version", "3.12", "--platform", "manylinux_2_17_aarch64",
            "--index-url", (INDEX / "simple").as_uri(), "--require-hashes", "-r"]
    (tmp_path / "good.txt").write_text(f"lc-hashes==1.0 {good}\n")
    proc = pip(*args, str(tmp_path / "good.txt"), "-d", str(tmp_path / "good"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p.name for p in (tmp_path / "good").iterdir()] == [
        "lc_hashes-1.0-cp312-cp312-manylinux_2_17_aarch64.whl"]
    (tmp_path / "bad.txt").write_text(f"lc-hashes==1.0 --hash=sha256:{'0' * 64}\n")
    proc = pip(*args, str(tmp_path / "bad.txt"), "-d", str(tmp_path / "bad"))
    assert proc.returncode != 0
    assert "DO NOT MATCH THE HASHES" in proc.stdout + proc.stderr


# --- (e) the sdists build offline with the in-tree backend -------------------------------

@pytest.fixture(scope="module")
def built_without_compiler(tmp_path_factory):
    """One ``pip wheel`` run over the three compiler-sensitive sdists with ``CC=false``.

    A single invocation keeps the suite fast; pip builds every sdist, keeps the wheels that
    built, and exits non-zero because lc-needs-compiler failed.
    """
    out = tmp_path_factory.mktemp("wheels")
    proc = pip("wheel", "--isolated", "--no-deps", "--no-index", "--no-cache-dir",
               *(str(FILES / s) for s in ("lc_sdist_pure-1.0.tar.gz",
                                          "lc_optional_ext-1.0.tar.gz",
                                          "lc_needs_compiler-1.0.tar.gz")),
               "-w", str(out), env={"CC": NO_COMPILER})
    return proc, out


def test_sdist_pure_builds_offline(built_without_compiler):
    proc, out = built_without_compiler
    assert (out / "lc_sdist_pure-1.0-py3-none-any.whl").is_file(), proc.stdout + proc.stderr


def test_optional_ext_without_compiler_is_mistagged(built_without_compiler, tmp_path):
    proc, out = built_without_compiler
    built = sorted(p.name for p in out.glob("lc_optional_ext-*.whl"))
    assert built == [f"lc_optional_ext-1.0-{host_tag()}.whl"], proc.stdout + proc.stderr
    assert f"linux_{platform.machine()}" in built[0] or sys.platform != "linux"
    with zipfile.ZipFile(out / built[0]) as zf:
        assert not [n for n in zf.namelist() if n.endswith(".so")]
        assert "Root-Is-Purelib: false" in zf.read(
            "lc_optional_ext-1.0.dist-info/WHEEL").decode()
        zf.extractall(tmp_path)
    out = import_in_subprocess(tmp_path, "lc_optional_ext", "m.HAVE_EXTENSION, m.answer()")
    assert out == "(False, 42)"


def test_needs_compiler_fails_without_compiler(built_without_compiler):
    proc, out = built_without_compiler
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "lc-needs-compiler 1.0 requires a C compiler" in output
    assert not list(out.glob("lc_needs_compiler-*"))


needs_cc = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc").split()[0]) is None,
                              reason="no C compiler")


@pytest.mark.slow
@needs_cc
def test_sdists_build_native_extensions_with_a_compiler(tmp_path):
    proc = pip("wheel", "--isolated", "--no-deps", "--no-index", "--no-cache-dir",
               str(FILES / "lc_optional_ext-1.0.tar.gz"),
               str(FILES / "lc_needs_compiler-1.0.tar.gz"), "-w", str(tmp_path / "wheels"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for project in ("lc_optional_ext", "lc_needs_compiler"):
        wheel = tmp_path / "wheels" / f"{project}-1.0-{host_tag()}.whl"
        with zipfile.ZipFile(wheel) as zf:
            assert f"{project}/_speedups{suffix}" in zf.namelist()
            zf.extractall(tmp_path / project)
        out = import_in_subprocess(tmp_path / project, project, "m.answer(), m.machine()")
        assert out == repr((42, platform.machine()))
