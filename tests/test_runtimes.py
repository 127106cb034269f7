"""The runtime registry: shipped data, lookups, and errors for broken data files."""

from __future__ import annotations

import datetime
import pathlib

import pytest

from lambda_compat.errors import RegistryError, UnknownTarget
from lambda_compat.registry.runtimes import load_runtimes, registry_dir
from lambda_compat.targets.arch import ARCHITECTURES
from lambda_compat.targets.facts import RuntimeFacts, RuntimeRegistry

RUNTIMES = tuple(f"python3.{m}" for m in range(8, 15))
AL2 = ("python3.8", "python3.9", "python3.10", "python3.11")
AL2023 = ("python3.12", "python3.13", "python3.14")


@pytest.fixture(scope="module")
def reg() -> RuntimeRegistry:
    return load_runtimes()


# --------------------------------------------------------------------------- shipped data

def test_shipped_registry_loads(reg):
    assert reg.schema_version == 1
    assert reg.data_version == "2026.12.02"
    assert pathlib.Path(reg.path) == registry_dir() / "runtimes.yaml"
    assert [k for k, _ in reg.sources] == [f"S{i}" for i in range(1, 25)]
    assert all(text for _, text in reg.sources)


def test_default_registry_is_cached(reg):
    assert load_runtimes() is load_runtimes()


def test_fourteen_targets_in_version_order(reg):
    assert len(reg.targets) == 14
    assert reg.runtimes == RUNTIMES
    assert {(t.runtime, t.arch) for t in reg.targets} == {
        (r, a) for r in RUNTIMES for a in ARCHITECTURES}


def test_python312_arm64(reg):
    t = reg.get("python3.12", "arm64")
    assert isinstance(t, RuntimeFacts)
    assert t.glibc == (2, 34)
    assert t.machine == "aarch64"
    assert t.os_id == "al2023"
    assert t.python_version == (3, 12)
    assert t.soabi == "cpython-312-aarch64-linux-gnu"
    assert t.ext_suffixes == (".cpython-312-aarch64-linux-gnu.so", ".abi3.so", ".so")
    assert t.image == "public.ecr.aws/lambda/python:3.12-arm64"
    assert t.image_digest is None
    assert t.sys_path[0] == "/var/task"


@pytest.mark.parametrize("runtime", AL2)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_al2_targets(reg, runtime, arch):
    t = reg.get(runtime, arch)
    assert t.os_id == "al2" and t.os_name == "Amazon Linux 2"
    assert t.glibc == (2, 26)
    assert "libssl.so.10" in t.sonames and "libcrypto.so.10" in t.sonames
    assert "libpq.so.5" not in t.sonames
    assert "libpq.so.5" in t.absent_sonames
    assert t.glibcxx_max == (3, 4, 24) and t.cxxabi_max == (1, 3, 11) and t.gcc_max == (7, 0, 0)
    assert t.is_known_absent("libpng16.so.16")  # glob entry libpng*.so.*
    assert not t.is_known_absent("libc.so.6")


@pytest.mark.parametrize("runtime", AL2023)
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_al2023_targets(reg, runtime, arch):
    t = reg.get(runtime, arch)
    assert t.os_id == "al2023"
    assert t.glibc == (2, 34)
    assert t.glibcxx_max == (3, 4, 29) and t.cxxabi_max == (1, 3, 13)
    assert t.gcc_max == ((11, 0) if arch == "arm64" else (7, 0, 0))
    assert "libssl.so.10" not in t.sonames
    assert {"libssl.so.3", "libstdc++.so.6"} <= t.inferred_sonames <= t.sonames
    assert t.provenance_of("os.openssl") == "inferred"
    assert t.provenance_of("shared_libraries.inferred_sonames") == "inferred"
    assert t.provenance_of("shared_libraries.absent") == "unverified"
    assert t.provenance_of("sys_path.order") == "derived"  # 3.12+ bootstrap not seen


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_arch_specific_names(reg, runtime):
    x86, arm = reg.get(runtime, "x86_64"), reg.get(runtime, "arm64")
    assert x86.machine == "x86_64" and arm.machine == "aarch64"
    assert "ld-linux-x86-64.so.2" in x86.sonames and "ld-linux-aarch64.so.1" not in x86.sonames
    assert "ld-linux-aarch64.so.1" in arm.sonames and "ld-linux-x86-64.so.2" not in arm.sonames
    assert "libmvec.so.1" in x86.sonames and "libmvec.so.1" not in arm.sonames
    assert "x86_64" in x86.soabi and "aarch64" in arm.soabi
    # arm64 soname evidence is carried over from x86_64 dumps
    assert arm.provenance_of("shared_libraries.sonames") == "derived"
    assert x86.glibc == arm.glibc and x86.sys_path == arm.sys_path


