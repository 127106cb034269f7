"""A failed build is remembered for the resolution cache's lifetime, and only for identical
inputs (resolve/failed_builds.py); a failed resolution likewise (resolve/cache.py)."""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import fixture_config, write_reqs
from compat_tests.local_env import has_python
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.registry.runtimes import get_target
from lambda_compat.resolve import failed_builds
from lambda_compat.resolve.engine import PipOptions
from lambda_compat.resolve.sdist_build import BuildResult
from lambda_compat.ui import RecordingUI


@dataclass(frozen=True)
class CountingEnv:
    """A build environment that fails (or times out) and counts its builds."""

    calls: list
    timed_out: bool = False
    kind: str = "local"
    python_version: tuple = (3, 12)
    machine: str = "x86_64"
    key: str = "counting"

    def describe(self) -> str:
        return "a counting environment"

    def build_wheel(self, source, source_key, *, cache_dir, pip, no_compiler, timeout, cwd,
                    sandbox):
        self.calls.append((source_key, no_compiler, timeout))
        log = Path(cache_dir) / "build.log"
        log.write_text("error: it does not build\n")
        return BuildResult(False, None, log, self.describe(), no_compiler,
                           error_tail="error: it does not build", timed_out=self.timed_out)

    def to_spec(self):
        return {"kind": self.kind}


def request(tmp_path, **kw):
    base = dict(cache_dir=tmp_path, pip=PipOptions(), no_compiler=False, timeout=60.0,
                cwd=tmp_path, sandbox=True)
    base.update(kw)
    return failed_builds.BuildRequest(**base)


def test_the_same_failed_build_is_not_repeated_within_the_lifetime(tmp_path):
    sdist = tmp_path / "p-1.0.tar.gz"
    sdist.write_bytes(b"not really")
    calls: list = []
    env = CountingEnv(calls)
    first = failed_builds.build(env, sdist, "sha-a", request(tmp_path), ttl=600)
    again = failed_builds.build(env, sdist, "sha-a", request(tmp_path), ttl=600)
    assert len(calls) == 1
    assert not first.cached and again.cached and not again.ok
    assert again.error_tail.startswith("(the same build failed ")
    assert "--refresh builds it again" in again.error_tail
    assert again.error_tail.endswith("error: it does not build")
    assert again.log == first.log and again.interpreter == first.interpreter
    # any input that decides the build builds again
    failed_builds.build(env, sdist, "sha-b", request(tmp_path), ttl=600)          # source
    failed_builds.build(env, sdist, "sha-a", request(tmp_path, timeout=120), ttl=600)
    failed_builds.build(env, sdist, "sha-a", request(tmp_path, no_compiler=True), ttl=600)
    failed_builds.build(env, sdist, "sha-a", request(tmp_path, pip=PipOptions(pre=True)),
                        ttl=600)
    failed_builds.build(replace(env, key="other"), sdist, "sha-a", request(tmp_path), ttl=600)
    assert len(calls) == 6
    # --refresh (ttl 0): built again, and nothing is read
    failed_builds.build(env, sdist, "sha-a", request(tmp_path), ttl=0)
    assert len(calls) == 7


def test_a_remembered_failure_expires(tmp_path):
    sdist = tmp_path / "p-1.0.tar.gz"
    sdist.write_bytes(b"x")
    calls: list = []
    env = CountingEnv(calls, timed_out=True)
    failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    memo = next((tmp_path / "failed-builds").glob("*.json"))
    data = json.loads(memo.read_text())
    assert data["timed_out"] is True   # remembered with the limit it ran out of
    data["created"] = time.time() - 601
    memo.write_text(json.dumps(data))
    failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    assert len(calls) == 2
    again = failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    assert len(calls) == 2 and again.timed_out


