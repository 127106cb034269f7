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
from compat_tests.runner import Cell, classify, judge, rule_held  # noqa: E402
from compat_tests.runner import agreement as agreement_of  # noqa: E402
from lambda_compat.registry.runtimes import load_runtimes  # noqa: E402
from lambda_compat.targets.target import Target  # noqa: E402

TARGETS = [Target.from_facts(f) for f in load_runtimes().targets]


def target(name: str) -> Target:
    return next(t for t in TARGETS if t.name == name)


@dataclass(frozen=True)
class FixedHost(HostFacts):
    """A host whose abilities are given, not probed."""

    pythons: tuple = ()
    native: bool = False
    roots: bool = False   # Debian roots of 3.9, 3.11, 3.13, 3.14 can run here

    def host_python(self, version):
        return tuple(version) in self.pythons

    def target_root(self, version, arch):
        return self.roots and tuple(version) in ((3, 9), (3, 11), (3, 13), (3, 14))

    def native_build(self, version, arch, commands):
        machine = {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
        return self.native and self.machine == machine and tuple(version) in self.pythons


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


def test_expectations_follow_the_target_only():
    numpy = load_case(CASES_DIR / "numpy.yaml")
    assert dict(numpy.expectation(target("python3.12/arm64")).versions) == {"numpy": ">=2"}
    assert dict(numpy.expectation(target("python3.11/x86_64")).versions) == \
        {"numpy": ">=2.2,<2.3"}
    assert dict(numpy.expectation(target("python3.8/x86_64")).versions) == {"numpy": "<1.25"}
    pg = load_case(CASES_DIR / "psycopg2.yaml")
    rich, poor = FixedHost("x86_64", ALL, True), FixedHost("x86_64", (), False)
    for name in ("python3.11/x86_64", "python3.11/arm64"):
        rule = pg.expectation(target(name))
        assert (rule.verdict, rule.reasons, rule.detail) == \
            ("incompatible", ("missing-system-library",), "libpq.so.5")
    # what this machine cannot do changes what the tool must answer, never the expectation
    assert pg.here(target("python3.11/x86_64"), rich) is None
    here = pg.here(target("python3.11/arm64"), rich)
    assert (here.verdict, here.reasons) == ("missing", ("no-build-environment",))
    # with a Debian root of python3.11 for arm64 the build runs there, and finds no pg_config
    with_roots = FixedHost("x86_64", ALL, True, roots=True)
    here = pg.here(target("python3.11/arm64"), with_roots)
    assert (here.verdict, here.reasons, here.detail) == \
        ("missing", ("sdist-build-failed",), "pg_config")
    assert pg.here(target("python3.12/arm64"), with_roots).reasons == ("no-build-environment",)
    assert pg.here(target("python3.11/x86_64"), poor).verdict == "missing"
    assert pg.here(target("python3.11/arm64"), FixedHost("aarch64", ALL, True)) is None
    marker = load_case(CASES_DIR / "marker-arch.yaml")
    assert marker.expectation(target("python3.12/arm64")).present == ("orjson", "idna")
    assert marker.expectation(target("python3.12/x86_64")).absent == ("orjson",)
    docopt = load_case(CASES_DIR / "docopt.yaml")
    assert docopt.expectation(target("python3.14/x86_64")).verdict == "compatible"
    # a pure sdist is built by any local Python (the any-Python pure build): no exception
    assert docopt.here(target("python3.14/x86_64"), poor) is None
    assert docopt.here(target("python3.14/x86_64"), rich) is None


def test_expectations_never_call_the_tools_interpreter_discovery(monkeypatch, tmp_path):
    """Mutation guard: a tool that finds no interpreter must not change what is expected."""
    from lambda_compat.host import interpreters
    monkeypatch.setattr(interpreters, "find_interpreter", lambda *a, **k: None)
    from compat_tests import local_env
    local_env.local_pythons.cache_clear()
    docopt = load_case(write_case(tmp_path, (
        "schema: 1\ndescription: an sdist built with the target's Python\n"
        "requirements: [docopt==0.6.2]\nexpect:\n  - verdict: compatible\n"
        "unproven_here:\n  - when: {host_python: false}\n    verdict: missing\n"
        "    reason: no-build-environment\n"), "docopt.yaml"))
    host = HostFacts.here()
    version = sys.version_info[:2]
    t = target(f"python{version[0]}.{version[1]}/x86_64")
    assert docopt.expectation(t).verdict == "compatible"
    # this very interpreter is a CPython of its version: the oracle must find one
    assert local_env.has_python(version), local_env.local_pythons()
    assert docopt.here(t, host) is None


def test_a_case_that_makes_the_expectation_depend_on_this_machine_is_refused(tmp_path):
    path = write_case(tmp_path, "schema: 1\ndescription: a case file\nrequirements: [x]\n"
                                "expect:\n  - when: {host_python: true}\n"
                                "    verdict: compatible\n  - verdict: missing\n"
                                "    reason: no-wheel\n")
    with pytest.raises(CaseError, match="may not depend on this machine.*unproven_here") as info:
        load_case(path)
    assert info.value.line == 5
    path = write_case(tmp_path, "schema: 1\ndescription: a case file\nrequirements: [x]\n"
                                "expect:\n  - verdict: compatible\nunproven_here:\n"
                                "  - when: {python: '<3.10'}\n    verdict: missing\n"
                                "    reason: no-wheel\n", name="d.yaml")
    with pytest.raises(CaseError, match="host_python: false, native_build: false or target_root: false"):
        load_case(path)


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
    host.problems = []
    assert classify(host) == "not-refutable" and "cannot refute" in host.evidence_note
    rootfs = cell(verdict="incompatible", reasons=["missing-system-library"], proof="rootfs",
                  imported="ok", backend="bwrap")
    assert any("every module imported" in p for p in judge(case, rule, rootfs))
    assert rootfs.agreement == "disagrees"
    failed = cell(verdict="incompatible", reasons=["missing-system-library"], proof="rootfs",
                  imported="failed", backend="bwrap",
                  messages=["psycopg2: _psycopg.so needs libpq.so.5, which the bundle does not "
                            "contain and the runtime image does not have."],
                  import_failures=["psycopg2: ImportError: libpq.so.5: cannot open shared "
                                   "object file: No such file or directory"])
    assert judge(case, rule, failed) == [] and failed.agreement == "agrees"
    assert classify(failed) == "proven"
    # an import that fails for another reason does not confirm the missing library
    other = cell(verdict="incompatible", reasons=["missing-system-library"], proof="rootfs",
                 imported="failed", backend="bwrap", messages=failed.messages,
                 import_failures=["psycopg2: SyntaxError: invalid syntax"])
    assert judge(case, rule, other) == [
        "predicted missing libpq.so.5, but the import failed for another reason: "
        "psycopg2: SyntaxError: invalid syntax"]


@pytest.mark.parametrize("reasons, proof, agreement", [
    (["glibc-too-new"], "rootfs", "not-refutable"),      # stand-ins have a newer glibc
    (["glibc-too-new"], "image", "disagrees"),
    (["missing-system-library"], "host", "not-refutable"),  # the host has libpq
    (["missing-system-library"], "rootfs", "disagrees"),
    # one refutable code among unrefutable ones: the import contradicts the prediction
    (["glibc-too-new", "missing-system-library"], "rootfs", "disagrees"),
    (["missing-dependency"], "image", "not-refutable"),  # lazily imported, maybe
    (["requires-python"], "image", "not-refutable"),
    (["native-arch-mismatch"], "host", "disagrees"),      # any import refutes other codes
])
def test_refutable_codes_per_proof_level(reasons, proof, agreement):
    c = cell(verdict="incompatible", reasons=reasons, proof=proof, imported="ok",
             backend="x")
    problems = agreement_of(c)
    assert c.agreement == agreement and bool(problems) == (agreement == "disagrees")


def test_every_cell_has_one_evidence_and_only_an_agreeing_import_proves(tmp_path):
    case, rule = rule_of(tmp_path, "  - verdict: compatible\n")
    static = cell(verdict="compatible", proof="static", backend_note="no stand-in root")
    static.problems = judge(case, rule, static)
    assert classify(static) == "unproven" and "no stand-in root" in static.evidence_note
    crashed = cell(verdict="compatible", proof="static", imported="error",
                   backend_note="rootfs backend failed to run: boom")
    crashed.problems = judge(case, rule, crashed)
    assert classify(crashed) == "unproven"
    nothing = cell(verdict="compatible", proof="static", backend_note="nothing to import")
    assert classify(nothing) == "unproven"
    proven = cell(verdict="compatible", proof="rootfs", imported="ok", backend="bwrap")
    proven.problems = judge(case, rule, proven)
    assert classify(proven) == "proven"
    wrong = cell(verdict="compatible", proof="rootfs", imported="failed", backend="bwrap")
    wrong.problems = judge(case, rule, wrong)
    assert classify(wrong) == "refuted"
    case, missing_rule = rule_of(tmp_path, "  - verdict: missing\n    reason: build-failed\n")
    missing = cell(verdict="missing", reasons=["build-failed"], backend_note="nothing was built")
    missing.problems = judge(case, missing_rule, missing)
    assert classify(missing) == "unproven"
    # the case's unproven_here rule held: the tool answered what this machine allows
    assert classify(missing, here=missing_rule) == "unproven"
    assert missing.evidence_note.startswith("unproven here:")


def test_an_unless_proven_rule_accepts_the_expectation_only_where_an_import_proves_it(tmp_path):
    """numpy 1.26.4 for python3.13/arm64 builds in a root within the time limit on a quiet
    machine and not on a loaded one: either answer is right here, only one is proof."""
    path = write_case(tmp_path, (
        "schema: 1\ndescription: a build at the time limit\nrequirements: [x]\n"
        "expect:\n  - verdict: compatible\n"
        "unproven_here:\n  - when: {native_build: false}\n    verdict: missing\n"
        "    reason: sdist-build-failed\n    unless_proven: true\n"))
    case = load_case(path)
    rule, here = case.rules[0], case.unproven_here[0]
    assert here.unless_proven and not rule.unless_proven
    proven = cell(verdict="compatible", proof="rootfs", imported="ok", backend="bwrap")
    assert rule_held(case, rule, here, proven) is None  # judged by expect
    proven.problems = judge(case, rule, proven)
    assert classify(proven) == "proven"
    timed_out = cell(verdict="missing", reasons=["sdist-build-failed"],
                     backend_note="nothing was built")
    assert rule_held(case, rule, here, timed_out) is here
    timed_out.problems = judge(case, here, timed_out)
    assert classify(timed_out, here) == "unproven" and not timed_out.problems
    # the expected verdict without an import (static only) proves nothing: held to the rule
    static = cell(verdict="compatible", proof="static", backend_note="no stand-in root")
    assert rule_held(case, rule, here, static) is here
    assert judge(case, here, static)  # and the rule says missing: refuted
    # a failed import is no proof either
    failed = cell(verdict="compatible", proof="rootfs", imported="failed", backend="bwrap")
    assert rule_held(case, rule, here, failed) is here
    # a rule without the key never accepts it
    strict = load_case(write_case(tmp_path, path.read_text().replace(
        "    unless_proven: true\n", ""), name="strict.yaml"))
    assert rule_held(strict, strict.rules[0], strict.unproven_here[0],
                     cell(verdict="compatible", proof="rootfs", imported="ok",
                          backend="bwrap")) is strict.unproven_here[0]
    with pytest.raises(CaseError, match="only an unproven_here rule") as info:
        load_case(write_case(tmp_path, "schema: 1\ndescription: a case file\n"
                                       "requirements: [x]\nexpect:\n"
                                       "  - verdict: compatible\n    unless_proven: true\n",
                             name="bad.yaml"))
    assert info.value.line == 6


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
        ["reasons build-failed != expected glibc-too-new"]
    # the whole set of blocking codes: an extra wrong code fails too
    assert judge(case, rule, cell(verdict="missing", reasons=["glibc-too-new", "no-wheel"],
                                  messages=["glibc 2.26"])) == \
        ["reasons glibc-too-new, no-wheel != expected glibc-too-new"]
    assert judge(case, rule, cell(verdict="missing", reasons=["glibc-too-new"],
                                  messages=["glibc 2.26"])) == []
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
                       backend="bwrap", outcome="passed", agreement="agrees",
                       evidence="proven"))),
        dict(vars(cell(case="requests", target="python3.12/arm64", arch="arm64",
                       verdict="compatible", proof="static", outcome="skipped",
                       evidence="unproven", evidence_note="no import: no stand-in",
                       backend_note="no stand-in for python3.12/arm64"))),
        dict(vars(cell(case="psycopg2", target="python3.12/arm64", arch="arm64",
                       verdict="incompatible", reasons=["glibc-too-new"], proof="rootfs",
                       imported="ok", agreement="not-refutable", evidence="not-refutable",
                       outcome="skipped"))),
        dict(vars(cell(case="psycopg2", verdict="incompatible",
                       reasons=["missing-system-library"], proof="rootfs", imported="failed",
                       outcome="failed", problems=["verdict incompatible != expected x"]))),
    ]