def test_provenance_marks_preserved(reg):
    for t in reg.targets:
        assert t.provenance_of("python.full_version") == "inferred"
        assert t.python_full_version.startswith(f"{t.python_version[0]}.{t.python_version[1]}.")
        assert t.provenance_of("python.soabi") == "derived"
        assert t.provenance_of("libstdcxx.GLIBCXX") == "derived"
        assert t.provenance_of("preinstalled.packages") == "unverified"
        assert t.provenance_of("os.glibc") == "sourced"
        assert set(t.sources) <= {k for k, _ in reg.sources}
    with pytest.raises(KeyError):
        reg.targets[0].provenance_of("python.nope")


# Dates of AWS's runtime table as read on 2026-12-02 (S22, /work/shared/lambda-runtimes):
# (deprecation, block function create, block function update).
LIFECYCLE = {
    "python3.8": ("2024-10-14", "2025-02-28", "2025-03-31"),
    "python3.9": ("2025-12-15", "2027-02-01", "2027-03-03"),
    "python3.10": ("2026-10-31", "2026-11-30", "2027-01-15"),
    "python3.11": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "python3.12": ("2028-10-31", "2028-11-30", "2029-01-10"),
    "python3.13": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "python3.14": ("2029-06-30", "2029-07-31", "2029-08-31"),
}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_lifecycle_dates_as_read_from_aws(reg, runtime):
    for arch in ARCHITECTURES:
        t = reg.get(runtime, arch)
        day = datetime.date.fromisoformat
        dep, create, update = LIFECYCLE[runtime]
        assert (t.deprecation, t.block_function_create, t.block_function_update) == (
            day(dep), day(create), day(update))
        assert t.lifecycle_read == datetime.date(2026, 12, 2)
        assert t.provenance_of("lifecycle.deprecation") == "sourced"


def test_lifecycle(reg):
    p311 = reg.get("python3.11", "arm64")
    assert {"S18", "S22"} <= set(p311.sources)
    assert p311.is_deprecated(datetime.date(2027, 6, 30))
    assert not p311.is_deprecated(datetime.date(2027, 6, 29))
    # a deprecated runtime still needs checking until its functions can no longer be updated
    p310 = reg.get("python3.10", "x86_64")
    today = datetime.date(2026, 12, 2)
    assert p310.is_deprecated(today) and p310.accepts_updates(today)
    assert not p310.accepts_updates(datetime.date(2027, 1, 15))
    assert not reg.get("python3.8", "x86_64").accepts_updates(today)
    assert reg.get("python3.10", "x86_64").python_full_version == "3.10.16"  # last seen (S15)


@pytest.mark.parametrize("runtime", AL2)
def test_al2_python_images_have_sqlite_and_unverified_stdlib_libraries(reg, runtime):
    """S21: the AL2 Python images ship SQLite 3.7.17; the libraries the runtime's own stdlib
    modules may link are unverified there, not absent (absent is the bare provided.al2)."""
    for arch in ARCHITECTURES:
        t = reg.get(runtime, arch)
        fact = t.library_fact("libsqlite3.so.0")
        assert fact.status == "present" and fact.sources == ("S21",)
        for soname in ("libexpat.so.1", "liblzma.so.5", "libbz2.so.1", "libuuid.so.1",
                       "libcrypt.so.1", "libreadline.so.6", "libgdbm.so.4"):
            assert t.library_fact(soname).status == "unverified", soname
        assert t.library_fact("libpq.so.5").status == "absent"
        assert t.library_fact("libfoo.so.1").status == "unknown"
        sqlite = t.capability("sqlite")
        assert sqlite.value == "3.7.17" and sqlite.known and "S21" in sqlite.sources
        # Python 3.10+ needs OpenSSL 1.1.1 (PEP 644): not AL2's 1.0.2k
        ssl = t.capability("openssl")
        assert ssl.value == ("1.1.1" if t.python_version >= (3, 10) else "1.0.2k")
        assert t.library_fact("libssl.so.1.1").status == (
            "unverified" if t.python_version >= (3, 10) else "absent")


@pytest.mark.parametrize("runtime", AL2023)
def test_al2023_lists_have_expat_and_uuid(reg, runtime):
    for arch in ARCHITECTURES:
        t = reg.get(runtime, arch)
        for soname in ("libexpat.so.1", "libuuid.so.1"):
            fact = t.library_fact(soname)
            assert fact.status == "present" and fact.inferred, soname
        assert t.capability("sqlite").value == "3.40.0"
        assert t.capability("sqlite").status == "inferred"


