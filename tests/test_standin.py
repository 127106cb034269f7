"""Stand-in roots: planning, the records they carry, and real builds (slow / rootfs_arm64)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_compat.prove import rootpaths

from lambda_compat.host import binfmt

from lambda_compat import errors

from lambda_compat.host import sandbox

from lambda_compat.prove.standin import copyroot, debian
from lambda_compat.prove.standin import info as standin_info
from lambda_compat.prove.standin import roots as standin_roots
from lambda_compat.registry.runtimes import get_target
from compat_tests.local_env import has_python

ROOT = Path(__file__).resolve().parent.parent
HOST = binfmt.host_machine()
HOST_ARCH = "arm64" if HOST == "aarch64" else "x86_64"


def _local_minor():
    for minor in (11, 12, 10, 13, 9, 8):
        if has_python((3, minor), HOST):
            return minor
    pytest.skip("no local CPython 3.8-3.13")


# --------------------------------------------------------------------------- planning (fast)

def test_plan_copy_for_a_local_interpreter():
    minor = _local_minor()
    plan, why = standin_roots.plan_standin(get_target(f"python3.{minor}", HOST_ARCH))
    assert plan is not None and why == ""
    assert plan.kind == "copy" and plan.python_version == (3, minor)
    assert plan.name.startswith(f"copy-cpython3.{minor}.") and plan.name.endswith(HOST_ARCH)


@pytest.mark.parametrize("runtime, suite", [("python3.9", "bullseye"), ("python3.11", "bookworm"),
                                            ("python3.13", "trixie"), ("python3.14", "sid")])
def test_plan_debian_for_foreign_arch(runtime, suite):
    foreign = "arm64" if HOST == "x86_64" else "x86_64"
    deb_arch = "arm64" if foreign == "arm64" else "amd64"
    plan, _ = standin_roots.plan_standin(get_target(runtime, foreign))
    assert plan.kind == "unpack" and plan.suite == suite
    assert plan.name == f"debian-{suite}-{deb_arch}-unpacked"
    full, _ = standin_roots.plan_standin(get_target(runtime, foreign), kind="debootstrap")
    assert full.kind == "debootstrap" and full.name == f"debian-{suite}-{deb_arch}"


def test_debian_stand_in_plans_carry_the_runtime_libraries_build_roots_do_not():
    from lambda_compat.prove.standin.buildroot import plan_build_root
    foreign = "arm64" if HOST == "x86_64" else "x86_64"
    plan, _ = standin_roots.plan_standin(get_target("python3.13", foreign))
    assert plan.runtime_libraries
    build, _ = plan_build_root((3, 13), foreign)
    assert not build.runtime_libraries
    # a Debian stand-in recorded before roots carried the libraries is made again
    old = standin_info.StandinInfo(name=plan.name, kind="unpack", arch=foreign,
                                   machine="aarch64", python="3.13.5",
                                   python_executable="/var/lang/bin/python3.13",
                                   libc="glibc 2.41", made_from="x", version=1)
    assert not standin_roots._current(old, plan)
    assert standin_roots._current(old, build)
    from dataclasses import replace
    assert standin_roots._current(replace(old, version=2), plan)


def test_debian_packages_for_the_runtime_sonames():
    from lambda_compat.prove.standin import debian_libs
    index = ["Package: libmagic1t64", "Version: 1:5.46-5", "", "Package: libmagic1",
             "Package: libcurl4t64", "Package: libglib2.0-0t64", "Package: libc6",
             "Package: libssl3t64"]
    available = debian_libs.parse_package_names(index)
    assert "libmagic1t64" in available and "Version" not in str(sorted(available))
    packages, unavailable = debian_libs.packages_for(
        ["libmagic.so.1", "libcurl.so.4", "libglib-2.0.so.0", "libgio-2.0.so.0", "libc.so.6",
         "libssl.so.10", "libnot-in-the-table.so.3"], available)
    # the time_t-transition name where the suite has it; one package for glib's four sonames
    assert packages == ("libc6", "libcurl4t64", "libglib2.0-0t64", "libmagic1t64")
    assert unavailable == ("libnot-in-the-table.so.3", "libssl.so.10")
    # an older suite: the old name
    packages, _ = debian_libs.packages_for(
        ["libmagic.so.1"], debian_libs.parse_package_names(["Package: libmagic1"]))
    assert packages == ("libmagic1",)


def test_no_plan_names_the_reason():
    foreign = "arm64" if HOST == "x86_64" else "x86_64"
    plan, why = standin_roots.plan_standin(get_target("python3.12", foreign))
    assert plan is None
    assert "no Debian suite ships Python 3.12" in why and "bookworm 3.11" in why
    with pytest.raises(errors.BackendUnavailable, match="no stand-in root for python3.12"):
        standin_roots.ensure_standin(get_target("python3.12", foreign))


def test_unknown_kind_is_bad_input():
    with pytest.raises(errors.BadInput, match="stand-in kind"):
        standin_roots.plan_standin(get_target("python3.11", "x86_64"), kind="docker")


def test_find_standin_never_builds(tmp_path):
    assert standin_roots.find_standin(get_target("python3.11", "arm64"), cache_dir=tmp_path) is None
    assert not (tmp_path / "roots" / "debian-bookworm-arm64").exists()


def test_info_round_trip_and_description():
    info = standin_info.StandinInfo(
        name="debian-bookworm-arm64", kind="debootstrap", arch="arm64", machine="aarch64",
        python="3.11.2", python_executable="/var/lang/bin/python3.11", libc="glibc 2.36",
        made_from="debootstrap ...", suite="bookworm", excluded_libraries=("libpq.so.5",))
    again = standin_info.StandinInfo.from_json(info.to_json())
    assert again == info
    assert info.python_version == (3, 11)
    assert info.describe() == "debian bookworm arm64 (debootstrap), Python 3.11.2, glibc 2.36, arm64"
    assert standin_info.read_info(Path("/nonexistent")) is None


@pytest.mark.parametrize("deb, upstream", [
    ("3.11.2-6+deb12u6", "3.11.2"), ("3.14.0~rc3-1", "3.14.0rc3"), ("2.36-9+deb12u13", "2.36"),
    ("1:3.13.5-2", "3.13.5"), ("2.31-13+deb11u11", "2.31")])
def test_debian_version_to_upstream(deb, upstream):
    assert debian._upstream(deb) == upstream


def test_dpkg_status_parsing(tmp_path):
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    status.write_text(
        "Package: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u6\n\n"
        "Package: libc6\nStatus: install ok installed\nArchitecture: arm64\nVersion: 2.36-9+deb12u13\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nVersion: 1.0\n")
    assert debian._dpkg_versions(tmp_path) == {"python3.11-minimal": "3.11.2-6+deb12u6",
                                                "libc6": "2.36-9+deb12u13"}


def test_debootstrap_command():
    cmd = debian.debootstrap_command("bookworm", "arm64", Path("/r"), "http://m/debian")
    assert cmd == ["debootstrap", "--variant=minbase", "--include=python3", "--arch=arm64",
                   "bookworm", "/r", "http://m/debian"]
    assert debian.debootstrap_command("sid", "x86_64", Path("/r"), "M", foreign=True)[:2] == \
        ["debootstrap", "--foreign"]


def test_deb_versions_from_file_names(tmp_path):
    for name in ("python3.11-minimal_3.11.2-6+deb12u8_arm64.deb", "libc6_2.36-9+deb12u14_arm64.deb",
                 "tzdata_2026b-0+deb12u1_all.deb", "perl-base_1%3a5.36.0-7_arm64.deb"):
        (tmp_path / name).write_bytes(b"")
    assert debian._deb_versions(tmp_path) == {
        "python3.11-minimal": "3.11.2-6+deb12u8", "libc6": "2.36-9+deb12u14",
        "tzdata": "2026b-0+deb12u1", "perl-base": "1:5.36.0-7"}


# --------------------------------------------------------------------------- sandbox helpers (fast)

def test_bind_except_rebuilds_only_paths_to_holes(tmp_path):
    root = tmp_path / "root"
    for d in ("usr/bin", "var/lib", "var/task", "etc"):
        (root / d).mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "var/file").write_text("x")
    args = sandbox._bind_except(str(root), "/", {"/var/task", "/tmp"})
    pairs, i = [], 0
    while i < len(args):
        arity = 2 if args[i] == "--dir" else 3
        pairs.append(tuple(args[i:i + arity]))
        i += arity
    assert ("--dir", "/var") in pairs
    assert ("--symlink", "usr/bin", "/bin") in pairs
    assert ("--ro-bind", str(root / "usr"), "/usr") in pairs
    assert ("--ro-bind", str(root / "var/lib"), "/var/lib") in pairs
    assert ("--ro-bind", str(root / "var/file"), "/var/file") in pairs
    assert not any(p[-1].startswith(("/var/task", "/tmp")) for p in pairs)


def test_resolve_in_root_follows_links_inside_the_root(tmp_path):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").write_text("")
    (tmp_path / "var/lang/bin").mkdir(parents=True)
    (tmp_path / "var/lang/bin/python3.11").symlink_to("/usr/bin/python3.11")  # absolute: in root
    found = rootpaths._resolve_in_root(tmp_path, "/var/lang/bin/python3.11")
    assert found == tmp_path / "usr/bin/python3.11"
    assert rootpaths.root_interpreter(tmp_path, (3, 11)) == "/var/lang/bin/python3.11"
    assert rootpaths.root_interpreter(tmp_path, (3, 12)) is None


# --------------------------------------------------------------------------- copy roots (slow)

def _files(root: Path):
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            yield Path(dirpath, name)


@pytest.mark.slow
def test_copy_root_layout_and_record(tmp_path):
    minor = _local_minor()
    target = get_target(f"python3.{minor}", HOST_ARCH)
    root = standin_roots.ensure_standin(target, kind="copy", cache_dir=tmp_path)
    path = root.path
    assert path == tmp_path / "roots" / root.info.name
    v = f"3.{minor}"
    assert (path / f"var/lang/bin/python{v}").is_file()
    for d in ("var/task", "var/runtime", "opt", "tmp"):
        assert (path / d).is_dir()
    stdlib = path / f"var/lang/lib/python{v}"
    assert (stdlib / "os.py").is_file() and (stdlib / "lib-dynload").is_dir()
    assert not (stdlib / "test").exists() and not (stdlib / "idlelib").exists()
    assert list((stdlib / "site-packages").iterdir()) == []  # no host site-packages
    assert not any(p.name.startswith("libpq.so") for p in _files(path))
    assert (path / "usr/lib64/libc.so.6").is_file() and os.readlink(path / "lib64") == "usr/lib64"
    info = json.loads((path / standin_info.INFO_FILE).read_text())
    assert info["kind"] == "copy" and info["python"].startswith(v + ".")
    assert info["build_seconds"] > 0 and info["size_bytes"] > 10 * 2**20
    assert info["machine"] == HOST
    assert "libpq.so.5" not in info["lambda_libraries"]
    assert not list((tmp_path / "roots").glob(".tmp-*"))
    # cached: the second call finds it without building
    again = standin_roots.ensure_standin(target, kind="copy", cache_dir=tmp_path)
    assert again.info == root.info


@pytest.mark.slow
def test_parallel_builds_share_one_root(tmp_path):
    minor = _local_minor()
    code = (f"from lambda_compat.registry.runtimes import get_target\n"
            f"from lambda_compat.prove.standin import roots as standin_roots\nfrom pathlib import Path\n"
            f"r = standin_roots.ensure_standin(get_target('python3.{minor}', '{HOST_ARCH}'), "
            f"kind='copy', cache_dir=Path({str(tmp_path)!r}))\nprint(r.info.created, r.path)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "resolver"))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env=env) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0] == outs[1]  # the same root, built once (same creation stamp)
    assert [p.name for p in (tmp_path / "roots").iterdir() if p.is_dir()] == \
        [outs[0].split()[-1].rsplit("/", 1)[-1]]


@pytest.mark.slow
def test_interrupted_build_leaves_nothing_behind(tmp_path, monkeypatch):
    minor = _local_minor()
    target = get_target(f"python3.{minor}", HOST_ARCH)

    def boom(*args, **kwargs):
        raise errors.EnvironmentProblem("simulated failure half way")

    monkeypatch.setattr(copyroot, "_usr_links", boom)
    with pytest.raises(errors.EnvironmentProblem, match="simulated"):
        standin_roots.ensure_standin(target, kind="copy", cache_dir=tmp_path)
    roots = tmp_path / "roots"
    assert [p.name for p in roots.iterdir() if p.is_dir()] == []
    assert standin_roots.find_standin(target, kind="copy", cache_dir=tmp_path) is None


# --------------------------------------------------------------------------- arm64 root

@pytest.mark.slow
@pytest.mark.rootfs_arm64
@pytest.mark.parametrize("kind", [
    "unpack",
    # the full second stage runs every maintainer script through qemu: many minutes
    pytest.param("debootstrap", marks=pytest.mark.skipif(
        not os.environ.get("LAMBDA_COMPAT_TEST_FULL_DEBOOTSTRAP"),
        reason="set LAMBDA_COMPAT_TEST_FULL_DEBOOTSTRAP=1 to build a fully configured root")),
])
def test_debian_arm64_root(kind):
    if HOST != "x86_64" or os.geteuid() != 0 or not shutil.which("debootstrap"):
        pytest.skip("needs an x86_64 host, root and debootstrap")
    root = standin_roots.ensure_standin(get_target("python3.11", "arm64"), kind=kind)
    info = root.info
    assert info.kind == kind and info.suite == "bookworm"
    assert root.path.name == "debian-bookworm-arm64" + ("-unpacked" if kind == "unpack" else "")
    assert info.machine == "aarch64" and info.python.startswith("3.11.")
    assert info.libc.startswith("glibc 2.")
    assert os.readlink(root.path / "var/lang/bin/python3.11") == "/usr/bin/python3.11"
    assert rootpaths.root_machine(root.path, "/var/lang/bin/python3.11") == "aarch64"
    assert not any(p.name.startswith("libpq.so") for p in _files(root.path))
    assert not list((root.path / "var/cache/apt/archives").glob("*.deb"))
    # the stdlib has bytecode (compiled by the host's 3.11 for an unpacked root, by Debian's
    # postinst otherwise), so imports under qemu do not compile from source
    assert list((root.path / "usr/lib/python3.11/__pycache__").glob("os.cpython-311.pyc"))
    if kind == "unpack":
        assert "dpkg-deb -x" in info.made_from and "(debootstrap, unpacked)" in info.describe()
    # the runtime's system libraries that bookworm has (AL2's list): in the root, recorded;
    # the AL2 sonames Debian does not ship are recorded as missing, not faked
    names = {p.name for p in _files(root.path)}
    for soname in ("libcap.so.2", "libpopt.so.0", "libnspr4.so", "libverto.so.1"):
        assert soname in info.lambda_libraries and soname in names, soname
    assert {"libssl.so.10", "libffi.so.6"} <= set(info.missing_libraries)
    assert not {"libssl.so.10", "libffi.so.6"} & names
    assert "libmagic.so.1" not in names  # AL2 has no libmagic: neither has its stand-in


def test_binfmt_register_is_idempotent():
    if HOST != "x86_64" or os.geteuid() != 0 or not binfmt.static_qemu("aarch64"):
        pytest.skip("needs root on x86_64 with qemu-user-static")
    first = binfmt.register("aarch64")
    second = binfmt.register("aarch64")
    assert first == second and first.usable_in_sandbox
