"""The GitHub Action's step, run as GitHub runs it: scripts/github-action.sh with LC_* inputs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from conftest import INDEX, ROOT

REQS = "# our dependencies\nlc-markers==1.0\n\nlc-native==1.0  # fast path\n"


def _run(tmp_path, shared_cache, **inputs):
    (tmp_path / "requirements.txt").write_text(REQS)
    summary, output = tmp_path / "summary.md", tmp_path / "output.txt"
    env = dict(os.environ, LC_PYTHON=sys.executable, LC_REQUIREMENTS="requirements.txt",
               LC_RUNTIMES="python3.12, python3.13", LC_ARCHITECTURES="x86_64",
               LC_BACKEND="static", GITHUB_STEP_SUMMARY=str(summary),
               GITHUB_OUTPUT=str(output), RUNNER_TEMP=str(tmp_path),
               LC_ARGS=f"--isolated -i {(INDEX / 'simple').as_uri()} --cache-dir {shared_cache}")
    env.update(inputs)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "github-action.sh")], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    return proc, summary.read_text() if summary.exists() else "", \
        output.read_text() if output.exists() else ""


def test_annotations_summary_and_outputs(tmp_path, shared_cache):
    proc, summary, output = _run(tmp_path, shared_cache)
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    # lc-native 1.0 has cp311/cp312 wheels only: python3.13 fails, on the line naming it.
    assert len(errors) == 1, proc.stdout
    assert errors[0].startswith("::error file=requirements.txt,line=4,"
                                "title=lambda-compat%3A lc-native::lc-native does not import "
                                "on python3.13/x86_64: ")
    assert "| distribution | python3.12/x86_64 | python3.13/x86_64 |" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| lc-native |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert cells[0] == "✅" and cells[1].startswith("❌ `")
    assert "| lc-pure | ✅ |" in summary               # transitive, fine on 3.12: shown too
    assert "*proof* | static | static" in summary
    assert "verdict=incompatible\n" in output and f"report={tmp_path}" in output


def test_fail_on_never_passes_the_step(tmp_path, shared_cache):
    proc, summary, output = _run(tmp_path, shared_cache, LC_FAIL_ON="never")
    assert proc.returncode == 0, proc.stderr
    assert "verdict=incompatible" in output and "::error file=requirements.txt,line=4" \
        in proc.stdout


def test_bad_input_fails_with_an_annotation(tmp_path, shared_cache):
    proc, _summary, _output = _run(tmp_path, shared_cache, LC_RUNTIMES="python3.99")
    assert proc.returncode == 2
    assert "::error file=requirements.txt,title=lambda-compat::" in proc.stdout
    assert "Unknown runtime 'python3.99'" in proc.stderr


def test_action_yml_runs_the_tested_script():
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    run = [s for s in action["runs"]["steps"] if s.get("id") == "check"][0]
    assert run["run"] == 'bash "$GITHUB_ACTION_PATH/scripts/github-action.sh"'
    # Every input reaches the script as an LC_* variable, never interpolated into shell code.
    for name in ("requirements", "runtimes", "architectures", "fail-on", "backend", "args"):
        assert name in action["inputs"]
        assert f"${{{{ inputs.{name} }}}}" in run["env"].values()
    assert "${{" not in run["run"]


@pytest.mark.parametrize("text,expected", [("a\nb%", "a%0Ab%25"), ("x\r", "x%0D")])
def test_workflow_command_escaping(text, expected):
    from lambda_compat.cli.github_action import _escape
    assert _escape(text) == expected
