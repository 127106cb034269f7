"""Run pip's resolver and downloader *as if on the Lambda target*.

This module runs in its own process (``python -m lambda_compat.resolve.pip_shim SPEC.json``) so
the patches of pip it installs (:mod:`lambda_compat.resolve.pip_patches`: markers, tags,
Requires-Python, sdists and their metadata, caches, all judged for the target) never leak into
the caller. It and pip_patches are the only modules that touch pip internals.

Everything else is plain pip: index options, find-links, constraints, hashes, extras, local
paths, authentication and pip.conf, for every phase alike.

The result is a JSON document written to the path given in the spec.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import traceback
import uuid
from typing import Any


_EVENTS: Any = None
_ANNOUNCE_DIR: str | None = None  # the spec's announce_dir (see _lasting)
_CALLER_TMP: str | None = None  # the spec's tmpdir: the engine's, removed by its caller
_EVENTS_LOCK = threading.Lock()  # downloads run on several threads (pip_patches)


def _emit(event: str, **data: Any) -> None:
    """Progress events for the parent: one JSON object per line on a dedicated pipe."""
    if _EVENTS is None:
        return
    if event == "file-ready":
        data = _lasting(data)
    try:
        line = json.dumps({"event": event, **data}) + "\n"
        with _EVENTS_LOCK:
            _EVENTS.write(line)
            _EVENTS.flush()
    except (OSError, ValueError):
        pass


def _lasting(data: dict[str, Any]) -> dict[str, Any]:
    """A file announced to the parent (``file-ready``), hard-linked first into the parent's
    directory for this pass (``announce_dir``, which the parent removes): pip moves the
    prefetched copy into its temporary directories and removes those when it exits, which
    could come before the parent, busy on a loaded machine, has taken the file."""
    path = data.get("path")
    if not _ANNOUNCE_DIR or not path:
        return data
    directory = os.path.join(_ANNOUNCE_DIR, uuid.uuid4().hex)  # the file keeps its name
    dest = os.path.join(directory, os.path.basename(path))
    try:
        os.makedirs(directory)
        os.link(path, dest)
    except OSError:
        return data  # the parent takes it from where it is, if it still can
    return dict(data, path=dest)


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


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    from lambda_compat.resolve.pip_patches import install_patches

    state: dict[str, Any] = {"fetch_failures": [], "not_found": [], "cache_hits": [],
                             "preparing": None, "sources": {}, "metadata_failure": None}
    install_patches(spec, state, _emit)
    from lambda_compat.resolve import pip_sandbox

    try:
        pip_sandbox.install(spec.get("sandbox") or {})
    except pip_sandbox.SandboxRefused as exc:
        return {"status": "error", "kind": "sandbox-refused", "message": str(exc),
                "fetch_failures": [], "cache_hits": []}

    result: dict[str, Any] = {"status": "ok", "items": [], "links": {}}
    error_log = _ErrorLog()
    # pip's setup_logging replaces root handlers only; handlers on its package logger stay.
    logging.getLogger("pip._internal").addHandler(error_log)
    logging.getLogger("pip._internal").addHandler(_ProgressHandler(level=logging.INFO))

    # isolated: pip reads its configuration files while the command object is made, before
    # it parses --isolated; only this flag keeps pip.conf (global, site, user) out.
    command = _target_download(result)(name="download", summary="lambda-compat target download",
                                       isolated=bool(spec.get("isolated")))
    try:
        command.main(list(spec["pip_args"]))
        if command.lc_exception is not None:
            raise command.lc_exception
    except Exception as exc:  # report, never a bare traceback
        result = _error_result(exc, command, spec, state, error_log)
    result["fetch_failures"] = state["fetch_failures"]
    result["cache_hits"] = state["cache_hits"]
    result["sources"] = state["sources"]
    return result


def _target_download(result: dict[str, Any]) -> Any:
    """The ``pip download`` command class that puts what it resolved into ``result``."""
    from pip._internal.commands.download import DownloadCommand
    from pip._internal.utils.temp_dir import TempDirectory

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
            from lambda_compat.resolve import pip_prefetch, pip_versions
            pip_versions.restrict_to_requirements(reqs)
            if pip_prefetch.PREFETCHER is not None:
                pip_prefetch.PREFETCHER.start(finder, session)
                pip_prefetch.PREFETCHER.want((r.name, pip_prefetch.specifier_of(r))
                                             for r in reqs)
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
                result["items"].append(_item(req, preparer, options.download_dir))
            for item in result["items"]:
                link = item["link"]
                if link and not link["is_wheel"] and item["source_dir"] is None:
                    result["links"][item["name"]] = _all_links(finder, item["name"])
            return 0

    return TargetDownload


def _item(req: Any, preparer: Any, download_dir: str) -> dict[str, Any]:
    """One resolved requirement, as the result lists it (a file is saved, a directory not)."""
    link = req.link
    dist = req.get_dist() if link else None  # each call reads the wheel's metadata again
    item: dict[str, Any] = {
        "name": req.name,
        "version": str(dist.version) if dist is not None else None,
        "link": _link_info(link) if link else None,
        "is_direct": bool(req.is_direct),
        "user_supplied": bool(req.user_supplied),
        "requires_python": None,
        "path": None,
        "source_dir": None,
        "extras": sorted(req.extras or ()),
    }
    try:
        item["requires_python"] = (dist if dist is not None else req.get_dist()
                                   ).requires_python.__str__() or None
    except Exception:
        pass
    if link is not None and link.is_existing_dir():
        item["source_dir"] = link.file_path
    else:
        preparer.save_linked_requirement(req)
        item["path"] = os.path.join(download_dir, link.filename)
    return item


def _error_result(exc: Exception, command: Any, spec: dict[str, Any], state: dict[str, Any],
                  error_log: _ErrorLog) -> dict[str, Any]:
    """The result for the exception pip's download stopped with (in an ``except`` block)."""
    from pip._internal.exceptions import (
        DistributionNotFound,
        HashError,
        HashErrors,
        InstallationError,
        NetworkConnectionError,
        UnsupportedPythonVersion,
    )

    from lambda_compat.resolve import pip_sandbox

    if isinstance(exc, (HashErrors, HashError)):
        return {"status": "error", "kind": "hash", "message": str(exc),
                "hash_errors": _hash_errors(exc)}
    if isinstance(exc, UnsupportedPythonVersion):
        return {"status": "error", "kind": "requires-python", "message": str(exc)}
    if isinstance(exc, DistributionNotFound):
        finder = getattr(command, "_lc_finder", None)
        links = {}
        if finder is not None:
            for nf in state["not_found"]:
                try:
                    links[nf["project"]] = _all_links(finder, nf["project"])
                except Exception:  # diagnosis must not hide the real error
                    links[nf["project"]] = []
        return {"status": "error", "kind": "not-found", "message": str(exc),
                "not_found": state["not_found"], "links": links,
                "log": error_log.lines[-40:]}
    if isinstance(exc, InstallationError):
        return _installation_error(exc, command, spec, state, error_log)
    if isinstance(exc, NetworkConnectionError):
        return {"status": "error", "kind": "network", "message": str(exc)}
    if isinstance(exc, pip_sandbox.SandboxRefused):
        return {"status": "error", "kind": "sandbox-refused", "message": str(exc),
                "filename": (state.get("preparing") or {}).get("filename")}
    return {"status": "error", "kind": "internal",
            "message": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc()}


