"""Re-reading AWS's runtime table into registry/runtimes.yaml (the weekly refresh workflow)."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest

from lambda_compat import errors
from lambda_compat.cli.lifecycle_merge import main
from lambda_compat.registry.lifecycle_merge import merge_file, parse_date, parse_runtime_table
from lambda_compat.registry.runtimes import load_runtimes, registry_dir

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "fixtures" / "lifecycle" / "lambda-runtimes.html"
DAY = datetime.date(2026, 12, 9)


@pytest.fixture
def runtimes(tmp_path):
    pytest.importorskip("ruamel.yaml")
    reg = tmp_path / "registry"
    shutil.copytree(registry_dir() / "schema", reg / "schema")
    shutil.copy(registry_dir() / "runtimes.yaml", reg / "runtimes.yaml")
    return reg / "runtimes.yaml"


def test_dates_as_aws_writes_them():
    assert parse_date("Jun 30, 2027") == datetime.date(2027, 6, 30)
    assert parse_date("June 30, 2027") == datetime.date(2027, 6, 30)
    assert parse_date("Mar\u00a01, 2029") == datetime.date(2029, 3, 1)
    assert parse_date("2027-01-15") == datetime.date(2027, 1, 15)
    assert parse_date("Not scheduled") is None


def test_the_python_rows_of_both_tables():
    rows = parse_runtime_table(PAGE.read_text())
    assert sorted(rows, key=lambda r: int(r.split(".")[1])) == [
        f"python3.{m}" for m in range(8, 15)]
    assert rows["python3.10"].dates == (datetime.date(2026, 10, 31),
                                        datetime.date(2026, 11, 30),
                                        datetime.date(2027, 1, 15))
    assert rows["python3.9"].dates[2] == datetime.date(2027, 3, 3)


def test_merge_proposes_the_changed_dates_and_records_the_read(runtimes):
    changes = merge_file(runtimes, PAGE, DAY)
    assert changes == [
        "python3.12/x86_64: lifecycle.deprecation: '2028-10-31' -> '2028-12-31'",
        "python3.12/x86_64: lifecycle.block_function_create: '2028-11-30' -> '2029-01-31'",
        "python3.12/x86_64: lifecycle.block_function_update: '2029-01-10' -> '2029-03-01'",
        "python3.12/arm64: lifecycle.deprecation: '2028-10-31' -> '2028-12-31'",
        "python3.12/arm64: lifecycle.block_function_create: '2028-11-30' -> '2029-01-31'",
        "python3.12/arm64: lifecycle.block_function_update: '2029-01-10' -> '2029-03-01'",
    ]
    reg = load_runtimes(runtimes)
    t = reg.get("python3.12", "arm64")
    assert t.block_function_update == datetime.date(2029, 3, 1)
    assert all(f.lifecycle_read == DAY for f in reg.targets)
    key = next(k for k, text in reg.sources if text.startswith("AWS Lambda runtime table"))
    assert key in t.sources and "2026-12-09" in reg.source(key)
    # idempotent: a second read changes nothing but is recorded once
    assert merge_file(runtimes, PAGE, DAY) == []
    assert sum(text.startswith("AWS Lambda runtime table") for _, text in
               load_runtimes(runtimes).sources) == 1


def test_a_page_without_the_table_is_refused_and_the_file_unchanged(runtimes, tmp_path,
                                                                   capsys):
    page = tmp_path / "page.html"
    page.write_text("<html><body><p>moved</p></body></html>")
    before = runtimes.read_text()
    with pytest.raises(errors.BadInput, match="no table with python runtimes"):
        merge_file(runtimes, page, DAY)
    assert runtimes.read_text() == before
    assert main([str(page), "--runtimes", str(runtimes)]) == 2
    assert "lifecycle_merge: error:" in capsys.readouterr().err