def test_grid_text_marks_static_cells_and_failures():
    text = grid.render_text(cells())
    assert "requests  ok·rfs\n" in text and "ok·st?" in text and "!INC·rfs✗" in text
    assert "INC·rfs~" in text
    assert "st = static only (no import ran; NOT a proven import)" in text
    assert "psycopg2 on python3.12/x86_64: expected compatible; predicted incompatible " \
           "(missing-system-library)" in text
    assert "4 cells: 1 proven, 1 unproven, 1 refuted, 1 not-refutable; proof: 0 image, " \
           "3 rootfs, 0 host, 1 static only" in text


def test_grid_html_and_markdown():
    html = grid.render_html(cells())
    assert 'class="ok-static"' in html and 'class="ok-proved"' in html
    assert 'class="failed"' in html and "<h2>arm64</h2>" in html
    md = grid.render_markdown(cells())
    assert "| requests | `ok·rfs` |" in md and "### Failed cells" in md
    assert "1 proven, 1 unproven, 1 refuted, 1 not-refutable" in md
    assert "1 proven, 1 unproven, 1 refuted, 1 not-refutable" in html


def test_grid_counts_an_unproven_cell_failed_by_require_proof_as_unproven():
    c = dict(vars(cell(verdict="missing", reasons=["build-failed"], outcome="failed",
                       evidence="unproven", evidence_note="no import: nothing was built",
                       problems=["unproven, and --require-proof image asks for proof: ..."])))
    text = grid.render_text([c])
    assert "1 cells: 0 proven, 1 unproven, 0 refuted, 0 not-refutable" in text
    assert "1 not proven as --require-proof asked (failed)" in text
    assert "!MISS·st?" in text and "failed cells:" in text
    assert grid.failed(c)


