"""The ``lambda-compat check`` subcommand (argument parsing, progress, output).

Exit codes: 0 compatible on every target checked, 1 incompatible somewhere, 2 bad input,
3 environment problem (an explicitly requested backend could not run, index unreachable).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path


from .. import errors
from .options import add_resolution_options, add_target_options, build_config, subcommand

BACKENDS = ("auto", "static", "host", "rootfs", "container")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subcommand(
        subparsers, "check", exit_codes={
            0: "compatible on every target checked",
            1: "incompatible on at least one target (findings say why, with a fix)",
            2: "bad input (unreadable file, invalid requirement, unknown runtime/arch)",
            3: "environment problem (a requested backend could not run, index unreachable)"},
        help="will it import on Lambda? judge requirements, a bundle or a zip per "
                      "target",
        description="Check, per Lambda target, whether a requirements file, a bundle "
                    "directory, a deployment .zip and/or layers import on Lambda. Static "
                    "proof (ELF, tags, metadata, sizes) for every target, then an import in "
                    "a Lambda-like environment where one is available; the output says "
                    "which proof each target got.")
    p.add_argument("input", nargs="?",
                   help="requirements file, bundle directory or deployment .zip")
    p.add_argument("-r", "--requirements", help="requirements file (same as the positional)")
    p.add_argument("--layer", action="append", default=[], metavar="ZIP_OR_DIR",
                   help="a layer (.zip or directory), in order; repeatable")
    add_target_options(p, repeatable=True)
    p.add_argument("--include-deprecated", action="store_true",
                   help="also check the runtimes whose functions can no longer be updated, "
                        "when no --runtime is given")
    p.add_argument("--date", help=argparse.SUPPRESS)  # judge the lifecycle as of YYYY-MM-DD
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="dynamic proof: auto (strongest available per target, default), "
                        "static (none), host, rootfs, container")
    p.add_argument("--image", help="container image for the container backend")
    p.add_argument("--rootfs", help="unpacked image root for the rootfs backend")
    p.add_argument("--python", help="interpreter for the host backend (and sdist builds)")
    p.add_argument("--engine", help="container engine (podman or docker)")
    p.add_argument("--handler", help="also import this handler (module.function)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds per dynamic import run (default 120)")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text (default) or json: a versioned report "
                        "(schemas/check-report.schema.json)")
    p.add_argument("-o", "--output", help="write the report to this file (atomically) "
                                          "instead of standard output")
    add_resolution_options(p)
    p.add_argument("--jobs", type=int, default=4, help="targets checked at once (default 4)")
    p.add_argument("-v", "--verbose", action="store_true", help="progress even when not a tty")
    p.set_defaults(func=_check)
    return p


def _today(value) -> datetime.date:
    if not value:
        return datetime.date.today()
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise errors.BadInput(f"--date {value!r} is not a date.",
                              hint="Use YYYY-MM-DD.") from None


def _check(args: argparse.Namespace) -> int:
    from ..check.core import run_check
    from ..check.inputs import CheckInput, CheckOptions, select_targets
    from .check_render import render_text
    from .style import ProgressUI, use_colour
    if args.requirements and args.input:
        raise errors.BadInput("two inputs given (positional and -r).", hint="Pass only one.")
    if args.jobs < 1:
        raise errors.BadInput("--jobs must be at least 1.")
    today = _today(args.date)
    path = Path(args.requirements or args.input) if (args.requirements or args.input) else None
    inp = CheckInput.detect(path, [Path(p) for p in args.layer],
                            requirements=bool(args.requirements))
    targets = select_targets(args.runtime, args.arch, today=today,
                             include_deprecated=args.include_deprecated)
    build = build_config(args)
    options = CheckOptions(backend=args.backend, image=args.image,
                           rootfs=Path(args.rootfs) if args.rootfs else None,
                           python=args.python, engine=args.engine, handler=args.handler,
                           timeout=args.timeout, jobs=args.jobs, build=build)
    with ProgressUI(sys.stderr, verbose=args.verbose) as ui:
        report = run_check(inp, targets, options, ui=ui, today=today)
    if args.format == "json":
        text = json.dumps(report.to_json(), indent=2) + "\n"
    else:
        stream_colour = False if args.output else use_colour(sys.stdout)
        text = render_text(report, stream_colour) + "\n"
    if args.output:
        _write_atomically(Path(args.output), text)
    else:
        sys.stdout.write(text)
    return report.exit_code


def _write_atomically(path: Path, text: str) -> None:
    if path.exists() and not path.is_file():
        # A device or a pipe (-o /dev/stdout, /dev/null): write to it; never replace it.
        if path.is_dir():
            raise errors.BadInput(f"{path}: is a directory; -o names the report file.",
                                  hint=f"Use for example -o {path / 'check.json'}.")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise errors.BadInput(f"{path}: cannot write the report ({exc.strerror or exc}).",
                              hint="Check that the directory exists and is writable.") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
