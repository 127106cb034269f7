"""install: wheels go flat into the bundle, the way Lambda imports them.

Wheels are built here with zipfile, so every case (scheme directories, pyc, modes, hostile
paths, conflicts) is explicit.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import os
import stat
import time
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple

import pytest

from lambda_compat.build import install as install_mod
from lambda_compat.errors import BadInput
from lambda_compat.build.install import INSTALLER, install_all, install_wheel, plan_wheel


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(directory: Path, name: str, version: str,
                files: Iterable[Tuple[str, bytes]], modes: Optional[Dict[str, int]] = None,
                tag: str = "py3-none-any") -> Path:
    """A wheel with dist-info METADATA/WHEEL/RECORD; ``files`` in the given order."""
    modes = modes or {}
    files = list(files)
    dist_info = f"{name}-{version}.dist-info"
    meta = [
        (f"{dist_info}/METADATA",
         f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()),
        (f"{dist_info}/WHEEL",
         f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n".encode()),
    ]
    entries = files + meta
    record = "".join(f"{p},{record_hash(d)},{len(d)}\n" for p, d in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode()))
    path = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in entries:
            info = zipfile.ZipInfo(rel, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | modes.get(rel, 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def tree(root: Path) -> Dict[str, Tuple[bytes, int]]:
    """relative path -> (bytes, permission bits) for every file under root."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[p.relative_to(root).as_posix()] = (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
    return out


