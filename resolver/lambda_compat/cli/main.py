"""The ``lambda-compat`` command. ``main(argv)`` returns the exit code (no subprocess needed).

Exit codes: 0 built, 1 dependencies missing, 2 bad input, 3 environment problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, List, Optional, TextIO

from .. import __version__
from .. import errors
from ..host import lifecycle
from ..build.builder import build_dependencies
from ..build.report import BuildReport
from .options import add_resolution_options, build_config, subcommand
from .style import ProgressUI, Style, use_colour

_BUILD_DESCRIPTION = """\
Resolve a requirements file for one AWS Lambda target (runtime x architecture), not for this
machine, and install the result flat into the output directory: the target's markers, wheel
tags, glibc ceiling and Requires-Python decide every choice. Distributions with no usable
wheel are built from source for the target where this machine can, else reported missing
with the reason and a fix. The output directory is replaced only when the build succeeds."""



def _table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def render_text(report: BuildReport, colour: bool) -> str:
    s = Style(colour)
    t = report.target
    out = [s.bold(f"{t.runtime}/{t.arch} (CPython {t.python_full_version}, glibc "
                  f"{'.'.join(map(str, t.glibc))}, {t.machine})")]
    rows = [["DISTRIBUTION", "VERSION", "HOW", "FILE"]]
    for d in sorted(report.distributions, key=lambda d: d.name.lower()):
        rows.append([d.name, d.version or "?", d.phase, d.file or "-"])
    out.append(_table(rows))
    for d in sorted(report.distributions, key=lambda d: d.name.lower()):
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambda-compat",
                                description="Will these Python dependencies import on AWS "
                                            "Lambda? Build them for a Lambda target.")
    p.add_argument("--version", action="version", version=f"lambda-compat {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
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
    b.add_argument("--runtime", required=True, metavar="RUNTIME",
                   help="Lambda runtime: {runtimes}")
    b.add_argument("--arch", default="x86_64", help="x86_64 (default) or arm64")
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
    for name in _COMMAND_MODULES:
        _command_module(name).add_parser(sub)
    return p


# Each further subcommand lives in its own module exposing ``add_parser(subparsers)``; the
# parser it adds sets ``func`` (a callable taking the argparse Namespace, returning the exit
# code). Errors derived from errors.LambdaCompatError are rendered by main().
_COMMAND_MODULES = ("check", "registry", "package")


def _command_module(name: str):
    import importlib
    return importlib.import_module(f"{__package__}.{name}")


class _ClosablePipe:
    """Standard output that ends quietly when the reader goes away (``... | head -1``).

    The first write to a closed pipe points file descriptor 1 at /dev/null, so neither the
    rest of the output nor the interpreter's final flush raises; the command goes on and
    returns its own exit code.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.closed_by_reader = False

    def _detach(self) -> None:
        self.closed_by_reader = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)

    def write(self, text: str) -> int:
        if self.closed_by_reader:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._detach()
            return len(text)

    def flush(self) -> None:
        if self.closed_by_reader:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._detach()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    real_stdout = sys.stdout
    if hasattr(real_stdout, "fileno") and not isinstance(real_stdout, _ClosablePipe):
        try:
            real_stdout.fileno()
            sys.stdout = _ClosablePipe(real_stdout)  # type: ignore[assignment]
        except (OSError, ValueError):  # pytest's capture and other in-memory streams
            pass
    try:
        return _run(args)
    finally:
        sys.stdout = real_stdout


def _run(args: argparse.Namespace) -> int:
    try:
        with lifecycle.signals_raise():
            return args.func(args)
    except errors.LambdaCompatError as exc:
        print(f"lambda-compat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lambda-compat: interrupted; the output directory was left unchanged.",
              file=sys.stderr)
        return 130
    except lifecycle.Terminated as exc:
        print(f"lambda-compat: terminated ({exc}); child processes were stopped, temporary "
              f"files removed and the output directory left unchanged.", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say so plainly, keep the traceback in a file
        import tempfile
        import traceback
        fd, path = tempfile.mkstemp(prefix="lambda-compat-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            traceback.print_exc(file=f)
        print(f"lambda-compat: internal error: {type(exc).__name__}: {exc}\n"
              f"This is a bug in lambda-compat; the traceback is in {path}. The output "
              f"directory was left unchanged.", file=sys.stderr)
        return 3
    return 2


def _build(args: argparse.Namespace) -> int:
    req = args.requirements or args.requirements_file
    if not req:
        raise errors.BadInput("no requirements file given.",
                              hint="Pass one: lambda-compat build -r requirements.txt ...")
    if args.requirements and args.requirements_file:
        raise errors.BadInput("two requirements files given (positional and -r).",
                              hint="Pass only one.")
    config = build_config(args, allow_missing=args.allow_missing,
                          build_above_glibc_ceiling=args.build_above_glibc_ceiling,
                          no_binary=tuple(args.no_binary), jobs=args.jobs,
                          force_output=args.force)
    with ProgressUI(sys.stderr, verbose=args.verbose) as ui:
        report = build_dependencies(args.output, req, args.runtime, ui=ui, config=config,
                                    architecture=args.arch)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_text(report, use_colour(sys.stdout)))
    return 0 if report.ok else errors.DependenciesMissing.exit_code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
