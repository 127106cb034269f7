"""The package registry: loader invariants with file:line, the CLI, builder acceptance,
--no-binary, the registry shipped in the wheel, and property tests (hypothesis)."""

from __future__ import annotations

import ast
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.tags import Tag
from packaging.version import Version

from compat_tests.local_env import has_python
from conftest import fixture_config, write_reqs
from lambda_compat import errors
from lambda_compat.build.builder import BuildConfig, _with_no_binary, build_dependencies
from lambda_compat.registry.runtimes import get_target
from lambda_compat.cli.main import main
from lambda_compat.registry.package_entry import (ALLOWLIST_KINDS, KINDS, Evidence, PackageEntry,
                                                  PackageRegistry, dump_entry,
                                                  tags_fit_except_platform)
from lambda_compat.registry.packages import (changelog_versions, check_registry, known_targets,
                                             load_packages, parse_entry)
from lambda_compat.registry.runtimes import registry_dir

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "fixtures" / "registries"
SCHEMAS = ROOT / "resolver" / "lambda_compat" / "schemas"
KNOWN = known_targets()
TARGETS = sorted(f"{r}/{a}" for r, a in KNOWN)
RUNTIMES = sorted({r for r, _ in KNOWN}, key=lambda r: int(r.split(".")[1]))
TEST_ID = "compat_tests/test_registry_entries.py::test_registry_entry"
if str(ROOT) not in sys.path:  # compat_tests.registry_changes
    sys.path.insert(0, str(ROOT))
from compat_tests import registry_changes  # noqa: E402


def entry_text(name="pyyaml", versions=">=6.0.3,<=6.0.3", extra="", evidence=None,
               targets="targets: [python3.12/x86_64, python3.12/arm64]\n") -> str:
    evidence = evidence if evidence is not None else (
        "evidence:\n"
        "  - versions: ['6.0.3']\n"
        "    targets: [python3.12/x86_64, python3.12/arm64]\n"
        f"    test: {TEST_ID}\n"
        "    date: '2026-11-21'\n")
    return (f"name: {name}\nversions: '{versions}'\nkind: optional-extension-pure-fallback\n"
            "explanation: setup.py declares an optional extension; without a compiler the\n"
            "  wheel is pure Python but keeps the platform tag.\n"
            f"imports: [yaml]\n{extra}{evidence}"
            + ("" if "targets:" in extra else targets))


def make_registry(root: Path, files: dict, version="2026.11.21.0", changelog=True) -> Path:
    (root / "packages").mkdir(parents=True)
    (root / "VERSION").write_text(version + "\n")
    if changelog:
        (root / "CHANGELOG.md").write_text(f"# changes\n\n## {version}\n\n- test data\n")
    for name, text in files.items():
        (root / "packages" / name).write_text(text)
    return root


def problems_of(root: Path, **kw):
    registry, problems = check_registry(root, **kw)
    assert (registry is None) == bool(problems)
    return [(Path(p.path).name, p.line, p.message) for p in problems]


# --------------------------------------------------------------------------- shipped data

def test_shipped_registry_validates_with_its_changelog():
    registry, problems = check_registry(registry_dir(), changelog=True)
    assert not problems, "\n".join(map(str, problems))
    assert registry.entries, "the shipped registry has entries (issue 4: proven ones)"
    assert re.fullmatch(r"\d{4}\.\d{2}\.\d{2}\.\d+", registry.version)
    assert load_packages().version == registry.version


def test_cli_validate_passes_on_the_shipped_registry(capsys):
    assert main(["registry", "validate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: registry ") and load_packages().version in out


def test_every_evidence_names_a_compat_test_that_exists():
    for entry in load_packages().entries:
        for ev in entry.evidence:
            path, func = ev.test.split("::")
            tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
            assert func in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, \
                f"{entry.path}: {ev.test} does not exist"


def test_every_entry_has_evidence_where_its_compat_test_imports():
    """The import itself is asserted by compat_tests/test_registry_entries.py (msgpack on
    arm64 runs in CI's compat slice); here: each entry names at least one evidence target on
    which that test can import (this machine's, or a foreign one with a stand-in root), so
    no entry rests on static evidence alone."""
    from compat_tests.test_registry_entries import import_level
    for entry in load_packages().entries:
        levels = {t: import_level(*t.split("/")) for ev in entry.evidence for t in ev.targets}
        assert any(levels.values()), f"{entry.name}: no evidence target with an import {levels}"


def test_the_registry_test_imports_on_foreign_machines_where_a_root_can_exist():
    from compat_tests.test_registry_entries import import_level
    host_arch = "arm64" if platform.machine() == "aarch64" else "x86_64"
    foreign = "x86_64" if host_arch == "arm64" else "arm64"
    assert import_level("python3.12", host_arch) == "host"
    assert import_level("python3.11", foreign) == "rootfs"   # a Debian suite ships 3.11
    assert import_level("python3.12", foreign) is None       # none ships 3.12: unproven


def test_kind_vocabulary_is_the_same_in_code_and_schemas():
    schema = json.loads((registry_dir() / "schema" / "package.schema.json").read_text())
    assert schema["properties"]["kind"]["enum"] == list(KINDS)
    out = json.loads((SCHEMAS / "registry-entries.schema.json").read_text())
    assert out["properties"]["entries"]["items"]["properties"]["kind"]["enum"] == list(KINDS)


def test_changelog_newest_section_is_the_version():
    text = (registry_dir() / "CHANGELOG.md").read_text()
    assert changelog_versions(text)[0][0] == (registry_dir() / "VERSION").read_text().strip()


def _git(*args):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None,
                    reason="not a git checkout")
