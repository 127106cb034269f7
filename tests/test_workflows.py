"""The GitHub workflows are valid and wired to what exists in the repository.

Validity: every file parses, zizmor (a workflow linter from PyPI, in the test extras) collects
every file strictly and reports no finding; actionlint runs too when it is on PATH (ci.yml
runs it from its container image). Wiring: actions pinned by commit SHA, ``needs`` naming
real jobs, the modules and pytest options the steps call existing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
MINE = ("ci.yml", "nightly-matrix.yml", "refresh-runtimes.yml", "registry-reprove.yml")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _load(name: str) -> dict:
    # PyYAML reads the key "on" as True (YAML 1.1); normalise it back.
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    if True in data:
        data["on"] = data.pop(True)
    return data


def _steps(workflow: dict):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


@pytest.mark.parametrize("name", MINE)
def test_structure(name):
    wf = _load(name)
    assert wf.get("name") and wf.get("on") and wf.get("jobs"), name
    assert wf.get("permissions") == {"contents": "read"}, "least privilege at the top"
    for job_name, job in wf["jobs"].items():
        assert "runs-on" in job, (name, job_name)
        assert job.get("timeout-minutes"), (name, job_name, "every job has a timeout")
        needs = job.get("needs", [])
        for need in [needs] if isinstance(needs, str) else needs:
            assert need in wf["jobs"], (name, job_name, need)
        for step in job.get("steps", []):
            assert ("uses" in step) != ("run" in step), (name, job_name, step)
    for job_name, step in _steps(wf):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), \
                f"{name}/{job_name}: {step['uses']} is not pinned to a commit SHA"


def test_triggers():
    ci = _load("ci.yml")
    assert "pull_request" in ci["on"]
    nightly = _load("nightly-matrix.yml")
    assert nightly["on"]["schedule"][0]["cron"] and "workflow_dispatch" in nightly["on"]
    refresh = _load("refresh-runtimes.yml")
    cron = refresh["on"]["schedule"][0]["cron"].split()
    assert cron[2] == "*" and cron[4] != "*", "weekly: a fixed day of the week"


def test_ci_and_ci_run_share_one_test_selection():
    """ci.yml runs the very command .ci/run is (no second selection of its own); .ci/run runs
    scripts/test.sh, the one place the selection is written, and README names it."""
    ci = _load("ci.yml")
    runs = [step.get("run", "") for _, step in _steps(ci)]
    assert [r for r in runs if r.endswith("bash .ci/run")], runs
    assert not any("pytest" in r or "ruff" in r or "mypy" in r for r in runs), \
        "ci.yml selects no tests itself: .ci/run (scripts/test.sh) does"
    assert "actionlint" in " ".join(runs) and "zizmor" in " ".join(runs)
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci_run.rstrip().splitlines()[-1] == "bash scripts/setup.sh && bash scripts/test.sh"
    assert "pytest" not in ci_run.replace("scripts/test.sh", "")
    test_sh = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    for command in ('-m ruff check resolver compat_tests tests benchmarks', '-m mypy',
                    '-m pytest -m "not container and not heavy" -n 2', '-m pytest compat_tests -m compat_fast',
                    '-m pytest -m container -n 2'):
        assert command in test_sh, command
    assert "bash scripts/setup.sh && bash scripts/test.sh" in \
        (ROOT / "README.md").read_text(encoding="utf-8")
    # the lint tools the selection runs are installed by setup
    assert "'.[test,lint]'" in (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", MINE + ("registry.yml",))
def test_no_silent_continue_on_error(name):
    """A step allowed to fail has an id, and a later step of its job reports the failure."""
    for job_name, job in _load(name)["jobs"].items():
        steps = job.get("steps", [])
        for i, step in enumerate(steps):
            if not step.get("continue-on-error"):
                continue
            sid = step.get("id")
            assert sid, (name, job_name, step.get("name"), "needs an id to be reported")
            reporters = [s for s in steps[i + 1:]
                         if f"steps.{sid}.outcome == 'failure'" in str(s.get("if", ""))]
            assert reporters and all("::warning::" in s.get("run", "") or
                                     "::error::" in s.get("run", "") for s in reporters), \
                (name, job_name, sid, "its failure must be annotated")


def test_nightly_matrix_covers_the_registry_on_both_runner_kinds():
    from compat_tests.workflow_matrix import matrix
    from lambda_compat.registry.runtimes import load_runtimes
    include = matrix()["include"]
    targets = {(t.runtime, t.arch) for t in load_runtimes().targets}
    assert {(e["runtime"], e["arch"]) for e in include} == targets
    assert {e["runner"] for e in include if e["arch"] == "x86_64"} == {"ubuntu-24.04"}
    assert {e["runner"] for e in include if e["arch"] == "arm64"} == {"ubuntu-24.04-arm"}
    for e in include:
        assert e["image_tag"].startswith("public.ecr.aws/lambda/python:")
        if e["digest"]:
            assert e["image"] == f"{e['image_tag']}@{e['digest']}"
        else:
            assert e["image"] == e["image_tag"]
    nightly = _load("nightly-matrix.yml")
    job = nightly["jobs"]["matrix"]
    assert job["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert job["runs-on"] == "${{ matrix.runner }}"
    run = " ".join(s.get("run", "") for s in job["steps"])
    assert "--backend container" in run and '--image "$IMAGE_REF"' in run
    step = next(s for s in job["steps"] if s.get("id") == "image")
    assert "docker pull" in step["run"] and "ref=pinned" in step["run"]
    matrix_step = next(s for s in job["steps"] if "--image" in s.get("run", ""))
    assert matrix_step["env"]["IMAGE_REF"] == "${{ steps.image.outputs.ref }}"
    assert "--require-proof image" in run
    assert "compat_tests.grid merge" in " ".join(
        s.get("run", "") for s in nightly["jobs"]["grid"]["steps"])


def _run_image_step(tmp_path, failures: int, digest: str = ""):
    """The nightly's image step under bash with a stand-in ``docker`` whose first
    ``failures`` pulls fail."""
    step = next(s for s in _load("nightly-matrix.yml")["jobs"]["matrix"]["steps"]
                if s.get("id") == "image")
    pulled = "public.ecr.aws/lambda/python@sha256:" + "cd" * 32
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(
        "#!/bin/sh\necho \"$@\" >> \"$CALLS\"\n"
        "if [ \"$1\" = pull ]; then n=$(grep -c '^pull' \"$CALLS\"); "
        f"[ \"$n\" -le {failures} ] && exit 1; fi\n"
        f"[ \"$1\" = image ] && echo {pulled}\nexit 0\n", encoding="utf-8")
    docker.chmod(0o755)
    output = tmp_path / "github_output"
    calls = tmp_path / "calls"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GITHUB_OUTPUT": str(output),
           "CALLS": str(calls), "IMAGE": "public.ecr.aws/lambda/python:3.12",
           "DIGEST": digest, "RUNTIME": "python3.12", "ARCH": "x86_64",
           "PULL_RETRY_SECONDS": "0"}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True,
                          text=True, timeout=60)
    pulls = [c for c in calls.read_text().splitlines() if c.startswith("pull")]
    return proc, pulls, output


@pytest.mark.parametrize("failures,ok", [(0, True), (2, True), (3, False)])
def test_nightly_retries_the_image_pull(tmp_path, failures, ok):
    proc, pulls, output = _run_image_step(tmp_path, failures, digest="sha256:" + "ab" * 32)
    assert len(pulls) == min(failures + 1, 3)
    if ok:
        assert proc.returncode == 0, proc.stderr
        assert output.read_text() == "ref=pinned\n"
        assert proc.stdout.count("::warning::pulling") == failures
    else:
        assert proc.returncode != 0
        assert "::error::could not pull public.ecr.aws/lambda/python:3.12 after 3 attempts" \
            in proc.stdout


def _results(tmp_path, targets):
    """One --compat-json results file per target, as the nightly's matrix jobs write."""
    from compat_tests import grid
    out = tmp_path / "results"
    out.mkdir(parents=True)
    for runtime, arch in targets:
        cell = {"case": "requests", "target": f"{runtime}/{arch}", "runtime": runtime,
                "arch": arch, "expected": "compatible", "verdict": "compatible",
                "proof": "image", "imported": "ok", "outcome": "passed", "reasons": [],
                "problems": [], "backend": "container"}
        (out / f"{runtime}-{arch}.json").write_text(
            json.dumps(grid.results_document([cell])), encoding="utf-8")
    return out


