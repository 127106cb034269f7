"""Text rendering of a :class:`~lambda_compat.check.CheckReport` for a terminal.

A matrix first (targets as columns, distributions with a problem somewhere as rows, one
verdict per cell, then the verdict and the proof level of each target), then the findings
grouped by distribution and reason code, the disagreements between the static and the dynamic
proof, and notes. Colour only when asked for (see ``cli._use_colour``).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from .check import CheckReport, TargetResult

_CELL = {"ok": "ok", "warning": "warn", "error": "FAIL", "absent": "-"}
_COLOUR = {"ok": "32", "warning": "33", "error": "31", "absent": "2",
           "compatible": "32", "incompatible": "31"}
_PROOF_TEXT = {"static": "static", "host": "host", "rootfs": "rootfs", "image": "image"}
_MAX_MESSAGES = 4


class _Paint:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled and code else text


def _pad(text: str, width: int, painted: str) -> str:
    return painted + " " * max(0, width - len(text))


def _problem_rows(targets: Sequence[TargetResult]) -> List[str]:
    rows: Dict[str, Tuple[int, str]] = {}
    for t in targets:
        for f in t.findings:
            rank = 0 if f.severity == "error" else 1
            prev = rows.get(f.distribution)
            if prev is None or rank < prev[0]:
                rows[f.distribution] = (rank, f.distribution)
    pseudo = [d for d in rows if d.startswith("(")]
    real = [d for d in rows if not d.startswith("(")]
    return sorted(real, key=lambda d: (rows[d][0], d.lower())) + sorted(pseudo)


def _label(dist: str, targets: Sequence[TargetResult]) -> str:
    versions = set()
    for t in targets:
        if t.static is None:
            continue
        for d in t.static.distributions:
            if d.name == dist:
                versions.add(d.version)
    return f"{dist} {versions.pop()}" if len(versions) == 1 else dist


def _targets_text(names: Sequence[str], everyone: Sequence[str]) -> str:
    if len(everyone) > 1 and set(names) == set(everyone):
        return "all targets"
    return ", ".join(n for n in everyone if n in names)


def render_text(report: CheckReport, colour: bool) -> str:
    paint = _Paint(colour)
    targets = report.targets
    names = [t.target.name for t in targets]
    out: List[str] = []
    what = report.input_path or "layers only"
    if report.layers:
        what += f" + {len(report.layers)} layer{'s' if len(report.layers) > 1 else ''}"
    out.append(paint(f"lambda-compat check: {what} ({report.input_kind})", "1"))
    out.append("")

    rows = _problem_rows(targets)
    labels = [_label(r, targets) for r in rows]
    first = max([len(x) for x in labels] + [len("verdict"), len("proof")]) + 2
    widths = [max(len(t.target.runtime), len(t.target.arch), len("incompatible")) + 2
              for t in targets]
    head1 = " " * first + "".join(t.target.runtime.ljust(w) for t, w in zip(targets, widths))
    head2 = " " * first + "".join(t.target.arch.ljust(w) for t, w in zip(targets, widths))
    out += [head1.rstrip(), head2.rstrip()]
    for row, label in zip(rows, labels):
        line = label.ljust(first)
        for t, w in zip(targets, widths):
            state = t.cell(row)
            text = _CELL[state]
            line += _pad(text, w, paint(text, _COLOUR[state]))
        out.append(line.rstrip())
    if not rows:
        count = max((len(t.static.distributions) for t in targets if t.static), default=0)
        out.append(f"(no problem found in {count} distribution{'s' if count != 1 else ''})")
    line = "verdict".ljust(first)
    for t, w in zip(targets, widths):
        line += _pad(t.verdict, w, paint(t.verdict, _COLOUR[t.verdict]))
    out.append(paint(line.rstrip(), "1") if not colour else line.rstrip())
    line = "proof".ljust(first)
    standins = False
    for t, w in zip(targets, widths):
        text = _PROOF_TEXT.get(t.proof, t.proof)
        if t.proof != "static" and getattr(t.dynamic, "standin", None):
            text += "*"
            standins = True
        line += text.ljust(w)
    out.append(line.rstrip())
    if standins:
        out.append(paint("* in a stand-in root/image, not the runtime's own image", "2"))

    groups = _group_findings(targets)
    if groups:
        out.append("")
        out.append(paint("Findings", "1"))
    for (dist, code, severity), messages in groups:
        mark = "FAIL" if severity == "error" else "warn"
        where = sorted({n for tn, _fix in messages.values() for n in tn},
                       key=names.index)
        out.append(f"{paint(mark, _COLOUR['error' if severity == 'error' else 'warning'])} "
                   f"{paint(dist, '1')}: {code} on {_targets_text(where, names)}")
        shown = list(messages.items())[:_MAX_MESSAGES]
        for message, (tnames, _fix) in shown:
            suffix = "" if set(tnames) == set(where) else \
                f" [{_targets_text(tnames, names)}]"
            out.append(f"    {message}{suffix}")
        if len(messages) > _MAX_MESSAGES:
            out.append(f"    ... and {len(messages) - _MAX_MESSAGES} more like these")
        fixes = []
        for _m, (_t, fix) in messages.items():
            if fix and fix not in fixes:
                fixes.append(fix)
        for fix in fixes[:2]:
            out.append(f"    fix: {fix}")

    dis = [(t.target.name, d) for t in targets for d in t.disagreements]
    if dis:
        out.append("")
        out.append(paint("Static and dynamic proof disagree", "1"))
        for name, d in dis:
            out.append(f"  {name}: {d.detail}")
    notes: Dict[str, List[str]] = {}
    for t in targets:
        for n in t.notes:
            notes.setdefault(n, []).append(t.target.name)
    if notes:
        out.append("")
        for n, tnames in notes.items():
            out.append(paint(f"note: {_targets_text(tnames, names)}: {n}", "2"))
    out.append("")
    good = [t for t in targets if t.ok]
    summary = f"{len(good)} of {len(targets)} target{'s' if len(targets) != 1 else ''} " \
              f"compatible"
    if good and len(good) < len(targets):
        summary += ": " + ", ".join(t.target.name for t in good)
    proofs: Dict[str, List[str]] = {}
    for t in targets:
        proofs.setdefault(t.proof, []).append(t.target.name)
    summary += " (proof: " + "; ".join(
        f"{p} for {_targets_text(n, names)}" for p, n in proofs.items()) + ")"
    summary += f" in {report.seconds:.1f} s"
    out.append(paint(summary, "32" if report.ok else "31"))
    for skipped in report.skipped:
        out.append(paint(f"not checked: {skipped.message}", "2"))
    return "\n".join(out)


def _group_findings(targets: Sequence[TargetResult]):
    """(dist, code, severity) -> {message: ([target names], fix)}, errors first."""
    groups: Dict[Tuple[str, str, str], Dict[str, Tuple[List[str], str]]] = {}
    for t in targets:
        for f in t.findings:
            key = (f.distribution, f.code, f.severity)
            by_msg = groups.setdefault(key, {})
            entry = by_msg.setdefault(f.message, ([], f.fix))
            if t.target.name not in entry[0]:
                entry[0].append(t.target.name)
    return sorted(groups.items(), key=lambda kv: (kv[0][2] != "error", kv[0][0].startswith("("),
                                                  kv[0][0].lower(), kv[0][1]))
