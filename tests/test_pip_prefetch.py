"""Index pages and the likely files fetched ahead of pip's resolver (resolve/pip_prefetch.py):
the guess, the hand-over, and a resolution over a loopback JSON index (PEP 691) that must
give exactly pip's answer while fetching several pages at once and no file twice."""

from __future__ import annotations

import hashlib
import html.parser
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pip._vendor.packaging.specifiers import SpecifierSet

from conftest import INDEX, write_reqs
from lambda_compat.registry.runtimes import get_target
from lambda_compat.resolve import pip_prefetch
from lambda_compat.resolve.engine import PipOptions, resolve

TAGS = ["cp311-cp311-manylinux_2_26_aarch64", "cp311-cp311-manylinux_2_17_aarch64",
        "cp311-abi3-manylinux_2_17_aarch64", "py3-none-any"]
RANK = {t: i for i, t in enumerate(TAGS)}


def _file(name, **kw):
    base = {"filename": name, "url": f"https://files.example/{name}",
            "hashes": {"sha256": "ab" * 32}, "size": 1000, "yanked": False}
    base.update(kw)
    return base


def test_the_guess_is_the_newest_allowed_wheel_with_the_best_tag():
    files = [_file("p-1.0-py3-none-any.whl"),
             _file("p-1.1-cp311-cp311-manylinux_2_17_aarch64.whl"),
             _file("p-1.1-py3-none-any.whl"),
             _file("p-1.1.tar.gz"),
             _file("p-2.0-cp311-cp311-manylinux_2_28_aarch64.whl"),      # tag not the target's
             _file("p-1.2-py3-none-any.whl", yanked="broken"),           # yanked
             _file("p-1.3-py3-none-any.whl", **{"requires-python": ">=3.12"}),
             _file("p-1.4rc1-py3-none-any.whl"),                          # a pre-release
             _file("p-9!x-py3-none-any.whl"),                             # not a version
             _file("p-9.0-py3-none.whl")]                                 # not a wheel name
    best = pip_prefetch.best_file_url(files, SpecifierSet(">=1.0"), RANK, "3.11.9")
    # 1.1 with the target's more preferred tag (manylinux over py3-none-any)
    assert best == "https://files.example/p-1.1-cp311-cp311-manylinux_2_17_aarch64.whl"
    assert pip_prefetch.best_file_url(files, SpecifierSet("==1.0"), RANK, "3.11.9") == \
        "https://files.example/p-1.0-py3-none-any.whl"
    assert pip_prefetch.best_file_url(files, SpecifierSet(">=3"), RANK, "3.11.9") is None


def test_the_guess_takes_the_metadata_file_when_the_index_has_one_and_skips_big_or_cached():
    files = [_file("p-1.0-py3-none-any.whl", **{"core-metadata": {"sha256": "cd" * 32}})]
    assert pip_prefetch.best_file_url(files, SpecifierSet(), RANK, "3.11.9") == \
        "https://files.example/p-1.0-py3-none-any.whl.metadata"
    big = [_file("p-1.0-py3-none-any.whl", size=pip_prefetch.MAX_GUESS_BYTES + 1)]
    assert pip_prefetch.best_file_url(big, SpecifierSet(), RANK, "3.11.9") is None


def test_the_guess_skips_a_file_the_content_addressed_cache_has(tmp_path):
    files = [_file("p-1.0-py3-none-any.whl")]
    cached = tmp_path / "ab" / ("ab" * 32) / "p-1.0-py3-none-any.whl"
    assert pip_prefetch.best_file_url(files, SpecifierSet(), RANK, "3.11", str(tmp_path))
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert pip_prefetch.best_file_url(files, SpecifierSet(), RANK, "3.11", str(tmp_path)) \
        is None


class _Scope:
    def get_index_urls_locations(self, project):
        return [f"https://index.example/simple/{project}/", f"file:///local/{project}/"]


class _Finder:
    search_scope = _Scope()


