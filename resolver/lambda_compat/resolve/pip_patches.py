"""The patches of pip's internals that make pip resolve and download *as if on the Lambda
target*; installed by :mod:`lambda_compat.resolve.pip_shim` in its own process only.

What it changes in pip, for that process only:

* marker evaluation: ``packaging.markers.default_environment`` (pip's vendored copy) returns
  the target's PEP 508 environment, so top-level *and* transitive markers are judged for the
  target (pip evaluates them against the running interpreter otherwise);
* wheel compatibility: ``TargetPython`` returns exactly the target's ordered tag list;
* Requires-Python: judged against the target's full version (``--python-version``), both
  from the index's data-requires-python and from each file's own metadata (pip's resolver
  turns a candidate's Requires-Python into a requirement once it has the metadata);
* pip's refusal to mix sdists with a foreign platform is lifted: sdists are resolved and
  handed to the builder, which builds them for the target and verifies the result; their
  metadata comes from :mod:`lambda_compat.resolve.source_metadata` (static PKG-INFO, the cache, or a
  build with the *target's* interpreter), never from pip's own interpreter;
* pip's local wheel cache is ignored (it holds wheels built for the host);
* files already in the content-addressed cache are reused (hash-verified by pip);
* index pages are handed to pip without the wheels the target cannot use and, for a project
  the user's requirements pin, without the files of versions no such requirement allows
  (:mod:`lambda_compat.resolve.pip_versions`): pip would evaluate and reject each of them;
* the files resolved from metadata alone (PEP 658) are downloaded on several connections at
  once (:data:`DOWNLOAD_THREADS`), not one after the other; index pages are requested ahead
  of the resolver, several at once (:mod:`lambda_compat.resolve.pip_prefetch`);
* TLS: the same trust as pip's, in a context whose anchors are loaded once per file
  (:mod:`lambda_compat.resolve.pip_tls`);
* gzip-encoded responses (the index's JSON pages: 24.6 MB for issue 15's ten pins) are
  inflated with zlib-ng where it is installed, the stdlib's zlib otherwise (same streams,
  same errors for pip, about half the CPU time).

Everything else is plain pip: index options, find-links, constraints, hashes, extras, local
paths, authentication and pip.conf, for every phase alike.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
from typing import Any, Callable, Dict

from lambda_compat.resolve import pip_tls, pip_versions

Emit = Callable[..., None]


_ANCHOR = re.compile(rb"<a\b[^>]*>.*?</a\s*>(?:\s*<br\s*/?>)?", re.IGNORECASE | re.DOTALL)
_HREF = re.compile(rb"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)


def _tag_filter(tags: frozenset) -> Callable[[str], bool]:
    """``fits(filename)``: False only for a wheel none of whose tags is in ``tags``."""
    from lambda_compat.resolve.pip_prefetch import tag_ranker
    rank = tag_ranker(dict.fromkeys(tags, 0))

    def fits(filename: str) -> bool:
        name = filename.lower()
        if "%" in name:
            name = urllib.parse.unquote(name)
        if not name.endswith(".whl"):
            return True
        parts = name[:-4].split("-")
        if len(parts) not in (5, 6):
            return True  # not a valid wheel name: let pip judge (and report) it
        return rank("-".join(parts[-3:])) is not None

    return fits


def prefilter_page(content: bytes, content_type: str, tags: frozenset) -> bytes:
    """An index page without the wheels the target cannot use.

    pip would evaluate and reject each of them anyway (their tags are not in the target's
    list); a project like numpy lists thousands, and turning each anchor into a Link and
    evaluating it is most of a cold resolution's CPU time. Everything that is not a wheel with
    unsupported tags (sdists, malformed names, anchors without href) is kept untouched.
    """
    fits = _tag_filter(tags)
    if content_type.lower().startswith("application/vnd.pypi.simple.v1+json"):
        data = json.loads(content)
        files = data.get("files")
        if isinstance(files, list):
            data["files"] = [f for f in files if not isinstance(f, dict)
                             or fits(str(f.get("filename", "")))]
        return json.dumps(data).encode("utf-8")

    def keep(match: "re.Match[bytes]") -> bytes:
        anchor = match.group(0)
        if b".whl" not in anchor:
            return anchor
        if anchor.lower().count(b"<a") > 1:
            return anchor  # an anchor left unclosed: not sure which href is whose
        href = _HREF.search(anchor)
        if href is None:
            return anchor
        url = (href.group(1) or href.group(2) or href.group(3) or b"").decode("utf-8", "replace")
        filename = url.split("#", 1)[0].split("?", 1)[0].rsplit("/", 1)[-1]
        return anchor if fits(filename) else b""

    return _ANCHOR.sub(keep, content)


def target_link_parser(tags: frozenset, original_parse: Callable[[Any], Any]
                       ) -> Callable[[Any], Any]:
    """pip's ``parse_links`` for a target: the page's links without the wheels the target
    cannot use (:func:`prefilter_page`). A JSON page is parsed once (by the prefetcher, when it
    fetched the page: :meth:`~lambda_compat.resolve.pip_prefetch.PagePrefetcher.take_parsed`),
    filtered and turned into links directly (pip would parse it again after the filter wrote
    it back), and remembered per URL when pip would remember it; an HTML page is filtered
    and handed to pip's parser."""
    import dataclasses

    parsed: Dict[str, list] = {}

    def json_page_links(data: Dict[str, Any], url: str) -> list:
        """The links of a parsed JSON page at ``url`` the target can use, as pip makes them
        (run by the prefetcher's threads too, while pip waits for files)."""
        from pip._internal.models.link import Link
        keep = target_file_filter()
        links = []
        for file in data.get("files", []):
            if keep(file):
                link = Link.from_json(file, url)
                if link is not None:
                    links.append(link)
        return links

    def target_file_filter() -> Callable[[Any], bool]:
        """``keep(file)`` for a JSON page's file entries: False for a file of a version the
        requirements rule out or a wheel none of whose tags is the target's; an entry that
        is not a mapping is kept (pip judges and reports it)."""
        fits = _tag_filter(tags)
        allowed = pip_versions.version_filter()

        def keep(file: Any) -> bool:
            if not isinstance(file, dict):
                return True
            filename = str(file.get("filename", ""))
            return allowed(filename) and fits(filename)  # the cheaper test first

        return keep

    def parse_target_links(page: Any) -> Any:
        if not page.content_type.lower().startswith("application/vnd.pypi.simple.v1+json"):
            allowed = pip_versions.version_filter()
            return (link for link in original_parse(dataclasses.replace(
                page, content=prefilter_page(page.content, page.content_type, tags)))
                if allowed(link.filename))
        remember = bool(getattr(page, "cache_link_parsing", False))
        if remember and page.url in parsed:
            return iter(parsed[page.url])
        from lambda_compat.resolve import pip_prefetch
        prefetcher = pip_prefetch.PREFETCHER
        data, links = (prefetcher.take_parsed(page.content, page.url) if prefetcher is not None
                       else (None, None))
        if data is None:
            try:
                data = json.loads(page.content)
            except ValueError:  # not JSON after all: pip reports it as it would
                return original_parse(page)
        if not isinstance(data, dict):
            return original_parse(page)
        if links is None:
            links = json_page_links(data, page.url)
        if remember:
            parsed[page.url] = links
        return iter(links)

    def narrow_json_page(content: bytes) -> bytes:
        """A JSON page without the files :func:`json_page_links` drops (the target's tags,
        the versions the requirements allow): what the prefetcher's download process
        (:mod:`lambda_compat.resolve.pip_downloader`) hands pip's process instead of the
        page, so that the large parse happens there. Not a JSON object: as it is."""
        data = json.loads(content)
        files = data.get("files") if isinstance(data, dict) else None
        if not isinstance(files, list):
            return content
        data["files"] = list(filter(target_file_filter(), files))
        return json.dumps(data).encode("utf-8")

    # the prefetcher makes a JSON page's links as soon as it has the page (pip_prefetch)
    parse_target_links.json_page_links = json_page_links  # type: ignore[attr-defined]
    parse_target_links.narrow_json_page = narrow_json_page  # type: ignore[attr-defined]
    return parse_target_links