def read_record(root: Path, dist_info: str):
    with open(root / dist_info / "RECORD", newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


SO_BYTES = b"\x7fELF\x02\x01\x01\x00not really a shared object\x00\xff"
SCRIPT = b"#!python\nimport demo\ndemo.main()\n"
DEMO_FILES = [
    ("demo/__init__.py", b"def main():\n    return 42\n"),
    ("demo/core.py", b"VALUE = 'core'\n"),
    ("demo/run.sh", b"#!/bin/sh\necho hi\n"),
    ("demo/__pycache__/m.cpython-311.pyc", b"\xa7\r\r\n" + b"\x00" * 12),
    ("demo/legacy.pyc", b"\x55\x0d\x0d\x0a" + b"\x00" * 12),
    ("demo-1.0.data/purelib/x.py", b"X = 1\n"),
    ("demo-1.0.data/platlib/y.so", SO_BYTES),
    ("demo-1.0.data/scripts/tool", SCRIPT),
    ("demo-1.0.data/headers/h.h", b"#define DEMO 1\n"),
    ("demo-1.0.data/data/share/demo/readme.txt", b"docs\n"),
    ("demo-1.0.dist-info/top_level.txt", b"demo\nx\ny\n"),
]
DEMO_MODES = {"demo/run.sh": 0o755, "demo-1.0.data/scripts/tool": 0o755}
DEMO_INSTALLED = {
    "demo/__init__.py", "demo/core.py", "demo/run.sh", "x.py", "y.so",
    "demo-1.0.dist-info/METADATA", "demo-1.0.dist-info/WHEEL",
    "demo-1.0.dist-info/top_level.txt", "demo-1.0.dist-info/INSTALLER",
    "demo-1.0.dist-info/RECORD",
}
DEMO_SKIPPED = {
    "demo/__pycache__/m.cpython-311.pyc", "demo/legacy.pyc", "demo-1.0.data/scripts/tool",
    "demo-1.0.data/headers/h.h", "demo-1.0.data/data/share/demo/readme.txt",
}


@pytest.fixture
def demo_wheel(tmp_path) -> Path:
    d = tmp_path / "wheels"
    d.mkdir()
    return build_wheel(d, "demo", "1.0", DEMO_FILES, DEMO_MODES)


# --------------------------------------------------------------------------- one wheel

def test_plan_maps_scheme_dirs_and_skips_the_rest(demo_wheel):
    dist_info, plan, skipped = plan_wheel(demo_wheel)
    assert dist_info == "demo-1.0.dist-info"
    mapping = {info.filename: rel for info, rel in plan}
    assert mapping["demo-1.0.data/purelib/x.py"] == "x.py"
    assert mapping["demo-1.0.data/platlib/y.so"] == "y.so"
    assert "demo-1.0.dist-info/RECORD" not in mapping
    assert set(skipped) == DEMO_SKIPPED


def test_install_wheel_layout(demo_wheel, tmp_path):
    root = tmp_path / "bundle"
    result = install_wheel(demo_wheel, root)
    files = tree(root)
    assert set(files) == DEMO_INSTALLED
    assert files["x.py"][0] == b"X = 1\n"
    assert files["y.so"][0] == SO_BYTES
    assert files["demo/__init__.py"][0] == b"def main():\n    return 42\n"
    # Nothing of scripts/headers/data/bytecode reaches the bundle.
    assert not (root / "demo-1.0.data").exists()
    assert not (root / "bin").exists()
    assert not any(p.suffix == ".pyc" or p.name == "__pycache__" for p in root.rglob("*"))
    assert not any(data == SCRIPT for data, _ in files.values())
    # ...and each is accounted for.
    assert result.wheel == demo_wheel.name
    assert set(result.skipped) == DEMO_SKIPPED
    assert set(result.files) == DEMO_INSTALLED - {"demo-1.0.dist-info/RECORD"}
    assert files["demo-1.0.dist-info/INSTALLER"][0] == b"lambda-compat\n" == INSTALLER


def test_install_wheel_keeps_the_exec_bit(demo_wheel, tmp_path):
    root = tmp_path / "bundle"
    install_wheel(demo_wheel, root)
    assert os.access(root / "demo/run.sh", os.X_OK)
    assert stat.S_IMODE((root / "demo/run.sh").stat().st_mode) & 0o111 == 0o111
    for rel in ("demo/core.py", "x.py", "y.so", "demo-1.0.dist-info/METADATA"):
        assert stat.S_IMODE((root / rel).stat().st_mode) & 0o111 == 0, rel


def test_install_wheel_rewrites_record(demo_wheel, tmp_path):
    root = tmp_path / "bundle"
    install_wheel(demo_wheel, root)
    rows = read_record(root, "demo-1.0.dist-info")
    assert all(len(r) == 3 for r in rows)
    by_path = {r[0]: (r[1], r[2]) for r in rows}
    assert len(by_path) == len(rows), "duplicate RECORD rows"
    # Exactly the installed files, under their installed paths.
    assert set(by_path) == set(tree(root)) == DEMO_INSTALLED
    assert by_path["demo-1.0.dist-info/RECORD"] == ("", "")
    for rel, (digest, size) in by_path.items():
        if rel.endswith("/RECORD"):
            continue
        data = (root / rel).read_bytes()
        assert digest == record_hash(data), rel
        assert size == str(len(data)), rel
    assert not any(".data/" in r or r.endswith(".pyc") for r in by_path)


# --------------------------------------------------------------------------- hostile wheels

@pytest.mark.parametrize("evil", ["../evil.py", "/abs.py", "pkg/../../evil.py",
                                  "../../../evil.py", "..\\evil.py",
                                  "bad-1.0.data/purelib/../../evil.py"])
def test_entry_outside_bundle_is_rejected(tmp_path, evil):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    sandbox = tmp_path / "sandbox"
    root = sandbox / "deep" / "bundle"
    root.mkdir(parents=True)
    whl = build_wheel(wheels, "bad", "1.0", [(evil, b"print('pwned')\n")])
    before_tmp = sorted(p.name for p in tmp_path.iterdir())
    abs_existed = Path("/abs.py").exists()
    with pytest.raises(BadInput) as info:
        install_wheel(whl, root)
    assert "outside the bundle" in str(info.value)
    assert "evil.py" in str(info.value) or "abs.py" in str(info.value)
    # Nothing written outside the bundle: no new files anywhere under tmp_path but root.
    outside = [p for p in tmp_path.rglob("*")
               if p.is_file() and root not in p.parents and wheels not in p.parents]
    assert outside == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before_tmp
    assert Path("/abs.py").exists() == abs_existed
    assert not any(p.name == "evil.py" for p in sandbox.rglob("*"))


def test_evil_entry_after_good_entries_still_writes_nothing_outside(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    root = tmp_path / "bundle"
    whl = build_wheel(wheels, "bad", "1.0", [("ok/__init__.py", b""), ("../evil.py", b"x")])
    with pytest.raises(BadInput):
        install_wheel(whl, root)
    assert not (tmp_path / "evil.py").exists()


def test_wheel_without_dist_info_is_bad_input(tmp_path):
    whl = tmp_path / "x-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("x.py", b"")
    with pytest.raises(BadInput):
        install_wheel(whl, tmp_path / "bundle")


# --------------------------------------------------------------------------- several wheels

def test_conflicting_files_are_an_error(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    a = build_wheel(wheels, "alpha", "1.0", [("shared/mod.py", b"A = 1\n")])
    b = build_wheel(wheels, "beta", "2.0", [("shared/mod.py", b"B = 2\n")])
    root = tmp_path / "bundle"
    install_wheel(a, root)
    with pytest.raises(BadInput) as info:
        install_wheel(b, root)
    assert "shared/mod.py" in str(info.value)
    assert b.name in str(info.value)
    # The first distribution's file was not overwritten.
    assert (root / "shared/mod.py").read_bytes() == b"A = 1\n"


def test_conflict_detected_by_install_all(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    a = build_wheel(wheels, "alpha", "1.0", [("shared/mod.py", b"A = 1\n")])
    b = build_wheel(wheels, "beta", "2.0", [("shared/mod.py", b"B = 2\n")])
    with pytest.raises(BadInput):
        install_all([a, b], tmp_path / "bundle", jobs=2)


NS_INIT = b"__import__('pkg_resources').declare_namespace(__name__)\n"


def test_identical_namespace_init_is_fine(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    a = build_wheel(wheels, "ns-a", "1.0", [("nspkg/__init__.py", NS_INIT),
                                            ("nspkg/a.py", b"A = 1\n")])
    b = build_wheel(wheels, "ns-b", "1.0", [("nspkg/__init__.py", NS_INIT),
                                            ("nspkg/b.py", b"B = 1\n")])
    root = tmp_path / "bundle"
    install_wheel(a, root)
    install_wheel(b, root)
    assert (root / "nspkg/__init__.py").read_bytes() == NS_INIT
    assert (root / "nspkg/a.py").exists() and (root / "nspkg/b.py").exists()
    for dist_info in ("ns-a-1.0.dist-info", "ns-b-1.0.dist-info"):
        rows = {r[0]: r for r in read_record(root, dist_info)}
        assert rows["nspkg/__init__.py"][1:] == [record_hash(NS_INIT), str(len(NS_INIT))]


def _many_wheels(directory: Path):
    wheels = []
    for i in range(8):
        files = [
            ("nspkg/__init__.py", NS_INIT),
            (f"nspkg/mod{i}.py", f"N = {i}\n".encode() * (i + 1)),
            (f"pkg{i}/__init__.py", f"I = {i}\n".encode()),
            (f"pkg{i}/tool.sh", b"#!/bin/sh\n"),
            (f"pkg{i}/__pycache__/__init__.cpython-312.pyc", b"\x00" * 16),
            (f"p{i}-1.{i}.data/platlib/_ext{i}.so", SO_BYTES + bytes([i])),
            (f"p{i}-1.{i}.data/scripts/cli{i}", SCRIPT),
        ]
        wheels.append(build_wheel(directory, f"p{i}", f"1.{i}", files,
                                  {f"pkg{i}/tool.sh": 0o755}))
    return wheels


def test_install_all_parallel_equals_sequential(tmp_path):
    wdir = tmp_path / "wheels"
    wdir.mkdir()
    wheels = _many_wheels(wdir)
    seq_root = tmp_path / "seq"
    seq_root.mkdir()
    seq = {w.name: install_wheel(w, seq_root) for w in wheels}
    par_root = tmp_path / "par"
    par = install_all(wheels, par_root, jobs=8)
    assert set(par) == {w.name for w in wheels}
    assert tree(par_root) == tree(seq_root)
    for name in par:
        assert set(par[name].files) == set(seq[name].files)
        assert set(par[name].skipped) == set(seq[name].skipped)
    t = tree(par_root)
    assert "nspkg/__init__.py" in t and "_ext3.so" in t and "pkg5/tool.sh" in t
    assert t["pkg5/tool.sh"][1] & 0o111
    assert not any(".pyc" in p or "cli" in p for p in t)


def test_install_all_parallel_namespace_race(tmp_path, monkeypatch):
    """Two wheels writing the same namespace __init__.py at the same moment.

    A slow disk is simulated by pausing right after a bundle file is created: another thread
    must never see that file half-written and call it a conflict.
    """
    real_open = os.open
    creating = os.O_CREAT | os.O_EXCL

    def slow_open(path, flags, *args, **kwargs):
        fd = real_open(path, flags, *args, **kwargs)
        if flags & creating == creating and str(path).endswith("__init__.py"):
            time.sleep(0.15)
        return fd

    monkeypatch.setattr(install_mod.os, "open", slow_open)
    wdir = tmp_path / "wheels"
    wdir.mkdir()
    wheels = [build_wheel(wdir, f"ns{i}", "1.0", [("nspkg/__init__.py", NS_INIT),
                                                   (f"nspkg/m{i}.py", b"")])
              for i in range(4)]
    root = tmp_path / "bundle"
    install_all(wheels, root, jobs=4)
    assert (root / "nspkg/__init__.py").read_bytes() == NS_INIT
    assert {f"nspkg/m{i}.py" for i in range(4)} <= set(tree(root))


# --------------------------------------------------------------------------- unpacked cache

def test_install_from_cache_equals_install_from_wheel(tmp_path):
    wdir = tmp_path / "wheels"
    wdir.mkdir()
    wheels = _many_wheels(wdir) + [build_wheel(wdir, "demo", "1.0", DEMO_FILES, DEMO_MODES)]
    plain = tmp_path / "plain"
    plain_res = install_all(wheels, plain, jobs=4)
    cache = tmp_path / "unpacked"
    for run in ("cold", "warm"):
        root = tmp_path / run
        res = install_all(wheels, root, jobs=4, unpacked=cache)
        assert tree(root) == tree(plain), run
        for name, inst in res.items():
            assert set(inst.files) == set(plain_res[name].files)
            assert set(inst.skipped) == set(plain_res[name].skipped)
    # Warm files are hard links into the cache, not copies.
    sha = install_mod.wheel_sha256(wheels[-1])
    cached = cache / sha[:2] / sha / "tree" / "demo" / "core.py"
    assert os.stat(tmp_path / "warm" / "demo" / "core.py").st_ino == os.stat(cached).st_ino
    # INSTALLER and RECORD are the bundle's own files, never links into the cache.
    assert os.stat(tmp_path / "warm" / "demo-1.0.dist-info" / "RECORD").st_nlink == 1


def test_changed_cache_file_is_not_used(tmp_path, demo_wheel):
    cache = tmp_path / "unpacked"
    install_all([demo_wheel], tmp_path / "first", unpacked=cache)
    # A bundle that shares the inode was edited in place (new content, new mtime).
    edited = tmp_path / "first" / "demo" / "core.py"
    time.sleep(0.01)
    edited.write_bytes(b"VALUE = 'tampered'\n")
    install_all([demo_wheel], tmp_path / "second", unpacked=cache)
    assert (tmp_path / "second" / "demo" / "core.py").read_bytes() == b"VALUE = 'core'\n"
    # The entry was dropped and is unpacked afresh on the next install.
    install_all([demo_wheel], tmp_path / "third", unpacked=cache)
    assert (tmp_path / "third" / "demo" / "core.py").read_bytes() == b"VALUE = 'core'\n"
    assert tree(tmp_path / "third") == tree(tmp_path / "second")


def test_conflict_detected_with_cache(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    a = build_wheel(wheels, "alpha", "1.0", [("shared/mod.py", b"A = 1\n")])
    b = build_wheel(wheels, "beta", "2.0", [("shared/mod.py", b"B = 2\n")])
    cache = tmp_path / "unpacked"
    install_all([a], tmp_path / "warmup", unpacked=cache)
    with pytest.raises(BadInput) as info:
        install_all([a, b], tmp_path / "bundle", jobs=2, unpacked=cache)
    assert "shared/mod.py" in str(info.value)


def test_cache_entry_for_a_different_wheel_name_is_not_used(tmp_path, demo_wheel):
    """A manifest is tied to the wheel it was unpacked from."""
    cache = tmp_path / "unpacked"
    manifest, _ = install_mod.unpack_wheel(demo_wheel, cache)
    assert manifest["wheel"] == demo_wheel.name
    sha = install_mod.wheel_sha256(demo_wheel)
    assert install_mod._read_manifest(cache / sha[:2] / sha, "other-1.0-py3-none-any.whl") is None


def test_concurrent_unpacks_of_one_wheel_share_one_entry(tmp_path, demo_wheel):
    """Several threads (targets of one check) unpacking the same wheel at once: every one
    gets a complete tree, and none removes the entry another is linking from."""
    from concurrent.futures import ThreadPoolExecutor

    cache = tmp_path / "unpacked"
    with ThreadPoolExecutor(max_workers=6) as pool:
        roots = [tmp_path / f"b{i}" for i in range(6)]
        list(pool.map(lambda r: install_all([demo_wheel], r, unpacked=cache), roots))
    first = tree(roots[0])
    assert all(tree(r) == first for r in roots[1:])
    sha = install_mod.wheel_sha256(demo_wheel)
    assert [p.name for p in (cache / sha[:2]).iterdir()] == [sha]  # no temporary left


def test_unpacked_files_maps_archive_names_to_unchanged_unpacked_files(tmp_path, demo_wheel):
    cache = tmp_path / "unpacked"
    files = install_mod.unpacked_files(demo_wheel, cache)
    # every installed file, under its archive name too (.data/platlib|purelib/ -> the root)
    assert files["demo/core.py"].read_bytes() == b"VALUE = 'core'\n"
    with zipfile.ZipFile(demo_wheel) as zf:
        for name in zf.namelist():
            if name.startswith("demo-1.0.data/p") and name in files:
                assert files[name].read_bytes() == zf.read(name)
    assert any(n.startswith("demo-1.0.data/platlib/") for n in files)
    # a file changed after unpacking (a bundle sharing its inode edited in place) is left out
    time.sleep(0.01)
    files["demo/core.py"].write_bytes(b"VALUE = 'tampered'\n")
    assert "demo/core.py" not in install_mod.unpacked_files(demo_wheel, cache)
    # a wheel that cannot be unpacked maps nothing (the verifier extracts for itself)
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    broken.write_bytes(b"not a zip")
    assert install_mod.unpacked_files(broken, cache) == {}


def test_verifier_reads_native_files_where_they_were_unpacked(tmp_path):
    """The verifier reads an unpacked native file instead of the archive's copy: the
    archive's bytes are not an ELF file, the mapped file is (this Python's own extension)."""
    import importlib
    from lambda_compat.registry.runtimes import get_target
    from lambda_compat.verify.wheels import read_wheel, verify_wheel
    shared = [getattr(importlib.import_module(m), "__file__", None)
              for m in ("_json", "_struct", "_ctypes", "math")]
    real = Path(next(f for f in shared if f and f.endswith(".so")))
    name = "demo/_speed.cpython-311-x86_64-linux-gnu.so"
    d = tmp_path / "wheels"
    d.mkdir()
    wheel = build_wheel(d, "demo", "1.0", [(name, b"not an ELF file")],
                        tag="cp311-cp311-manylinux2014_x86_64")
    info = read_wheel(wheel)
    assert info.native_files == (name,)
    target = get_target("python3.11", "x86_64")
    from_zip = {f.code for f in verify_wheel(info, target)}
    from_disk = {f.code for f in verify_wheel(info, target, on_disk={name: real})}
    assert "not-elf" in from_zip
    assert "not-elf" not in from_disk


def test_a_file_is_hashed_once_per_inode_and_again_when_it_changes(tmp_path, monkeypatch):
    """resolve/sdist_build.file_sha256 remembers a file's hash by device, inode, size and
    mtime: a hard link (pip's saved download and the cache's entry) is not hashed again, a
    changed file is."""
    import hashlib
    import os
    import types

    from lambda_compat.resolve import sdist_build
    hashed = []

    def sha256():
        hashed.append(1)
        return hashlib.sha256()

    monkeypatch.setattr(sdist_build, "hashlib", types.SimpleNamespace(sha256=sha256))
    a = tmp_path / "a.whl"
    a.write_bytes(b"one" * 1000)
    os.link(a, tmp_path / "b.whl")
    one = hashlib.sha256(b"one" * 1000).hexdigest()
    assert sdist_build.file_sha256(a) == one and len(hashed) == 1
    assert sdist_build.file_sha256(tmp_path / "b.whl") == one and len(hashed) == 1
    a.write_bytes(b"two" * 1001)  # same inode, new content and size
    assert sdist_build.file_sha256(tmp_path / "b.whl") == \
        hashlib.sha256(b"two" * 1001).hexdigest()
    assert len(hashed) == 2


# ----------------------------------------------------- large wheels: inflated by several threads

def _large_wheel(directory: Path, duplicate: Optional[bytes] = None) -> Path:
    """Over the split size: 48 incompressible files, exec bits on some, one path named twice
    (the second time with ``duplicate``'s content, when given) and once through './'."""
    rnd = __import__("random").Random(15)
    files = [(f"big/mod{i:02d}.py", rnd.randbytes(120_000)) for i in range(48)]
    files.append(("big/./mod07.py", files[7][1]))
    if duplicate is not None:
        files.append(("big/mod03.py", duplicate))
    return build_wheel(directory, "big", "1.0", files,
                       modes={f"big/mod{i:02d}.py": 0o755 for i in range(0, 48, 5)})


def test_a_large_wheel_unpacks_as_in_one_thread(tmp_path, monkeypatch):
    wheel = _large_wheel(tmp_path)
    _dist, plan, _skipped = plan_wheel(wheel)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    parts = install_mod._parts(plan)
    assert len(parts) == 2                                   # the split is taken
    sizes = [sum(i.compress_size for i, _r in p) for p in parts]
    assert max(sizes) < 0.6 * sum(sizes)                     # and balanced
    part_of = {rel: n for n, p in enumerate(parts) for _i, rel in p}
    assert part_of["big/./mod07.py"] == part_of["big/mod07.py"]   # one path, one part
    split_manifest, split_tree = install_mod.unpack_wheel(wheel, tmp_path / "split")
    monkeypatch.setattr(install_mod, "_SPLIT_BYTES", 1 << 40)
    assert len(install_mod._parts(plan)) == 1
    one_manifest, one_tree = install_mod.unpack_wheel(wheel, tmp_path / "one")
    strip = lambda m: [f[:3] for f in m["files"]]            # noqa: E731 (mtimes differ)
    assert strip(split_manifest) == strip(one_manifest)
    assert [f[0] for f in one_manifest["files"]][:3] == ["big/mod00.py", "big/mod01.py",
                                                          "big/mod02.py"]
    assert tree(split_tree) == tree(one_tree)


def test_a_wheel_of_one_large_library_and_many_files_splits_its_files_too(tmp_path, monkeypatch):
    """numpy's shape: one library holding more compressed bytes than all the rest. Each file
    costs its making too, so the library's part also takes a share of the small files."""
    rnd = __import__("random").Random(7)
    files = [("lib/huge.so", rnd.randbytes(3_000_000))]
    files += [(f"pkg/m{i:03d}.py", rnd.randbytes(2_000)) for i in range(300)]
    wheel = build_wheel(tmp_path, "shape", "1.0", files)
    _dist, plan, _skipped = plan_wheel(wheel)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    parts = install_mod._parts(plan)
    assert len(parts) == 2
    counts = sorted(len(p) for p in parts)
    assert counts[0] >= 0.25 * sum(counts)                   # not 1 file against 300
    with_lib = next(p for p in parts if any(r == "lib/huge.so" for _i, r in p))
    assert len(with_lib) > 1


def test_a_large_wheel_does_not_wait_for_a_busy_inflate_pool(tmp_path, monkeypatch):
    """Parts still queued behind another wheel's are inflated by the unpacking thread itself:
    the unpack ends while every inflate thread is busy, with the one-thread result."""
    import threading
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    wheel = _large_wheel(tmp_path)
    pool = install_mod._inflate_pool()
    release = threading.Event()
    blockers = [pool.submit(release.wait, 30) for _ in range(pool._max_workers)]
    done: dict = {}
    worker = threading.Thread(target=lambda: done.update(
        result=install_mod.unpack_wheel(wheel, tmp_path / "busy")))
    try:
        worker.start()
        worker.join(20)
        assert not worker.is_alive() and "result" in done
    finally:
        release.set()
        for b in blockers:
            b.result(5)
        worker.join(5)
    manifest, busy_tree = done["result"]
    monkeypatch.setattr(install_mod, "_SPLIT_BYTES", 1 << 40)
    one_manifest, one_tree = install_mod.unpack_wheel(wheel, tmp_path / "one")
    assert [f[:3] for f in manifest["files"]] == [f[:3] for f in one_manifest["files"]]
    assert tree(busy_tree) == tree(one_tree)


def test_a_large_wheel_naming_a_path_twice_with_two_contents_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    wheel = _large_wheel(tmp_path, duplicate=b"other content")
    with pytest.raises(BadInput, match="both install big/mod03.py"):
        install_mod.unpack_wheel(wheel, tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("manifest.json"))
