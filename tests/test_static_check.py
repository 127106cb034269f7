"""Static proof per target, on real ELF files, real wheels and real dist-info metadata."""

from __future__ import annotations

import dataclasses
import os

import pytest

from lambda_compat.verify import bundle
from lambda_compat.registry.runtimes import get_target
from lambda_compat.build.install import install_all
from lambda_compat.verify.static_check import StaticChecker
from lambda_compat.verify.bundle_check import check_bundle

from check_helpers import CHECK, INDEX_FILES, copy_elf, make_dist, snapshot


def T(runtime="python3.12", arch="x86_64"):
    return get_target(runtime, arch)


def codes(report, severity=None):
    return sorted({f.code for f in report.findings
                   if severity is None or f.severity == severity})


def only(report, code):
    found = [f for f in report.findings if f.code == code]
    assert len(found) == 1, report.findings
    return found[0]


# --------------------------------------------------------------------------- ELF checks

def test_arm64_files_in_an_x86_64_target_are_wrong_arch(tmp_path):
    make_dist(tmp_path, "armpkg", files={
        "armpkg/__init__.py": "",
        "armpkg/_x.cpython-312-aarch64-linux-gnu.so":
            copy_elf("_oldglibc.cpython-312-aarch64-linux-gnu.so")},
        tags=["cp312-cp312-manylinux_2_17_aarch64"])
    r = check_bundle(tmp_path, [], T("python3.12", "x86_64"))
    f = only(r, "wrong-arch")
    assert f.distribution == "armpkg" and f.severity == "error"
    assert f.file == "/var/task/armpkg/_x.cpython-312-aarch64-linux-gnu.so"
    assert "aarch64" in f.message and "x86_64" in f.message and f.fix
    assert "incompatible-tags" in codes(r)
    assert not r.ok
    # the same bundle on arm64 is fine
    assert check_bundle(tmp_path, [], T("python3.12", "arm64")).ok


def test_glibc_ceiling_names_the_symbol_version(tmp_path):
    make_dist(tmp_path, "g", files={
        "g/__init__.py": "",
        "g/_new.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_glibc234.cpython-312-x86_64-linux-gnu.so")},
        tags=["cp311-cp311-manylinux_2_34_x86_64"])
    r311 = check_bundle(tmp_path, [], T("python3.11"))
    f = only(r311, "glibc-too-new")
    assert "GLIBC_2.34" in f.message and "2.26" in f.message
    assert "python3.12" in f.fix  # AL2023 has glibc 2.34
    # python3.11 does not accept the manylinux_2_34 tag either
    assert codes(r311, "error") == ["glibc-too-new", "incompatible-tags"]


def test_glibc_236_is_too_new_everywhere_and_abi3_name_loads(tmp_path):
    make_dist(tmp_path, "g", files={"g/__init__.py": "",
                                    "g/_x.abi3.so": copy_elf("_glibc236.abi3.so")},
              tags=["cp39-abi3-manylinux_2_17_x86_64"])
    for rt in ("python3.11", "python3.12", "python3.14"):
        r = check_bundle(tmp_path, [], T(rt))
        assert codes(r) == ["glibc-too-new"], rt
        assert "GLIBC_2.36" in only(r, "glibc-too-new").message


def test_aarch64_glibc(tmp_path):
    make_dist(tmp_path, "a", files={
        "a/__init__.py": "",
        "a/_old.cpython-312-aarch64-linux-gnu.so":
            copy_elf("_oldglibc.cpython-312-aarch64-linux-gnu.so"),
        "a/_new.cpython-312-aarch64-linux-gnu.so":
            copy_elf("_glibc236.cpython-312-aarch64-linux-gnu.so")},
        tags=["cp312-cp312-manylinux_2_17_aarch64"])
    r = check_bundle(tmp_path, [], T("python3.12", "arm64"))
    f = only(r, "glibc-too-new")
    assert f.file.endswith("_new.cpython-312-aarch64-linux-gnu.so")


def test_cpython_311_extension_in_a_312_target_is_an_abi_mismatch(tmp_path):
    make_dist(tmp_path, "old", files={
        "old/__init__.py": "",
        "old/_m.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_oldglibc.cpython-311-x86_64-linux-gnu.so")},
        tags=["cp311-cp311-manylinux_2_17_x86_64"])
    r = check_bundle(tmp_path, [], T("python3.12"))
    f = only(r, "python-abi-mismatch")
    assert "CPython 3.11" in f.message
    assert check_bundle(tmp_path, [], T("python3.11")).ok


