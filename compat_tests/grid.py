"""The runtime x arch x case grid: text for the terminal, Markdown for GitHub job summaries,
HTML for the nightly artifact, and a merge of per-job result files into one grid.

A cell shows the verdict lambda-compat gave and the level of proof behind it:

- ``image``: the modules were imported in the runtime's container image;
- ``rootfs``: imported in a root directory (a lambda-compat stand-in here);
- ``host``: imported with a local interpreter of the target's version;
- ``static``: no import ran; the verdict rests on the static check alone. A static cell is
  never rendered as a passed import.

and the cell's evidence: ``proven`` (an import at that level agreed), ``refuted`` (a failed
cell), ``unproven`` (no import possible here, nothing built, or the case's ``unproven_here``
rule applied) or ``not-refutable`` (an import ran that cannot contradict the predicted
reason). The summary line counts each; only proven cells are passes on evidence.

Command line (the nightly workflow's merge job)::

    python -m compat_tests.grid merge results/*.json --html grid.html --markdown summary.md \
        --expect-matrix "$MATRIX"

``--expect-matrix`` takes the job matrix the nightly's plan job produced
(``compat_tests.workflow_matrix``: ``{"include": [{"runtime": ..., "arch": ...}, ...]}``):
a runtime x arch of that matrix with no cell in any result file (its job failed before it
wrote results: an image pull, a setup step, a cancelled runner) is a *missing target*, listed
in every rendering and failing the merge, never silently absent from the grid.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

RESULTS_VERSION = 1
ARCHES = ("x86_64", "arm64")
VERDICT_SHORT = {"compatible": "ok", "incompatible": "INC", "missing": "MISS", "error": "ERR",
                 None: "?"}
PROOF_SHORT = {"image": "img", "rootfs": "rfs", "host": "host", "static": "st"}

LEGEND = (
    "verdict: ok = compatible, INC = incompatible (built, flagged by the static check), "
    "MISS = missing (nothing could be built), ERR = the tool raised an error.\n"
    "proof: img = imported in the Lambda image, simg = imported in a stand-in image (made "
    "from a stand-in root, not the Lambda image), rfs = imported in a root directory (a "
    "stand-in here), host = imported with a local interpreter, st = static only (no import "
    "ran; NOT a proven import).\n"
    "evidence: no mark = proven (an import agreed), ! = refuted (the cell failed), "
    "? = unproven (no import possible here, or the case's unproven_here rule applied), "
    "~ = not-refutable (the import ran but cannot contradict the predicted reason), "
    "s = not run, - = the case does not run on this target.")


def evidence_of(cell: dict) -> str:
    """proven | refuted | unproven | not-refutable; derived for results written before the
    field existed (a failed cell is refuted; an agreeing import proves; else unproven)."""
    if cell.get("evidence"):
        return cell["evidence"]
    if cell.get("outcome") == "failed":
        return "refuted"
    agreement = cell.get("agreement")
    if agreement == "agrees":
        return "proven"
    return "not-refutable" if agreement == "not-refutable" else "unproven"


def failed(cell: dict) -> bool:
    """The cell's test failed: refuted, or not proven where --require-proof asked for it."""
    return cell.get("outcome") == "failed" or evidence_of(cell) == "refuted"


_EVIDENCE_MARK = {"proven": "", "refuted": "", "unproven": "?", "not-refutable": "~"}


def _runtime_key(runtime: str) -> Tuple[int, ...]:
    return tuple(int(p) for p in runtime.replace("python", "").split(".") if p.isdigit())


def _dimensions(cells: Sequence[dict]) -> Tuple[List[str], List[str], List[str]]:
    runtimes = sorted({c["runtime"] for c in cells}, key=_runtime_key)
    arches = [a for a in ARCHES if any(c["arch"] == a for c in cells)]
    cases = sorted({c["case"] for c in cells})
    return runtimes, arches, cases


def _index(cells: Sequence[dict]) -> Dict[Tuple[str, str, str], dict]:
    return {(c["case"], c["runtime"], c["arch"]): c for c in cells}