def test_every_commit_changing_entries_bumps_the_version():
    log = _git("log", "--format=%H", "--", "registry/packages")
    assert log.returncode == 0, log.stderr
    for commit in log.stdout.split():
        changed = _git("show", "--name-only", "--format=", commit).stdout.split()
        entries = [c for c in changed if c.startswith("registry/packages/")
                   and c.endswith(".yaml")]
        if entries:
            assert "registry/VERSION" in changed and "registry/CHANGELOG.md" in changed, \
                f"commit {commit[:10]} changes {entries} without bumping registry/VERSION " \
                f"and adding a CHANGELOG section"


# --------------------------------------------------------------------------- broken fixtures

BROKEN = [
    ("bad-specifier", "pyyaml.yaml", 2, "'=>6.0.2, <7' is not a PEP 440 specifier set"),
    ("duplicate-name", "pyyaml.yaml", 1, "duplicate entry for 'pyyaml'"),
    ("unknown-kind", "pyyaml.yaml", 3,
     "unknown kind 'optional-extension'; did you mean 'optional-extension-pure-fallback'?"),
    ("missing-evidence", "pyyaml.yaml", 1, "missing evidence"),
    ("unknown-target", "pyyaml.yaml", 10,
     "unknown target 'python3.21/arm64'; did you mean 'python3.12/arm64'?"),
    ("bad-yaml", "pyyaml.yaml", 8, "not valid YAML: while parsing a flow sequence started on "
                                   "line 7"),
]


