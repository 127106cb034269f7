"""The dynamic proof cache: a proof is reused only when every input of it is the same."""

from __future__ import annotations

import json
import os

import pytest

from lambda_compat.prove import proof_cache
from lambda_compat.prove.backends.results import DynamicResult, ImportOutcome
from lambda_compat.registry.runtimes import get_target


class FakeBackend:
    proof = "host"

    def __init__(self, ident="python-a", reason=None, error=None):
        self.target = get_target("python3.12", "x86_64")
        self.ident, self.reason, self.error = ident, reason, error
        self.runs = 0

    def describe(self):
        return "fake host"

    def identity(self):
        return None if self.ident is None else {"sha256": self.ident}

    def import_modules(self, task_dir, layer_dirs, modules, *, handler=None, timeout=120,
                       after=None):
        self.runs += 1
        outcomes = tuple(ImportOutcome(d, m, self.reason is None, None, self.reason)
                         for d, m in modules)
        return DynamicResult(target=self.target.name, proof="host", backend="fake host",
                             outcomes=outcomes, python="3.12.1", error=self.error)


def _run(backend, cache, task, layers=()):
    return proof_cache.import_modules(backend, cache, task, list(layers), [("six", "six")],
                                      handler=None, timeout=120, after={})


@pytest.fixture
def task(tmp_path):
    d = tmp_path / "task"
    (d / "six").mkdir(parents=True)
    (d / "six" / "__init__.py").write_text("x = 1\n")
    return d


def test_same_inputs_reuse_the_proof_and_say_so(tmp_path, task):
    cache = proof_cache.ProofCache(tmp_path / "proofs")
    backend = FakeBackend()
    first = _run(backend, cache, task)
    assert first.cached_from is None and backend.runs == 1
    again = _run(backend, proof_cache.ProofCache(tmp_path / "proofs"), task)  # a new process
    assert backend.runs == 1
    assert again.cached_from and again.outcomes == first.outcomes and again.ok
    assert again.to_dict()["cached_from"] == again.cached_from


def test_any_changed_input_runs_it_again(tmp_path, task, monkeypatch):
    cache = proof_cache.ProofCache(tmp_path / "proofs")
    backend = FakeBackend()
    _run(backend, cache, task)
    f = task / "six" / "__init__.py"
    st = f.stat()
    f.write_text("x = 2\n")  # same size, same mtime: the ctime and content still differ
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert _run(backend, cache, task).cached_from is None and backend.runs == 2
    (task / "six" / "extra.py").write_text("")
    assert _run(backend, cache, task).cached_from is None and backend.runs == 3
    other = FakeBackend(ident="python-b")  # another interpreter binary
    assert _run(other, cache, task).cached_from is None and other.runs == 1
    layer = tmp_path / "layer"
    layer.mkdir()
    assert _run(backend, cache, task, [layer]).cached_from is None and backend.runs == 4
    monkeypatch.setattr("lambda_compat.prove.backends.base.probe_source",
                        lambda: "# another probe\n")
    assert _run(backend, cache, task).cached_from is None and backend.runs == 5
    monkeypatch.undo()
    assert _run(backend, cache, task).cached_from is not None and backend.runs == 5


def test_not_stored_or_not_reused(tmp_path, task):
    cache = proof_cache.ProofCache(tmp_path / "proofs")
    for backend in (FakeBackend(reason="timeout"), FakeBackend(error="could not start"),
                    FakeBackend(ident=None)):
        _run(backend, cache, task)
        assert _run(backend, cache, task).cached_from is None and backend.runs == 2
    failing = FakeBackend(ident="python-c", reason="import-error")  # a failure is a proof too
    _run(failing, cache, task)
    assert _run(failing, cache, task).cached_from and failing.runs == 1
    refresh = proof_cache.ProofCache(tmp_path / "proofs", reuse=False)
    assert _run(failing, refresh, task).cached_from is None and failing.runs == 2


