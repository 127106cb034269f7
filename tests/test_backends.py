"""Dynamic proof backends, run for real: local interpreters, bwrap/chroot/proot, qemu, podman.

The host backend importing a tiny bundle takes well under a second, so those tests run by
default. Anything that builds a stand-in root is marked ``slow``; anything that needs an arm64
Debian root (debootstrap through qemu, minutes on first use, cached afterwards) is marked
``rootfs_arm64``; podman tests are marked ``container``.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from lambda_compat.host import engines
from lambda_compat.prove.backends import base, selection

from lambda_compat.host import binfmt

from lambda_compat import errors

from lambda_compat.host import sandbox

from lambda_compat.prove.standin import images, roots
from compat_tests.local_env import has_python, python_path
from lambda_compat.host.interpreters import probe as probe_interpreter
from lambda_compat.prove.backends.host import HostBackend
from lambda_compat.prove.backends.results import DynamicResult
from lambda_compat.prove.backends.rootfs import RootfsBackend
from lambda_compat.prove.backends.selection import available_backends, select_backend
from lambda_compat.registry.runtimes import get_target

ROOT = Path(__file__).resolve().parent.parent
PROBE_FIXTURES = ROOT / "fixtures" / "probe"
ELF_FIXTURES = ROOT / "fixtures" / "elf"
HOST = binfmt.host_machine()
HOST_ARCH = "arm64" if HOST == "aarch64" else "x86_64"
FOREIGN_ARCH = "x86_64" if HOST_ARCH == "arm64" else "arm64"

needs_bwrap = pytest.mark.skipif(not sandbox.bwrap_works(), reason="bwrap not installed")


def _host_target():
    """A target whose Python version has a local interpreter (3.11 preferred)."""
    for minor in (11, 12, 10, 13, 9, 8):
        if has_python((3, minor), HOST):
            return get_target(f"python3.{minor}", HOST_ARCH)
    pytest.skip("no local CPython 3.8-3.13 interpreter")


@pytest.fixture(scope="module")
def host_target():
    return _host_target()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def snapshot(directory: Path):
    """Every path under ``directory`` with its size and mtime: to prove nothing was written."""
    return sorted((str(p.relative_to(directory)), p.lstat().st_size, p.lstat().st_mtime_ns)
                  for p in directory.rglob("*"))


@pytest.fixture
def bundle(tmp_path):
    task = tmp_path / "task"
    write(task / "purepkg/__init__.py", "VALUE = 42\n")
    write(task / "second.py", "import purepkg\nassert purepkg.VALUE == 42\n")
    write(task / "broken.py", "import a_module_that_is_not_there\n")
    write(task / "crasher.py", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    write(task / "writer.py", "open('/var/task/written-by-import', 'w').write('x')\n")
    write(task / "sleeper.py", "import time\ntime.sleep(60)\n")
    write(task / "envcheck.py", """\
        import os, sys
        ENV = dict(os.environ)
        PATH = list(sys.path)
        CWD = os.getcwd()
        print("AWS_EXECUTION_ENV=" + ENV.get("AWS_EXECUTION_ENV", ""))
        print("LAMBDA_TASK_ROOT=" + ENV.get("LAMBDA_TASK_ROOT", ""))
        print("EXTRA=" + ENV.get("LC_TEST_EXTRA", ""))
        print("CLI_MODE=" + ENV.get("LAMBDA_COMPAT_CLI_MODE", ""))
        print("CWD=" + CWD)
        import resource
        print("NOFILE=%d:%d" % resource.getrlimit(resource.RLIMIT_NOFILE))
        """)
    write(task / "app.py", """\
        import os
        assert os.environ.get("LAMBDA_COMPAT_CLI_MODE") == "1", "handler imported without CLI mode"
        def handler(event, context):
            return {"ok": True}
        NOT_CALLABLE = 3
        """)
    write(task / "badapp.py", "raise ValueError('config missing at import time')\n")
    shutil.copy(PROBE_FIXTURES / f"needs_missing.{HOST}.so", task / "needsmissing.so")
    return task


def outcome(result: DynamicResult, module: str):
    assert result.error is None, result.error
    return result.outcome(module)


# --------------------------------------------------------------------------- host backend

@pytest.fixture(scope="module")
def host_backend(host_target):
    backend = select_backend(host_target, "host")
    assert isinstance(backend, HostBackend)
    return backend


def test_host_imports_pure_modules_and_reports_interpreter(host_backend, host_target, bundle):
    result = host_backend.import_modules(bundle, [], [("purepkg", "purepkg"), ("x", "second")])
    assert result.error is None
    assert result.proof == "host"
    assert result.target == host_target.name
    assert [o.ok for o in result.outcomes] == [True, True]
    assert result.python.startswith("%d.%d." % host_target.python_version)
    assert result.machine == host_target.machine
    assert result.ok


def test_host_reports_missing_module_and_missing_library(host_backend, bundle):
    result = host_backend.import_modules(bundle, [], [("b", "broken"), ("n", "needsmissing"),
                                                      ("p", "purepkg")])
    broken, needs, pure = result.outcomes
    assert not broken.ok and broken.reason == "import-error"
    assert broken.error == "ModuleNotFoundError: No module named 'a_module_that_is_not_there'"
    assert not needs.ok
    assert needs.error == ("ImportError: liblcmissing.so.1: cannot open shared object file: "
                           "No such file or directory")
    assert "Traceback" in needs.detail
    assert pure.ok
    assert not result.ok and [f.module for f in result.failures] == ["broken", "needsmissing"]


def test_host_segfault_does_not_hide_other_results(host_backend, bundle):
    result = host_backend.import_modules(bundle, [], [("a", "purepkg"), ("c", "crasher"),
                                                      ("b", "second")])
    first, crash, last = result.outcomes
    assert first.ok and last.ok
    assert not crash.ok and crash.reason == "crash"
    assert crash.error.startswith("SIGSEGV: the interpreter crashed")
    assert "crasher" in crash.error
    # faulthandler's report of the crash is kept
    assert "Fatal Python error" in (crash.detail or "")


def test_host_children_left_running_do_not_stall_the_probe(host_backend, bundle):
    write(bundle / "forker.py", """\
        import os, time
        if os.fork() == 0:   # a grandchild that keeps the result pipe open
            time.sleep(60)
            os._exit(0)
        """)
    write(bundle / "daemon.py", "import subprocess\nsubprocess.Popen(['sleep', '60'])\n")
    result = host_backend.import_modules(bundle, [], [("f", "forker"), ("d", "daemon")],
                                         timeout=30)
    assert [o.ok for o in result.outcomes] == [True, True]
    assert result.seconds < 20


def test_bundle_shadowing_stdlib_modules_does_not_break_the_probe(host_backend, bundle):
    for name in ("platform", "traceback", "json", "tokenize"):
        write(bundle / f"{name}.py", "raise RuntimeError('shadowed stdlib module')\n")
    result = host_backend.import_modules(bundle, [], [("b", "broken"), ("p", "purepkg")])
    assert result.error is None, result.error
    assert result.outcome("broken").error.startswith("ModuleNotFoundError")
    assert result.outcome("purepkg").ok
    assert result.machine == host_backend.target.machine


def test_host_timeout_is_per_module(host_backend, bundle):
    result = host_backend.import_modules(bundle, [], [("s", "sleeper"), ("p", "purepkg")],
                                         timeout=1.5)
    sleeper, pure = result.outcomes
    assert sleeper.reason == "timeout" and "1.5 s" in sleeper.error
    assert pure.ok
    assert result.seconds < 30


@needs_bwrap
def test_host_bundle_is_read_only_and_untouched(host_backend, bundle):
    assert host_backend.confine
    before = snapshot(bundle)
    result = host_backend.import_modules(bundle, [], [("w", "writer"), ("p", "second")])
    writer = result.outcome("writer")
    assert not writer.ok
    assert "Read-only file system" in writer.error
    assert snapshot(bundle) == before  # no file, no __pycache__


def test_host_unconfined_writes_no_bytecode(host_target, bundle):
    interp = probe_interpreter(python_path(host_target.python_version))
    backend = HostBackend(host_target, interp, confine=False)
    before = snapshot(bundle)
    result = backend.import_modules(bundle, [], [("p", "purepkg"), ("s", "second")])
    assert [o.ok for o in result.outcomes] == [True, True]
    assert snapshot(bundle) == before
    # sys.path: Lambda's order, with the bundle and layers where they are on the host
    assert result.sys_path[0] == str(bundle.resolve())
    assert "host" in backend.describe() and "unconfined" in backend.describe()


def test_host_sys_path_follows_facts_without_host_site_packages(host_backend, host_target,
                                                                  bundle):
    facts = host_target.facts
    result = host_backend.import_modules(bundle, [], [("p", "purepkg")])
    assert result.error is None
    if host_backend.confine:
        # /var/task and the layer entries exactly as Lambda has them, in Lambda's order
        lambda_entries = [p for p in facts.sys_path if not p.startswith("/var/lang/")]
        assert [p for p in result.sys_path if not p.startswith("/var/lang/")][:len(lambda_entries)] \
            == [p for p in result.sys_path if p in lambda_entries]
        assert list(result.sys_path[:3]) == list(facts.sys_path[:3])
    assert not any(p.endswith("site-packages") and not p.startswith(("/opt/", "/var/task"))
                   and "lambda-compat-opt" not in p for p in result.sys_path)
    interp_entries = [p for p in result.sys_path if "lib/python" in p and "/opt" not in p
                      and "lambda-compat-opt" not in p]
    # the interpreter's zip, stdlib and lib-dynload, in Lambda's order
    assert interp_entries[0].endswith(".zip")
    assert interp_entries[-1].endswith("lib-dynload")


def test_host_handler_checks(host_backend, bundle):
    ok = host_backend.import_modules(bundle, [], [("p", "purepkg")], handler="app.handler")
    assert ok.handler is not None and ok.handler.ok and ok.ok
    assert ok.handler.module == "app.handler" and ok.handler.distribution == "<handler>"

    raising = host_backend.import_modules(bundle, [], [], handler="badapp.handler")
    assert not raising.handler.ok and raising.handler.reason == "import-error"
    assert raising.handler.error == "ValueError: config missing at import time"
    assert not raising.ok

    missing = host_backend.import_modules(bundle, [], [], handler="app.handle")
    assert missing.handler.reason == "handler-not-found"
    assert "'handle'" in missing.handler.error

    not_callable = host_backend.import_modules(bundle, [], [], handler="app.NOT_CALLABLE")
    assert not_callable.handler.reason == "handler-not-callable"


def test_host_environment_is_lambdas(host_backend, host_target, bundle):
    result = host_backend.import_modules(bundle, [], [("e", "envcheck")],
                                         env={"LC_TEST_EXTRA": "yes"})
    out = outcome(result, "envcheck").output
    assert f"AWS_EXECUTION_ENV=AWS_Lambda_{host_target.runtime}" in out
    assert "EXTRA=yes" in out
    assert "CLI_MODE=\n" in out  # only set for handler checks
    assert "NOFILE=1024:1024" in out  # Lambda's file-descriptor quota
    if host_backend.confine:
        assert "LAMBDA_TASK_ROOT=/var/task" in out and "CWD=/var/task" in out


def test_layers_merge_in_order_later_wins(host_backend, host_target, bundle, tmp_path):
    v = "%d.%d" % host_target.python_version
    first = tmp_path / "layer1"
    second = tmp_path / "layer2"
    write(first / "python/shared.py", "WHO = 'first'\n")
    write(first / "python/onlyfirst.py", "X = 1\n")
    write(second / "python/shared.py", "WHO = 'second'\n")
    write(second / f"python/lib/python{v}/site-packages/deep.py", "Y = 2\n")
    write(bundle / "uselayers.py", """\
        import shared, onlyfirst, deep
        assert shared.WHO == 'second', shared.WHO
        """)
    before = snapshot(first), snapshot(second)
    result = host_backend.import_modules(bundle, [first, second], [("u", "uselayers")])
    assert outcome(result, "uselayers").ok, result.outcome("uselayers").error
    assert (snapshot(first), snapshot(second)) == before


def test_bad_input_is_reported_not_raised_deep(host_backend, tmp_path, bundle):
    with pytest.raises(errors.BadInput, match="bundle directory does not exist"):
        host_backend.import_modules(tmp_path / "nope", [], [("a", "a")])
    with pytest.raises(errors.BadInput, match="layer directory does not exist"):
        host_backend.import_modules(bundle, [tmp_path / "nolayer"], [("a", "a")])
    with pytest.raises(errors.BadInput, match="module.function"):
        host_backend.import_modules(bundle, [], [], handler="no_function_part")


# --------------------------------------------------------------------------- selection

def test_select_static_and_unknown(host_target):
    assert select_backend(host_target, "static") is None
    with pytest.raises(errors.BadInput, match="Unknown backend"):
        select_backend(host_target, "vm")


def test_explicit_unavailable_backends_say_what_is_missing(host_target):
    foreign = get_target(host_target.runtime, FOREIGN_ARCH)
    with pytest.raises(errors.BackendUnavailable, match="cannot prove") as e:
        select_backend(foreign, "host")
    assert foreign.machine in str(e.value)
    with pytest.raises(errors.BackendUnavailable, match="docker export"):
        select_backend(host_target, "rootfs")
    with pytest.raises(errors.BackendUnavailable, match="not installed"):
        select_backend(host_target, "container", engine="no-such-engine-lc")
    assert errors.BackendUnavailable.exit_code == 3


def test_host_needs_the_exact_version(host_target):
    other = get_target("python3.14", HOST_ARCH)
    with pytest.raises(errors.BadInput, match="needs CPython 3.14"):
        select_backend(other, "host", python=python_path(host_target.python_version))


@needs_bwrap
def test_auto_without_engine_or_root_is_a_standin_root_then_host_or_none(host_target):
    # auto prefers a stand-in root (a copy of the local interpreter, built on first use)
    backend = select_backend(host_target, "auto", engine="no-such-engine-lc")
    assert isinstance(backend, RootfsBackend) and backend.standin
    names = [b.proof for b in available_backends(host_target, engine="no-such-engine-lc")]
    assert names == ["rootfs", "host"]
    foreign = get_target("python3.12", FOREIGN_ARCH)
    assert select_backend(foreign, "auto", engine="no-such-engine-lc") is None


def test_auto_without_a_standin_is_host_and_says_why(host_target, monkeypatch):
    monkeypatch.setattr(roots, "plan_standin", lambda target, kind="auto": (None, "no plan"))
    backend = select_backend(host_target, "auto", engine="no-such-engine-lc")
    assert isinstance(backend, HostBackend)
    status = {n: why for n, b, why in selection.backend_status(host_target,
                                                               engine="no-such-engine-lc")}
    assert status["rootfs"] == "no plan"


def test_rootfs_path_that_does_not_exist_is_bad_input(host_target, tmp_path):
    with pytest.raises(errors.BadInput, match="does not exist"):
        select_backend(host_target, "rootfs", rootfs=tmp_path / "missing")


def test_rootfs_without_the_targets_python_is_unavailable(host_target, tmp_path):
    (tmp_path / "usr/bin").mkdir(parents=True)
    with pytest.raises(errors.BackendUnavailable, match="has no python"):
        select_backend(host_target, "rootfs", rootfs=tmp_path)


def test_environment_has_service_variables_but_no_credentials(host_target):
    env = base.lambda_environment(host_target, handler="app.handler")
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["_HANDLER"] == "app.handler" and env["LAMBDA_COMPAT_CLI_MODE"] == "1"
    assert env["AWS_REGION"]
    assert env["LD_LIBRARY_PATH"] == dict(host_target.facts.env)["LD_LIBRARY_PATH"]
    assert not any("SECRET" in k or "ACCESS_KEY" in k or "TOKEN" in k for k in env)


def test_result_json_shape(host_backend, bundle):
    result = host_backend.import_modules(bundle, [], [("p", "purepkg")], handler="app.handler")
    data = result.to_dict()
    assert data["ok"] is True and data["proof"] == "host"
    assert data["outcomes"][0]["module"] == "purepkg"
    assert data["handler"]["module"] == "app.handler"


# --------------------------------------------------------------------------- rootfs: x86 stand-in

@pytest.fixture(scope="module")
def copy_root(host_target):
    return roots.ensure_standin(host_target, kind="copy")


@pytest.mark.slow
@needs_bwrap
def test_rootfs_standin_imports_like_lambda(copy_root, host_target, bundle):
    backend = select_backend(host_target, "rootfs", rootfs=copy_root.path)
    assert isinstance(backend, RootfsBackend) and backend.runner == "bwrap"
    before = snapshot(bundle)
    result = backend.import_modules(
        bundle, [], [("p", "purepkg"), ("c", "crasher"), ("n", "needsmissing"),
                     ("w", "writer"), ("ssl", "ssl"), ("s", "second")],
        handler="badapp.handler")
    assert result.error is None
    assert result.proof == "rootfs"
    assert "stand-in" in result.backend and result.standin
    assert list(result.sys_path) == list(host_target.facts.sys_path)
    by = {o.module: o for o in result.outcomes}
    assert by["purepkg"].ok and by["second"].ok and by["ssl"].ok
    assert by["crasher"].reason == "crash"
    assert "liblcmissing.so.1: cannot open shared object file" in by["needsmissing"].error
    assert "Read-only file system" in by["writer"].error
    assert result.handler.error == "ValueError: config missing at import time"
    assert snapshot(bundle) == before


@pytest.mark.slow
@needs_bwrap
def test_libpq_extension_fails_in_standin_where_host_loader_passes(copy_root, host_target,
                                                                  host_backend, tmp_path):
    """psycopg2's situation: the host has libpq, Lambda (and the stand-in) do not."""
    if host_target.python_version != (3, 11):
        pytest.skip("the _pq fixture is a cpython-311 extension")
    task = tmp_path / "task"
    task.mkdir()
    shutil.copy(ELF_FIXTURES / "_pq.cpython-311-x86_64-linux-gnu.so", task)
    rootfs = select_backend(host_target, "rootfs", rootfs=copy_root.path)
    in_root = rootfs.import_modules(task, [], [("psycopg2-like", "_pq")]).outcome("_pq")
    assert not in_root.ok
    assert in_root.error == ("ImportError: libpq.so.5: cannot open shared object file: "
                             "No such file or directory")
    if ctypes.util.find_library("pq"):
        # Confined, the host shows only the interpreter's and the runtime's libraries: no
        # libpq, as on Lambda, although this machine has it.
        confined = HostBackend(host_target, host_backend.interpreter, confine=True)
        on_host = confined.import_modules(task, [], [("psycopg2-like", "_pq")]).outcome("_pq")
        assert on_host.error == in_root.error
        # Unconfined it borrows the machine's libpq; only the (fixture's) missing init
        # function fails, and its description says all libraries are visible.
        loose = HostBackend(host_target, host_backend.interpreter, confine=False)
        on_host = loose.import_modules(task, [], [("psycopg2-like", "_pq")]).outcome("_pq")
        assert "libpq" not in on_host.error and "PyInit__pq" in on_host.error
        assert "all of the host's libraries are visible" in loose.describe()


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["chroot", "proot"])
def test_other_runners(copy_root, host_target, bundle, runner):
    if not sandbox.runner_works(runner):
        pytest.skip(f"{runner} not usable here ({sandbox.install_hint(runner)})")
    backend = RootfsBackend(host_target, copy_root.path, runner=runner)
    before = snapshot(bundle)
    result = backend.import_modules(bundle, [], [("p", "purepkg"), ("c", "crasher"),
                                                 ("n", "needsmissing"), ("w", "writer")])
    by = {o.module: o for o in result.outcomes}
    assert result.error is None
    assert by["purepkg"].ok and by["crasher"].reason == "crash"
    assert "liblcmissing.so.1" in by["needsmissing"].error
    assert list(result.sys_path) == list(host_target.facts.sys_path)
    if runner == "chroot":
        assert "Read-only file system" in by["writer"].error
    else:  # proot works on a private copy: the write succeeds there, never in the bundle
        assert "not refused" in backend.describe()
    assert snapshot(bundle) == before