def test_a_local_project_directory_is_never_remembered(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    calls: list = []
    env = CountingEnv(calls)
    for _ in range(2):
        failed_builds.build(env, project, "dir-123-d", request(tmp_path), ttl=600)
    assert len(calls) == 2
    assert not (tmp_path / "failed-builds").exists()


def test_a_corrupt_memo_is_ignored(tmp_path):
    sdist = tmp_path / "p-1.0.tar.gz"
    sdist.write_bytes(b"x")
    calls: list = []
    env = CountingEnv(calls)
    failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    next((tmp_path / "failed-builds").glob("*.json")).write_text("{not json")
    failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    assert len(calls) == 2


def pip_ran(ui: RecordingUI) -> bool:
    """The pip engine's events (it stops without "resolved" when a requirement fails)."""
    return any(name.startswith("pip-") for name in ui.names())


needs_311 = pytest.mark.skipif(not has_python((3, 11), platform.machine()),
                               reason="no CPython 3.11 on this machine")


@needs_311
def test_builder_does_not_repeat_a_failed_build_and_refresh_does(tmp_path):
    # lc-needs-compiler has a required C extension: for arm64 with local environments only,
    # its one possible build (without a compiler) fails, while pip reads its metadata.
    config = replace(fixture_config(tmp_path / "cache"), build_env="local",
                     allow_missing=True)
    req = write_reqs(tmp_path, "lc-needs-compiler==1.0\n")
    first = build_dependencies(tmp_path / "a", req, "python3.11", config=config,
                               architecture="arm64")
    d1 = {d.name: d for d in first.distributions}["lc-needs-compiler"]
    assert d1.phase == "missing" and d1.reason_code == "no-build-environment"
    logs = sorted((tmp_path / "cache" / "logs").glob("lc_needs_compiler-*-nocc.log"))
    assert len(logs) == 1
    stamp = logs[0].stat().st_mtime_ns
    ui = RecordingUI()
    second = build_dependencies(tmp_path / "b", req, "python3.11", config=config,
                                architecture="arm64", ui=ui)
    d2 = {d.name: d for d in second.distributions}["lc-needs-compiler"]
    assert (d2.phase, d2.reason_code, d2.reason, d2.attempts) == \
        (d1.phase, d1.reason_code, d1.reason, d1.attempts)
    assert not pip_ran(ui)   # the failed resolution was reused
    assert logs[0].stat().st_mtime_ns == stamp  # and nothing was built again
    # without the resolution's memory, pip runs again, but not the failed build
    shutil.rmtree(tmp_path / "cache" / "resolutions")
    again = RecordingUI()
    repeat = build_dependencies(tmp_path / "b2", req, "python3.11", config=config,
                                architecture="arm64", ui=again)
    assert pip_ran(again)
    assert logs[0].stat().st_mtime_ns == stamp
    d = {d.name: d for d in repeat.distributions}["lc-needs-compiler"]
    assert (d.phase, d.reason_code) == (d1.phase, d1.reason_code)
    assert any("the same build failed" in a for a in d.attempts), d.attempts
    stored = [a for f in (tmp_path / "cache" / "resolutions").glob("*.json")
              for p in json.loads(f.read_text())["passes"]
              for src in p["sources"].values() for a in src["attempts"]]
    assert stored and all(a["remembered"] for a in stored), stored
    # --refresh: resolved again; the failed build is not taken from memory either
    fresh = RecordingUI()
    third = build_dependencies(tmp_path / "c", req, "python3.11", architecture="arm64",
                               config=replace(config, resolution_ttl=0, failure_ttl=0),
                               ui=fresh)
    assert pip_ran(fresh)
    assert logs[0].stat().st_mtime_ns != stamp
    d3 = {d.name: d for d in third.distributions}["lc-needs-compiler"]
    assert (d3.phase, d3.reason_code) == (d1.phase, d1.reason_code)
    assert not any("the same build failed" in a for a in d3.attempts)



def test_refresh_forgets_failed_builds_and_resolutions():
    import argparse

    from lambda_compat.cli import options

    parser = argparse.ArgumentParser()
    options.add_resolution_options(parser)
    parser.add_argument("--python")  # (added by each subcommand)
    plain = options.build_config(parser.parse_args([]))
    assert plain.resolution_ttl == 600 and plain.failure_ttl == 86400
    fresh = options.build_config(parser.parse_args(["--refresh"]))
    assert fresh.resolution_ttl == 0 and fresh.failure_ttl == 0


def test_another_lambda_compat_builds_again(tmp_path, monkeypatch):
    # a failure remembered by other code (a release, or a fix between releases) is not ours
    from lambda_compat._version import __version__, code_fingerprint
    from lambda_compat.resolve import cache as resolution_cache
    assert code_fingerprint().startswith(__version__ + "+")
    sdist = tmp_path / "p-1.0.tar.gz"
    sdist.write_bytes(b"x")
    calls: list = []
    env = CountingEnv(calls)
    failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    assert len(calls) == 1
    req = write_reqs(tmp_path, "lc-pure==1.0\n")
    target = get_target("python3.12", "x86_64")
    before = resolution_cache.key(req, target, PipOptions())
    real = code_fingerprint
    # other code outside the build modules (how pip is driven, how bundles are checked):
    # resolved again, but the failing build is not repeated
    monkeypatch.setattr(failed_builds, "code_fingerprint",
                        lambda modules=None: "0.1.0+other" if modules is None else real(modules))
    monkeypatch.setattr(resolution_cache, "code_fingerprint", lambda: "0.1.0+other")
    failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    assert len(calls) == 1
    assert resolution_cache.key(req, target, PipOptions()) != before
    # other build code: built again
    monkeypatch.setattr(failed_builds, "code_fingerprint", lambda modules=None: "0.1.0+other")
    failed_builds.build(env, sdist, "sha", request(tmp_path), ttl=600)
    assert len(calls) == 2


def _package_imports(root: Path, module: str) -> set:
    """lambda-compat modules (paths relative to the package) that ``module`` imports."""
    import ast
    path = root / module
    package = module.replace("/", ".")[:-len(".py")].split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
            elif (node.module or "").startswith("lambda_compat"):
                base = []
                names = [node.module.split(".")[1:]]
            else:
                continue
            if node.level:
                names = [base + (node.module.split(".") if node.module else [])]
            names = [n + [a.name] for n in names for a in node.names] + names
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1:] for a in node.names
                     if a.name.startswith("lambda_compat.")]
        for parts in names:
            candidate = "/".join(parts) + ".py"
            if parts and (root / candidate).is_file():
                found.add(candidate)
    return found


