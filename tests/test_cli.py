"""The CLI: exit codes, messages without tracebacks, JSON output valid against its schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from conftest import INDEX, write_reqs
from lambda_compat.cli.main import main

SCHEMA = json.loads((Path(__file__).parent.parent / "resolver" / "lambda_compat" / "schemas"
                     / "build-report.schema.json").read_text())


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def index_args(cache):
    return ["-i", (INDEX / "simple").as_uri(), "--isolated", "--cache-dir", str(cache)]


def test_json_report_is_valid_and_versioned(tmp_path, capsys, shared_cache):
    req = write_reqs(tmp_path, "lc-markers==1.0\nlc-native==1.0\n")
    code, out, err = run(capsys, "build", "-r", str(req), "--runtime", "python3.12", "--arch",
                         "arm64", "-o", str(tmp_path / "out"), "--format", "json",
                         *index_args(shared_cache))
    assert code == 0, err
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["version"] == 1 and data["status"] == "built"
    assert data["target"] == {"runtime": "python3.12", "arch": "arm64", "machine": "aarch64",
                              "python": data["target"]["python"], "glibc": "2.34"}
    phases = {d["name"]: d["phase"] for d in data["distributions"]}
    assert phases["lc-arm-only"] == "wheel"


def test_missing_exit_1_and_valid_json(tmp_path, capsys, shared_cache):
    req = write_reqs(tmp_path, "lc-native==2.0\n")
    code, out, _ = run(capsys, "build", str(req), "--runtime", "python3.11", "-o",
                       str(tmp_path / "out"), "--format", "json", *index_args(shared_cache))
    assert code == 1
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["status"] == "missing" and data["distributions"][0]["reason_code"] == "glibc-too-new"


def test_text_summary_table(tmp_path, capsys, shared_cache, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    req = write_reqs(tmp_path, "lc-pure==1.1\n")
    code, out, _ = run(capsys, "build", "-r", str(req), "--runtime", "python3.12", "-o",
                       str(tmp_path / "out"), *index_args(shared_cache))
    assert code == 0
    assert "DISTRIBUTION" in out and "lc-pure" in out and "\033[" not in out


@pytest.mark.parametrize("argv,needle", [
    (["--runtime", "python3.21"], "python3.1"),
    (["--runtime", "pyhton3.12"], "python3.12"),
    (["--runtime", "python3.12", "--arch", "arm46"], "arm64"),
])
def test_unknown_target_exit_2_with_suggestion(tmp_path, capsys, argv, needle):
    req = write_reqs(tmp_path, "lc-pure\n")
    code, _, err = run(capsys, "build", "-r", str(req), "-o", str(tmp_path / "o"), *argv)
    assert code == 2 and needle in err and "Traceback" not in err


def test_bad_requirement_names_file_and_line(tmp_path, capsys):
    req = write_reqs(tmp_path, "# deps\nrequests==2.32.3\nflask >= = 2\n")
    code, _, err = run(capsys, "build", "-r", str(req), "--runtime", "python3.12", "-o",
                       str(tmp_path / "o"))
    assert code == 2 and f"{req}:3" in err and "flask >= = 2" in err and "Traceback" not in err


def test_missing_requirements_file(tmp_path, capsys):
    code, _, err = run(capsys, "build", "-r", str(tmp_path / "nope.txt"), "--runtime",
                       "python3.12", "-o", str(tmp_path / "o"))
    assert code == 2 and "nope.txt" in err and "not found" in err


def test_unreachable_index_exit_3(tmp_path, capsys, shared_cache):
    req = write_reqs(tmp_path, "lc-pure==1.0\n")
    code, _, err = run(capsys, "build", "-r", str(req), "--runtime", "python3.12", "-o",
                       str(tmp_path / "o"), "-i", "http://127.0.0.1:9/simple", "--isolated",
                       "--cache-dir", str(shared_cache))
    assert code == 3 and "127.0.0.1:9" in err and "Traceback" not in err


def test_output_is_a_file(tmp_path, capsys):
    req = write_reqs(tmp_path, "lc-pure\n")
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "build", "-r", str(req), "--runtime", "python3.12", "-o",
                       str(tmp_path / "file"))
    assert code == 2 and "not a directory" in err