# --------------------------------------------------------------------------- rootfs: arm64 via qemu

@pytest.fixture(scope="module")
def arm_target():
    return get_target("python3.11", "arm64") if HOST == "x86_64" else None


@pytest.fixture(scope="module")
def arm_root(arm_target):
    if arm_target is None:
        pytest.skip("the foreign-architecture tests are written for an x86_64 host")
    if os.geteuid() != 0 or not shutil.which("debootstrap"):
        pytest.skip("building the arm64 stand-in needs root and debootstrap")
    try:
        binfmt.register("aarch64")
    except errors.EnvironmentProblem:
        pass  # the rootfs backend then starts qemu-aarch64-static itself
    return roots.ensure_standin(arm_target)  # debootstrap --foreign, unpacked


@pytest.mark.slow
@pytest.mark.rootfs_arm64
@needs_bwrap
def test_arm64_rootfs_through_qemu(arm_root, arm_target, bundle):
    task = bundle
    (task / "needsmissing.so").unlink()
    shutil.copy(PROBE_FIXTURES / "needs_missing.aarch64.so", task / "needsmissing.so")
    backend = select_backend(arm_target, "rootfs", rootfs=arm_root.path)
    assert "qemu-aarch64" in backend.describe()
    result = backend.import_modules(task, [], [("p", "purepkg"), ("c", "crasher"),
                                               ("n", "needsmissing"), ("w", "writer"),
                                               ("ssl", "ssl"), ("ctypes", "ctypes")],
                                    handler="app.handler")
    assert result.error is None, result.error
    assert result.machine == "aarch64"
    assert result.python.startswith("3.11.")
    assert list(result.sys_path) == list(arm_target.facts.sys_path)
    by = {o.module: o for o in result.outcomes}
    assert by["purepkg"].ok and by["ssl"].ok and by["ctypes"].ok
    assert by["crasher"].reason == "crash"
    assert "liblcmissing.so.1: cannot open shared object file" in by["needsmissing"].error
    assert "Read-only file system" in by["writer"].error
    assert result.handler.ok


