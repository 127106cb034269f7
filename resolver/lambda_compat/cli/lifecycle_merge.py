"""``python -m lambda_compat.cli.lifecycle_merge``: AWS's runtime table into runtimes.yaml.

The command line of :mod:`lambda_compat.registry.lifecycle_merge` (which parses the page,
merges the lifecycle dates and returns what changed); the refresh-runtimes workflow runs it.
Prints one line per change, or the error and exits with its code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .. import errors
from ..registry.lifecycle_merge import URL, merge_file
from ..registry.runtimes import registry_dir
from .probe_merge import parse_date_option


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_compat.cli.lifecycle_merge",
        description="Merge AWS's Lambda runtime table (lifecycle dates) into runtimes.yaml.")
    parser.add_argument("page", type=Path, help=f"the downloaded page ({URL})")
    parser.add_argument("--runtimes", type=Path, default=None)
    parser.add_argument("--date", default=None, help="the day the page was read (YYYY-MM-DD)")
    args = parser.parse_args(argv)
    try:
        if args.runtimes is None:
            args.runtimes = Path(registry_dir()) / "runtimes.yaml"
        date = parse_date_option(args.date)
        changes = merge_file(args.runtimes, args.page, date)
    except errors.LambdaCompatError as exc:
        print(f"lifecycle_merge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for line in changes or ["no changes: the lifecycle dates match AWS's table"]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