def _hash_errors(exc: Exception) -> list[dict[str, Any]]:
    """Each hash mismatch (or missing hash) pip reported, as data."""
    from pip._internal.exceptions import HashErrors

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
    return errors


def _installation_error(exc: Exception, command: Any, spec: dict[str, Any],
                        state: dict[str, Any], error_log: _ErrorLog) -> dict[str, Any]:
    """An InstallationError: a source distribution whose metadata could not be built is
    missing (with its project's files, for the diagnosis); anything else is reported."""
    from pip._internal.exceptions import (
        DistributionNotFound,
        MetadataGenerationFailed,
        UnsupportedPythonVersion,
    )

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
        return {"status": "error", "kind": "metadata-failed", "message": str(exc),
                "package": name, "requirement": preparing.get("requirement") or name,
                "filename": preparing.get("filename"), "links": links,
                "log": _log_tail(spec, 40) or error_log.lines[-40:],
                **(state["metadata_failure"] or {})}
    return {"status": "error", "kind": "installation", "message": str(exc),
            "log": error_log.lines[-40:]}


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
    global _EVENTS, _ANNOUNCE_DIR, _CALLER_TMP
    import signal

    from lambda_compat.resolve import pip_startup
    from lambda_compat.resolve.pip_sandbox import die_with_parent

    die_with_parent(signal.SIGKILL)  # lambda-compat gone (even SIGKILL): so is this pip
    pip_startup.tune_threads()
    standby = bool(argv) and argv[0] == "--standby"
    if standby:  # started ahead (engine.start_standby): import pip while the spec is made
        warming = threading.Thread(target=pip_startup.warm_up, name="lc-warm-up",
                                   daemon=True)
        warming.start()
        agent = pip_startup.import_pip()
        line = sys.stdin.readline().strip()
        if not line:
            return 0  # not needed after all
        warming.join()
        agent.join()
        argv = [line]
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    if standby:  # what the caller sets for a pip it starts itself: the log, TMPDIR
        log = os.open(spec["log_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        if spec.get("tmpdir"):
            import tempfile
            os.environ["TMPDIR"] = spec["tmpdir"]
            tempfile.tempdir = None
    if spec.get("events_fd") is not None:
        _EVENTS = os.fdopen(int(spec["events_fd"]), "w", buffering=1)
    _ANNOUNCE_DIR = spec.get("announce_dir")
    _CALLER_TMP = spec.get("tmpdir")
    pip_startup.tune_gc()
    result = _run(spec)
    tmp = spec["result_path"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, spec["result_path"])
    return 0


def _exit_now(code: int) -> None:
    """Exit without waiting for guesses still downloading (:mod:`.pip_prefetch`): the result
    is written; the interpreter's exit would join every prefetch thread first. The prefetch
    directory is left where it is inside the spec's tmpdir: the engine's caller removes
    that whole run directory once it is done (removing it here took 30-110 ms between the
    result and the exit the caller waits for, while the caller was unpacking wheels)."""
    from lambda_compat.resolve import pip_prefetch
    if pip_prefetch.PREFETCHER is not None:
        pip_prefetch.PREFETCHER.discard(keep_under=_CALLER_TMP)
    for stream in (sys.stdout, sys.stderr, _EVENTS):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main(sys.argv[1:]))