def test_the_build_modules_are_the_build_codes_import_closure():
    # the memo's key covers exactly the code a build runs: the build environments and what
    # they import from lambda-compat (an import added to them must extend BUILD_MODULES)
    import lambda_compat
    root = Path(lambda_compat.__file__).parent
    todo = ["resolve/failed_builds.py", "resolve/environments.py",
            "resolve/environments_root.py", "resolve/environments_container.py",
            "resolve/pure_build.py", "resolve/sdist_build.py"]
    seen: set = set()
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_package_imports(root, module))
    assert sorted(seen) == sorted(failed_builds.BUILD_MODULES)
    assert all((root / m).is_file() for m in failed_builds.BUILD_MODULES)


def _resolution_with(attempt: dict):
    from lambda_compat.resolve.engine import Resolution
    return Resolution(items=(), links={}, sources={"p-1.0.tar.gz": {
        "source": "build", "attempts": [attempt], "reason_code": "sdist-build-failed",
        "message": "it does not build"}})


def test_a_resolution_that_met_a_remembered_time_out_is_cached(tmp_path):
    from lambda_compat.resolve import cache as resolution_cache
    fresh = {"no_compiler": False, "ok": False, "timed_out": True, "remembered": False}
    remembered = dict(fresh, remembered=True)
    for name, attempt in (("fresh", fresh), ("remembered", remembered)):
        outcome = resolution_cache.Outcome(passes=(_resolution_with(attempt),))
        resolution_cache.store(tmp_path / "resolutions", name, outcome, {})
    # a build that ran out of time in this run may finish in the next: not cached
    assert not (tmp_path / "resolutions" / "fresh.json").exists()
    # one whose time-out was remembered is not tried again within the memo's lifetime
    back = resolution_cache.load(tmp_path / "resolutions", "remembered", tmp_path, ttl=600)
    assert back is not None
    assert back.resolution.sources["p-1.0.tar.gz"]["attempts"] == [remembered]


