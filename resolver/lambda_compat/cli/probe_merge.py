"""``python -m lambda_compat.cli.probe_merge``: merge probe outputs into registry/runtimes.yaml.

The command line of :mod:`lambda_compat.registry.probe_merge` (which does the merging and
returns what changed); the refresh-runtimes workflow runs it. Prints one line per change, or
the error and exits with its code.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Optional, Sequence

from .. import errors
from ..registry.probe_merge import merge_file
from ..registry.runtimes import registry_dir


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lambda_compat.cli.probe_merge",
        description="Merge lambda_compat.prove._payload.probe outputs into registry/runtimes.yaml.")
    parser.add_argument("probes", nargs="+", type=Path, help="probe JSON files")
    parser.add_argument("--runtimes", type=Path, default=None,
                        help="runtimes.yaml to update (default: the registry's)")
    parser.add_argument("--date", default=None, help="date of the probes, YYYY-MM-DD "
                                                     "(default: today, UTC)")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of in place")
    args = parser.parse_args(argv)
    try:
        if args.runtimes is None:
            args.runtimes = Path(registry_dir()) / "runtimes.yaml"
        date = parse_date_option(args.date)
        result = merge_file(args.runtimes, args.probes, date, args.output)
    except errors.LambdaCompatError as exc:
        print(f"probe_merge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    for line in result.changes or ["no changes: the registry already matches the probes"]:
        print(line)
    return 0


def parse_date_option(value: Optional[str]) -> datetime.date:
    """``--date YYYY-MM-DD`` (today, UTC, when not given); BadInput otherwise."""
    try:
        return (datetime.date.fromisoformat(value) if value
                else datetime.datetime.now(datetime.timezone.utc).date())
    except ValueError:
        raise errors.BadInput(f"--date {value!r} is not YYYY-MM-DD.") from None


if __name__ == "__main__":
    sys.exit(main())
