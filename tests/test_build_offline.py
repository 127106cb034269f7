"""build_dependencies against the offline fixture index: target-exact resolution and phases."""

from __future__ import annotations

import json
from dataclasses import replace
import platform
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import INDEX, fixture_config, write_reqs
from lambda_compat import errors
from lambda_compat.build.builder import build_dependencies
from lambda_compat.verify.elf import read_elf
from compat_tests.local_env import has_python
from lambda_compat.ui import RecordingUI

HASHES = json.loads((INDEX / "hashes.json").read_text())


def names(report):
    return {d.name: d for d in report.distributions}


def build(tmp_path, text, runtime, arch="x86_64", config=None, out="out", **kw):
    req = write_reqs(tmp_path, text)
    return build_dependencies(tmp_path / out, req, runtime, config=config,
                              architecture=arch, **kw)


# -- markers are judged for the target --------------------------------------------------

def test_platform_machine_marker_follows_target_arch(tmp_path, config):
    arm = build(tmp_path, "lc-markers==1.0\n", "python3.12", "arm64", config, out="arm")
    x86 = build(tmp_path, "lc-markers==1.0\n", "python3.12", "x86_64", config, out="x86")
    assert "lc-arm-only" in names(arm)
    assert "lc-arm-only" not in names(x86)
    assert (tmp_path / "arm" / "lc_arm_only").is_dir()
    assert not (tmp_path / "x86" / "lc_arm_only").exists()


def test_python_version_markers_top_level_and_transitive(tmp_path, config):
    py39 = names(build(tmp_path, "lc-markers==1.0\n", "python3.9", config=config, out="a"))
    py310 = names(build(tmp_path, "lc-markers==1.0\n", "python3.10", config=config, out="b"))
    py312 = names(build(tmp_path, "lc-markers==1.0\n", "python3.12", config=config, out="c"))
    # lc-old-python: python_version < "3.11"; its own dep lc-transitive: < "3.10"
    assert {"lc-old-python", "lc-transitive"} <= set(py39)
    assert "lc-old-python" in py310 and "lc-transitive" not in py310
    assert "lc-old-python" not in py312 and "lc-transitive" not in py312
    top = write_reqs(tmp_path, 'lc-pure==1.0; python_version < "3.11"\n', "top.txt")
    r311 = build_dependencies(tmp_path / "d", top, "python3.11", config=config)
    r310 = build_dependencies(tmp_path / "e", top, "python3.10", config=config)
    assert "lc-pure" not in names(r311) and "lc-pure" in names(r310)


def test_extras_are_honoured(tmp_path, config):
    report = build(tmp_path, "lc-markers[fancy]==1.0\n", "python3.12", config=config)
    assert "lc-extra-dep" in names(report)


# -- wheel tags and Requires-Python for the target ----------------------------------------

def test_arm64_gets_aarch64_extension(tmp_path, config):
    report = build(tmp_path, "lc-native==1.0\n", "python3.12", "arm64", config)
    d = names(report)["lc-native"]
    assert d.phase == "wheel" and "aarch64" in d.file
    sos = list((tmp_path / "out").rglob("*.so"))
    assert sos and all(read_elf(str(p)).machine == "aarch64" for p in sos)


def test_newest_version_within_glibc_ceiling(tmp_path, config):
    # lc-glibc 2.0 has only manylinux_2_28 wheels; AL2 (glibc 2.26) must get 1.0, AL2023 2.0.
    assert names(build(tmp_path, "lc-glibc\n", "python3.11", config=config, out="a")
                 )["lc-glibc"].version == "1.0"
    assert names(build(tmp_path, "lc-glibc\n", "python3.12", config=config, out="b")
                 )["lc-glibc"].version == "2.0"


@pytest.mark.parametrize("simple", ["simple", "simple-no-rp"])
def test_requires_python_judged_for_target_even_without_index_data(tmp_path, shared_cache,
                                                                   simple):
    cfg = fixture_config(shared_cache, simple)
    assert names(build(tmp_path, "lc-rp-trap\n", "python3.11", config=cfg, out="a")
                 )["lc-rp-trap"].version == "1.0"
    assert names(build(tmp_path, "lc-rp-trap\n", "python3.13", config=cfg, out="b")
                 )["lc-rp-trap"].version == "2.0"


