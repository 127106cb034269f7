"""The runtime x arch job matrix of the nightly and refresh workflows, from the registry.

``python -m compat_tests.workflow_matrix`` prints ``matrix=<json>`` for ``$GITHUB_OUTPUT``:
one entry per (runtime, architecture) in ``registry/runtimes.yaml``, each with

- ``runner``: ``ubuntu-24.04`` (x86_64) or ``ubuntu-24.04-arm`` (arm64): imports run
  natively, no emulation;
- ``python``: the target's Python version (set up on the runner so sdists build natively);
- ``image_tag``: the public image tag; ``digest``: the pinned digest from the registry (empty
  when none is recorded yet); ``image``: ``tag@digest`` when pinned, else the tag.

``--runtime``/``--arch`` narrow it (workflow_dispatch inputs, comma-separated).

``python -m compat_tests.workflow_matrix coverage --matrix JSON DIR`` (the refresh workflow's
pull-request job) compares the probe files in ``DIR`` (``probe-<runtime>-<arch>.json``) with the
matrix that was planned: it prints a Markdown report (``DIR/coverage.md``) naming every target
whose probe is missing (its job failed) or partial (the handler invocation failed and only the
bare interpreter was probed: ``sys.path`` not observed), and ``partial=true|false`` for
``$GITHUB_OUTPUT``. A partial refresh is opened as a draft pull request that says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

RUNNERS = {"x86_64": "ubuntu-24.04", "arm64": "ubuntu-24.04-arm"}


def matrix(runtimes: Sequence[str] = (), arches: Sequence[str] = ()) -> dict:
    from lambda_compat.registry.runtimes import load_runtimes
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


def probe_coverage(matrix_json: str, probes: Path) -> Tuple[List[str], List[str], List[str]]:
    """(probed fully, probed partially, not probed) targets of the planned matrix."""
    planned = [f"{e['runtime']}/{e['arch']}" for e in json.loads(matrix_json)["include"]]
    full, partial, missing = [], [], []
    for target in planned:
        path = probes / f"probe-{target.replace('/', '-')}.json"
        try:
            data: Dict = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            missing.append(target)
            continue
        mode = (data.get("probe") or {}).get("mode")
        (full if mode == "handler" else partial).append(target)
    return full, partial, missing


def coverage_report(matrix_json: str, probes: Path) -> Tuple[str, bool]:
    full, partial, missing = probe_coverage(matrix_json, probes)
    total = len(full) + len(partial) + len(missing)
    lines = [f"Probed as the function handler: {len(full)} of {total} targets."]
    if partial:
        lines.append("")
        lines.append(f"**Partial** ({len(partial)}): the handler invocation failed, only the "
                     f"bare interpreter was probed (sys.path not observed): "
                     + ", ".join(partial))
    if missing:
        lines.append("")
        lines.append(f"**Not probed** ({len(missing)}): the probe job failed (see its log); "
                     f"these targets keep their old facts: " + ", ".join(missing))
    is_partial = bool(partial or missing)
    if is_partial:
        lines.append("")
        lines.append("This refresh is partial: review the failed jobs before merging.")
    return "\n".join(lines) + "\n", is_partial


def _split(values: Sequence[str]) -> List[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["coverage"]:
        cov = argparse.ArgumentParser(prog="python -m compat_tests.workflow_matrix coverage")
        cov.add_argument("--matrix", required=True, help="the planned job matrix (JSON)")
        cov.add_argument("probes", type=Path, help="the directory of probe-*.json files")
        args = cov.parse_args(argv[1:])
        text, partial = coverage_report(args.matrix, args.probes)
        (args.probes / "coverage.md").write_text(text, encoding="utf-8")
        print(f"partial={'true' if partial else 'false'}")
        return 0
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
