"""The ``lambda-compat package`` subcommand (arguments, progress, text/JSON output).

Exit codes: 0 zips written, 1 not written because of findings (a dependency missing for the
target, a verification error, the handler failed to import, over Lambda's size limit),
2 bad input, 3 environment problem. Nothing is written unless the exit code is 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, List

from .. import errors
from ..package.reprozip import DEFAULT_LEVEL
from ..units import kib_or_mib
from .options import add_resolution_options, add_target_options, build_config, subcommand

if TYPE_CHECKING:
    from ..package.model import PackageResult

HANDLER_BACKENDS = ("auto", "container", "rootfs", "host")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subcommand(
        subparsers, "package", exit_codes={
            0: "zips written",
            1: "nothing written: the dependencies or the project have findings for the target",
            2: "bad input (project, lock file, options)",
            3: "environment problem (index unreachable, no interpreter or sandbox)"},
        help="build deployment.zip (and layer.zip) for one target, verified",
        description="Package a project (app.py, chalicelib/, vendor/, requirements.txt or a "
                    "lock file) into a reproducible deployment.zip for one Lambda target; "
                    "with --layer the dependencies and vendor/ go into layer.zip. "
                    "Everything is verified for the target before anything is written.")
    p.add_argument("project", nargs="?", default=".",
                   help="project directory (default: the current directory)")
    add_target_options(p)
    p.add_argument("-o", "--output", help="output directory (default: PROJECT/dist)")
    p.add_argument("--layer", action="store_true",
                   help="dependencies and vendor/ into layer.zip (python/lib/pythonX.Y/"
                        "site-packages/), only the app into deployment.zip")
    p.add_argument("--source", action="append", default=[], metavar="PATH",
                   help="a file or directory of your code, placed at the top level under its "
                        "own name (repeatable; default app.py and chalicelib/)")
    p.add_argument("-r", "--requirements", metavar="FILE",
                   help="requirements file or lock file (Pipfile.lock, poetry.lock, uv.lock, "
                        "pylock.toml), relative to the current directory; default: found in "
                        "the project")
    p.add_argument("--vendor", metavar="DIR", help="vendor directory (default vendor/)")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="leave matching files/folders of sources and vendor/ out (glob, "
                        "repeatable)")
    p.add_argument("--strip", default="", metavar="CATEGORIES",
                   help="remove these folders from the dependencies: {strip_folders}; "
                        "comma-separated")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the check against the target (NOT recommended; the result says "
                        "so loudly)")
    p.add_argument("--check-handler", metavar="MODULE.FUNCTION",
                   help="import the handler (e.g. app.handler) in the target's environment "
                        "before writing; LAMBDA_COMPAT_CLI_MODE=1 is set while it imports")
    p.add_argument("--backend", choices=HANDLER_BACKENDS, default="auto",
                   help="where --check-handler imports (default: the strongest available)")
    p.add_argument("--image", help="container image for --backend container")
    p.add_argument("--rootfs", help="unpacked image root for --backend rootfs")
    p.add_argument("--python", help="interpreter of the target's Python version (sdist builds, "
                                    "host backend)")
    p.add_argument("--handler-timeout", type=float, default=120.0,
                   help="seconds for the handler import (default 120)")
    p.add_argument("--compression-level", type=int, default=DEFAULT_LEVEL,
                   help=f"deflate level 0-9 (default {DEFAULT_LEVEL}, as zip)")
    p.add_argument("--recompress", action="store_true",
                   help="compress every file here instead of copying the deflate streams of "
                        "files installed unchanged from wheels")
    p.add_argument("--follow-symlinks-outside", action="store_true",
                   help="package what symbolic links pointing outside the project (or into "
                        ".git) lead to; without it such a link is an error")
    p.add_argument("--force", action="store_true",
                   help="overwrite deployment.zip/layer.zip in an output directory "
                        "lambda-compat did not write")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text (default) or json: a versioned result "
                        "(schemas/package-result.schema.json)")
    add_resolution_options(p)
    p.add_argument("--jobs", type=int, default=4,
                   help="downloads, builds and installs run at once (default 4)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress even when not a tty")
    p.set_defaults(func=_package)
    return p


def _progress_ui(stream: Any, verbose: bool) -> Any:
    """The build's progress plus the packaging steps, and the compressed sizes."""
    from .style import ProgressUI

    class _ProgressUI(ProgressUI):
        def _on_package_sizes(self, target: str, data: dict) -> None:
            if data.get("deployment_zip_bytes") is not None:
                self._say(f"compressed: {_size_line(data)}")

    return _ProgressUI(stream, verbose=verbose)


def _size_line(s: dict) -> str:
    from ..package.model import UNZIPPED_LIMIT, ZIP_LIMIT
    parts = [f"{kib_or_mib(s['unzipped_bytes'])} unzipped of {kib_or_mib(UNZIPPED_LIMIT)}"]
    if s.get("deployment_zip_bytes") is not None:
        parts.append(f"deployment.zip {kib_or_mib(s['deployment_zip_bytes'])}")
    if s.get("layer_zip_bytes") is not None:
        parts.append(f"layer.zip {kib_or_mib(s['layer_zip_bytes'])}")
    return ", ".join(parts) + f" (direct upload limit {kib_or_mib(ZIP_LIMIT)} per zip)"


