"""The shipped runtimes.yaml is schema-validated once per content, not on every start.

These tests are about the cache's memo, which is what applies when the shipped stamp
(registry/schema/validated.json, tests/test_validation_stamp.py) does not name the bytes:
they run as if it did not."""

from __future__ import annotations

import shutil

import pytest

from lambda_compat.registry import runtimes

from lambda_compat.registry import validation_memo
from lambda_compat.errors import RegistryError


@pytest.fixture(autouse=True)
def no_shipped_stamp(monkeypatch):
    monkeypatch.setattr(validation_memo, "shipped_valid", lambda root, paths: False)


@pytest.fixture
def counted(monkeypatch, tmp_path):
    monkeypatch.setenv("LAMBDA_COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real = runtimes._validate_schema

    def spy(validator, data, path):
        calls.append(path)
        return real(validator, data, path)

    monkeypatch.setattr(runtimes, "_validate_schema", spy)
    return calls


def test_shipped_file_is_validated_once(counted, tmp_path):
    shipped = str(runtimes.registry_dir() / runtimes.RUNTIMES_FILENAME)
    first = runtimes._load(shipped)
    second = runtimes._load(shipped)
    assert counted == [shipped]
    assert [t.name for t in first.targets] == [t.name for t in second.targets]
    assert list((tmp_path / "cache" / "validated-data").iterdir())


def test_user_file_is_always_validated(counted, tmp_path):
    mine = tmp_path / "runtimes.yaml"
    shutil.copyfile(runtimes.registry_dir() / runtimes.RUNTIMES_FILENAME, mine)
    runtimes._load(str(mine))
    runtimes._load(str(mine))
    assert counted == [str(mine), str(mine)]


def test_invalid_file_gets_no_stamp(monkeypatch, tmp_path):
    monkeypatch.setenv("LAMBDA_COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    bad = tmp_path / "runtimes.yaml"
    bad.write_text("targets: 3\n", encoding="utf-8")
    key = validation_memo.stamp_key(str(bad))
    monkeypatch.setattr(runtimes, "registry_dir", lambda: tmp_path)  # as if it were shipped
    schema_dir = tmp_path / "schema"
    schema_dir.mkdir()
    real_schema = runtimes.pathlib.Path(runtimes.__file__).resolve().parents[3] / "registry" / \
        "schema" / runtimes.SCHEMA_FILENAME
    shutil.copyfile(real_schema, schema_dir / runtimes.SCHEMA_FILENAME)
    with pytest.raises(RegistryError):
        runtimes._load(str(bad))
    assert not validation_memo.known_valid(
        validation_memo.stamp_key(str(bad), str(schema_dir / runtimes.SCHEMA_FILENAME)))
    assert key is not None


def test_shipped_package_registry_schema_check_is_remembered(monkeypatch, tmp_path):
    from lambda_compat.registry import packages

    monkeypatch.setenv("LAMBDA_COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    built = []
    real = packages._validator

    def spy(path):
        built.append(path)
        return real(path)

    monkeypatch.setattr(packages, "_validator", spy)
    packages.load_packages.cache_clear()
    try:
        first = packages.load_packages()
        packages.load_packages.cache_clear()
        second = packages.load_packages()
    finally:
        packages.load_packages.cache_clear()
    assert len(built) == 1  # the second process-like load skipped the schema
    assert [e.name for e in first.entries] == [e.name for e in second.entries]
    # A registry the user names is always checked against the schema.
    packages.check_registry(packages.Path(first.root))
    assert len(built) == 2
