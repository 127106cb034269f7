"""Loading what a function gets: bundle directories, deployment zips, layers, dist-info."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from lambda_compat.verify import bundle, zips

from lambda_compat import errors
from lambda_compat.build.install import install_all

from check_helpers import (INDEX_FILES, add_symlink, copy_elf, make_dist, snapshot, zip_dir)


def test_directory_from_real_wheels(tmp_path):
    task = tmp_path / "task"
    install_all([INDEX_FILES / "lc_native-1.0-cp311-cp311-manylinux_2_17_x86_64."
                                "manylinux2014_x86_64.whl",
                 INDEX_FILES / "lc_markers-1.0-py3-none-any.whl"], task, 1)
    (task / "handler.py").write_text("def handler(e, c): return 1\n")
    view = bundle.load(task)
    names = {d.name: d for d in view.distributions}
    assert set(names) == {"lc-native", "lc-markers"}
    native = names["lc-native"]
    assert native.version == "1.0" and native.site == "/var/task"
    assert native.modules == ("lc_native",)
    assert native.has_record and native.has_wheel
    assert {str(t) for t in native.tags} == {"cp311-cp311-manylinux2014_x86_64",
                                             "cp311-cp311-manylinux_2_17_x86_64"}
    so = "/var/task/lc_native/_speedups.cpython-311-x86_64-linux-gnu.so"
    assert view.owner[so] == "lc-native"
    assert "/var/task/handler.py" in view.files and "/var/task/handler.py" not in view.owner
    assert [f.path for f in view.native_files] == [so]
    info = view.elf(so)
    assert info.machine == "x86_64"
    req_names = sorted(r.name for r in names["lc-markers"].requires_dist)
    assert req_names == ["lc-arm-only", "lc-extra-dep", "lc-old-python", "lc-pure"]
    assert native.size == sum(view.files[p].size for p in native.files)


def test_modules_from_record_namespace_and_top_level_extension(tmp_path):
    site = tmp_path / "t"
    make_dist(site, "protobuf-like", files={
        "google/protobuf/__init__.py": "", "google/protobuf/message.py": "",
        "google/_upb/_message.abi3.so": b"x"})
    make_dist(site, "cffi-like", files={"_cffi_backend.cpython-312-x86_64-linux-gnu.so": b"x",
                                        "cffi/__init__.py": "", "tests/__init__.py": ""})
    make_dist(site, "single", files={"six.py": ""})
    view = bundle.load(site)
    mods = {d.name: d.modules for d in view.distributions}
    # google/ and google/_upb/ have no __init__.py: namespaces, so import what is inside
    assert mods["protobuf-like"] == ("google._upb._message", "google.protobuf")
    assert mods["cffi-like"] == ("_cffi_backend", "cffi")  # never "tests"
    assert mods["single"] == ("six",)


def test_dist_info_without_record_is_a_finding_and_uses_top_level(tmp_path):
    site = tmp_path / "t"
    make_dist(site, "norecord", files={"nr/__init__.py": ""}, record=False, top_level=["nr"])
    view = bundle.load(site)
    (d,) = view.distributions
    assert not d.has_record and d.modules == ("nr",)
    (f,) = [f for f in view.findings if f.code == "no-record"]
    assert f.distribution == "norecord" and f.severity == "warning"
    assert "RECORD" in f.message and f.fix


def test_vendored_files_are_grouped_by_top_level_name(tmp_path):
    site = tmp_path / "t"
    (site / "myvendored").mkdir(parents=True)
    (site / "myvendored" / "_x.cpython-311-x86_64-linux-gnu.so").write_bytes(
        copy_elf("_oldglibc.cpython-311-x86_64-linux-gnu.so"))
    view = bundle.load(site)
    path = "/var/task/myvendored/_x.cpython-311-x86_64-linux-gnu.so"
    assert path not in view.owner
    assert view.vendored_group(path) == "myvendored (no dist-info)"
    assert view.vendored_group("/opt/lib/libfoo.so.1") == "lib (no dist-info)"
    assert view.vendored_group("/opt/python/lib/python3.12/site-packages/pkg/a.so") == \
        "pkg (no dist-info)"


def test_deployment_zip_is_extracted_and_measured(tmp_path):
    site = tmp_path / "t"
    make_dist(site, "pkg", files={"pkg/__init__.py": "X = 1\n"})
    z = zip_dir(site, tmp_path / "function.zip")
    with zips.Workspace() as ws:
        view = bundle.load(z, workspace=ws)
        assert view.zip_bytes == z.stat().st_size
        assert {d.name for d in view.distributions} == {"pkg"}
        assert "/var/task/pkg/__init__.py" in view.files
        assert view.task_dir is not None and ws.path in view.task_dir.parents
    assert not ws.path.exists()


def _evil_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok/__init__.py", "")
        zf.writestr("../evil.py", "print('escaped')\n")
        zf.writestr("a/../../evil2.py", "")
        zf.writestr("/abs/evil3.py", "")
        add_symlink(zf, "ok/passwd", "/etc/passwd")
        add_symlink(zf, "ok/up", "../../outside")
        add_symlink(zf, "ok/inside", "__init__.py")
    return path


def test_zip_slip_and_escaping_symlinks_are_refused_with_findings(tmp_path):
    z = _evil_zip(tmp_path / "evil.zip")
    with zips.Workspace(tmp_path) as ws:
        view = bundle.load(z, workspace=ws)
        unsafe = [f for f in view.findings if f.code == "unsafe-path"]
        entries = sorted(f.file for f in unsafe)
        assert entries == sorted(["../evil.py", "a/../../evil2.py", "/abs/evil3.py",
                                  "ok/passwd", "ok/up"])
        assert all(f.severity == "error" and "evil.zip" in f.message for f in unsafe)
        # nothing was written outside the extraction directory
        assert not list(tmp_path.rglob("evil*.py"))
        assert not (ws.path / "outside").exists()
        # the safe link stays a link, inside
        assert "/var/task/ok/inside" in view.files
        assert view.files["/var/task/ok/inside"].link == "__init__.py"
        assert not (view.task_dir / "ok" / "passwd").exists()


def test_corrupt_zip_is_bad_input_naming_the_file(tmp_path):
    site = tmp_path / "t"
    make_dist(site, "pkg", files={"pkg/__init__.py": "X = 1\n" * 1000})
    good = zip_dir(site, tmp_path / "good.zip")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(data[: len(data) // 2])
    with zips.Workspace(tmp_path) as ws:
        with pytest.raises(errors.BadInput) as exc:
            bundle.load(truncated, workspace=ws)
    assert "truncated.zip" in str(exc.value) and exc.value.exit_code == 2
    # flip bytes inside the compressed data of the first entry: the CRC check must catch it
    with zipfile.ZipFile(good) as zf:
        info = zf.infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    broken = bytearray(data)
    for i in range(start + 2, start + 12):
        broken[i] ^= 0xFF
    crc = tmp_path / "crc.zip"
    crc.write_bytes(bytes(broken))
    with zips.Workspace(tmp_path) as ws:
        with pytest.raises(errors.BadInput) as exc:
            bundle.load(crc, workspace=ws)
    assert "crc.zip" in str(exc.value) and info.filename in str(exc.value)
    notzip = tmp_path / "notzip.zip"
    notzip.write_text("hello")
    with pytest.raises(errors.BadInput, match="notzip.zip: not a valid zip"):
        bundle.load(notzip, workspace=zips.Workspace(tmp_path))


def test_missing_input_is_bad_input(tmp_path):
    with pytest.raises(errors.BadInput, match="no such file"):
        bundle.load(tmp_path / "nope")
    with pytest.raises(errors.BadInput, match="layer 1"):
        bundle.load(None, [tmp_path / "nope.zip"])


def test_layers_merge_in_order_into_opt(tmp_path):
    l1 = tmp_path / "l1"
    make_dist(l1 / "python", "shared", "1.0", files={"shared/__init__.py": "V = 1\n"})
    (l1 / "lib").mkdir()
    (l1 / "lib" / "libx.so.1").write_bytes(b"one")
    l2 = tmp_path / "l2"
    (l2 / "lib").mkdir(parents=True)
    (l2 / "lib" / "libx.so.1").write_bytes(b"second layer")
    make_dist(l2 / "python" / "lib" / "python3.12" / "site-packages", "only312",
              files={"only312/__init__.py": ""})
    z2 = zip_dir(l2, tmp_path / "l2.zip")
    with zips.Workspace(tmp_path) as ws:
        view = bundle.load(None, [l1, z2], workspace=ws)
        assert view.files["/opt/lib/libx.so.1"].size == len(b"second layer")
        assert view.files["/opt/lib/libx.so.1"].origin == "layer 2 (l2.zip)"
        sites = {d.name: d.site for d in view.distributions}
        assert sites == {"shared": "/opt/python",
                         "only312": "/opt/python/lib/python3.12/site-packages"}
        assert view.layer_zip_bytes == (None, z2.stat().st_size)


@pytest.mark.parametrize("site,expected", [
    ("/var/task", "site"), ("/opt/python", "site"),
    ("/opt/python/lib/python3.11/site-packages", "site"),
    ("/opt", "misplaced"), ("/opt/python/lib/python3.11", "misplaced"),
    ("/var/task/python", "misplaced"),
    ("/var/task/python/lib/python3.12/site-packages", "misplaced"),
    ("/var/task/package", "misplaced"),
    ("/var/task/setuptools/_vendor", None),
])
def test_placement(site, expected):
    children = {"/var/task/setuptools": {"__init__.py"}}
    assert bundle.placement(site, children) == expected


def test_a_folder_zipped_instead_of_its_content_is_misplaced(tmp_path):
    outer = tmp_path / "outer"
    make_dist(outer / "package", "pkg", files={"pkg/__init__.py": ""})
    view = bundle.load(outer)
    (d,) = view.distributions
    assert d.placement == "misplaced" and d.site == "/var/task/package"


def test_symlink_out_of_a_directory_bundle_is_flagged_and_nothing_is_written(tmp_path):
    task = tmp_path / "task"
    make_dist(task, "pkg", files={"pkg/__init__.py": ""})
    os.symlink("/etc/hostname", task / "pkg" / "host")
    os.symlink("__init__.py", task / "pkg" / "alias.py")
    before = snapshot(task)
    view = bundle.load(task)
    view.read_all_elf()
    (f,) = [f for f in view.findings if f.code == "unsafe-path"]
    assert f.file == "/var/task/pkg/host" and f.severity == "warning"
    assert "/var/task/pkg/alias.py" in view.files
    assert snapshot(task) == before
