"""An sdist's metadata, for the target, in bounded time (lambda_compat.resolve.source_metadata).

Offline: sdists are written here with the fixture index's generator (in-tree backend, no
network), served with --find-links; the fixture index itself for the foreign-arch case.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
import time
from pathlib import Path

import pytest

from conftest import INDEX, fixture_config, write_reqs
from lambda_compat.resolve import sdist_build
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.host.interpreters import find_interpreter
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.ui import RecordingUI

_spec = importlib.util.spec_from_file_location("make_index", INDEX / "make_index.py")
make_index = importlib.util.module_from_spec(_spec)
sys.modules["make_index"] = make_index  # dataclasses look their module up
_spec.loader.exec_module(make_index)

#: an in-tree backend that refuses to run on any Python but the one named in lcbuild.json
_GUARD = '''
import json, os, sys
sys.path.insert(0, os.path.dirname(__file__))
import lcbackend_real as _real
_want = json.load(open("lcbuild.json"))["only_python"]
def _check():
    got = "%d.%d" % sys.version_info[:2]
    if got != _want:
        raise RuntimeError("lc-guard: prepared by Python %s, the target is %s" % (got, _want))
def get_requires_for_build_wheel(config_settings=None):
    return []
def prepare_metadata_for_build_wheel(*a, **k):
    _check()
    return _real.prepare_metadata_for_build_wheel(*a, **k)
def build_wheel(*a, **k):
    _check()
    return _real.build_wheel(*a, **k)
'''


def write_sdist(where: Path, name: str, *, pkg_info_version: str = "2.1",
                dynamic=(), requires=(), only_python=None) -> Path:
    project = make_index.Project(name, "1.0", "a test sdist", requires_dist=list(requires))
    tree = make_index.sdist_tree(make_index.Sdist(project))
    base = f"{make_index.dist_name(name)}-1.0"
    meta = project.metadata().replace("Metadata-Version: 2.1",
                                      f"Metadata-Version: {pkg_info_version}")
    meta += "".join(f"Dynamic: {d}\n" for d in dynamic)
    tree[f"{base}/PKG-INFO"] = meta.encode()
    if only_python:
        import json
        config = json.loads(tree[f"{base}/lcbuild.json"])
        config["only_python"] = only_python
        tree[f"{base}/lcbuild.json"] = json.dumps(config).encode()
        tree[f"{base}/_backend/lcbackend_real.py"] = tree[f"{base}/_backend/lcbackend.py"]
        tree[f"{base}/_backend/lcbackend.py"] = _GUARD.encode()
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"{base}.tar.gz"
    path.write_bytes(make_index.gzip_stored(make_index.tar_bytes(tree)))
    return path


def links_config(cache: Path, links: Path) -> BuildConfig:
    pip = PipOptions(find_links=(str(links), str(INDEX / "files")), no_index=True,
                     isolated=True)
    return BuildConfig(cache_dir=cache, pip=pip, resolution_ttl=0)


def resolution_events(ui: RecordingUI):
    """Events up to the end of the resolution (the metadata step), as (name, data)."""
    out = []
    for name, data in ui.events:
        if name == "resolved":
            break
        out.append((name, data))
    return out


def other_python():
    """A CPython here whose version differs from the one running the tool (the host's)."""
    for version in ((3, 12), (3, 11), (3, 13), (3, 10)):
        if version != sys.version_info[:2] and find_interpreter(version, platform.machine()):
            return version
    return None


# --------------------------------------------------------------------------- unit

@pytest.mark.parametrize("text,static", [
    ("Metadata-Version: 2.2\nName: a\nVersion: 1\nRequires-Dist: b\n", True),
    ("Metadata-Version: 2.4\nName: a\nVersion: 1\nDynamic: Description\n", True),
    ("Metadata-Version: 2.1\nName: a\nVersion: 1\n", False),
    ("Metadata-Version: 2.2\nName: a\nVersion: 1\nDynamic: Requires-Dist\n", False),
    ("Metadata-Version: 2.3\nName: a\nVersion: 1\nDynamic: requires-python\n", False),
    ("Metadata-Version: 2.2\nName: a\nVersion: 1\nDynamic: Provides-Extra\n", False),
    ("Metadata-Version: x\nName: a\nVersion: 1\n", False),
    (None, False),
])
def test_pkg_info_is_the_metadata_only_when_pep_643_says_so(text, static):
    from lambda_compat.resolve import source_metadata
    assert source_metadata.is_static(text) is static


def test_the_compiler_less_marker_is_what_the_stand_in_compilers_print():
    from lambda_compat.resolve import source_metadata
    assert source_metadata.COMPILER_DISABLED in sdist_build._NO_COMPILER


def test_progress_lines_name_the_sdist_and_the_elapsed_time():
    from lambda_compat.ui import sdist_build_text
    assert sdist_build_text("sdist-build-start", {
        "sdist": "numpy-1.26.4.tar.gz", "interpreter": "CPython 3.13.0", "compiler": True}) \
        == "building numpy-1.26.4.tar.gz with CPython 3.13.0"
    assert sdist_build_text("sdist-build-progress", {
        "sdist": "numpy-1.26.4.tar.gz", "seconds": 150.2}) \
        == "still building numpy-1.26.4.tar.gz: 2m30s so far"
    assert sdist_build_text("sdist-build-done", {
        "sdist": "x-1.tar.gz", "ok": False, "seconds": 3}) == "build failed: x-1.tar.gz in 3s"
    assert sdist_build_text("resolved", {}) is None


def test_build_progress_ticks_while_the_build_runs():
    from lambda_compat.resolve import source_metadata
    events = []
    with source_metadata.build_progress(lambda k, **d: events.append((k, d)), "x-1.tar.gz",
                                        "CPython 3.12.1", True, every=0.05) as state:
        time.sleep(0.3)
        state["ok"] = True
    names = [k for k, _ in events]
    assert names[0] == "sdist-build-start" and names[-1] == "sdist-build-done"
    ticks = [d for k, d in events if k == "sdist-build-progress"]
    assert len(ticks) >= 2 and all(d["sdist"] == "x-1.tar.gz" for d in ticks)
    assert ticks[-1]["seconds"] > ticks[0]["seconds"]
    assert events[-1][1]["ok"] is True and not events[0][1]["compiler"]


# --------------------------------------------------------------------------- resolution

def test_static_pkg_info_is_read_without_building(tmp_path):
    links = tmp_path / "links"
    write_sdist(links, "lc-static-meta", pkg_info_version="2.2", requires=["lc-pure==1.1"])
    ui = RecordingUI()
    report = build_dependencies(tmp_path / "out", write_reqs(tmp_path, "lc-static-meta\n"),
                                "python3.12", ui=ui, config=links_config(tmp_path / "c", links),
                                architecture="arm64")
    seen = resolution_events(ui)
    assert ("sdist-metadata", {"sdist": "lc_static_meta-1.0.tar.gz", "source": "static"}) in seen
    assert not [n for n, _ in seen if n == "sdist-build-start"]
    # PKG-INFO's Requires-Dist was followed
    assert {d.name: d.version for d in report.distributions}["lc-pure"] == "1.1"


@pytest.mark.skipif(other_python() is None, reason="needs a CPython other than the tool's")
def test_metadata_is_prepared_by_the_targets_python_and_cached(tmp_path):
    version = other_python()
    runtime = f"python{version[0]}.{version[1]}"
    links = tmp_path / "links"
    write_sdist(links, "lc-guarded", dynamic=["Requires-Dist"],
                only_python=f"{version[0]}.{version[1]}")
    config = links_config(tmp_path / "c", links)
    arch = "x86_64" if platform.machine() == "x86_64" else "arm64"
    ui = RecordingUI()
    report = build_dependencies(tmp_path / "a", write_reqs(tmp_path, "lc-guarded\n"), runtime,
                                ui=ui, config=config, architecture=arch)
    d = {d.name: d for d in report.distributions}["lc-guarded"]
    assert d.ok, (d.reason, d.attempts)
    assert f"CPython {version[0]}.{version[1]}" in d.interpreter
    starts = [e for n, e in resolution_events(ui) if n == "sdist-build-start"]
    assert starts and starts[0]["sdist"] == "lc_guarded-1.0.tar.gz"
    assert f"CPython {version[0]}.{version[1]}" in starts[0]["interpreter"]
    # a second resolution takes the prepared metadata from the cache: no build for it
    again = RecordingUI()
    build_dependencies(tmp_path / "b", write_reqs(tmp_path, "lc-guarded\n"), runtime,
                       ui=again, config=config, architecture=arch)
    seen = resolution_events(again)
    assert ("sdist-metadata", {"sdist": "lc_guarded-1.0.tar.gz", "source": "cache"}) in seen
    assert not [n for n, _ in seen if n == "sdist-build-start"]


@pytest.mark.skipif(platform.machine() != "x86_64"
                    or find_interpreter((3, 13), "x86_64") is None,
                    reason="needs an x86_64 host with CPython 3.13")
def test_native_project_for_a_foreign_machine_is_no_build_environment_at_once(tmp_path):
    # lc-native 2.0: platform wheels only (none for cp313) and an sdist that needs a
    # compiler. For arm64 on this x86_64 host nothing is built, not even for metadata.
    ui = RecordingUI()
    started = time.monotonic()
    report = build_dependencies(tmp_path / "out", write_reqs(tmp_path, "lc-native==2.0\n"),
                                "python3.13", ui=ui,
                                config=fixture_config(tmp_path / "c", build_env="local"),
                                architecture="arm64")
    d = {d.name: d for d in report.distributions}["lc-native"]
    assert d.phase == "missing" and d.reason_code == "no-build-environment"
    assert d.reason.startswith("lc-native has native code")
    assert "aarch64" in d.reason and "x86_64" in d.reason
    assert not [n for n, _ in ui.events if n in ("sdist-build-start", "dist-start")]
    assert time.monotonic() - started < 60


def test_sdist_facts_are_read_once_per_content(tmp_path, monkeypatch):
    """PKG-INFO and the backend of an sdist are remembered by its sha256 (on disk with a
    cache dir): the archive is listed once, not by every target of a check."""
    from lambda_compat.resolve import source_metadata
    from lambda_compat.resolve.sdist_build import file_sha256
    sdist = write_sdist(tmp_path / "links", "lc-memo-meta", pkg_info_version="2.2")
    sha = file_sha256(sdist)
    first = source_metadata.read_sdist(sdist, sha, tmp_path / "c")
    assert first == source_metadata.read_sdist(sdist)           # the same answer as unremembered
    assert "Name: lc-memo-meta" in (first.pkg_info or "")
    assert (tmp_path / "c" / "metadata" / f"{sha}-sdist.json").is_file()
    listed = []
    real = source_metadata._read_sdist
    monkeypatch.setattr(source_metadata, "_read_sdist", lambda p: listed.append(p) or real(p))
    source_metadata._SDIST_INFO.clear()                         # a later process
    assert source_metadata.read_sdist(sdist, sha, tmp_path / "c") == first
    assert listed == []
    # an archive that cannot be read is not remembered as "no PKG-INFO"
    broken = tmp_path / "lc_broken-1.0.tar.gz"
    broken.write_bytes(b"not a tar")
    assert source_metadata.read_sdist(broken, "0" * 64, tmp_path / "c").pkg_info is None
    assert not (tmp_path / "c" / "metadata" / f"{'0' * 64}-sdist.json").exists()
