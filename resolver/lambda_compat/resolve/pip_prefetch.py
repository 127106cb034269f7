"""Fetch the index pages pip is about to ask for, several at once (pip's process only).

pip's resolver learns a candidate's dependencies and then, one project after the other,
fetches each one's index page (and then its metadata file): a round trip per project,
strictly in sequence, which is most of a cold resolution (about 0.2 s per project here,
20 projects for ten common pins). The pages themselves do not depend on one another, so:

* the top-level requirements' pages are requested together before the resolver starts;
* whenever pip lists a candidate's dependencies (after their markers were judged for the
  target), the pages of all of them are requested together;
* pip's own page fetch (``collector._get_simple_response``) takes the prefetched response
  when there is one, and otherwise, or when the prefetch failed, fetches as it always does
  (so errors, authentication prompts and retries are pip's own);
* from a prefetched JSON page (PEP 691), the wheel pip will most likely pick (the newest
  version the requirement allows, not yanked, Requires-Python met by the target, the target's
  most preferred tag) is fetched too: its PEP 658 metadata file where the index has one,
  else the wheel itself (which pip downloads during the resolution when the index offers no
  metadata file: one file after the other). pip's fetch (``prepare.get_http_url``) takes it
  when pip asks for that very URL, and checks the hash the page gives, as it always does.
  A wrong guess costs one download, never a different answer: pip decides, the prefetch
  only answers what pip asks;
* a prefetched JSON page is parsed, and the links of the files the target can use are made
  from it (pip's own ``Link.from_json``, after the same tag and version filters), by the
  prefetching thread while pip's resolver waits for files; pip's link parser takes them for
  that very page, instead of doing that work on the resolver's one thread (on a cold
  resolution it was the resolver thread's largest cost);
* whole wheels fetched on a guess have threads of their own, in a process of their own
  where it can be forked (:mod:`lambda_compat.resolve.pip_downloader`): a page never waits
  behind a download, nor a download for this process's GIL; their sha256 is computed as
  they arrive, and pip's hash check takes it instead of reading the file again
  (:mod:`lambda_compat.resolve.pip_hashes`);
* the dependencies of a file fetched on a guess (its Requires-Dist, markers judged for the
  target) are requested in turn, so a chain of projects is fetched together instead of one
  link per resolver step; a guessed wheel of 1 MiB or more has them read from its last bytes
  (:mod:`lambda_compat.resolve.wheel_tail`, HTTP range requests) while the whole file is
  still downloading.

Only http(s) pages are prefetched, through pip's own session (its cache, proxies,
certificates and credentials), with the same arguments pip would use.
"""

from __future__ import annotations

import atexit
import inspect
import json
import os
import shutil
import tempfile
import threading
import urllib.parse
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from lambda_compat.resolve import pip_downloader, pip_hashes

#: Pages (and metadata files) requested at once (uv's default for concurrent downloads is
#: 50).
PAGE_THREADS = 8
#: Whole wheels fetched on a guess at once, on threads of their own: a page never waits
#: behind a download (a project's page is the next link of a chain such as cryptography ->
#: cffi -> pycparser; a wheel is not).
FILE_THREADS = 6


