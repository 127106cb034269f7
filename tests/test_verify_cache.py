from __future__ import annotations

from lambda_compat.registry.runtimes import get_target
from lambda_compat.verify.cache import cached_findings, target_digest
from lambda_compat.verify.wheels import Finding

SHA = "ab" * 32
F = [Finding("glibc-too-new", "demo", "demo/_x.so", "needs GLIBC_2.28", "pin older",
             severity="error"),
     Finding("missing-system-library", "demo", "demo/_x.so", "needs libpq.so.5", "ship it",
             severity="warning")]


def counting(result):
    calls = []

    def compute():
        calls.append(1)
        return list(result)
    return compute, calls


def test_second_lookup_reuses_the_verdict(tmp_path):
    t = get_target("python3.11", "x86_64")
    compute, calls = counting(F)
    assert cached_findings(tmp_path, SHA, t, compute) == F
    assert cached_findings(tmp_path, SHA, t, compute) == F
    assert len(calls) == 1


def test_other_target_or_file_is_judged_again(tmp_path):
    compute, calls = counting(F)
    cached_findings(tmp_path, SHA, get_target("python3.11", "x86_64"), compute)
    cached_findings(tmp_path, SHA, get_target("python3.11", "arm64"), compute)
    cached_findings(tmp_path, SHA, get_target("python3.12", "x86_64"), compute)
    cached_findings(tmp_path, "cd" * 32, get_target("python3.11", "x86_64"), compute)
    assert len(calls) == 4


def test_damaged_entry_is_recomputed(tmp_path):
    t = get_target("python3.12", "arm64")
    compute, calls = counting([])
    cached_findings(tmp_path, SHA, t, compute)
    (entry,) = list(tmp_path.rglob("*.json"))
    entry.write_text("{not json", encoding="utf-8")
    assert cached_findings(tmp_path, SHA, t, compute) == []
    assert len(calls) == 2


def test_no_cache_dir_always_computes(tmp_path):
    compute, calls = counting(F)
    t = get_target("python3.11", "x86_64")
    cached_findings(None, SHA, t, compute)
    cached_findings(None, SHA, t, compute)
    assert len(calls) == 2


def test_target_digest_is_stable_and_distinct():
    a = get_target("python3.11", "x86_64")
    assert target_digest(a) == target_digest(get_target("python3.11", "x86_64"))
    assert target_digest(a) != target_digest(get_target("python3.11", "arm64"))