def test_nightly_merge_reports_a_missing_cell_as_failure(tmp_path, monkeypatch, capsys):
    """A planned runtime x arch whose job wrote no results (its image pull failed) is named
    and fails the merge; the complete matrix passes."""
    from compat_tests import grid
    from compat_tests.workflow_matrix import matrix
    plan = matrix()
    targets = [(e["runtime"], e["arch"]) for e in plan["include"]]
    expected = json.dumps(plan)
    complete = _results(tmp_path / "a", targets)
    assert grid.main(["merge", *map(str, sorted(complete.glob("*.json"))),
                      "--expect-matrix", expected]) == 0
    assert "MISSING" not in capsys.readouterr().out
    partial = _results(tmp_path / "b", [t for t in targets if t != ("python3.12", "arm64")])
    md, js = tmp_path / "summary.md", tmp_path / "grid.json"
    assert grid.main(["merge", *map(str, sorted(partial.glob("*.json"))), "--expect-matrix",
                      expected, "--markdown", str(md), "--json", str(js)]) == 1
    out = capsys.readouterr().out
    assert "MISSING TARGETS (1): python3.12/arm64" in out
    assert "MISSING TARGETS (1): python3.12/arm64" in md.read_text()
    assert json.loads(js.read_text())["meta"]["missing_targets"] == ["python3.12/arm64"]
    # no results at all: every planned target is missing
    assert grid.main(["merge", "--expect-matrix", expected]) == 1
    assert f"MISSING TARGETS ({len(targets)})" in capsys.readouterr().out