def install_patches(spec: Dict[str, Any], state: Dict[str, Any], emit: Emit) -> None:
    """Patch pip for the target in ``spec``; what pip meets on the way goes into ``state``
    (fetch_failures, not_found, cache_hits, preparing, sources, metadata_failure)."""
    # pip's modules are imported before any patch, in this order, as they always were
    from pip._internal.cli import cmdoptions  # noqa: F401
    from pip._internal.models.target_python import TargetPython  # noqa: F401
    from pip._internal.operations import prepare  # noqa: F401
    from pip._internal import cache as pip_cache  # noqa: F401
    from pip._internal.index import collector  # noqa: F401
    from pip._internal.resolution.resolvelib import factory  # noqa: F401
    from pip._vendor.packaging import markers  # noqa: F401
    from pip._vendor.packaging.tags import Tag  # noqa: F401

    _patch_target(spec)
    _patch_caches(spec, state)
    _patch_parallel_downloads()
    pip_tls.patch_tls_context()
    _patch_saved_as_link()
    _patch_gzip_inflater()
    from lambda_compat.resolve import pip_hashes, pip_prefetch
    pip_hashes.install()
    pip_prefetch.install(spec, emit)
    _patch_reporting(state)
    # Binary first: sources only for the projects the caller allows (it decides from the
    # project's files whether a build can help), so pip never builds a big sdist just to
    # read its metadata when the project's wheels are merely too new for the target.
    if spec.get("binary_only"):
        _patch_binary_only(spec)
    _install_source_metadata(spec, state, emit)