def test_tree_fingerprint_sees_modes_and_links(tmp_path, task):
    hashes = proof_cache.FileHashes(None)
    before = proof_cache.tree_fingerprint(task, hashes)
    os.chmod(task / "six" / "__init__.py", 0o755)
    after_mode = proof_cache.tree_fingerprint(task, hashes)
    os.symlink("six", task / "alias")
    after_link = proof_cache.tree_fingerprint(task, hashes)
    assert len({before, after_mode, after_link}) == 3


def test_hard_linked_files_are_hashed_once_across_processes(tmp_path, task, monkeypatch):
    os.link(task / "six" / "__init__.py", tmp_path / "link")
    memo = tmp_path / "memo.json"
    first = proof_cache.FileHashes(memo)
    fp = proof_cache.tree_fingerprint(task, first)
    first.save()
    calls = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda *a, **k: calls.append(a) or real_open(*a, **k))
    assert proof_cache.tree_fingerprint(task, proof_cache.FileHashes(memo)) == fp
    assert not [c for c in calls if str(c[0]).endswith("__init__.py")]


def test_small_single_link_files_are_not_remembered_across_processes(tmp_path, task):
    # the RECORD and INSTALLER files each install writes anew would only grow the memo
    (task / "big.bin").write_bytes(b"x" * proof_cache._SMALL)
    memo = tmp_path / "memo.json"
    first = proof_cache.FileHashes(memo)
    fp = proof_cache.tree_fingerprint(task, first)
    first.save()
    saved = json.loads(memo.read_text())["hashes"]
    small = os.stat(task / "six" / "__init__.py")
    big = os.stat(task / "big.bin")
    assert small.st_nlink == 1 and small.st_size < proof_cache._SMALL
    assert proof_cache.FileHashes._key(small) not in saved
    assert proof_cache.FileHashes._key(big) in saved
    # within the process it is still hashed once; the fingerprint is the same either way
    assert proof_cache.tree_fingerprint(task, first) == fp
    assert proof_cache.tree_fingerprint(task, proof_cache.FileHashes(memo)) == fp


def test_host_and_rootfs_identities_name_their_binaries(tmp_path):
    import hashlib
    import sys

    from lambda_compat.host.interpreters import probe
    from lambda_compat.prove.backends.host import HostBackend
    from lambda_compat.prove.backends.rootfs import RootfsBackend

    v = "python%d.%d" % sys.version_info[:2]
    interp = probe(sys.executable)
    backend = HostBackend(get_target(v, "x86_64"), interp, confine=False)
    ident = backend.identity()
    real = os.path.realpath(backend.executable)
    with open(real, "rb") as f:
        assert ident["sha256"] == hashlib.sha256(f.read()).hexdigest()
    rootfs = RootfsBackend(get_target(v, "x86_64"), None)
    assert rootfs.identity() is None  # no root yet: never reused


def test_a_bundle_not_yet_installed_is_installed_before_its_key_is_made(tmp_path, task):
    """A check that remembered the static proof installs its bundle lazily (``prepare``).
    With the fingerprint unknown the key must be the installed bundle's, never that of the
    empty directory (an empty bundle's proof would pass for any bundle); with it known, a
    reused proof needs no install at all."""
    cache = proof_cache.ProofCache(tmp_path / "proofs")
    backend = FakeBackend()
    empty = tmp_path / "empty"
    empty.mkdir()
    _run(backend, cache, empty)                         # a proof of an empty bundle, stored
    lazy = tmp_path / "lazy"
    installed = []

    def prepare():
        installed.append(True)
        import shutil
        shutil.copytree(task, lazy)

    got = proof_cache.import_modules(backend, cache, lazy, [], [("six", "six")], handler=None,
                                     timeout=120, after={}, prepare=prepare)
    assert installed == [True] and got.cached_from is None and backend.runs == 2
    # the fingerprint known (a remembered static proof): the stored proof, nothing installed
    fingerprint = proof_cache.tree_fingerprint(task, cache.hashes)
    again = proof_cache.import_modules(backend, cache, tmp_path / "never", [], [("six", "six")],
                                       handler=None, timeout=120, after={},
                                       bundle_fingerprint=fingerprint,
                                       prepare=lambda: installed.append(True))
    assert again.cached_from and installed == [True] and backend.runs == 2