def test_nightly_grid_step_checks_the_planned_matrix(tmp_path):
    """The grid job's merge step, run by bash: the plan's matrix goes to --expect-matrix, so a
    failed cell job makes the step (and the run) fail; the summary names the target."""
    from compat_tests.workflow_matrix import matrix
    wf = _load("nightly-matrix.yml")
    job = wf["jobs"]["grid"]
    assert set(job["needs"]) == {"plan", "matrix"} and "always()" in job["if"]
    step = next(s for s in job["steps"] if "compat_tests.grid merge" in s.get("run", ""))
    assert step["env"]["EXPECTED"] == "${{ needs.plan.outputs.matrix }}"
    plan = matrix(["python3.12", "python3.13"])
    work = tmp_path / "work"
    work.mkdir()
    _results(work, [("python3.12", "x86_64"), ("python3.12", "arm64"),
                    ("python3.13", "x86_64")])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    summary = tmp_path / "summary"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "EXPECTED": json.dumps(plan),
           "GITHUB_STEP_SUMMARY": str(summary), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "MISSING TARGETS (1): python3.13/arm64" in summary.read_text()


@pytest.mark.parametrize("digest", ["", "sha256:" + "ab" * 32])
def test_nightly_runs_every_cell_against_one_exact_digest(tmp_path, digest):
    """The nightly's image step, run by bash with a stand-in ``docker`` on PATH: the registry's
    digest when recorded (``--image pinned``), else the digest the tag resolved to at the pull."""
    step = next(s for s in _load("nightly-matrix.yml")["jobs"]["matrix"]["steps"]
                if s.get("id") == "image")
    pulled = "public.ecr.aws/lambda/python@sha256:" + "cd" * 32
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\necho \"$@\" >> \"$CALLS\"\n"
                      f"[ \"$1\" = image ] && echo {pulled}\nexit 0\n", encoding="utf-8")
    docker.chmod(0o755)
    output = tmp_path / "github_output"
    calls = tmp_path / "calls"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GITHUB_OUTPUT": str(output),
           "CALLS": str(calls), "IMAGE": "public.ecr.aws/lambda/python:3.12",
           "DIGEST": digest, "RUNTIME": "python3.12", "ARCH": "x86_64"}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert calls.read_text().splitlines()[0] == "pull public.ecr.aws/lambda/python:3.12"
    if digest:
        assert output.read_text() == "ref=pinned\n"
        assert "::warning::" not in proc.stdout
    else:
        assert output.read_text() == f"ref={pulled}\n"
        assert "::warning::" in proc.stdout and pulled in proc.stdout


def test_refresh_runs_the_probe_and_opens_a_pull_request():
    wf = _load("refresh-runtimes.yml")
    runs = " ".join(step.get("run", "") for _, step in _steps(wf))
    assert "resolver/lambda_compat/prove/_payload/probe.py" in runs
    assert "lambda_compat_probe.handler" in runs
    assert "python -m lambda_compat.cli.probe_merge" in runs
    assert any("create-pull-request" in step.get("uses", "") for _, step in _steps(wf))
    assert wf["jobs"]["pull-request"]["permissions"] == {"contents": "write",
                                                         "pull-requests": "write",
                                                         "actions": "write"}


