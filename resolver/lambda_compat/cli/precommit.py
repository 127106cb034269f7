"""The pre-commit hook (``.pre-commit-hooks.yaml``): check the requirement and lock files a
commit changes.

``python -m lambda_compat.cli.precommit [--runtime R] [--arch A] [--backend static] FILE...``.
Static proof by default, so the hook takes seconds; a requirements file is checked as
``lambda-compat check`` does; a lock file (Pipfile.lock, poetry.lock, uv.lock, pylock.toml) is
read per target, as ``package`` reads it, and what it selects for that target is checked.
Exit status: the worst of the files' (2 and 3 before 1 before 0).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

from .. import errors
from ..package.lockfiles import dispatch as lock_dispatch
from .options import add_resolution_options, add_target_options


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambda-compat pre-commit hook")
    p.add_argument("files", nargs="*", help="requirement or lock files (pre-commit passes them)")
    add_target_options(p, repeatable=True)
    p.add_argument("--backend", default="static",
                   help="dynamic proof (default static: seconds, no imports)")
    p.add_argument("--python", help=argparse.SUPPRESS)
    add_resolution_options(p)
    return p


def _worst(codes: Sequence[int]) -> int:
    rank = {0: 0, 1: 1}
    return max(codes, key=lambda c: rank.get(c, 2 + c), default=0)


def _forwarded(args: argparse.Namespace) -> List[str]:
    out = ["--backend", args.backend]
    for flag, value in (("--cache-dir", args.cache_dir), ("-i", args.index_url)):
        if value:
            out += [flag, value]
    for url in args.extra_index_url:
        out += ["--extra-index-url", url]
    for link in args.find_links:
        out += ["-f", link]
    out += [flag for flag, on in (("--no-index", args.no_index), ("--isolated", args.isolated),
                                  ("--refresh", args.refresh)) if on]
    return out


def _check_lock(path: Path, args: argparse.Namespace, common: List[str]) -> int:
    from ..check.inputs import select_targets
    from .main import main as cli_main
    codes = []
    selected = select_targets(args.runtime, args.arch, today=datetime.date.today())
    with tempfile.TemporaryDirectory(prefix="lambda-compat-hook-") as tmp:
        for target in (s.target for s in selected):
            selection = lock_dispatch.select(path, target)
            if not selection.pins:
                continue
            req = selection.write_requirements(Path(tmp) / f"{target.runtime}-{target.arch}.txt")
            print(f"{path} for {target.name}:", flush=True)
            codes.append(cli_main(["check", str(req), "--runtime", target.runtime,
                                   "--arch", target.arch, *common]))
    return _worst(codes)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .main import main as cli_main
    args = _parser().parse_args(argv)
    common = _forwarded(args)
    codes = []
    for name in args.files:
        path = Path(name)
        try:
            if lock_dispatch.lock_kind(path):
                codes.append(_check_lock(path, args, common))
                continue
        except errors.LambdaCompatError as exc:
            print(f"lambda-compat: error: {exc}", file=sys.stderr)
            codes.append(exc.exit_code)
            continue
        targets = [a for r in args.runtime for a in ("--runtime", r)]
        targets += [a for r in args.arch for a in ("--arch", r)]
        print(f"{path}:", flush=True)
        codes.append(cli_main(["check", str(path), *targets, *common]))
    return _worst(codes)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