#: Concurrent downloads of the resolved files (uv's default is 50; pip makes one at a time).
DOWNLOAD_THREADS = 6


def _patch_parallel_downloads() -> None:
    """pip resolves from PEP 658 metadata, then fetches every resolved file through
    ``Downloader.batch``, one by one; this runs the same per-file download (pip's own:
    resumes, retries, its session and cache) on a thread pool and yields each file as it
    completes. The first failure is raised once the others have stopped."""
    from concurrent.futures import ThreadPoolExecutor, as_completed
    from pip._internal.network import download

    sequential = download.Downloader.batch

    def batch(self: Any, links: Any, location: str) -> Any:
        links = list(links)
        if len(links) < 2:
            yield from sequential(self, links, location)
            return
        with ThreadPoolExecutor(max_workers=min(DOWNLOAD_THREADS, len(links)),
                                thread_name_prefix="lc-download") as pool:
            futures = {pool.submit(self, link, location): link for link in links}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:
                for future in futures:
                    future.cancel()

    download.Downloader.batch = batch  # type: ignore[method-assign]


class _LinkingShutil:
    """``shutil`` for pip's ``operations.prepare``, whose one use of it copies a fetched file
    into the download directory: a hard link there instead (a copy where links fail), so
    the file the parent stores and hashes while pip resolves (``build/early.py``) and the
    one pip saves are one file, hashed once."""

    def __getattr__(self, name: str) -> Any:
        return getattr(shutil, name)

    @staticmethod
    def copy(src: str, dst: str, **kwargs: Any) -> str:
        try:
            os.link(src, dst)
            return dst
        except OSError:
            return shutil.copy(src, dst, **kwargs)


class _ZlibNg:
    """The part of ``zlib`` that urllib3's content decoders use, from zlib-ng: ``error``
    covers both libraries' errors (``except zlib.error`` takes the tuple)."""

    def __init__(self, zlib_ng: Any, zlib: Any) -> None:
        self.decompressobj = zlib_ng.decompressobj
        self.MAX_WBITS = zlib_ng.MAX_WBITS
        self.error = (zlib.error, zlib_ng.error)


