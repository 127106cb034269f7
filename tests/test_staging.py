"""build/staging.py: a bundle's staging directory filled while pip resolves (EarlyInstall)
is completed and swapped in only when it holds exactly wheels of the final list; otherwise
the install starts afresh. Either way the bundle is what a fresh install makes, and nothing
is left beside the artifacts directory."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from lambda_compat.build.install import wheel_sha256
from lambda_compat.build.staging import EarlyInstall, install_and_swap
from lambda_compat.errors import BadInput

from test_install import build_wheel, tree


@pytest.fixture
def wheels(tmp_path):
    d = tmp_path / "wheels"
    d.mkdir()
    return {
        "a": build_wheel(d, "alpha", "1.0", [("alpha/__init__.py", b"A = 1\n"),
                                             ("shared/same.py", b"S = 0\n")]),
        "b": build_wheel(d, "beta", "2.0", [("beta/__init__.py", b"B = 2\n"),
                                            ("beta/sub/x.so", b"\x7fELF" + bytes(500)),
                                            ("shared/same.py", b"S = 0\n")]),
        "c": build_wheel(d, "gamma", "3.0", [("gamma.py", b"G = 3\n")]),
        "clash": build_wheel(d, "delta", "4.0", [("alpha/__init__.py", b"D = 4\n")]),
    }


def _in_cache(wheel: Path, cas: Path) -> Path:
    """The wheel as the early judge hands it over: its copy in the content-addressed cache
    (the final list names pip's copy of the same file)."""
    sha = wheel_sha256(wheel)
    kept = cas / sha[:2] / sha / wheel.name
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wheel, kept)
    return kept


def _beside(artifacts: Path):
    return sorted(p.name for p in artifacts.parent.iterdir() if p.name != artifacts.name)


def test_a_bundle_begun_early_is_completed_and_is_a_fresh_install(tmp_path, wheels):
    base = tmp_path / "run"
    base.mkdir()
    early = EarlyInstall(base / "out", tmp_path / "unpacked")
    for w in ("a", "b"):
        early.add(_in_cache(wheels[w], tmp_path / "files"))
    assert early.path.is_dir()
    final = [wheels["a"], wheels["b"], wheels["c"]]
    assert install_and_swap(final, base / "out", 2, tmp_path / "unpacked", early) == 2
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert install_and_swap(final, fresh / "out", 2, tmp_path / "unpacked") == 0
    assert tree(base / "out") == tree(fresh / "out")
    assert (base / "out" / "gamma.py").is_file()
    assert _beside(base / "out") == []          # the staging directory became the bundle
    early.discard()                              # the builder's finally: nothing to remove
    assert (base / "out" / "alpha" / "__init__.py").is_file()


def test_a_wheel_installed_early_that_the_final_list_drops_is_not_in_the_bundle(tmp_path,
                                                                                wheels):
    (tmp_path / "run").mkdir()
    artifacts = tmp_path / "run" / "out"
    early = EarlyInstall(artifacts, tmp_path / "unpacked")
    early.add(wheels["a"])
    early.add(wheels["c"])                       # pip backtracked: not in the final list
    assert install_and_swap([wheels["a"], wheels["b"]], artifacts, 2, tmp_path / "unpacked",
                            early) == 0          # a fresh directory
    assert not (artifacts / "gamma.py").exists()
    assert not list(artifacts.glob("gamma-*.dist-info"))
    assert (artifacts / "beta" / "sub" / "x.so").is_file()
    assert _beside(artifacts) == []


def test_a_conflict_met_early_is_met_again_and_the_old_bundle_survives(tmp_path, wheels):
    (tmp_path / "run").mkdir()
    artifacts = tmp_path / "run" / "out"
    artifacts.mkdir()
    (artifacts / "old.py").write_text("kept\n")
    early = EarlyInstall(artifacts, tmp_path / "unpacked")
    early.add(wheels["a"])
    early.add(wheels["clash"])                   # alpha/__init__.py with other content
    with pytest.raises(BadInput, match="alpha/__init__.py"):
        install_and_swap([wheels["a"], wheels["clash"]], artifacts, 2, tmp_path / "unpacked",
                         early)
    assert [p.name for p in artifacts.iterdir()] == ["old.py"]
    assert _beside(artifacts) == []


def test_a_build_that_installs_nothing_leaves_no_staging_directory(tmp_path, wheels):
    (tmp_path / "run").mkdir()
    artifacts = tmp_path / "run" / "out"
    early = EarlyInstall(artifacts, tmp_path / "unpacked")
    early.add(wheels["a"])
    assert early.path.is_dir()
    early.discard()                              # a failed build's finally
    assert _beside(artifacts) == [] and not artifacts.exists()
    early.add(wheels["b"])                       # too late: ignored, nothing made
    assert _beside(artifacts) == []


def test_the_final_install_waits_for_an_early_install_under_way(tmp_path, wheels,
                                                                 monkeypatch):
    from lambda_compat.build import install as install_mod
    (tmp_path / "run").mkdir()
    artifacts = tmp_path / "run" / "out"
    early = EarlyInstall(artifacts, tmp_path / "unpacked")
    started, release = threading.Event(), threading.Event()
    real = install_mod.install_from_cache

    def slow(*args, **kwargs):
        started.set()
        assert release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(install_mod, "install_from_cache", slow)
    worker = threading.Thread(target=early.add, args=(wheels["a"],))
    worker.start()
    assert started.wait(10)
    monkeypatch.setattr(install_mod, "install_from_cache", real)
    threading.Timer(0.3, release.set).start()
    assert install_and_swap([wheels["a"], wheels["b"]], artifacts, 2, tmp_path / "unpacked",
                            early) == 1          # a's install finished first, and counted
    worker.join(5)
    assert (artifacts / "alpha" / "__init__.py").read_bytes() == b"A = 1\n"


def test_nothing_is_installed_early_where_the_artifacts_parent_does_not_exist(tmp_path, wheels):
    """A failed build must not leave a directory it made: the parent is made only by the
    final install, as before."""
    artifacts = tmp_path / "new" / "out"
    early = EarlyInstall(artifacts, tmp_path / "unpacked")
    early.add(wheels["a"])
    assert not (tmp_path / "new").exists()
    early.discard()                              # the build failed
    assert not (tmp_path / "new").exists()
    early = EarlyInstall(artifacts, tmp_path / "unpacked")
    early.add(wheels["a"])
    assert install_and_swap([wheels["a"]], artifacts, 2, tmp_path / "unpacked", early) == 0
    assert (artifacts / "alpha" / "__init__.py").is_file() and _beside(artifacts) == []