def short(cell: Optional[dict]) -> str:
    if cell is None:
        return "-"
    if cell.get("outcome") == "skipped" and cell.get("verdict") is None:
        return "s"
    proof = PROOF_SHORT.get(cell["proof"], "?")
    if cell["proof"] == "image" and cell.get("standin"):
        proof = "simg"  # a container made from a stand-in root: not the Lambda image
    text = f"{VERDICT_SHORT.get(cell.get('verdict'), '?')}·{proof}"
    if cell.get("imported") == "failed":
        text += "✗"  # the import was observed to fail
    text += _EVIDENCE_MARK[evidence_of(cell)]
    if failed(cell):
        text = "!" + text  # refuted, or unproven under --require-proof
    return text


def describe(cell: dict) -> str:
    """One line: expected, predicted, observed (the same words as a failure message)."""
    predicted = cell.get("verdict") or "nothing"
    if cell.get("reasons"):
        predicted += f" ({', '.join(cell['reasons'])})"
    if cell.get("imported") is None:
        observed = f"no import ({cell.get('backend_note') or 'static only'})"
    else:
        where = cell["proof"] + (" (stand-in)" if cell.get("standin") else "")
        observed = f"import {cell['imported']} in {where} ({cell.get('backend')})"
        if cell.get("import_failures"):
            observed += ": " + "; ".join(cell["import_failures"][:2])
    text = (f"{cell['case']} on {cell['target']}: expected {cell['expected']}; predicted "
            f"{predicted}; observed {observed}; {evidence_of(cell)}")
    if cell.get("evidence_note") and evidence_of(cell) != "refuted":
        text += f" ({cell['evidence_note']})"
    return text


def counts(cells: Sequence[dict]) -> Dict[str, int]:
    out = {"cells": len(cells), "standin image": 0, "failed": sum(map(failed, cells))}
    for key in ("proven", "refuted", "unproven", "not-refutable"):
        out[key] = 0
    for proof in PROOF_SHORT:
        out[proof] = 0
    for c in cells:
        out[evidence_of(c)] += 1
        if c.get("verdict"):
            key = "standin image" if c["proof"] == "image" and c.get("standin") else c["proof"]
            out[key] += 1
    return out


def summary_line(n: Dict[str, int]) -> str:
    """``N cells: P proven, U unproven, R refuted, X not-refutable; proof: ...``"""
    text = (f"{n['cells']} cells: {n['proven']} proven, {n['unproven']} unproven, "
            f"{n['refuted']} refuted, {n['not-refutable']} not-refutable; "
            f"proof: {_proof_counts(n)}")
    unproven_failed = n["failed"] - n["refuted"]
    if unproven_failed:
        text += f"; {unproven_failed} not proven as --require-proof asked (failed)"
    return text


def _proof_counts(n: Dict[str, int]) -> str:
    text = f"{n['image']} image, "
    if n["standin image"]:
        text += f"{n['standin image']} stand-in image, "
    return text + f"{n['rootfs']} rootfs, {n['host']} host, {n['static']} static only"


# --------------------------------------------------------------------------- text

def render_text(cells: Sequence[dict]) -> str:
    if not cells:
        return "compat grid: no cells ran."
    runtimes, arches, cases = _dimensions(cells)
    idx = _index(cells)
    width = max(len(c) for c in cases + ["case"])
    out = []
    for arch in arches:
        mine = [case for case in cases if any((case, rt, arch) in idx for rt in runtimes)]
        cols = [short(idx.get((case, rt, arch))) for case in mine for rt in runtimes]
        colw = max([len(r) for r in runtimes] + [len(c) for c in cols]) + 1
        out.append(f"{arch}".ljust(width) + "  " + "".join(r.ljust(colw) for r in runtimes))
        for case in mine:
            row = [short(idx.get((case, rt, arch))) for rt in runtimes]
            out.append(case.ljust(width) + "  " + "".join(c.ljust(colw) for c in row).rstrip())
        out.append("")
    n = counts(cells)
    out.append(summary_line(n))
    out.append(LEGEND)
    bad = [c for c in cells if failed(c)]
    if bad:
        out.append("")
        out.append("failed cells:")
        for c in sorted(bad, key=lambda c: (c["case"], _runtime_key(c["runtime"]),
                                               c["arch"])):
            out.append("  " + describe(c))
            for p in c.get("problems", []):
                out.append("    - " + p)
    return "\n".join(out)


