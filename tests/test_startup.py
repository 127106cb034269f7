"""Start-up stays cheap: --version and --help import no builder, checker or packager."""

from __future__ import annotations

import subprocess
import sys

from lambda_compat.build.builder import BuildConfig
from lambda_compat.cli.options import DEFAULT_BUILD_TIMEOUT


def _modules_after(args):
    code = ("import sys, contextlib, io\n"
            "from lambda_compat.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n"
            f"        main({args!r})\n"
            "    except SystemExit:\n"
            "        pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('lambda_compat.')))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    return proc.stdout


def test_version_loads_no_subcommand():
    out = _modules_after(["--version"])
    assert "lambda_compat.cli.build" not in out and "lambda_compat.build" not in out


def test_help_loads_no_builder_checker_or_packager():
    out = _modules_after(["check", "--help"])
    for heavy in ("lambda_compat.build.builder", "lambda_compat.check.core",
                  "lambda_compat.package.core", "lambda_compat.resolve.engine", "rich"):
        assert f"'{heavy}'" not in out, heavy


def test_default_build_timeout_is_the_builders():
    assert DEFAULT_BUILD_TIMEOUT == BuildConfig.build_timeout


def test_build_env_choices_match_the_builder():
    from lambda_compat.build.environments import BUILD_ENVS as builder_envs
    from lambda_compat.cli.options import BUILD_ENVS
    assert BUILD_ENVS == builder_envs