def test_a_sibling_build_for_the_target_makes_the_other_one_harmless(tmp_path):
    make_dist(tmp_path, "multi", files={
        "multi/__init__.py": "",
        "multi/_m.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_oldglibc.cpython-311-x86_64-linux-gnu.so"),
        "multi/_m.cpython-312-x86_64-linux-gnu.so":
            copy_elf("_oldglibc.cpython-311-x86_64-linux-gnu.so")}, wheel=False)
    assert check_bundle(tmp_path, [], T("python3.12")).findings == ()
    assert check_bundle(tmp_path, [], T("python3.11")).findings == ()
    r = check_bundle(tmp_path, [], T("python3.13"))
    assert [f.code for f in r.findings] == ["python-abi-mismatch"] * 2


@pytest.mark.parametrize("name,why", [
    ("_m.cpython-313t-x86_64-linux-gnu.so", "free-threaded"),
    ("_m.cpython-313d-x86_64-linux-gnu.so", "debug"),
    ("_m.pypy310-pp73-x86_64-linux-gnu.so", "another Python implementation"),
    ("_m.cpython-313-x86_64-linux-musl.so", "linux-musl"),
])
def test_extension_names_the_target_python_does_not_load(tmp_path, name, why):
    make_dist(tmp_path, "odd", files={"odd/__init__.py": "", f"odd/{name}":
                                      copy_elf("_oldglibc.cpython-311-x86_64-linux-gnu.so")},
              wheel=False)
    f = only(check_bundle(tmp_path, [], T("python3.13")), "python-abi-mismatch")
    assert why in f.message


def test_cxx_runtime_ceiling_unless_the_bundle_ships_libstdcxx(tmp_path):
    make_dist(tmp_path, "cxx", files={
        "cxx/__init__.py": "",
        "cxx/_c.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_cxx.cpython-311-x86_64-linux-gnu.so")}, wheel=False)
    r = check_bundle(tmp_path, [], T("python3.11"))
    f = only(r, "libstdcxx-too-new")
    assert "GLIBCXX_3.4.30" in f.message and "GLIBCXX_3.4.24" in f.message
    # a newer libstdc++ in the bundle's lib/ (on LD_LIBRARY_PATH) serves it
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "libstdc++.so.6").write_bytes(copy_elf("librpathfix.so.1"))
    r = check_bundle(tmp_path, [], T("python3.11"))
    assert "libstdcxx-too-new" not in codes(r)


def test_missing_system_library_libpq(tmp_path):
    make_dist(tmp_path, "mypkg", files={
        "mypkg/__init__.py": "",
        "mypkg/_pq.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_pq.cpython-311-x86_64-linux-gnu.so")}, wheel=False)
    r = check_bundle(tmp_path, [], T("python3.11"))
    f = only(r, "missing-system-library")
    assert f.severity == "error" and "libpq.so.5" in f.message
    assert "psycopg2-binary" in f.fix
    assert not r.ok


@pytest.mark.parametrize("where", ["mypkg.libs/libpq.so.5", "lib/libpq.so.5", "libpq.so.5"])
def test_a_bundled_libpq_on_the_search_path_is_found(tmp_path, where):
    make_dist(tmp_path, "mypkg", files={
        "mypkg/__init__.py": "",
        "mypkg/_pq.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_pq.cpython-311-x86_64-linux-gnu.so")}, wheel=False)
    dest = tmp_path / where  # RUNPATH $ORIGIN/../mypkg.libs, or LD_LIBRARY_PATH /var/task(/lib)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(copy_elf("librpathfix.so.1"))
    r = check_bundle(tmp_path, [], T("python3.11"))
    assert r.findings == (), r.findings


def test_a_layer_lib_directory_is_on_the_search_path(tmp_path):
    task = tmp_path / "task"
    make_dist(task, "mypkg", files={
        "mypkg/_pq.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_pq.cpython-311-x86_64-linux-gnu.so")}, wheel=False)
    layer = tmp_path / "layer"
    (layer / "lib").mkdir(parents=True)
    (layer / "lib" / "libpq.so.5").write_bytes(copy_elf("librpathfix.so.1"))
    assert check_bundle(task, [layer], T("python3.11")).findings == ()


def test_library_bundled_off_the_search_path_is_a_warning(tmp_path):
    make_dist(tmp_path, "mypkg", files={
        "mypkg/_pq.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_pq.cpython-311-x86_64-linux-gnu.so"),
        "other/deep/libpq.so.5": copy_elf("librpathfix.so.1")}, wheel=False)
    r = check_bundle(tmp_path, [], T("python3.11"))
    f = only(r, "library-not-on-search-path")
    assert f.severity == "warning" and "/var/task/other/deep" in f.message
    assert r.ok