class PagePrefetcher:
    """Page responses requested ahead of pip, keyed by URL, each handed out once."""

    def __init__(self, fetch: Callable[..., Any], threads: int = PAGE_THREADS,
                 tags: Iterable[str] = (), python_version: str = "",
                 cas_dir: Optional[str] = None,
                 environment: Optional[Dict[str, str]] = None,
                 emit: Optional[Callable[..., None]] = None,
                 links_for: Optional[Callable[[Dict[str, Any], str], List[Any]]] = None,
                 narrow: Optional[Callable[[bytes], bytes]] = None) -> None:
        self._fetch = fetch
        self._narrow = narrow
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lc-page")
        self._files = ThreadPoolExecutor(max_workers=FILE_THREADS, thread_name_prefix="lc-file")
        self._futures: Dict[str, "Future[Any]"] = {}
        self._metadata: Dict[str, "Future[Any]"] = {}
        self._parsed: Dict[int, Tuple[bytes, Any, str, Optional[List[Any]]]] = {}
        self._links_for = links_for
        self._lock = threading.Lock()
        self._finder: Any = None
        self._session: Any = None
        self._downloader: Optional[pip_downloader.ForkedDownloader] = None
        self._force_arg = "force_revalidate" in inspect.signature(fetch).parameters
        self._rank = {tag: i for i, tag in reversed(list(enumerate(tags)))}
        self._python = python_version
        self._tmp: Optional[str] = None
        self._cas_dir = cas_dir
        self._environment = environment
        self._emit = emit

    def start(self, finder: Any, session: Any) -> None:
        self._finder, self._session = finder, session
        self._downloader = pip_downloader.ForkedDownloader.start(
            session, FILE_THREADS, page_threads=PAGE_THREADS,
            page=pip_downloader.page_fetch(self._fetch, session, self._narrow))
        if self._downloader is not None and self._emit is not None:
            self._emit("downloader", pid=self._downloader.pid)

    def want(self, wanted: Iterable[Tuple[Optional[str], Any]]) -> None:
        """Request the index pages of the ``(name, specifier)`` pairs pip has not had yet
        (and the metadata of the wheel each specifier most likely resolves to)."""
        if self._finder is None:
            return
        from pip._vendor.packaging.utils import canonicalize_name
        for name, specifier in wanted:
            if not name or name.startswith("<"):
                continue
            project = canonicalize_name(name)
            for url in self._finder.search_scope.get_index_urls_locations(project):
                if url.startswith(("http://", "https://")):
                    self._submit(url, project, specifier)

    def _submit(self, url: str, project: str, specifier: Any) -> None:
        kwargs: Dict[str, Any] = {"session": self._session}
        if self._force_arg:
            refresh = getattr(self._session, "refresh_package", ()) or ()
            kwargs["force_revalidate"] = ":all:" in refresh or project in refresh
        with self._lock:
            if url in self._futures:
                return
            self._futures[url] = self._pool.submit(self._page, url, specifier, kwargs)

    def _page(self, url: str, specifier: Any, kwargs: Dict[str, Any]) -> Any:
        if self._downloader is not None:  # fetched and narrowed in the download process
            path = os.path.join(self._directory(), f"page-{uuid.uuid4().hex}")
            response = self._downloader.page_response(
                url, {"force_revalidate": kwargs.get("force_revalidate", False)}, path)
        else:
            response = self._fetch(url, **kwargs)
        if specifier is not None and self._rank:
            try:
                self._want_metadata(response, specifier)
            except Exception:  # a guess only: pip fetches what it needs itself
                pass
        return response

    def _want_metadata(self, response: Any, specifier: Any) -> None:
        if not response.headers.get("Content-Type", "").startswith(
                "application/vnd.pypi.simple.v1+json"):
            return
        content = response.content
        page = json.loads(content)
        try:  # first: the guessed file's download starts before the links are made
            self._guess(page, specifier)
        except Exception:  # a guess only: pip fetches what it needs itself
            pass
        url, links = str(getattr(response, "url", "") or ""), None
        if self._links_for is not None and url and isinstance(page, dict):
            try:  # pip's work for this page, done while pip waits for files
                links = self._links_for(page, url)
            except Exception:
                links = None  # pip makes them itself
        with self._lock:  # pip parses this very page next: it takes this parse instead
            self._parsed[id(content)] = (content, page, url, links)

    def _guess(self, page: Dict[str, Any], specifier: Any) -> None:
        """Start fetching what pip will most likely fetch of this page (see
        :func:`best_file_url`)."""
        chosen = best_file(page.get("files") or [], specifier, self._rank, self._python)
        if chosen is None:
            return
        found = url_to_fetch(chosen, self._cas_dir)
        if found is None:
            return
        # the whole wheel (not its metadata file): the page's sha256 and name come along
        wheel = None
        if found == chosen["url"]:
            sha = (chosen.get("hashes") or {}).get("sha256")
            wheel = (str(sha), str(chosen["filename"])) if sha else None
        with self._lock:
            if found in self._metadata:
                return
            pool = self._pool if wheel is None else self._files
            self._metadata[found] = pool.submit(self._get_file, found, wheel)
        size = chosen.get("size")
        if wheel is not None and isinstance(size, int) and size >= LAZY_METADATA_BYTES:
            self._pool.submit(self._metadata_ahead, found, size)

    def _metadata_ahead(self, url: str, size: int) -> None:
        """A big wheel's dependencies requested from its METADATA, read from the end of the
        file (:mod:`lambda_compat.resolve.wheel_tail`) while the whole file downloads."""
        from lambda_compat.resolve import wheel_tail
        data = wheel_tail.metadata(size, wheel_tail.range_fetch(self._session, url))
        if data is not None:
            self._want_requirements(_requires_of(data))

    def _get_file(self, url: str, wheel: Optional[Tuple[str, str]] = None) -> Tuple[str, str]:
        """Download ``url`` into the prefetch directory: (path, content type). ``wheel``:
        (sha256, file name) from the page when ``url`` is a wheel: one whose content has
        that sha256 is announced at once (``file-ready``), for the parent to store and judge
        while pip resolves (``build/early.py``); pip still checks it when it takes it."""
        name = urllib.parse.unquote(url.rsplit("/", 1)[-1].split("#", 1)[0])
        directory = tempfile.mkdtemp(prefix="f-", dir=self._directory())
        path = os.path.join(directory, os.path.basename(name) or "file")
        if self._downloader is not None:  # a process of its own: not under this GIL
            content_type, sha256 = self._downloader.get(url, path).result()
        else:
            content_type, sha256 = pip_downloader.download(self._session, url, path)
        pip_hashes.remember(path, "sha256", sha256)  # pip's check: no new read
        if wheel is not None and self._emit is not None and sha256 == wheel[0] \
                and wheel[1].endswith(".whl"):
            self._emit("file-ready", path=path, sha256=wheel[0], filename=wheel[1])
        try:
            self._want_dependencies(path)
        except Exception:  # a guess only: pip lists the dependencies itself
            pass
        return path, content_type

    def _want_dependencies(self, path: str) -> None:
        """The dependencies of a file fetched on a guess (a wheel or its metadata file),
        requested in turn: a chain such as cryptography -> cffi -> pycparser is fetched
        ahead of pip, not one link per resolver step. Markers are judged for the target
        (its environment, no extra); what pip finally lists is still prefetched as before."""
        self._want_requirements(_requires_dist(path))

    def _want_requirements(self, lines: List[str]) -> None:
        """The pages of these Requires-Dist lines' projects, markers judged for the target."""
        if self._environment is None:
            return
        from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
        environment = dict(self._environment, extra="")
        wanted = []
        for line in lines:
            try:
                requirement = Requirement(line)
                if requirement.marker is not None and \
                        not requirement.marker.evaluate(environment):
                    continue
            except (InvalidRequirement, ValueError, KeyError):
                continue
            wanted.append((requirement.name, requirement.specifier))
        self.want(wanted)

    def _directory(self) -> str:
        with self._lock:
            if self._tmp is None:
                self._tmp = tempfile.mkdtemp(prefix="lc-prefetch-")
            return self._tmp

    def take_parsed(self, content: bytes, url: str) -> Tuple[Any, Optional[List[Any]]]:
        """The JSON already parsed from ``content`` (this very object, once), or None, and
        the target's links made from it for a page at ``url`` (None: not made)."""
        with self._lock:
            found = self._parsed.pop(id(content), None)
        if found is None or found[0] is not content:
            return None, None
        return found[1], (found[3] if found[2] == url else None)

    def take_file(self, url: str) -> Optional[Tuple[str, str]]:
        """The prefetched file at ``url`` (once): (path, content type), or None."""
        with self._lock:
            future = self._metadata.pop(url, None)
        if future is None:
            return None
        try:
            return future.result()
        except Exception:
            return None

    def take(self, url: str) -> Any:
        """The prefetched response for ``url`` (once), or None: fetch it the usual way."""
        with self._lock:  # from now on pip has this page: never prefetched again
            future = self._futures.get(url)
            self._futures[url] = _TAKEN
        if future is None or future is _TAKEN:
            return None
        try:
            return future.result()
        except Exception:  # pip's own fetch reports it, with its messages
            return None

    def close(self) -> None:
        """Wait for the downloads under way, then remove what was fetched and not taken."""
        for pool in (self._pool, self._files):
            pool.shutdown(wait=True, cancel_futures=True)
        self.discard()

    def discard(self, keep_under: Optional[str] = None) -> None:
        """Remove the prefetch directory now (files still being written go with it), unless
        it is inside ``keep_under``: a directory its owner removes whole."""
        for pool in (self._pool, self._files):
            pool.shutdown(wait=False, cancel_futures=True)
        if self._downloader is not None:
            self._downloader.close()
        with self._lock:
            tmp, self._tmp = self._tmp, "/nonexistent/lc-prefetch-closed"
        if tmp is None or not os.path.isdir(tmp):
            return
        if keep_under and os.path.commonpath([os.path.abspath(tmp), os.path.abspath(
                keep_under)]) == os.path.abspath(keep_under):
            return
        shutil.rmtree(tmp, ignore_errors=True)