def test_grid_derives_evidence_for_results_without_it():
    old = dict(vars(cell(verdict="compatible", proof="rootfs", imported="ok",
                         agreement="agrees", outcome="passed")))
    old.pop("evidence")
    static = dict(old, proof="static", imported=None, agreement=None)
    assert [grid.evidence_of(c) for c in (old, static, dict(old, outcome="failed"))] == \
        ["proven", "unproven", "refuted"]


def test_grid_merge_later_file_wins(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    first = cells()
    a.write_text(json.dumps(grid.results_document(first)))
    second = [dict(first[3], outcome="passed", problems=[], evidence="proven")]
    b.write_text(json.dumps(grid.results_document(second)))
    merged = grid.load_results([a, b])
    assert len(merged) == 4
    assert {c["outcome"] for c in merged if c["case"] == "psycopg2" and
            c["arch"] == "x86_64"} == {"passed"}
    out = tmp_path / "g.html"
    assert grid.main(["merge", str(a), "--html", str(out)]) == 1  # a has a failed cell
    assert out.read_text().startswith("<!DOCTYPE html>")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="not a compat results file"):
        grid.load_results([tmp_path / "bad.json"])


# --------------------------------------------------------------------------- pytest wiring

def test_running_compat_tests_explicitly_is_not_deselected_by_addopts(tmp_path):
    """The project's addopts deselect network/slow; naming compat_tests must still run it,
    also when an option's value is a file that exists outside compat_tests/ (the results
    file of the last run: that second run used to run one test and pass)."""
    def collect(*extra):
        proc = subprocess.run([sys.executable, "-m", "pytest", "compat_tests", "--collect-only",
                               "-q", "-p", "no:cacheprovider", *extra], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return proc.stdout.strip().splitlines()[-1].split(" in ")[0]  # without the time
    everything = collect("--runtime", "python3.11")
    assert "deselected" not in everything and "tests collected" in everything
    fast = collect("-m", "compat_fast", "--runtime", "python3.11")
    assert "deselected" in fast
    (tmp_path / "last.json").write_text("{}")
    again = collect("--runtime", "python3.11", "--compat-json", str(tmp_path / "last.json"))
    assert again == everything


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
                       outcome="passed", agreement="agrees", evidence="proven")))
    assert grid.short(c) == "ok·simg"
    assert "1 stand-in image" in grid.render_text([c])
    assert "in image (stand-in)" in grid.describe(c)


