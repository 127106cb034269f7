"""The pre-commit hook: its file pattern, and the hook's entry run on changed files."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import yaml

from conftest import INDEX, ROOT

HOOK = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]


@pytest.mark.parametrize("path,matches", [
    ("requirements.txt", True), ("svc/requirements-prod.txt", True), ("requirements.in", True),
    ("poetry.lock", True), ("a/uv.lock", True), ("Pipfile.lock", True), ("pylock.toml", True),
    ("pylock.dev.toml", True), ("README.md", False), ("app.py", False),
    ("requirements.txt.bak", False), ("my-poetry.lock.txt", False)])
def test_hook_files_pattern(path, matches):
    assert bool(re.search(HOOK["files"], path)) is matches


def _hook(tmp_path, shared_cache, *files):
    entry = shlex.split(HOOK["entry"])
    assert entry[0] == "python"
    argv = [sys.executable, *entry[1:], "--runtime", "python3.12", "--runtime", "python3.13",
            "--arch", "x86_64", "--isolated", "-i", (INDEX / "simple").as_uri(),
            "--cache-dir", str(shared_cache), *files]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_hook_passes_and_fails_per_file(tmp_path, shared_cache):
    (tmp_path / "requirements.txt").write_text("lc-markers==1.0\n")
    (tmp_path / "requirements-bad.txt").write_text("lc-native==1.0\n")  # no cp313 wheel
    ok = _hook(tmp_path, shared_cache, "requirements.txt")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = _hook(tmp_path, shared_cache, "requirements.txt", "requirements-bad.txt")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "requirements-bad.txt:" in bad.stdout and "lc-native" in bad.stdout


def test_hook_reads_lock_files_per_target(tmp_path, shared_cache):
    lock = ROOT / "fixtures" / "projects" / "locked" / "offline" / "poetry" / "poetry.lock"
    proc = _hook(tmp_path, shared_cache, str(lock))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{lock} for python3.12/x86_64:" in proc.stdout
    assert f"{lock} for python3.13/x86_64:" in proc.stdout


def test_hook_bad_input_is_exit_2(tmp_path, shared_cache):
    (tmp_path / "requirements.txt").write_text("this is not a requirement ===\n")
    proc = _hook(tmp_path, shared_cache, "requirements.txt")
    assert proc.returncode == 2
    assert "requirements.txt:1" in proc.stderr
