"""``python -m lambda_compat.cli.standin``: build stand-in roots, images and the binfmt registration.

See :mod:`lambda_compat.prove.standin` for what a stand-in is.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .. import errors
from ..host import binfmt
from ..prove.standin.info import KINDS
from ..registry.runtimes import load_runtimes
from ..targets.target import Target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lambda_compat.cli.standin",
                                     description="Build lambda-compat stand-in roots/images.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("binfmt", help="register qemu-aarch64 with binfmt_misc (root)")
    for name in ("root", "image"):
        p = sub.add_parser(name, help=f"build (or find) the stand-in {name} for targets")
        p.add_argument("--runtime", action="append", required=True)
        p.add_argument("--arch", action="append", default=None)
        p.add_argument("--kind", default="auto", choices=KINDS)
        p.add_argument("--cache-dir", type=Path)
        if name == "image":
            p.add_argument("--engine", default="podman")
    return parser


def _build(args: argparse.Namespace) -> None:
    """One line per target: the root (and with ``image`` the image) built or found."""
    from ..prove.standin.images import ensure_standin_image
    from ..prove.standin.roots import ensure_standin
    for runtime in args.runtime:
        for arch in args.arch or ["x86_64", "arm64"]:
            target = Target.from_facts(load_runtimes().get(runtime, arch))
            root = ensure_standin(target, kind=args.kind, cache_dir=args.cache_dir)
            line = f"{target.name}: {root.path} ({root.info.describe()}, built in " \
                   f"{root.info.build_seconds} s, {root.info.size_bytes // 2**20} MiB)"
            if args.cmd == "image":
                line += f" -> {ensure_standin_image(root, engine=args.engine)}"
            print(line)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "binfmt":
            print(binfmt.register("aarch64"))
            return 0
        _build(args)
    except errors.LambdaCompatError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