def test_a_prefetched_page_is_handed_over_once_and_a_failed_one_is_fetched_by_pip():
    calls = []

    def fetch(url, session, force_revalidate=False):
        calls.append(url)
        if "broken" in url:
            raise OSError("no route")
        return f"response for {url}"

    prefetcher = pip_prefetch.PagePrefetcher(fetch)
    prefetcher.start(_Finder(), session=object())
    prefetcher.want([("Some_Project", None), ("broken", None), ("<Python from Requires-Python>",
                                                                 None)])
    assert prefetcher.take("https://index.example/simple/some-project/") == \
        "response for https://index.example/simple/some-project/"
    # once: pip has the page now, and it is never prefetched again
    assert prefetcher.take("https://index.example/simple/some-project/") is None
    prefetcher.want([("some-project", None)])
    assert prefetcher.take("https://index.example/simple/broken/") is None
    prefetcher.close()
    # only http(s) pages, each once; no file:// page, no pseudo-requirement
    assert sorted(calls) == ["https://index.example/simple/broken/",
                             "https://index.example/simple/some-project/"]


def test_a_json_page_is_parsed_once_and_pip_gets_that_parse_for_that_very_content():
    """The prefetcher parses a JSON page to guess the wheel, and makes the target's links
    from it (the work pip's link parser would do); pip's parser takes both (once, for the
    same bytes object, the links only for the same URL) instead of parsing the page again."""
    from pip._internal.models.link import Link  # noqa: F401  (pip's modules, as the shim)

    from lambda_compat.resolve import pip_patches

    files = [_file("p-1.0-py3-none-any.whl"), _file("p-1.0-cp311-cp311-win_amd64.whl")]
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "p", "files": files}).encode()
    page_url = "https://index.example/simple/p/"

    class Response:
        headers = {"Content-Type": "application/vnd.pypi.simple.v1+json"}
        content = body
        url = page_url

    parse = pip_patches.target_link_parser(frozenset(TAGS), lambda page: iter(()))
    made = []

    def links_for(data, url):
        made.append(parse.json_page_links(data, url))
        return made[-1]

    prefetcher = pip_prefetch.PagePrefetcher(lambda url, session, **kw: Response(),
                                             tags=TAGS, python_version="3.11.9",
                                             links_for=links_for)
    prefetcher.start(_Finder(), session=object())
    prefetcher._get_file = lambda url: ("/nonexistent", "")  # no download in this test
    prefetcher.want([("p", SpecifierSet("==1.0"))])
    assert isinstance(prefetcher.take("https://index.example/simple/p/"), Response)
    # equal bytes, another object: nothing
    assert prefetcher.take_parsed(body[:1] + body[1:], page_url) == (None, None)
    parsed, links = prefetcher.take_parsed(body, page_url)
    assert parsed["files"] == files
    assert links is made[0]                                         # made once, handed over
    # the win_amd64 wheel is not the target's: filtered out
    assert [link.filename for link in links] == ["p-1.0-py3-none-any.whl"]
    assert links[0].comes_from == page_url
    assert prefetcher.take_parsed(body, page_url) == (None, None)  # handed over once

    # pip's parser takes the prefetcher's parse and links: a page whose bytes are not JSON
    # at all still gives the links when the prefetcher parsed "it" (same object) before;
    # links made for another URL are not taken (pip's links name the page they come from)
    class Page:
        content_type = "application/vnd.pypi.simple.v1+json"
        url = page_url
        cache_link_parsing = False
        content = b"not json"

    saved, pip_prefetch.PREFETCHER = pip_prefetch.PREFETCHER, prefetcher
    try:
        prefetcher._parsed[id(Page.content)] = (Page.content, parsed, page_url, made[0])
        assert list(parse(Page)) == made[0]
        prefetcher._parsed[id(Page.content)] = (Page.content, parsed, page_url + "x", made[0])
        rebuilt = list(parse(Page))
        assert [link.filename for link in rebuilt] == ["p-1.0-py3-none-any.whl"]
        assert rebuilt[0] is not made[0][0]
    finally:
        pip_prefetch.PREFETCHER = saved
        prefetcher.close()


