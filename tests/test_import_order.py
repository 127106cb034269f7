"""Import probing follows how packages are used (issue 11, class 8).

Some modules refuse to be imported on their own by design: ``psycopg_binary`` raises
"the psycopg package should be imported before psycopg_binary". They are imported after the
distributions that depend on them; a real import failure stays a failure.
"""

from __future__ import annotations

import json

import pytest

from lambda_compat.host import binfmt

from lambda_compat.cli import main as cli
from lambda_compat.registry.runtimes import get_target
from compat_tests.local_env import has_python
from lambda_compat.verify.static_check import StaticChecker
from lambda_compat.verify import bundle as _bundle

from check_helpers import make_dist

HOST = binfmt.host_machine()
HOST_ARCH = "arm64" if HOST == "aarch64" else "x86_64"

SHY = ("import sys\n"
       "if 'shy' not in sys.modules:\n"
       "    raise ImportError('the shy package should be imported before shy_binary')\n")


def _version():
    for minor in (12, 11, 13, 10, 9, 8):
        if has_python((3, minor), HOST):
            return f"3.{minor}"
    pytest.skip("no local CPython 3.8-3.13")


def _shy_bundle(site, *, binary_broken=False):
    body = SHY + ("import a_module_that_is_not_there\n" if binary_broken else "VALUE = 1\n")
    make_dist(site, "shy-binary", files={"shy_binary/__init__.py": body})
    make_dist(site, "shy", requires=['shy-binary==1.0; extra == "binary"'],
              files={"shy/__init__.py": "try:\n    import shy_binary\nexcept ImportError:\n"
                                        "    shy_binary = None\n"})


def _check(capsys, path, version):
    code = cli.main(["check", str(path), "--runtime", version, "--arch", HOST_ARCH,
                     "--backend", "host", "--format", "json"])
    out = capsys.readouterr().out
    (t,) = json.loads(out)["targets"]
    return code, t


def test_dependents_are_known_to_the_static_report(tmp_path):
    _shy_bundle(tmp_path)
    view = _bundle.load(tmp_path, [])
    report = StaticChecker(view).check(get_target("python3.12", HOST_ARCH))
    # shy requires shy-binary only under its extra "binary": still a dependent
    assert report.after() == {"shy-binary": ("shy",)}


def test_a_module_that_refuses_to_be_imported_alone_is_imported_after_its_dependent(
        capsys, tmp_path):
    _shy_bundle(tmp_path)
    code, t = _check(capsys, tmp_path, _version())
    assert code == 0, t
    assert t["verdict"] == "compatible" and t["proof"] == "host"
    imports = {i["module"]: i for i in t["dynamic"]["imports"]}
    assert imports["shy_binary"]["ok"] and imports["shy_binary"]["after"] == ["shy"]
    assert "should be imported before" in imports["shy_binary"]["alone_error"]
    assert any("refuses to be imported on its own" in n for n in t["notes"])


def test_a_module_that_fails_after_its_dependent_too_is_still_a_failure(capsys, tmp_path):
    _shy_bundle(tmp_path, binary_broken=True)
    code, t = _check(capsys, tmp_path, _version())
    assert code == 1 and t["verdict"] == "incompatible"
    imports = {i["module"]: i for i in t["dynamic"]["imports"]}
    assert not imports["shy_binary"]["ok"] and "after" not in imports["shy_binary"]
    assert [f["code"] for f in t["findings"] if f["distribution"] == "shy-binary"] == [
        "import-failed"]


@pytest.mark.network
@pytest.mark.slow
def test_psycopg_binary_is_compatible(capsys, tmp_path):
    """psycopg[binary] from PyPI: psycopg_binary is imported through psycopg."""
    version = _version()
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("psycopg[binary]==3.2.3\n")
    code = cli.main(["check", str(reqs), "--runtime", version, "--arch", HOST_ARCH,
                     "--format", "json", "--isolated", "-i", "https://pypi.org/simple"])
    (t,) = json.loads(capsys.readouterr().out)["targets"]
    assert t["proof"] in ("host", "rootfs", "image"), t["notes"]
    errors = [f for f in t["findings"] if f["severity"] == "error"]
    assert code == 0 and t["verdict"] == "compatible", errors
    imports = {i["module"]: i for i in t["dynamic"]["imports"]}
    assert imports["psycopg_binary"]["ok"]