#: A guessed wheel at least this big has its dependencies read from its last bytes first,
#: where the index offers no metadata file (its download takes a while).
LAZY_METADATA_BYTES = 1024 * 1024
#: A wheel larger than this is not fetched on a guess.
MAX_GUESS_BYTES = 100 * 2**20


def best_file_url(files: List[Dict[str, Any]], specifier: Any, rank: Dict[str, int],
                  python_version: str, cas_dir: Optional[str] = None) -> Optional[str]:
    """What pip will fetch of the wheel among ``files`` (a PEP 691 page's) it would most
    likely choose for ``specifier`` on the target (``rank``: its tags, most preferred first;
    ``python_version``: its full version): the PEP 658 metadata file's URL if the page
    offers one, else the wheel's own URL (if not larger than :data:`MAX_GUESS_BYTES`);
    None if no wheel fits."""
    chosen = best_file(files, specifier, rank, python_version)
    return None if chosen is None else url_to_fetch(chosen, cas_dir)


def tag_ranker(rank: Mapping[str, int]) -> Callable[[str], Optional[int]]:
    """``best(triple)``: the lowest rank in ``rank`` (tag -> rank) among the tags a wheel
    name's last three fields (``pys-abis-plats``, lower case, compressed tag sets allowed)
    expand to, or None if the target takes none of them; remembered per triple."""
    seen: Dict[str, Optional[int]] = {}

    def best(triple: str) -> Optional[int]:
        if triple not in seen:
            pys, abis, plats = (p.split(".") for p in triple.split("-"))
            ranks = [rank[t] for t in (f"{i}-{a}-{p}" for i in pys for a in abis
                                       for p in plats) if t in rank]
            seen[triple] = min(ranks) if ranks else None
        return seen[triple]

    return best