def test_the_dependencies_of_a_guessed_wheel_are_requested_for_the_target(tmp_path):
    """A wheel fetched on a guess names its dependencies: their pages are requested at once,
    with the markers judged for the target (arm64, Python 3.11, no extra)."""
    import zipfile
    wheel = tmp_path / "p-1.0-py3-none-any.whl"
    metadata = "\n".join([
        "Metadata-Version: 2.1", "Name: p", "Version: 1.0",
        "Requires-Dist: cffi>=1.12",
        "Requires-Dist: greenlet!=0.4.17; platform_machine == 'aarch64'",
        "Requires-Dist: pywin32; sys_platform == 'win32'",
        "Requires-Dist: zoneinfo-backport; python_version < '3.9'",
        "Requires-Dist: pytest; extra == 'test'",
        "Requires-Dist: not a requirement !!",
        "", "description"])
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("p/__init__.py", "")
        z.writestr("p-1.0.dist-info/METADATA", metadata)
        z.writestr("vendored/q-2.0.dist-info/METADATA", "Name: q\nRequires-Dist: nope\n")
    environment = get_target("python3.11", "arm64").marker_environment()
    wanted = []
    prefetcher = pip_prefetch.PagePrefetcher(lambda *a, **k: None, environment=environment)
    prefetcher.want = lambda pairs: wanted.extend((n, str(s)) for n, s in pairs)
    prefetcher._want_dependencies(str(wheel))
    assert wanted == [("cffi", ">=1.12"), ("greenlet", "!=0.4.17")]
    # a metadata file (PEP 658) the same way
    (tmp_path / "p.metadata").write_text(metadata)
    wanted.clear()
    prefetcher._want_dependencies(str(tmp_path / "p.metadata"))
    assert wanted == [("cffi", ">=1.12"), ("greenlet", "!=0.4.17")]
    # no target environment given: nothing is guessed
    wanted.clear()
    pip_prefetch.PagePrefetcher(lambda *a, **k: None)._want_dependencies(str(wheel))
    assert wanted == []


# -- a real resolution over a loopback PEP 691 index ---------------------------------------

class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs))


def _json_index():
    """project -> PEP 691 files (no metadata files: pip downloads the wheels to resolve)."""
    pages = {}
    for page in sorted((INDEX / "simple").glob("*/index.html")):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        files = []
        for a in parser.links:
            name = a["href"].split("#")[0].rsplit("/", 1)[-1]
            data = (INDEX / "files" / name).read_bytes()
            files.append({"filename": name, "url": f"/files/{name}",
                          "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                          "requires-python": a.get("data-requires-python"),
                          "size": len(data), "yanked": False})
        pages[page.parent.name] = files
    return pages


