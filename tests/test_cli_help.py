"""Help texts, exit codes in every subcommand's help, and a reader that closes the pipe."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from lambda_compat.cli.main import _parser, main

SUBCOMMANDS = ("build", "check", "package", "registry")


def _help(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_lists_its_exit_codes(capsys, command):
    text = _help(capsys, command)
    codes = text.split("exit codes:", 1)[1]
    assert "  0  " in codes and "  2  bad input" in codes


def test_build_help_names_runtimes_and_describes(capsys):
    text = _help(capsys, "build")
    assert "python3.8, python3.9" in text and "python3.14" in text
    assert "not for this\nmachine" in text          # the description keeps its lines
    assert "{runtimes}" not in text


@pytest.mark.parametrize("command", ("build", "check", "package"))
def test_every_option_has_help(command):
    sub = next(a for a in _parser()._actions if a.dest == "command").choices[command]
    undocumented = [a.option_strings for a in sub._actions
                    if a.option_strings and not a.help]
    assert undocumented == []


@pytest.mark.parametrize("argv", [["registry", "list"], ["registry", "show", "pyyaml"]])
def test_closed_stdout_ends_quietly(tmp_path, argv):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "resolver"), TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "lambda_compat.cli.main", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()                  # the reader is gone before the first write
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert err == ""
    assert not list(tmp_path.glob("lambda-compat-crash-*"))
