"""The weekly re-prove job: one release above each entry's newest evidence, the entry
extended only by what its compat test then proves, VERSION and changelog bumped."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from lambda_compat.registry.packages import check_registry, load_packages, parse_entry
from lambda_compat.registry.runtimes import registry_dir

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from compat_tests import reprove  # noqa: E402

WORKFLOW = ROOT / ".github" / "workflows" / "registry-reprove.yml"


@pytest.fixture
def registry(tmp_path):
    reg = tmp_path / "registry"
    shutil.copytree(registry_dir(), reg, ignore=shutil.ignore_patterns("__pycache__"))
    return reg


def test_next_release_is_the_first_final_one_above_the_evidence():
    entry = load_packages().get("pyyaml")
    assert str(reprove.newest_evidence(entry)) == "6.0.3"
    assert reprove.next_release(entry, ["6.0.1", "6.0.3", "7.0.0b1", "6.0.5", "6.0.4"]) == "6.0.4"
    assert reprove.next_release(entry, ["6.0.3", "7.0.0rc1", "garbage"]) is None


def test_plan_lists_one_candidate_per_entry():
    offered = {"pyyaml": ["6.0.3", "6.0.4"], "msgpack": ["1.0.6", "1.0.7", "1.0.8"]}
    jobs = reprove.plan(lambda name: offered.get(name, []))
    assert jobs == [{"entry": "msgpack", "version": "1.0.7", "after": "1.0.6"},
                    {"entry": "pyyaml", "version": "6.0.4", "after": "6.0.3"}]


def test_extend_then_finish_gives_a_valid_registry(registry):
    path = reprove.extend("pyyaml", "6.0.4", "2026-12-03", root=registry)
    entry, problems = parse_entry(path.read_text(), str(path))
    assert not problems, problems
    assert str(entry.versions) == "<=6.0.4,>=6.0.1"
    new = entry.evidence[-1]
    assert new.versions == ("6.0.4",) and new.date == "2026-12-03"
    # the targets of the newest record (6.0.3's), which the compat test then runs on
    assert new.targets == load_packages().get("pyyaml").evidence[0].targets
    version = reprove.finish(["pyyaml"], "2026-12-03", root=registry)
    assert version == "2026.12.03.0"
    _, problems = check_registry(registry, changelog=True)
    assert not problems, problems
    text = (registry / "CHANGELOG.md").read_text()
    assert text.index("## 2026.12.03.0") < text.index("## 2026.12.02.0")
    assert "`pyyaml <=6.0.4,>=6.0.1`" in text
    # a second change the same day counts on
    assert reprove.finish(["pyyaml"], "2026-12-03", root=registry) == "2026.12.03.1"


def test_the_workflow_keeps_only_what_the_test_proved():
    data = yaml.safe_load(WORKFLOW.read_text())
    on = data.get("on", data.get(True))
    assert on["schedule"][0]["cron"] and "workflow_dispatch" in on
    assert data["permissions"] == {"contents": "read"}
    jobs = data["jobs"]
    plan_run = " ".join(s.get("run", "") for s in jobs["plan"]["steps"])
    assert "python -m compat_tests.reprove plan" in plan_run
    prove = jobs["prove"]
    assert prove["if"] == "needs.plan.outputs.count != '0'"
    assert prove["strategy"]["fail-fast"] is False
    runs = [s.get("run", "") for s in prove["steps"]]
    extend_i = next(i for i, r in enumerate(runs) if "compat_tests.reprove extend" in r)
    test_i = next(i for i, r in enumerate(runs) if "compat_tests/test_registry_entries.py" in r)
    assert extend_i < test_i and '-k "[$ENTRY-$VERSION-"' in runs[test_i]
    upload = next(s for s in prove["steps"] if "upload-artifact" in s.get("uses", ""))
    assert "if" not in upload, "uploaded only when the test passed (the default success())"
    pr = jobs["pull-request"]
    pr_runs = " ".join(s.get("run", "") for s in pr["steps"])
    assert "compat_tests.reprove finish" in pr_runs
    assert "lambda-compat registry validate --stamp" in pr_runs   # validates, then stamps
    assert "registry/schema/validated.json" in str(
        next(s for s in pr["steps"] if "create-pull-request" in s.get("uses", ""))["with"])
    create = next(s for s in pr["steps"] if "create-pull-request" in s.get("uses", ""))
    assert create["with"]["token"] == "${{ secrets.REFRESH_PR_TOKEN || github.token }}"
