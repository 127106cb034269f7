"""host/once.py: an answer computed once per argument, callers in other threads waiting for
the one under way; and the build's interpreter warm-up that relies on it."""

from __future__ import annotations

import threading
import time

from lambda_compat.host import interpreters
from lambda_compat.host.once import once_per_argument


def test_a_call_under_way_is_waited_for_not_repeated():
    calls = []
    started = threading.Event()

    @once_per_argument
    def slow(x):
        calls.append(x)
        started.set()
        time.sleep(0.3)
        return x * 2

    thread = threading.Thread(target=slow, args=(21,))
    thread.start()
    started.wait(5)
    assert slow(21) == 42          # waited for the thread's call
    assert slow(1) == 2            # another argument: its own call
    thread.join()
    assert calls == [21, 1]
    slow.cache_clear()
    assert slow(21) == 42 and calls == [21, 1, 21]


def test_the_warm_up_probes_the_targets_interpreter_before_it_is_asked_for(monkeypatch):
    probed = []
    gate = threading.Event()

    def probe(path):
        probed.append(path)
        gate.wait(5)
        return None

    monkeypatch.setattr(interpreters, "_candidates", lambda version: iter(["/usr/bin/env"]))
    monkeypatch.setattr(interpreters, "probe", once_per_argument(probe))
    also = []
    thread = interpreters.warm_up((3, 12), "x86_64", also=lambda: also.append(True))
    time.sleep(0.2)
    assert also == [True] and probed == ["/usr/bin/env"]   # under way on its own thread
    gate.set()
    thread.join(5)
    # asked again (and by the pure-build search, for every version): the one answer
    assert interpreters.find_interpreter((3, 12), "x86_64") is None
    assert probed == ["/usr/bin/env"]


def test_a_pyenv_shim_is_not_probed_the_interpreter_behind_it_is(tmp_path, monkeypatch):
    """pyenv's shims run `pyenv exec` (a dozen processes) before Python: the interpreters
    under the pyenv root's versions/ are probed directly instead."""
    import os
    import sys

    root = tmp_path / "pyenv"
    (root / "shims").mkdir(parents=True)
    ran = tmp_path / "shim-ran"
    shim = root / "shims" / "python3.12"
    shim.write_text(f"#!/bin/sh\ntouch {ran}\nexec {sys.executable} \"$@\"\n")
    binary = root / "versions" / "3.12.7" / "bin" / "python3.12"
    binary.parent.mkdir(parents=True)
    binary.symlink_to(sys.executable)
    shim.chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(root))
    monkeypatch.setenv("PATH", f"{root / 'shims'}{os.pathsep}{os.environ['PATH']}")
    candidates = list(interpreters._candidates((3, 12)))
    assert str(shim) not in candidates
    assert candidates[0] == str(binary)
    # a python3.12 on PATH that is not a pyenv shim still comes first
    other = tmp_path / "bin" / "python3.12"
    other.parent.mkdir()
    other.symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{other.parent}{os.pathsep}{root / 'shims'}")
    assert list(interpreters._candidates((3, 12)))[:2] == [str(other), str(binary)]
    assert not ran.exists()
