"""The runtime probe inside stand-in roots: it must report the root's facts, not the host's.

The probe (resolver/lambda_compat/prove/_payload/probe.py) is copied into a bundle directory and run by the
root's own interpreter under bwrap, with the bundle at /var/task and Lambda's environment,
as the refresh-runtimes workflow runs it in the real images. Each fact is checked against an
independent source: the stand-in's record of itself, the files in the root, binutils.
Merging a stand-in's probe into the registry must be refused (a stand-in is not Lambda).
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lambda_compat import errors

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "resolver" / "lambda_compat" / "prove" / "_payload" / "probe.py"
LOADER = {"x86_64": "ld-linux-x86-64.so.2", "arm64": "ld-linux-aarch64.so.1"}

pytestmark = [pytest.mark.slow]


def _selected(config, runtime, arch):
    runtimes = config.getoption("compat_runtimes")
    arches = config.getoption("compat_arches")
    return (not runtimes or runtime in runtimes) and (not arches or arch in arches)


@pytest.fixture(scope="module", params=[
    # both in the compat_fast slice (CI): seconds once the roots exist, and the arm64 probe
    # runs through qemu-user
    pytest.param(("python3.11", "x86_64"), marks=pytest.mark.compat_fast),
    pytest.param(("python3.11", "arm64"), marks=pytest.mark.compat_fast)],
    ids=lambda p: f"{p[0]}-{p[1]}")
def standin_probe(request, tmp_path_factory):
    runtime, arch = request.param
    if not _selected(request.config, runtime, arch):
        pytest.skip(f"{runtime}/{arch} not selected (--runtime/--arch)")
    from lambda_compat.prove.backends import base
    from lambda_compat.host import binfmt
    from lambda_compat.host import sandbox
    from lambda_compat.prove.standin import roots
    from lambda_compat.registry.runtimes import get_target
    target = get_target(runtime, arch)
    if not sandbox.bwrap_works():
        pytest.skip("bwrap cannot create namespaces here")
    if target.machine != binfmt.host_machine() and \
            not binfmt.status(target.machine).usable_in_sandbox:
        pytest.skip(f"no binfmt qemu-user for {target.machine}")
    try:
        root = roots.ensure_standin(target)
    except errors.EnvironmentProblem as exc:
        pytest.skip(f"no stand-in root for {target.name}: {exc}")
    task = tmp_path_factory.mktemp("probe-task")
    shutil.copyfile(PROBE, task / "lambda_compat_probe.py")
    opt = tmp_path_factory.mktemp("probe-opt")
    argv = sandbox.bwrap_argv(sandbox.Mounts(root.path, task, opt),
                              [root.info.python_executable, "/var/task/lambda_compat_probe.py"])
    proc = subprocess.run(argv, env=base.lambda_environment(target), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return target, root, json.loads(proc.stdout)


def _root_file(root: Path, inside: str) -> Path:
    """A path inside the root, following absolute symlinks within the root."""
    path = root / inside.lstrip("/")
    for _ in range(20):
        if not path.is_symlink():
            return path
        link = Path(str(path.readlink()))
        path = (root / str(link).lstrip("/")) if link.is_absolute() else path.parent / link
    return path


def _ld_so_cache(root: Path) -> dict:
    """soname -> paths, from the root's /etc/ld.so.cache as glibc's ``ldconfig -p`` reads it
    (not the probe's own reader); {} when the root has no cache."""
    cache = _root_file(root, "/etc/ld.so.cache")
    if not cache.exists():
        return {}
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    proc = subprocess.run([ldconfig, "-C", str(cache), "-p"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out: dict = {}
    for line in proc.stdout.splitlines()[1:]:
        if "=>" in line:
            left, right = line.rsplit("=>", 1)
            out.setdefault(left.split()[0], []).append(right.strip())
    return out


def test_probe_reports_the_roots_facts(standin_probe):
    target, root, data = standin_probe
    info = root.info
    assert data["mode"] == "cli"
    assert data["machine"] == target.machine
    assert data["python"]["version"] == "%d.%d" % tuple(target.python_version)
    assert data["python"]["full_version"] == info.python
    assert data["python"]["soabi"] == f"cpython-3{target.python_version[1]}-" \
                                      f"{target.machine}-linux-gnu"
    assert data["glibc"] == info.libc.split()[-1]           # e.g. "glibc 2.36"
    assert "libc.so.6" in data["sonames"] and LOADER[target.arch] in data["sonames"]
    assert not any(s.startswith("libpq.so") for s in data["sonames"]), \
        "stand-ins leave libpq out, as Lambda does"
    # every soname the probe reports is a file the loader could find in the root: in one of
    # the library directories, or through the root's ld.so.cache (read by glibc's ldconfig)
    dirs = data["library_dirs"]
    cache = _ld_so_cache(root.path)
    assert bool(cache) == (data["ld_so_cache_entries"] > 0), (len(cache),
                                                              data["ld_so_cache_entries"])
    for soname in data["sonames"]:
        in_dirs = any(_root_file(root.path, f"{d}/{soname}").exists() for d in dirs)
        cached = [p for p in cache.get(soname, ()) if _root_file(root.path, p).exists()]
        assert in_dirs or cached, f"{soname}: in none of {dirs}, nor in the root's cache"
    assert any(p.endswith("/python%d.%d" % tuple(target.python_version))
               for p in data["sys_path"])
    assert data["env"]["LAMBDA_TASK_ROOT"] == "/var/task"
    assert data["env"]["AWS_EXECUTION_ENV"] == f"AWS_Lambda_{target.runtime}"


def test_probe_libstdcxx_ceiling_agrees_with_readelf(standin_probe):
    target, root, data = standin_probe
    cxx = data["libstdcxx"]
    if cxx["path"] is None:
        assert "libstdc++.so.6" not in data["sonames"]
        pytest.skip(f"{root.info.name} has no libstdc++.so.6")
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("binutils' readelf is not installed")
    text = subprocess.run([readelf, "-V", "--wide", str(_root_file(root.path, cxx["path"]))],
                          capture_output=True, text=True).stdout
    defined = re.findall(r"Name: GLIBCXX_([0-9.]+)", text)
    assert cxx["GLIBCXX"] == max(defined, key=lambda v: tuple(map(int, v.split("."))))


def test_a_standin_probe_cannot_enter_the_registry(standin_probe, tmp_path):
    pytest.importorskip("ruamel.yaml")
    from lambda_compat.registry.probe_merge import merge_file
    from lambda_compat.registry.runtimes import registry_dir
    target, root, data = standin_probe
    runtimes = tmp_path / "runtimes.yaml"
    shutil.copyfile(registry_dir() / "runtimes.yaml", runtimes)
    original = runtimes.read_text()
    probe_file = tmp_path / "probe.json"
    probe_file.write_text(json.dumps({"target": target.name, "probe": data}))
    # the stand-in's glibc (Debian's) is newer than Amazon Linux 2's: the loader's invariant
    # (one glibc per OS) refuses the merged file, which is left as it was
    with pytest.raises(errors.RegistryError, match="glibc"):
        merge_file(runtimes, [probe_file], datetime.date(2026, 11, 21))
    assert runtimes.read_text() == original
