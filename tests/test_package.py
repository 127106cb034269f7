"""``lambda-compat package``: layouts, reproducibility, verification, lock files, handler, JSON.

Offline: dependencies come from the fixture index (fixtures/index), the app code from
fixtures/projects/chalice-like (its requirements replaced by lc-* pins). The same acceptance
tests against real PyPI (sortedcontainers==2.4.0) are in test_package_pypi.py.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import jsonschema
import pytest

from conftest import INDEX, fixture_config
from lambda_compat.cli import main as cli
from lambda_compat import errors
from lambda_compat.registry.runtimes import get_target
from lambda_compat.host.outputs import MARKER
from lambda_compat.package.core import package_project
from lambda_compat.package.model import LAYER_ZIP, PackageOptions
from lambda_compat.package.staging import site_packages
from lambda_compat.package.project import load_project

ROOT = Path(__file__).resolve().parent.parent
CHALICE = ROOT / "fixtures" / "projects" / "chalice-like"
LOCKED = ROOT / "fixtures" / "projects" / "locked" / "offline"
ELF = ROOT / "fixtures" / "elf"
SCHEMA = json.loads((ROOT / "resolver" / "lambda_compat" / "schemas"
                     / "package-result.schema.json").read_text())

APP = ["app.py", "chalicelib/", "chalicelib/__init__.py", "chalicelib/scores.py"]
VENDOR = ["internalpackage/", "internalpackage/__init__.py"]
DEPS = ["lc_abi3/", "lc_abi3/__init__.py", "lc_abi3/_speedups.abi3.so",
        "lc_abi3-1.0.dist-info/", "lc_abi3-1.0.dist-info/INSTALLER",
        "lc_abi3-1.0.dist-info/METADATA", "lc_abi3-1.0.dist-info/RECORD",
        "lc_abi3-1.0.dist-info/WHEEL",
        "lc_pure/", "lc_pure/__init__.py",
        "lc_pure-1.1.dist-info/", "lc_pure-1.1.dist-info/INSTALLER",
        "lc_pure-1.1.dist-info/METADATA", "lc_pure-1.1.dist-info/RECORD",
        "lc_pure-1.1.dist-info/WHEEL"]


def project_copy(tmp_path: Path, requirements: str = "lc-pure==1.1\nlc-abi3==1.0\n",
                 name: str = "proj") -> Path:
    dest = tmp_path / name
    shutil.copytree(CHALICE, dest)
    (dest / "requirements.txt").write_text(requirements)
    return dest


def run(project_dir: Path, out: Path, cache: Path, runtime="python3.12", arch="x86_64",
        **options):
    project_kw = {k: options.pop(k) for k in ("sources", "requirements", "vendor", "exclude")
                  if k in options}
    project = load_project(project_dir, **project_kw)
    return package_project(project, out, runtime, arch, config=fixture_config(cache),
                           options=PackageOptions(**options))


def names(zip_path: Path):
    with zipfile.ZipFile(zip_path) as zf:
        assert zf.testzip() is None
        return zf.namelist()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_bytes(items):
    return sorted(items, key=lambda n: n.encode())


def cli_run(capsys, *argv):
    code = cli.main(["package", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def index_args(cache: Path):
    return ["-i", (INDEX / "simple").as_uri(), "--isolated", "--cache-dir", str(cache)]


# -- layouts ----------------------------------------------------------------------------------

def test_bundle_layout_exact_file_list(tmp_path, shared_cache):
    proj = project_copy(tmp_path)
    result = run(proj, tmp_path / "dist", shared_cache)
    assert result.ok, result.findings
    assert names(tmp_path / "dist" / "deployment.zip") == by_bytes(APP + VENDOR + DEPS)
    assert not (tmp_path / "dist" / LAYER_ZIP).exists()
    assert [z.path.name for z in result.zips] == ["deployment.zip"]
    assert result.verified and not result.warnings


def test_layer_layout_exact_file_lists(tmp_path, shared_cache):
    proj = project_copy(tmp_path)
    result = run(proj, tmp_path / "dist", shared_cache, layer=True)
    assert result.ok, result.findings
    assert names(tmp_path / "dist" / "deployment.zip") == by_bytes(APP)
    site = "python/lib/python3.12/site-packages/"
    assert site_packages(get_target("python3.12", "x86_64")) + "/" == site
    parents = ["python/", "python/lib/", "python/lib/python3.12/", site]
    assert names(tmp_path / "dist" / LAYER_ZIP) == by_bytes(
        parents + [site + n for n in VENDOR + DEPS])


def test_layer_site_packages_follows_the_runtime(tmp_path, shared_cache):
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    result = run(proj, tmp_path / "dist", shared_cache, runtime="python3.10", arch="arm64",
                 layer=True)
    assert result.ok, result.findings
    layer = names(tmp_path / "dist" / LAYER_ZIP)
    assert "python/lib/python3.10/site-packages/lc_pure/__init__.py" in layer


def test_zip_metadata_is_normalised_and_host_bytecode_left_out(tmp_path, shared_cache):
    proj = project_copy(tmp_path)
    pyc = proj / "chalicelib" / "__pycache__"
    pyc.mkdir()
    (pyc / "scores.cpython-312.pyc").write_bytes(b"\x00" * 16)
    (proj / "vendor" / "internalpackage" / "stale.pyc").write_bytes(b"\x00" * 16)
    os.chmod(proj / "app.py", 0o600)
    result = run(proj, tmp_path / "dist", shared_cache)
    assert result.ok
    with zipfile.ZipFile(tmp_path / "dist" / "deployment.zip") as zf:
        listed = zf.namelist()
        assert not [n for n in listed if n.endswith(".pyc") or "__pycache__" in n]
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            mode = (info.external_attr >> 16) & 0o777
            expected = 0o755 if info.filename.endswith(("/", ".so")) else 0o644
            assert mode == expected, info.filename


# -- reproducibility --------------------------------------------------------------------------

def test_same_inputs_twice_same_sha256(tmp_path, shared_cache):
    a = project_copy(tmp_path, name="a")
    first = run(a, tmp_path / "out1", shared_cache, layer=True)
    # Same inputs elsewhere, touched, with other permissions, compressed with other threads.
    b = project_copy(tmp_path / "other", name="b")
    for p in b.rglob("*"):
        os.utime(p, (1_800_000_000, 1_800_000_000))
    os.chmod(b / "chalicelib" / "scores.py", 0o640)
    second = run(b, tmp_path / "out2", shared_cache, layer=True, jobs=1)
    for name in ("deployment.zip", LAYER_ZIP):
        assert sha(tmp_path / "out1" / name) == sha(tmp_path / "out2" / name), name
    assert [z.sha256 for z in first.zips] == [z.sha256 for z in second.zips]
    # ...and a real change changes the bytes.
    (b / "app.py").write_text((b / "app.py").read_text() + "\n# changed\n")
    third = run(b, tmp_path / "out3", shared_cache, layer=True)
    assert third.zips[0].sha256 != first.zips[0].sha256
    assert third.zips[1].sha256 == first.zips[1].sha256


def test_source_date_epoch_sets_every_timestamp(tmp_path, shared_cache, monkeypatch):
    proj = project_copy(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1609459200")   # 2021-01-01 00:00:00 UTC
    run(proj, tmp_path / "dist", shared_cache)
    with zipfile.ZipFile(tmp_path / "dist" / "deployment.zip") as zf:
        assert {i.date_time for i in zf.infolist()} == {(2021, 1, 1, 0, 0, 0)}


# -- verification before writing, atomic outputs ------------------------------------------------

def test_incompatible_vendored_so_is_reported_and_nothing_written(tmp_path, shared_cache):
    proj = project_copy(tmp_path)
    shutil.copy(ELF / "_glibc236.abi3.so", proj / "vendor" / "internalpackage" / "_fast.abi3.so")
    result = run(proj, tmp_path / "dist", shared_cache)
    assert not result.ok and result.failure == "verification-failed"
    assert result.exit_code == 1
    bad = [f for f in result.findings if f.severity == "error"]
    assert [f.code for f in bad] == ["glibc-too-new"]
    assert bad[0].file.endswith("internalpackage/_fast.abi3.so")
    assert "GLIBC_2.36" in bad[0].message
    assert bad[0].message.endswith("(from vendor/internalpackage/_fast.abi3.so)")
    assert "your own file" in bad[0].fix
    assert not (tmp_path / "dist").exists()
    assert not list(tmp_path.glob(".dist*")), "temporary files left behind"


def test_no_verify_is_loud(tmp_path, shared_cache, capsys):
    proj = project_copy(tmp_path)
    shutil.copy(ELF / "_glibc236.abi3.so", proj / "vendor" / "internalpackage" / "_fast.abi3.so")
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.12", "-o",
                             str(tmp_path / "dist"), "--no-verify", "--format", "json",
                             *index_args(shared_cache))
    assert code == 0, err
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["verified"] is False and data["status"] == "written"
    assert any(w.startswith("NOT VERIFIED") for w in data["warnings"])
    assert "WARNING: --no-verify" in err
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.12", "-o",
                             str(tmp_path / "dist"), "--no-verify", *index_args(shared_cache))
    assert code == 0
    assert "NOT VERIFIED" in out


def test_failed_run_leaves_earlier_zips_untouched(tmp_path, shared_cache):
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    assert run(proj, tmp_path / "dist", shared_cache, layer=True).ok
    before = {p.name: p.read_bytes() for p in (tmp_path / "dist").iterdir()}
    assert set(before) == {"deployment.zip", LAYER_ZIP, MARKER}
    # lc-glibc 2.0 needs glibc 2.28; python3.11 (Amazon Linux 2) has 2.26.
    (proj / "requirements.txt").write_text("lc-glibc==2.0\n")
    result = run(proj, tmp_path / "dist", shared_cache, runtime="python3.11")
    assert result.failure == "dependencies-missing" and result.exit_code == 1
    assert [f.code for f in result.findings] == ["glibc-too-new"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "dist").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist", "proj"]


def test_bundle_run_after_a_layer_run_removes_the_stale_layer(tmp_path, shared_cache):
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    assert run(proj, tmp_path / "dist", shared_cache, layer=True).ok
    result = run(proj, tmp_path / "dist", shared_cache)
    assert result.ok
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == [MARKER, "deployment.zip"]
    assert result.removed == (str(tmp_path / "dist" / LAYER_ZIP),)
    assert any("removed" in w for w in result.warnings)


def test_size_limits_judged_before_writing(tmp_path, shared_cache, monkeypatch):
    from lambda_compat.package import core as package
    from lambda_compat.verify import static_check
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    monkeypatch.setattr(static_check, "UNZIPPED_LIMIT", 1000)
    result = run(proj, tmp_path / "dist", shared_cache)
    assert result.failure == "size-limit"
    assert not (tmp_path / "dist").exists()
    assert result.sizes is not None and result.sizes.unzipped_bytes > 1000
    monkeypatch.undo()
    monkeypatch.setattr(package, "ZIP_LIMIT", 100)
    result = run(proj, tmp_path / "dist", shared_cache)
    assert result.ok   # over the direct-upload limit: a warning (S3 upload), still written
    warn = [f for f in result.findings if f.code == "size-limit"]
    assert warn and warn[0].severity == "warning" and "through S3" in warn[0].fix
    assert result.sizes.deployment_zip_bytes == (tmp_path / "dist" / "deployment.zip").stat().st_size


# -- --strip --------------------------------------------------------------------------------

def test_strip_tests_and_docs_keeps_dist_info_and_record_consistent(tmp_path, shared_cache):
    proj = project_copy(tmp_path, "lc-with-tests==1.0\n")
    plain = run(proj, tmp_path / "plain", shared_cache)
    listed = names(tmp_path / "plain" / "deployment.zip")
    assert "lc_with_tests/tests/test_core.py" in listed
    assert "lc_with_tests/docs/index.rst" in listed
    result = run(proj, tmp_path / "dist", shared_cache, strip=("tests", "docs"))
    assert result.ok and plain.ok
    assert result.stripped == ("lc_with_tests/docs", "lc_with_tests/tests")
    assert result.stripped_bytes > 0
    listed = names(tmp_path / "dist" / "deployment.zip")
    assert not [n for n in listed if "/tests/" in n or "/docs/" in n]
    assert "lc_with_tests-1.0.dist-info/METADATA" in listed
    # RECORD names exactly the files that are there, and importlib.metadata agrees.
    dest = tmp_path / "unzipped"
    with zipfile.ZipFile(tmp_path / "dist" / "deployment.zip") as zf:
        zf.extractall(dest)
    rows = list(csv.reader(io.StringIO(
        (dest / "lc_with_tests-1.0.dist-info" / "RECORD").read_text())))
    assert {r[0] for r in rows} == {n for n in listed if n.startswith("lc_with_tests")
                                    and not n.endswith("/")}
    dist = importlib.metadata.PathDistribution(dest / "lc_with_tests-1.0.dist-info")
    assert dist.version == "1.0"
    assert all(f.locate().exists() for f in dist.files)


def test_unknown_strip_category(tmp_path, shared_cache, capsys):
    proj = project_copy(tmp_path)
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.12", "--strip",
                             "tests,examples", *index_args(shared_cache))
    assert code == 2 and "unknown category" in err and "tests, docs" in err


# -- lock files ------------------------------------------------------------------------------

def bundle_view(zip_path: Path):
    """File list and (distribution, version) pairs of a deployment zip."""
    listed = names(zip_path)
    dists = sorted(tuple(n[:-len(".dist-info/")].rsplit("-", 1)) for n in listed
                   if n.endswith(".dist-info/"))
    return listed, dists


@pytest.fixture(scope="module")
def reference_bundles(tmp_path_factory, shared_cache):
    """The bundle of locked/offline/requirements.txt per target, built once."""
    cache = {}

    def get(runtime, arch):
        if (runtime, arch) not in cache:
            tmp = tmp_path_factory.mktemp("ref")
            proj = project_copy(tmp, (LOCKED / "requirements.txt").read_text())
            result = run(proj, tmp / "dist", shared_cache, runtime=runtime, arch=arch)
            assert result.ok, result.findings
            cache[(runtime, arch)] = tmp / "dist" / "deployment.zip"
        return cache[(runtime, arch)]
    return get


# python3.9/arm64 takes every marker branch (aarch64-only, <3.11, <3.10); python3.12/x86_64,
# which takes none of them, runs with the slow tests.
@pytest.mark.parametrize("target", [pytest.param(("python3.12", "x86_64"), marks=pytest.mark.slow),
                                    ("python3.9", "arm64")])
@pytest.mark.parametrize("lock", ["pipenv/Pipfile.lock", "poetry/poetry.lock",
                                  "poetry-1.1/poetry.lock", "uv/uv.lock", "pylock/pylock.toml"])
def test_lock_files_give_the_same_bundle_as_requirements(lock, target, tmp_path, shared_cache,
                                                         reference_bundles):
    reference = reference_bundles(*target)
    proj = project_copy(tmp_path)
    (proj / "requirements.txt").unlink()
    result = run(proj, tmp_path / "dist", shared_cache, runtime=target[0], arch=target[1],
                 requirements=str(LOCKED / lock))
    assert result.ok, result.findings
    assert result.project.dependencies_kind == lockfiles_kind(lock)
    got = bundle_view(tmp_path / "dist" / "deployment.zip")
    assert got == bundle_view(reference)
    assert sha(tmp_path / "dist" / "deployment.zip") == sha(reference)
    assert not [d for d, _ in got[1] if d in ("lc_rp_trap", "lc_extra_dep")]
    assert set(result.lock.excluded_dev) == {"lc-rp-trap", "lc-extra-dep"}


def lockfiles_kind(lock: str) -> str:
    from lambda_compat.package.lockfiles.dispatch import lock_kind
    return lock_kind(Path(lock))


def test_lock_file_found_in_the_project(tmp_path, shared_cache):
    proj = project_copy(tmp_path)
    (proj / "requirements.txt").unlink()
    shutil.copy(LOCKED / "uv" / "uv.lock", proj)
    result = run(proj, tmp_path / "dist", shared_cache)
    assert result.ok and result.project.dependencies_kind == "uv.lock"
    assert {p.name for p in result.lock.pins} == {"lc-abi3", "lc-markers", "lc-pure"}


def test_several_lock_files_and_no_requirements_is_ambiguous(tmp_path, shared_cache, capsys):
    proj = project_copy(tmp_path)
    (proj / "requirements.txt").unlink()
    shutil.copy(LOCKED / "uv" / "uv.lock", proj)
    shutil.copy(LOCKED / "pylock" / "pylock.toml", proj)
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.12",
                             *index_args(shared_cache))
    assert code == 2
    assert "several lock files (uv.lock, pylock.toml)" in err and "-r FILE" in err


def test_requirements_option_is_relative_to_the_current_directory(tmp_path, shared_cache,
                                                                   capsys, monkeypatch):
    proj = project_copy(tmp_path)
    (proj / "requirements.txt").unlink()
    shutil.copy(LOCKED / "pylock" / "pylock.toml", tmp_path / "pylock.toml")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli_run(capsys, "proj", "--runtime", "python3.12", "-r", "pylock.toml",
                             "--format", "json", *index_args(shared_cache))
    assert code == 0, err
    data = json.loads(out)
    assert data["dependencies"]["kind"] == "pylock.toml"
    assert data["dependencies"]["path"] == str(tmp_path / "pylock.toml")
    assert data["output_dir"] == str(proj / "dist")


def test_project_without_dependencies(tmp_path, shared_cache):
    proj = project_copy(tmp_path)
    (proj / "requirements.txt").unlink()
    result = run(proj, tmp_path / "dist", shared_cache)
    assert result.ok and result.build is None
    assert names(tmp_path / "dist" / "deployment.zip") == by_bytes(APP + VENDOR)
    shutil.rmtree(proj / "vendor")
    result = run(proj, tmp_path / "dist", shared_cache, layer=True)
    assert result.ok
    assert any("layer.zip holds no packages" in w for w in result.warnings)


# -- project layouts ---------------------------------------------------------------------------

def test_src_layout_from_pyproject(tmp_path, shared_cache):
    proj = tmp_path / "srcproj"
    (proj / "src" / "myapp").mkdir(parents=True)
    (proj / "src" / "myapp" / "__init__.py").write_text("")
    (proj / "src" / "myapp" / "handler.py").write_text("def main(e, c):\n    return 1\n")
    (proj / "src" / "myapp" / "README.md").write_text("notes\n")
    (proj / "deps.txt").write_text("lc-pure==1.1\n")
    (proj / "pyproject.toml").write_text(
        '[project]\nname = "myapp"\nversion = "1"\n\n'
        '[tool.lambda-compat]\nsources = ["src/myapp"]\nrequirements = "deps.txt"\n'
        'exclude = ["*.md"]\n')
    result = run(proj, tmp_path / "dist", shared_cache)
    assert result.ok, result.findings
    assert names(tmp_path / "dist" / "deployment.zip") == by_bytes(
        ["myapp/", "myapp/__init__.py", "myapp/handler.py", "lc_pure/", "lc_pure/__init__.py",
         "lc_pure-1.1.dist-info/", "lc_pure-1.1.dist-info/INSTALLER",
         "lc_pure-1.1.dist-info/METADATA", "lc_pure-1.1.dist-info/RECORD",
         "lc_pure-1.1.dist-info/WHEEL"])
    # --source on the command line replaces the configured sources.
    (proj / "main.py").write_text("def handler(e, c):\n    return 2\n")
    result = run(proj, tmp_path / "dist2", shared_cache, sources=["main.py", "src/myapp"])
    listed = names(tmp_path / "dist2" / "deployment.zip")
    assert "main.py" in listed and "myapp/handler.py" in listed


@pytest.mark.parametrize("setup,argv,message", [
    (lambda p: (p / "app.py").unlink(), [], "no app.py, and no sources configured"),
    (lambda p: (p / "pyproject.toml").write_text("[tool.lambda-compat]\nsource = ['x']\n"),
     [], "pyproject.toml:2: unknown key 'source'"),
    (lambda p: None, ["--source", "../elsewhere"], "is outside the project directory"),
    (lambda p: (p / "vendor" / "chalicelib").mkdir() or
     (p / "vendor" / "chalicelib" / "scores.py").write_text("x = 1\n"), [],
     "both put a file at the same place (chalicelib/scores.py)"),
    (lambda p: None, ["-r", "missing.txt"], "missing.txt: dependency file not found"),
    (lambda p: None, ["--check-handler", "app"], "is not of the form module.function"),
    (lambda p: None, ["--compression-level", "12"], "not between 0 and 9"),
])
def test_bad_input_is_a_clear_error(tmp_path, shared_cache, capsys, setup, argv, message):
    proj = project_copy(tmp_path)
    setup(proj)
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.12", "-o",
                             str(tmp_path / "dist"), *argv, *index_args(shared_cache))
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "dist").exists()


def test_output_inside_a_source_is_refused(tmp_path, shared_cache):
    proj = project_copy(tmp_path)
    with pytest.raises(errors.BadInput, match="would package themselves"):
        run(proj, proj / "chalicelib" / "dist", shared_cache)


def test_dependency_file_colliding_with_app_code(tmp_path, shared_cache):
    proj = project_copy(tmp_path)
    (proj / "vendor" / "lc_pure").mkdir()
    (proj / "vendor" / "lc_pure" / "__init__.py").write_text("# my fork\n")
    with pytest.raises(errors.BadInput, match=r"lc_pure/__init__.py\)") as e:
        run(proj, tmp_path / "dist", shared_cache)
    assert "a dependency" in str(e.value)


# -- --check-handler ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def host_backend_312():
    from lambda_compat.prove.backends import selection
    try:
        return selection.select_backend(get_target("python3.12", "x86_64"), "host")
    except errors.EnvironmentProblem as e:
        pytest.skip(f"no host backend for python3.12/x86_64: {e}")


def handler_project(tmp_path: Path, app: str) -> Path:
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    (proj / "app.py").write_text(app)
    return proj


def test_check_handler_imports_with_cli_mode_set(tmp_path, shared_cache, host_backend_312):
    proj = handler_project(tmp_path, (
        "import os\nimport lc_pure\nimport internalpackage\nfrom chalicelib import scores\n"
        "if os.environ.get('LAMBDA_COMPAT_CLI_MODE') != '1':\n"
        "    raise RuntimeError('expensive start-up ran during the check')\n"
        "def handler(event, context):\n    return lc_pure.__version__\n"))
    result = run(proj, tmp_path / "dist", shared_cache, check_handler="app.handler",
                 backend="host")
    assert result.ok, result.findings
    assert result.handler.ok and result.handler.proof == "host"
    assert (tmp_path / "dist" / "deployment.zip").exists()
    # In a layer, the dependencies come from /opt: the import still works.
    result = run(proj, tmp_path / "dist2", shared_cache, check_handler="app.handler",
                 backend="host", layer=True)
    assert result.ok and result.handler.ok


def test_handler_that_fails_to_import_is_reported(tmp_path, shared_cache, capsys,
                                                  host_backend_312):
    proj = handler_project(tmp_path, "import lc_pure\nimport requests_not_installed\n"
                                     "def handler(event, context):\n    return 1\n")
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.12", "-o",
                             str(tmp_path / "dist"), "--check-handler", "app.handler",
                             "--backend", "host", *index_args(shared_cache))
    assert code == 1
    assert "handler app.handler failed to import" in out
    assert "ModuleNotFoundError: No module named 'requests_not_installed'" in out
    assert "nothing written: the handler does not import" in out
    assert not (tmp_path / "dist").exists()
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.12", "-o",
                             str(tmp_path / "dist"), "--check-handler", "app.handler",
                             "--backend", "host", "--format", "json", *index_args(shared_cache))
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["failure"] == "handler-import-failed" and data["zips"] == []
    assert data["handler"]["ok"] is False
    assert data["handler"]["error"] == ("ModuleNotFoundError: No module named "
                                        "'requests_not_installed'")
    assert "Traceback" in data["handler"]["detail"]


def test_handler_missing_function_is_reported(tmp_path, shared_cache, host_backend_312):
    proj = handler_project(tmp_path, "def other(event, context):\n    return 1\n")
    result = run(proj, tmp_path / "dist", shared_cache, check_handler="app.handler",
                 backend="host")
    assert result.failure == "handler-import-failed"
    assert result.handler.reason == "handler-not-found"


# -- JSON output -------------------------------------------------------------------------------

def test_json_output_is_versioned_and_valid(tmp_path, shared_cache, capsys):
    proj = project_copy(tmp_path)
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.12", "-o",
                             str(tmp_path / "dist"), "--layer", "--format", "json",
                             *index_args(shared_cache))
    assert code == 0, err
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["version"] == 1 and data["status"] == "written" and data["verified"] is True
    assert data["layout"] == "layer"
    assert [z["name"] for z in data["zips"]] == ["deployment.zip", "layer.zip"]
    for z in data["zips"]:
        assert z["sha256"] == sha(Path(z["path"]))
        assert z["zip_bytes"] == Path(z["path"]).stat().st_size
    assert data["sizes"]["layer_zip_bytes"] == data["zips"][1]["zip_bytes"]
    assert {d["name"] for d in data["dependencies"]["build"]["distributions"]} == \
        {"lc-pure", "lc-abi3"}


def test_json_output_of_a_failure_is_valid(tmp_path, shared_cache, capsys):
    proj = project_copy(tmp_path, "lc-glibc==2.0\n")
    code, out, err = cli_run(capsys, str(proj), "--runtime", "python3.11", "-o",
                             str(tmp_path / "dist"), "--format", "json",
                             *index_args(shared_cache))
    assert code == 1
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA)
    assert data["status"] == "failed" and data["failure"] == "dependencies-missing"
    assert data["findings"][0]["code"] == "glibc-too-new"
    # A result that claims zips while failed violates the schema.
    data["zips"] = [{"name": "deployment.zip", "path": "x", "files": 1, "dirs": 0,
                     "uncompressed_bytes": 1, "zip_bytes": 100, "sha256": "0" * 64}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, SCHEMA)


def test_result_says_whether_the_resolution_was_reused(tmp_path):
    proj = project_copy(tmp_path, "lc-pure==1.0\n")
    cache = tmp_path / "cache"
    first = run(proj, tmp_path / "a", cache)
    second = run(proj, tmp_path / "b", cache)
    assert (first.resolution_reused, second.resolution_reused) == (False, True)
    assert second.to_json()["dependencies"]["build"]["resolution_reused"] is True


# -- never reads outside the project, never overwrites what it did not write ---------------

@pytest.mark.parametrize("make_link", [
    lambda proj, out: os.symlink("/etc/passwd", proj / "chalicelib" / "passwd"),
    lambda proj, out: os.symlink(out, proj / "chalicelib" / "outside"),
    lambda proj, out: os.symlink(proj / ".git", proj / "chalicelib" / "meta"),
    lambda proj, out: os.symlink(proj / ".git" / "config", proj / "chalicelib" / "cfg"),
])
def test_symlink_out_of_the_project_is_an_error(tmp_path, shared_cache, make_link):
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    (proj / ".git").mkdir()
    (proj / ".git" / "config").write_text("[remote] token=SECRET\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET")
    make_link(proj, outside)
    with pytest.raises(errors.BadInput) as exc:
        run(proj, tmp_path / "dist", shared_cache)
    assert exc.value.exit_code == 2
    assert "a symbolic link in the source chalicelib" in str(exc.value)
    assert "--follow-symlinks-outside" in str(exc.value)
    assert not (tmp_path / "dist").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "proj"]


def test_symlink_outside_packaged_only_when_asked(tmp_path, shared_cache):
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("shared settings")
    os.symlink(outside, proj / "chalicelib" / "settings.txt")
    os.symlink("helpers.py" if (proj / "chalicelib" / "helpers.py").exists() else "__init__.py",
               proj / "chalicelib" / "inside_link.py")  # inside the project: always fine
    result = run(proj, tmp_path / "dist", shared_cache, follow_symlinks_outside=True)
    assert result.ok
    with zipfile.ZipFile(tmp_path / "dist" / "deployment.zip") as z:
        assert z.read("chalicelib/settings.txt") == b"shared settings"
        assert "chalicelib/inside_link.py" in z.namelist()


def test_non_utf8_file_name_is_refused_with_nothing_left(tmp_path, shared_cache):
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    bad = os.fsdecode(b"caf\xe9.txt")  # latin-1, not UTF-8
    (proj / "chalicelib" / bad).write_text("x")
    with pytest.raises(errors.BadInput) as exc:
        run(proj, tmp_path / "dist", shared_cache)
    assert "caf\\xe9.txt" in str(exc.value) and "not valid UTF-8" in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]  # no dist/, no staging


def test_foreign_zip_in_the_output_directory_needs_force(tmp_path, shared_cache):
    proj = project_copy(tmp_path, "lc-pure==1.1\n")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "deployment.zip").write_bytes(b"someone else's")
    with pytest.raises(errors.BadInput) as exc:
        run(proj, tmp_path / "dist", shared_cache)
    assert "not written by lambda-compat" in str(exc.value) and "--force" in str(exc.value)
    assert (tmp_path / "dist" / "deployment.zip").read_bytes() == b"someone else's"
    assert run(proj, tmp_path / "dist", shared_cache, force=True).ok
    assert run(proj, tmp_path / "dist", shared_cache).ok  # its own zips: no --force needed