def best_file(files: List[Dict[str, Any]], specifier: Any, rank: Dict[str, int],
              python_version: str) -> Optional[Dict[str, Any]]:
    """The entry of ``files`` of the wheel pip would most likely choose (see
    :func:`best_file_url`), or None."""
    from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
    from pip._vendor.packaging.version import InvalidVersion, Version
    best: Optional[Tuple[Any, int, Dict[str, Any]]] = None
    allow_pre = bool(specifier.prereleases)  # as pip: only when the specifier names one
    # A page lists thousands of files (15,000 for pydantic-core): each wheel's tags are
    # judged from its name's last three fields, once per distinct triple, and only the
    # wheels the target can take have their version parsed.
    tag_rank = tag_ranker(rank)
    versions: Dict[str, Optional[Any]] = {}
    for f in files:
        filename, url = f.get("filename", ""), f.get("url", "")
        if not isinstance(filename, str) or not filename.endswith(".whl") or not url \
                or f.get("yanked"):
            continue
        parts = filename[:-4].split("-")
        if len(parts) not in (5, 6):
            continue  # not a wheel name pip would take
        best_rank = tag_rank("-".join(parts[-3:]).lower())
        if best_rank is None:
            continue
        if parts[1] not in versions:
            try:
                versions[parts[1]] = Version(parts[1])
            except InvalidVersion:
                versions[parts[1]] = None
        version = versions[parts[1]]
        if version is None or not specifier.contains(version, prereleases=allow_pre):
            continue
        requires = f.get("requires-python")
        if requires:
            try:
                if not SpecifierSet(requires).contains(python_version, prereleases=True):
                    continue
            except InvalidSpecifier:
                continue
        key = (version, -best_rank, f)
        if best is None or key[:2] > best[:2]:
            best = key
    return None if best is None else best[2]


def url_to_fetch(chosen: Dict[str, Any], cas_dir: Optional[str] = None) -> Optional[str]:
    """For the page entry of a wheel: its metadata file's URL if the page offers one, else
    the wheel's URL if it is not too big, or None (too big, or the cache has it)."""
    if chosen.get("core-metadata", chosen.get("data-dist-info-metadata")):
        return chosen["url"].split("#", 1)[0] + ".metadata"
    sha = (chosen.get("hashes") or {}).get("sha256")
    if cas_dir and sha and os.path.exists(os.path.join(cas_dir, sha[:2], sha,
                                                       chosen["filename"])):
        return None  # the content-addressed cache has it: pip takes it from there
    size = chosen.get("size")
    return chosen["url"] if isinstance(size, int) and size <= MAX_GUESS_BYTES else None


