"""Targets: platform tags, interpreter tags and marker environments, always for the TARGET.

Property tests run over every (Python 3.8..3.14) x (x86_64, arm64) x (glibc 2.17..2.40) and
check the tag set against the manylinux rules directly (not against the function's own loop).
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.markers import Marker
from packaging.tags import Tag

from lambda_compat.registry.runtimes import load_runtimes
from lambda_compat.targets.target import Target, platform_tags

MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
OTHER_MACHINE = {"x86_64": "aarch64", "aarch64": "x86_64"}
ARCH_MIN = {"x86_64": 5, "aarch64": 17}
LEGACY = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
PEP508_KEYS = {
    "implementation_name", "implementation_version", "os_name", "platform_machine",
    "platform_release", "platform_system", "platform_version", "python_full_version",
    "platform_python_implementation", "python_version", "sys_platform",
}

minors = st.integers(min_value=8, max_value=14)
arches = st.sampled_from(["x86_64", "arm64"])
glibc_minors = st.integers(min_value=17, max_value=40)


def make(m: int, arch: str, n: int) -> Target:
    return Target(runtime=f"python3.{m}", arch=arch, python_version=(3, m),
                  python_full_version=f"3.{m}.5", glibc=(2, n))


def _is_platform_specific(tag: str) -> bool:
    return not tag.endswith("-any")


# --------------------------------------------------------------------------- platform tags

@settings(max_examples=60, deadline=None)
@given(m=minors, arch=arches, n=glibc_minors)
def test_manylinux_levels_match_glibc(m, arch, n):
    target = make(m, arch, n)
    machine = MACHINE[arch]
    plats = target.platforms
    assert target.machine == machine
    for k in range(ARCH_MIN[machine], n + 1):
        assert f"manylinux_2_{k}_{machine}" in plats
    for k in range(n + 1, 60):
        assert f"manylinux_2_{k}_{machine}" not in plats
    # Nothing below the oldest level that exists for the machine.
    for k in range(0, ARCH_MIN[machine]):
        assert f"manylinux_2_{k}_{machine}" not in plats
    assert f"linux_{machine}" in plats
    assert plats[0] == f"manylinux_2_{n}_{machine}"


@settings(max_examples=60, deadline=None)
@given(m=minors, arch=arches, n=glibc_minors)
def test_legacy_aliases(m, arch, n):
    target = make(m, arch, n)
    machine = MACHINE[arch]
    plats = list(target.platforms)
    # manylinux2014 exists for both machines; 2010 and 1 only for x86_64 (and i686).
    assert f"manylinux2014_{machine}" in plats
    for legacy, level in LEGACY.items():
        present = f"{legacy}_{machine}" in plats
        expected = n >= level and (legacy == "manylinux2014" or machine == "x86_64")
        assert present == expected, (legacy, machine, n)
        if present:
            i = plats.index(f"{legacy}_{machine}")
            assert i > 0 and plats[i - 1] == f"manylinux_2_{level}_{machine}"
    assert not any(p.startswith(("manylinux2010", "manylinux1_")) for p in plats
                   if machine == "aarch64")


@settings(max_examples=60, deadline=None)
@given(m=minors, arch=arches, n=glibc_minors)
def test_interpreter_tags(m, arch, n):
    target = make(m, arch, n)
    machine = MACHINE[arch]
    other = OTHER_MACHINE[machine]
    tags = target.tag_strings
    interp = f"cp3{m}"

    assert len(tags) == len(set(tags)), "duplicate tags"
    assert len(target.tags) == len(set(target.tags))
    assert not any(other in t for t in tags)
    assert tags[0] == f"{interp}-{interp}-manylinux_2_{n}_{machine}"

    assert "py3-none-any" in tags
    any_index = tags.index("py3-none-any")
    last_specific = max(i for i, t in enumerate(tags) if _is_platform_specific(t))
    assert any_index > last_specific

    abi3_floors = {Tag(*t.split("-")).interpreter for t in tags if "-abi3-" in t}
    assert abi3_floors == {f"cp3{k}" for k in range(2, m + 1)}
    for k in range(2, m + 1):
        assert f"cp3{k}-abi3-manylinux_2_{n}_{machine}" in tags
        assert f"cp3{k}-abi3-linux_{machine}" in tags

    newer = f"3{m + 1}"
    assert not any(t.startswith((f"cp{newer}-", f"py{newer}-")) for t in tags)
    # Every platform-specific tag's platform is one of the target's platforms.
    plats = set(target.platforms)
    assert {t.split("-")[2] for t in tags if _is_platform_specific(t)} <= plats
    # The priority map agrees with the order.
    prio = target.tag_priority()
    assert [str(t) for t in sorted(prio, key=prio.__getitem__)] == list(tags)


def test_platform_tags_examples():
    assert platform_tags("x86_64", (2, 17)) == (
        "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_16_x86_64",
        "manylinux_2_15_x86_64", "manylinux_2_14_x86_64", "manylinux_2_13_x86_64",
        "manylinux_2_12_x86_64", "manylinux2010_x86_64", "manylinux_2_11_x86_64",
        "manylinux_2_10_x86_64", "manylinux_2_9_x86_64", "manylinux_2_8_x86_64",
        "manylinux_2_7_x86_64", "manylinux_2_6_x86_64", "manylinux_2_5_x86_64",
        "manylinux1_x86_64", "linux_x86_64",
    )
    assert platform_tags("aarch64", (2, 17)) == (
        "manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64")
    with pytest.raises(ValueError):
        platform_tags("x86_64", (3, 1))


def test_target_rejects_inconsistent_values():
    with pytest.raises(ValueError):
        Target(runtime="python3.12", arch="aarch64", python_version=(3, 12),
               python_full_version="3.12.5", glibc=(2, 34))
    with pytest.raises(ValueError):
        Target(runtime="python3.12", arch="arm64", python_version=(3, 11),
               python_full_version="3.11.5", glibc=(2, 34))


# --------------------------------------------------------------------------- markers

@settings(max_examples=50, deadline=None)
@given(m=minors, arch=arches, n=glibc_minors)
def test_marker_environment_is_the_targets(m, arch, n):
    target = make(m, arch, n)
    env = target.marker_environment()
    assert set(env) == PEP508_KEYS
    assert env["python_version"] == f"3.{m}"
    assert env["python_full_version"] == f"3.{m}.5"
    assert env["implementation_version"] == f"3.{m}.5"
    assert env["platform_machine"] == MACHINE[arch]
    assert env["sys_platform"] == "linux"
    assert env["platform_system"] == "Linux"
    assert env["os_name"] == "posix"
    assert env["implementation_name"] == "cpython"
    assert env["platform_python_implementation"] == "CPython"

    def ev(text: str) -> bool:
        return Marker(text).evaluate(env)

    assert ev('platform_machine == "aarch64"') is (arch == "arm64")
    assert ev('platform_machine == "x86_64"') is (arch == "x86_64")
    assert ev('python_version < "3.11"') is (m < 11)
    assert ev('python_version >= "3.10"') is (m >= 10)
    assert ev(f'python_full_version == "3.{m}.5"')
    assert ev('sys_platform == "linux"')
    assert not ev('sys_platform == "win32" or sys_platform == "darwin"')
    assert ev('platform_system == "Linux" and implementation_name == "cpython"')


def test_marker_environment_never_the_host():
    host = platform.machine()
    arch = "x86_64" if host in ("aarch64", "arm64") else "arm64"
    target = make(12, arch, 34)
    env = target.marker_environment()
    assert env["platform_machine"] == MACHINE[arch]
    assert env["platform_machine"] != host
    want = MACHINE[arch]
    assert Marker(f'platform_machine == "{want}"').evaluate(env)
    assert not Marker(f'platform_machine == "{host}"').evaluate(env)
    # The tags do not mention the host's machine either.
    assert not any(host in t for t in target.tag_strings)
    # A Python version different from the running one is reported as the target's.
    other_minor = 8 if platform.python_version_tuple()[1] != "8" else 9
    env = make(other_minor, arch, 26).marker_environment()
    assert env["python_version"] == f"3.{other_minor}"
    assert not Marker(f'python_version == "{platform.python_version_tuple()[0]}.'
                      f'{platform.python_version_tuple()[1]}"').evaluate(env)


# --------------------------------------------------------------------------- real registry

@pytest.fixture(scope="module")
def reg():
    return load_runtimes()


def test_python311_x86_64_from_registry(reg):
    facts = reg.get("python3.11", "x86_64")
    t = Target.from_facts(facts)
    assert (t.runtime, t.arch, t.glibc) == ("python3.11", "x86_64", (2, 26))
    assert t.python_version == (3, 11)
    assert t.python_full_version == facts.python_full_version
    assert t.facts is facts
    assert t.accepts_wheel_tags([Tag("cp311", "cp311", "manylinux_2_26_x86_64")])
    assert t.accepts_wheel_tags([Tag("cp39", "abi3", "manylinux2014_x86_64")])
    assert not t.accepts_wheel_tags([Tag("cp311", "cp311", "manylinux_2_27_x86_64")])
    assert not t.accepts_wheel_tags([Tag("cp311", "cp311", "manylinux_2_28_x86_64")])
    assert not t.accepts_wheel_tags([Tag("cp312", "cp312", "manylinux_2_17_x86_64")])
    assert not t.accepts_wheel_tags([Tag("cp311", "cp311", "manylinux_2_17_aarch64")])


def test_python312_arm64_from_registry(reg):
    facts = reg.get("python3.12", "arm64")
    t = Target.from_facts(facts)
    assert (t.runtime, t.arch, t.glibc) == ("python3.12", "arm64", (2, 34))
    assert t.accepts_wheel_tags([Tag("cp312", "cp312", "manylinux_2_34_aarch64")])
    assert t.accepts_wheel_tags([Tag("py3", "none", "any")])
    assert not t.accepts_wheel_tags([Tag("cp312", "cp312", "manylinux_2_35_aarch64")])
    for plat in ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64",
                 "linux_x86_64", "manylinux_2_34_x86_64"):
        assert not t.accepts_wheel_tags([Tag("cp312", "cp312", plat)])
        assert not t.accepts_wheel_tags([Tag("py3", "none", plat)])
    assert not any("x86_64" in s for s in t.tag_strings)


def test_every_registry_target_round_trips(reg):
    for facts in reg.targets:
        t = Target.from_facts(facts)
        assert (t.runtime, t.arch, t.glibc) == (facts.runtime, facts.arch, tuple(facts.glibc))
        assert t.machine == facts.machine
        assert t.platforms[0] == f"manylinux_2_{facts.glibc[1]}_{facts.machine}"


# --------------------------------------------------------------------------- no host reads

SRC = Path(__file__).resolve().parent.parent / "resolver" / "lambda_compat"
HOST_ALLOWED = {"host/interpreters.py", "build/builder.py", "resolve/sdist_build.py", "resolve/pip_patches.py"}
HOST_READS = re.compile(
    r"\bsys_tags\b"                      # packaging.tags.sys_tags
    r"|\bplatform_tags\s*\(\s*\)"        # packaging.tags.platform_tags() with no arguments
    r"|\bdefault_environment\b"          # packaging.markers.default_environment
)


def test_host_read_pattern_detects_calls():
    # The pattern must be able to fail: it finds each forbidden form...
    for bad in ("packaging.tags.sys_tags()", "from packaging.tags import sys_tags",
                "tags.platform_tags()", "_tags.platform_tags( )",
                "markers.default_environment()", "from packaging.markers import default_environment"):
        assert HOST_READS.search(bad), bad
    # ...and not the target's own, argument-taking platform_tags.
    assert not HOST_READS.search("platform_tags(self.machine, self.glibc)")


def test_target_logic_never_reads_the_host():
    modules = sorted(SRC.rglob("*.py"))
    names = {p.relative_to(SRC).as_posix() for p in modules}
    assert names >= {"targets/target.py", "resolve/engine.py", "build/install.py",
                     "resolve/reqfile.py"}
    offenders = []
    for path in modules:
        if path.relative_to(SRC).as_posix() in HOST_ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if HOST_READS.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{number}: {line.strip()}")
    assert offenders == []