def test_env_and_sys_path(reg):
    t = reg.get("python3.11", "x86_64")
    env = dict(t.env)
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["TZ"] == ":/etc/localtime"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.11"
    # 3.11+: runtime site-packages precede /var/runtime; 3.8-3.10: the other way round
    assert t.sys_path.index("/var/lang/lib/python3.11/site-packages") < t.sys_path.index("/var/runtime")
    p310 = reg.get("python3.10", "x86_64").sys_path
    assert p310.index("/var/runtime") < p310.index("/var/lang/lib/python3.10/site-packages")


# --------------------------------------------------------------------------- lookups

@pytest.mark.parametrize("runtime, arch, expected", [
    ("python3.12", "arm64", ("python3.12", "arm64")),
    ("3.12", "aarch64", ("python3.12", "arm64")),
    ("3.9", "amd64", ("python3.9", "x86_64")),
    (" Python3.14 ", "X86_64", ("python3.14", "x86_64")),
])
def test_aliases(reg, runtime, arch, expected):
    t = reg.get(runtime, arch)
    assert (t.runtime, t.arch) == expected


@pytest.mark.parametrize("typo", ["python3.21", "pyhton3.12"])
def test_unknown_runtime_suggests(reg, typo):
    with pytest.raises(UnknownTarget) as exc:
        reg.get(typo, "x86_64")
    assert exc.value.suggestion == "python3.12"
    assert "Did you mean 'python3.12'?" in str(exc.value)
    assert "python3.8, python3.9, python3.10" in str(exc.value)


def test_unknown_runtime_without_close_match(reg):
    with pytest.raises(UnknownTarget, match="Unknown runtime 'nodejs20.x'"):
        reg.get("nodejs20.x", "x86_64")


def test_unknown_architecture(reg):
    with pytest.raises(UnknownTarget) as exc:
        reg.get("python3.12", "arm")
    assert "Unknown architecture 'arm'" in str(exc.value)
    assert exc.value.suggestion == "arm64"


# --------------------------------------------------------------------------- broken files

TARGET = """\
  - runtime: python3.12
    arch: x86_64
    python:
      version: "3.12"
      full_version: "3.12.11"
      executable: /var/lang/bin/python3.12
      soabi: cpython-312-x86_64-linux-gnu
      ext_suffixes: [".cpython-312-x86_64-linux-gnu.so", ".abi3.so", ".so"]
      free_threaded: false
      src: [S1]
      inferred: [full_version]
    os: {name: Amazon Linux 2023, id: al2023, glibc: "2.34", gcc: "11.3", src: [S1]}
    libstdcxx: {GLIBCXX: "3.4.29", CXXABI: "1.3.13", GCC: "7.0.0", src: [S1], derived: [GLIBCXX]}
    image:
      name: public.ecr.aws/lambda/python:3.12-x86_64
      digest: null
      entrypoint: /lambda-entrypoint.sh
      workdir: /var/task
      env: {LAMBDA_TASK_ROOT: /var/task}
      src: [S2]
    sys_path: {order: [/var/task, /var/lang/lib/python3.12/site-packages], src: [S1]}
    shared_libraries:
      sonames: [ld-linux-x86-64.so.2, libc.so.6]
      absent: [libpq.so.5]
      src: [S1]
    lifecycle:
      released: "2023-12-14"
      deprecation: "2028-10-31"
      block_function_create: null
      block_function_update: null
      src: [S1]
    preinstalled: {location: /var/lang/lib/python3.12/site-packages, packages: [boto3], src: [S1]}
"""

HEADER = """\
schema_version: 1
data_version: "2026.11.21"
sources:
  S1: first source
  S2: second source
targets:
"""


def write(tmp_path, text: str) -> pathlib.Path:
    path = tmp_path / "runtimes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return hits[occurrence - 1]


def expect_error(path: pathlib.Path, line: int, *fragments: str) -> RegistryError:
    with pytest.raises(RegistryError) as exc:
        load_runtimes(path)
    message = str(exc.value)
    assert f"{path}:{line}" in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert exc.value.path == str(path) and exc.value.line == line
    return exc.value


def test_minimal_file_loads(tmp_path):
    reg = load_runtimes(write(tmp_path, HEADER + TARGET))
    t = reg.get("3.12", "amd64")
    assert t.sources == ("S1", "S2")
    assert t.provenance_of("python.full_version") == "inferred"
    assert t.provenance_of("libstdcxx.GLIBCXX") == "derived"
    assert t.deprecation == datetime.date(2028, 10, 31)


def test_duplicate_target(tmp_path):
    text = HEADER + TARGET + TARGET
    expect_error(write(tmp_path, text), line_of(text, "- runtime: python3.12", 2),
                 "duplicate target python3.12/x86_64", f"line {line_of(text, '- runtime:')}")


def test_unknown_source_key(tmp_path):
    text = HEADER + TARGET.replace("      src: [S2]", "      src: [S2, S9]")
    expect_error(write(tmp_path, text), line_of(text, "src: [S2, S9]"),
                 "image.src cites unknown source 'S9'", "python3.12/x86_64")


