"""The ``lambda-compat`` command. ``main(argv)`` returns the exit code (no subprocess needed).

Exit codes: 0 built, 1 dependencies missing, 2 bad input, 3 environment problem.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, List, Optional, TextIO

from . import __version__, errors
from .builder import build_dependencies
from .report import BuildReport
from .cli_options import add_resolution_options, build_config
from .ui import sdist_build_text


def _use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


class _Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def ok(self, t: str) -> str:
        return self("✓ " + t if self.enabled else "ok   " + t, "32")

    def bad(self, t: str) -> str:
        return self("✗ " + t if self.enabled else "FAIL " + t, "31")

    def dim(self, t: str) -> str:
        return self(t, "2")

    def bold(self, t: str) -> str:
        return self(t, "1")


class TerminalUI:
    """Progress on stderr; quiet when stderr is not a terminal unless verbose."""

    def __init__(self, stream: TextIO, verbose: bool = False) -> None:
        self.stream = stream
        self.style = _Style(_use_colour(stream))
        self.live = verbose or (hasattr(stream, "isatty") and stream.isatty())

    def _print(self, text: str) -> None:
        if self.live:
            print(text, file=self.stream, flush=True)

    def event(self, kind: str, /, **data: Any) -> None:
        s = self.style
        name = kind
        build = sdist_build_text(kind, data)
        if build is not None:
            # a long build is never silent: its periodic progress shows even without a tty
            if self.live or kind == "sdist-build-progress":
                print(s.dim(f"  {build}"), file=self.stream, flush=True)
        elif name == "start":
            self._print(s.bold(f"lambda-compat: building {data['requirements']} for "
                               f"{data['target']}"))
        elif name == "pip-collecting":
            self._print(s.dim(f"  resolving {data.get('what', '')}"))
        elif name == "resolved":
            self._print(f"  resolved {data['count']} distributions "
                        f"({data.get('cache_hits', 0)} files from cache)")
        elif name == "dist-start" and data.get("phase") != "wheel":
            how = {"built": "building", "built-no-compiler": "building without a compiler"}
            self._print(f"  {how.get(data['phase'], data['phase'])} {data['name']} "
                        f"{data['version']}" + (f" with {data['interpreter']}"
                                                if data.get("interpreter") else ""))
        elif name == "dist-done":
            label = f"{data['name']} {data.get('version') or ''} ({data['phase']})"
            self._print("  " + (s.bad(label) if data["phase"] == "missing" else s.ok(label)))
        elif name == "install-start":
            self._print(f"  installing {data['count']} wheels into {data['dest']}")


def _table(rows: List[List[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def render_text(report: BuildReport, colour: bool) -> str:
    s = _Style(colour)
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
            out.append(s("warning", "33") + f": {d.name}: {f.message} {f.fix}")
    for d in report.missing:
        out.append("")
        out.append(s.bad(f"{d.name} {d.version or ''}: {d.reason}"))
        for a in d.attempts:
            out.append("    " + a.replace("\n", "\n    "))
        if d.suggestion:
            out.append(f"  fix: {d.suggestion}")
    for w in report.warnings:
        out.append(s("warning", "33") + f": {w}")
    out.append("")
    if report.ok:
        out.append(s.ok(f"built {len(report.distributions)} distributions into "
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
    b = sub.add_parser("build", help="build requirements into a flat bundle for one target")
    b.add_argument("requirements_file", nargs="?", help="requirements file (same as -r)")
    b.add_argument("-r", "--requirements", dest="requirements", help="requirements file")
    b.add_argument("--runtime", required=True, help="Lambda runtime, e.g. python3.12")
    b.add_argument("--arch", default="x86_64", help="x86_64 (default) or arm64")
    b.add_argument("-o", "--output", required=True, help="artifacts directory to (re)place")
    b.add_argument("--format", choices=["text", "json"], default="text")
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
    b.add_argument("--jobs", type=int, default=4)
    b.add_argument("-v", "--verbose", action="store_true", help="progress even when not a tty")
    b.set_defaults(func=_build)
    for name in _COMMAND_MODULES:
        _command_module(name).add_parser(sub)
    return p


# Each further subcommand lives in its own module exposing ``add_parser(subparsers)``; the
# parser it adds sets ``func`` (a callable taking the argparse Namespace, returning the exit
# code). Errors derived from errors.LambdaCompatError are rendered by main().
_COMMAND_MODULES = ("check_cmd", "registry_cmd", "package_cmd")


def _command_module(name: str):
    import importlib
    return importlib.import_module(f"{__package__}.{name}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except errors.LambdaCompatError as exc:
        print(f"lambda-compat: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lambda-compat: interrupted; the output directory was left unchanged.",
              file=sys.stderr)
        return 130
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
                          no_binary=tuple(args.no_binary), jobs=args.jobs)
    ui = TerminalUI(sys.stderr, verbose=args.verbose)
    report = build_dependencies(args.output, req, args.runtime, ui=ui, config=config,
                                architecture=args.arch)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(render_text(report, _use_colour(sys.stdout)))
    return 0 if report.ok else errors.DependenciesMissing.exit_code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