@pytest.mark.parametrize("name,file,line,text", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_registry_fails_validate_with_file_and_line(name, file, line, text, capsys,
                                                           monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["registry", "validate", f"fixtures/registries/{name}"]) == 2
    err = capsys.readouterr().err
    assert f"fixtures/registries/{name}/packages/{file}:{line}: " in err, err
    assert text in err, err
    assert "Traceback" not in err
    # The builder refuses the same registry before doing anything, with the same message.
    with pytest.raises(errors.RegistryProblems) as info:
        load_packages(FIX / name)
    assert any(Path(p.path).name == file and p.line == line and text in p.message
               for p in info.value.problems), info.value.problems


def test_duplicate_also_names_the_misnamed_file():
    assert problems_of(FIX / "duplicate-name") == [
        ("pyyaml-copy.yaml", 1, "the file for 'pyyaml' must be named pyyaml.yaml (one file "
                                "per project, named by its normalized name)"),
        ("pyyaml.yaml", 1, f"duplicate entry for 'pyyaml': "
                           f"{FIX / 'duplicate-name/packages/pyyaml-copy.yaml'}:1 already "
                           f"describes it; keep one file per project (merge the evidence "
                           f"into it)"),
    ]


def test_every_problem_is_reported_not_just_the_first():
    got = [(f, line, m.split(":")[0]) for f, line, m in problems_of(FIX / "many-problems")]
    assert got == [
        ("pyyaml.yaml", 8, "evidence[0].versions[0]"),     # 5.4.1 outside >=6.0.2,<7
        ("pyyaml.yaml", 10, "evidence[0].test"),           # not a compat test id
        ("pyyaml.yaml", 11, "evidence[0].date"),           # month 13
        ("wrapt.yaml", 3, "targets"),                      # python3.12/arm64 unproven
        ("wrapt.yaml", 4, "targets.runtimes[1]"),          # python3.2
        ("wrapt.yaml", 10, "evidence[0].versions[0]"),     # unquoted 1.17
        ("wrapt.yaml", 14, "refrences"),                   # misspelt field
    ]
    messages = " | ".join(m for _, _, m in problems_of(FIX / "many-problems"))
    assert "did you mean 'references'?" in messages
    assert "quote version numbers" in messages


def test_validate_json_and_github_formats(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    schema = json.loads((SCHEMAS / "registry-validate.schema.json").read_text())
    assert main(["registry", "validate", "fixtures/registries/many-problems",
                 "--format", "json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, schema)
    assert doc["ok"] is False and len(doc["problems"]) == 7
    assert doc["problems"][0]["path"] == "fixtures/registries/many-problems/packages/pyyaml.yaml"
    assert main(["registry", "validate", "--format", "json"]) == 0
    ok = json.loads(capsys.readouterr().out)
    jsonschema.validate(ok, schema)
    assert ok["ok"] and ok["entries"] == len(load_packages().entries)
    assert main(["registry", "validate", "fixtures/registries/unknown-kind",
                 "--format", "github"]) == 2
    out = capsys.readouterr().out
    assert out.startswith("::error file=fixtures/registries/unknown-kind/packages/pyyaml.yaml,"
                          "line=3::kind: unknown kind")


def test_validate_accepts_the_packages_dir_or_one_file(tmp_path, capsys):
    root = make_registry(tmp_path / "r", {"pyyaml.yaml": entry_text()})
    assert main(["registry", "validate", str(root / "packages")]) == 0
    assert main(["registry", "validate", str(root / "packages" / "pyyaml.yaml")]) == 0
    assert "1 entry valid" in capsys.readouterr().out
    bad = root / "packages" / "wrapt.yaml"
    bad.write_text(entry_text(name="wrapt", versions="latest"))
    assert main(["registry", "validate", str(bad)]) == 2
    assert f"{bad}:2: versions: 'latest' is not a PEP 440 specifier" in capsys.readouterr().err
    assert main(["registry", "validate", str(tmp_path / "nope")]) == 2
    assert "no such file or directory" in capsys.readouterr().err


# --------------------------------------------------------------------------- loader details

def test_entries_and_registry_are_frozen(tmp_path):
    registry = load_packages(make_registry(tmp_path / "r", {"pyyaml.yaml": entry_text()}))
    entry = registry.entries[0]
    for obj, attr in ((registry, "version"), (entry, "kind"), (entry.evidence[0], "test")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, "x")
    assert entry.imports == ("yaml",) and isinstance(entry.evidence, tuple)
    assert entry.evidence[0].targets == ("python3.12/x86_64", "python3.12/arm64")
    # hashable, and equality is by content: an entry with another claim is another entry
    other = dataclasses.replace(entry, imports=("yaml", "_yaml"))
    assert len({entry, dataclasses.replace(entry), other}) == 2


def test_names_must_be_normalized_and_match_the_file(tmp_path):
    root = make_registry(tmp_path / "r", {
        "PyYAML.yaml": entry_text(name="PyYAML"),
        "ruamel-yaml.yaml": entry_text(name="ruamel_yaml"),
        "wrapt.yml": entry_text(name="wrapt"),
    })
    got = problems_of(root)
    assert ("PyYAML.yaml", 1, "name 'PyYAML' is not a normalized project name (PEP 503); "
                              "write 'pyyaml'") in got
    assert ("ruamel-yaml.yaml", 1, "name 'ruamel_yaml' is not a normalized project name "
                                   "(PEP 503); write 'ruamel-yaml'") in got
    assert ("wrapt.yml", 1, "the file for 'wrapt' must be named wrapt.yaml (one file per "
                            "project, named by its normalized name)") in got


def test_duplicate_keys_and_unquoted_dates(tmp_path):
    text = entry_text().replace("kind: optional", "kind: platform-tag-without-native-code\n"
                                                  "kind: optional")
    root = make_registry(tmp_path / "r", {"pyyaml.yaml": text})
    assert problems_of(root) == [("pyyaml.yaml", 4, "duplicate key 'kind' (first given on "
                                                    "line 3)")]
    unquoted = entry_text().replace("'2026-11-21'", "2026-11-21")
    entry, problems = parse_entry(unquoted)
    assert not problems and entry.evidence[0].date == "2026-11-21"


def test_evidence_must_fall_inside_the_claim(tmp_path):
    text = entry_text(extra="targets: [python3.12/x86_64]\n")
    entry, problems = parse_entry(text, "e.yaml")
    assert entry is None
    assert [(p.line, p.message) for p in problems] == [
        (10, "evidence[0].targets[1]: python3.12/arm64 is outside the entry's targets")]
    future = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    entry, problems = parse_entry(entry_text().replace("2026-11-21", future), "e.yaml")
    assert [p.message for p in problems] == [f"evidence[0].date: {future} is in the future"]


def test_empty_specifier_and_empty_evidence_are_refused():
    _, problems = parse_entry(entry_text(versions=""), "e.yaml")
    assert [(p.line, p.message) for p in problems] == [
        (2, "versions: an empty specifier claims every version ever released; give the range "
            "the evidence supports")]
    _, problems = parse_entry(entry_text(evidence="evidence: []\n"), "e.yaml")
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(7, "evidence is empty")]


def test_version_file_and_changelog_are_checked(tmp_path):
    root = make_registry(tmp_path / "a", {}, version="2026-11-21")
    assert problems_of(root) == [("VERSION", 1, "'2026-11-21' is not a registry version: write "
                                                "YYYY.MM.DD.N (the date of the change, N "
                                                "counting changes that day from 0)")]
    root = make_registry(tmp_path / "b", {}, version="2026.11.21.1")
    (root / "CHANGELOG.md").write_text("# c\n\n## 2026.11.21.0\n\n- old\n")
    assert problems_of(root) == []                       # the builder does not read it
    got = problems_of(root, changelog=True)
    assert got == [("CHANGELOG.md", 3, "the newest section is 2026.11.21.0 but VERSION is "
                                       "2026.11.21.1: every data change bumps VERSION and "
                                       "adds a '## 2026.11.21.1' section above the others")]
    root = make_registry(tmp_path / "c", {}, changelog=False)
    assert "missing: add CHANGELOG.md" in problems_of(root, changelog=True)[0][2]


def test_empty_registry_and_not_a_registry(tmp_path):
    empty = load_packages(make_registry(tmp_path / "r", {}))
    assert empty.entries == ()
    assert empty.find("pyyaml", "6.0.3", get_target("python3.12")) is None
    with pytest.raises(errors.RegistryProblems, match="not a package registry"):
        load_packages(tmp_path)


def test_matching_is_by_normalized_name_version_and_target(tmp_path):
    text = entry_text(extra="targets:\n  runtimes: [python3.12]\n")
    registry = load_packages(make_registry(tmp_path / "r", {"pyyaml.yaml": text}))
    t312, t311 = get_target("python3.12", "arm64"), get_target("python3.11", "arm64")
    assert registry.find("PyYAML", "6.0.3", t312).name == "pyyaml"
    assert registry.find("py_yaml", "6.0.3", t312) is None
    assert registry.find("pyyaml", "6.0.1", t312) is None
    assert registry.find("pyyaml", "7.0", t312) is None
    assert registry.find("pyyaml", "not-a-version", t312) is None
    assert registry.find("pyyaml", "6.0.3", t311) is None


def test_tags_fit_except_platform():
    t = get_target("python3.12", "arm64")
    assert tags_fit_except_platform([Tag("cp312", "cp312", "linux_x86_64")], t)
    assert tags_fit_except_platform([Tag("py3", "none", "macosx_11_0_x86_64")], t)
    assert not tags_fit_except_platform([Tag("cp39", "cp39", "linux_x86_64")], t)
    assert not tags_fit_except_platform([Tag("pp310", "pypy310_pp73", "linux_x86_64")], t)


# --------------------------------------------------------------------------- list / show

def test_list_and_show(tmp_path, capsys):
    root = make_registry(tmp_path / "r", {
        "pyyaml.yaml": entry_text(),
        "wrapt.yaml": entry_text(name="wrapt", versions=">=1.16.0,<=1.17.2").replace(
            "'6.0.3'", "'1.17.2', '1.16.0'")})
    assert main(["registry", "list", "--registry", str(root)]) == 0
    out = capsys.readouterr().out
    assert "registry 2026.11.21.0" in out and "2 entries" in out
    assert re.search(r"^wrapt\s+<=1.17.2,>=1.16.0\s+optional-extension-pure-fallback\s+"
                     r"python3.12/x86_64, python3.12/arm64\s+4 cases \(1.16.0, 1.17.2\)$",
                     out, re.M), out
    schema = json.loads((SCHEMAS / "registry-entries.schema.json").read_text())
    assert main(["registry", "list", "--registry", str(root), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, schema)
    assert [e["name"] for e in doc["entries"]] == ["pyyaml", "wrapt"]
    assert {"version": "1.16.0", "runtime": "python3.12", "arch": "arm64",
            "test": TEST_ID} in doc["entries"][1]["cases"]
    assert main(["registry", "show", "PyYAML", "--registry", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pyyaml <=6.0.3,>=6.0.3") and KINDS["optional-extension-pure-fallback"] in out
    assert f"by {TEST_ID}" in out
    assert main(["registry", "show", "wrapt", "--registry", str(root), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, schema)
    assert [e["name"] for e in doc["entries"]] == ["wrapt"]


def test_show_unknown_name_suggests_the_closest(tmp_path, capsys):
    root = make_registry(tmp_path / "r", {"pyyaml.yaml": entry_text()})
    assert main(["registry", "show", "pyyam", "--registry", str(root)]) == 2
    err = capsys.readouterr().err
    assert "No registry entry for 'pyyam'" in err and "Did you mean 'pyyaml'?" in err
    assert main(["registry", "show", "numpy", "--registry", str(root)]) == 2
    err = capsys.readouterr().err
    assert "Did you mean" not in err and "Entries: pyyaml." in err
    assert main(["registry", "list", "--registry", str(FIX / "bad-yaml")]) == 2
    assert "pyyaml.yaml:8: not valid YAML" in capsys.readouterr().err


def test_registry_without_action_prints_usage(capsys):
    assert main(["registry"]) == 2
    assert "validate" in capsys.readouterr().err


# --------------------------------------------------------------------------- --no-binary

def test_no_binary_reaches_pip_and_rejects_non_names():
    cfg = _with_no_binary(BuildConfig(no_binary=("PyYAML,wrapt", "simplejson")))
    assert cfg.no_binary == ("PyYAML", "wrapt", "simplejson")
    assert cfg.pip.args()[-2:] == ["--no-binary", "PyYAML,wrapt,simplejson"]
    assert _with_no_binary(BuildConfig()).pip.args() == []
    with pytest.raises(errors.BadInput, match="':all:' is not supported"):
        _with_no_binary(BuildConfig(no_binary=(":all:",)))


needs_311 = pytest.mark.skipif(not has_python((3, 11)),
                               reason="needs a local CPython 3.11")
needs_312 = pytest.mark.skipif(not has_python((3, 12)),
                               reason="needs a local CPython 3.12")


@pytest.mark.slow
@needs_312
def test_no_binary_builds_from_the_sdist_where_a_wheel_fits(tmp_path, shared_cache):
    reqs = write_reqs(tmp_path, "lc-native==2.0\n")
    plain = build_dependencies(tmp_path / "a", reqs, "python3.12",
                               config=fixture_config(shared_cache))
    (d,) = plain.distributions
    assert d.phase == "wheel" and d.source.endswith(".whl")
    forced = build_dependencies(tmp_path / "b", reqs, "python3.12",
                                config=fixture_config(shared_cache, no_binary=("LC_Native",)))
    (d,) = forced.distributions
    assert d.source == "lc_native-2.0.tar.gz" and d.phase in ("built", "built-no-compiler"), \
        (d.phase, d.attempts)


def test_build_help_documents_no_binary(capsys):
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    assert "--no-binary NAME" in capsys.readouterr().out


# --------------------------------------------------------------------------- the builder

def optional_ext_registry(root: Path, versions: str = ">=1.0,<=1.0", proven: str = "1.0",
                          targets: str = "[python3.11/x86_64, python3.11/arm64]") -> Path:
    # evidence-tight, as validate requires: the range and targets its evidence names
    text = ("name: lc-optional-ext\n"
            f"versions: '{versions}'\ntargets: {targets}\n"
            "kind: optional-extension-pure-fallback\n"
            "explanation: The C speedup is optional; without a compiler it installs pure "
            "Python.\nimports: [lc_optional_ext]\n"
            f"evidence:\n- versions: ['{proven}']\n  targets: {targets}\n"
            f"  test: {TEST_ID}\n  date: '2026-11-21'\n")
    return make_registry(root, {"lc-optional-ext.yaml": text}, version="2026.11.21.3")


@pytest.mark.slow
@needs_311
def test_builder_accepts_because_of_the_entry_and_not_without_it(tmp_path, shared_cache):
    reqs = write_reqs(tmp_path, "lc-optional-ext==1.0\n")

    def run(registry, out):
        return build_dependencies(tmp_path / out, reqs, "python3.11", architecture="arm64",
                                  config=fixture_config(shared_cache, registry_dir=registry))

    with_entry = run(optional_ext_registry(tmp_path / "r1"), "a")
    (d,) = with_entry.distributions
    assert with_entry.ok and d.phase == "registry", d.attempts
    assert with_entry.registry_version == "2026.11.21.3"
    assert d.registry_entry == ("lc-optional-ext <=1.0,>=1.0 (optional-extension-pure-fallback; "
                                "lc-optional-ext.yaml; registry 2026.11.21.3)")
    assert with_entry.to_json()["distributions"][0]["registry_entry"] == d.registry_entry
    assert d.file.endswith("-linux_x86_64.whl") and not list((tmp_path / "a").rglob("*.so"))
    # The same build: entry removed, entry for other versions, entry for another arch.
    for name, registry in (
            ("removed", make_registry(tmp_path / "r2", {}, version="2026.11.21.4")),
            ("versions", optional_ext_registry(tmp_path / "r3", versions=">=2.0,<=2.0",
                                               proven="2.0")),
            ("arch", optional_ext_registry(tmp_path / "r4", targets="[python3.11/x86_64]"))):
        report = run(registry, name)
        (d,) = report.distributions
        assert not report.ok and d.phase == "missing", name
        assert "no registry entry vouches that it needs no native code" in d.attempts[-1], name
        assert not (tmp_path / name).exists()


# --------------------------------------------------------------------------- the wheel

@pytest.mark.slow
def test_wheel_ships_the_registry_and_loads_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                           str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("lambda_compat-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"lambda_compat/_registry/{p.relative_to(registry_dir()).as_posix()}"
               for p in registry_dir().rglob("*") if p.is_file()}
    for required in ("VERSION", "CHANGELOG.md", "runtimes.yaml", "schema/package.schema.json"):
        assert f"lambda_compat/_registry/{required}" in names
    assert {n for n in shipped if "/packages/" in n} <= names
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(tmp_path / "site")
    code = ("import json, lambda_compat.registry.packages as p, lambda_compat.registry.runtimes as r\n"
            "reg = p.load_packages()\n"
            "print(json.dumps([str(r.registry_dir()), reg.version, list(reg.names)]))\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    where, version, entries = json.loads(proc.stdout)
    assert where == str(tmp_path / "site" / "lambda_compat" / "_registry")
    assert version == load_packages().version and entries == list(load_packages().names)


# --------------------------------------------------------------------------- properties

def _version(parts):
    return ".".join(map(str, parts))


versions_st = st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30))
words = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789.,;:'\"#-()/&*!?%@",
                min_size=1, max_size=12)
explanation_st = st.lists(words, min_size=8, max_size=30).map(" ".join).filter(
    lambda s: len(s) >= 40)
name_st = st.from_regex(r"[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,5}){0,2}", fullmatch=True)
module_st = st.from_regex(r"[a-z_][a-z0-9_]{0,10}(\.[a-z_][a-z0-9_]{0,6})?", fullmatch=True)


@st.composite
def entries(draw):
    # A claim no wider than its evidence: from the oldest to the newest proven version, on
    # exactly the targets the evidence names.
    proven = draw(st.lists(versions_st, min_size=1, max_size=3, unique=True))
    spec = f">={_version(min(proven))},<={_version(max(proven))}"
    evidence = tuple(
        Evidence(versions=tuple(_version(v) for v in proven),
                 targets=tuple(draw(st.lists(st.sampled_from(TARGETS), min_size=1,
                                             unique=True))),
                 test=TEST_ID,
                 date=draw(st.dates(datetime.date(2020, 1, 1),
                                    datetime.date.today())).isoformat())
        for _ in range(draw(st.integers(1, 3))))
    pairs = tuple(sorted({t for ev in evidence for t in ev.targets}))
    return PackageEntry(
        name=draw(name_st), versions=SpecifierSet(spec),
        kind=draw(st.sampled_from(list(ALLOWLIST_KINDS))), explanation=draw(explanation_st),
        imports=tuple(draw(st.lists(module_st, min_size=1, max_size=3, unique=True))),
        evidence=evidence, pairs=pairs,
        smoke=draw(st.none() | st.sampled_from(["assert True", "x = {'a': 1}\nassert x"])),
        references=tuple(draw(st.lists(st.from_regex(r"https://[a-z]{1,10}\.org/[a-z0-9/]{0,12}",
                                                     fullmatch=True), max_size=2, unique=True))))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries())
def test_property_dump_then_load_round_trips(entry):
    text = dump_entry(entry)
    back, problems = parse_entry(text, "e.yaml")
    assert not problems, (text, problems)
    assert back == entry
    assert dump_entry(back) == text


@settings(max_examples=60, deadline=None)
@given(entries(), versions_st, st.sampled_from(TARGETS))
def test_property_matching_follows_specifier_and_targets(entry, probe, target_name):
    runtime, arch = target_name.split("/")
    target = get_target(runtime, arch)
    lo, hi = (Version(s.version) for s in sorted(entry.versions, key=lambda s: s.operator,
                                                 reverse=True))
    in_range = lo <= Version(_version(probe)) <= hi
    in_targets = target_name in entry.pairs
    assert entry.matches(entry.name, _version(probe), target) == (in_range and in_targets)
    assert entry.matches(entry.name.upper().replace("-", "_"), _version(probe), target) == \
        (in_range and in_targets)
    assert not entry.matches(entry.name + "x", _version(probe), target)
    registry = PackageRegistry(version="2026.01.01.0", entries=(entry,))
    assert (registry.find(entry.name, _version(probe), target) is entry) == \
        (in_range and in_targets)


def _mutations(data: dict):
    """(what, mutated data, the field path the message must name)."""
    def without(key):
        d = dict(data)
        d.pop(key)
        return d
    yield "missing name", without("name"), "name"
    yield "missing versions", without("versions"), "versions"
    yield "missing kind", without("kind"), "kind"
    yield "missing evidence", without("evidence"), "evidence"
    yield "bad kind", {**data, "kind": "optional"}, "kind"
    yield "bad specifier", {**data, "versions": ">=1.0 and <2"}, "versions"
    yield "unknown runtime", {**data, "targets": {"runtimes": ["python3.99"]}}, "targets"
    yield "unknown arch", {**data, "targets": {"arches": ["riscv64"]}}, "targets"
    yield "not normalized", {**data, "name": data["name"].upper() + "_X"}, "name"
    yield "wrong type", {**data, "imports": "yaml"}, "imports"
    yield "unknown field", {**data, "version": "1"}, "version"
    ev = dict(data["evidence"][0])
    yield "evidence outside", {**data, "evidence": [{**ev, "versions": ["99999.0"]}]}, \
        "evidence[0].versions[0]"
    yield "evidence target", {**data, "evidence": [{**ev, "targets": ["python3.12/s390x"]}]}, \
        "evidence[0].targets[0]"
    yield "evidence no test", {**data, "evidence": [{k: v for k, v in ev.items()
                                                     if k != "test"}]}, "test"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(), st.data())
def test_property_malformed_entries_are_rejected_with_line_and_field(entry, data):
    base = entry.to_data()
    what, mutated, field_name = data.draw(st.sampled_from(list(_mutations(base))))
    text = yaml.safe_dump(mutated, sort_keys=False)
    parsed, problems = parse_entry(text, "entry.yaml")
    assert parsed is None and problems, what
    lines = len(text.splitlines())
    for p in problems:
        assert p.path == "entry.yaml" and p.line is not None and 1 <= p.line <= lines, (what, p)
        assert str(p).startswith(f"entry.yaml:{p.line}: ")
    assert any(field_name in p.message for p in problems), (what, [p.message for p in problems])


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TARGETS), st.sampled_from(RUNTIMES), st.sampled_from(["x86_64",
                                                                            "aarch64"]))
def test_property_a_vouched_wheel_must_be_for_the_target_python(target_name, built_for, machine):
    runtime, arch = target_name.split("/")
    target = get_target(runtime, arch)
    interp = "cp3" + built_for.split(".")[1]
    tags = [Tag(interp, interp, f"linux_{machine}")]
    assert tags_fit_except_platform(tags, target) == (built_for == runtime)


# --------------------------------------------------------------------------- static check

def _fake_install(root: Path, name: str, version: str, tag: str, files: dict) -> Path:
    """A bundle with one distribution installed from a wheel tagged ``tag``."""
    import base64
    import hashlib
    dist_info = root / f"{name}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                        f"Version: {version}\n")
    (dist_info / "WHEEL").write_text(f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
    record = []
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{rel},sha256={digest},{len(data)}")
    record += [f"{dist_info.name}/METADATA,,", f"{dist_info.name}/WHEEL,,",
               f"{dist_info.name}/RECORD,,"]
    (dist_info / "RECORD").write_text("\n".join(record) + "\n")
    return root


def test_static_check_accepts_a_vouched_wheel_and_names_the_entry(tmp_path):
    from lambda_compat.verify import bundle
    from lambda_compat.verify.static_check import StaticChecker
    entry = load_packages().get("pyyaml")
    assert entry is not None, "the shipped registry vouches for pyyaml"
    version = entry.evidence[0].versions[0]
    arm = get_target("python3.12", "arm64")
    pure = {"yaml/__init__.py": b"__with_libyaml__ = False\n"}
    root = _fake_install(tmp_path / "a", "PyYAML", version, "cp312-cp312-linux_x86_64", pure)
    (f,) = [f for f in StaticChecker(bundle.load(root)).check(arm).findings
            if f.distribution == "PyYAML"]
    assert f.code == "registry-vouched" and f.severity == "warning"
    assert entry.label in f.message and load_packages().version in f.message
    # An extension module in it, another Python, or an unclaimed version: not vouched.
    so = (ROOT / "fixtures" / "index" / "sources" / "elf" / "speedups-x86_64.so").read_bytes()
    for sub, tag, files in (
            ("b", "cp312-cp312-linux_x86_64",
             {**pure, "yaml/_yaml.cpython-312-x86_64-linux-gnu.so": so}),
            ("c", "cp311-cp311-linux_x86_64", pure)):
        root = _fake_install(tmp_path / sub, "PyYAML", version, tag, files)
        codes = {f.code for f in StaticChecker(bundle.load(root)).check(arm).findings
                 if f.distribution == "PyYAML"}
        assert "incompatible-tags" in codes and "registry-vouched" not in codes, (sub, codes)
    root = _fake_install(tmp_path / "d", "PyYAML", "5.4.1", "cp312-cp312-linux_x86_64", pure)
    codes = {f.code for f in StaticChecker(bundle.load(root)).check(arm).findings}
    assert "incompatible-tags" in codes and "registry-vouched" not in codes



def test_static_check_consults_the_registry_the_caller_names(tmp_path):
    """A registry directory given by the caller (``--registry``, BuildConfig.registry_dir)
    decides what is vouched for, not the shipped registry."""
    from lambda_compat.verify import bundle
    from lambda_compat.verify.static_check import StaticChecker
    entry = load_packages().get("pyyaml")
    assert entry is not None
    version = entry.evidence[0].versions[0]
    arm = get_target("python3.12", "arm64")
    pure = {"yaml/__init__.py": b"__with_libyaml__ = False\n"}
    root = _fake_install(tmp_path / "a", "PyYAML", version, "cp312-cp312-linux_x86_64", pure)
    without = tmp_path / "registry"
    shutil.copytree(ROOT / "registry", without)
    (without / "packages" / "pyyaml.yaml").unlink()
    codes = {f.code for f in StaticChecker(bundle.load(root), registry_dir=without)
             .check(arm).findings if f.distribution == "PyYAML"}
    assert "incompatible-tags" in codes and "registry-vouched" not in codes
    codes = {f.code for f in StaticChecker(bundle.load(root)).check(arm).findings
             if f.distribution == "PyYAML"}
    assert codes == {"registry-vouched"}

# --------------------------------------------------------------------------- registry PR CI

def test_selection_of_changed_entries(tmp_path):
    from compat_tests.registry_changes import ALL, selection
    (tmp_path / "registry" / "packages").mkdir(parents=True)
    for name in ("pyyaml", "wrapt"):
        (tmp_path / "registry" / "packages" / f"{name}.yaml").write_text("x")
    assert selection(["registry/packages/wrapt.yaml", "registry/packages/pyyaml.yaml",
                      "registry/CHANGELOG.md", "registry/VERSION"], tmp_path) == \
        "[pyyaml- or [wrapt-"
    assert selection(["registry/packages/removed.yaml"], tmp_path) == ""
    assert selection(["registry/CHANGELOG.md", "README.md"], tmp_path) == ""
    assert selection(["registry/packages/wrapt.yaml", "registry/schema/package.schema.json"],
                     tmp_path) == ALL
    assert selection(["compat_tests/test_registry_entries.py"], tmp_path) == ALL


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_version_must_be_bumped_with_data_changes(tmp_path):
    from compat_tests.registry_changes import changed_files, version_problems

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
                       cwd=tmp_path, check=True, capture_output=True)

    make_registry(tmp_path / "registry", {"pyyaml.yaml": entry_text()})
    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "base")
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True,
                          text=True).stdout.strip()
    (tmp_path / "registry" / "packages" / "wrapt.yaml").write_text(entry_text(name="wrapt"))
    git("add", "-A")
    git("commit", "-q", "-m", "add wrapt")
    changed = changed_files(base, tmp_path)
    assert changed == ["registry/packages/wrapt.yaml"]
    (problem,) = version_problems(base, changed, tmp_path)
    assert problem.startswith("registry/VERSION:1: registry data changed "
                              "(registry/packages/wrapt.yaml) but VERSION is still 2026.11.21.0")
    (tmp_path / "registry" / "VERSION").write_text("2026.11.20.5\n")
    assert "is not above the base's 2026.11.21.0" in version_problems(base, changed, tmp_path)[0]
    (tmp_path / "registry" / "VERSION").write_text("2026.11.21.1\n")
    assert version_problems(base, changed, tmp_path) == []
    assert version_problems(base, ["registry/CHANGELOG.md"], tmp_path) == []