def test_required_proof():
    from compat_tests.runner import proof_problems
    static = cell(verdict="compatible", proof="static", backend_note="no engine")
    classify(static)
    assert proof_problems(static, None) == []
    assert proof_problems(static, "image") == [
        "unproven, and --require-proof image asks for proof: no import: no engine"]
    simg = cell(verdict="compatible", proof="image", standin="x", imported="ok")
    agreement_of(simg)
    classify(simg)
    assert proof_problems(simg, "image") == ["proof rootfs is weaker than the required image"]
    real = cell(verdict="incompatible", reasons=["glibc-too-new"], proof="image",
                imported="failed")
    agreement_of(real)
    classify(real)
    assert proof_problems(real, "image") == []
    # an expected-missing cell has nothing to import: unproven, so it fails too
    missing = cell(verdict="missing", reasons=["build-failed"], backend_note="nothing was built")
    classify(missing)
    assert proof_problems(missing, "rootfs") == [
        "unproven, and --require-proof rootfs asks for proof: no import: nothing was built"]
    unrefuted = cell(verdict="incompatible", reasons=["glibc-too-new"], proof="rootfs",
                     imported="ok")
    agreement_of(unrefuted)
    classify(unrefuted)
    assert proof_problems(unrefuted, "rootfs")[0].startswith("not-refutable, and")
    refuted = cell(verdict="compatible", problems=["verdict compatible != expected missing"])
    classify(refuted)
    assert proof_problems(refuted, "image") == []  # already a failure


def test_target_root_only_for_the_pythons_debian_ships(monkeypatch):
    from compat_tests import local_env
    monkeypatch.setattr(local_env.shutil, "which", lambda name: "/usr/bin/" + name)
    for version in ((3, 8), (3, 10), (3, 12), (3, 15)):
        assert not local_env.target_root(version, "x86_64"), version
    native = {"x86_64": "x86_64", "aarch64": "arm64"}[local_env.this_machine()]
    for version in ((3, 9), (3, 11), (3, 13), (3, 14)):
        assert local_env.target_root(version, native), version
    monkeypatch.setattr(local_env.shutil, "which", lambda name: None)  # no bubblewrap
    assert not local_env.target_root((3, 11), native)
