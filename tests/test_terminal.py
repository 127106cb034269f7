"""Progress output: live table on a terminal, one line per phase change off one."""

from __future__ import annotations

import io
import re

from rich.console import Console

from conftest import fixture_config, write_reqs
from lambda_compat.build.builder import build_dependencies
from lambda_compat.cli.style import LARGE_SDIST_BYTES, ProgressUI, Style


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _plain_ui(clock: Clock, **kw) -> tuple:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200, color_system=None)
    return ProgressUI(buf, console=console, live=False, clock=clock, **kw), buf


def test_off_a_tty_one_line_per_phase_change_with_elapsed_time():
    clock = Clock()
    ui, buf = _plain_ui(clock, heartbeat=60)
    t = "python3.13/x86_64"
    ui.event("check-target-start", target=t, phase="build")
    ui.event("start", target=t, requirements="requirements.txt")
    ui.event("pip-collecting", target=t, what="numpy==1.26.4")        # same phase: quiet
    ui.event("pip-collecting", target=t, what="requests")
    clock.now += 3
    ui.event("dist-start", target=t, name="numpy", version="1.26.4", phase="built",
             interpreter="CPython 3.13.0", size=LARGE_SDIST_BYTES * 4)
    clock.now += 59
    ui.tick()                                                         # not yet a minute
    clock.now += 31
    ui.tick()
    clock.now += 5
    ui.event("check-target-done", target=t, verdict="incompatible", proof="static",
             seconds=98.0)
    lines = buf.getvalue().splitlines()
    assert lines == [
        "[   0.0s] python3.13/x86_64: building",
        "[   0.0s] python3.13/x86_64: resolving",
        "[   3.0s] python3.13/x86_64: building numpy 1.26.4 with CPython 3.13.0",
        "[   3.0s] python3.13/x86_64: numpy 1.26.4: a 16 MiB sdist, a large native build; "
        "this may take several minutes",
        "[  1m33s] python3.13/x86_64: still building numpy 1.26.4 with CPython 3.13.0 "
        "(1m30s)",
        "[  1m38s] python3.13/x86_64: incompatible (proof: static, 1m38s)",
    ]


def test_small_builds_get_no_warning():
    ui, buf = _plain_ui(Clock())
    ui.event("dist-start", name="pyyaml", version="6.0.2", phase="built", size=130_000)
    assert "large native build" not in buf.getvalue()


def test_live_table_during_a_real_build(tmp_path):
    req = write_reqs(tmp_path, "lc-sdist-pure==1.0\n")
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    with ProgressUI(buf, console=console) as ui:
        assert ui.live
        ui.event("start", target="python3.12/x86_64", requirements=str(req))
        # Keep the step on screen for at least one refresh, whatever the build's speed.
        ui.event("dist-start", name="lc-sdist-pure", version="1.0", phase="built",
                 interpreter="CPython 3.12")
        import time
        time.sleep(0.6)
        report = build_dependencies(tmp_path / "out", req, "python3.12", ui=ui,
                                    config=fixture_config(tmp_path / "cache"))
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert report.ok
    assert "building" in plain and "lc-sdist-pure 1.0" in plain
    assert re.search(r"\d+\.\ds", plain)                              # elapsed time shown
    assert "in all" in plain


def test_style_plain_and_coloured():
    assert Style(False).bad("x") == "FAIL x"
    coloured = Style(True).bad("x")
    assert coloured.startswith("\x1b[31m") and "✗ x" in coloured


def test_check_grid_shows_ok_rows_a_legend_and_counts_the_rest(tmp_path, capsys,
                                                               shared_cache):
    from conftest import INDEX
    from lambda_compat.cli.main import main
    req = write_reqs(tmp_path, "lc-markers==1.0\nlc-native==1.0\n")
    code = main(["check", str(req), "--runtime", "python3.12", "--runtime", "python3.13",
                 "--arch", "x86_64", "--backend", "static", "--isolated",
                 "-i", (INDEX / "simple").as_uri(), "--cache-dir", str(shared_cache)])
    out = capsys.readouterr().out
    assert code == 1
    rows = {line.split()[0]: line.split()[2:] for line in out.splitlines()
            if line.startswith("lc-")}
    # lc-markers is judged on python3.13 too, though lc-native stops pip's resolution there
    assert rows == {"lc-native": ["ok", "FAIL"], "lc-markers": ["ok", "ok"]}
    assert "(and 1 more dependency, ok wherever present)" in out   # lc-pure, transitive
    assert "FAIL: does not import there" in out and "-: not in that target's bundle" in out