# -- a wheel built without the native code its setup.py declares ----------------------------

IGNORED_LOG = """\
Running command Building wheel for p (pyproject.toml)
  /tmp/x/setuptools/_distutils/dist.py:261: UserWarning: Unknown distribution option: 'tests_require'
  /tmp/x/setuptools/_distutils/dist.py:261: UserWarning: Unknown distribution option: 'cffi_modules'
  /tmp/x/setuptools/_distutils/dist.py:261: UserWarning: Unknown distribution option: 'cffi_modules'
  Created wheel for p: filename=p-1.0-py3-none-any.whl
"""


def test_ignored_native_plugins_names_each_native_keyword_once():
    assert failed_builds.ignored_native_plugins(IGNORED_LOG) == [("cffi_modules", "cffi")]
    assert failed_builds.ignored_native_plugins(
        "UserWarning: Unknown distribution option: 'rust_extensions'\n"
        "UserWarning: Unknown distribution option: 'use_scm_version'\n") == \
        [("rust_extensions", "setuptools-rust")]
    # other unknown options (metadata, test keywords) are not native code
    assert failed_builds.ignored_native_plugins(
        "UserWarning: Unknown distribution option: 'tests_require'\n") == []


@dataclass(frozen=True)
class BuiltEnv(CountingEnv):
    """A build environment that makes a wheel and writes ``log_text`` as its log."""

    log_text: str = ""

    def build_wheel(self, source, source_key, *, cache_dir, pip, no_compiler, timeout, cwd,
                    sandbox):
        self.calls.append((source_key, no_compiler, timeout))
        log = Path(cache_dir) / f"build-{len(self.calls)}.log"
        log.write_text(self.log_text)
        wheel = Path(cache_dir) / "p-1.0-py3-none-any.whl"
        wheel.write_bytes(b"PK")
        return BuildResult(True, wheel, log, self.describe(), no_compiler)


def test_a_wheel_whose_native_plugin_was_ignored_is_a_failed_build(tmp_path):
    sdist = tmp_path / "p-1.0.tar.gz"
    sdist.write_bytes(b"not really")
    calls: list = []
    env = BuiltEnv(calls, log_text=IGNORED_LOG)
    result = failed_builds.build(env, sdist, "sha-a", request(tmp_path), ttl=600)
    assert not result.ok and result.wheel is None and not result.timed_out
    assert "'cffi_modules' was ignored (cffi was not in the build environment)" \
        in result.error_tail
    assert "p-1.0-py3-none-any.whl" in result.error_tail
    # remembered like any failed build
    again = failed_builds.build(env, sdist, "sha-a", request(tmp_path), ttl=600)
    assert len(calls) == 1 and again.cached and not again.ok
    # the same wheel from a log without the warning is a build like any other
    clean = BuiltEnv([], log_text=IGNORED_LOG.replace("'cffi_modules'", "'tests_require'"))
    (tmp_path / "c").mkdir()
    ok = failed_builds.build(clean, sdist, "sha-a", request(tmp_path / "c"), ttl=600)
    assert ok.ok and ok.wheel is not None


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.skipif(not has_python((3, 12)) or platform.machine() != "x86_64",
                    reason="needs a local CPython 3.12 on x86_64")
