"""Real PyPI: the reason `check` gives for a distribution it cannot install is the real cause,
and it comes in bounded time (issue 11, classes 6 and 7)."""

from __future__ import annotations

import json
import os
import platform
import time

import jsonschema
import pytest

from lambda_compat.cli import main as cli
from compat_tests.local_env import has_python

from check_helpers import SCHEMA_PATH
from conftest import write_reqs

pytestmark = pytest.mark.network
SCHEMA = json.loads(SCHEMA_PATH.read_text())
PYPI = ["-i", "https://pypi.org/simple", "--isolated", "--backend", "static"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("reasons-pypi-cache")


def check_one(capsys, tmp_path, cache, requirement, runtime, arch, *extra):
    req = write_reqs(tmp_path, requirement + "\n")
    started = time.monotonic()
    code = cli.main(["check", str(req), "--runtime", runtime, "--arch", arch, *PYPI,
                     "--cache-dir", str(cache), "--format", "json", *extra])
    seconds = time.monotonic() - started
    out, _ = capsys.readouterr()
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    (target,) = data["targets"]
    errors = [f for f in target["findings"] if f["severity"] == "error"]
    return code, target, errors, seconds


@pytest.mark.skipif(platform.machine() != "x86_64", reason="an x86_64 host")
def test_numpy_1264_for_arm64_python313_is_no_build_environment_within_a_minute(
        capsys, tmp_path, cache):
    # With local build environments only (no target root: one would build numpy for
    # aarch64 in tens of minutes under qemu-user), the answer comes at once.
    code, target, errors, seconds = check_one(capsys, tmp_path, cache, "numpy==1.26.4",
                                              "python3.13", "arm64", "--build-env", "local")
    assert code == 1 and target["verdict"] == "incompatible"
    (f,) = errors
    assert (f["code"], f["distribution"]) == ("no-build-environment", "numpy")
    assert f["message"].startswith("numpy has native code")
    assert seconds < 60, f"{seconds:.0f} s"


def test_numpy_234_on_python39_is_requires_python(capsys, tmp_path, cache):
    code, target, errors, _ = check_one(capsys, tmp_path, cache, "numpy==2.3.4",
                                        "python3.9", "x86_64")
    assert code == 1
    (f,) = errors
    assert f["code"] == "requires-python"
    assert f["message"].startswith("numpy 2.3.4 requires Python >=3.11")
    assert "pin numpy==2.0." in f["fix"]


def _host_glibc():
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
        return tuple(int(x) for x in version.split(".")[:2])
    except (ValueError, OSError, AttributeError):
        return None


@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.skipif(platform.machine() != "x86_64" or not has_python((3, 13), "x86_64")
                    or (_host_glibc() or (0, 0)) <= (2, 34),
                    reason="an x86_64 host with CPython 3.13 and a glibc newer than 2.34")
def test_numpy_1264_built_for_python313_is_refused_for_glibc_once(capsys, tmp_path, cache):
    """No cp313 wheel: numpy is built once, with CPython 3.13 (never with the tool's own
    Python for its metadata), and the wheel built here needs this host's newer glibc."""
    code, target, errors, seconds = check_one(capsys, tmp_path, cache, "numpy==1.26.4",
                                              "python3.13", "x86_64")
    assert code == 1
    (f,) = errors
    assert f["code"] == "glibc-too-new", f
    assert f["message"].startswith("numpy 1.26.4 was built here for python3.13/x86_64")
    assert "GLIBC_2." in f["message"]
