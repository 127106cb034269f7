"""Command-line options every command that resolves shares (build, check, package)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List

from .. import errors

if TYPE_CHECKING:
    from ..build.builder import BuildConfig

#: BuildConfig.build_timeout (a test keeps them equal; the builder is imported only to run)
DEFAULT_BUILD_TIMEOUT = 1800.0
#: build.environments.BUILD_ENVS, the --build-env choices (a test keeps them equal)
BUILD_ENVS = ("auto", "local", "target-root", "container")


def exit_codes_epilog(codes: Dict[int, str]) -> str:
    """The "exit codes" paragraph every subcommand's --help ends with."""
    width = max(len(str(c)) for c in codes)
    return "exit codes:\n" + "\n".join(f"  {str(c).rjust(width)}  {what}"
                                        for c, what in sorted(codes.items()))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks; ``{runtimes}`` in an option's help becomes the
    shipped registry's runtimes and ``{strip_folders}`` package's strip categories, read only
    when help is shown (start-up stays cheap)."""

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        if "{runtimes}" in text:
            text = text.replace("{runtimes}", ", ".join(_runtime_names()))
        if "{strip_folders}" in text:
            from ..package.model import STRIP_FOLDERS
            text = text.replace("{strip_folders}", ", ".join(
                f"{k} ({'/'.join(v)})" for k, v in STRIP_FOLDERS.items()))
        return text


def _runtime_names() -> List[str]:
    try:
        from ..registry.runtimes import load_runtimes
        return list(load_runtimes().runtimes)
    except Exception:  # a broken registry is reported by the command, not by --help
        return ["python3.X"]


def subcommand(subparsers: Any, name: str, *, help: str, description: str,
               exit_codes: Dict[int, str]) -> argparse.ArgumentParser:
    """A subparser whose --help keeps the description's line breaks and lists exit codes."""
    return subparsers.add_parser(name, help=help, description=description,
                                 epilog=exit_codes_epilog(exit_codes),
                                 formatter_class=HelpFormatter)


def add_target_options(p: argparse.ArgumentParser, *, repeatable: bool = False) -> None:
    """--runtime and --arch: one target (build, package) or a selection of targets (check)."""
    if repeatable:
        p.add_argument("--runtime", action="append", default=[],
                       help="check only this runtime (repeatable): {runtimes}; default: every "
                            "runtime whose functions can still be updated today (deprecated "
                            "ones flagged; the report lists the ones left out)")
        p.add_argument("--arch", action="append", default=[],
                       help="x86_64 or arm64 (repeatable); default: both")
    else:
        p.add_argument("--runtime", required=True, metavar="RUNTIME",
                       help="Lambda runtime: {runtimes}")
        p.add_argument("--arch", default="x86_64", help="x86_64 (default) or arm64")


def add_resolution_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", help="download/build cache (default ~/.cache/lambda-compat)")
    p.add_argument("-i", "--index-url", metavar="URL",
                   help="base URL of the package index (default: pip's configuration, else "
                        "PyPI)")
    p.add_argument("--extra-index-url", action="append", default=[], metavar="URL",
                   help="a further index to search (repeatable)")
    p.add_argument("-f", "--find-links", action="append", default=[], metavar="DIR_OR_URL",
                   help="a directory or page of wheels and sdists to search (repeatable)")
    p.add_argument("--no-index", action="store_true",
                   help="use no index, only --find-links locations")
    p.add_argument("--isolated", action="store_true",
                   help="ignore pip's configuration files and PIP_* variables")
    p.add_argument("--refresh", action="store_true",
                   help="resolve afresh even if the same inputs were resolved minutes ago, "
                        "and build again what failed to build (remembered for a day)")
    p.add_argument("--build-timeout", type=float, default=DEFAULT_BUILD_TIMEOUT, metavar="S",
                   help="kill a source build step (metadata or wheel) and everything it "
                        f"started after S seconds (default {DEFAULT_BUILD_TIMEOUT:g})")
    p.add_argument("--build-env", choices=BUILD_ENVS, default="auto",
                   help="where sdists are built: a local interpreter of the target's version, "
                        "a Debian root of the target's Python and machine (qemu-user for "
                        "arm64, zig for the runtime's glibc), or the runtime's build image "
                        "in a container (pulled if need be); auto: the first that works, in "
                        "that order (default auto)")
    p.add_argument("--no-build-sandbox", action="store_true",
                   help="run source builds WITHOUT the build sandbox (bubblewrap): their "
                        "code then sees your files, network and credentials; see "
                        "docs/security.md")


def build_config(args: argparse.Namespace, **extra: Any) -> BuildConfig:
    """The BuildConfig the shared options describe (``extra``: command-specific fields)."""
    from ..build.builder import BuildConfig
    from ..resolve.engine import PipOptions
    pip = PipOptions(index_url=args.index_url, extra_index_urls=tuple(args.extra_index_url),
                     find_links=tuple(args.find_links), no_index=args.no_index,
                     isolated=args.isolated)
    if not args.build_timeout > 0:
        raise errors.BadInput(f"--build-timeout {args.build_timeout:g}: not a positive number "
                              f"of seconds.", hint=f"The default is {DEFAULT_BUILD_TIMEOUT:g}.")
    return BuildConfig(cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                       python=args.python, pip=pip, build_timeout=args.build_timeout,
                       build_sandbox=not args.no_build_sandbox,
                       build_env=getattr(args, "build_env", "auto"),
                       resolution_ttl=0 if args.refresh else 600.0,
                       failure_ttl=0 if args.refresh else 86400.0, **extra)
