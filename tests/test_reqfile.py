"""reqfile.validate: good files pass with a requirement count; bad ones say file:line and why."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lambda_compat.errors import BadInput, RequirementsFileError
from lambda_compat.resolve.reqfile import logical_lines, validate

H1 = "sha256:" + "a" * 64
H2 = "sha256:" + "b" * 64


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def bad(path: Path) -> RequirementsFileError:
    with pytest.raises(RequirementsFileError) as info:
        validate(path)
    err = info.value
    assert isinstance(err, BadInput) and err.exit_code == 2
    return err


def assert_where(err: RequirementsFileError, path: Path, line: int, text: str) -> None:
    msg = str(err)
    assert f"{path}:{line}:" in msg, msg
    assert text in msg, msg
    assert err.line == line
    assert err.path == str(path)


# --------------------------------------------------------------------------- good files

def test_good_file_counts_requirements(tmp_path):
    write(tmp_path / "sub" / "more.txt", "# nested\nattrs==23.2.0\nsix\n")
    write(tmp_path / "sub" / "constraints.txt", "urllib3<3\nidna==3.7\n")
    req = write(tmp_path / "requirements.txt", f"""\
# A comment line
   # indented comment

-i https://pypi.org/simple
--index-url https://pypi.org/simple
--extra-index-url https://example.invalid/simple
-f ./wheelhouse
--find-links=https://example.invalid/links
--prefer-binary
--only-binary=:all:
requests==2.32.3  # pinned, trailing comment
boto3>=1.34 \\
    ,<2
orjson==3.10.7 \\
    --hash={H1} \\
    --hash={H2}