def _workflow() -> dict:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "registry.yml").read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def _matches(glob: str, path: str) -> bool:
    """GitHub's paths filter semantics for the globs used here (``**``: any depth)."""
    import fnmatch
    if glob.endswith("/**"):
        return path.startswith(glob[:-2])
    return fnmatch.fnmatchcase(path, glob)


def test_registry_workflow_paths_are_the_codes_list():
    """registry.yml's paths filter is exactly registry_changes.WATCHED, and every file whose
    change makes the workflow prove entries (PROVE_ALL, DATA) triggers it: the builder,
    sdist_build and wheels invalidate every entry, so a change to them cannot skip the proofs."""
    paths = _workflow()["on"]["pull_request"]["paths"]
    assert paths == registry_changes.workflow_paths()
    for prefix in registry_changes.PROVE_ALL + registry_changes.DATA + \
            registry_changes.PROOF_TESTS:
        example = prefix + "x.json" if prefix.endswith("/") else prefix
        assert any(_matches(g, example) for g in paths), f"{example} would skip the workflow"
        assert registry_changes.selection([example]) == registry_changes.ALL or \
            prefix in registry_changes.DATA + ("registry/schema/",)
    for path in ("resolver/lambda_compat/build/builder.py", "resolver/lambda_compat/resolve/sdist_build.py",
                 "resolver/lambda_compat/verify/wheels.py"):
        assert any(_matches(g, path) for g in paths), path
        assert registry_changes.selection([path]) == registry_changes.ALL
    # an unrelated change does not run it
    assert not any(_matches(g, "resolver/lambda_compat/cli/main.py") for g in paths)
    # the generated list is what `python -m compat_tests.registry_changes paths` prints
    proc = subprocess.run([sys.executable, "-m", "compat_tests.registry_changes", "paths"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.splitlines() == [
        f'      - "{p}"' for p in paths]


def test_registry_workflow_validates_then_proves_the_changed_entries():
    wf = _workflow()
    paths = wf["on"]["pull_request"]["paths"]
    assert "registry/**" in paths
    assert wf["permissions"] == {"contents": "read"}
    for test_file in registry_changes.PROOF_TESTS:
        assert test_file in " ".join(s.get("run", "") for s in wf["jobs"]["prove"]["steps"])
    steps = {name: [s for s in job["steps"]] for name, job in wf["jobs"].items()}
    runs = {name: " ".join(s.get("run", "") for s in st) for name, st in steps.items()}
    assert "lambda-compat registry validate registry" in runs["validate"]
    assert "compat_tests.registry_changes check-version" in runs["validate"]
    assert "compat_tests.registry_changes selection" in runs["validate"]
    assert wf["jobs"]["prove"]["needs"] == "validate"
    assert "compat_tests/test_registry_entries.py" in runs["prove"]
    assert '-k "$SELECTION"' in runs["prove"]
    for job in wf["jobs"].values():
        assert job.get("timeout-minutes")
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step
    # every Python an evidence target names is installed for the imports
    versions = set(wf["jobs"]["prove"]["steps"][1]["with"]["python-version"].split())
    for entry in load_packages().entries:
        for ev in entry.evidence:
            if ev.test != TEST_ID:
                continue   # runtime-capability evidence imports nothing
            for t in ev.targets:
                runtime, arch = t.split("/")
                if arch == "x86_64":
                    assert runtime[len("python"):] in versions, (entry.name, t)
    import importlib
    importlib.import_module("compat_tests.registry_changes")


def test_registry_workflow_zizmor_clean():
    exe = shutil.which("zizmor") or str(Path(sys.executable).with_name("zizmor"))
    if not Path(exe).exists():
        pytest.skip("zizmor is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--offline", "--strict-collection", "--no-progress",
                           str(ROOT / ".github" / "workflows" / "registry.yml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "No findings" in proc.stdout, proc.stdout + proc.stderr


def test_evidence_cases_select_with_k_expressions():
    from compat_tests.registry_changes import selection
    ids = [f"test_registry_entry[{e.name}-{v}-{r}-{a}]" for e in load_packages().entries
           for ev in e.evidence for v, r, a in ev.cases()]
    for entry in load_packages().entries:
        expr = selection([f"registry/packages/{entry.name}.yaml"], ROOT)
        token = expr.strip()
        assert token == f"[{entry.name}-"
        assert [i for i in ids if token in i] == [i for i in ids if i.startswith(
            f"test_registry_entry[{entry.name}-")]


def test_contributing_example_is_a_valid_entry():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text[text.index("## Adding a registry entry"):]
    example = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    entry, problems = parse_entry(example, "CONTRIBUTING.md")
    assert not problems, problems
    assert entry.kind in KINDS and entry.evidence[0].test == TEST_ID
    for kind in KINDS:   # the kinds table lists the whole vocabulary
        assert f"| `{kind}` |" in section


# --------------------------------------------------------------------------- claims vs evidence

@pytest.mark.parametrize("versions,message", [
    (">=6.0.1,<=6.0.3", "versions: >=6.0.1,<=6.0.3 starts below 6.0.3, the oldest version its "
                        "evidence proves; start the range at >=6.0.3"),
    ("<=6.0.3", "versions: <=6.0.3 starts below 6.0.3"),
    (">=6.0.3,<7", "versions: >=6.0.3,<7 admits versions newer than 6.0.3, the newest its "
                   "evidence proves; end the range at <=6.0.3"),
])
def test_validate_rejects_a_range_wider_than_its_evidence(tmp_path, capsys, versions, message):
    root = make_registry(tmp_path / "r", {"pyyaml.yaml": entry_text(versions=versions)})
    assert main(["registry", "validate", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{root / 'packages' / 'pyyaml.yaml'}:2: {message}" in err, err
    # the evidence-tight range passes
    (root / "packages" / "pyyaml.yaml").write_text(entry_text(versions=">=6.0.3,<=6.0.3"))
    assert main(["registry", "validate", str(root)]) == 0


@pytest.mark.parametrize("targets,line,message", [
    ("targets: [python3.12/x86_64, python3.12/arm64, python3.13/x86_64]\n", 12,
     "targets: 1 target(s) no evidence proves (python3.13/x86_64)"),
    ("targets:\n  runtimes: [python3.12]\n", 12,
     "targets: 0 target(s)"),   # runtimes x every arch = the two proven ones: valid
    ("", 1, "missing targets: list the runtime/arch pairs the evidence proves"),
])
def test_validate_rejects_targets_the_evidence_does_not_prove(tmp_path, targets, line, message):
    text = entry_text(targets=targets)
    entry, problems = parse_entry(text, "e.yaml")
    if "0 target(s)" in message:
        assert problems == [] and entry.applies_to(get_target("python3.12", "arm64"))
        assert not entry.applies_to(get_target("python3.13", "x86_64"))
        return
    assert entry is None
    assert [(p.line, p.message[:len(message)]) for p in problems] == [(line, message)]


def test_runtime_capability_entries_need_needs_and_fix():
    base = entry_text().replace("kind: optional-extension-pure-fallback",
                                "kind: runtime-capability")
    _, problems = parse_entry(base, "e.yaml")
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (3, "a runtime-capability entry names its fix"),
        (3, "a runtime-capability entry says what it needs")]
    good = base + ("needs:\n  sqlite: '>=3.35'\nfix:\n  distribution: pysqlite3-binary\n"
                   "  text: Add pysqlite3-binary and use it in place of sqlite3.\n")
    entry, problems = parse_entry(good, "e.yaml")
    assert not problems and entry.needs == (("sqlite", ">=3.35"),)
    assert parse_entry(dump_entry(entry), "e.yaml")[0] == entry
    # an allowlist entry has no needs; a capability entry vouches for no wheel
    _, problems = parse_entry(entry_text() + "needs:\n  sqlite: '>=3.35'\n", "e.yaml")
    assert [p.message for p in problems] == ["needs: only runtime-capability entries have it"]
    registry = PackageRegistry(version="2026.01.01.0", entries=(entry,))
    assert registry.find("pyyaml", "6.0.3", get_target("python3.12")) is None
    assert registry.find("pyyaml", "6.0.3", get_target("python3.12"),
                         kinds=("runtime-capability",)) is entry