# --------------------------------------------------------------------------- markdown

def render_markdown(cells: Sequence[dict], title: str = "lambda-compat compat matrix") -> str:
    out = [f"## {title}", ""]
    if not cells:
        return "\n".join(out + ["No cells ran."]) + "\n"
    runtimes, arches, cases = _dimensions(cells)
    idx = _index(cells)
    for arch in arches:
        out.append(f"### {arch}")
        out.append("")
        out.append("| case | " + " | ".join(runtimes) + " |")
        out.append("|---|" + "---|" * len(runtimes))
        for case in [c for c in cases if any((c, rt, arch) in idx for rt in runtimes)]:
            row = [short(idx.get((case, rt, arch))).replace("|", "\\|") for rt in runtimes]
            out.append(f"| {case} | " + " | ".join(f"`{c}`" if c != "-" else "-"
                                                    for c in row) + " |")
        out.append("")
    n = counts(cells)
    out.append(f"**{summary_line(n)}**.")
    out.append("")
    out.append(LEGEND.replace("\n", "  \n"))
    bad = [c for c in cells if failed(c)]
    if bad:
        out.append("")
        out.append("### Failed cells")
        out.append("")
        for c in bad:
            out.append(f"- {html.escape(describe(c))}")
            for p in c.get("problems", []):
                out.append(f"  - {html.escape(p)}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- html

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.25em .5em;font-size:.9em;text-align:center}
th.case,td.case{text-align:left;font-family:monospace}
td.ok-proved{background:#c8efc8} td.ok-static{background:#f3f0c2}
td.inc{background:#f8d3b5} td.miss{background:#e5e5e5} td.err,td.failed{background:#f3a6a6}
td.skip{color:#888} td.na{color:#bbb}
.legend{font-size:.85em;color:#444;white-space:pre-line}
"""


def _css_class(cell: Optional[dict]) -> str:
    if cell is None:
        return "na"
    if failed(cell):
        return "failed"
    if cell.get("verdict") is None:
        return "skip"
    verdict = cell.get("verdict")
    if verdict == "compatible":
        return "ok-proved" if evidence_of(cell) == "proven" else "ok-static"
    return {"incompatible": "inc", "missing": "miss"}.get(verdict or "", "err")


def render_html(cells: Sequence[dict], title: str = "lambda-compat compat matrix") -> str:
    runtimes, arches, cases = _dimensions(cells) if cells else ([], [], [])
    idx = _index(cells)
    parts = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for arch in arches:
        parts.append(f"<h2>{html.escape(arch)}</h2><table><tr><th class=\"case\">case</th>")
        parts += [f"<th>{html.escape(rt)}</th>" for rt in runtimes]
        parts.append("</tr>")
        for case in [c for c in cases if any((c, rt, arch) in idx for rt in runtimes)]:
            parts.append(f"<tr><td class=\"case\">{html.escape(case)}</td>")
            for rt in runtimes:
                cell = idx.get((case, rt, arch))
                tip = describe(cell) if cell else "not run on this target"
                if cell and cell.get("versions"):
                    tip += "\nbundle: " + ", ".join(f"{k} {v}" for k, v in
                                                   sorted(cell["versions"].items()))
                if cell and cell.get("problems"):
                    tip += "\nproblems: " + "; ".join(cell["problems"])
                parts.append(f"<td class=\"{_css_class(cell)}\" title=\"{html.escape(tip)}\">"
                             f"{html.escape(short(cell))}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    n = counts(cells)
    parts.append(f"<p>{html.escape(summary_line(n))}.</p>")
    parts.append(f"<p class=\"legend\">{html.escape(LEGEND)}</p>")
    parts.append("<h2>Cells</h2><ul>")
    for c in sorted(cells, key=lambda c: (c["case"], _runtime_key(c["runtime"]), c["arch"])):
        line = describe(c)
        if c.get("problems"):
            line += " — PROBLEMS: " + "; ".join(c["problems"])
        parts.append(f"<li class=\"{_css_class(c)}\">{html.escape(line)}</li>")
    parts.append("</ul></body></html>")
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- files

def write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def results_document(cells: Sequence[dict], meta: Optional[dict] = None) -> dict:
    return {"version": RESULTS_VERSION, "meta": dict(meta or {}), "cells": list(cells)}


def load_results(paths: Iterable[Path]) -> List[dict]:
    """Cells from result files (``--compat-json`` outputs); a later file wins per cell."""
    merged: Dict[Tuple[str, str], dict] = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"{path}: not a compat results file ({exc})")
        if not isinstance(data, dict) or data.get("version") != RESULTS_VERSION:
            raise SystemExit(f"{path}: not a compat results file of version {RESULTS_VERSION}")
        for cell in data.get("cells", []):
            merged[(cell["case"], cell["target"])] = cell
    return list(merged.values())


def expected_targets(matrix_json: str) -> List[Tuple[str, str]]:
    """(runtime, arch) of every job of a workflow_matrix ``matrix`` JSON document."""
    try:
        data = json.loads(matrix_json)
        return [(str(e["runtime"]), str(e["arch"])) for e in data["include"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--expect-matrix: not a job matrix ({exc}); pass the plan job's "
                         f"output of python -m compat_tests.workflow_matrix")


def missing_targets(cells: Sequence[dict], expected: Iterable[Tuple[str, str]]
                    ) -> List[Tuple[str, str]]:
    """The expected (runtime, arch) pairs no cell covers, in matrix order."""
    have = {(c["runtime"], c["arch"]) for c in cells}
    return [t for t in expected if t not in have]


def missing_text(missing: Sequence[Tuple[str, str]]) -> str:
    return (f"MISSING TARGETS ({len(missing)}): " + ", ".join(f"{r}/{a}" for r, a in missing)
            + " -- their jobs wrote no results (image pull, setup or runner failure); "
              "the matrix is incomplete")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat_tests.grid",
                                     description="Merge compat results into one grid.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge", help="merge --compat-json result files")
    m.add_argument("results", nargs="*", type=Path)
    m.add_argument("--expect-matrix", metavar="JSON",
                   help="the job matrix the results should cover; a target with no cell fails")
    m.add_argument("--html", type=Path, help="write the HTML grid here")
    m.add_argument("--markdown", type=Path, help="write the Markdown grid here")
    m.add_argument("--json", type=Path, help="write the merged results here")
    m.add_argument("--title", default="lambda-compat compat matrix")
    args = parser.parse_args(argv)
    if not args.results and args.expect_matrix is None:
        parser.error("no result files (and no --expect-matrix to report them missing against)")
    cells = load_results(args.results)
    missing = (missing_targets(cells, expected_targets(args.expect_matrix))
               if args.expect_matrix is not None else [])
    meta = {"missing_targets": [f"{r}/{a}" for r, a in missing]} if missing else None
    if args.html:
        page = render_html(cells, args.title)
        if missing:
            page = page.replace("<body>", f"<body><p class=\"missing\"><strong>"
                                          f"{html.escape(missing_text(missing))}</strong></p>", 1)
        write_atomic(args.html, page)
    if args.markdown:
        text = render_markdown(cells, args.title)
        if missing:
            text += f"\n**{missing_text(missing)}**\n"
        write_atomic(args.markdown, text)
    if args.json:
        write_atomic(args.json, json.dumps(results_document(cells, meta), indent=1,
                                           sort_keys=True))
    print(render_text(cells))
    if missing:
        print(missing_text(missing))
    return 1 if missing or any(failed(c) for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