pyyaml==6.0.1 --hash={H1}
markupsafe==2.1.5 --hash {H1} --hash {H2}
orjson; platform_machine == "aarch64"
numpy>=1.26 ; python_version >= "3.9" and sys_platform == "linux"
./pkg
./vendor/thing-1.0-py3-none-any.whl
https://example.invalid/archive/foo-1.0.tar.gz
-r sub/more.txt
-c sub/constraints.txt
""")
    # 10 here (requests, boto3, orjson, pyyaml, markupsafe, orjson;marker, numpy, ./pkg, .whl,
    # URL) + 2 from the nested -r; constraints are not requirements.
    assert validate(req) == 12


def test_nested_paths_are_relative_to_the_including_file(tmp_path, monkeypatch):
    write(tmp_path / "a" / "b" / "deep.txt", "click==8.1.7\n")
    write(tmp_path / "a" / "mid.txt", "-r b/deep.txt\nflask\n")
    top = write(tmp_path / "top.txt", "--requirement=a/mid.txt\n--constraint a/b/deep.txt\n")
    # The current directory must not matter.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert validate(top) == 2


def test_include_cycle_terminates(tmp_path):
    write(tmp_path / "a.txt", "-r b.txt\nrequests\n")
    write(tmp_path / "b.txt", "-r a.txt\nsix\n")
    assert validate(tmp_path / "a.txt") == 2


def test_empty_and_comment_only_files(tmp_path):
    assert validate(write(tmp_path / "empty.txt", "")) == 0
    assert validate(write(tmp_path / "c.txt", "# only\n\n   \n# comments\n")) == 0


def test_bom_and_crlf_are_accepted(tmp_path):
    p = tmp_path / "win.txt"
    p.write_bytes(b"\xef\xbb\xbfrequests==2.32.3\r\nsix\r\n")
    assert validate(p) == 2


def test_logical_lines_keep_the_first_physical_line_number(tmp_path):
    p = write(tmp_path / "r.txt", f"# c\n\nfoo==1 \\\n  --hash={H1}\nbar  # x\n")
    lines = logical_lines(p)
    assert [(ln.number, ln.text) for ln in lines] == [
        (3, f"foo==1   --hash={H1}"), (5, "bar")]


# --------------------------------------------------------------------------- bad lines

def test_invalid_requirement(tmp_path):
    p = write(tmp_path / "requirements.txt", "# ok\nsix\nrequests==\n")
    err = bad(p)
    assert_where(err, p, 3, "requests==")
    assert "invalid requirement" in str(err)


def test_invalid_requirement_after_continuation_reports_first_line(tmp_path):
    p = write(tmp_path / "requirements.txt", "six\nrequests== \\\n  \n")
    err = bad(p)
    assert_where(err, p, 2, "requests==")


def test_unknown_option_suggests_closest(tmp_path):
    p = write(tmp_path / "requirements.txt", "six\n--index-ur https://pypi.org/simple\n")
    err = bad(p)
    assert_where(err, p, 2, "--index-ur https://pypi.org/simple")
    assert "unknown option --index-ur" in str(err)
    assert "Did you mean --index-url?" in str(err)


def test_unknown_option_without_close_match_has_no_suggestion(tmp_path):
    p = write(tmp_path / "requirements.txt", "--zzzzzzzzzzzz\n")
    err = bad(p)
    assert_where(err, p, 1, "--zzzzzzzzzzzz")
    assert "Did you mean" not in str(err)


@pytest.mark.parametrize("line", ["-e ./mypkg", "--editable ./mypkg",
                                  "-e git+https://example.invalid/x.git#egg=x"])
def test_editable_is_rejected(tmp_path, line):
    p = write(tmp_path / "requirements.txt", f"six\n\n{line}\n")
    err = bad(p)
    assert_where(err, p, 3, line)
    assert "editable" in str(err)


def test_missing_nested_requirement_file(tmp_path):
    p = write(tmp_path / "requirements.txt", "six\n-r missing.txt\n")
    err = bad(p)
    assert_where(err, p, 2, "-r missing.txt")
    assert str(tmp_path / "missing.txt") in str(err)


def test_error_inside_nested_file_names_the_nested_file(tmp_path):
    inner = write(tmp_path / "sub" / "inner.txt", "six\nflask\nrequests==\n")
    outer = write(tmp_path / "requirements.txt", "-r sub/inner.txt\n")
    err = bad(outer)
    assert_where(err, inner.resolve(), 3, "requests==")


def test_missing_file_has_no_line(tmp_path):
    p = tmp_path / "nope.txt"
    err = bad(p)
    assert err.line is None
    msg = str(err)
    assert msg.startswith(f"{p}: "), msg
    assert not re.search(re.escape(str(p)) + r":\d", msg)
    assert "not found" in msg


def test_directory(tmp_path):
    d = tmp_path / "reqs"
    d.mkdir()
    err = bad(d)
    assert err.line is None
    assert str(d) in str(err)
    assert "directory" in str(err)


@pytest.mark.parametrize("raw, line", [
    (b"six\nrequests==2\n\xff\xfe\n", 3),
    (b"\xe9t\xe9\n", 1),
    (b"six\n# caf\xe9\nflask\n", 2),
    # With a UTF-8 BOM the decoder's offsets do not count the BOM: the line must still be
    # the one holding the bad byte.
    (b"\xef\xbb\xbfa\n\xff\n", 2),
    (b"\xef\xbb\xbfsix\nab\n\xff\n", 3),
])
def test_non_utf8_reports_line_of_bad_byte(tmp_path, raw, line):
    p = tmp_path / "requirements.txt"
    p.write_bytes(raw)
    err = bad(p)
    assert err.line == line
    assert f"{p}:{line}:" in str(err)
    assert "UTF-8" in str(err)


@pytest.mark.parametrize("hash_text", ["--hash=abcdef0123", "--hash abcdef0123"])
def test_hash_without_algorithm(tmp_path, hash_text):
    p = write(tmp_path / "requirements.txt", f"six\nrequests==2.32.3 \\\n    {hash_text}\n")
    err = bad(p)
    assert_where(err, p, 2, "abcdef0123")
    assert "algorithm:hexdigest" in str(err)


@pytest.mark.parametrize("tail", ["--hash", f"--hash --hash={H1}"])
def test_hash_without_value(tmp_path, tail):
    p = write(tmp_path / "requirements.txt", f"requests==2.32.3 {tail}\n")
    err = bad(p)
    assert_where(err, p, 1, f"requests==2.32.3 {tail}")
    assert "algorithm:hexdigest" in str(err)


def test_option_after_requirement_is_rejected(tmp_path):
    p = write(tmp_path / "requirements.txt", "requests==2.32.3 --index-url https://x.invalid\n")
    err = bad(p)
    assert_where(err, p, 1, "requests==2.32.3 --index-url")


@pytest.mark.parametrize("line", ["-r", "-i", "--hash"])
def test_option_needing_a_value(tmp_path, line):
    p = write(tmp_path / "requirements.txt", f"six\n{line}\n")
    err = bad(p)
    assert_where(err, p, 2, line)
    assert "needs" in str(err)
