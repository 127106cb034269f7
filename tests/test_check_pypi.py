"""``lambda-compat check`` against real PyPI packages (network; builds and large downloads)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import jsonschema
import pytest

from lambda_compat.cli import main as cli

from lambda_compat.host import sandbox
from compat_tests.local_env import has_python

from check_helpers import ROOT, SCHEMA_PATH
from conftest import write_reqs

pytestmark = [pytest.mark.network, pytest.mark.slow]
SCHEMA = json.loads(SCHEMA_PATH.read_text())
PYPI = ["-i", "https://pypi.org/simple", "--isolated"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("check-pypi-cache")


def check_json(capsys, *argv):
    code = cli.main(["check", *map(str, argv), "--format", "json"])
    out, err = capsys.readouterr()
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    return code, data, err


def by_target(data):
    return {(t["runtime"], t["arch"]): t for t in data["targets"]}


def test_binary_wheels_are_compatible_on_both_arches(capsys, tmp_path, cache):
    req = write_reqs(tmp_path, "psycopg2-binary==2.9.11\norjson==3.13.0\n")
    code, data, err = check_json(capsys, req, "--runtime", "python3.12", *PYPI,
                                 "--cache-dir", cache)
    assert code == 0, (err, data)
    targets = by_target(data)
    assert set(targets) == {("python3.12", "x86_64"), ("python3.12", "arm64")}
    for t in targets.values():
        assert t["verdict"] == "compatible"
        assert {d["name"] for d in t["distributions"]} == {"psycopg2-binary", "orjson"}
        assert not [f for f in t["findings"] if f["severity"] == "error"]
    if has_python((3, 12), "x86_64"):
        x86 = targets[("python3.12", "x86_64")]
        # proved by importing, and the proof level says how
        assert x86["proof"] in ("host", "rootfs", "image")
        assert {i["module"] for i in x86["dynamic"]["imports"]} == {"psycopg2", "orjson"}
        assert all(i["ok"] for i in x86["dynamic"]["imports"])


@pytest.mark.skipif(shutil.which("pg_config") is None, reason="needs libpq-dev (pg_config)")
@pytest.mark.skipif(not has_python((3, 11), "x86_64"),
                    reason="needs a local CPython 3.11 to build psycopg2 from source")
def test_psycopg2_from_source_needs_libpq(capsys, tmp_path, cache):
    req = write_reqs(tmp_path, "psycopg2==2.9.9\n")
    code, data, err = check_json(capsys, req, "--runtime", "python3.11", "--arch", "x86_64",
                                 "--backend", "host", *PYPI, "--cache-dir", cache)
    assert code == 1, err
    (t,) = data["targets"]
    missing = [f for f in t["findings"] if f["code"] == "missing-system-library"]
    assert missing and all("libpq.so.5" in f["message"] for f in missing)
    assert missing[0]["distribution"] == "psycopg2" and missing[0]["severity"] == "error"
    assert t["verdict"] == "incompatible"
    # this host has libpq, but the confined host shows only the runtime's libraries: the
    # import fails as it does on Lambda (unconfined it would borrow the host's libpq)
    assert t["proof"] == "host"
    if sandbox.bwrap_works():
        assert t["disagreements"] == []
        assert any(f["code"] == "import-failed" and "libpq.so.5" in f["message"]
                   for f in t["findings"])
    if sandbox.bwrap_works():
        # in a Lambda-like root without libpq the import really fails
        code, data, err = check_json(capsys, req, "--runtime", "python3.11", "--arch",
                                     "x86_64", "--backend", "rootfs", "--rootfs", "standin",
                                     *PYPI, "--cache-dir", cache)
        (t,) = data["targets"]
        assert t["proof"] == "rootfs" and t["dynamic"]["standin"]
        (imp,) = [f for f in t["findings"] if f["code"] == "import-failed"]
        assert "libpq.so.5" in imp["message"]


def test_pip_target_bundle_for_arm64_is_judged_for_every_target(capsys, tmp_path):
    """fixtures/bench installed by `pip install --target` for python3.12/arm64 on this host:
    compatible on python3.12/arm64 and nowhere else."""
    bundle = tmp_path / "bundle"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--isolated",
                    "--disable-pip-version-check", "--target", str(bundle),
                    "--platform", "manylinux2014_aarch64", "--python-version", "3.12",
                    "--implementation", "cp", "--only-binary=:all:",
                    "-i", "https://pypi.org/simple",
                    "-r", str(ROOT / "fixtures" / "bench" / "requirements.txt")],
                   check=True, timeout=900)
    code, data, _ = check_json(capsys, bundle, "--include-deprecated", "--backend", "static",
                               "--date", "2026-11-21")
    assert code == 1
    verdicts = {k: t["verdict"] for k, t in by_target(data).items()}
    assert len(verdicts) == 14
    assert [k for k, v in verdicts.items() if v == "compatible"] == [("python3.12", "arm64")]
    t = by_target(data)
    codes = lambda key: {f["code"] for f in t[key]["findings"] if f["severity"] == "error"}
    assert "wrong-arch" in codes(("python3.12", "x86_64"))
    assert "python-abi-mismatch" in codes(("python3.13", "arm64"))
    # abi3 wheels (cryptography) are fine on a newer Python of the same arch
    crypto_313 = [f for f in t[("python3.13", "arm64")]["findings"]
                  if f["distribution"] == "cryptography" and f["severity"] == "error"]
    assert crypto_313 == []


def test_numpy_manylinux_2_28_on_python311_is_glibc_too_new(capsys, tmp_path):
    bundle = tmp_path / "bundle"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--isolated",
                    "--disable-pip-version-check", "--no-deps", "--target", str(bundle),
                    "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                    "--implementation", "cp", "--only-binary=:all:",
                    "-i", "https://pypi.org/simple", "numpy==2.3.4"],
                   check=True, timeout=900)
    code, data, _ = check_json(capsys, bundle, "--runtime", "python3.11", "--arch", "x86_64",
                               "--backend", "static")
    assert code == 1
    (t,) = data["targets"]
    glibc = [f for f in t["findings"] if f["code"] == "glibc-too-new"]
    assert glibc and all(f["distribution"] == "numpy" for f in glibc)
    assert any("GLIBC_2.27" in f["message"] or "GLIBC_2.28" in f["message"] for f in glibc)
