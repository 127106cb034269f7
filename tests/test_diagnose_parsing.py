"""The diagnosis reads file names lazily (version first, tags only where they decide); its
answers must be those of parsing every file name in full."""

from __future__ import annotations

from typing import List, Optional

from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename,
                             parse_wheel_filename)
from packaging.version import InvalidVersion, Version

from lambda_compat.build.missing import offered_versions
from lambda_compat.registry.runtimes import get_target
from lambda_compat.resolve.diagnose import diagnose, newest_compatible, wheel_version
from lambda_compat.resolve.engine import LinkInfo

VERSIONS = ["1.0", "1.1", "2.0rc1", "2.0", "10.0.post1", "not.a.version", "1.1.0"]
TAGS = ["cp311-cp311-manylinux_2_17_x86_64", "cp312-cp312-manylinux_2_17_aarch64",
        "cp311-cp311-manylinux_2_28_x86_64", "cp39-abi3-manylinux2014_x86_64",
        "py3-none-any", "cp312-cp312-win_amd64", "cp311-cp311-manylinux_2_34_x86_64",
        "cp311-cp311-musllinux_1_1_x86_64", "bad-tag", "cp312-cp312-manylinux_2_17_x86_64"]
REQUIRES = [None, ">=3.12", "<3.12", ">=3.8", "~=3.11.0", "not a specifier"]


def _link(version: str, tag: Optional[str], build: Optional[str], requires: Optional[str],
          yanked: bool) -> LinkInfo:
    if tag is None:
        name = f"pkg-{version}.tar.gz"
    else:
        name = "-".join(["pkg", version] + ([build] if build else []) + [tag]) + ".whl"
    return LinkInfo(name, "https://example.invalid/" + name, requires, yanked)


links = st.lists(st.builds(_link, st.sampled_from(VERSIONS),
                           st.one_of(st.none(), st.sampled_from(TAGS)),
                           st.sampled_from([None, "1", "x"]), st.sampled_from(REQUIRES),
                           st.booleans()), max_size=14)
TARGETS = [get_target("python3.11", "x86_64"), get_target("python3.12", "arm64"),
           get_target("python3.12", "x86_64")]


def _full(filename: str):
    try:
        return parse_wheel_filename(filename)
    except (InvalidWheelFilename, InvalidVersion):
        return None


def _admits(link: LinkInfo, target) -> bool:
    if not link.requires_python:
        return True
    try:
        return SpecifierSet(link.requires_python).contains(
            Version(target.python_full_version), prereleases=True)
    except InvalidSpecifier:
        return True


def _reference_newest(ls: List[LinkInfo], target, stable: bool) -> Optional[Version]:
    best = None
    for link in ls:
        if not link.is_wheel or link.yanked or not _admits(link, target):
            continue
        parts = _full(link.filename)
        if not parts or (stable and parts[1].is_prerelease):
            continue
        if any(t in target.tag_priority() for t in parts[3]) and (best is None
                                                                   or parts[1] > best):
            best = parts[1]
    return best


def _reference_offered(ls: List[LinkInfo], requirement: str, sdist_only: bool):
    spec = SpecifierSet(requirement[len("pkg"):])
    found = set()
    for link in ls:
        if link.yanked or (sdist_only and link.is_wheel):
            continue
        try:
            version = (parse_wheel_filename(link.filename)[1] if link.is_wheel
                       else parse_sdist_filename(link.filename)[1])
        except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
            continue
        if spec.contains(version, prereleases=True):
            found.add(version)
    return found


@settings(max_examples=300, deadline=None)
@given(links, st.sampled_from(TARGETS), st.booleans())
def test_newest_compatible_is_the_newest_fitting_wheel(ls, target, stable):
    assert newest_compatible(ls, target, stable) == _reference_newest(ls, target, stable)


@settings(max_examples=300, deadline=None)
@given(links, st.sampled_from(["pkg", "pkg>=1.1", "pkg<2", "pkg==1.1"]), st.booleans())
def test_offered_versions_count_only_files_that_parse(ls, requirement, sdist_only):
    target = TARGETS[0]
    assert offered_versions(ls, requirement, target, sdist_only) == _reference_offered(
        ls, requirement, sdist_only)


@settings(max_examples=200, deadline=None)
@given(links, st.sampled_from(TARGETS), st.sampled_from([None, "1.0", "1.1", "2.0"]))
def test_diagnosis_is_a_function_of_the_files(ls, target, version):
    """Shuffled input, same verdict (the lazy parse orders files; that must not change what
    is decided; the example file the message names may differ)."""
    d = diagnose("pkg", version, ls, target)
    r = diagnose("pkg", version, list(reversed(ls)), target)
    assert (d.reason_code, d.glibc_blocked, d.newest_compatible, d.suggestion) == (
        r.reason_code, r.glibc_blocked, r.newest_compatible, r.suggestion)
    if d.newest_compatible is not None:
        assert Version(d.newest_compatible) == _reference_newest(ls, target, True)


def test_wheel_version_reads_only_well_formed_names():
    assert wheel_version("pkg-1.0-py3-none-any.whl") == Version("1.0")
    assert wheel_version("pkg-1.0-1-py3-none-any.whl") == Version("1.0")
    assert wheel_version("pkg-1.0-none-any.whl") is None        # a field missing
    assert wheel_version("pkg-not.a.version-py3-none-any.whl") is None
    assert wheel_version("pkg-1.0.tar.gz") is None