@pytest.mark.parametrize("status", ["absent", "unverified", "unknown"])
def test_a_library_not_recorded_present_is_an_error_naming_the_fact(tmp_path, status):
    """Verdict policy (docs/check.md): compatible only when the runtime is recorded to have
    the library. Absent, unverified and unrecorded are all errors, and the message names the
    registry fact that decided (list, entry, sources) or says that none is recorded."""
    # _pqmod needs libpq.so.5; the same file judged against facts that record libpq as
    # absent (the shipped data), unverified, or not at all.
    make_dist(tmp_path, "pqmod", files={"_pqmod.abi3.so": (CHECK / "_pqmod.abi3.so")},
              wheel=False)
    t = T("python3.12")
    assert t.facts.library_fact("libpq.so.5").status == "absent"
    facts = t.facts
    if status == "unverified":
        facts = dataclasses.replace(facts, absent_sonames=frozenset(),
                                    unverified_sonames=frozenset({"libpq.so.*"}),
                                    library_cite=(("libpq.so.*", ("S7",)),))
    elif status == "unknown":
        facts = dataclasses.replace(facts, absent_sonames=frozenset())
    r = check_bundle(tmp_path, [], dataclasses.replace(t, facts=facts))
    f = only(r, "missing-system-library")
    assert f.severity == "error" and not r.ok
    expected = {
        "absent": "does not have (registry/runtimes.yaml python3.12/x86_64 shared_libraries."
                  "absent: libpq.so.5 (S7",
        "unverified": "nobody has verified it (registry/runtimes.yaml python3.12/x86_64 "
                      "shared_libraries.unverified_sonames: libpq.so.* (matches libpq.so.5) "
                      "(S7))",
        "unknown": "is not known to have: it is not among the libraries recorded for "
                   "python3.12/x86_64",
    }[status]
    assert expected in f.message, f.message


def test_a_library_recorded_present_only_by_inference_is_present(tmp_path):
    """A soname recorded as present-but-inferred stays present (it is marked inferred)."""
    make_dist(tmp_path, "pqmod", files={"_pqmod.abi3.so": (CHECK / "_pqmod.abi3.so")},
              wheel=False)
    t = T("python3.12")
    facts = dataclasses.replace(t.facts, absent_sonames=frozenset(),
                                sonames=t.facts.sonames | {"libpq.so.5"},
                                inferred_sonames=t.facts.inferred_sonames | {"libpq.so.5"})
    assert facts.library_fact("libpq.so.5").inferred
    r = check_bundle(tmp_path, [], dataclasses.replace(t, facts=facts))
    assert "missing-system-library" not in codes(r) and r.ok


def test_truncated_and_non_elf_shared_objects(tmp_path):
    make_dist(tmp_path, "broken", files={
        "broken/__init__.py": "",
        "broken/_t.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_truncated.cpython-311-x86_64-linux-gnu.so"),
        "broken/_n.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_notelf.cpython-311-x86_64-linux-gnu.so"),
        "broken/libdata.so.1": b"not a library\n"}, wheel=False)
    r = check_bundle(tmp_path, [], T("python3.11"))
    bad = sorted((f.file.rsplit("/", 1)[1], f.severity, f.message) for f in r.findings
                 if f.code == "not-elf")
    assert [(b[0], b[1]) for b in bad] == [("_n.cpython-311-x86_64-linux-gnu.so", "error"),
                                          ("_t.cpython-311-x86_64-linux-gnu.so", "error"),
                                          ("libdata.so.1", "warning")]
    assert "truncated" in bad[1][2] and "not an ELF file" in bad[0][2]


def test_vendored_native_code_without_dist_info_is_checked(tmp_path):
    (tmp_path / "vendored").mkdir()
    (tmp_path / "vendored" / "_v.cpython-312-aarch64-linux-gnu.so").write_bytes(
        copy_elf("_oldglibc.cpython-312-aarch64-linux-gnu.so"))
    f = only(check_bundle(tmp_path, [], T("python3.12")), "wrong-arch")
    assert f.distribution == "vendored (no dist-info)"


# --------------------------------------------------------------------------- metadata

