"""Deploy-tool recipes (docs/integrations.md), their command lines run on a fixture project.

SAM's `make build-<Function>`, CDK's local bundling (the recipe's JavaScript, run by node),
and Chalice's `chalice package` with lambda-compat's deployment.zip (network: Chalice from
PyPI). Requirements are the offline fixture index's, so lc-arm-only in the output proves the
build was made for arm64.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from conftest import INDEX, ROOT

RECIPES = ROOT / "examples" / "recipes"
LAMBDA_COMPAT = str(Path(sys.executable).with_name("lambda-compat"))


def _offline_args(cache: Path) -> str:
    return f"--isolated -i {(INDEX / 'simple').as_uri()} --cache-dir {cache}"


def _sam_template() -> dict:
    return yaml.safe_load((RECIPES / "sam" / "template.yaml").read_text())


def test_sam_makefile_matches_its_template():
    fn = _sam_template()["Resources"]["HelloFunction"]
    makefile = (RECIPES / "sam" / "Makefile").read_text()
    assert fn["Metadata"]["BuildMethod"] == "makefile"
    assert re.search(rf"^RUNTIME \?= {fn['Properties']['Runtime']}$", makefile, re.M)
    arch = fn["Properties"]["Architectures"][0]
    assert re.search(rf"^ARCH \?= {arch}$", makefile, re.M)
    assert "build-HelloFunction:" in makefile


def test_sam_make_build(tmp_path, shared_cache):
    project = tmp_path / "project"
    shutil.copytree(RECIPES / "sam", project)
    (project / "requirements.txt").write_text("lc-markers==1.0\n")
    artifacts = tmp_path / ".aws-sam" / "build" / "HelloFunction"
    artifacts.mkdir(parents=True)               # sam build creates it, empty
    proc = subprocess.run(
        ["make", "--no-print-directory", "build-HelloFunction", f"ARTIFACTS_DIR={artifacts}",
         f"LAMBDA_COMPAT={LAMBDA_COMPAT}", f"LAMBDA_COMPAT_ARGS={_offline_args(shared_cache)}"],
        cwd=project, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (artifacts / "app.py").is_file()
    assert (artifacts / "lc_arm_only").is_dir() and (artifacts / "lc_markers").is_dir()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_cdk_local_bundling(tmp_path, shared_cache):
    source = tmp_path / "function"
    shutil.copytree(RECIPES / "cdk" / "function", source)
    (source / "requirements.txt").write_text("lc-markers==1.0\n")
    out = tmp_path / "asset.out"
    out.mkdir()                                  # CDK passes an empty directory
    script = (
        "const { LambdaCompatBundling } = require(process.argv[1]);"
        "const b = new LambdaCompatBundling(process.argv[2], 'python3.12', 'arm64',"
        " process.argv[4].split(' '));"
        "process.stdout.write(JSON.stringify(b.tryBundle(process.argv[3])));")
    proc = subprocess.run(
        ["node", "-e", script, str(RECIPES / "cdk" / "local-bundling.js"), str(source),
         str(out), _offline_args(shared_cache)],
        env=dict(os.environ, LAMBDA_COMPAT=LAMBDA_COMPAT), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) is True
    assert (out / "app.py").is_file() and not (out / "requirements.txt").exists()
    assert (out / "lc_arm_only").is_dir()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_cdk_local_bundling_fails_loudly_on_a_verdict(tmp_path, shared_cache):
    source = tmp_path / "function"
    shutil.copytree(RECIPES / "cdk" / "function", source)
    (source / "requirements.txt").write_text("lc-native==1.0\n")   # no cp313 wheel
    script = (
        "const { LambdaCompatBundling } = require(process.argv[1]);"
        "new LambdaCompatBundling(process.argv[2], 'python3.13', 'x86_64',"
        " process.argv[4].split(' ')).tryBundle(process.argv[3]);")
    proc = subprocess.run(
        ["node", "-e", script, str(RECIPES / "cdk" / "local-bundling.js"), str(source),
         str(tmp_path / "out"), _offline_args(shared_cache)],
        env=dict(os.environ, LAMBDA_COMPAT=LAMBDA_COMPAT), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode != 0
    assert "lc-native" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def chalice(tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("chalice-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", "chalice>=1.31,<2"], check=True,
                   timeout=600)
    return venv / "bin" / "chalice"


@pytest.mark.network
@pytest.mark.slow
def test_chalice_package_with_lambda_compat_zip(tmp_path, shared_cache, chalice):
    subprocess.run([str(chalice), "new-project", "demo"], cwd=tmp_path, check=True)
    project = tmp_path / "demo"
    (project / "requirements.txt").write_text("lc-markers==1.0\n")
    index = (INDEX / "simple").as_uri()
    env = dict(os.environ, CHALICE=str(chalice), LAMBDA_COMPAT=LAMBDA_COMPAT,
               LAMBDA_COMPAT_ARGS=_offline_args(shared_cache), AWS_DEFAULT_REGION="us-east-1",
               PIP_INDEX_URL=index)               # Chalice's own pip step, for its zip
    proc = subprocess.run(["bash", str(RECIPES / "chalice" / "package.sh"), "out",
                           "python3.12", "arm64"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (project / "out" / "sam.json").is_file()
    names = zipfile.ZipFile(project / "out" / "deployment.zip").namelist()
    assert "app.py" in names and "lc_arm_only/__init__.py" in names
    assert not (project / "out" / "lambda-compat").exists()