ELF_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_one_manylinux_level_above_the_ceiling_is_refused(tmp_path, config, arch):
    # lc-glibc-edge 2.0: manylinux_2_27 wheels only, one level above AL2's glibc 2.26;
    # 1.0: manylinux_2_26, exactly the ceiling.
    edge = names(build(tmp_path, "lc-glibc-edge\n", "python3.11", arch, config=config,
                       out="a"))["lc-glibc-edge"]
    assert (edge.version, edge.file) == (
        "1.0", f"lc_glibc_edge-1.0-cp311-cp311-manylinux_2_26_{ELF_MACHINE[arch]}.whl")
    above = names(build(tmp_path, "lc-glibc-edge\n", "python3.12", arch, config=config,
                        out="b"))["lc-glibc-edge"]
    assert above.version == "2.0"
    pinned = build(tmp_path, "lc-glibc-edge==2.0\n", "python3.11", arch, config=config,
                   out="c")
    d = names(pinned)["lc-glibc-edge"]
    assert not pinned.ok and (d.phase, d.reason_code) == ("missing", "glibc-too-new")
    assert "2.27" in d.reason and "2.26" in d.reason


def test_glibc_blocked_version_is_missing_without_building(tmp_path, config):
    ui = RecordingUI()
    report = build(tmp_path, "lc-native==2.0\n", "python3.11", config=config, ui=ui)
    d = names(report)["lc-native"]
    assert not report.ok and d.phase == "missing"
    assert d.reason_code == "glibc-too-new"
    assert "2.28" in d.reason and "2.26" in d.reason
    assert "lc-native==1.0" in d.suggestion
    assert not any(n == "dist-start" and e.get("phase") == "built" for n, e in ui.events)
    assert not (tmp_path / "out").exists()


# -- hashes for the file chosen for the target -------------------------------------------

def test_require_hashes_checks_the_target_file(tmp_path, config):
    x86 = "lc_hashes-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
    text = f"--require-hashes\nlc-hashes==1.0 --hash=sha256:{HASHES[x86]}\n"
    ok = build(tmp_path, text, "python3.12", "x86_64", config, out="a")
    assert names(ok)["lc-hashes"].file == x86
    with pytest.raises(errors.HashMismatch) as exc:
        build(tmp_path, text, "python3.12", "arm64", config, out="b")
    assert "lc_hashes-1.0-cp312-cp312-manylinux_2_17_aarch64.whl" in str(exc.value)
    assert exc.value.exit_code == 2


# -- source distributions ------------------------------------------------------------------

def test_pure_sdist_is_built(tmp_path, config):
    report = build(tmp_path, "lc-sdist-pure==1.0\n", "python3.12", "arm64", config)
    d = names(report)["lc-sdist-pure"]
    assert d.ok and d.phase in ("built", "built-no-compiler")
    assert d.file.endswith("py3-none-any.whl")
    assert (tmp_path / "out" / "lc_sdist_pure").is_dir()


needs_311 = pytest.mark.skipif(not has_python((3, 11)),
                               reason="no CPython 3.11 here")


@needs_311
def test_native_sdist_built_for_matching_host(tmp_path, config):
    if platform.machine() != "x86_64":
        pytest.skip("x86_64 host only")
    report = build(tmp_path, "lc-needs-compiler==1.0\n", "python3.11", "x86_64", config)
    d = names(report)["lc-needs-compiler"]
    assert d.phase == "built" and "3.11" in d.interpreter
    assert "cp311-cp311-linux_x86_64" in d.file


@needs_311
def test_native_sdist_for_foreign_arch_is_missing_with_reason(tmp_path, config):
    # Only the local environment (no target root, no container): nothing builds aarch64 code.
    config = replace(config, build_env="local")
    started = time.monotonic()
    report = build(tmp_path, "lc-needs-compiler==1.0\n", "python3.11", "arm64", config)
    d = names(report)["lc-needs-compiler"]
    assert d.phase == "missing"
    # This x86_64 host cannot build aarch64 code: said as such, not as a failed build.
    assert d.reason_code == "no-build-environment"
    assert d.reason.startswith("lc_needs_compiler-1.0.tar.gz needs a compiler for aarch64")
    text = "\n".join(d.attempts)
    assert "aarch64" in text and "compiler" in text
    assert "vendor/" in d.suggestion
    assert time.monotonic() - started < 120


