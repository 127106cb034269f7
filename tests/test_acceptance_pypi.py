"""Issue acceptance against real PyPI packages (network; some build sdists: slow)."""

from __future__ import annotations

import platform

import pytest

from conftest import write_reqs
from lambda_compat import errors
from lambda_compat.build.builder import BuildConfig, build_dependencies
from lambda_compat.verify.elf import read_elf
from compat_tests.local_env import has_python
from lambda_compat.resolve.engine import PipOptions

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    # Real PyPI only: the machine's extra local indexes lack Requires-Python data and would
    # make results depend on this machine.
    return BuildConfig(cache_dir=tmp_path_factory.mktemp("pypi-cache"),
                       pip=PipOptions(index_url="https://pypi.org/simple", isolated=True))


def names(report):
    return {d.name: d for d in report.distributions}


def build(tmp_path, text, runtime, arch, cfg, out="out"):
    return build_dependencies(tmp_path / out, write_reqs(tmp_path, text, f"{out}.txt"),
                              runtime, config=cfg, architecture=arch)


def test_orjson_marker_follows_target_architecture(tmp_path, cfg):
    text = 'orjson==3.10.7; platform_machine == "aarch64"\n'
    arm = build(tmp_path, text, "python3.12", "arm64", cfg, "arm")
    x86 = build(tmp_path, text, "python3.12", "x86_64", cfg, "x86")
    assert "orjson" in names(arm) and "orjson" not in names(x86)
    sos = list((tmp_path / "arm" / "orjson").glob("*.so"))
    assert sos and all(read_elf(str(p)).machine == "aarch64" for p in sos)


def test_exceptiongroup_marker_and_anyio_closure(tmp_path, cfg):
    text = 'exceptiongroup==1.2.2; python_version < "3.11"\n'
    assert "exceptiongroup" in names(build(tmp_path, text, "python3.10", "x86_64", cfg, "a"))
    assert "exceptiongroup" not in names(build(tmp_path, text, "python3.12", "x86_64", cfg, "b"))
    anyio = names(build(tmp_path, "anyio==4.4.0\n", "python3.10", "x86_64", cfg, "c"))
    assert {"exceptiongroup", "typing-extensions"} <= set(anyio)


def test_greenlet_newest_within_glibc_2_26(tmp_path, cfg):
    # greenlet's newest releases ship manylinux_2_24 wheels; a resolver limited to
    # manylinux2014 (uv on AL2) falls back to an older release, we must not.
    report = build(tmp_path, "greenlet\n", "python3.11", "x86_64", cfg)
    d = names(report)["greenlet"]
    assert d.phase == "wheel" and "manylinux_2_24_x86_64" in d.file


def test_numpy_234_refused_on_al2_accepted_on_al2023(tmp_path, cfg):
    r311 = build(tmp_path, "numpy==2.3.4\n", "python3.11", "x86_64", cfg, "a")
    d = names(r311)["numpy"]
    assert not r311.ok and d.reason_code == "glibc-too-new"
    assert "numpy" in d.reason and "2.26" in d.reason
    for arch in ("x86_64", "arm64"):
        r312 = build(tmp_path, "numpy==2.3.4\n", "python3.12", arch, cfg, f"b{arch}")
        assert r312.ok and names(r312)["numpy"].phase == "wheel"


def test_require_hashes_for_x86_only_fails_on_arm64(tmp_path, cfg):
    wheel = "orjson-3.10.7-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    x86 = build(tmp_path, "orjson==3.10.7\n", "python3.12", "x86_64", cfg, "plain")
    digest = names(x86)["orjson"].sha256
    assert names(x86)["orjson"].file == wheel
    text = f"--require-hashes\norjson==3.10.7 --hash=sha256:{digest}\n"
    assert build(tmp_path, text, "python3.12", "x86_64", cfg, "h1").ok
    with pytest.raises(errors.HashMismatch) as exc:
        build(tmp_path, text, "python3.12", "arm64", cfg, "h2")
    assert "orjson-3.10.7-cp312-cp312-manylinux_2_17_aarch64" in str(exc.value)


def test_python312_target_whatever_the_host_python(tmp_path, cfg):
    report = build(tmp_path, "pydantic-core==2.23.4\n", "python3.12", "x86_64", cfg)
    d = names(report)["pydantic-core"]
    assert "-cp312-cp312-manylinux" in d.file


needs_311 = pytest.mark.skipif(
    platform.machine() != "x86_64" or not has_python((3, 11), "x86_64"),
    reason="needs an x86_64 host with CPython 3.11")


@pytest.mark.slow
@needs_311
def test_psycopg2_built_with_311_on_x86_64_missing_on_arm64(tmp_path, cfg):
    x86 = build(tmp_path, "psycopg2==2.9.9\n", "python3.11", "x86_64", cfg, "a")
    d = names(x86)["psycopg2"]
    assert d.phase == "built" and "3.11" in d.interpreter
    assert any(f.code == "missing-system-library" and "libpq.so.5" in f.message
               for f in d.findings)
    arm = build(tmp_path, "psycopg2==2.9.9\n", "python3.11", "arm64", cfg, "b")
    d = names(arm)["psycopg2"]
    assert d.phase == "missing" and "psycopg2-binary" in d.suggestion
    assert any("aarch64" in a for a in d.attempts)


@pytest.mark.slow
def test_cryptography_19_missing_with_build_failure_and_suggestion(tmp_path, cfg):
    report = build(tmp_path, "cryptography==1.9\n", "python3.11", "x86_64", cfg)
    d = names(report)["cryptography"]
    assert d.phase == "missing" and d.version == "1.9"
    assert "failed" in d.reason
    assert "pin cryptography==" in d.suggestion