def test_refresh_pull_request_triggers_ci_and_marks_partial_probes():
    """GITHUB_TOKEN's pull requests trigger no workflow: the job uses REFRESH_PR_TOKEN when set,
    else dispatches ci.yml and registry.yml on the branch; a partial refresh is a draft that
    says so."""
    wf = _load("refresh-runtimes.yml")
    job = wf["jobs"]["pull-request"]
    assert set(job["needs"]) == {"plan", "probe"}
    pr = next(s for s in job["steps"] if "create-pull-request" in s.get("uses", ""))
    assert pr["with"]["token"] == "${{ secrets.REFRESH_PR_TOKEN || github.token }}"
    assert pr["with"]["draft"] == ("${{ steps.coverage.outputs.partial == 'true' || "
                                   "steps.lifecycle.outputs.ok != 'true' }}")
    assert "PARTIAL" in pr["with"]["title"] and "partial" in pr["with"]["labels"]
    lifecycle = next(s for s in job["steps"] if s.get("id") == "lifecycle")
    assert "lambda-runtimes.html" in lifecycle["run"]
    assert "python -m lambda_compat.cli.lifecycle_merge" in lifecycle["run"]
    assert "::error::" in lifecycle["run"] and "ok=false" in lifecycle["run"]
    dispatch = next(s for s in job["steps"] if "gh workflow run" in s.get("run", ""))
    assert "HAS_TOKEN != 'true'" in dispatch["if"]
    assert "gh workflow run ci.yml" in dispatch["run"]
    assert "gh workflow run registry.yml" in dispatch["run"]
    for name in ("ci.yml", "registry.yml"):
        assert "workflow_dispatch" in _load(name)["on"], name
    coverage = next(s for s in job["steps"] if s.get("id") == "coverage")
    assert coverage["env"]["EXPECTED"] == "${{ needs.plan.outputs.matrix }}"
    header = (WORKFLOWS / "refresh-runtimes.yml").read_text(encoding="utf-8")
    assert "REFRESH_PR_TOKEN" in header.split("name:")[0]
    assert "REFRESH_PR_TOKEN" in (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")


def test_refresh_coverage_names_missing_and_partial_probes(tmp_path):
    from compat_tests.workflow_matrix import coverage_report, main, matrix
    plan = json.dumps(matrix(["python3.12"]))
    probes = tmp_path / "probes"
    probes.mkdir()
    (probes / "probe-python3.12-x86_64.json").write_text(
        json.dumps({"target": "python3.12/x86_64", "probe": {"mode": "handler"}}))
    text, partial = coverage_report(plan, probes)
    assert partial and "**Not probed** (1): the probe job failed" in text
    assert "python3.12/arm64" in text
    (probes / "probe-python3.12-arm64.json").write_text(
        json.dumps({"target": "python3.12/arm64", "probe": {"mode": "cli"}}))
    text, partial = coverage_report(plan, probes)
    assert partial and "**Partial** (1)" in text and "python3.12/arm64" in text
    (probes / "probe-python3.12-arm64.json").write_text(
        json.dumps({"target": "python3.12/arm64", "probe": {"mode": "handler"}}))
    text, partial = coverage_report(plan, probes)
    assert not partial and "2 of 2 targets" in text
    assert main(["coverage", "--matrix", plan, str(probes)]) == 0
    assert (probes / "coverage.md").read_text() == text


def test_called_modules_and_pytest_options_exist():
    import importlib
    text = "\n".join((WORKFLOWS / n).read_text(encoding="utf-8") for n in MINE)
    for module in sorted(set(re.findall(r"python -m ([a-z_]+(?:\.[a-z_]+)+)", text))):
        importlib.import_module(module)
    conftest = (ROOT / "compat_tests" / "conftest.py").read_text(encoding="utf-8")
    for option in sorted(set(re.findall(r"(--(?:runtime|arch|backend|image|engine|rootfs|"
                                         r"require-proof|compat-[a-z]+|run-containers))\b", text))):
        assert f'"{option}"' in conftest, option


def test_zizmor_finds_nothing():
    exe = shutil.which("zizmor") or str(Path(sys.executable).with_name("zizmor"))
    if not Path(exe).exists():
        pytest.skip("zizmor is not installed (pip install -e '.[test]')")
    paths = [str(WORKFLOWS / n) for n in MINE]
    proc = subprocess.run([exe, "--offline", "--strict-collection", "--no-progress", *paths],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No findings" in proc.stdout, proc.stdout


def test_actionlint_when_available():
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint is not on PATH here (ci.yml runs it from rhysd/actionlint)")
    proc = subprocess.run([exe, *[str(WORKFLOWS / n) for n in MINE]], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_nightly_builds_in_the_sam_build_image():
    """The nightly builds netifaces (sdist, C extension) with --build-env container in the real
    SAM build image on both architectures and requires a compatible result."""
    job = _load("nightly-matrix.yml")["jobs"]["build-env-container"]
    assert {(e["arch"], e["runner"]) for e in job["strategy"]["matrix"]["include"]} == \
        {("x86_64", "ubuntu-24.04"), ("arm64", "ubuntu-24.04-arm")}
    assert job["env"]["RUNTIME"] == "python3.12"
    assert job["env"]["BUILD_IMAGE"] == "public.ecr.aws/sam/build-python3.12"
    run = " ".join(s.get("run", "") for s in job["steps"])
    assert "netifaces==0.11.0" in run and "--build-env container" in run
    assert "lambda-compat check bundle" in run and '!= "compatible"' in run
    assert "ARM aarch64" in run