@pytest.mark.slow
@pytest.mark.rootfs_arm64
def test_arm64_rootfs_with_explicit_qemu(arm_root, arm_target, bundle, monkeypatch):
    """Without a binfmt F entry the backend starts qemu-aarch64-static itself."""
    if not binfmt.static_qemu("aarch64") or not sandbox.bwrap_works():
        pytest.skip("needs qemu-aarch64-static and bwrap")
    monkeypatch.setattr(binfmt, "status", lambda machine: binfmt.BinfmtStatus(
        machine, False, False, None, ""))
    backend = RootfsBackend(arm_target, arm_root.path)
    assert backend.qemu and "(explicit)" in backend.describe()
    result = backend.import_modules(bundle, [], [("p", "purepkg"), ("c", "crasher")])
    assert result.error is None, result.error
    assert result.machine == "aarch64"
    assert result.outcome("purepkg").ok and result.outcome("crasher").reason == "crash"


# --------------------------------------------------------------------------- container (podman)

def _podman():
    exe, why = engines.find_engine("podman")
    if exe is None:
        pytest.skip(f"podman unusable: {why}")
    return exe


def assert_removed(exe, backend):
    assert backend.last_containers
    for name in backend.last_containers:
        exists = subprocess.run([exe, "container", "exists", name], capture_output=True)
        assert exists.returncode == 1, f"container {name} was left behind"


