"""The runtime x arch job matrix of the nightly and refresh workflows, from the registry.

``python -m compat_tests.workflow_matrix`` prints ``matrix=<json>`` for ``$GITHUB_OUTPUT``:
one entry per (runtime, architecture) in ``registry/runtimes.yaml``, each with

- ``runner``: ``ubuntu-24.04`` (x86_64) or ``ubuntu-24.04-arm`` (arm64): imports run
  natively, no emulation;
- ``python``: the target's Python version (set up on the runner so sdists build natively);
- ``image_tag``: the public image tag; ``digest``: the pinned digest from the registry (empty
  when none is recorded yet); ``image``: ``tag@digest`` when pinned, else the tag.

``--runtime``/``--arch`` narrow it (workflow_dispatch inputs, comma-separated).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence

RUNNERS = {"x86_64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}


def matrix(runtimes: Sequence[str] = (), arches: Sequence[str] = ()) -> dict:
    from lambda_compat.runtimes import load_runtimes
    registry = load_runtimes()
    include: List[dict] = []
    for facts in registry.targets:
        if runtimes and facts.runtime not in runtimes:
            continue
        if arches and facts.arch not in arches:
            continue
        digest = facts.image_digest or ""
        include.append({
            "runtime": facts.runtime,
            "arch": facts.arch,
            "runner": RUNNERS[facts.arch],
            "python": "%d.%d" % tuple(facts.python_version),
            "image_tag": facts.image,
            "digest": digest,
            "image": f"{facts.image}@{digest}" if digest else facts.image,
        })
    if not include:
        raise SystemExit(f"no target matches runtimes={list(runtimes)} arches={list(arches)}")
    return {"include": include}


def _split(values: Sequence[str]) -> List[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat_tests.workflow_matrix")
    parser.add_argument("--runtime", action="append", default=[],
                        help="runtimes (repeatable or comma-separated; default: all)")
    parser.add_argument("--arch", action="append", default=[],
                        help="architectures (repeatable or comma-separated; default: both)")
    args = parser.parse_args(argv)
    print("matrix=" + json.dumps(matrix(_split(args.runtime), _split(args.arch)),
                                 separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
