"""The pip process started ahead of its spec (resolve.engine.start_standby), and index pages
narrowed to the versions the user's requirements allow (resolve.pip_patches)."""

from __future__ import annotations

import os
import signal
from dataclasses import replace

import pytest

from conftest import fixture_config, write_reqs
from lambda_compat.build.builder import build_dependencies
from lambda_compat.resolve import engine, pip_standby


@pytest.fixture(autouse=True)
def _no_standby_left():
    yield
    engine.discard_standby()


def _pip_logs(cache):
    return sorted((cache / "logs").glob("resolve-*.log"))


def _build(tmp_path, req, cache, name="out", **kw):
    config = replace(fixture_config(cache), **kw)
    return build_dependencies(tmp_path / name, req, "python3.12", config=config)


def test_the_next_resolution_takes_the_standby_pip(tmp_path):
    req = write_reqs(tmp_path, "lc-pure==1.0\n")
    cache = tmp_path / "cache"
    engine.start_standby(req, fixture_config(cache).pip)
    proc = pip_standby._STANDBY[0].proc
    report = _build(tmp_path, req, cache)
    assert report.ok and [d.version for d in report.distributions] == ["1.0"]
    assert proc.wait(timeout=30) == 0       # it resolved, and exited on its own
    assert not pip_standby._STANDBY
    log = _pip_logs(cache)[0].read_text()
    assert "lc_pure-1.0-py3-none-any.whl" in log  # its output: the resolution's log


def test_a_standby_not_needed_is_ended(tmp_path):
    req = write_reqs(tmp_path, "lc-pure==1.0\n")
    cache = tmp_path / "cache"
    assert _build(tmp_path, req, cache).ok
    # the same build again: the resolution comes from the cache, pip is not needed
    engine.start_standby(req, fixture_config(cache).pip)
    proc = pip_standby._STANDBY[0].proc
    assert _build(tmp_path, req, cache, name="again").ok
    assert proc.wait(timeout=30) == -signal.SIGKILL and not pip_standby._STANDBY
    # and one for another directory (or environment) is not taken either
    other = tmp_path / "other"
    other.mkdir()
    engine.start_standby(write_reqs(other, "lc-pure==1.0\n"), fixture_config(cache).pip)
    proc = pip_standby._STANDBY[0].proc
    assert _build(tmp_path, req, cache, name="third", resolution_ttl=0).ok
    assert proc.wait(timeout=30) == -signal.SIGKILL


def test_a_standby_that_died_is_replaced(tmp_path):
    req = write_reqs(tmp_path, "lc-pure==1.0\n")
    cache = tmp_path / "cache"
    engine.start_standby(req, fixture_config(cache).pip)
    proc = pip_standby._STANDBY[0].proc
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    report = _build(tmp_path, req, cache)
    assert report.ok and "lc_pure-1.0-py3-none-any.whl" in _pip_logs(cache)[0].read_text()


def test_a_pin_narrows_pips_page_but_not_the_diagnosis(tmp_path):
    # lc-pure has 1.0 and 1.1 on the fixture index: pip is offered no version for ==2.0
    # (its log says so), while the suggestion still reads the whole page
    req = write_reqs(tmp_path, "lc-pure==2.0\n")
    cache = tmp_path / "cache"
    report = _build(tmp_path, req, cache, allow_missing=True)
    missing = {d.name: d for d in report.missing}["lc-pure"]
    assert "1.1" in (missing.suggestion or ""), missing
    assert "(from versions: none)" in _pip_logs(cache)[0].read_text()


def test_the_command_line_starts_pip_before_parsing_and_build_does_not_start_another(
        tmp_path, monkeypatch):
    """cli.main._start_pip_early: `build -r FILE` starts the standby at the entry point;
    the build's own start_for for the same file and environment then starts nothing."""
    from lambda_compat.cli import main as cli_main
    req = write_reqs(tmp_path, "lc-pure==1.0\n")
    started = []
    real_spawn = pip_standby.lifecycle.spawn

    def spawn(*args, **kwargs):
        started.append(args[0])
        return real_spawn(*args, **kwargs)

    monkeypatch.setattr(pip_standby.lifecycle, "spawn", spawn)
    try:
        cli_main._start_pip_early(["build", "--runtime", "python3.12", "-r", str(req),
                                   "-o", str(tmp_path / "out")])
        assert len(started) == 1 and len(pip_standby._STANDBY) == 1
        pip_standby.start_for(req, False)                 # what `build` does next
        assert len(started) == 1 and len(pip_standby._STANDBY) == 1
        # not for other commands, ambiguous or missing files, or --help
        for argv in (["check", "-r", str(req)], ["build", str(req), "-o", "x"],
                     ["build", "-r", str(req), "--requirements", str(req)],
                     ["build", "-r", str(tmp_path / "missing.txt")],
                     ["build", "-r", str(req), "--help"]):
            cli_main._start_pip_early(argv)
        assert len(started) == 1
    finally:
        pip_standby.discard()
