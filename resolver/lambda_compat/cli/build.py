"""The ``lambda-compat build`` subcommand (arguments, progress, text/JSON output)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import errors
from .options import add_resolution_options, add_target_options, build_config, subcommand

if TYPE_CHECKING:
    from ..build.report import BuildReport

_BUILD_DESCRIPTION = """\
Resolve a requirements file for one AWS Lambda target (runtime x architecture), not for this
machine, and install the result flat into the output directory: the target's markers, wheel
tags, glibc ceiling and Requires-Python decide every choice. Distributions with no usable
wheel are built from source for the target where this machine can, else reported missing
with the reason and a fix. The output directory is replaced only when the build succeeds."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    b = subcommand(
        sub, "build", help="build requirements into a flat bundle for one target",
        description=_BUILD_DESCRIPTION, exit_codes={
            0: "built: every distribution is in the output directory",
            1: "dependencies missing for the target (the report says why and how to fix)",
            2: "bad input (unreadable file, invalid requirement, unknown runtime/arch, hash "
               "mismatch, unknown package)",
            3: "environment problem (index unreachable, no interpreter or sandbox)"})
    b.add_argument("requirements_file", nargs="?", help="requirements file (same as -r)")
    b.add_argument("-r", "--requirements", dest="requirements", help="requirements file")
    add_target_options(b)
    b.add_argument("-o", "--output", required=True,
                   help="artifacts directory to (re)place: new, empty or written by "
                        "lambda-compat before")
    b.add_argument("--force", action="store_true",
                   help="replace the -o directory even if lambda-compat did not write it "
                        "(never the working or project directory)")
    b.add_argument("--format", choices=["text", "json"], default="text",
                   help="text (default) or json: a versioned report "
                        "(schemas/build-report.schema.json)")
    b.add_argument("--python", help="interpreter of the target's Python version for sdists")
    add_resolution_options(b)
    b.add_argument("--allow-missing", action="store_true",
                   help="install what works even when some distributions are missing")
    b.add_argument("--build-above-glibc-ceiling", action="store_true",
                   help="build from source even when the project's wheels for that version "
                        "need a newer glibc than the runtime has")
    b.add_argument("--no-binary", action="append", default=[], metavar="NAME",
                   help="build NAME from its sdist even where a compatible wheel exists "
                        "(repeatable or comma-separated; as pip's --no-binary)")
    b.add_argument("--jobs", type=int, default=4,
                   help="downloads, builds and installs run at once (default 4)")
    b.add_argument("-v", "--verbose", action="store_true", help="progress even when not a tty")
    b.set_defaults(func=_build)
    return b


def render_text(report: BuildReport, colour: bool) -> str:
    from .style import Style, table
    s = Style(colour)
    t = report.target
    out = [s.bold(f"{t.runtime}/{t.arch} (CPython {t.python_full_version}, glibc "
                  f"{'.'.join(map(str, t.glibc))}, {t.machine})")]
    rows = [["DISTRIBUTION", "VERSION", "HOW", "FILE"]]
    for d in sorted(report.distributions, key=lambda d: d.name.lower()):
        rows.append([d.name, d.version or "?", d.phase, d.file or "-"])
    out.append(table(rows))
    for d in sorted(report.distributions, key=lambda d: d.name.lower()):
        if d.build_environment:
            out.append(f"{d.name} {d.version or ''}: built in: {d.build_environment}")
        if d.registry_entry:
            out.append(f"{d.name}: platform-tagged wheel without native code, accepted by "
                       f"registry entry {d.registry_entry}")
    for d in report.distributions:
        warn = [f for f in d.findings if f.severity == "warning"]
        for f in warn:
            out.append(s.warning() + f": {d.name}: {f.message} {f.fix}")
    for d in report.missing:
        out.append("")
        out.append(s.bad(f"{d.name} {d.version or ''}: {d.reason}"))
        for a in d.attempts:
            out.append("    " + a.replace("\n", "\n    "))
        if d.suggestion:
            out.append(f"  fix: {d.suggestion}")
    for w in report.warnings:
        out.append(s.warning() + f": {w}")
    out.append("")
    if report.ok:
        n = len(report.distributions)
        out.append(s.ok(f"built {n} distribution{'' if n == 1 else 's'} into "
                        f"{report.artifacts_dir} in {report.seconds:.1f} s"))
    elif report.installed:
        out.append(s.bad(f"{len(report.missing)} missing; the others were installed into "
                         f"{report.artifacts_dir} (--allow-missing)"))
    else:
        out.append(s.bad(f"{len(report.missing)} of {len(report.distributions)} distributions "
                         f"missing for {t.runtime}/{t.arch}; {report.artifacts_dir} was left "
                         f"unchanged"))
    return "\n".join(out)


def _warm_up(args: argparse.Namespace) -> None:
    """Probe the interpreters a build for ``--runtime pythonX.Y`` would ask for (and bwrap)
    on a thread while the builder is imported (host/interpreters.warm_up); an unusual
    runtime name is left to the builder, which probes what it needs."""
    import platform
    import re

    from ..host import interpreters
    from ..host import sandbox as host_sandbox
    found = re.fullmatch(r"python(\d+)\.(\d+)", str(args.runtime or ""))
    if found:
        sandboxed = not getattr(args, "no_build_sandbox", False)
        interpreters.warm_up((int(found.group(1)), int(found.group(2))), platform.machine(),
                             getattr(args, "python", None),
                             also=host_sandbox.bwrap_works if sandboxed else None)


def _build(args: argparse.Namespace) -> int:
    req = args.requirements or args.requirements_file
    if not req:
        raise errors.BadInput("no requirements file given.",
                              hint="Pass one: lambda-compat build -r requirements.txt ...")
    if args.requirements and args.requirements_file:
        raise errors.BadInput("two requirements files given (positional and -r).",
                              hint="Pass only one.")
    if Path(req).is_file():
        # first: pip's process imports pip while the builder is imported and starts
        # (resolve.pip_standby; the resolution takes it when its environment is this one)
        from ..resolve import pip_standby
        pip_standby.start_for(Path(req), bool(args.isolated))
    _warm_up(args)
    config = build_config(args, allow_missing=args.allow_missing,
                          build_above_glibc_ceiling=args.build_above_glibc_ceiling,
                          no_binary=tuple(args.no_binary), jobs=args.jobs,
                          force_output=args.force)
    from ..build.builder import build_dependencies
    from .style import ProgressUI, use_colour
    with ProgressUI(sys.stderr, verbose=args.verbose) as ui:
        report = build_dependencies(args.output, req, args.runtime, ui=ui, config=config,
                                    architecture=args.arch)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_text(report, use_colour(sys.stdout)))
    return 0 if report.ok else errors.DependenciesMissing.exit_code
