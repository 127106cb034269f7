"""The shipped stamp (registry/schema/validated.json): the digests of the shipped data that
passed its schema. Stamped bytes are not validated again on a fresh cache; any other bytes
are; the stamp is written only after validating, and only for the shipped registry."""

from __future__ import annotations

import shutil

import pytest

from lambda_compat.cli import main as cli
from lambda_compat.errors import RegistryError
from lambda_compat.registry import packages, runtimes, validation_memo


def test_the_shipped_stamp_is_current():
    root = runtimes.registry_dir()
    assert validation_memo.shipped_valid(root, runtimes.shipped_files()), (
        "registry/runtimes.yaml or its schema changed since the stamp was written: run "
        "`lambda-compat registry validate --stamp` and commit registry/schema/validated.json")
    assert validation_memo.shipped_valid(root, packages.shipped_files(root)), (
        "registry/packages/ or its schema changed since the stamp was written: run "
        "`lambda-compat registry validate --stamp` and commit registry/schema/validated.json")


@pytest.fixture
def copied(tmp_path, monkeypatch):
    """The shipped registry copied (stamp included) and made the shipped one; a fresh cache."""
    root = tmp_path / "registry"
    shutil.copytree(runtimes.registry_dir(), root)
    monkeypatch.setattr(runtimes, "registry_dir", lambda: root)
    monkeypatch.setenv("LAMBDA_COMPAT_CACHE_DIR", str(tmp_path / "cache"))
    validated = []
    real = runtimes._validate_schema
    monkeypatch.setattr(runtimes, "_validate_schema",
                        lambda *a: validated.append(a[2]) or real(*a))
    return root, validated


def test_stamped_bytes_are_not_validated_again_and_other_bytes_are(copied):
    root, validated = copied
    path = str(root / runtimes.RUNTIMES_FILENAME)
    runtimes._load(path)
    assert validated == []
    (root / runtimes.RUNTIMES_FILENAME).write_text(
        (root / runtimes.RUNTIMES_FILENAME).read_text() + "\n# an edit\n")
    runtimes._load(path)
    assert validated == [path]
    # the package entries: stamped -> the schema is not run; edited -> it is
    assert validation_memo.shipped_valid(root, packages.shipped_files(root))
    entry = packages.shipped_files(root)[1]
    entry.write_text(entry.read_text() + "\n# an edit\n")
    assert not validation_memo.shipped_valid(root, packages.shipped_files(root))


def test_an_invalid_edit_is_caught_and_never_stamped(copied, capsys):
    root, _validated = copied
    data = root / runtimes.RUNTIMES_FILENAME
    data.write_text(data.read_text().replace("arch: x86_64", "arch: sparc", 1))
    before = (root / validation_memo.SHIPPED_STAMP).read_bytes()
    with pytest.raises(RegistryError, match="sparc"):
        runtimes._load(str(data))
    code = cli.main(["registry", "validate", "--stamp"])
    assert code != 0 and "sparc" in capsys.readouterr().err
    assert (root / validation_memo.SHIPPED_STAMP).read_bytes() == before


def test_stamp_writes_the_digests_of_the_shipped_registry_only(copied, capsys, tmp_path):
    root, _validated = copied
    data = root / runtimes.RUNTIMES_FILENAME
    data.write_text(data.read_text() + "\n# a valid edit\n")
    assert not validation_memo.shipped_valid(root, runtimes.shipped_files())
    assert cli.main(["registry", "validate", "--stamp"]) == 0
    assert "stamped:" in capsys.readouterr().out
    assert validation_memo.shipped_valid(root, runtimes.shipped_files())
    other = tmp_path / "other"
    shutil.copytree(root, other)
    assert cli.main(["registry", "validate", str(other), "--stamp"]) != 0
    assert "not it" in capsys.readouterr().err