def test_bad_arch(tmp_path):
    text = HEADER + TARGET.replace("arch: x86_64", "arch: sparc")
    expect_error(write(tmp_path, text), line_of(text, "arch: sparc"), "'sparc' is not one of")


def test_unknown_key_points_at_the_key(tmp_path):
    text = HEADER + TARGET.replace("      workdir: /var/task\n",
                                   "      workdir: /var/task\n      wrokdir: /tmp\n")
    expect_error(write(tmp_path, text), line_of(text, "wrokdir"), "'wrokdir' was unexpected")


def test_mark_names_missing_key(tmp_path):
    text = HEADER + TARGET.replace("inferred: [full_version]", "inferred: [prefix]")
    expect_error(write(tmp_path, text), line_of(text, "inferred: [prefix]"),
                 "python.inferred names 'prefix'")


def test_key_marked_twice(tmp_path):
    text = HEADER + TARGET.replace("inferred: [full_version]",
                                   "inferred: [full_version]\n      unverified: [full_version]")
    expect_error(write(tmp_path, text), line_of(text, "unverified: [full_version]"),
                 "marked both inferred and unverified")


def test_version_must_match_runtime(tmp_path):
    text = HEADER + TARGET.replace('version: "3.12"', 'version: "3.13"')
    expect_error(write(tmp_path, text), line_of(text, 'version: "3.13"'),
                 "does not match runtime 'python3.12'")


def test_soabi_must_match_arch(tmp_path):
    text = HEADER + TARGET.replace("arch: x86_64", "arch: arm64").replace(
        "python:3.12-x86_64", "python:3.12-arm64")
    expect_error(write(tmp_path, text), line_of(text, "soabi:"),
                 "expected 'cpython-312-aarch64-linux-gnu'")


def test_loader_of_other_arch(tmp_path):
    text = HEADER + TARGET.replace("arch: x86_64", "arch: arm64").replace(
        "python:3.12-x86_64", "python:3.12-arm64").replace("x86_64-linux-gnu", "aarch64-linux-gnu")
    expect_error(write(tmp_path, text), line_of(text, "sonames:"), "the x86_64 loader")


def test_unquoted_version_is_explained(tmp_path):
    text = HEADER + TARGET.replace('version: "3.12"', "version: 3.10")
    expect_error(write(tmp_path, text), line_of(text, "version: 3.10"), "quote version numbers")


def test_bad_glibc(tmp_path):
    text = HEADER + TARGET.replace('glibc: "2.34"', 'glibc: "two"')
    expect_error(write(tmp_path, text), line_of(text, 'glibc: "two"'), "'two' does not match")


def test_present_and_absent(tmp_path):
    text = HEADER + TARGET.replace("absent: [libpq.so.5]", "absent: [libc.so.*]")
    expect_error(write(tmp_path, text), line_of(text, "absent: [libc.so.*]"),
                 "matches present soname(s) ['libc.so.6']")


def test_lifecycle_order(tmp_path):
    text = HEADER + TARGET.replace('deprecation: "2028-10-31"', 'deprecation: "2022-10-31"')
    expect_error(write(tmp_path, text), line_of(text, "deprecation:"), "is before released")


def test_duplicate_yaml_key(tmp_path):
    text = HEADER + TARGET.replace("      digest: null\n", "      digest: null\n      digest: null\n")
    expect_error(write(tmp_path, text), line_of(text, "digest:", 2),
                 "duplicate key 'digest'", f"line {line_of(text, 'digest:')}")


def test_yaml_syntax_error(tmp_path):
    text = HEADER + TARGET.replace("sonames: [ld-linux-x86-64.so.2, libc.so.6]",
                                   "sonames: [ld-linux-x86-64.so.2, libc.so.6")
    with pytest.raises(RegistryError, match="invalid YAML") as exc:
        load_runtimes(write(tmp_path, text))
    assert exc.value.line is not None
    assert f"{tmp_path / 'runtimes.yaml'}:{exc.value.line}" in str(exc.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(RegistryError, match="cannot read the runtime registry") as exc:
        load_runtimes(path)
    assert str(exc.value).startswith(str(path))


def test_not_a_mapping(tmp_path):
    with pytest.raises(RegistryError, match="is not of type 'object'"):
        load_runtimes(write(tmp_path, "- just\n- a list\n"))


def test_shipped_schemas_are_valid_json_schemas():
    import json

    import jsonschema

    from lambda_compat.registry.runtimes import registry_dir

    schemas = sorted((registry_dir() / "schema").glob("*.json"))
    schemas += sorted((pathlib.Path(__file__).resolve().parent.parent / "resolver" / "lambda_compat"
                       / "schemas").glob("*.json"))
    assert len(schemas) >= 3
    for path in schemas:
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))
