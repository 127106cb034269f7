"""The ``lambda-compat`` command. ``main(argv)`` returns the exit code (no subprocess needed).

Exit codes: 0 built, 1 dependencies missing, 2 bad input, 3 environment problem.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List, Optional, TextIO

from .._version import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambda-compat",
                                description="Will these Python dependencies import on AWS "
                                            "Lambda? Build them for a Lambda target.")
    p.add_argument("--version", action="version", version=f"lambda-compat {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    # One module per subcommand, each exposing ``add_parser(subparsers)``; the parser it adds
    # sets ``func`` (a callable taking the argparse Namespace, returning the exit code).
    # Errors derived from errors.LambdaCompatError are rendered by main().
    from . import build, check, package, registry
    for command in (build, check, registry, package):
        command.add_parser(sub)
    return p


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
    given = sys.argv[1:] if argv is None else list(argv)
    if given == ["--version"]:
        # what argparse's version action prints, without importing every subcommand first
        print(f"lambda-compat {__version__}")
        return 0
    _start_pip_early(given)
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


def _start_pip_early(argv: List[str]) -> None:
    """``build -r FILE``: pip's standby process (:mod:`lambda_compat.resolve.pip_standby`)
    started before the parser and the builder are imported, 40-60 ms sooner on the way to
    a cold resolution, where pip's start is what the spec waits for. Only the unambiguous
    ``-r FILE``, ``--requirements FILE`` and ``--requirements=FILE`` forms of an existing
    file; ``build`` starts it otherwise, and does not start a second one for the same file
    and environment. A guess the arguments do not confirm is ended with the command (never
    taken: a resolution takes only a standby of its own directory and environment)."""
    if not argv or argv[0] != "build" or "-h" in argv or "--help" in argv:
        return
    found = [argv[i + 1] for i in range(1, len(argv) - 1) if argv[i] in ("-r", "--requirements")]
    found += [a.split("=", 1)[1] for a in argv[1:] if a.startswith("--requirements=")]
    if len(found) != 1:
        return
    from pathlib import Path
    requirements = Path(found[0])
    if not requirements.is_file():
        return
    from ..resolve import pip_standby
    pip_standby.start_for(requirements, "--isolated" in argv)


def _run(args: argparse.Namespace) -> int:
    from .. import errors
    from ..host import lifecycle
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


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