def test_real_wheels_from_the_fixture_index(tmp_path):
    install_all([INDEX_FILES / "lc_native-1.0-cp312-cp312-manylinux_2_17_aarch64.whl",
                 INDEX_FILES / "lc_abi3-1.0-cp39-abi3-manylinux_2_17_aarch64.whl",
                 INDEX_FILES / "lc_glibc-2.0-cp312-cp312-manylinux_2_28_aarch64.whl"],
                tmp_path, 1)
    assert check_bundle(tmp_path, [], T("python3.12", "arm64")).findings == ()
    r = check_bundle(tmp_path, [], T("python3.12", "x86_64"))
    by = {(f.distribution, f.code) for f in r.findings}
    assert by == {("lc-native", "wrong-arch"), ("lc-native", "incompatible-tags"),
                  ("lc-abi3", "wrong-arch"), ("lc-abi3", "incompatible-tags"),
                  ("lc-glibc", "wrong-arch"), ("lc-glibc", "incompatible-tags")}
    r = check_bundle(tmp_path, [], T("python3.11", "arm64"))
    by = {(f.distribution, f.code) for f in r.findings}
    # lc-glibc 2.0 is manylinux_2_28: not for glibc 2.26; cp312 names not for 3.11
    assert ("lc-glibc", "incompatible-tags") in by
    assert ("lc-native", "python-abi-mismatch") in by
    assert ("lc-abi3", "incompatible-tags") not in by


def test_requires_python(tmp_path):
    make_dist(tmp_path, "new-only", files={"new_only.py": ""}, requires_python=">=3.13")
    f = only(check_bundle(tmp_path, [], T("python3.12")), "requires-python")
    assert ">=3.13" in f.message
    assert check_bundle(tmp_path, [], T("python3.13")).ok


def test_requires_dist_markers_are_judged_on_the_target(tmp_path):
    make_dist(tmp_path, "app", files={"app.py": ""}, requires=[
        'armdep; platform_machine == "aarch64"',
        'olddep; python_version < "3.12"',
        'fancydep; extra == "fancy"',
        "plain>=2"])
    make_dist(tmp_path, "plain", "2.1", files={"plain.py": ""})
    assert check_bundle(tmp_path, [], T("python3.12", "x86_64")).findings == ()
    r = check_bundle(tmp_path, [], T("python3.12", "arm64"))
    f = only(r, "missing-dependency")
    assert "armdep" in f.message and f.severity == "error" and f.distribution == "app"
    r = check_bundle(tmp_path, [], T("python3.11", "x86_64"))
    assert "olddep" in only(r, "missing-dependency").message


def test_requires_dist_version_and_extras(tmp_path):
    make_dist(tmp_path, "app", files={"app.py": ""}, requires=["lib[speed]>=2"])
    make_dist(tmp_path, "lib", "1.5", files={"lib.py": ""},
              requires=['fastthing; extra == "speed"', 'slowthing; extra == "slow"'])
    r = check_bundle(tmp_path, [], T())
    msgs = sorted(f.message for f in r.findings if f.code == "missing-dependency")
    assert len(msgs) == 2
    assert "lib 1.5" in msgs[0] and "lib[speed]>=2" in msgs[0]
    assert "fastthing" in msgs[1] and "extra [speed]" in msgs[1]
    assert not any("slowthing" in m for m in msgs)


def test_runtime_provided_dependency_is_only_a_warning(tmp_path):
    make_dist(tmp_path, "app", files={"app.py": ""}, requires=["boto3>=1.20"])
    r = check_bundle(tmp_path, [], T())
    f = only(r, "missing-dependency")
    assert f.severity == "warning" and r.ok


def test_incompatible_tags_from_wheel(tmp_path):
    make_dist(tmp_path, "pureish", files={"pureish.py": ""},
              tags=["cp313-cp313-manylinux_2_17_x86_64"])
    assert codes(check_bundle(tmp_path, [], T("python3.12"))) == ["incompatible-tags"]
    assert check_bundle(tmp_path, [], T("python3.13")).ok


# --------------------------------------------------------------------------- layout & size

def test_versioned_layer_layout_applies_to_its_runtime_only(tmp_path):
    task = tmp_path / "task"
    task.mkdir()
    layer = tmp_path / "layer"
    make_dist(layer / "python" / "lib" / "python3.11" / "site-packages", "layered",
              files={"layered/__init__.py": ""})
    assert check_bundle(task, [layer], T("python3.11")).findings == ()
    r = check_bundle(task, [layer], T("python3.12"))
    f = only(r, "layout-mismatch")
    assert f.distribution == "layered" and "python3.11" in f.message
    assert "python3.12/site-packages" in f.fix
    assert r.distributions == ()


