"""Run pip's resolver and downloader *as if on the Lambda target*.

This module runs in its own process (``python -m lambda_compat.resolve.pip_shim SPEC.json``) so the
patches below never leak into the caller. It is the only module that touches pip internals.

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
* files already in the content-addressed cache are reused (hash-verified by pip).

Everything else is plain pip: index options, find-links, constraints, hashes, extras, local
paths, authentication and pip.conf, for every phase alike.

The result is a JSON document written to the path given in the spec.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys
import traceback
import urllib.parse
from typing import Any, Callable


_EVENTS: Any = None


def _emit(event: str, **data: Any) -> None:
    """Progress events for the parent: one JSON object per line on a dedicated pipe."""
    if _EVENTS is None:
        return
    try:
        _EVENTS.write(json.dumps({"event": event, **data}) + "\n")
        _EVENTS.flush()
    except (OSError, ValueError):
        pass


class _ProgressHandler(logging.Handler):
    """Turn pip's own progress log lines into events."""

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover - trivial
        msg = record.msg if isinstance(record.msg, str) else ""
        try:
            if msg.startswith("Collecting"):
                _emit("collecting", what=record.getMessage()[len("Collecting "):])
            elif msg.startswith("Downloading"):
                _emit("downloading", what=record.getMessage()[len("Downloading "):])
        except Exception:
            pass


