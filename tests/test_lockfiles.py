"""Lock files -> the default set for one target, as a hash-pinned requirements file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from packaging.version import Version

from lambda_compat import errors

from lambda_compat.resolve import reqfile
from lambda_compat.registry.runtimes import get_target
from lambda_compat.package.lockfiles.dispatch import lock_kind, select
from lambda_compat.package.lockfiles.poetry import _poetry_constraint

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = ROOT / "fixtures" / "projects" / "locked" / "offline"
PYPI = ROOT / "fixtures" / "projects" / "locked" / "pypi"
INDEX_HASHES = json.loads((ROOT / "fixtures" / "index" / "hashes.json").read_text())

OFFLINE_LOCKS = ["pipenv/Pipfile.lock", "poetry/poetry.lock", "poetry-1.1/poetry.lock",
                 "uv/uv.lock", "pylock/pylock.toml"]
PYPI_LOCKS = ["pipenv/Pipfile.lock", "poetry/poetry.lock", "uv/uv.lock", "pylock/pylock.toml"]

#: What each target gets from the offline fixtures (lc-markers==1.0, lc-abi3==1.0).
OFFLINE_EXPECTED = {
    ("python3.12", "x86_64"): {"lc-abi3": "1.0", "lc-markers": "1.0", "lc-pure": "1.1"},
    ("python3.10", "x86_64"): {"lc-abi3": "1.0", "lc-markers": "1.0", "lc-pure": "1.1",
                               "lc-old-python": "1.0"},
    ("python3.9", "arm64"): {"lc-abi3": "1.0", "lc-markers": "1.0", "lc-pure": "1.1",
                             "lc-old-python": "1.0", "lc-transitive": "1.0",
                             "lc-arm-only": "1.0"},
}


@pytest.mark.parametrize("lock", OFFLINE_LOCKS)
@pytest.mark.parametrize("target", sorted(OFFLINE_EXPECTED))
def test_offline_locks_select_the_main_set_for_the_target(lock, target):
    sel = select(OFFLINE / lock, get_target(*target))
    assert {p.name: p.version for p in sel.pins} == OFFLINE_EXPECTED[target]
    # Development-only: lc-rp-trap and lc-extra-dep (lc-markers[fancy] is asked for by dev).
    assert set(sel.excluded_dev) == {"lc-rp-trap", "lc-extra-dep"}
    all_main = {"lc-abi3", "lc-markers", "lc-pure", "lc-old-python", "lc-transitive",
                "lc-arm-only"}
    assert set(sel.excluded_marker) == all_main - set(OFFLINE_EXPECTED[target])
    assert sel.hashed


@pytest.mark.parametrize("lock", OFFLINE_LOCKS)
def test_requirements_text_is_valid_pinned_and_hashed(lock, tmp_path):
    sel = select(OFFLINE / lock, get_target("python3.9", "arm64"))
    path = sel.write_requirements(tmp_path / "req.txt")
    assert reqfile.validate(path) == 6
    text = path.read_text()
    for pin in sel.pins:
        assert re.search(rf"^{re.escape(pin.name)}=={re.escape(pin.version)}\b", text, re.M)
    # Every hash written is a real file of the pinned version, and every file is covered.
    written = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", text))
    expected = {h for f, h in INDEX_HASHES.items()
                if any(f.startswith(p.name.replace("-", "_") + f"-{p.version}-")
                       for p in sel.pins)}
    assert written == expected
    assert "lc-rp-trap" not in text and "lc-extra-dep" not in text


def test_offline_locks_warn_about_their_private_index():
    for lock in OFFLINE_LOCKS:
        sel = select(OFFLINE / lock, get_target("python3.12", "x86_64"))
        assert any("packages.example.internal" in w for w in sel.warnings), lock


def test_lock_markers_are_kept_where_the_format_has_them():
    t = get_target("python3.10", "arm64")
    pip = {p.name: p.marker for p in select(PYPI / "pipenv/Pipfile.lock", t).pins}
    assert pip == {"exceptiongroup": 'python_version < "3.11"', "sortedcontainers": None}
    poetry = {p.name: p.marker for p in select(PYPI / "poetry/poetry.lock", t).pins}
    assert poetry["exceptiongroup"] == 'python_version < "3.11"'
    pylock = {p.name: p.marker for p in select(PYPI / "pylock/pylock.toml", t).pins}
    assert pylock["exceptiongroup"] == 'python_full_version < "3.11"'
    # uv.lock records markers on edges only: the walk decided, the line says via whom.
    uv = select(PYPI / "uv/uv.lock", t)
    assert {p.name: p.marker for p in uv.pins} == {"exceptiongroup": None,
                                                   "sortedcontainers": None}
    assert "# via (project)" in uv.requirements_text()


@pytest.mark.parametrize("lock", PYPI_LOCKS)
def test_pypi_locks_leave_pytest_out(lock):
    for target, expected in ((("python3.12", "x86_64"), {"sortedcontainers": "2.4.0"}),
                             (("python3.10", "arm64"), {"sortedcontainers": "2.4.0",
                                                        "exceptiongroup": "1.2.2"})):
        sel = select(PYPI / lock, get_target(*target))
        assert {p.name: p.version for p in sel.pins} == expected
        assert {"pytest", "iniconfig", "pluggy", "packaging", "colorama"} <= \
            set(sel.excluded_dev)
        for pin in sel.pins:
            assert len(pin.hashes) == 2     # the wheel and the sdist


def test_pipfile_lock_for_another_python_warns():
    sel = select(PYPI / "pipenv/Pipfile.lock", get_target("python3.10", "x86_64"))
    assert any("locked for Python 3.12" in w for w in sel.warnings)
    sel = select(PYPI / "pipenv/Pipfile.lock", get_target("python3.12", "x86_64"))
    assert not sel.warnings


def test_lock_kind_by_name(tmp_path):
    assert lock_kind(Path("Pipfile.lock")) == "pipfile.lock"
    assert lock_kind(Path("x/poetry.lock")) == "poetry.lock"
    assert lock_kind(Path("uv.lock")) == "uv.lock"
    assert lock_kind(Path("pylock.toml")) == "pylock.toml"
    assert lock_kind(Path("pylock.prod.toml")) == "pylock.toml"
    assert lock_kind(Path("pylock.a.b.toml")) is None
    assert lock_kind(Path("requirements.txt")) is None
    with pytest.raises(errors.BadInput, match="not a lock file"):
        select(tmp_path / "requirements.txt", get_target("python3.12", "x86_64"))


@pytest.mark.parametrize("text,version,ok", [
    ("^1.2", "1.9.9", True), ("^1.2", "2.0", False), ("^0.3", "0.3.5", True),
    ("^0.3", "0.4", False), ("~1.2", "1.2.9", True), ("~1.2", "1.3", False),
    (">=1.0,<2", "1.5", True), (">=1.0 <2", "2.0", False), ("*", "9", True),
    ("1.0", "1.0", True), ("==1.0", "1.1", False), ("1.2.*", "1.2.7", True),
])
def test_poetry_constraints(text, version, ok):
    assert _poetry_constraint(text).contains(Version(version), prereleases=True) is ok


# -- bad input: what, where, how to fix --------------------------------------------------

T312 = ("python3.12", "x86_64")


def copy_lock(src: Path, tmp_path: Path, name: str = None) -> Path:
    dest = tmp_path / (name or src.name)
    shutil.copy(src, dest)
    return dest


def test_invalid_toml_names_the_file(tmp_path):
    p = tmp_path / "uv.lock"
    p.write_text("version = 1\n[[package]\nname = 'x'\n")
    with pytest.raises(errors.BadInput, match=r"uv\.lock: not valid TOML .*line 2"):
        select(p, get_target(*T312))


def test_invalid_json_names_the_line(tmp_path):
    p = tmp_path / "Pipfile.lock"
    p.write_text('{\n  "default": {\n    "x": {"version": "==1"},\n  }\n}\n')
    with pytest.raises(errors.BadInput, match=r"Pipfile\.lock:4: not valid JSON"):
        select(p, get_target(*T312))


def test_unpinned_pipfile_entry(tmp_path):
    p = tmp_path / "Pipfile.lock"
    p.write_text(json.dumps({"_meta": {}, "default": {"lc-pure": {"version": "*"}},
                             "develop": {}}, indent=4))
    with pytest.raises(errors.BadInput, match=r"Pipfile\.lock:4: lc-pure is not pinned"):
        select(p, get_target(*T312))


def test_old_poetry_lock_without_pyproject_is_an_error(tmp_path):
    lock = copy_lock(OFFLINE / "poetry" / "poetry.lock", tmp_path)
    with pytest.raises(errors.BadInput, match="no pyproject.toml beside it") as e:
        select(lock, get_target(*T312))
    assert "lock-version 2.0" in str(e.value)


def test_poetry_lock_missing_a_dependency(tmp_path):
    lock = copy_lock(OFFLINE / "poetry" / "poetry.lock", tmp_path)
    shutil.copy(OFFLINE / "poetry" / "pyproject.toml", tmp_path)
    text = lock.read_text()
    start = text.index('[[package]]\nname = "lc-pure"')
    end = text.index("[[package]]", start + 5)
    lock.write_text(text[:start] + text[end:])
    with pytest.raises(errors.BadInput, match="lc-markers requires lc-pure, which the lock "
                                              "does not contain") as e:
        select(lock, get_target(*T312))
    assert "poetry lock" in str(e.value)


def test_uv_lock_without_the_project(tmp_path):
    lock = copy_lock(OFFLINE / "uv" / "uv.lock", tmp_path)
    lock.write_text(lock.read_text().replace('source = { virtual = "." }',
                                             'source = { registry = "https://x/simple" }'))
    with pytest.raises(errors.BadInput, match="the project itself is missing"):
        select(lock, get_target(*T312))


def test_lock_for_other_pythons(tmp_path):
    for src in (OFFLINE / "uv" / "uv.lock", OFFLINE / "pylock" / "pylock.toml"):
        lock = copy_lock(src, tmp_path)
        lock.write_text(lock.read_text().replace('requires-python = ">=3.9"',
                                                 'requires-python = ">=3.13"', 1))
        with pytest.raises(errors.BadInput, match=r"requires Python >=3\.13; python3\.12 is "
                                                  r"Python 3\.12"):
            select(lock, get_target(*T312))


def test_pylock_environments_exclude_the_target(tmp_path):
    lock = copy_lock(OFFLINE / "pylock" / "pylock.toml", tmp_path)
    lock.write_text(lock.read_text().replace(
        'extras = []', "environments = [\"sys_platform == 'darwin'\"]\nextras = []"))
    with pytest.raises(errors.BadInput, match="is not one of them"):
        select(lock, get_target(*T312))


def test_local_directory_source_turns_hash_checking_off_with_a_warning(tmp_path):
    lock = copy_lock(OFFLINE / "uv" / "uv.lock", tmp_path)
    (tmp_path / "libs" / "helper").mkdir(parents=True)
    text = lock.read_text().replace(
        '    { name = "lc-abi3" },\n    { name = "lc-markers" },\n]',
        '    { name = "lc-abi3" },\n    { name = "lc-markers" },\n    { name = "helper" },\n]', 1)
    text += ('\n[[package]]\nname = "helper"\nversion = "0.1.0"\n'
             'source = { directory = "libs/helper" }\n')
    lock.write_text(text)
    sel = select(lock, get_target(*T312))
    helper = next(p for p in sel.pins if p.name == "helper")
    assert helper.reference == (tmp_path / "libs" / "helper").as_uri()
    assert not sel.hashed
    assert any("hash checking is off" in w and "helper" in w for w in sel.warnings)
    text = sel.requirements_text()
    assert "--hash" not in text
    assert f"helper @ {(tmp_path / 'libs' / 'helper').as_uri()}" in text


def test_bad_hash_in_a_lock(tmp_path):
    lock = copy_lock(OFFLINE / "pylock" / "pylock.toml", tmp_path)
    lock.write_text(lock.read_text().replace('sha256 = "7697', 'sha256 = "zz97', 1))
    with pytest.raises(errors.BadInput, match="is not algorithm:hexdigest"):
        select(lock, get_target(*T312))


def test_pylock_is_validated_by_packaging_and_the_error_says_where(tmp_path):
    # PEP 751: a wheel's hashes are required; packaging.pylock says so, our message adds
    # the file, the line of the [[packages]] entry, the package and the fix.
    lock = copy_lock(OFFLINE / "pylock" / "pylock.toml", tmp_path)
    text = lock.read_text()
    start = text.index('name = "lc-markers"')
    bad = text[start:].replace(', hashes = { sha256 = "6fbafd5e', ', xhashes = { sha256 = "6fbafd5e', 1)
    lock.write_text(text[:start] + bad)
    line = text[:start].count("\n")   # the [[packages]] line above the name
    with pytest.raises(errors.BadInput) as e:
        select(lock, get_target(*T312))
    msg = str(e.value)
    assert msg.startswith(f"{lock}:{line}: not a valid pylock.toml: Missing required value")
    assert "packages[3].wheels[0].hashes" in msg and "the package lc-markers" in msg
    assert "Regenerate the lock file with its tool" in e.value.hint


def test_pylock_missing_a_required_top_level_key(tmp_path):
    lock = copy_lock(OFFLINE / "pylock" / "pylock.toml", tmp_path)
    lock.write_text(lock.read_text().replace('created-by = "lambda-compat-fixture"\n', ""))
    with pytest.raises(errors.BadInput, match=rf"^{re.escape(str(lock))}: not a valid "
                                              r"pylock\.toml: Missing required value "
                                              r"\(at created-by\)\."):
        select(lock, get_target(*T312))


def test_pylock_lock_versions(tmp_path, capsys, caplog):
    lock = copy_lock(OFFLINE / "pylock" / "pylock.toml", tmp_path)
    text = lock.read_text()
    lock.write_text(text.replace('lock-version = "1.0"', 'lock-version = "2.0"'))
    with pytest.raises(errors.BadInput, match=r"pylock\.toml:3: lock-version 2\.0 is not "
                                              r"supported \(only 1\.x\)\."):
        select(lock, get_target(*T312))
    # A later 1.x is read as before, without a word (packaging would log a warning).
    lock.write_text(text.replace('lock-version = "1.0"', 'lock-version = "1.1"'))
    sel = select(lock, get_target(*T312))
    assert {p.name for p in sel.pins} == set(OFFLINE_EXPECTED[T312])
    assert capsys.readouterr() == ("", "")
    assert not [r for r in caplog.records if r.name.startswith("packaging")]
