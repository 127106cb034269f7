"""The GitHub workflows are valid and wired to what exists in the repository.

Validity: every file parses, zizmor (a workflow linter from PyPI, in the test extras) collects
every file strictly and reports no finding; actionlint runs too when it is on PATH (ci.yml
runs it from its container image). Wiring: actions pinned by commit SHA, ``needs`` naming
real jobs, the modules and pytest options the steps call existing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
MINE = ("ci.yml", "nightly-matrix.yml", "refresh-runtimes.yml")
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


def test_ci_runs_lint_typing_tests_and_the_fast_slice():
    runs = " ".join(step.get("run", "") for _, step in _steps(_load("ci.yml")))
    assert "ruff check" in runs and "mypy" in runs
    assert "actionlint" in runs and "zizmor" in runs
    # the same selections as .ci/run (README's test command)
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for selection in ('-m pytest -m "not container" -n 2',
                      "-m pytest compat_tests -m compat_fast -n 2"):
        assert selection in ci_run and selection in runs, selection


def test_nightly_matrix_covers_the_registry_on_both_runner_kinds():
    from compat_tests.workflow_matrix import matrix
    from lambda_compat.runtimes import load_runtimes
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
    assert "resolver/lambda_compat/probe.py" in runs
    assert "lambda_compat_probe.handler" in runs
    assert "lambda_compat.probe_merge" in runs
    assert any("create-pull-request" in step.get("uses", "") for _, step in _steps(wf))
    assert wf["jobs"]["pull-request"]["permissions"] == {"contents": "write",
                                                         "pull-requests": "write"}


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