class _Index(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pages = _json_index()
        self.delay = delay
        self.lock = threading.Lock()
        self.requests = []
        self.in_flight = 0
        self.most_in_flight = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append(self.path)
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
        try:
            time.sleep(server.delay)
            parts = self.path.strip("/").split("/")
            if parts[0] == "simple" and len(parts) == 2 and parts[1] in server.pages:
                base = f"http://127.0.0.1:{server.server_address[1]}"
                files = [dict(f, url=base + f["url"]) for f in server.pages[parts[1]]]
                body = json.dumps({"meta": {"api-version": "1.0"}, "name": parts[1],
                                   "files": files}).encode()
                kind = "application/vnd.pypi.simple.v1+json"
            elif parts[0] == "files" and (INDEX / "files" / parts[-1]).is_file():
                body, kind = (INDEX / "files" / parts[-1]).read_bytes(), "binary/octet-stream"
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with server.lock:
                server.in_flight -= 1


@pytest.fixture
def json_index():
    server = _Index(delay=0.15)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _answer(resolution):
    return sorted((i.name, i.version, i.path.name if i.path else None)
                  for i in resolution.items)


def test_resolution_over_http_is_pips_answer_with_pages_fetched_together(tmp_path, json_index):
    target = get_target("python3.11", "arm64")
    reqs = write_reqs(tmp_path, "lc-markers[fancy]\nlc-glibc\nlc-native\nlc-rp-trap\n"
                                "lc-abi3\nlc-pure==1.0\n")
    port = json_index.server_address[1]
    over_http = resolve(target, reqs, workdir=tmp_path / "http", cas_dir=None,
                        pip=PipOptions(index_url=f"http://127.0.0.1:{port}/simple",
                                       isolated=True, retries=0, timeout=10))
    from_files = resolve(target, reqs, workdir=tmp_path / "file", cas_dir=None,
                         pip=PipOptions(index_url=(INDEX / "simple").as_uri(), isolated=True,
                                        retries=0, timeout=10))
    assert over_http.ok and from_files.ok
    assert _answer(over_http) == _answer(from_files)
    assert ("lc-glibc", "1.0") in {(n, v) for n, v, _ in _answer(over_http)}  # glibc 2.26
    assert ("lc-rp-trap", "1.0") in {(n, v) for n, v, _ in _answer(over_http)}
    files = [p for p in json_index.requests if p.startswith("/files/")]
    # every file pip used was fetched once: the prefetched copy was taken, not fetched again
    assert len(files) == len(set(files)), files
    assert {f"/files/{name}" for _, _, name in _answer(over_http)} <= set(files)
    # the top-level pages were requested together, not one round trip after the other
    assert json_index.most_in_flight >= 3, json_index.requests


# -- wheels judged while pip resolves (build/early.py) ---------------------------------------

def test_early_wheels_store_under_the_files_own_sha_and_judge_as_phase_two(tmp_path):
    from lambda_compat.build.early import EarlyWheels, verified_findings
    from lambda_compat.verify.wheels import read_wheel
    from lambda_compat.resolve.sdist_build import file_sha256
    target = get_target("python3.11", "arm64")
    wheel = INDEX / "files" / "lc_native-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    if not wheel.exists():
        wheel = next((INDEX / "files").glob("lc_native-1.0-cp311-*aarch64*.whl"))
    pip_copy = tmp_path / "pip-tmp" / wheel.name
    pip_copy.parent.mkdir()
    pip_copy.write_bytes(wheel.read_bytes())
    cache = tmp_path / "cache"
    early = EarlyWheels(cache, target, jobs=2)
    early.offer({"path": str(pip_copy), "sha256": "00" * 32})     # a wrong announcement
    early.offer({"path": str(tmp_path / "x.tar.gz"), "sha256": "11" * 32})  # not a wheel
    pip_copy.unlink()  # pip exits and removes its copy: the linked one stays
    assert early.finish() == 1
    sha = file_sha256(wheel)
    kept = cache / "files" / sha[:2] / sha / wheel.name
    assert kept.is_file() and not (cache / "files" / "00").exists()
    assert list((cache / "files" / ".incoming").iterdir()) == []
    # the findings phase 2 reads are the ones judged early (a cache hit, same call)
    assert list((cache / "verified").rglob(f"{sha}-*.json"))
    again = verified_findings(kept, read_wheel(kept), sha, cache, target)
    fresh = verified_findings(kept, read_wheel(kept), sha, tmp_path / "other", target)
    assert again == fresh


def test_early_wheels_judge_the_largest_waiting_first(tmp_path, monkeypatch):
    """Unpacking is most of the work: a large wheel waiting behind small ones would be the
    run's tail, so each free worker takes the largest wheel waiting."""
    import threading
    from lambda_compat.build import early as early_mod
    judged, busy, release = [], threading.Event(), threading.Event()

    def judge(self, staged):
        judged.append(staged.name.split("-", 1)[1])
        if len(judged) == 1:
            busy.set()
            release.wait(10)              # the one worker is busy while the others arrive
        staged.unlink()

    monkeypatch.setattr(early_mod.EarlyWheels, "_judge", judge)
    early = early_mod.EarlyWheels(tmp_path / "cache", get_target("python3.11", "x86_64"),
                                  jobs=1)
    pip_dir = tmp_path / "pip-tmp"
    pip_dir.mkdir()
    for name, size in [("first", 10), ("small", 100), ("large", 100_000), ("middle", 5_000)]:
        path = pip_dir / f"{name}-1.0-py3-none-any.whl"
        path.write_bytes(b"x" * size)
        early.offer({"path": str(path), "sha256": name})
        if name == "first":
            assert busy.wait(10)
    release.set()
    assert early.finish() == 4
    assert [j.split("-")[0] for j in judged] == ["first", "large", "middle", "small"]


def test_a_build_over_http_judges_the_wheels_while_pip_resolves(tmp_path, json_index):
    from lambda_compat.build.builder import BuildConfig, build_dependencies
    from lambda_compat.ui import RecordingUI
    port = json_index.server_address[1]
    reqs = write_reqs(tmp_path, "lc-markers[fancy]\nlc-glibc\nlc-native\nlc-abi3\n")
    ui = RecordingUI()
    over_http = build_dependencies(
        tmp_path / "out", reqs, "python3.11", architecture="arm64", ui=ui,
        config=BuildConfig(cache_dir=tmp_path / "cache", build_env="local",
                           pip=PipOptions(index_url=f"http://127.0.0.1:{port}/simple",
                                          isolated=True, retries=0, timeout=10)))
    names = ui.names()
    assert "pip-file-ready" not in names  # taken by the builder, not passed on as progress
    assert "pip-downloader" in names  # pip's process forked its download process
    early = [i for i, n in enumerate(names) if n == "wheel-judged-early"]
    # judged while pip resolved (before pip says it has), each wheel pip downloaded
    assert early and min(early) < names.index("pip-resolved"), names
    wheels = [d for d in over_http.distributions if d.phase == "wheel"]
    assert len(early) >= len(wheels)
    # and installed into the bundle's staging directory as they were judged
    done = next(data for kind, data in ui.events if kind == "install-done")
    assert done["early"] == len(wheels) == done["count"], done
    # a cold cache: no file came from an earlier run, though pip met this run's in the cache
    resolved = next(data for kind, data in ui.events if kind == "resolved")
    assert resolved["cache_hits"] == 0, resolved
    # resolved afresh over that cache (no resolution reused): every wheel is found there
    again = RecordingUI()
    build_dependencies(
        tmp_path / "out3", reqs, "python3.11", architecture="arm64", ui=again,
        config=BuildConfig(cache_dir=tmp_path / "cache", build_env="local", resolution_ttl=0,
                           pip=PipOptions(index_url=f"http://127.0.0.1:{port}/simple",
                                          isolated=True, retries=0, timeout=10)))
    resolved = next(data for kind, data in again.events if kind == "resolved")
    assert resolved["cache_hits"] == len(wheels), resolved
    from_files = build_dependencies(
        tmp_path / "out2", reqs, "python3.11", architecture="arm64",
        config=BuildConfig(cache_dir=tmp_path / "cache2", build_env="local",
                           pip=PipOptions(index_url=(INDEX / "simple").as_uri(),
                                          isolated=True, retries=0, timeout=10)))
    assert [(d.name, d.version, d.phase, d.file, [f.code for f in d.findings])
            for d in sorted(over_http.distributions, key=lambda d: d.name)] == \
        [(d.name, d.version, d.phase, d.file, [f.code for f in d.findings])
         for d in sorted(from_files.distributions, key=lambda d: d.name)]
    assert len(_bundle(tmp_path / "out")) > 8
    assert _bundle(tmp_path / "out") == _bundle(tmp_path / "out2")


def _bundle(root):
    """relative path -> bytes, without lambda-compat's own output marker."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".lambda-compat")}


def test_pips_saved_download_is_a_hard_link_of_the_fetched_file(tmp_path):
    """pip_patches._LinkingShutil: pip's one copy in operations.prepare (fetched file ->
    download directory) becomes a hard link; where a link cannot be made, a copy."""
    import os

    from lambda_compat.resolve import pip_patches
    src = tmp_path / "p-1.0-py3-none-any.whl"
    src.write_bytes(b"wheel")
    linking = pip_patches._LinkingShutil()
    dest = tmp_path / "downloads"
    dest.mkdir()
    linking.copy(str(src), str(dest / src.name))
    assert os.stat(dest / src.name).st_ino == os.stat(src).st_ino
    # a directory as destination cannot be linked to: copied into it, as shutil.copy does
    (tmp_path / "other").mkdir()
    linking.copy(str(src), str(tmp_path / "other"))
    copied = tmp_path / "other" / src.name
    assert copied.read_bytes() == b"wheel" and os.stat(copied).st_ino != os.stat(src).st_ino
    assert linking.rmtree is __import__("shutil").rmtree  # everything else is shutil's


def test_a_wheel_fetched_on_a_guess_is_announced_only_when_its_sha256_is_the_pages():
    """The parent stores and judges a guessed wheel while pip resolves (file-ready), but only
    a download whose sha256 is the one the page gave; its metadata file is never announced."""
    import hashlib
    import os

    body = b"PK not really a wheel"

    class Response:
        headers = {"Content-Type": "binary/octet-stream"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def raise_for_status(self):
            pass

        def iter_content(self, chunk_size):
            yield body[:5]
            yield body[5:]

    class Session:
        def get(self, url, stream):
            return Response()

    events = []
    prefetcher = pip_prefetch.PagePrefetcher(lambda *a, **k: None,
                                             emit=lambda name, **kw: events.append((name, kw)))
    prefetcher.start(_Finder(), session=Session())
    good = hashlib.sha256(body).hexdigest()
    path, _ = prefetcher._get_file("https://files.example/p-1.0-py3-none-any.whl",
                                   (good, "p-1.0-py3-none-any.whl"))
    assert events == [("file-ready", {"path": path, "sha256": good,
                                      "filename": "p-1.0-py3-none-any.whl"})]
    assert open(path, "rb").read() == body
    prefetcher._get_file("https://files.example/q-1.0-py3-none-any.whl",
                         ("0" * 64, "q-1.0-py3-none-any.whl"))       # not the page's content
    prefetcher._get_file("https://files.example/p-1.0-py3-none-any.whl.metadata", None)
    assert len(events) == 1
    prefetcher.close()
    assert not os.path.exists(path)  # what pip did not take goes with the prefetch directory


def test_a_big_guessed_wheel_names_its_dependencies_before_its_download_ends():
    """No metadata file on the index: the guessed wheel (>= 1 MiB) has its METADATA read from
    its last bytes (range requests), and its dependencies' pages are requested while the
    whole file is still downloading."""
    import io
    import os
    import threading
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("p/big.so", os.urandom(pip_prefetch.LAZY_METADATA_BYTES))
        z.writestr("p-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: p\nVersion: 1.0\n"
                   "Requires-Dist: greenlet!=0.4.17; platform_machine == 'aarch64'\n"
                   "Requires-Dist: pywin32; sys_platform == 'win32'\n\n")
    wheel = out.getvalue()
    files = [_file("p-1.0-py3-none-any.whl", size=len(wheel))]
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "p", "files": files}).encode()

    class Response:
        status_code = 206

        def __init__(self, content=body, headers=None):
            self.content = content
            self.headers = headers or {"Content-Type": "application/vnd.pypi.simple.v1+json"}
            self.url = "https://index.example/simple/p/"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Session:
        def get(self, url, headers, stream):
            start, end = map(int, headers["Range"][len("bytes="):].split("-"))
            return Response(wheel[start:end + 1],
                            {"Content-Range": f"bytes {start}-{end}/{len(wheel)}"})

    environment = get_target("python3.11", "arm64").marker_environment()
    prefetcher = pip_prefetch.PagePrefetcher(lambda url, session, **kw: Response(),
                                             tags=TAGS, python_version="3.11.9",
                                             environment=environment)
    prefetcher.start(_Finder(), session=Session())
    downloading, release = threading.Event(), threading.Event()

    def slow_download(url, wheel=None):
        downloading.set()
        release.wait(10)
        return "/nonexistent", ""
    prefetcher._get_file = slow_download
    wanted = []
    real_want = prefetcher.want

    def want(pairs):
        pairs = list(pairs)
        wanted.extend(name for name, _ in pairs)
        real_want(pairs)
    prefetcher.want = want
    try:
        prefetcher.want([("p", SpecifierSet("==1.0"))])
        assert downloading.wait(10)
        for _ in range(200):
            if "greenlet" in wanted:
                break
            threading.Event().wait(0.05)
        assert wanted == ["p", "greenlet"]     # pywin32 is not the target's
        assert not release.is_set()            # the whole file was still downloading
    finally:
        release.set()
        prefetcher.close()
