"""The reproducible zip writer: same tree -> same bytes, normalised metadata, valid archives."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path

import pytest

from lambda_compat import errors
from lambda_compat.package.reprozip import list_tree, timestamp, write_zip


def make_tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("x = 1\n" * 200)
    (root / "pkg" / "sub" / "data.bin").write_bytes(bytes(range(256)) * 3)
    (root / "pkg" / "tool.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "pkg" / "tool.sh", 0o700)
    (root / "app.py").write_text("def handler(e, c):\n    return 1\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "Ünïcode.txt").write_text("ü\n", encoding="utf-8")
    (root / "emptydir").mkdir()
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_entries_sorted_dirs_included_contents_round_trip(tmp_path):
    root = make_tree(tmp_path / "t")
    s = write_zip(root, tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names == sorted(names, key=lambda n: n.encode())
        assert names == ["app.py", "empty.txt", "emptydir/", "pkg/", "pkg/__init__.py",
                         "pkg/sub/", "pkg/sub/data.bin", "pkg/tool.sh", "Ünïcode.txt"]
        for name in names:
            if not name.endswith("/"):
                assert zf.read(name) == (root / name).read_bytes(), name
        # A file that shrinks is deflated, one that does not is stored.
        assert zf.getinfo("pkg/__init__.py").compress_type == zipfile.ZIP_DEFLATED
        assert zf.getinfo("empty.txt").compress_type == zipfile.ZIP_STORED
        assert zf.getinfo("Ünïcode.txt").flag_bits & 0x800
    assert (s.files, s.dirs) == (6, 3)
    assert s.uncompressed_bytes == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert s.compressed_bytes == (tmp_path / "a.zip").stat().st_size
    assert s.sha256 == sha(tmp_path / "a.zip")


def test_modes_and_timestamps_are_normalised(tmp_path):
    root = make_tree(tmp_path / "t")
    os.chmod(root / "app.py", 0o600)          # owner-only: normalised to 0o644
    write_zip(root, tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        for info in zf.infolist():
            mode = info.external_attr >> 16
            assert info.create_system == 3
            assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
            assert info.extra == b"", info.filename
            if info.filename.endswith("/"):
                assert mode == stat.S_IFDIR | 0o755, info.filename
            elif info.filename == "pkg/tool.sh":
                assert mode == stat.S_IFREG | 0o755
            else:
                assert mode == stat.S_IFREG | 0o644, info.filename


def test_same_tree_same_bytes_regardless_of_mtime_mode_threads_and_location(tmp_path):
    a = make_tree(tmp_path / "a")
    write_zip(a, tmp_path / "1.zip", jobs=1)
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)                      # new inodes, new mtimes
    for p in b.rglob("*"):
        os.utime(p, (1_700_000_000, 1_700_000_000))
    os.chmod(b / "app.py", 0o664)
    os.chmod(b / "pkg" / "tool.sh", 0o755)     # still executable: same mode in the zip
    write_zip(b, tmp_path / "2.zip", jobs=4)
    assert sha(tmp_path / "1.zip") == sha(tmp_path / "2.zip")
    (b / "app.py").write_text("changed\n")
    write_zip(b, tmp_path / "3.zip")
    assert sha(tmp_path / "3.zip") != sha(tmp_path / "1.zip")


def test_source_date_epoch(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "t")
    write_zip(root, tmp_path / "default.zip")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000001")   # 2023-11-14 22:13:21 UTC
    write_zip(root, tmp_path / "sde.zip")
    with zipfile.ZipFile(tmp_path / "sde.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}
    assert sha(tmp_path / "default.zip") != sha(tmp_path / "sde.zip")
    write_zip(root, tmp_path / "sde2.zip")
    assert sha(tmp_path / "sde.zip") == sha(tmp_path / "sde2.zip")


def test_timestamp_clamps_and_rejects_garbage():
    assert timestamp({}) == (1980, 1, 1, 0, 0, 0)
    assert timestamp({"SOURCE_DATE_EPOCH": "0"}) == (1980, 1, 1, 0, 0, 0)
    assert timestamp({"SOURCE_DATE_EPOCH": " 946684800 "}) == (2000, 1, 1, 0, 0, 0)
    assert timestamp({"SOURCE_DATE_EPOCH": "99999999999"})[0] == 2107
    with pytest.raises(errors.BadInput, match="SOURCE_DATE_EPOCH"):
        timestamp({"SOURCE_DATE_EPOCH": "yesterday"})


def test_compression_level_changes_bytes_not_content(tmp_path):
    root = make_tree(tmp_path / "t")
    s0 = write_zip(root, tmp_path / "0.zip", level=0)
    s9 = write_zip(root, tmp_path / "9.zip", level=9)
    assert s0.compressed_bytes > s9.compressed_bytes
    with zipfile.ZipFile(tmp_path / "0.zip") as z0, zipfile.ZipFile(tmp_path / "9.zip") as z9:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z0.infolist())
        assert {n: z0.read(n) for n in z0.namelist()} == {n: z9.read(n) for n in z9.namelist()}
    with pytest.raises(errors.BadInput):
        write_zip(root, tmp_path / "x.zip", level=10)


def test_symlinked_file_is_archived_as_its_content(tmp_path):
    root = make_tree(tmp_path / "t")
    os.symlink("app.py", root / "link.py")
    write_zip(root, tmp_path / "a.zip")
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        info = zf.getinfo("link.py")
        assert stat.S_ISREG(info.external_attr >> 16)
        assert zf.read("link.py") == (root / "app.py").read_bytes()


@pytest.mark.skipif(shutil.which("unzip") is None, reason="Info-ZIP unzip not installed")
def test_info_zip_accepts_the_archive(tmp_path):
    root = make_tree(tmp_path / "t")
    write_zip(root, tmp_path / "a.zip")
    out = subprocess.run(["unzip", "-t", str(tmp_path / "a.zip")], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No errors detected" in out.stdout
    dest = tmp_path / "x"
    subprocess.run(["unzip", "-q", str(tmp_path / "a.zip"), "-d", str(dest)], check=True)
    assert os.stat(dest / "pkg" / "tool.sh").st_mode & 0o777 == 0o755
    assert os.stat(dest / "app.py").st_mode & 0o777 == 0o644


def test_list_tree_order(tmp_path):
    root = make_tree(tmp_path / "t")
    names = [n for n, _ in list_tree(root)]
    assert names == sorted(names, key=lambda n: n.encode())
    assert "emptydir/" in names and "pkg/sub/" in names


@pytest.mark.slow
def test_zip64_end_record_beyond_65535_entries(tmp_path):
    root = tmp_path / "many"
    for d in range(70):
        sub = root / f"d{d:02d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            (sub / f"f{i:04d}").write_bytes(b"")
    s = write_zip(root, tmp_path / "big.zip", level=0)
    assert s.files == 70_000
    with zipfile.ZipFile(tmp_path / "big.zip") as zf:
        assert len(zf.infolist()) == 70_070
        assert zf.read("d69/f0999") == b""


def test_deflate_streams_of_wheel_members_are_reused_only_for_identical_files(tmp_path):
    from lambda_compat.package.reprozip import RawEntry
    wheel = tmp_path / "w.whl"
    files = {"pkg/__init__.py": b"import os\n" * 300, "pkg/data.txt": b"abc " * 500,
             "pkg/same_size.txt": b"0123456789" * 100}
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    tree = tmp_path / "tree"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tree)
        reuse = {i.filename: RawEntry(wheel, i.header_offset, i.compress_size, i.file_size,
                                      i.CRC) for i in zf.infolist()}
        raw_of = {}
        for i in zf.infolist():
            with open(wheel, "rb") as f:
                f.seek(i.header_offset + 30 + len(i.filename.encode()) + len(i.extra))
                raw_of[i.filename] = f.read(i.compress_size)
    # Same size, other content: the CRC differs, so the wheel's stream must not be used.
    (tree / "pkg" / "same_size.txt").write_bytes(b"9876543210" * 100)
    s = write_zip(tree, tmp_path / "out.zip", reuse=reuse)
    assert s.reused == 2
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert zf.testzip() is None
        for name in files:
            assert zf.read(name) == (tree / name).read_bytes()
        for name in ("pkg/__init__.py", "pkg/data.txt"):
            info = zf.getinfo(name)
            with open(tmp_path / "out.zip", "rb") as f:
                f.seek(info.header_offset + 30 + len(name.encode()))
                assert f.read(info.compress_size) == raw_of[name]
    again = write_zip(tree, tmp_path / "again.zip", reuse=reuse)
    assert again.sha256 == s.sha256
    stored = write_zip(tree, tmp_path / "stored.zip", reuse=reuse, level=0)
    assert stored.reused == 0