def test_cffi_module_behind_a_hidden_setup_requires_is_not_called_compatible(tmp_path):
    """The fixture hides cffi from a PEP 517 frontend as cryptography 1.9 did: the pure wheel
    pip makes of it is refused; given cffi in build-system.requires, it builds with its
    module (the refusal is about the dropped module, not about cffi projects)."""
    project = tmp_path / "cffi-hidden"
    shutil.copytree(Path(__file__).parent.parent / "fixtures" / "sdists" / "cffi-hidden",
                    project)
    config = BuildConfig(cache_dir=tmp_path / "cache", pip=PipOptions(isolated=True),
                         allow_missing=True, build_env="local")
    report = build_dependencies(tmp_path / "out", write_reqs(tmp_path, "./cffi-hidden\n"),
                                "python3.12", config=config)
    dist = {d.name: d for d in report.distributions}["lc-cffi-hidden"]
    assert dist.phase == "missing", dist.file
    assert any("'cffi_modules' was ignored" in a for a in dist.attempts), dist.attempts
    assert not (tmp_path / "out" / "lc_cffi_hidden").exists()
    # the control: cffi declared where PEP 517 frontends look
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=40.8", "cffi>=1.0"]\n'
        'build-backend = "setuptools.build_meta"\n')
    report = build_dependencies(tmp_path / "out2", write_reqs(tmp_path, "./cffi-hidden\n"),
                                "python3.12", config=config)
    dist = {d.name: d for d in report.distributions}["lc-cffi-hidden"]
    assert dist.phase == "built", dist.attempts
    assert list((tmp_path / "out2" / "lc_cffi_hidden").glob("_native*.so"))


# -- the cause of a failed build, out of pip -v's log ----------------------------------------

VERBOSE_LOG = """\
Processing ./src/psycopg2-2.9.9.tar.gz
  Getting requirements to build wheel: started
  Running command Getting requirements to build wheel
  running egg_info
  Error: pg_config executable not found.

  pg_config is required to build psycopg2 from source.

  error: subprocess-exited-with-error

  × Getting requirements to build wheel did not run successfully.
  │ exit code: 1
  ╰─> See above for output.

  note: This error originates from a subprocess, and is likely not a problem with pip.
  full command: /usr/bin/python3.11 _in_process.py get_requires_for_build_wheel /tmp/x
  cwd: /tmp/lc/tmp/pip-req-build-6q06gqgy
  Getting requirements to build wheel: finished with status 'error'
error: subprocess-exited-with-error

× Getting requirements to build wheel did not run successfully.
│ exit code: 1
╰─> See above for output.

note: This error originates from a subprocess, and is likely not a problem with pip.
"""

QUIET_LOG = """\
  Getting requirements to build wheel: started
  Getting requirements to build wheel: finished with status 'error'
  error: subprocess-exited-with-error

  × Getting requirements to build wheel did not run successfully.
  │ exit code: 1
  ╰─> [3 lines of output]
      File "<string>", line 15, in <module>
      ModuleNotFoundError: No module named 'pkg_resources'
      [end of output]
"""

OLD_PIP_LOG = """\
  Running command /usr/bin/python3.9 _in_process.py get_requires_for_build_wheel /tmp/t
  Error: pg_config executable not found.
  Getting requirements to build wheel: finished with status 'error'
WARNING: Discarding file:///tmp/lc/src/psycopg2-2.9.9.tar.gz. Command errored out
ERROR: Command errored out with exit status 1
Exception information:
Traceback (most recent call last):
  File "base_command.py", line 223, in _main
pip._internal.exceptions.InstallationSubprocessError: Command errored out
"""


def test_the_error_tail_is_the_backends_own_last_words():
    from lambda_compat.resolve.sdist_build import error_tail
    tail = error_tail(VERBOSE_LOG)
    assert "Error: pg_config executable not found." in tail
    assert tail.splitlines()[-1] == "× Getting requirements to build wheel did not run " \
        "successfully."
    assert "full command" not in tail
    # pip without -v repeats the output inside its box: the log's end is the cause
    assert "No module named 'pkg_resources'" in error_tail(QUIET_LOG)
    # bullseye's pip 20.3: the output, then "finished with status 'error'", a traceback
    old = error_tail(OLD_PIP_LOG)
    assert "pg_config executable not found" in old and "Traceback" not in old
