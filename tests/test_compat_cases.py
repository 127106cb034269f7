"""The compat suite's own machinery: case files, expectations, judging, the grid."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from compat_tests import grid  # noqa: E402
from compat_tests.cases import (CASES_DIR, CaseError, HostFacts, all_cases,  # noqa: E402
                                load_case, registry_cases)
from compat_tests.runner import Cell, judge  # noqa: E402
from lambda_compat.runtimes import load_runtimes  # noqa: E402
from lambda_compat.targets import Target  # noqa: E402

TARGETS = [Target.from_facts(f) for f in load_runtimes().targets]


def target(name: str) -> Target:
    return next(t for t in TARGETS if t.name == name)


@dataclass(frozen=True)
class FixedHost(HostFacts):
    """A host whose abilities are given, not probed."""

    pythons: tuple = ()
    native: bool = False

    def host_python(self, version):
        return tuple(version) in self.pythons

    def native_build(self, version, target_machine, commands):
        return self.native and self.machine == target_machine and tuple(version) in self.pythons


ALL = tuple((3, m) for m in range(8, 15))


def write_case(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- shipped cases

def test_shipped_cases_load_and_cover_every_target_they_name():
    cases = all_cases()
    names = {c.name for c in cases}
    for required in ("cryptography-1.9", "psycopg2", "psycopg2-binary", "requests", "docopt",
                     "numpy", "numpy-2.3.4", "marker-arch", "marker-python",
                     "marker-transitive", "requires-python-trap"):
        assert required in names
    hosts = [FixedHost("x86_64", ALL, True), FixedHost("x86_64", (), False),
             FixedHost("aarch64", ALL, True)]
    for case in cases:
        applies = [t for t in TARGETS if case.applies_to(t.name)]
        assert applies, case.name
        for t in applies:
            for host in hosts:
                rule = case.expectation(t, host)  # raises CaseError when no rule applies
                assert rule.verdict in ("compatible", "incompatible", "missing")
        for t in TARGETS:
            if case.is_fast(t.name):
                assert case.applies_to(t.name), (case.name, t.name, "fast but not run")


def test_expectations_follow_target_and_host():
    numpy = load_case(CASES_DIR / "numpy.yaml")
    host = FixedHost("x86_64", ALL, True)
    assert dict(numpy.expectation(target("python3.12/arm64"), host).versions) == \
        {"numpy": ">=2"}
    assert dict(numpy.expectation(target("python3.11/x86_64"), host).versions) == \
        {"numpy": ">=2.2,<2.3"}
    assert dict(numpy.expectation(target("python3.8/x86_64"), host).versions) == \
        {"numpy": "<1.25"}
    pg = load_case(CASES_DIR / "psycopg2.yaml")
    rule = pg.expectation(target("python3.11/x86_64"), host)
    assert (rule.verdict, rule.reason, rule.detail) == \
        ("incompatible", "missing-system-library", "libpq.so.5")
    assert pg.expectation(target("python3.11/arm64"), host).verdict == "missing"
    assert pg.expectation(target("python3.11/arm64"), FixedHost("aarch64", ALL, True)).verdict \
        == "incompatible"
    marker = load_case(CASES_DIR / "marker-arch.yaml")
    assert marker.expectation(target("python3.12/arm64"), host).present == ("orjson", "idna")
    assert marker.expectation(target("python3.12/x86_64"), host).absent == ("orjson",)
    docopt = load_case(CASES_DIR / "docopt.yaml")
    assert docopt.expectation(target("python3.14/x86_64"), FixedHost("x86_64", (), False)) \
        .verdict == "missing"


# --------------------------------------------------------------------------- bad files

@pytest.mark.parametrize("body, message, line", [
    ("schema: 1\ndescription: a case file\nrequirements: [requests]\nexpect:\n"
     "  - verdict: maybe\n", "verdict", 5),
    ("schema: 1\ndescription: a case file\nrequirements: [requests]\nexpect:\n"
     "  - verdict: missing\n", "'reason' is a required property", 5),
    ("schema: 1\ndescription: a case file\nrequirements: [requests]\nexpect:\n"
     "  - when: {python: '>>3'}\n    verdict: compatible\n", "not a PEP 440", 5),
    ("schema: 1\ndescription: a case file\nrequirements: ['requests ==']\nexpect:\n"
     "  - verdict: compatible\n", "requirements/0", 3),
    ("schema: 1\ndescription: a case file\nrequirements: [requests]\ntargets: [python3.12]\n"
     "expect:\n  - verdict: compatible\n", "targets/0", 4),
    ("schema: 1\ndescription: a case file\nrequirements: [requests]\nexpect: []\n",
     "expect", 4),
    ("schema: 1\n  description: [\n", "not valid YAML", None),
])
def test_bad_case_files_name_file_and_line(tmp_path, body, message, line):
    path = write_case(tmp_path, body)
    with pytest.raises(CaseError) as info:
        load_case(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    if line is not None:
        assert info.value.line == line, str(info.value)


def test_no_rule_for_a_target_is_an_error(tmp_path):
    path = write_case(tmp_path, "schema: 1\ndescription: a case file\nrequirements: [x]\n"
                                "expect:\n  - when: {arch: arm64}\n    verdict: compatible\n")
    case = load_case(path)
    with pytest.raises(CaseError, match="no rule under 'expect' applies to python3.12/x86_64"):
        case.expectation(target("python3.12/x86_64"), FixedHost("x86_64"))


def test_registry_entries_become_cases(tmp_path):
    (tmp_path / "packages").mkdir()
    (tmp_path / "packages" / "pyyaml.yaml").write_text(
        "name: pyyaml\nversions: '>=5'\nkind: optional-extension-pure-fallback\n"
        "explanation: falls back to pure Python without libyaml\nevidence:\n"
        "  - versions: ['6.0.1', '6.0.2']\n    targets: [python3.12/arm64, python3.13/arm64]\n"
        "    test: compat_tests\n    date: '2026-11-21'\n"
        "  - versions: ['6.0.1']\n    targets: [python3.9/x86_64]\n"
        "    test: compat_tests\n    date: '2026-11-21'\n")
    (newest,) = registry_cases(tmp_path)
    assert newest.name == "registry-pyyaml-6.0.2"
    old, case = registry_cases(tmp_path, all_versions=True)
    assert (old.name, old.requirements) == ("registry-pyyaml-6.0.1", ("pyyaml==6.0.1",))
    assert case.name == "registry-pyyaml-6.0.2"
    assert case.requirements == ("pyyaml==6.0.2",)
    assert case.targets == ("python3.12/arm64", "python3.13/arm64")
    rule = case.expectation(target("python3.12/arm64"), FixedHost("x86_64"))
    assert rule.verdict == "compatible" and rule.present == ("pyyaml",)
    # each version runs exactly where its evidence verified it
    assert old.targets == ("python3.12/arm64", "python3.13/arm64", "python3.9/x86_64")
    (tmp_path / "packages" / "wrapt.yaml").write_text("name: wrapt\nevidence: []\n")
    with pytest.raises(CaseError, match="no evidence"):
        registry_cases(tmp_path)


# --------------------------------------------------------------------------- judging

def cell(**kw) -> Cell:
    base = dict(case="c", target="python3.12/x86_64", runtime="python3.12", arch="x86_64",
                expected="compatible", expected_verdict="compatible")
    base.update(kw)
    return Cell(**base)


def rule_of(tmp_path, rules: str):
    path = write_case(tmp_path, "schema: 1\ndescription: a case file\nrequirements: [x]\n"
                                "expect:\n" + rules)
    case = load_case(path)
    return case, case.rules[0]


def test_judge_compatible_with_a_failed_import_is_a_disagreement(tmp_path):
    case, rule = rule_of(tmp_path, "  - verdict: compatible\n")
    c = cell(verdict="compatible", proof="rootfs", imported="failed", backend="bwrap",
             import_failures=["x: ImportError: libfoo.so.1: cannot open"])
    problems = judge(case, rule, c)
    assert c.agreement == "disagrees"
    assert any("import failed in rootfs" in p for p in problems)


def test_judge_incompatible_needs_an_import_that_can_refute_it(tmp_path):
    case, rule = rule_of(tmp_path, "  - verdict: incompatible\n    reason: "
                                   "missing-system-library\n")
    host = cell(verdict="incompatible", reasons=["missing-system-library"], proof="host",
                imported="ok", backend="host python")
    assert judge(case, rule, host) == [] and host.agreement == "not-refutable"
    rootfs = cell(verdict="incompatible", reasons=["missing-system-library"], proof="rootfs",
                  imported="ok", backend="bwrap")
    assert any("every module imported" in p for p in judge(case, rule, rootfs))
    assert rootfs.agreement == "disagrees"
    failed = cell(verdict="incompatible", reasons=["missing-system-library"], proof="rootfs",
                  imported="failed", backend="bwrap")
    assert judge(case, rule, failed) == [] and failed.agreement == "agrees"


def test_judge_static_only_makes_no_agreement_claim(tmp_path):
    case, rule = rule_of(tmp_path, "  - verdict: compatible\n")
    c = cell(verdict="compatible", proof="static", imported=None)
    assert judge(case, rule, c) == [] and c.agreement is None


def test_judge_verdict_reason_detail_bundle(tmp_path):
    case, rule = rule_of(tmp_path, "  - verdict: missing\n    reason: glibc-too-new\n"
                                   "    detail: '2.26'\n")
    assert judge(case, rule, cell(verdict="compatible")) == \
        ["verdict compatible != expected missing"]
    assert judge(case, rule, cell(verdict="missing", reasons=["build-failed"],
                                  messages=["glibc 2.26"])) == \
        ["reason build-failed != expected glibc-too-new"]
    assert "no finding mentions" in judge(case, rule, cell(
        verdict="missing", reasons=["glibc-too-new"], messages=["other"]))[0]
    case, rule = rule_of(tmp_path, "  - verdict: compatible\n    present: [a]\n"
                                   "    absent: [b]\n    versions: {a: '>=2'}\n")
    problems = judge(case, rule, cell(verdict="compatible", versions={"a": "1.0", "b": "3"}))
    assert problems == ["b 3 is in the bundle but must not be", "a 1.0 does not satisfy >=2"]


# --------------------------------------------------------------------------- grid

def cells():
    return [
        dict(vars(cell(case="requests", verdict="compatible", proof="rootfs", imported="ok",
                       backend="bwrap", outcome="passed"))),
        dict(vars(cell(case="requests", target="python3.12/arm64", arch="arm64",
                       verdict="compatible", proof="static", outcome="passed",
                       backend_note="no stand-in for python3.12/arm64"))),
        dict(vars(cell(case="psycopg2", verdict="incompatible",
                       reasons=["missing-system-library"], proof="rootfs", imported="failed",
                       outcome="failed", problems=["verdict incompatible != expected x"]))),
    ]


def test_grid_text_marks_static_cells_and_failures():
    text = grid.render_text(cells())
    assert "ok·rfs" in text and "ok·st" in text and "!INC·rfs✗" in text
    assert "st = static only (no import ran; NOT a proven import)" in text
    assert "psycopg2 on python3.12/x86_64: expected compatible; predicted incompatible " \
           "(missing-system-library)" in text
    assert "3 cells: 2 passed, 1 failed, 0 skipped; proof: 0 image, 2 rootfs, 0 host, " \
           "1 static only" in text


def test_grid_html_and_markdown():
    html = grid.render_html(cells())
    assert 'class="ok-static"' in html and 'class="ok-proved"' in html
    assert 'class="failed"' in html and "<h2>arm64</h2>" in html
    md = grid.render_markdown(cells())
    assert "| requests | `ok·rfs` |" in md and "### Failed cells" in md


def test_grid_merge_later_file_wins(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    first = cells()
    a.write_text(json.dumps(grid.results_document(first)))
    second = [dict(first[2], outcome="passed", problems=[])]
    b.write_text(json.dumps(grid.results_document(second)))
    merged = grid.load_results([a, b])
    assert len(merged) == 3
    assert {c["outcome"] for c in merged if c["case"] == "psycopg2"} == {"passed"}
    out = tmp_path / "g.html"
    assert grid.main(["merge", str(a), "--html", str(out)]) == 1  # a has a failed cell
    assert out.read_text().startswith("<!DOCTYPE html>")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a compat results file"):
        grid.load_results([tmp_path / "bad.json"])


# --------------------------------------------------------------------------- pytest wiring

def test_running_compat_tests_explicitly_is_not_deselected_by_addopts():
    """The project's addopts deselect network/slow; naming compat_tests must still run it."""
    def collect(*extra):
        proc = subprocess.run([sys.executable, "-m", "pytest", "compat_tests", "--collect-only",
                               "-q", "-p", "no:cacheprovider", *extra], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout.strip().splitlines()[-1]
    everything = collect("--runtime", "python3.11")
    assert "deselected" not in everything and "tests collected" in everything
    fast = collect("-m", "compat_fast", "--runtime", "python3.11")
    assert "deselected" in fast


def test_a_standin_image_is_not_the_lambda_image(tmp_path):
    case, rule = rule_of(tmp_path, "  - verdict: incompatible\n    reason: glibc-too-new\n")
    standin = cell(verdict="incompatible", reasons=["glibc-too-new"], proof="image",
                   standin="copy of local CPython 3.12.1, glibc 2.36", imported="ok",
                   backend="podman localhost/lc-standin:x")
    assert judge(case, rule, standin) == [] and standin.agreement == "not-refutable"
    real = cell(verdict="incompatible", reasons=["glibc-too-new"], proof="image",
                imported="ok", backend="docker public.ecr.aws/lambda/python:3.12-x86_64@sha256:0")
    assert judge(case, rule, real) and real.agreement == "disagrees"
    c = dict(vars(cell(verdict="compatible", proof="image", standin="stand-in", imported="ok",
                       outcome="passed")))
    assert grid.short(c) == "ok·simg"
    assert "1 stand-in image" in grid.render_text([c])
    assert "in image (stand-in)" in grid.describe(c)


def test_required_proof():
    from compat_tests.runner import proof_problems
    static = cell(verdict="compatible", proof="static", backend_note="no engine")
    assert proof_problems(static, None) == []
    assert proof_problems(static, "image") == [
        "proof static is weaker than the required image (no engine)"]
    simg = cell(verdict="compatible", proof="image", standin="x", imported="ok")
    assert proof_problems(simg, "image") == ["proof rootfs is weaker than the required image"]
    real = cell(verdict="incompatible", proof="image", imported="failed")
    assert proof_problems(real, "image") == []
    assert proof_problems(cell(verdict="missing"), "image") == []  # nothing to import
