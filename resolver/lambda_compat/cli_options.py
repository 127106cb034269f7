"""Command-line options every command that resolves shares (build, check, package)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import errors
from .builder import BuildConfig
from .resolve import PipOptions

DEFAULT_BUILD_TIMEOUT = BuildConfig.build_timeout


def add_resolution_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", help="download/build cache (default ~/.cache/lambda-compat)")
    p.add_argument("-i", "--index-url")
    p.add_argument("--extra-index-url", action="append", default=[])
    p.add_argument("-f", "--find-links", action="append", default=[])
    p.add_argument("--no-index", action="store_true")
    p.add_argument("--isolated", action="store_true",
                   help="ignore pip's configuration files and PIP_* variables")
    p.add_argument("--refresh", action="store_true",
                   help="resolve afresh even if the same inputs were resolved minutes ago")
    p.add_argument("--build-timeout", type=float, default=DEFAULT_BUILD_TIMEOUT, metavar="S",
                   help="kill a source build step (metadata or wheel) and everything it "
                        f"started after S seconds (default {DEFAULT_BUILD_TIMEOUT:g})")
    p.add_argument("--no-build-sandbox", action="store_true",
                   help="run source builds WITHOUT the build sandbox (bubblewrap): their "
                        "code then sees your files, network and credentials; see "
                        "docs/security.md")


def build_config(args: argparse.Namespace, **extra: Any) -> BuildConfig:
    """The BuildConfig the shared options describe (``extra``: command-specific fields)."""
    pip = PipOptions(index_url=args.index_url, extra_index_urls=tuple(args.extra_index_url),
                     find_links=tuple(args.find_links), no_index=args.no_index,
                     isolated=args.isolated)
    if not args.build_timeout > 0:
        raise errors.BadInput(f"--build-timeout {args.build_timeout:g}: not a positive number "
                              f"of seconds.", hint=f"The default is {DEFAULT_BUILD_TIMEOUT:g}.")
    return BuildConfig(cache_dir=Path(args.cache_dir) if args.cache_dir else None,
                       python=args.python, pip=pip, build_timeout=args.build_timeout,
                       build_sandbox=not args.no_build_sandbox,
                       resolution_ttl=0 if args.refresh else 600.0, **extra)