def render_text(result: PackageResult, colour: bool) -> str:
    from .style import Style, table
    s = Style(colour)
    t = result.target
    p = result.project
    out: List[str] = [s.bold(f"{t.runtime}/{t.arch} (CPython {t.python_full_version}, glibc "
                             f"{'.'.join(map(str, t.glibc))}, {t.machine})")]
    parts = [x.name + ("/" if x.path.is_dir() else "") for x in p.sources]
    if p.vendor:
        parts.append(p.vendor.name + "/ (vendor)")
    if p.dependencies:
        parts.append(p.dependencies.name)
    out.append(f"project {p.root}: {', '.join(parts)}")
    if result.lock is not None:
        lk = result.lock
        line = (f"{lk.path.name}: {len(lk.pins)} packages for {t.name}")
        if lk.excluded_dev:
            line += f"; development-only, left out: {', '.join(lk.excluded_dev)}"
        if lk.excluded_marker:
            line += f"; not for this target: {', '.join(lk.excluded_marker)}"
        out.append(line)
    if result.build is not None and result.build.distributions:
        rows = [["DISTRIBUTION", "VERSION", "HOW", "FILE"]]
        for d in sorted(result.build.distributions, key=lambda d: d.name.lower()):
            rows.append([d.name, d.version or "?", d.phase, d.file or "-"])
        out.append(table(rows))
    if result.stripped:
        out.append(f"stripped {len(result.stripped)} folders ({kib_or_mib(result.stripped_bytes)}) "
                   f"from the dependencies; RECORD files rewritten")
    if result.handler is not None:
        h = result.handler
        label = f"handler {h.handler} imports ({h.proof} proof: {h.backend})"
        if h.ok:
            out.append(s.ok(label))
        else:
            out.append(s.bad(f"handler {h.handler} failed to import ({h.proof} proof: "
                             f"{h.backend}): {h.error}"))
            if h.detail:
                out.append("    " + h.detail.strip().replace("\n", "\n    "))
            for f in result.findings:
                if f.code == "handler-import-failed" and f.fix:
                    out.append(f"  fix: {f.fix}")
    errors_ = [f for f in result.findings
               if f.severity == "error" and f.code != "handler-import-failed"]
    warns = [f for f in result.findings if f.severity != "error"]
    for f in errors_:
        where = f" ({f.file})" if f.file else ""
        out.append(s.bad(f"{f.distribution}{where}: {f.message}"))
        if f.fix:
            out.append(f"  fix: {f.fix}")
    for f in warns:
        out.append(s.warning() + f": {f.distribution}: {f.message} {f.fix}".rstrip())
    for w in result.warnings:
        out.append(s.warning() + f": {w}")
    if result.sizes is not None:
        out.append("size: " + _size_line(result.sizes.to_json()))
    out.append("")
    if result.ok:
        verified = "verified" if result.verified else s("NOT VERIFIED", "bold yellow")
        for z in result.zips:
            out.append(s.ok(f"wrote {z.path} ({z.files} files, {kib_or_mib(z.compressed_bytes)}, "
                            f"sha256 {z.sha256}) - {verified} for {t.name}"))
    else:
        why = {"dependencies-missing": "dependencies are missing for the target",
               "verification-failed": "the bundle does not pass the check for the target",
               "handler-import-failed": "the handler does not import",
               "size-limit": "the function is over Lambda's size limit"}.get(
                   result.failure or "", result.failure or "failed")
        out.append(s.bad(f"nothing written: {why}; {result.output_dir} was left unchanged"))
    return "\n".join(out)


def _package(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise errors.BadInput("--jobs must be at least 1.")
    from ..package.core import package_project
    from ..package.model import PackageOptions
    from ..package.project import load_project
    from .style import use_colour
    strip = tuple(x.strip() for x in args.strip.split(",") if x.strip())
    # -r is relative to the current directory (as for build); --source and --vendor name
    # parts of the project and are relative to the project directory.
    requirements = str(Path(args.requirements).absolute()) if args.requirements else None
    project = load_project(Path(args.project), sources=args.source,
                           requirements=requirements, vendor=args.vendor,
                           exclude=args.exclude)
    output = Path(args.output) if args.output else project.root / "dist"
    config = build_config(args, jobs=args.jobs)
    options = PackageOptions(layer=args.layer, strip=strip, verify=not args.no_verify,
                             check_handler=args.check_handler, backend=args.backend,
                             image=args.image,
                             rootfs=Path(args.rootfs) if args.rootfs else None,
                             python=args.python, handler_timeout=args.handler_timeout,
                             compression_level=args.compression_level, jobs=args.jobs,
                             reuse_wheel_streams=not args.recompress,
                             follow_symlinks_outside=args.follow_symlinks_outside,
                             force=args.force)
    if args.no_verify:
        print("lambda-compat: WARNING: --no-verify: the bundle is NOT checked against the "
              "target; it may not import on Lambda.", file=sys.stderr)
    with _progress_ui(sys.stderr, args.verbose) as ui:
        result = package_project(project, output, args.runtime, args.arch, ui=ui,
                                 config=config, options=options)
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(render_text(result, use_colour(sys.stdout)))
    return result.exit_code