def _patch_gzip_inflater() -> None:
    """pip's urllib3 inflates gzip/deflate bodies with zlib-ng instead of the stdlib's zlib
    (the decompressed bytes are the same; a cold resolution of issue 15's pins inflates
    24.6 MB of index pages, 0.11 s of CPU with zlib, 0.06 s with zlib-ng, measured)."""
    try:
        from zlib_ng import zlib_ng
        from pip._vendor.urllib3 import response
    except ImportError:
        return
    import zlib
    if getattr(response, "zlib", None) is not zlib:
        return  # another urllib3 layout, or patched already
    response.zlib = _ZlibNg(zlib_ng, zlib)  # type: ignore[assignment]
    base = response.BaseHTTPResponse
    base.DECODER_ERROR_CLASSES = base.DECODER_ERROR_CLASSES + (zlib_ng.error,)  # type: ignore[operator]


def _patch_saved_as_link() -> None:
    from pip._internal.operations import prepare
    if getattr(prepare, "shutil", None) is shutil:
        prepare.shutil = _LinkingShutil()  # type: ignore[assignment]


def _patch_target(spec: Dict[str, Any]) -> None:
    """Markers, tags and index pages judged for the target, not the running interpreter."""
    from pip._internal.cli import cmdoptions
    from pip._internal.models.target_python import TargetPython
    from pip._vendor.packaging import markers
    from pip._vendor.packaging.tags import Tag

    environment = dict(spec["marker_environment"])

    def target_environment() -> dict[str, str]:
        return dict(environment)

    markers.default_environment = target_environment  # type: ignore[assignment]

    tags = [Tag(*t.split("-")) for t in spec["tags"]]
    tag_set = set(tags)
    TargetPython.get_sorted_tags = lambda self: list(tags)  # type: ignore[method-assign]
    TargetPython.get_unsorted_tags = lambda self: set(tag_set)  # type: ignore[method-assign]

    cmdoptions.check_dist_restriction = lambda options, check_target=False: None

    # The finder sees index pages without the wheels the target cannot use (see
    # prefilter_page); diagnosis (_all_links) still reads the whole page.
    from pip._internal.index import package_finder

    package_finder.parse_links = target_link_parser(frozenset(str(t) for t in tags),  # type: ignore[assignment]
                                                    package_finder.parse_links)


def _patch_caches(spec: Dict[str, Any], state: Dict[str, Any]) -> None:
    """pip's wheel cache never used; files of the content-addressed cache reused."""
    from pip._internal import cache as pip_cache
    from pip._internal.operations import prepare

    # pip's wheel cache holds wheels built for the host; never substitute them.
    pip_cache.WheelCache.get_cache_entry = lambda self, *a, **k: None  # type: ignore
    pip_cache.WheelCache.get = lambda self, link, *a, **k: link  # type: ignore

    cas_dir = spec.get("cas_dir")
    original_check = prepare._check_download_dir

    def check_download_dir(link: Any, download_dir: str, hashes: Any, *args: Any,
                           **kwargs: Any) -> Any:
        # Reuse a file from the content-addressed cache when the index names its sha256.
        target = os.path.join(download_dir, link.filename)
        if cas_dir and link.hash_name == "sha256" and link.hash and not os.path.exists(target):
            cached = os.path.join(cas_dir, link.hash[:2], link.hash, link.filename)
            if os.path.exists(cached):
                try:
                    os.link(cached, target)
                except OSError:
                    shutil.copyfile(cached, target)
                state["cache_hits"].append(link.filename)
        if not (link.hash_name and link.hash) and not hashes:
            # Nothing proves that a same-named file from earlier is this one: fetch again.
            if os.path.exists(target):
                os.unlink(target)
            return None
        return original_check(link, download_dir, hashes, *args, **kwargs)

    prepare._check_download_dir = check_download_dir