def test_bundle_shadows_layer_and_layout_mistakes(tmp_path):
    task = tmp_path / "task"
    make_dist(task, "dup", "2.0", files={"dup.py": ""})
    layer = tmp_path / "layer"
    make_dist(layer / "python", "dup", "1.0", files={"dup.py": ""})
    make_dist(layer, "rootlevel", files={"rootlevel.py": ""})  # at /opt: not on sys.path
    r = check_bundle(task, [layer], T())
    sh = only(r, "shadowed-distribution")
    assert sh.severity == "warning" and "dup 1.0" in sh.message and "dup 2.0" in sh.message
    lm = only(r, "layout-mismatch")
    assert lm.distribution == "rootlevel" and "python/" in lm.fix
    assert [(d.name, d.version) for d in r.distributions] == [("dup", "2.0")]


def test_size_limits(tmp_path):
    di = make_dist(tmp_path, "big", files={"big/__init__.py": ""})
    with open(tmp_path / "big" / "blob.bin", "wb") as f:  # sparse: no disk used
        f.truncate(263_000_000)
    with open(di / "RECORD", "a") as f:
        f.write("big/blob.bin,,263000000\n")
    view = bundle.load(tmp_path)
    r = StaticChecker(view).check(T())
    f = only(r, "size-limit")
    assert f.severity == "error" and "250.8 MiB" in f.message and "250.0 MiB" in f.message
    assert "Largest: big 250.8 MiB" in f.message
    assert r.size.unzipped_bytes > 262_144_000
    assert r.size.largest[0][0] == "big"
    # a deployment zip over 50 MB is a warning (S3 upload still works)
    os.truncate(tmp_path / "big" / "blob.bin", 10)
    view = dataclasses.replace(bundle.load(tmp_path), zip_bytes=60_000_000)
    r = StaticChecker(view).check(T())
    f = only(r, "size-limit")
    assert f.severity == "warning" and "57.2 MiB" in f.message and "50.0 MiB" in f.message
    assert r.ok


def test_too_many_layers_and_empty_bundle(tmp_path):
    task = tmp_path / "task"
    task.mkdir()
    layers = []
    for i in range(6):
        d = tmp_path / f"l{i}"
        d.mkdir()
        layers.append(d)
    r = check_bundle(task, layers, T())
    assert codes(r) == ["empty-bundle", "too-many-layers"]
    assert not r.ok


def test_one_checker_many_targets_reads_files_once(tmp_path, monkeypatch):
    make_dist(tmp_path, "a", files={
        "a/_x.cpython-312-x86_64-linux-gnu.so":
            copy_elf("_oldglibc.cpython-311-x86_64-linux-gnu.so")}, wheel=False)
    calls = []
    from lambda_compat.verify import elf as elfmod
    real = elfmod.read_elf
    monkeypatch.setattr(elfmod, "read_elf", lambda p: calls.append(p) or real(p))
    checker = StaticChecker(bundle.load(tmp_path))
    for rt in ("python3.11", "python3.12", "python3.13", "python3.14"):
        for arch in ("x86_64", "arm64"):
            checker.check(T(rt, arch))
    assert len(calls) == 1


def test_check_bundle_never_writes(tmp_path):
    make_dist(tmp_path, "mypkg", files={
        "mypkg/_pq.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_pq.cpython-311-x86_64-linux-gnu.so")})
    before = snapshot(tmp_path)
    check_bundle(tmp_path, [], T("python3.11"))
    assert snapshot(tmp_path) == before


def test_modules_for_the_dynamic_proof(tmp_path):
    make_dist(tmp_path, "two", files={"one/__init__.py": "", "two.py": ""})
    r = check_bundle(tmp_path, [], T())
    assert r.modules() == (("two", "one"), ("two", "two"))


def test_a_library_next_to_the_extension_without_rpath_is_not_found(tmp_path):
    # _pq has RUNPATH $ORIGIN/../mypkg.libs only; its own directory is not searched
    make_dist(tmp_path, "mypkg", files={
        "mypkg/_pq.cpython-311-x86_64-linux-gnu.so":
            copy_elf("_pq.cpython-311-x86_64-linux-gnu.so"),
        "mypkg/libpq.so.5": copy_elf("librpathfix.so.1")}, wheel=False)
    f = only(check_bundle(tmp_path, [], T("python3.11")), "library-not-on-search-path")
    assert "/var/task/mypkg" in f.message and "lib/" in f.fix