@pytest.mark.container
@pytest.mark.slow
def test_container_standin_image(copy_root, host_target, bundle):
    exe = _podman()
    tag = images.ensure_standin_image(copy_root, engine="podman")
    assert tag == f"localhost/lc-standin:{copy_root.info.name}"
    backend = select_backend(host_target, "container", image=tag, engine="podman")
    assert backend.proof == "image"
    assert "stand-in" in backend.describe()
    before = snapshot(bundle)
    result = backend.import_modules(bundle, [], [("p", "purepkg"), ("c", "crasher"),
                                                 ("n", "needsmissing"), ("w", "writer")],
                                    handler="badapp.handler")
    assert result.error is None, result.error
    assert result.proof == "image" and result.standin
    assert list(result.sys_path) == list(host_target.facts.sys_path)
    by = {o.module: o for o in result.outcomes}
    assert by["purepkg"].ok and by["crasher"].reason == "crash"
    assert "liblcmissing.so.1: cannot open shared object file" in by["needsmissing"].error
    assert "Read-only file system" in by["writer"].error
    assert result.handler.error == "ValueError: config missing at import time"
    assert snapshot(bundle) == before
    assert_removed(exe, backend)


@pytest.mark.container
@pytest.mark.slow
def test_container_removed_after_timeout(copy_root, host_target, bundle, monkeypatch):
    exe = _podman()
    tag = images.ensure_standin_image(copy_root, engine="podman")
    backend = select_backend(host_target, "container", image=tag, engine="podman")
    monkeypatch.setattr(base, "overall_timeout", lambda timeout, jobs: 3.0)
    result = backend.import_modules(bundle, [], [("s", "sleeper")], timeout=30)
    assert result.error and "did not finish" in result.error
    assert_removed(exe, backend)


