"""Runtime capabilities: a package registry entry of kind runtime-capability (chromadb needs
sqlite >= 3.35) judged against each target's recorded capabilities (the AL2 runtimes' sqlite3
is 3.7.17, S21)."""

from __future__ import annotations

import dataclasses

import pytest

from lambda_compat.registry.runtimes import get_target
from lambda_compat.verify.capabilities import capability_version
from lambda_compat.targets.facts import Capability
from lambda_compat.verify.bundle_check import check_bundle

from check_helpers import make_dist

CHROMA = {"chromadb/__init__.py": "import sqlite3\n"}


def _found(report):
    return [f for f in report.findings if f.code == "runtime-capability"]


@pytest.mark.parametrize("runtime,arch", [("python3.9", "x86_64"), ("python3.11", "arm64"),
                                          ("python3.10", "x86_64")])
def test_chromadb_on_al2_is_a_runtime_capability_error_with_the_fix(tmp_path, runtime, arch):
    make_dist(tmp_path, "chromadb", "1.0.21", CHROMA)
    r = check_bundle(tmp_path, [], get_target(runtime, arch))
    (f,) = _found(r)
    assert f.severity == "error" and not r.ok and f.distribution == "chromadb"
    assert "chromadb 1.0.21 needs the runtime's sqlite >=3.35" in f.message
    assert f"{runtime}/{arch} has sqlite 3.7.17 (registry/runtimes.yaml {runtime}/{arch} " \
           f"capabilities.sqlite" in f.message
    assert "S21" in f.message
    assert "pysqlite3-binary" in f.fix and 'sys.modules["sqlite3"]' in f.fix


@pytest.mark.parametrize("runtime", ["python3.12", "python3.13", "python3.14"])
def test_chromadb_on_al2023_has_no_capability_finding(tmp_path, runtime):
    make_dist(tmp_path, "chromadb", "1.0.21", CHROMA)
    assert _found(check_bundle(tmp_path, [], get_target(runtime))) == []


def test_outside_the_entry_nothing_is_claimed(tmp_path):
    make_dist(tmp_path, "chromadb", "0.3.29", CHROMA)     # below the proven range
    assert _found(check_bundle(tmp_path, [], get_target("python3.11"))) == []


def test_the_fix_in_the_bundle_turns_it_into_a_warning(tmp_path):
    make_dist(tmp_path, "chromadb", "1.0.21", CHROMA)
    make_dist(tmp_path, "pysqlite3-binary", "0.5.4", {"pysqlite3/__init__.py": ""})
    (f,) = _found(check_bundle(tmp_path, [], get_target("python3.11")))
    assert f.severity == "warning" and "The bundle has pysqlite3-binary" in f.message


def test_an_unrecorded_capability_is_an_error_naming_the_fact(tmp_path):
    make_dist(tmp_path, "chromadb", "1.0.21", CHROMA)
    t = get_target("python3.12")
    for caps, state in (((), "not recorded"),
                        ((Capability("sqlite", "3.40.0", "unverified", ("S7",)),),
                         "3.40.0, marked unverified")):
        facts = dataclasses.replace(t.facts, capabilities=caps)
        (f,) = _found(check_bundle(tmp_path, [], dataclasses.replace(t, facts=facts)))
        assert f.severity == "error"
        assert f"the sqlite version of python3.12/x86_64 is {state} (registry/runtimes.yaml " \
               f"python3.12/x86_64 capabilities.sqlite" in f.message and "verify it" in f.message


def test_capability_versions():
    assert str(capability_version("3.7.17")) == "3.7.17"
    assert str(capability_version("1.0.2k")) == "1.0.2"
    assert str(capability_version("3.0.x")) == "3.0.0"
    assert capability_version("unknown") is None


def test_capability_entries_are_not_build_cases_of_the_matrix():
    """The compat matrix turns allowlist entries into "builds and imports" cases; a
    runtime-capability entry claims the opposite on some targets and has its own proof."""
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from compat_tests.cases import registry_cases
    subjects = {c.subject for c in registry_cases(all_versions=True)}
    assert "chromadb" not in subjects and "pyyaml" in subjects
