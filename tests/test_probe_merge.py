"""probe_merge: probe outputs into registry/runtimes.yaml, keeping comments, anchors, sources."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("ruamel.yaml")

from lambda_compat import errors  # noqa: E402
from lambda_compat.cli.probe_merge import main  # noqa: E402
from lambda_compat.registry.probe_merge import merge_file, read_probe  # noqa: E402
from lambda_compat.registry.runtimes import load_runtimes, registry_dir  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "runtime-probe" / "python3.12-x86_64.json"
DATE = datetime.date(2026, 11, 28)


@pytest.fixture
def runtimes(tmp_path) -> Path:
    dest = tmp_path / "runtimes.yaml"
    shutil.copyfile(registry_dir() / "runtimes.yaml", dest)
    return dest


def _entry_lines(text: str, runtime: str, arch: str):
    """Line range of one target's entry (from '- runtime:' to the next entry)."""
    lines = text.splitlines()
    start = next(i for i, l in enumerate(lines)
                 if l.strip() == f"- runtime: {runtime}" and lines[i + 1].strip() == f"arch: {arch}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("  - runtime:")),
               len(lines))
    return start, end


def test_merge_updates_the_target_and_marks_provenance(runtimes):
    before = load_runtimes(runtimes).get("python3.12", "x86_64")
    assert before.python_full_version == "3.12.11"
    assert before.provenance_of("python.full_version") == "inferred"
    assert before.image_digest is None
    result = merge_file(runtimes, [FIXTURE], DATE)
    reg = load_runtimes(runtimes)
    after = reg.get("python3.12", "x86_64")
    digest = json.loads(FIXTURE.read_text())["digest"]
    assert after.python_full_version == "3.12.12"
    assert after.provenance_of("python.full_version") == "sourced"
    assert after.image_digest == digest
    assert {"libcrypt.so.2", "libexpat.so.1", "libuuid.so.1"} <= after.sonames
    # inferred sonames the probe saw are no longer inferred; the unseen ones stay inferred
    seen = set(json.loads(FIXTURE.read_text())["probe"]["sonames"])
    assert "libssl.so.3" not in after.inferred_sonames
    assert "libxml2.so.2" in after.inferred_sonames
    assert after.inferred_sonames == before.inferred_sonames - seen
    # the probe settles the unverified sonames: libcrypt.so.2 found, readline/gdbm absent
    assert before.library_fact("libcrypt.so.2").status == "unverified"
    assert after.library_fact("libcrypt.so.2").status == "present"
    assert after.library_fact("libreadline.so.8").status == "absent"
    assert after.unverified_sonames == frozenset()
    # the runtime's sqlite3 / ssl versions, as the probe read them
    assert after.capability("sqlite").value == "3.40.0"
    assert after.capability("sqlite").status == "sourced"
    assert after.capability("openssl").value == "3.0.8"
    assert before.capability("expat").value is None
    assert (after.capability("expat").value, after.capability("expat").status) == ("2.5.0",
                                                                                  "sourced")
    # an absent pattern contradicted by the probe (libcrypt.so.1 is not libcrypt.so.2) stays
    assert after.is_known_absent("libpq.so.5")
    # the probe source is cited by the groups it observed and names the date
    key = next(k for k, text in reg.sources if text.startswith("lambda_compat.prove._payload.probe"))
    assert key in after.sources
    assert "2026-11-28" in reg.source(key)
    assert reg.data_version == "2026.11.28"
    assert any("python.full_version" in c for c in result.changes)
    # the digest line lost its stale "no digest recorded" comment
    a, b = _entry_lines(runtimes.read_text(), "python3.12", "x86_64")
    digest_line = [l for l in runtimes.read_text().splitlines()[a:b] if "digest:" in l]
    assert digest_line == [f"      digest: {digest}"]


def test_other_targets_and_comments_are_untouched(runtimes):
    original = runtimes.read_text()
    before = {t.name: t for t in load_runtimes(runtimes).targets}
    merge_file(runtimes, [FIXTURE], DATE)
    text = runtimes.read_text()
    after = {t.name: t for t in load_runtimes(runtimes).targets}
    # Every other target keeps its facts, including those sharing the al2023 anchors with
    # python3.12/x86_64 (the anchor's definition may move to the next target using it).
    for name, facts in before.items():
        if name == "python3.12/x86_64":
            continue
        keep = ("provenance", "sources")
        assert {k: v for k, v in vars(after[name]).items() if k not in keep} == \
            {k: v for k, v in vars(facts).items() if k not in keep}, name
        assert after[name].provenance == facts.provenance, name
    # targets sharing no anchor with it are byte-identical
    for runtime, arch in [("python3.8", "x86_64"), ("python3.9", "arm64"),
                          ("python3.10", "x86_64"), ("python3.11", "arm64")]:
        a, b = _entry_lines(original, runtime, arch)
        c, d = _entry_lines(text, runtime, arch)
        assert original.splitlines()[a:b] == text.splitlines()[c:d], (runtime, arch)
    # comments survive (the header and the per-entry notes)
    for line in original.splitlines():
        if line.strip().startswith("#") and "patch level not observed" not in line:
            assert line in text
    assert text.startswith(original.splitlines()[0])


def test_merge_is_idempotent(runtimes):
    merge_file(runtimes, [FIXTURE], DATE)
    once = runtimes.read_text()
    result = merge_file(runtimes, [FIXTURE], DATE)
    assert runtimes.read_text() == once
    assert result.changes == []


@pytest.mark.parametrize("fact, value, error, match", [
    # a probe from the wrong machine for its target
    ("machine", "aarch64", errors.BadInput, "aarch64.*x86_64"),
    # glibc 2.36 for one AL2023 target only: the loader's cross-target invariant rejects it
    ("glibc", "2.36", errors.RegistryError, "glibc"),
], ids=["wrong-architecture", "inconsistent-glibc"])
def test_bad_probe_is_refused_and_file_unchanged(runtimes, tmp_path, fact, value, error, match):
    data = json.loads(FIXTURE.read_text())
    data["probe"][fact] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    original = runtimes.read_text()
    with pytest.raises(error, match=match):
        merge_file(runtimes, [bad], DATE)
    assert runtimes.read_text() == original
    assert not list(runtimes.parent.glob(".runtimes.yaml.*"))


def test_bare_probe_target_follows_from_python_and_machine(tmp_path):
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(json.loads(FIXTURE.read_text())["probe"]))
    p = read_probe(bare)
    assert p.target == "python3.12/x86_64"
    assert p.digest is None


def test_not_a_probe_file(tmp_path):
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    with pytest.raises(errors.BadInput, match="not a probe output"):
        read_probe(junk)


def test_cli(runtimes, tmp_path, capsys):
    out = tmp_path / "merged.yaml"
    assert main([str(FIXTURE), "--runtimes", str(runtimes), "--date", "2026-11-28",
                 "-o", str(out)]) == 0
    assert "python3.12/x86_64: python.full_version" in capsys.readouterr().out
    assert load_runtimes(out).get("python3.12", "x86_64").python_full_version == "3.12.12"
    assert main([str(FIXTURE), "--runtimes", str(runtimes), "--date", "28/11/2026"]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