def test_requires_python_is_the_reason_not_the_abi(tmp_path, config):
    # lc-rp-trap 2.0 is py3-none-any with Requires-Python >=3.13: for python3.12 the cause
    # is Requires-Python (the wheel's tags would fit), and 1.0 is the version to pin.
    report = build(tmp_path, "lc-rp-trap==2.0\n", "python3.12", config=config)
    d = names(report)["lc-rp-trap"]
    assert d.phase == "missing" and d.reason_code == "requires-python"
    assert d.reason.startswith("lc-rp-trap 2.0 requires Python >=3.13")
    assert "lc-rp-trap==1.0" in d.suggestion


@pytest.mark.skipif(platform.machine() != "x86_64" or shutil.which("gcc") is None
                    or not has_python((3, 12), "x86_64"),
                    reason="needs an x86_64 host with gcc and CPython 3.12")
def test_wheel_built_here_refused_for_glibc_is_glibc_too_new(tmp_path, shared_cache,
                                                            monkeypatch):
    # The compiler links a call to arc4random (GLIBC_2.36) into the extension, as a newer
    # build machine's libc would: the wheel built here cannot load on python3.12 (glibc 2.34).
    extra = tmp_path / "newer_glibc.c"
    extra.write_text("#include <stdlib.h>\nunsigned lc_random(void) { return arc4random(); }\n")
    cc = tmp_path / "cc"
    cc.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = -c ] && exec gcc "$@"; done\n'
                  f'exec gcc "$@" {extra}\n')
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    probe = tmp_path / "probe.so"
    if subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(probe), str(extra)]).returncode:
        pytest.skip("this gcc/libc cannot link arc4random")
    if (read_elf(probe).max_version("GLIBC_") or (0,)) <= (2, 34):
        pytest.skip("this libc's arc4random is not newer than glibc 2.34")
    # Unsandboxed: the compiler wrapper lives under /tmp, which the build sandbox hides (what
    # is tested here is the reason for a refused wheel, not the sandbox).
    report = build(tmp_path, "lc-needs-compiler==1.0\n", "python3.12", "x86_64",
                   fixture_config(tmp_path / "cache", build_sandbox=False))
    d = names(report)["lc-needs-compiler"]
    assert d.phase == "missing" and d.reason_code == "glibc-too-new", (d.reason, d.attempts)
    assert d.reason.startswith("lc-needs-compiler 1.0 was built here for python3.12/x86_64")
    assert "GLIBC_2.36" in d.reason


@needs_311
def test_optional_extension_needs_registry_entry(tmp_path, shared_cache):
    # Built without a compiler, the wheel is pure Python but tagged linux_x86_64: for an arm64
    # target only a registry entry may vouch for it.
    # (Only the local environment: a target root would build it for aarch64 itself.)
    plain = build(tmp_path, "lc-optional-ext==1.0\n", "python3.11", "arm64",
                  fixture_config(shared_cache, build_env="local"), out="a")
    assert names(plain)["lc-optional-ext"].phase == "missing"
    reg = tmp_path / "registry"
    shutil.copytree(Path(__file__).parent.parent / "registry" / "schema", reg / "schema")
    (reg / "packages").mkdir()
    (reg / "VERSION").write_text("2026.01.01.7\n")
    (reg / "packages" / "lc-optional-ext.yaml").write_text(
        "name: lc-optional-ext\nversions: '>=1.0,<=1.0'\ntargets: [python3.11/arm64]\n"
        "kind: optional-extension-pure-fallback\n"
        "explanation: The C speedup is optional; without a compiler it installs pure Python.\n"
        "imports: [lc_optional_ext]\n"
        "evidence:\n- versions: ['1.0']\n  targets: [python3.11/arm64]\n"
        "  test: compat_tests/test_registry_entries.py::test_registry_entry\n"
        "  date: '2026-11-21'\n")
    allowed = build(tmp_path, "lc-optional-ext==1.0\n", "python3.11", "arm64",
                    fixture_config(shared_cache, registry_dir=reg, build_env="local"),
                    out="b")
    d = names(allowed)["lc-optional-ext"]
    assert d.phase == "registry" and "2026.01.01.7" in d.registry_entry
    assert not list((tmp_path / "b").rglob("*.so"))


# -- nothing lost, nothing leaked ---------------------------------------------------------

