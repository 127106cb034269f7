"""The host backend from a virtual environment, and backends that cannot run (issue 11,
class 3): a venv's ``bin/python3.X`` (a link into another prefix, under /tmp here) works under
bwrap, and a backend that breaks is the target's environment problem, never a silent step
down to the static proof."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Tuple

import pytest

from lambda_compat.prove.backends import selection
from lambda_compat.prove.backends.host import HostBackend
from lambda_compat.prove.backends.rootfs import RootfsBackend

from lambda_compat.host import binfmt

from lambda_compat.check import dynamic as check_dynamic
from lambda_compat.check.inputs import CheckOptions
from lambda_compat.check.report import TargetResult
from lambda_compat.ui import NullUI

from lambda_compat.cli import main as cli

from lambda_compat import errors

from lambda_compat.host import sandbox
from lambda_compat.registry.runtimes import get_target
from lambda_compat.host.interpreters import Interpreter, find_interpreter, probe
from compat_tests.local_env import python_path

from check_helpers import make_dist

ROOT = Path(__file__).resolve().parent.parent
HOST = binfmt.host_machine()
HOST_ARCH = "arm64" if HOST == "aarch64" else "x86_64"
needs_bwrap = pytest.mark.skipif(not sandbox.bwrap_works(), reason="needs bwrap")


def _local() -> Tuple[str, Tuple[int, int]]:
    """A local CPython of this machine (found by the tests, not by the code under test)."""
    for minor in (11, 12, 10, 13, 9, 8):
        path = python_path((3, minor), HOST)
        if path is not None:
            return path, (3, minor)
    pytest.skip("no local CPython 3.8-3.13")


def _local_interpreter() -> Interpreter:
    """That CPython as lambda-compat describes it (the tests chose it, not the tool)."""
    path, _ = _local()
    interp = probe(path)
    assert interp is not None, path
    return interp


def _venv(tmp_path: Path, *, copies: bool) -> Path:
    path, version = _local()
    venv = tmp_path / ("venv-copies" if copies else "venv")
    subprocess.run([path, "-m", "venv", "--without-pip"]
                   + (["--copies"] if copies else []) + [str(venv)], check=True, timeout=120)
    v = "%d.%d" % version
    return venv / "bin" / f"python{v}"


@needs_bwrap
@pytest.mark.parametrize("copies", [False, True])
def test_a_venv_interpreter_under_tmp_gives_host_proof_under_bwrap(tmp_path, copies):
    python = _venv(tmp_path, copies=copies)  # under /tmp, which bwrap replaces by a tmpfs
    interp = find_interpreter(_local()[1], HOST, str(python))
    assert interp is not None
    target = get_target("python%d.%d" % interp.version[:2], HOST_ARCH)
    backend = selection.select_backend(target, "host", python=str(python))
    assert isinstance(backend, HostBackend) and backend.confine
    # the installation's own interpreter runs, not the venv's link or copy
    assert not backend.executable.startswith(str(tmp_path))
    task = tmp_path / "task"
    make_dist(task, "plain", files={"plain/__init__.py": "VALUE = 1\n"})
    result = backend.import_modules(task, [], [("plain", "plain")])
    assert result.error is None, result.error
    assert result.proof == "host" and result.ok


def test_a_backend_that_cannot_run_is_the_targets_environment_problem(capsys, tmp_path,
                                                                      monkeypatch):
    interp = _local_interpreter()
    target = get_target("python%d.%d" % interp.version[:2], HOST_ARCH)
    broken = Interpreter(path=str(tmp_path / "gone" / "python"), version=interp.version,
                         implementation="cpython", machine=HOST, free_threaded=False, pip=None)

    def select(t, requested="auto", **kw):
        return HostBackend(t, broken)

    monkeypatch.setattr(selection, "select_backend", select)
    make_dist(tmp_path / "task", "plain", files={"plain/__init__.py": "VALUE = 1\n"})
    code = cli.main(["check", str(tmp_path / "task"), "--runtime", target.runtime, "--arch",
                     HOST_ARCH, "--format", "json"])
    (t,) = json.loads(capsys.readouterr().out)["targets"]
    assert code == errors.EnvironmentProblem.exit_code
    assert t["proof"] == "static" and t["environment_problem"]
    assert "could not run" in t["environment_problem"]


def test_auto_reports_a_backend_that_did_not_prepare(tmp_path, monkeypatch):
    interp = _local_interpreter()
    target = get_target("python%d.%d" % interp.version[:2], HOST_ARCH)

    class Broken(RootfsBackend):
        def prepare(self):
            raise errors.BackendUnavailable("the stand-in root could not be built (test)")

    monkeypatch.setattr(selection, "_auto_standin_candidate",
                        lambda t, ui=None: (Broken(t, None, standin_kind="auto"), None))
    skipped = []
    chosen = selection.select_backend(target, "auto", engine="no-such-engine-lc",
                                     skipped=skipped)
    assert isinstance(chosen, HostBackend)
    assert skipped == ["rootfs: the stand-in root could not be built (test)"]
    result = TargetResult(target=target)
    make_dist(tmp_path / "task", "plain", files={"plain/__init__.py": "VALUE = 1\n"})
    from lambda_compat.verify import bundle as _bundle
    from lambda_compat.verify.static_check import StaticChecker
    view = _bundle.load(tmp_path / "task", [])
    check_dynamic.prove_dynamically(result, StaticChecker(view).check(target), tmp_path / "task",
                                    [], CheckOptions(engine="no-such-engine-lc"), NullUI())
    # the host still proved it: said in a note, not an environment problem
    assert result.proof == "host" and result.environment_problem is None
    assert any("could not be built (test)" in n for n in result.notes)
    # nothing else to fall back to: the target's environment problem
    monkeypatch.setattr(selection, "_host_candidate", lambda t, python: (None, "no host"))
    result = TargetResult(target=target)
    check_dynamic.prove_dynamically(result, StaticChecker(view).check(target), tmp_path / "task",
                                    [], CheckOptions(engine="no-such-engine-lc"), NullUI())
    assert result.proof == "static"
    assert "could not be built (test)" in result.environment_problem


@pytest.mark.network
@pytest.mark.slow
@needs_bwrap
def test_fresh_venv_install_gets_host_or_stronger_proof_for_its_own_python(tmp_path):
    """`python -m venv V && V/bin/pip install .`, then check for V's Python version, with
    V/bin first on PATH (as after `activate`): host or stronger proof, never static."""
    path, version = _local()
    venv = tmp_path / "v"
    subprocess.run([path, "-m", "venv", str(venv)], check=True, timeout=300)
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1")
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)], check=True,
                   timeout=900, env=env)
    task = tmp_path / "task"
    make_dist(task, "plain", files={"plain/__init__.py": "VALUE = 1\n"})
    runtime = "python%d.%d" % version
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    for backend in ("auto", "host"):
        proc = subprocess.run([str(venv / "bin" / "lambda-compat"), "check", str(task),
                               "--runtime", runtime, "--arch", HOST_ARCH, "--format", "json",
                               "--backend", backend], capture_output=True, text=True,
                              timeout=600, env=env)
        assert proc.returncode == 0, proc.stderr
        (t,) = json.loads(proc.stdout)["targets"]
        assert t["proof"] in ("host", "rootfs", "image"), t["notes"]
        assert t["environment_problem"] is None


def test_an_unconfined_host_proof_says_it_may_borrow_libraries(capsys, tmp_path, monkeypatch):
    interp = _local_interpreter()
    target = get_target("python%d.%d" % interp.version[:2], HOST_ARCH)
    monkeypatch.setattr(selection, "select_backend",
                        lambda t, requested="auto", **kw: HostBackend(
                            t, interp, confine=False))
    make_dist(tmp_path / "task", "plain", files={"plain/__init__.py": "VALUE = 1\n"})
    code = cli.main(["check", str(tmp_path / "task"), "--runtime", target.runtime, "--arch",
                     HOST_ARCH, "--format", "json"])
    (t,) = json.loads(capsys.readouterr().out)["targets"]
    assert code == 0 and t["proof"] == "host"
    assert "all of the host's libraries are visible" in t["backend"]
    assert any("may have borrowed" in n for n in t["notes"])