class _ErrorLog(logging.Handler):
    """Keep pip's critical/error lines: they explain resolution failures."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(record.getMessage())
        except Exception:
            pass


def _link_info(link: Any) -> dict[str, Any]:
    return {
        "url": link.url_without_fragment if hasattr(link, "url_without_fragment") else link.url,
        "filename": link.filename,
        "requires_python": link.requires_python or None,
        "yanked": bool(getattr(link, "is_yanked", False)),
        "hash": f"{link.hash_name}:{link.hash}" if link.hash_name and link.hash else None,
        "is_wheel": link.is_wheel,
    }


_ARCHIVES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz", ".tar")


def _all_links(finder: Any, project: str) -> list[dict[str, Any]]:
    """Every file the configured indexes and find-links offer for a project, unfiltered.

    pip's own candidate list drops wheels whose tags do not match the target; to explain a
    failure ("only manylinux_2_28 wheels exist") we need them all.
    """
    from pip._internal.index.collector import parse_links

    collector = finder._link_collector

    def from_page(page_link: Any) -> list[Any]:
        response = collector.fetch_response(page_link, package_name=project)
        return [] if response is None else list(parse_links(response))

    links: list[dict[str, Any]] = []
    seen: set[str] = set()
    for group in collector.collect_sources(project_name=project, candidates_from_page=from_page):
        for source in group:
            if source is None:
                continue
            for link in list(source.page_candidates()) + list(source.file_links()):
                if link.filename in seen or not link.filename.endswith(_ARCHIVES):
                    continue  # index pages themselves, directories, unrelated files
                seen.add(link.filename)
                links.append(_link_info(link))
    return links


_ANCHOR = re.compile(rb"<a\b[^>]*>.*?</a\s*>(?:\s*<br\s*/?>)?", re.IGNORECASE | re.DOTALL)
_HREF = re.compile(rb"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)


def _tag_filter(tags: frozenset) -> Callable[[str], bool]:
    """``fits(filename)``: False only for a wheel none of whose tags is in ``tags``."""
    seen: dict = {}

    def fits(filename: str) -> bool:
        name = filename.lower()
        if "%" in name:
            name = urllib.parse.unquote(name)
        if not name.endswith(".whl"):
            return True
        parts = name[:-4].split("-")
        if len(parts) not in (5, 6):
            return True  # not a valid wheel name: let pip judge (and report) it
        key = "-".join(parts[-3:])
        if key not in seen:
            pys, abis, plats = (p.split(".") for p in parts[-3:])
            seen[key] = any(f"{i}-{a}-{p}" in tags for i in pys for a in abis for p in plats)
        return seen[key]

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


def _install_patches(spec: dict[str, Any], state: dict[str, Any]) -> None:
    from pip._internal.cli import cmdoptions
    from pip._internal.models.target_python import TargetPython
    from pip._internal.operations import prepare
    from pip._internal import cache as pip_cache
    from pip._internal.index import collector
    from pip._internal.resolution.resolvelib import factory
    from pip._vendor.packaging import markers
    from pip._vendor.packaging.tags import Tag

    environment = dict(spec["marker_environment"])

    def target_environment() -> dict[str, str]:
        return dict(environment)

    markers.default_environment = target_environment

    tags = [Tag(*t.split("-")) for t in spec["tags"]]
    tag_set = set(tags)
    TargetPython.get_sorted_tags = lambda self: list(tags)  # type: ignore[method-assign]
    TargetPython.get_unsorted_tags = lambda self: set(tag_set)  # type: ignore[method-assign]

    cmdoptions.check_dist_restriction = lambda options, check_target=False: None

    # The finder sees index pages without the wheels the target cannot use (see
    # prefilter_page); diagnosis (_all_links) still reads the whole page.
    import dataclasses
    from pip._internal.index import package_finder

    tag_strings = frozenset(str(t) for t in tags)
    original_parse = package_finder.parse_links

    def parse_target_links(page: Any) -> Any:
        try:
            content = prefilter_page(page.content, page.content_type, tag_strings)
        except ValueError:  # not JSON after all: pip reports it as it would
            return original_parse(page)
        return original_parse(dataclasses.replace(page, content=content))

    package_finder.parse_links = parse_target_links

    # pip's wheel cache holds wheels built for the host; never substitute them.
    pip_cache.WheelCache.get_cache_entry = lambda self, *a, **k: None  # type: ignore
    pip_cache.WheelCache.get = lambda self, link, *a, **k: link  # type: ignore

    cas_dir = spec.get("cas_dir")
    original_check = prepare._check_download_dir

    def check_download_dir(link: Any, download_dir: str, hashes: Any, *args: Any, **kwargs: Any):
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

    factory.Factory._report_single_requirement_conflict = report_conflict

    # Remember what pip is preparing: a build failure names no distribution in its type.
    original_prepare = prepare.RequirementPreparer.prepare_linked_requirement

    def prepare_linked(self: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        link = getattr(req, "link", None)
        state["preparing"] = {"name": req.name, "requirement": str(req.req or req.name),
                              "is_wheel": bool(link and link.is_wheel),
                              "filename": getattr(link, "filename", None)}
        return original_prepare(self, req, *args, **kwargs)

    prepare.RequirementPreparer.prepare_linked_requirement = prepare_linked

    # Binary first: sources only for the projects the caller allows (it decides from the
    # project's files whether a build can help), so pip never builds a big sdist just to
    # read its metadata when the project's wheels are merely too new for the target.
    if spec.get("binary_only"):
        from pip._internal.models.format_control import FormatControl
        from pip._vendor.packaging.utils import canonicalize_name

        allow = {canonicalize_name(n) for n in spec.get("allow_source", [])}
        original_allowed = FormatControl.get_allowed_formats

        def allowed_formats(self: Any, canonical_name: str) -> frozenset:
            result = set(original_allowed(self, canonical_name))
            if canonicalize_name(canonical_name) not in allow:
                result.discard("source")
            return frozenset(result)

        FormatControl.get_allowed_formats = allowed_formats

    _install_source_metadata(spec, state)


def _install_source_metadata(spec: dict[str, Any], state: dict[str, Any]) -> None:
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
                                          workdir / str(len(state["sources"])), _emit,
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

    sdist.SourceDistribution.prepare_distribution_metadata = prepare


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {"fetch_failures": [], "not_found": [], "cache_hits": [],
                             "preparing": None, "sources": {}, "metadata_failure": None}
    _install_patches(spec, state)
    from lambda_compat.resolve import pip_sandbox

    try:
        pip_sandbox.install(spec.get("sandbox") or {})
    except pip_sandbox.SandboxRefused as exc:
        return {"status": "error", "kind": "sandbox-refused", "message": str(exc),
                "fetch_failures": [], "cache_hits": []}

    from pip._internal.commands.download import DownloadCommand
    from pip._internal.exceptions import (
        DistributionNotFound,
        HashError,
        HashErrors,
        InstallationError,
        MetadataGenerationFailed,
        NetworkConnectionError,
        UnsupportedPythonVersion,
    )
    from pip._internal.utils.temp_dir import TempDirectory

    result: dict[str, Any] = {"status": "ok", "items": [], "links": {}}
    error_log = _ErrorLog()
    # pip's setup_logging replaces root handlers only; handlers on its package logger stay.
    logging.getLogger("pip._internal").addHandler(error_log)
    logging.getLogger("pip._internal").addHandler(_ProgressHandler(level=logging.INFO))

    class TargetDownload(DownloadCommand):
        """pip download, reporting what it resolved instead of printing it."""

        lc_exception: BaseException | None = None

        def _run_wrapper(self, level_number: int, options: Any, args: list[str]) -> int:
            # pip's wrapper turns exceptions into log lines; we want them as data.
            try:
                return self.run(options, args)
            except Exception as exc:
                self.lc_exception = exc
                return 1

        def run(self, options: Any, args: list[str]) -> int:
            from pip._internal.cli import cmdoptions
            from pip._internal.operations.build.build_tracker import get_build_tracker
            from pip._internal.utils.misc import ensure_dir, normalize_path
            from pip._internal.cli.cmdoptions import make_target_python

            options.ignore_installed = True
            options.editables = []
            cmdoptions.check_dist_restriction(options)
            for check in ("check_release_control_exclusive",
                          "check_only_deps_option_does_not_conflict"):
                if hasattr(cmdoptions, check):
                    getattr(cmdoptions, check)(options)
            if hasattr(self, "check_build_constraints"):
                self.check_build_constraints(options)
            options.download_dir = normalize_path(options.download_dir)
            ensure_dir(options.download_dir)
            session = self.get_default_session(options)
            target_python = make_target_python(options)
            finder = self._build_package_finder(
                options=options, session=session, target_python=target_python,
                ignore_requires_python=options.ignore_requires_python,
            )
            self._lc_finder = finder
            build_tracker = self.enter_context(get_build_tracker())
            directory = TempDirectory(delete=not options.no_clean, kind="download",
                                      globally_managed=True)
            reqs = self.get_requirements(args, options, finder, session)
            preparer = self.make_requirement_preparer(
                temp_build_dir=directory, options=options, build_tracker=build_tracker,
                session=session, finder=finder, download_dir=options.download_dir,
                use_user_site=False, verbosity=self.verbosity, allow_editables=False,
            )
            resolver = self.make_resolver(
                preparer=preparer, finder=finder, options=options,
                ignore_requires_python=options.ignore_requires_python,
                py_version_info=options.python_version,
            )
            requirement_set = resolver.resolve(reqs, check_supported_wheels=True)
            _emit("resolved", count=len(requirement_set.requirements))
            preparer.prepare_linked_requirements_more(requirement_set.requirements.values())
            for req in requirement_set.requirements.values():
                link = req.link
                item: dict[str, Any] = {
                    "name": req.name,
                    "version": str(req.get_dist().version) if link else None,
                    "link": _link_info(link) if link else None,
                    "is_direct": bool(req.is_direct),
                    "user_supplied": bool(req.user_supplied),
                    "requires_python": None,
                    "path": None,
                    "source_dir": None,
                    "extras": sorted(req.extras or ()),
                }
                try:
                    item["requires_python"] = req.get_dist().requires_python.__str__() or None
                except Exception:
                    pass
                if link is not None and link.is_existing_dir():
                    item["source_dir"] = link.file_path
                else:
                    preparer.save_linked_requirement(req)
                    item["path"] = os.path.join(options.download_dir, link.filename)
                result["items"].append(item)
            for item in result["items"]:
                link = item["link"]
                if link and not link["is_wheel"] and item["source_dir"] is None:
                    result["links"][item["name"]] = _all_links(finder, item["name"])
            return 0

    # isolated: pip reads its configuration files while the command object is made, before
    # it parses --isolated; only this flag keeps pip.conf (global, site, user) out.
    command = TargetDownload(name="download", summary="lambda-compat target download",
                             isolated=bool(spec.get("isolated")))
    try:
        command.main(list(spec["pip_args"]))
        if command.lc_exception is not None:
            raise command.lc_exception
    except (HashErrors, HashError) as exc:
        errors = []
        for err in (exc.errors if isinstance(exc, HashErrors) else [exc]):
            req = getattr(err, "req", None)
            link = getattr(req, "link", None) if req is not None else None
            errors.append({
                "kind": type(err).__name__,
                "requirement": str(getattr(req, "req", "") or ""),
                "name": getattr(req, "name", None),
                "filename": getattr(link, "filename", None),
                "url": getattr(link, "url_without_fragment", None),
                "got": (getattr(err, "gotten_hash", None)
                        or {k: v.hexdigest() for k, v in (getattr(err, "gots", {}) or {}).items()}),
                "allowed": {k: list(v) for k, v in (getattr(err, "allowed", {}) or {}).items()},
                "comes_from": str(getattr(req, "comes_from", "") or ""),
            })
        result = {"status": "error", "kind": "hash", "message": str(exc), "hash_errors": errors}
    except UnsupportedPythonVersion as exc:
        result = {"status": "error", "kind": "requires-python", "message": str(exc)}
    except DistributionNotFound as exc:
        finder = getattr(command, "_lc_finder", None)
        links = {}
        if finder is not None:
            for nf in state["not_found"]:
                try:
                    links[nf["project"]] = _all_links(finder, nf["project"])
                except Exception:  # diagnosis must not hide the real error
                    links[nf["project"]] = []
        result = {"status": "error", "kind": "not-found", "message": str(exc),
                  "not_found": state["not_found"], "links": links,
                  "log": error_log.lines[-40:]}
    except InstallationError as exc:
        preparing = state.get("preparing") or {}
        if isinstance(exc, MetadataGenerationFailed) or (
                preparing and not preparing.get("is_wheel")
                and not isinstance(exc, (DistributionNotFound, UnsupportedPythonVersion))):
            # Building a source distribution's metadata failed: that distribution is missing.
            name = preparing.get("name") or str(getattr(exc, "context", ""))
            links = {}
            finder = getattr(command, "_lc_finder", None)
            if finder is not None and name:
                try:
                    links[name] = _all_links(finder, name)
                except Exception:  # diagnosis must not hide the real error
                    pass
            result = {"status": "error", "kind": "metadata-failed", "message": str(exc),
                      "package": name, "requirement": preparing.get("requirement") or name,
                      "filename": preparing.get("filename"), "links": links,
                      "log": _log_tail(spec, 40) or error_log.lines[-40:],
                      **(state["metadata_failure"] or {})}
        else:
            result = {"status": "error", "kind": "installation", "message": str(exc),
                      "log": error_log.lines[-40:]}
    except NetworkConnectionError as exc:
        result = {"status": "error", "kind": "network", "message": str(exc)}
    except pip_sandbox.SandboxRefused as exc:
        result = {"status": "error", "kind": "sandbox-refused", "message": str(exc),
                  "filename": (state.get("preparing") or {}).get("filename")}
    except Exception as exc:  # report, never a bare traceback
        result = {"status": "error", "kind": "internal",
                  "message": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc()}
    result["fetch_failures"] = state["fetch_failures"]
    result["cache_hits"] = state["cache_hits"]
    result["sources"] = state["sources"]
    return result


def _log_tail(spec: dict[str, Any], n: int) -> list[str]:
    """The last lines of pip's log (the build backend's own output is there)."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        with open(spec["log_path"], encoding="utf-8", errors="replace") as f:
            lines = [l.rstrip() for l in f if l.strip()]
    except (KeyError, OSError):
        return []
    out = lines[-n:]
    return [re.sub(r"\[/?[a-z ]*\]", "", l) for l in out]  # pip's rich markup


def main(argv: list[str]) -> int:
    global _EVENTS
    import signal

    from lambda_compat.resolve.pip_sandbox import die_with_parent

    die_with_parent(signal.SIGKILL)  # lambda-compat gone (even SIGKILL): so is this pip
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    if spec.get("events_fd") is not None:
        _EVENTS = os.fdopen(int(spec["events_fd"]), "w", buffering=1)
    result = _run(spec)
    tmp = spec["result_path"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, spec["result_path"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