@pytest.fixture
def docker_via_podman(tmp_path, monkeypatch):
    """The docker CLI talking to podman's Docker API (how the docker code path runs here)."""
    _podman()
    if not shutil.which("docker"):
        pytest.skip("no docker CLI installed")
    sock = tmp_path / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert service.poll() is None, "podman system service exited"
            assert time.monotonic() < deadline, "podman system service did not start"
            time.sleep(0.1)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
        engines._engine_answers.cache_clear()
        yield
    finally:
        service.terminate()
        service.wait(timeout=30)
        engines._engine_answers.cache_clear()


@pytest.mark.container
@pytest.mark.slow
def test_container_docker_cli_path(copy_root, host_target, bundle, docker_via_podman):
    tag = images.ensure_standin_image(copy_root, engine="podman")
    backend = select_backend(host_target, "container", image=tag, engine="docker")
    assert backend.kind == "docker" and backend.describe().startswith("docker ")
    result = backend.import_modules(bundle, [], [("p", "purepkg"), ("w", "writer"),
                                                 ("e", "envcheck")], handler="app.handler")
    assert result.error is None, result.error
    assert result.outcome("purepkg").ok and result.handler.ok
    assert "Read-only file system" in result.outcome("writer").error
    assert "NOFILE=1024:1024" in result.outcome("envcheck").output