def _requires_dist(path: str) -> List[str]:
    """The Requires-Dist lines of a core metadata file, or of a wheel's own METADATA."""
    import zipfile
    if path.endswith(".whl"):
        with zipfile.ZipFile(path) as wheel:
            names = [n for n in wheel.namelist() if n.count("/") == 1
                     and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                return []
            data = wheel.read(names[0])
    else:
        with open(path, "rb") as f:
            data = f.read()
    return _requires_of(data)


def _requires_of(data: bytes) -> List[str]:
    """The Requires-Dist lines of core metadata."""
    import email.parser
    message = email.parser.BytesHeaderParser().parsebytes(data)
    return [str(v) for v in message.get_all("Requires-Dist") or []]


_TAKEN: "Future[Any]" = Future()
PREFETCHER: Optional[PagePrefetcher] = None


def install(spec: Dict[str, Any], emit: Optional[Callable[..., None]] = None
            ) -> PagePrefetcher:
    """Patch pip: page and metadata fetches go through the prefetcher; candidates'
    dependencies and the top-level requirements (:meth:`PagePrefetcher.want`) are
    prefetched."""
    global PREFETCHER
    from pip._internal.index import collector
    from pip._internal.operations import prepare
    from pip._internal.resolution.resolvelib import candidates
    from pip._internal.utils.temp_dir import TempDirectory

    from pip._internal.index import package_finder
    original = collector._get_simple_response
    environment = spec.get("marker_environment") or {}
    prefetcher = PREFETCHER = PagePrefetcher(
        original, tags=spec.get("tags") or (),
        python_version=environment.get("python_full_version", ""),
        cas_dir=spec.get("cas_dir"), environment=environment or None, emit=emit,
        links_for=getattr(package_finder.parse_links, "json_page_links", None),
        narrow=getattr(package_finder.parse_links, "narrow_json_page", None))
    atexit.register(prefetcher.close)

    def get_simple_response(url: str, *args: Any, **kwargs: Any) -> Any:
        response = prefetcher.take(url)
        return response if response is not None else original(url, *args, **kwargs)

    collector._get_simple_response = get_simple_response

    original_get_http_url = prepare.get_http_url

    def get_http_url(link: Any, download: Any, download_dir: Optional[str] = None,
                     hashes: Any = None) -> Any:
        url = link.url.split("#", 1)[0]
        if download_dir and prepare._check_download_dir(link, download_dir, hashes):
            found = None  # already there (pip's check, and the cache's): pip takes it
        else:
            found = prefetcher.take_file(url)
        if found is None:
            file = original_get_http_url(link, download, download_dir, hashes)
        else:
            fetched, content_type = found
            directory = TempDirectory(kind="unpack", globally_managed=True)
            path = os.path.join(directory.path, link.filename)
            shutil.move(fetched, path)
            if hashes:
                hashes.check_against_path(path)
            file = prepare.File(path, content_type)
        if emit is not None and hashes and link.is_wheel and link.hash_name == "sha256" \
                and link.hash and hashes.is_hash_allowed("sha256", link.hash):
            # checked against the index's sha256: the parent may judge it now (build/early)
            emit("file-ready", path=file.path, sha256=link.hash, filename=link.filename)
        return file

    prepare.get_http_url = get_http_url

    for cls in (candidates._InstallRequirementBackedCandidate, candidates.ExtrasCandidate):
        cls.iter_dependencies = _prefetching(  # type: ignore[method-assign]
            cls.iter_dependencies, prefetcher)
    return prefetcher


def _prefetching(iter_dependencies: Callable[..., Any],
                 prefetcher: PagePrefetcher) -> Callable[..., Any]:
    def wrapped(self: Any, with_requires: bool) -> Any:
        requirements = list(iter_dependencies(self, with_requires))
        prefetcher.want((getattr(r, "project_name", None), specifier_of(r))
                        for r in requirements if r is not None)
        yield from requirements
    return wrapped


def specifier_of(requirement: Any) -> Any:
    """The version specifier of a resolver requirement or an InstallRequirement, or None."""
    ireq = getattr(requirement, "_ireq", requirement)
    return getattr(getattr(ireq, "req", None), "specifier", None)
