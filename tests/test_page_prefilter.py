"""The index-page prefilter drops exactly the wheels pip would reject for the target."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from pip._internal.index.collector import IndexContent, parse_links
from pip._internal.models.wheel import Wheel
from pip._vendor.packaging.tags import Tag as PipTag

from lambda_compat.registry.runtimes import get_target
from lambda_compat.resolve.pip_patches import prefilter_page
from lambda_compat.targets.target import Target


PYS = ["cp38", "cp311", "cp312", "py3", "py2", "pp310"]
ABIS = ["cp311", "cp312", "abi3", "none", "cp38"]
PLATS = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64",
         "manylinux_2_17_aarch64", "musllinux_1_1_x86_64", "win_amd64", "any",
         "macosx_11_0_arm64", "linux_x86_64"]


def _name(pys, abis, plats, build=None) -> str:
    parts = ["pkg", "1.0"] + ([build] if build else []) + [
        ".".join(pys), ".".join(abis), ".".join(plats)]
    return "-".join(parts) + ".whl"


wheel_names = st.builds(
    _name, st.lists(st.sampled_from(PYS), min_size=1, max_size=2, unique=True),
    st.lists(st.sampled_from(ABIS), min_size=1, max_size=2, unique=True),
    st.lists(st.sampled_from(PLATS), min_size=1, max_size=3, unique=True),
    st.sampled_from([None, "1", "2abc"]))

TARGETS = [get_target("python3.11", "x86_64"), get_target("python3.12", "arm64")]


def _html(filenames) -> bytes:
    rows = [f'<a href="../../files/{n}#sha256=00" data-requires-python="&gt;=3.8">{n}</a><br/>'
            for n in filenames]
    return ("<!DOCTYPE html><html><body>\n" + "\n".join(rows) + "\n</body></html>").encode()


def _pip_accepts(filename: str, target: Target) -> bool:
    # pip's own judgement, with the target's tags as the shim hands them to pip.
    return Wheel(filename).supported([PipTag(*t.split("-")) for t in target.tag_strings])


@settings(max_examples=60, deadline=None)
@given(st.lists(wheel_names, max_size=12), st.sampled_from(TARGETS))
def test_html_page_keeps_exactly_what_pip_would_accept(names, target):
    names = list(dict.fromkeys(names)) + ["pkg-1.0.tar.gz"]
    tags = frozenset(str(t) for t in target.tags)
    page = IndexContent(_html(names), "text/html", "utf-8", "https://index.invalid/simple/pkg/")
    kept = [link.filename for link in parse_links(
        IndexContent(prefilter_page(page.content, page.content_type, tags), "text/html", "utf-8",
                     page.url))]
    expected = [link.filename for link in parse_links(page)
                if not link.is_wheel or _pip_accepts(link.filename, target)]
    assert kept == expected


@settings(max_examples=40, deadline=None)
@given(st.lists(wheel_names, max_size=10), st.sampled_from(TARGETS))
def test_json_page_keeps_exactly_what_pip_would_accept(names, target):
    names = list(dict.fromkeys(names)) + ["pkg-1.0.tar.gz"]
    tags = frozenset(str(t) for t in target.tags)
    doc = {"meta": {"api-version": "1.1"}, "name": "pkg",
           "files": [{"filename": n, "url": f"https://files.invalid/{n}", "hashes": {}}
                     for n in names]}
    out = json.loads(prefilter_page(json.dumps(doc).encode(),
                                    "application/vnd.pypi.simple.v1+json", tags))
    assert [f["filename"] for f in out["files"]] == [
        n for n in names if not n.endswith(".whl") or _pip_accepts(n, target)]
    assert out["meta"] == doc["meta"]


def test_unusual_anchors_are_left_for_pip():
    tags = frozenset(str(t) for t in get_target("python3.11", "x86_64").tags)
    html = (b'<a href="a-1-cp39-cp39-win32.whl">a-1-cp39-cp39-win32.whl'   # unclosed
            b'<a href="a-1-py3-none-any.whl">a-1-py3-none-any.whl</a>'
            b"<a name='x'>no href</a>"
            b"<a href=a-1-cp39-cp39-win_amd64.whl>unquoted</a>"
            b'<a href="not-a-wheel-name.whl">bad</a>')
    out = prefilter_page(html, "text/html", tags)
    assert b"a-1-py3-none-any.whl" in out and b"no href" in out
    assert b"a-1-cp39-cp39-win32.whl" in out          # kept: unclosed anchor, ambiguous
    assert b"win_amd64" not in out                    # unquoted href still judged
    assert b"not-a-wheel-name.whl" in out             # malformed: pip reports it
    # and nothing else changed: the one unquoted anchor that fits no tag is cut out whole
    assert out == html.replace(b"<a href=a-1-cp39-cp39-win_amd64.whl>unquoted</a>", b"")


def _link_facts(link):
    return (link.url, link.requires_python, link.yanked_reason, link.hash_name, link.hash,
            link.metadata_file_data)


@settings(max_examples=40, deadline=None)
@given(st.lists(wheel_names, max_size=10), st.sampled_from(TARGETS))
def test_target_link_parser_gives_pip_s_links_for_the_target(names, target):
    """The parser pip runs for a target: the links of pip's own parser, minus the wheels
    the target cannot use, with every attribute pip reads (JSON parsed once; HTML through
    the filter)."""
    from lambda_compat.resolve.pip_patches import target_link_parser
    names = list(dict.fromkeys(names)) + ["pkg-1.0.tar.gz"]
    tags = frozenset(str(t) for t in target.tags)
    doc = {"meta": {"api-version": "1.1"}, "name": "pkg",
           "files": [{"filename": n, "url": f"https://files.invalid/{n}",
                      "hashes": {"sha256": "ab" * 32}, "requires-python": ">=3.8",
                      "yanked": n.startswith("pkg-1.0-2"), "core-metadata": {"sha256": "cd" * 32}}
                     for n in names]}
    parse = target_link_parser(tags, parse_links)
    for content, ctype in ((json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json"),
                           (_html(names), "text/html")):
        page = IndexContent(content, ctype, encoding=None, url="https://index.invalid/pkg/",
                            cache_link_parsing=False)
        expected = [_link_facts(link) for link in parse_links(page)
                    if not link.is_wheel or _pip_accepts(link.filename, target)]
        assert [_link_facts(link) for link in parse(page)] == expected


def test_target_link_parser_remembers_a_json_page_pip_would_remember():
    from lambda_compat.resolve.pip_patches import target_link_parser
    target = TARGETS[0]
    parse = target_link_parser(frozenset(str(t) for t in target.tags), parse_links)

    def page(filename, remember):
        doc = {"meta": {"api-version": "1.1"}, "name": "pkg",
               "files": [{"filename": filename, "url": f"https://f.invalid/{filename}",
                          "hashes": {}}]}
        return IndexContent(json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json",
                            encoding=None, url="https://index.invalid/pkg/",
                            cache_link_parsing=remember)

    assert [x.filename for x in parse(page("pkg-1.0.tar.gz", True))] == ["pkg-1.0.tar.gz"]
    # the same URL again: pip's own parser would answer from its memo too
    assert [x.filename for x in parse(page("pkg-2.0.tar.gz", True))] == ["pkg-1.0.tar.gz"]
    # a page pip does not remember is parsed afresh
    assert [x.filename for x in parse(page("pkg-3.0.tar.gz", False))] == ["pkg-3.0.tar.gz"]


# -- the user's requirements narrow a pinned project's page ----------------------------------

import pytest  # noqa: E402


@pytest.fixture
def restrict():
    from lambda_compat.resolve import pip_versions

    def apply(*lines, constraints=()):
        from pip._internal.req.constructors import install_req_from_line
        reqs = [install_req_from_line(line) for line in lines]
        for line in constraints:
            ireq = install_req_from_line(line)
            ireq.constraint = True
            reqs.append(ireq)
        pip_versions.restrict_to_requirements(reqs)
        return pip_versions.version_filter()

    yield apply
    pip_versions._ALLOWED.clear()


def test_a_pinned_projects_other_versions_are_not_offered(restrict):
    keep = restrict("numpy==1.26.4", "psycopg2-binary==2.9.10", "PyYAML==6.0.2")
    assert keep("numpy-1.26.4-cp312-cp312-manylinux_2_17_aarch64.whl")
    assert keep("numpy-1.26.4.tar.gz")
    assert not keep("numpy-2.0.0-cp312-cp312-manylinux_2_17_aarch64.whl")
    assert not keep("numpy-1.26.3.tar.gz")
    assert keep("psycopg2_binary-2.9.10-cp312-cp312-manylinux_2_17_x86_64.whl")
    assert not keep("psycopg2_binary-2.9.9-cp312-cp312-manylinux_2_17_x86_64.whl")
    assert keep("psycopg2-binary-2.9.10.tar.gz") and not keep("psycopg2-binary-2.9.9.tar.gz")
    assert keep("pyyaml-6.0.2.tar.gz") and keep("PyYAML-6.0.2.tar.gz")
    assert not keep("PyYAML-6.0.1.tar.gz")
    # other projects, and names that do not parse, are pip's to judge
    assert keep("requests-2.0.0-py3-none-any.whl") and keep("numpy-latest.tar.gz")
    assert keep("numpy-1.0-bad.whl") and keep("numpy.exe")


def test_version_matching_is_pips(restrict):
    # zero padding, wildcards, pre-releases (pip decides those; the filter keeps them)
    keep = restrict("a==1.26", "b==1.26.*", "c>=1.0", "d~=2.1", "e!=1.5")
    assert keep("a-1.26.0.tar.gz") and not keep("a-1.26.1.tar.gz")
    assert keep("b-1.26.4.tar.gz") and not keep("b-1.27.0.tar.gz")
    assert keep("c-2.0rc1-py3-none-any.whl") and not keep("c-0.9-py3-none-any.whl")
    assert keep("d-2.5.tar.gz") and not keep("d-3.0.tar.gz") and not keep("d-2.0.tar.gz")
    assert keep("e-1.4.tar.gz") and not keep("e-1.5.tar.gz")


def test_lines_that_do_not_pin_leave_the_page_whole(restrict):
    keep = restrict("a==1.0", "a>=2",                        # conflicting: both kept
                    "b==1.0", "b",                           # one line without a specifier
                    "c==1.0 ; python_version < '3'",         # a line the target ignores
                    "d @ https://example.invalid/d-1.0.tar.gz",
                    constraints=["e==1.0"])                  # constraints are pip's
    assert keep("a-1.0.tar.gz") and keep("a-2.5.tar.gz") and not keep("a-1.5.tar.gz")
    assert keep("b-3.0.tar.gz") and keep("c-3.0.tar.gz") and keep("d-3.0.tar.gz")
    assert keep("e-3.0.tar.gz")


def test_the_target_link_parser_drops_what_no_requirement_allows(restrict):
    from lambda_compat.resolve.pip_patches import target_link_parser
    restrict("pkg==1.0")
    target = TARGETS[0]
    parse = target_link_parser(frozenset(str(t) for t in target.tags), parse_links)
    names = ["pkg-1.0-py3-none-any.whl", "pkg-2.0-py3-none-any.whl", "pkg-1.0.tar.gz",
             "pkg-2.0.tar.gz"]
    doc = {"meta": {"api-version": "1.1"}, "name": "pkg",
           "files": [{"filename": n, "url": f"https://f.invalid/{n}", "hashes": {}}
                     for n in names]}
    for content, ctype in ((json.dumps(doc).encode(), "application/vnd.pypi.simple.v1+json"),
                           (_html(names), "text/html")):
        page = IndexContent(content, ctype, encoding=None, url="https://index.invalid/pkg/",
                            cache_link_parsing=False)
        assert [x.filename for x in parse(page)] == ["pkg-1.0-py3-none-any.whl",
                                                     "pkg-1.0.tar.gz"]


@settings(max_examples=40, deadline=None)
@given(st.lists(wheel_names, max_size=10), st.sampled_from(TARGETS))
def test_a_narrowed_json_page_gives_the_links_the_whole_page_gives(names, target):
    """What pip's process gets from its download process (narrow_json_page) instead of the
    page: the same links, and no file the target cannot use."""
    from lambda_compat.resolve.pip_patches import target_link_parser
    names = list(dict.fromkeys(names)) + ["pkg-1.0.tar.gz", "pkg-2.0.tar.gz"]
    tags = frozenset(str(t) for t in target.tags)
    doc = {"meta": {"api-version": "1.1"}, "name": "pkg",
           "files": [{"filename": n, "url": f"https://files.invalid/{n}", "hashes": {}}
                     for n in names]}
    parser = target_link_parser(tags, lambda page: [])
    narrowed = json.loads(parser.narrow_json_page(json.dumps(doc).encode()))
    url = "https://index.invalid/simple/pkg/"
    assert [link.url for link in parser.json_page_links(narrowed, url)] == \
        [link.url for link in parser.json_page_links(doc, url)]
    assert [f["filename"] for f in narrowed["files"]] == [
        n for n in names if not n.endswith(".whl") or _pip_accepts(n, target)]
    assert narrowed["meta"] == doc["meta"] and narrowed["name"] == "pkg"
    assert parser.narrow_json_page(b'["not", "an object"]') == b'["not", "an object"]'