def test_failed_run_leaves_previous_artifacts_untouched(tmp_path, config):
    out = tmp_path / "out"
    build(tmp_path, "lc-pure==1.1\n", "python3.12", config=config)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    report = build(tmp_path, "lc-native==2.0\n", "python3.11", config=config)
    assert not report.ok
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if "lambda-compat" in p.name]


def test_second_run_replaces_not_merges(tmp_path, config):
    out = tmp_path / "out"
    build(tmp_path, "lc-pure==1.1\n", "python3.12", config=config)
    (out / "stale.txt").write_text("from an earlier run")
    build(tmp_path, "lc-abi3==1.0\n", "python3.12", config=config)
    assert not (out / "stale.txt").exists() and not (out / "lc_pure").exists()
    assert (out / "lc_abi3").is_dir()


def test_intermediate_files_are_removed(tmp_path, shared_cache):
    cache = tmp_path / "cache"
    build(tmp_path, "lc-pure==1.1\n", "python3.12", config=fixture_config(cache))
    assert list((cache / "tmp").iterdir()) == []
    assert not list((tmp_path / "out").rglob("*.pyc"))


def test_no_pyc_no_scripts_in_bundle(tmp_path, config):
    build(tmp_path, "lc-markers[fancy]==1.0\n", "python3.12", config=config)
    out = tmp_path / "out"
    assert not list(out.rglob("__pycache__")) and not (out / "bin").exists()


def test_local_path_requirement(tmp_path, config):
    src = tmp_path / "proj" / "lc_sdist_pure-1.0"
    shutil.unpack_archive(str(INDEX / "files" / "lc_sdist_pure-1.0.tar.gz"), str(tmp_path / "proj"))
    assert src.is_dir()
    req = write_reqs(tmp_path / "proj", "./lc_sdist_pure-1.0\n")
    report = build_dependencies(tmp_path / "out", req, "python3.12", config=config)
    assert names(report)["lc-sdist-pure"].ok


# -- bad input ----------------------------------------------------------------------------

def test_unknown_package_is_bad_input(tmp_path, config):
    with pytest.raises(errors.UnknownPackage) as exc:
        build(tmp_path, "lc-does-not-exist==1.0\n", "python3.12", config=config)
    assert "lc-does-not-exist" in str(exc.value)


def test_unreachable_index_is_environment_problem(tmp_path, shared_cache):
    from lambda_compat.resolve.engine import PipOptions
    from lambda_compat.build.builder import BuildConfig
    cfg = BuildConfig(cache_dir=shared_cache, pip=PipOptions(
        index_url="http://127.0.0.1:9/simple", isolated=True, retries=0, timeout=2))
    with pytest.raises(errors.IndexUnreachable) as exc:
        build(tmp_path, "lc-pure==1.0\n", "python3.12", config=cfg)
    assert exc.value.exit_code == 3 and "127.0.0.1:9" in str(exc.value)


def test_unknown_runtime_suggests(tmp_path, config):
    with pytest.raises(errors.UnknownTarget) as exc:
        build(tmp_path, "lc-pure\n", "python3.21", config=config)
    assert "python3.12" in str(exc.value) or "python3.11" in str(exc.value)
    with pytest.raises(errors.UnknownTarget) as exc:
        build(tmp_path, "lc-pure\n", "python3.12", "arm46", config=config)
    assert "arm64" in str(exc.value)


def test_resolution_reused_only_for_identical_inputs(tmp_path, shared_cache):
    from dataclasses import replace
    from lambda_compat.ui import RecordingUI
    cache = tmp_path / "cache"
    cfg = fixture_config(cache)
    req = write_reqs(tmp_path, "lc-pure==1.0\n")
    first, second, changed, fresh = RecordingUI(), RecordingUI(), RecordingUI(), RecordingUI()
    build_dependencies(tmp_path / "a", req, "python3.12", ui=first, config=cfg)
    build_dependencies(tmp_path / "b", req, "python3.12", ui=second, config=cfg)
    assert "pip-resolved" in first.names() and "pip-resolved" not in second.names()
    req.write_text("lc-pure==1.1\n")
    report = build_dependencies(tmp_path / "c", req, "python3.12", ui=changed, config=cfg)
    assert "pip-resolved" in changed.names() and names(report)["lc-pure"].version == "1.1"
    # another target never shares the resolution
    arm = RecordingUI()
    build_dependencies(tmp_path / "d", req, "python3.12", ui=arm, config=cfg,
                       architecture="arm64")
    assert "pip-resolved" in arm.names()
    build_dependencies(tmp_path / "e", req, "python3.12", ui=fresh,
                       config=replace(cfg, resolution_ttl=0))
    assert "pip-resolved" in fresh.names()


