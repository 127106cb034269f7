"""Resolution for a target: drive pip (in :mod:`lambda_compat.resolve.pip_shim`) and read its answer.

The caller gets a :class:`Resolution`: the files pip chose for the target, downloaded, plus
every file the index offers for the distributions that came back as source, so that the
builder can explain and suggest. Failures that are the user's or the machine's become
:mod:`lambda_compat.errors`; a distribution with no usable file is data, not an exception.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from packaging.utils import canonicalize_name

from .. import errors
from ..host import lifecycle
from ..host.sandbox import BUILD_SANDBOX_HINT, build_sandbox_config
from . import pip_standby
from .pip_standby import isolated_env  # noqa: F401  (where the sdist builders import it)
from ..targets.target import Target


@dataclass(frozen=True)
class LinkInfo:
    """A file an index offers."""

    filename: str
    url: str
    requires_python: Optional[str] = None
    yanked: bool = False
    hash: Optional[str] = None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


@dataclass(frozen=True)
class ResolvedItem:
    """One distribution of the resolved closure, as pip chose it for the target."""

    name: str
    version: str
    link: Optional[LinkInfo]
    path: Optional[Path]          # the downloaded file (wheel or sdist)
    source_dir: Optional[Path]    # a local project directory requirement
    is_direct: bool = False
    user_supplied: bool = False
    requires_python: Optional[str] = None
    extras: Tuple[str, ...] = ()

    @property
    def is_wheel(self) -> bool:
        return self.path is not None and self.path.name.endswith(".whl")

    @property
    def key(self) -> str:
        return canonicalize_name(self.name)


@dataclass(frozen=True)
class NotFound:
    """A requirement for which no file fits the target."""

    project: str
    requirement: str
    parent: Optional[str]
    message: str
    reason_code: Optional[str] = None   # set when the engine knows it (no-build-environment...)


@dataclass(frozen=True)
class Resolution:
    items: Tuple[ResolvedItem, ...]
    links: Mapping[str, Tuple[LinkInfo, ...]]
    not_found: Tuple[NotFound, ...] = ()
    fetch_failures: Tuple[Tuple[str, str], ...] = ()
    cache_hits: Tuple[str, ...] = ()
    log_path: Optional[Path] = None
    message: str = ""
    #: sdist file name -> how its metadata was had (source_metadata): "source" (static, cache,
    #: build, or "" for pip's own path), "attempts" (builds made), "reason_code", "message"
    sources: Mapping[str, dict] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.not_found


@dataclass(frozen=True)
class PipOptions:
    """Index options applied to every pip call lambda-compat makes (resolve *and* build)."""

    index_url: Optional[str] = None
    extra_index_urls: Tuple[str, ...] = ()
    find_links: Tuple[str, ...] = ()
    no_index: bool = False
    isolated: bool = False          # ignore pip.conf and PIP_* variables
    retries: Optional[int] = None
    timeout: Optional[float] = None
    pre: bool = False
    extra_args: Tuple[str, ...] = ()

    def args(self) -> List[str]:
        out: List[str] = []
        if self.isolated:
            out.append("--isolated")
        if self.index_url:
            out += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            out += ["--extra-index-url", url]
        for fl in self.find_links:
            out += ["--find-links", fl]
        if self.no_index:
            out.append("--no-index")
        if self.retries is not None:
            out += ["--retries", str(self.retries)]
        if self.timeout is not None:
            out += ["--timeout", str(self.timeout)]
        if self.pre:
            out.append("--pre")
        out += list(self.extra_args)
        return out


def _links(ds) -> Tuple[LinkInfo, ...]:
    """LinkInfo of every (non-empty) link record."""
    return tuple(link for link in map(_link, ds) if link is not None)
def _link(d: Optional[dict]) -> Optional[LinkInfo]:
    if not d:
        return None
    return LinkInfo(filename=d["filename"], url=d["url"],
                    requires_python=d.get("requires_python"), yanked=bool(d.get("yanked")),
                    hash=d.get("hash"))


def resolve(
    target: Target,
    requirements: Path,
    *,
    workdir: Path,
    cas_dir: Optional[Path],
    pip: PipOptions = PipOptions(),
    on_event: Optional[Callable[[dict], None]] = None,
    env: Optional[Mapping[str, str]] = None,
    allow_source: Optional[Callable[[str, str, Tuple[LinkInfo, ...]], bool]] = None,
    max_passes: int = 12,
    log_dir: Optional[Path] = None,
    build_sandbox: bool = True,
    build_timeout: float = 1800.0,
    source_build: Optional[Mapping] = None,
) -> Resolution:
    """Resolve ``requirements`` for ``target``; download the chosen files into ``workdir``.
    The caller removes ``workdir`` when it is done with the files (pip's process leaves what
    it prefetched and did not take in there, under ``pass*/tmp``).

    Binary first: pip may pick a source distribution only for projects that ``allow_source``
    (given the project's name, the requirement and every file the index offers for it) lets through, so that
    no sdist is built merely to read its metadata when building cannot help. A project with
    no usable wheel is offered to ``allow_source`` and the resolution repeated; one that is
    refused comes back in ``Resolution.not_found``. ``allow_source=None`` allows sources for
    every project (plain pip behaviour).

    Relative paths inside the requirements file are taken relative to the file's directory
    (the project), as when pip runs from there.

    Preparing an sdist's metadata runs its build code: in the build sandbox
    (``build_sandbox=False``: unconfined), each step bounded by ``build_timeout`` seconds.

    ``source_build`` (:func:`lambda_compat.build.resolution.source_build_spec`) says how an sdist's
    metadata may be had for the target (:mod:`lambda_compat.resolve.source_metadata`); None leaves it
    to pip (its own interpreter prepares it).
    """
    allowed: List[str] = []
    for attempt in range(max_passes):
        data, failures, log_path = _run_pip(
            target, requirements, workdir=workdir / f"pass{attempt}", cas_dir=cas_dir, pip=pip,
            on_event=on_event, env=env,
            binary_only=allow_source is not None, allow_source=allowed, log_dir=log_dir,
            sandbox=(build_sandbox, build_timeout), source_build=source_build)
        if (allow_source is None or data["status"] == "ok"
                or data.get("kind") != "not-found"):
            return _resolution(target, requirements, data, failures, log_path)
        newly = []
        for nf in data.get("not_found", []):
            project = canonicalize_name(nf["project"])
            offered = _links(data.get("links", {}).get(nf["project"], []))
            if project in allowed or not offered:
                continue
            if allow_source(project, nf.get("requirement") or project, offered):
                newly.append(project)
        if not newly:
            return _resolution(target, requirements, data, failures, log_path)
        allowed.extend(newly)
        if on_event:
            on_event({"event": "allow-source", "projects": newly})
    raise errors.EnvironmentProblem(
        f"Resolution for {target.name} did not settle after {max_passes} passes.",
        hint="Pin the versions of the distributions that need building from source.")


def _pip_env(env: Optional[Mapping[str, str]], pip: PipOptions) -> dict:
    """The environment of the pip process (without its per-pass TMPDIR)."""
    return pip_standby.pip_env(env, pip.isolated)


def start_standby(requirements: Path, pip: PipOptions = PipOptions(),
                  env: Optional[Mapping[str, str]] = None) -> None:
    """Start the pip process of the next resolution of ``requirements`` now
    (:mod:`lambda_compat.resolve.pip_standby`)."""
    pip_standby.start_for(requirements, pip.isolated, env)


discard_standby = pip_standby.discard


def _run_pip(target: Target, requirements: Path, *, workdir: Path, cas_dir: Optional[Path],
             pip: PipOptions, on_event, env, binary_only: bool, allow_source: List[str],
             log_dir: Optional[Path] = None, sandbox: Tuple[bool, float] = (True, 1800.0),
             source_build: Optional[Mapping] = None):
    workdir.mkdir(parents=True, exist_ok=True)
    build_tmp = workdir / "tmp"   # pip unpacks and prepares sdists in here: the build dir
    build_tmp.mkdir(exist_ok=True)
    download_dir = workdir.parent / "downloads"
    download_dir.mkdir(exist_ok=True)
    if log_dir is not None:  # kept after the run, so error messages can point at it
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"resolve-{target.runtime}-{target.arch}-{os.getpid()}-{workdir.name}.log"
        if log_path.exists():
            log_path.unlink()
    else:
        log_path = workdir / "pip-resolve.log"
    result_path = workdir / "pip-result.json"
    run_env = _pip_env(env, pip)
    profile = os.environ.get("LAMBDA_COMPAT_PROFILE_DIR")  # benchmarks/README.md
    standby = None if profile else pip_standby.take(requirements, run_env)
    if standby is not None:
        read_fd, write_fd = standby.read_fd, standby.write_fd
    else:
        read_fd, write_fd = os.pipe()
    spec = {
        "tags": list(target.tag_strings),
        "marker_environment": target.marker_environment(),
        "cas_dir": str(cas_dir) if cas_dir else None,
        "result_path": str(result_path),
        "events_fd": write_fd,
        "announce_dir": str(workdir / "announced"),  # files announced to us: ours to remove
        "binary_only": binary_only,
        "allow_source": list(allow_source),
        "sandbox": build_sandbox_config(enabled=sandbox[0], timeout=sandbox[1],
                                        writable=[build_tmp]),
        "isolated": pip.isolated,
        "source_build": dict(source_build) if source_build else None,
        "pip_args": [
            "-d", str(download_dir),
            "-r", str(requirements.resolve()),
            "--python-version", target.python_full_version,
            # pip's console output (INFO: what it collects and downloads, and every error)
            # goes to the log file; --log would add DEBUG records, which cost seconds.
            "--progress-bar", "off", "--disable-pip-version-check",
            *pip.args(),
        ],
    }
    spec_path = workdir / "pip-spec.json"
    spec["tmpdir"] = str(build_tmp)   # a standby process sets it itself
    run_env["TMPDIR"] = str(build_tmp)

    def pump() -> None:
        with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if on_event is None:
                    continue
                try:
                    on_event(json.loads(line))
                except ValueError:
                    pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    spec["log_path"] = str(log_path)
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    try:
        returncode = pip_standby.run(standby, spec_path) if standby is not None else None
        if returncode is None:
            with open(log_path, "w", encoding="utf-8") as log:
                prof = (["-m", "cProfile", "-o",
                         str(Path(profile) / f"pip-{target.runtime}-{target.arch}-"
                             f"{os.getpid()}-{time.monotonic_ns()}.prof")] if profile else [])
                returncode, _ = lifecycle.run(
                    [sys.executable, *prof, "-m", "lambda_compat.resolve.pip_shim",
                     str(spec_path)],
                    cwd=str(requirements.resolve().parent), env=run_env, pass_fds=(write_fd,),
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                )
    finally:
        os.close(write_fd)
        reader.join(timeout=10)
    if returncode != 0 or not result_path.exists():
        lines = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        tail = "\n".join(lines[-15:])
        raise errors.EnvironmentProblem(
            f"pip could not run for {target.name} (exit {returncode}).",
            hint=f"{tail}\nFull log: {log_path}")
    data = json.loads(result_path.read_text(encoding="utf-8"))
    failures = tuple((f["url"], f["reason"]) for f in data.get("fetch_failures", []))
    return data, failures, log_path


def _resolution(target: Target, requirements: Path, data: dict,
                failures: Tuple[Tuple[str, str], ...], log_path: Path) -> Resolution:
    if data["status"] == "ok":
        items = tuple(
            ResolvedItem(
                name=i["name"], version=i["version"], link=_link(i.get("link")),
                path=Path(i["path"]) if i.get("path") else None,
                source_dir=Path(i["source_dir"]) if i.get("source_dir") else None,
                is_direct=i.get("is_direct", False), user_supplied=i.get("user_supplied", False),
                requires_python=i.get("requires_python"), extras=tuple(i.get("extras", ())),
            )
            for i in data["items"]
        )
        links: Dict[str, Tuple[LinkInfo, ...]] = {
            canonicalize_name(k): _links(v) for k, v in data.get("links", {}).items()}
        return Resolution(items=items, links=links, fetch_failures=failures,
                          cache_hits=tuple(data.get("cache_hits", ())), log_path=log_path,
                          sources=dict(data.get("sources") or {}))
    return _failure(target, requirements, data, failures, log_path)


def _hash_problem(e: dict) -> errors.HashProblem:
    """One of pip's hash errors (as the engine reported it) as data."""
    got = e.get("got")
    if isinstance(got, dict):
        actual = ", ".join(f"{k}:{v}" for k, v in sorted(got.items())) or None
    else:
        actual = f"sha256:{got}" if got else None
    expected = [f"{k}:{v}" for k, values in sorted((e.get("allowed") or {}).items())
                for v in values]
    return errors.HashProblem(e.get("name") or e.get("requirement"), e.get("filename"),
                              expected, actual, e.get("comes_from") or None)


def _failure(target: Target, requirements: Path, data: dict,
             failures: Tuple[Tuple[str, str], ...], log_path: Path) -> Resolution:
    kind = data.get("kind")
    message = data.get("message", "")
    where = f"(full pip log: {log_path})"
    if kind == "hash":
        problems = [_hash_problem(e) for e in data.get("hash_errors", [])]
        lines = [f"  {p.name or '?'}: the file chosen for {target.name}, {p.describe()}"
                 for p in problems]
        raise errors.HashMismatch(
            f"Hash check failed for {target.name}: pip would install files whose hashes the "
            f"requirements do not list.\n" + "\n".join(lines),
            hint="Add the hashes of the target's files (for example with `pip hash FILE` on the "
                 "file named above, or regenerate the lock for every platform you deploy to).",
            mismatches=problems)
    if kind == "not-found":
        if failures and not any(data.get("links", {}).values()):
            urls = "; ".join(f"{u} ({r})" for u, r in failures[:3])
            raise errors.IndexUnreachable(
                f"Could not reach the package index for {target.name}: {urls}.",
                hint="Check the network, the index URL and proxy settings, then run again.")
        not_found = []
        links: Dict[str, Tuple[LinkInfo, ...]] = {}
        for nf in data.get("not_found", []):
            project = canonicalize_name(nf["project"])
            offered = _links(data.get("links", {}).get(nf["project"], []))
            links[project] = offered
            if not offered:
                if failures:
                    urls = "; ".join(f"{u} ({r})" for u, r in failures[:3])
                    raise errors.IndexUnreachable(
                        f"Could not find {nf['requirement']} because the index could not be "
                        f"reached: {urls}.",
                        hint="Check the network, the index URL and proxy settings.")
                raise errors.UnknownPackage(
                    f"No index knows a project named {nf['project']!r} "
                    f"(required as {nf['requirement']}"
                    f"{' by ' + nf['parent'] if nf.get('parent') else ''}, from {requirements}).",
                    hint="Check the spelling of the name and the --index-url/--extra-index-url "
                         "options; private projects need their index in the requirements file.")
            not_found.append(NotFound(project=project, requirement=nf["requirement"],
                                      parent=nf.get("parent"), message=message))
        if not not_found:
            raise errors.DependenciesMissing(
                f"pip could not resolve the requirements for {target.name}: {message}",
                hint="\n".join(data.get("log", [])[-10:]) + f"\n{where}")
        return Resolution(items=(), links=links, not_found=tuple(not_found),
                          fetch_failures=failures, log_path=log_path, message=message)
    if kind == "metadata-failed":
        package = data.get("package") or "a source distribution"
        name = canonicalize_name(package.split()[0]) if package else "?"
        links = {
            canonicalize_name(k): _links(v) for k, v in data.get("links", {}).items()}
        code = data.get("reason_code")
        if code:  # lambda_compat.resolve.source_metadata said why, with the real cause first
            text = f"{message}\n{where}" if code == "sdist-build-failed" else message
        else:
            log = data.get("log", [])
            # The build backend's own last words come right before pip's "[end of output]".
            ends = [i for i, line in enumerate(log) if "end of output" in line]
            tail = "\n".join(log[max(0, ends[-1] - 12):ends[-1]] if ends else log[-12:])
            text = (f"building the metadata of {data.get('filename') or package} failed:\n"
                    f"{tail}\n{where}")
        return Resolution(items=(), links=links, not_found=(NotFound(
            project=name, requirement=data.get("requirement") or package, parent=None,
            message=text, reason_code=code),),
            fetch_failures=failures, log_path=log_path, message=message,
            sources=dict(data.get("sources") or {}))
    if kind == "sandbox-refused":
        raise errors.BuildSandboxUnavailable(
            f"{message} (needed to prepare the metadata of "
            f"{data.get('filename') or 'a source distribution'} for {target.name}).",
            hint=BUILD_SANDBOX_HINT)
    if kind == "requires-python":
        raise errors.DependenciesMissing(
            f"No version satisfies the requirements on {target.runtime}: {message}",
            hint=f"Pin versions that support Python {target.python_version[0]}."
                 f"{target.python_version[1]}. {where}")
    if kind == "network":
        raise errors.IndexUnreachable(f"Network error while downloading: {message}",
                                      hint=f"Check the network and run again. {where}")
    if kind == "installation":
        raise errors.BadInput(f"pip rejected the requirements: {message}", hint=where)
    raise errors.EnvironmentProblem(
        f"Unexpected error in the pip engine: {message}",
        hint=(data.get("traceback") or "") + where)
