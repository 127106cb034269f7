"""``check FILE`` remembers each target's static proof of the bundle it builds (by the wheels'
sha256, the target's facts, the package registry and lambda-compat's code): the same check
again neither installs nor reads the bundle, unless an import proof has to run; anything that
decides the proof changed judges afresh; the report says which proofs were reused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_compat.check import lazy_bundle, static_memo
from lambda_compat.cli import main as cli
from lambda_compat.host import binfmt, sandbox
from lambda_compat.host.interpreters import probe
from lambda_compat.registry.runtimes import get_target, registry_dir
from lambda_compat.verify.static_check import SizeInfo, StaticReport
from lambda_compat.verify.wheels import Finding

from compat_tests.local_env import python_path
from conftest import INDEX, write_reqs

REUSED = "the static proof was reused from"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def installs(monkeypatch):
    """Every bundle a check installs (the lazy bundle's installs only)."""
    done = []
    real = lazy_bundle.install_and_swap

    def counting(wheels, directory, *a, **kw):
        done.append(directory.name)
        return real(wheels, directory, *a, **kw)

    monkeypatch.setattr(lazy_bundle, "install_and_swap", counting)
    return done


def _check(capsys, req, cache, *extra):
    code = cli.main(["check", str(req), "-i", (INDEX / "simple").as_uri(), "--isolated",
                     "--cache-dir", str(cache), "--format", "json", *map(str, extra)])
    return code, json.loads(capsys.readouterr().out)


def _same_but_notes(a, b):
    def strip(data):
        data = json.loads(json.dumps(data))
        data.pop("seconds", None)
        for t in data["targets"]:
            t.pop("seconds", None)
            (t.get("build") or {}).pop("seconds", None)
            t["notes"] = [n for n in t["notes"] if REUSED not in n]
        return data
    assert strip(a) == strip(b)


def test_same_check_reuses_the_static_proof_without_installing(capsys, tmp_path, installs):
    req = write_reqs(tmp_path, "lc-native\nlc-markers\nlc-glibc==2.0\n")
    args = ("--runtime", "3.12", "--arch", "x86_64", "--arch", "arm64", "--backend", "static")
    code, first = _check(capsys, req, tmp_path / "c", *args)
    assert sorted(installs) == ["task-python3.12-arm64", "task-python3.12-x86_64"]
    assert not any(REUSED in n for t in first["targets"] for n in t["notes"])
    installs.clear()
    code2, again = _check(capsys, req, tmp_path / "c", *args)
    assert code2 == code and installs == []
    assert all(any(REUSED in n for n in t["notes"]) for t in again["targets"])
    _same_but_notes(first, again)
    # --refresh judges afresh (and installs)
    _check(capsys, req, tmp_path / "c", *args, "--refresh")
    assert len(installs) == 2


def test_a_changed_registry_changes_the_key(tmp_path):
    registry = tmp_path / "registry"
    shutil.copytree(registry_dir(), registry)
    wheels = (("a-1-py3-none-any.whl", "0" * 64),)
    t = get_target("python3.12", "x86_64")
    shipped = static_memo.memo_key(wheels, t, None)
    assert static_memo.memo_key(wheels, t, registry) == shipped     # same bytes
    entry = sorted((registry / "packages").glob("*.yaml"))[0]
    entry.write_text(entry.read_text() + "\n# edited\n")
    assert static_memo.memo_key(wheels, t, registry) != shipped


@pytest.mark.skipif(not sandbox.bwrap_works(), reason="needs bwrap")
def test_an_import_proof_to_run_installs_the_remembered_bundle(capsys, tmp_path, installs):
    machine = binfmt.host_machine()
    local = next(((path, minor) for minor in (11, 12, 10, 13, 9)
                  if (path := python_path((3, minor), machine)) and probe(path)), None)
    if local is None:
        pytest.skip("no local CPython 3.9-3.13")
    arch = "arm64" if machine == "aarch64" else "x86_64"
    req = write_reqs(tmp_path, "lc-pure\n")
    args = ("--runtime", f"3.{local[1]}", "--arch", arch, "--backend", "host", "--python",
            local[0])
    code, first = _check(capsys, req, tmp_path / "c", *args)
    (t,) = first["targets"]
    assert code == 0 and t["proof"] == "host" and not t["dynamic"]["cached_from"], t["notes"]
    _check(capsys, req, tmp_path / "c", *args)          # both proofs remembered
    assert len(installs) == 1
    shutil.rmtree(tmp_path / "c" / "proofs")            # the import proof is not
    code, third = _check(capsys, req, tmp_path / "c", *args)
    (t,) = third["targets"]
    assert len(installs) == 2                           # installed for the imports
    assert code == 0 and t["proof"] == "host" and not t["dynamic"]["cached_from"]
    assert any(REUSED in n for n in t["notes"])
    assert [o["ok"] for o in t["dynamic"]["imports"]] == [True]


def test_key_is_the_same_in_every_process_and_changes_with_its_inputs():
    """Target facts hold sets: the key must not depend on the process's hash seed."""
    code = ("from lambda_compat.check.static_memo import memo_key;"
            "from lambda_compat.registry.runtimes import get_target;"
            "print(memo_key((('a-1-py3-none-any.whl', '0' * 64),), "
            "get_target('python3.12', 'arm64'), None))")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2", "3")}
    assert len(keys) == 1
    wheels = (("a-1-py3-none-any.whl", "0" * 64),)
    t = get_target("python3.12", "arm64")
    key = static_memo.memo_key(wheels, t, None)
    assert key == keys.pop().strip()
    assert static_memo.memo_key(wheels, get_target("python3.12", "x86_64"), None) != key
    assert static_memo.memo_key((("a-1-py3-none-any.whl", "1" * 64),), t, None) != key
    assert static_memo.memo_key(wheels + wheels, t, None) != key


def test_round_trip_and_no_report_naming_the_bundle_directory(tmp_path):
    t = get_target("python3.12", "x86_64")
    report = StaticReport(
        target=t, findings=(Finding("missing-library", "lc-native", "/var/task/x.so",
                                    "needs libfoo.so.1", "ship it", "warning"),),
        size=SizeInfo(10, None, (), (("lc-native", 10),)), distributions=())
    memo = static_memo.StaticMemo(tmp_path / "memo")
    memo.store("ab" * 32, report, "f" * 64, tmp_path / "task")
    back = memo.load("ab" * 32, t)
    assert back is not None and back.report == report and back.fingerprint == "f" * 64
    assert static_memo.StaticMemo(tmp_path / "memo", reuse=False).load("ab" * 32, t) is None
    naming = StaticReport(target=t, findings=(Finding(
        "bad-metadata", "x", str(tmp_path / "task" / "x.dist-info"), "m", "f"),),
        size=report.size, distributions=())
    memo.store("cd" * 32, naming, None, tmp_path / "task")
    assert memo.load("cd" * 32, t) is None