def test_no_interpreter_of_the_target_version_means_no_sdist_build(tmp_path, config,
                                                                     monkeypatch):
    # Every build phase needs a CPython, of the target's version or (any-Python pure build,
    # tests/test_pure_build.py) any; without one pip must not build the sdist just to read
    # its metadata (for numpy on python3.14 that took minutes).
    import lambda_compat.build.environments as environments_mod
    import lambda_compat.build.missing as missing_mod
    import lambda_compat.build.phases as phases_mod
    import lambda_compat.build.resolution as resolution_mod
    import lambda_compat.resolve.sdist_build as sdist_mod

    for mod in (resolution_mod, phases_mod, missing_mod, environments_mod):
        monkeypatch.setattr(mod, "find_interpreter", lambda *a, **k: None)
    for mod in (resolution_mod, phases_mod):
        monkeypatch.setattr(mod, "pure_build_interpreters", lambda *a, **k: [])
    built = []
    monkeypatch.setattr(sdist_mod, "build_wheel", lambda *a, **k: built.append(a))
    ui = RecordingUI()
    req = write_reqs(tmp_path, "lc-sdist-pure==1.0\n")
    report = build_dependencies(tmp_path / "out", req, "python3.12",
                                config=replace(config, build_env="local"),
                                architecture="x86_64", ui=ui)
    d = names(report)["lc-sdist-pure"]
    assert d.phase == "missing"
    assert "no CPython 3.12 interpreter" in d.reason and "--python" in d.reason
    assert built == []
    # Decided at resolution (the sdist was never prepared), not after building its metadata.
    assert not d.attempts


def test_the_rest_is_judged_when_a_top_level_requirement_cannot_be_had(tmp_path, shared_cache):
    """pip stops at the first requirement it cannot satisfy; the others are still resolved,
    judged and (with allow_missing) installed; the whole outcome (every pass) is what a
    second run within the lifetime reuses, without starting pip."""
    from dataclasses import replace
    config = replace(fixture_config(shared_cache), allow_missing=True)
    # lc-native 1.0 has cp311/cp312 wheels only: nothing for python3.13
    report = build(tmp_path, "lc-native==1.0\nlc-markers==1.0\n", "python3.13", config=config)
    d = names(report)
    assert d["lc-native"].phase == "missing"
    assert d["lc-markers"].phase == "wheel" and d["lc-pure"].phase == "wheel"
    assert (tmp_path / "out" / "lc_markers").is_dir()
    ui = RecordingUI()
    again = build(tmp_path, "lc-native==1.0\nlc-markers==1.0\n", "python3.13", config=config,
                  out="out2", ui=ui)
    assert not any(n.startswith("pip-") for n in ui.names())     # reused, pip not started
    assert {n: (x.phase, x.version, x.reason_code, x.reason) for n, x in names(again).items()} \
        == {n: (x.phase, x.version, x.reason_code, x.reason) for n, x in d.items()}
    assert (tmp_path / "out2" / "lc_markers").is_dir()


def test_without_projects_keeps_options_and_makes_paths_absolute(tmp_path):
    from lambda_compat.resolve.reqfile import without_projects
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.txt").write_text("lc-pure\n")
    req = write_reqs(tmp_path, "-r sub/more.txt\n--extra-index-url https://example.invalid/\n"
                               "Lc_Native==1.0 --hash=sha256:00\n./pkg\nlc-markers\n")
    out = without_projects(req, {"lc-native"}, tmp_path / "rest.txt")
    assert out is not None
    assert out.read_text().splitlines() == [
        f"-r {tmp_path / 'sub' / 'more.txt'}", "--extra-index-url https://example.invalid/",
        str(tmp_path / "pkg"), "lc-markers"]
    assert without_projects(write_reqs(tmp_path, "lc-native\n", "only.txt"), {"lc-native"},
                            tmp_path / "none.txt") is None
