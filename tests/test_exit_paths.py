"""Output guards and clean exits: `-o` never destroys what lambda-compat did not write;
SIGTERM/SIGHUP/SIGINT leave no staging, temporary directories or processes behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import INDEX, ROOT, write_reqs
from lambda_compat import errors
from lambda_compat.host import outputs
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.cli.main import main
from test_build_sandbox import (MARK, leftover_processes, make_sdist, needs_bwrap,
                                needs_python)

FIXTURE = ["-i", (INDEX / "simple").as_uri(), "--isolated"]


def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text("def handler(e, c):\n    return 1\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return write_reqs(tmp_path, "lc-pure==1.0\n")


@pytest.mark.parametrize("where", [".", "..", "project"])
def test_build_never_replaces_the_working_or_project_directory(tmp_path, monkeypatch, capsys,
                                                              where):
    req = project(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = str(tmp_path) if where == "project" else where
    for force in ([], ["--force"]):
        code = main(["build", "-r", str(req), "--runtime", "python3.11", "-o", out,
                     "--cache-dir", str(tmp_path / "cache"), *FIXTURE, *force])
        assert code == 2
        assert "refusing to write the output into" in capsys.readouterr().err
    assert (tmp_path / "app.py").is_file() and (tmp_path / ".git" / "HEAD").is_file()


def test_non_empty_foreign_directory_needs_force(tmp_path, monkeypatch, capsys):
    req = project(tmp_path)
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    args = ["build", "-r", str(req), "--runtime", "python3.11", "-o", str(foreign),
            "--cache-dir", str(tmp_path / "cache"), *FIXTURE]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "was not written by lambda-compat" in err and "--force" in err
    assert (foreign / "notes.txt").read_text() == "mine"
    assert main(args + ["--force"]) == 0
    assert not (foreign / "notes.txt").exists() and (foreign / "lc_pure").is_dir()
    # written by lambda-compat now: the next build replaces it without --force
    assert (foreign / outputs.MARKER).is_file()
    assert main(args) == 0
    # an empty directory is fine too
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(args[:-len(FIXTURE) - 4] + ["-o", str(empty), "--cache-dir",
                                             str(tmp_path / "cache"), *FIXTURE]) == 0


def test_stale_staging_of_a_killed_run_is_removed(tmp_path):
    req = project(tmp_path)
    dead = 2 ** 22 + 12345  # above pid_max's default: no such process
    stale = [tmp_path / f".out.lambda-compat-new-{dead}-abcd1234",
             tmp_path / "cache" / "tmp" / f"run-{dead}-xyz",
             tmp_path / "cache" / f"lc-build-{dead}-xyz"]
    for d in stale:
        (d / "sub").mkdir(parents=True)
    live = tmp_path / f".out.lambda-compat-new-{os.getppid()}-abcd1234"  # a running process
    live.mkdir()
    assert main(["build", "-r", str(req), "--runtime", "python3.11", "-o",
                 str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *FIXTURE]) == 0
    assert [d for d in stale if d.exists()] == []
    assert live.is_dir()


def _leftovers(tmp_path: Path) -> list:
    found = [p.name for p in tmp_path.iterdir() if ".lambda-compat-" in p.name]
    found += [p.name for p in (tmp_path / "cache" / "tmp").glob("run-*")]
    found += [p.name for p in (tmp_path / "cache").glob("lc-build-*")]
    return found


@pytest.mark.slow
@needs_bwrap
@needs_python
@pytest.mark.parametrize("sig,sandboxed", [(signal.SIGTERM, True), (signal.SIGHUP, True),
                                          (signal.SIGINT, True), (signal.SIGTERM, False)])
def test_signal_mid_build_leaves_nothing_behind(tmp_path, sig, sandboxed):
    mark = MARK + str(int(sig)) + str(int(sandboxed))
    make_sdist(tmp_path / "links", {"hang": "wheel", "mark": mark, "write": "/nonexistent",
                                    "read": "/nonexistent", "port": 9})
    req = write_reqs(tmp_path, "lc-evil==1.0\nlc-pure==1.0\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "resolver"), PIP_CONFIG_FILE=os.devnull)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from lambda_compat.cli.main import main; "
                               "sys.exit(main(sys.argv[1:]))",
         "build", "-r", str(req), "--runtime", "python3.11", "-o", str(tmp_path / "out"),
         "--cache-dir", str(tmp_path / "cache"), "--isolated", "--no-index",
         "-f", str(tmp_path / "links"), "-f", str(INDEX / "files")]
        + ([] if sandboxed else ["--no-build-sandbox"]),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not leftover_processes(mark):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the build never reached the hanging step"
            time.sleep(0.2)
        assert _leftovers(tmp_path), "the build should be under way"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + int(sig), err
    assert b"Traceback" not in err
    time.sleep(0.5)
    assert leftover_processes(mark) == []
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / "out").exists()


# -- --isolated: no pip configuration at all ------------------------------------------------

def _hostile_wheel(directory: Path) -> None:
    """lc-pure 9.9, offered only by the hostile configuration."""
    import zipfile
    directory.mkdir(parents=True, exist_ok=True)
    files = {"lc_pure/__init__.py": "HOSTILE = True\n",
             "lc_pure-9.9.dist-info/METADATA": "Metadata-Version: 2.1\nName: lc-pure\n"
                                               "Version: 9.9\n",
             "lc_pure-9.9.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                            "Root-Is-Purelib: true\nTag: py3-none-any\n"}
    files["lc_pure-9.9.dist-info/RECORD"] = "".join(f"{n},,\n" for n in files) + \
        "lc_pure-9.9.dist-info/RECORD,,\n"
    with zipfile.ZipFile(directory / "lc_pure-9.9-py3-none-any.whl", "w") as z:
        for name, text in files.items():
            z.writestr(name, text)


@pytest.fixture
def hostile_pip_config(tmp_path, monkeypatch):
    _hostile_wheel(tmp_path / "hostile")
    conf = tmp_path / "pip.conf"
    conf.write_text(f"[global]\nfind-links = {tmp_path / 'hostile'}\n"
                    f"index-url = {(INDEX / 'simple').as_uri()}\n")
    (tmp_path / "xdg" / "pip").mkdir(parents=True)
    (tmp_path / "xdg" / "pip" / "pip.conf").write_text(conf.read_text())
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "hostile"))
    monkeypatch.setenv("PIP_INDEX_URL", (INDEX / "simple").as_uri())
    return tmp_path / "hostile"


def test_isolated_ignores_pip_conf_and_pip_variables(tmp_path, hostile_pip_config, capsys):
    req = write_reqs(tmp_path, "lc-pure\n")
    base = ["build", "-r", str(req), "--runtime", "python3.11",
            "--cache-dir", str(tmp_path / "cache"), "-i", (INDEX / "simple").as_uri()]
    # not isolated: the configuration's find-links offer 9.9 (the test's premise)
    assert main(base + ["-o", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "lc_pure-9.9.dist-info").is_dir()
    assert main(base + ["-o", str(tmp_path / "b"), "--isolated", "--refresh"]) == 0
    assert (tmp_path / "b" / "lc_pure-1.1.dist-info").is_dir()


@pytest.mark.parametrize("other_source", [False, True])
def test_isolated_unreachable_index_is_exit_3(tmp_path, hostile_pip_config, other_source):
    # The hostile configuration's find-links would answer; with --isolated they must not
    # count, and a source named on the command line (-f) answering does not excuse the index.
    s = __import__("socket").socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    req = write_reqs(tmp_path, "lc-pure\n")
    pip = PipOptions(index_url=f"http://127.0.0.1:{port}/simple", isolated=True, retries=0,
                     find_links=(str(INDEX / "files"),) if other_source else ())
    with pytest.raises(errors.IndexUnreachable) as exc:
        build_dependencies(tmp_path / "o", req, "python3.11",
                           config=BuildConfig(cache_dir=tmp_path / "cache", pip=pip))
    assert exc.value.exit_code == 3
    assert "Could not reach the package index" in str(exc.value)
    assert f"127.0.0.1:{port}" in str(exc.value)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
@needs_bwrap
@needs_python
@pytest.mark.parametrize("sandboxed", [True, False])
def test_sigkill_takes_the_build_along_and_the_next_run_cleans_up(tmp_path, sandboxed):
    mark = MARK + ("91" if sandboxed else "92")  # `sleep MARK` must be a valid duration
    make_sdist(tmp_path / "links", {"hang": "wheel", "mark": mark, "write": "/nonexistent",
                                    "read": "/nonexistent", "port": 9})
    req = write_reqs(tmp_path, "lc-evil==1.0\nlc-pure==1.0\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "resolver"), PIP_CONFIG_FILE=os.devnull)
    argv = [sys.executable, "-c", "import sys; from lambda_compat.cli.main import main; "
                                  "sys.exit(main(sys.argv[1:]))",
            "build", "-r", str(req), "--runtime", "python3.11", "-o", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--isolated", "--no-index",
            "-f", str(tmp_path / "links"), "-f", str(INDEX / "files")]
    argv += [] if sandboxed else ["--no-build-sandbox"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "stderr.txt", "wb"))
    try:
        deadline = time.monotonic() + 120
        while not leftover_processes(mark):
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.2)
        proc.kill()  # SIGKILL: no handler runs in lambda-compat itself
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while leftover_processes(mark) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert leftover_processes(mark) == []
    finally:
        if proc.poll() is None:
            proc.kill()
    assert _leftovers(tmp_path)  # nothing could remove them ...
    (tmp_path / "requirements.txt").write_text("lc-pure==1.0\n")
    rerun = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert _leftovers(tmp_path) == []  # ... until the next run


def test_a_signal_stops_parallel_work_without_waiting_for_it():
    # `check` runs its targets on threads; SIGTERM while the main thread waits must kill
    # what the workers wait on and return at once (before: the pool waited for every build)
    import threading

    from lambda_compat.host import lifecycle

    mark = "31337.77"
    started = time.monotonic()

    def work(i):
        lifecycle.run(["sleep", mark], timeout=120)
        return i

    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(lifecycle.Terminated):
        with lifecycle.signals_raise():
            lifecycle.parallel_map(work, [1, 2, 3], 3)
    assert time.monotonic() - started < 20
    time.sleep(0.5)
    assert leftover_processes(mark) == []
    assert lifecycle.parallel_map(lambda x: x * 2, [1, 2, 3], 2) == [2, 4, 6]