def _patch_reporting(state: Dict[str, Any]) -> None:
    """Unreachable index pages, unsatisfiable requirements and what pip is preparing, kept
    in ``state`` as data for the result."""
    from pip._internal.index import collector
    from pip._internal.operations import prepare
    from pip._internal.resolution.resolvelib import factory

    original_fail = collector._handle_get_simple_fail

    def handle_fail(link: Any, reason: Any, meth: Any = None) -> None:
        # A 404 on a project page means "no such project here", not "index unreachable".
        if not re.search(r"\b(404|410)\b", str(reason)):
            state["fetch_failures"].append({"url": str(link), "reason": str(reason)})
        original_fail(link, reason, meth)

    collector._handle_get_simple_fail = handle_fail

    original_report = factory.Factory._report_single_requirement_conflict

    def report_conflict(self: Any, req: Any, parent: Any) -> Any:
        state["not_found"].append(
            {"project": req.project_name, "requirement": str(req),
             "parent": getattr(parent, "name", None)}
        )
        return original_report(self, req, parent)

    factory.Factory._report_single_requirement_conflict = report_conflict  # type: ignore[method-assign]

    # Remember what pip is preparing: a build failure names no distribution in its type.
    original_prepare = prepare.RequirementPreparer.prepare_linked_requirement

    def prepare_linked(self: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        link = getattr(req, "link", None)
        state["preparing"] = {"name": req.name, "requirement": str(req.req or req.name),
                              "is_wheel": bool(link and link.is_wheel),
                              "filename": getattr(link, "filename", None)}
        return original_prepare(self, req, *args, **kwargs)

    prepare.RequirementPreparer.prepare_linked_requirement = prepare_linked  # type: ignore[method-assign]


def _patch_binary_only(spec: Dict[str, Any]) -> None:
    """Wheels only, except for the projects in ``spec["allow_source"]``."""
    from pip._internal.models.format_control import FormatControl
    from pip._vendor.packaging.utils import canonicalize_name

    allow = {canonicalize_name(n) for n in spec.get("allow_source", [])}
    original_allowed = FormatControl.get_allowed_formats

    def allowed_formats(self: Any, canonical_name: str) -> frozenset:
        result = set(original_allowed(self, canonical_name))
        if canonicalize_name(canonical_name) not in allow:
            result.discard("source")
        return frozenset(result)

    FormatControl.get_allowed_formats = allowed_formats  # type: ignore[method-assign]


def _install_source_metadata(spec: Dict[str, Any], state: Dict[str, Any],
                             emit: Emit) -> None:
    """An sdist's metadata comes from :mod:`lambda_compat.resolve.source_metadata` (PKG-INFO when
    static, the cache, or a build with the *target's* interpreter), never from a build with
    the interpreter pip runs on. Local directories keep pip's own path."""
    source = spec.get("source_build")
    if not source:
        return
    from pathlib import Path

    from pip._internal.distributions import sdist
    from pip._internal.exceptions import MetadataGenerationFailed

    from lambda_compat.resolve import pip_sandbox

    from lambda_compat.resolve import source_metadata
    from lambda_compat.errors import BuildSandboxUnavailable

    original = sdist.SourceDistribution.prepare_distribution_metadata
    workdir = Path(spec["result_path"]).parent / "metadata"

    def prepare(self: Any, *args: Any, **kwargs: Any) -> None:
        req = self.req
        path = getattr(req, "local_file_path", None)
        if not path or req.editable or req.link is None or req.link.is_existing_dir():
            return original(self, *args, **kwargs)
        link = req.link
        sha = link.hash if link.hash_name == "sha256" else None
        try:
            out = source_metadata.prepare(Path(path), source,
                                          workdir / str(len(state["sources"])), emit,
                                          sha256=sha)
        except BuildSandboxUnavailable as exc:   # reported as the resolution's refusal
            state["preparing"] = {"filename": os.path.basename(path)}
            raise pip_sandbox.SandboxRefused(str(exc)) from exc
        state["sources"][os.path.basename(path)] = {
            "source": out.source, "reason_code": out.reason_code, "message": out.message,
            "attempts": [a.to_json() for a in out.attempts]}
        if out.metadata_dir is None:
            state["metadata_failure"] = {"reason_code": out.reason_code,
                                         "message": out.message}
            raise MetadataGenerationFailed(package_details=req.name or os.path.basename(path))
        req.metadata_directory = str(out.metadata_dir)
        if not req.name:
            req._set_requirement()
        else:
            req.warn_on_mismatching_name()
        req.assert_source_matches_version()

    sdist.SourceDistribution.prepare_distribution_metadata = prepare  # type: ignore[method-assign]
