"""``lambda-compat check``: targets, inputs, exit codes, text matrix, JSON against its schema,
requirements built offline from the fixture index, and the static/dynamic agreement."""

from __future__ import annotations

import ctypes.util
import json
import re
import zipfile

import jsonschema
import pytest

from lambda_compat.check import inputs as check

from lambda_compat.cli import main as cli

from lambda_compat.host import sandbox
from lambda_compat.build.install import install_all
from compat_tests.local_env import python_path

from check_helpers import (CHECK, INDEX_FILES, SCHEMA_PATH, add_symlink, make_dist,
                           snapshot, zip_dir)
from conftest import INDEX, write_reqs

SCHEMA = json.loads(SCHEMA_PATH.read_text())
TODAY = "2026-11-21"
HASHES = json.loads((INDEX / "hashes.json").read_text())
LC_NATIVE_312_X86 = INDEX_FILES / "lc_native-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"


def run(capsys, *argv):
    code = cli.main(["check", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--format", "json")
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    return code, data, err


@pytest.fixture
def native_bundle(tmp_path):
    task = tmp_path / "task"
    install_all([LC_NATIVE_312_X86, INDEX_FILES / "lc_pure-1.1-py3-none-any.whl"], task, 1)
    return task


def test_schema_is_valid():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


# --------------------------------------------------------------------------- targets

def test_default_targets_are_the_runtimes_still_accepting_updates():
    """Default set: every runtime whose functions can still be updated (block-update date not
    reached), deprecated ones included and flagged; the others are listed as skipped."""
    import datetime
    day = datetime.date(2026, 12, 2)
    chosen = check.select_targets(today=day)
    names = [s.target.name for s in chosen]
    assert names == [f"python3.{m}/{a}" for m in range(9, 15) for a in ("x86_64", "arm64")]
    assert {s.target.runtime for s in chosen if s.deprecated} == {"python3.9", "python3.10"}
    assert not any(s.blocked for s in chosen)
    (skipped,) = chosen.skipped
    assert (skipped.runtime, skipped.arches, skipped.reason) == (
        "python3.8", ("x86_64", "arm64"), "updates-blocked")
    assert skipped.block_function_update == datetime.date(2025, 3, 31)
    assert "can no longer be updated since 2025-03-31" in skipped.message
    # python3.10 until its block-update date (2027-01-15), python3.11 while deprecated
    assert "python3.10/x86_64" in [s.target.name for s in
                                   check.select_targets(today=datetime.date(2027, 1, 14))]
    later = check.select_targets(today=datetime.date(2027, 1, 15))
    assert "python3.10" not in {s.target.runtime for s in later}
    assert [s.runtime for s in later.skipped] == ["python3.8", "python3.10"]
    deprecated_311 = check.select_targets(["3.11"], today=datetime.date(2027, 7, 1))
    assert all(s.deprecated and not s.blocked for s in deprecated_311)
    every = check.select_targets(today=day, include_deprecated=True)
    assert len(every) == 14 and every.skipped == ()
    assert sum(s.blocked for s in every) == 2
    narrowed = check.select_targets(["3.8", "python3.13"], ["aarch64"], today=day)
    assert [(s.target.name, s.deprecated, s.blocked) for s in narrowed] == [
        ("python3.8/arm64", True, True), ("python3.13/arm64", False, False)]
    assert narrowed.skipped == ()


def test_matrix_over_default_targets(capsys, native_bundle):
    code, data, _ = run_json(capsys, native_bundle, "--backend", "static", "--date",
                             "2026-12-02")
    assert code == 1
    verdicts = {(t["runtime"], t["arch"]): t["verdict"] for t in data["targets"]}
    assert verdicts == {(f"python3.{m}", a): "incompatible"
                        for m in range(9, 15) for a in ("x86_64", "arm64")
                        } | {("python3.12", "x86_64"): "compatible"}
    assert all(t["proof"] == "static" and t["dynamic"] is None for t in data["targets"])
    by = {(t["runtime"], t["arch"]): {f["code"] for f in t["findings"]} for t in data["targets"]}
    assert by[("python3.12", "arm64")] == {"wrong-arch", "incompatible-tags"}
    assert by[("python3.13", "x86_64")] == {"python-abi-mismatch", "incompatible-tags"}
    assert "deprecated-runtime" in by[("python3.10", "x86_64")]
    assert "deprecated-runtime" not in by[("python3.11", "x86_64")]
    assert data["verdict"] == "incompatible" and data["input"]["kind"] == "directory"
    t312 = next(t for t in data["targets"] if t["runtime"] == "python3.12")
    assert [d["name"] for d in t312["distributions"]] == ["lc-native", "lc-pure"]
    assert t312["distributions"][0]["modules"] == ["lc_native"]
    assert t312["size"]["unzipped_limit"] == 262144000
    # what the default set left out, and why
    assert [(s["runtime"], s["arches"], s["reason"], s["block_function_update"])
            for s in data["skipped"]] == [("python3.8", ["x86_64", "arm64"],
                                           "updates-blocked", "2025-03-31")]


def test_text_lists_the_runtimes_left_out(capsys, native_bundle, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = run(capsys, native_bundle, "--backend", "static", "--arch", "x86_64",
                       "--date", "2026-12-02")
    assert code == 1
    assert ("not checked: python3.8 (x86_64): functions can no longer be updated since "
            "2025-03-31; name it with --runtime, or add --include-deprecated") in out
    assert "python3.10" in out.splitlines()[2] and "python3.11" in out.splitlines()[2]


def test_exit_0_when_compatible_everywhere_checked(capsys, native_bundle):
    code, data, _ = run_json(capsys, native_bundle, "--runtime", "python3.12", "--arch",
                             "x86_64", "--backend", "static")
    assert code == 0 and data["verdict"] == "compatible"
    assert data["targets"][0]["findings"] == []


def test_explicit_deprecated_runtime_is_checked_and_says_so(capsys, native_bundle):
    code, data, _ = run_json(capsys, native_bundle, "--runtime", "python3.8", "--arch",
                             "x86_64", "--backend", "static", "--date", TODAY)
    (t,) = data["targets"]
    assert t["deprecated"] is True and t["updates_blocked"] is True
    assert any(f["code"] == "deprecated-runtime" and f["severity"] == "warning"
               and "can no longer be updated (since 2025-03-31)" in f["message"]
               for f in t["findings"])
    assert data["skipped"] == []


# --------------------------------------------------------------------------- text

def test_text_matrix(capsys, native_bundle, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    code, out, _ = run(capsys, native_bundle, "--backend", "static", "--runtime", "3.12",
                       "--runtime", "3.13", "--arch", "x86_64")
    assert code == 1
    assert "\033[" not in out
    lines = out.splitlines()
    head = next(i for i, l in enumerate(lines) if "python3.12" in l and "python3.13" in l)
    assert re.split(r"\s+", lines[head + 1].strip()) == ["x86_64", "x86_64"]
    row = next(l for l in lines if l.startswith("lc-native 1.0"))
    assert re.split(r"\s{2,}", row.strip())[1:] == ["ok", "FAIL"]
    verdict = next(l for l in lines if l.startswith("verdict"))
    assert re.split(r"\s+", verdict.strip())[1:] == ["compatible", "incompatible"]
    proof = next(l for l in lines if l.startswith("proof"))
    assert re.split(r"\s+", proof.strip())[1:] == ["static", "static"]
    assert "python-abi-mismatch on python3.13/x86_64" in out
    assert "fix:" in out
    assert "1 of 2 targets compatible: python3.12/x86_64" in out


def test_colour_only_when_forced(capsys, native_bundle, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    _, out, _ = run(capsys, native_bundle, "--backend", "static", "--runtime", "3.13",
                    "--arch", "x86_64")
    assert "\033[31m" in out
    monkeypatch.setenv("NO_COLOR", "1")
    _, out, _ = run(capsys, native_bundle, "--backend", "static", "--runtime", "3.13",
                    "--arch", "x86_64")
    assert "\033[" not in out


# --------------------------------------------------------------------------- bad input

def test_bad_inputs_exit_2_without_traceback(capsys, tmp_path):
    code, out, err = run(capsys, tmp_path / "missing")
    assert code == 2 and "no such file" in err and "Traceback" not in err
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    code, _, err = run(capsys, bad, "--backend", "static")
    assert code == 2 and "broken.zip" in err and "Traceback" not in err
    code, _, err = run(capsys, tmp_path, "--runtime", "python3.21")
    assert code == 2 and "python3.12" in err  # a suggestion
    code, _, err = run(capsys, tmp_path, "--arch", "mips")
    assert code == 2 and "arm64" in err
    code, _, err = run(capsys)
    assert code == 2 and "Nothing to check" in err


def test_empty_bundle_is_incompatible(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, data, _ = run_json(capsys, empty, "--runtime", "3.12", "--arch", "x86_64",
                             "--backend", "static")
    assert code == 1
    assert [f["code"] for f in data["targets"][0]["findings"]] == ["empty-bundle"]


def test_zip_with_escaping_entries(capsys, tmp_path):
    z = tmp_path / "function.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("app.py", "")
        zf.writestr("../../escape.py", "")
        add_symlink(zf, "lib/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")
    code, data, _ = run_json(capsys, z, "--runtime", "3.12", "--arch", "x86_64",
                             "--backend", "static")
    assert code == 1
    found = [(f["code"], f["file"]) for f in data["targets"][0]["findings"]]
    assert sorted(found) == [("unsafe-path", "../../escape.py"), ("unsafe-path", "lib/libc.so.6")]
    assert not list(tmp_path.parent.rglob("escape.py"))
    assert data["input"]["kind"] == "zip"
    assert data["targets"][0]["size"]["zip_bytes"] == z.stat().st_size


def test_deployment_zip_and_layer_zip(capsys, tmp_path):
    task = tmp_path / "task"
    (task).mkdir()
    (task / "handler.py").write_text("import lc_native\n")
    layer = tmp_path / "layer"
    install_all([LC_NATIVE_312_X86], layer / "python", 1)
    zf = zip_dir(task, tmp_path / "function.zip")
    lz = zip_dir(layer, tmp_path / "layer.zip")
    code, data, _ = run_json(capsys, zf, "--layer", lz, "--runtime", "3.12", "--arch",
                             "x86_64", "--backend", "static")
    assert code == 0
    (t,) = data["targets"]
    assert t["distributions"][0]["location"] == "/opt/python"
    assert t["distributions"][0]["origin"] == "layer 1 (layer.zip)"
    assert t["size"]["layer_zip_bytes"] == [lz.stat().st_size]
    # only layers
    code, data, _ = run_json(capsys, "--layer", lz, "--runtime", "3.12", "--arch",
                             "arm64", "--backend", "static")
    assert code == 1 and data["input"]["kind"] == "layers"


def test_output_file_is_written_atomically_and_survives_a_failed_run(capsys, tmp_path,
                                                                        native_bundle):
    report = tmp_path / "report.json"
    code, _, _ = run(capsys, native_bundle, "--runtime", "3.12", "--arch", "x86_64",
                     "--backend", "static", "--format", "json", "-o", report)
    assert code == 0
    first = report.read_text()
    jsonschema.validate(json.loads(first), SCHEMA)
    assert report.stat().st_mode & 0o044 == 0o044  # readable like any file, not mkstemp's 0600
    code, out, _ = run(capsys, tmp_path / "missing", "-o", report)
    assert code == 2 and report.read_text() == first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


def test_check_never_writes_into_the_bundle(capsys, native_bundle):
    before = snapshot(native_bundle)
    run(capsys, native_bundle, "--runtime", "3.12", "--arch", "x86_64")
    assert snapshot(native_bundle) == before


# --------------------------------------------------------------------------- requirements

def _index_args(cache):
    return ["-i", (INDEX / "simple").as_uri(), "--isolated", "--cache-dir", cache]


def test_requirements_are_built_per_target_and_checked(capsys, tmp_path, shared_cache):
    req = write_reqs(tmp_path, "lc-native\nlc-markers\n")
    code, data, _ = run_json(capsys, req, "--runtime", "3.12", "--arch", "x86_64",
                             "--arch", "arm64", "--backend", "static", *_index_args(shared_cache))
    assert code == 0, data
    dists = {t["arch"]: [d["name"] for d in t["distributions"]] for t in data["targets"]}
    assert dists == {"x86_64": ["lc-markers", "lc-native", "lc-pure"],
                     "arm64": ["lc-arm-only", "lc-markers", "lc-native", "lc-pure"]}
    assert all(t["build"]["status"] == "built" for t in data["targets"])
    assert data["input"]["kind"] == "requirements"


def test_requirements_missing_for_one_target(capsys, tmp_path, shared_cache):
    req = write_reqs(tmp_path, "lc-glibc==2.0\n")
    code, data, _ = run_json(capsys, req, "--runtime", "3.11", "--runtime", "3.12",
                             "--arch", "x86_64", "--backend", "static",
                             *_index_args(shared_cache))
    assert code == 1
    t311, t312 = data["targets"]
    assert t312["verdict"] == "compatible"
    assert t311["verdict"] == "incompatible"
    (f,) = [f for f in t311["findings"] if f["severity"] == "error"]
    assert f["code"] == "glibc-too-new" and f["distribution"] == "lc-glibc"
    assert t311["build"]["missing"][0]["name"] == "lc-glibc"


def test_hash_mismatch_on_one_target_is_its_verdict(capsys, tmp_path, shared_cache):
    """--require-hashes listing the x86_64 wheel only: arm64 gets a hash-mismatch finding
    (file, expected, actual), x86_64 its normal verdict, exit 1, in JSON and in text."""
    x86 = "lc_hashes-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    arm = "lc_hashes-1.0-cp312-cp312-manylinux_2_17_aarch64.whl"
    req = write_reqs(tmp_path, f"--require-hashes\nlc-hashes==1.0 --hash=sha256:{HASHES[x86]}\n")
    args = [req, "--runtime", "3.12", "--arch", "x86_64", "--arch", "arm64",
            "--backend", "static", *_index_args(shared_cache)]
    code, data, _ = run_json(capsys, *args)
    assert code == 1
    t = {x["arch"]: x for x in data["targets"]}
    assert t["x86_64"]["verdict"] == "compatible"
    assert t["arm64"]["verdict"] == "incompatible"
    (f,) = t["arm64"]["findings"]
    assert (f["code"], f["distribution"], f["file"], f["severity"]) == (
        "hash-mismatch", "lc-hashes", arm, "error")
    assert f"expected sha256:{HASHES[x86]}" in f["message"]
    assert f"actual sha256:{HASHES[arm]}" in f["message"]
    code, out, _ = run(capsys, *args)
    assert code == 1 and "hash-mismatch on python3.12/arm64" in out


def test_requirements_file_errors_are_exit_2(capsys, tmp_path, shared_cache):
    req = write_reqs(tmp_path, "lc-native ==== 1\n")
    code, _, err = run(capsys, "-r", req, "--runtime", "3.12", "--arch", "x86_64",
                       "--backend", "static", *_index_args(shared_cache))
    assert code == 2 and "requirements.txt:1" in err


# --------------------------------------------------------------------------- dynamic proof

def _host_python(version):
    return python_path(version, "x86_64")


needs_py312 = pytest.mark.skipif(_host_python((3, 12)) is None,
                                 reason="no local CPython 3.12 for the host backend")


@needs_py312
def test_import_failure_that_static_missed_is_a_disagreement(capsys, tmp_path):
    make_dist(tmp_path, "grumpy", files={
        "grumpy/__init__.py": "raise RuntimeError('needs DATABASE_URL at import time')\n"})
    code, data, _ = run_json(capsys, tmp_path, "--runtime", "3.12", "--arch", "x86_64",
                             "--backend", "host")
    assert code == 1
    (t,) = data["targets"]
    assert t["proof"] == "host" and t["verdict"] == "incompatible"
    assert [f["code"] for f in t["findings"]] == ["import-failed"]
    (d,) = t["disagreements"]
    assert (d["distribution"], d["static"], d["dynamic"]) == ("grumpy", "ok", "failed")
    assert "DATABASE_URL" in t["dynamic"]["imports"][0]["error"]


@needs_py312
@pytest.mark.skipif(ctypes.util.find_library("pq") is None, reason="host has no libpq5")
@pytest.mark.skipif(not sandbox.bwrap_works(), reason="needs bwrap to confine the host")
def test_host_import_does_not_borrow_the_hosts_libpq(capsys, tmp_path):
    make_dist(tmp_path, "pqmod", files={"_pqmod.abi3.so": CHECK / "_pqmod.abi3.so"},
              tags=["cp39-abi3-manylinux_2_17_x86_64"])
    code, data, _ = run_json(capsys, tmp_path, "--runtime", "3.12", "--arch", "x86_64",
                             "--backend", "host")
    (t,) = data["targets"]
    # this host has libpq, Lambda has not: the confined host shows only the runtime's
    # libraries, so the import fails here as it does on Lambda, and both proofs agree
    (imp,) = t["dynamic"]["imports"]
    assert not imp["ok"] and "libpq.so.5" in imp["error"]
    assert code == 1 and t["verdict"] == "incompatible" and t["proof"] == "host"
    assert sorted(f["code"] for f in t["findings"]) == ["import-failed",
                                                        "missing-system-library"]
    assert t["disagreements"] == []
    assert "only the interpreter's and the runtime's libraries" in t["backend"]


@needs_py312
def test_host_import_that_works_does_not_overrule_a_static_error(capsys, tmp_path):
    # Requires-Python excludes 3.12: a static error, although the module imports
    make_dist(tmp_path, "futurist", files={"futurist/__init__.py": "X = 1\n"},
              requires_python=">=3.13")
    code, data, _ = run_json(capsys, tmp_path, "--runtime", "3.12", "--arch", "x86_64",
                             "--backend", "host")
    (t,) = data["targets"]
    assert t["dynamic"]["imports"][0]["ok"]
    assert code == 1 and t["verdict"] == "incompatible" and t["proof"] == "host"
    assert [f["code"] for f in t["findings"]] == ["requires-python"]
    (d,) = t["disagreements"]
    assert (d["static"], d["dynamic"]) == ("error", "ok")
    assert "static finding stands" in d["detail"]
    code, out, _ = run(capsys, tmp_path, "--runtime", "3.12", "--arch", "x86_64",
                       "--backend", "host")
    assert "Static and dynamic proof disagree" in out


def test_explicit_backend_that_cannot_run_is_exit_3_with_a_report(capsys, native_bundle):
    # no arm64 interpreter on an x86_64 host: the host backend cannot prove arm64
    code, data, err = run_json(capsys, native_bundle, "--runtime", "3.12", "--arch", "arm64",
                               "--backend", "host")
    assert code == 3
    (t,) = data["targets"]
    assert t["proof"] == "static" and t["environment_problem"]


@pytest.mark.slow
@pytest.mark.skipif(_host_python((3, 12)) is None, reason="no local CPython 3.12")
def test_rootfs_standin_without_libpq_fails_the_import(capsys, tmp_path):
    from lambda_compat.host import sandbox
    if not sandbox.bwrap_works():
        pytest.skip("bwrap not installed")
    make_dist(tmp_path, "pqmod", files={"_pqmod.abi3.so": CHECK / "_pqmod.abi3.so"},
              tags=["cp39-abi3-manylinux_2_17_x86_64"])
    code, data, _ = run_json(capsys, tmp_path, "--runtime", "3.12", "--arch", "x86_64",
                             "--backend", "rootfs", "--rootfs", "standin")
    assert code == 1
    (t,) = data["targets"]
    assert t["proof"] == "rootfs" and t["dynamic"]["standin"]
    (imp,) = t["dynamic"]["imports"]
    assert not imp["ok"] and "libpq.so.5" in imp["error"]
    assert sorted(f["code"] for f in t["findings"]) == ["import-failed",
                                                       "missing-system-library"]
    assert t["disagreements"] == []  # both proofs agree: it does not import on Lambda
    code, out, _ = run(capsys, tmp_path, "--runtime", "3.12", "--arch", "x86_64",
                       "--backend", "rootfs", "--rootfs", "standin")
    assert "rootfs*" in out and "stand-in" in out


def test_output_to_a_pipe_writes_into_it_and_never_replaces_it(capsys, tmp_path,
                                                                native_bundle):
    # -o /dev/stdout, /dev/null, a FIFO: written to, not replaced by a regular file (replacing
    # /dev/null broke everything else on the machine that read it).
    import os
    import stat
    import threading

    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, _ = run(capsys, native_bundle, "--runtime", "3.12", "--arch", "x86_64",
                     "--backend", "static", "--format", "json", "-o", fifo)
    reader.join(timeout=30)
    assert code == 0
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    jsonschema.validate(json.loads(received[0]), SCHEMA)
    code, _, err = run(capsys, native_bundle, "--runtime", "3.12", "--backend", "static",
                       "-o", tmp_path)
    assert code == 2 and "is a directory" in err
