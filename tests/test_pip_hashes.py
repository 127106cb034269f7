"""pip's hash checks in lambda-compat's pip process: each file's digest computed once.

The patch must keep pip's verdicts exactly (a mismatch raises pip's HashMismatch, a missing
hash pip's HashMissing) while reading a file that was already hashed in the process (by a
check, or by the prefetcher as it downloaded it) only once."""

from __future__ import annotations

import builtins
import hashlib
import os

import pytest
from pip._internal.exceptions import HashMismatch, HashMissing
from pip._internal.utils.hashes import Hashes, MissingHashes

from lambda_compat.resolve import pip_hashes


@pytest.fixture
def patched(monkeypatch):
    monkeypatch.setattr(Hashes, "check_against_path", Hashes.check_against_path)
    monkeypatch.setattr(pip_hashes, "_KNOWN", {})
    pip_hashes.install()
    reads = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        reads.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    return reads


def _wheel(tmp_path, content=b"wheel bytes " * 1000, name="p-1.0-py3-none-any.whl"):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path), hashlib.sha256(content).hexdigest()


def test_a_file_checked_once_is_not_read_again_nor_its_hard_link(patched, tmp_path):
    path, sha = _wheel(tmp_path)
    hashes = Hashes({"sha256": [sha]})
    hashes.check_against_path(path)
    assert patched.count(path) == 1
    hashes.check_against_path(path)
    assert patched.count(path) == 1        # remembered: not read again
    link = str(tmp_path / "cas-copy.whl")
    os.link(path, link)                   # the content-addressed cache's hard link
    Hashes({"sha256": ["00" * 32, sha]}).check_against_path(link)
    assert patched.count(link) == 0


def test_a_digest_the_prefetcher_remembered_is_taken_and_a_wrong_one_still_fails(
        patched, tmp_path):
    path, sha = _wheel(tmp_path)
    pip_hashes.remember(path, "sha256", sha)
    Hashes({"sha256": [sha]}).check_against_path(path)
    assert patched.count(path) == 0
    with pytest.raises(HashMismatch):     # another allowed digest: pip's own error
        Hashes({"sha256": ["ab" * 32]}).check_against_path(path)
    with pytest.raises(HashMissing):      # --require-hashes without a hash: pip's error
        MissingHashes().check_against_path(path)


def test_a_rewritten_file_is_read_again_and_its_mismatch_raises(patched, tmp_path):
    path, sha = _wheel(tmp_path)
    Hashes({"sha256": [sha]}).check_against_path(path)
    with open(path, "wb") as f:            # other bytes (and size) at the same path
        f.write(b"tampered")
    os.utime(path, ns=(1, 1))
    with pytest.raises(HashMismatch):
        Hashes({"sha256": [sha]}).check_against_path(path)
    # nothing about the failing bytes was remembered as a pass
    with pytest.raises(HashMismatch):
        Hashes({"sha256": [sha]}).check_against_path(path)


def test_a_hash_name_not_remembered_is_computed(patched, tmp_path):
    content = b"x" * 5000
    path, sha = _wheel(tmp_path, content)
    pip_hashes.remember(path, "sha256", sha)
    sha512 = hashlib.sha512(content).hexdigest()
    Hashes({"sha512": [sha512]}).check_against_path(path)  # read: no sha512 remembered
    assert patched.count(path) == 1
    with pytest.raises(HashMismatch):
        Hashes({"sha512": ["0" * 128]}).check_against_path(path)
    assert pip_hashes.known(path) == {"sha256": sha, "sha512": sha512}