@pytest.mark.container
def test_auto_never_pulls(host_target):
    _podman()
    backend = select_backend(host_target, "auto", engine="podman",
                             image="localhost/lc-no-such-image:never")
    # the container could not run: next strongest, the stand-in root
    assert isinstance(backend, RootfsBackend)
    status = {name: (b, why) for name, b, why in selection.backend_status(
        host_target, engine="podman", image="localhost/lc-no-such-image:never")}
    assert status["container"][0] is not None  # the engine answers; the image is the problem
    assert "docker export" in selection._rootfs_candidate(host_target, None)[1]


@pytest.mark.container
def test_container_missing_image_is_unavailable(host_target):
    _podman()
    with pytest.raises(errors.BackendUnavailable, match="not present"):
        select_backend(host_target, "container", engine="podman",
                       image="localhost/lc-no-such-image:never")


@pytest.mark.container
@pytest.mark.slow
@pytest.mark.rootfs_arm64
def test_container_arm64_standin_image(arm_root, arm_target, bundle):
    _podman()
    if not binfmt.status("aarch64").usable_in_sandbox:
        pytest.skip("podman runs arm64 images only with a binfmt F entry for qemu-aarch64")
    tag = images.ensure_standin_image(arm_root, engine="podman")
    backend = select_backend(arm_target, "container", image=tag, engine="podman")
    result = backend.import_modules(bundle, [], [("p", "purepkg"), ("c", "crasher")])
    assert result.error is None, result.error
    assert result.machine == "aarch64"
    assert result.outcome("purepkg").ok and result.outcome("crasher").reason == "crash"
