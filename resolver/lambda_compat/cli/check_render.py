"""Text rendering of a :class:`~lambda_compat.check.report.CheckReport` for a terminal.

A matrix first (targets as columns, distributions with a problem somewhere as rows, one
verdict per cell, then the verdict and the proof level of each target), then the findings
grouped by distribution and reason code, the disagreements between the static and the dynamic
proof, and notes. Colour only when asked for (see ``terminal.use_colour``).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from packaging.utils import canonicalize_name

from ..check.report import CheckReport, TargetResult
from .style import Style

_CELL = {"ok": "ok", "warning": "warn", "error": "FAIL", "absent": "-"}
_COLOUR = {"ok": "green", "warning": "yellow", "error": "red", "absent": "dim",
           "compatible": "green", "incompatible": "red"}
_PROOF_TEXT = {"static": "static", "host": "host", "rootfs": "rootfs", "image": "image"}
_MAX_MESSAGES = 4


def _pad(text: str, width: int, painted: str) -> str:
    return painted + " " * max(0, width - len(text))


def _problem_rows(targets: Sequence[TargetResult]) -> List[str]:
    rows: Dict[str, Tuple[int, str]] = {}
    for t in targets:
        for f in t.findings:
            rank = 0 if f.severity == "error" else 1
            key = f.distribution if f.distribution.startswith("(") \
                else canonicalize_name(f.distribution)
            prev = rows.get(key)
            if prev is None or rank < prev[0]:
                rows[key] = (rank, f.distribution)
    pseudo = [rows[k][1] for k in rows if k.startswith("(")]
    real = [k for k in rows if not k.startswith("(")]
    return [rows[k][1] for k in sorted(real, key=lambda k: (rows[k][0], k))] + sorted(pseudo)


def _ok_rows(targets: Sequence[TargetResult], shown: Sequence[str]) -> Tuple[List[str], int]:
    """The distributions without a finding: the requested ones by name (every one for a
    bundle, where nothing says what was requested), and how many others there are."""
    taken = {canonicalize_name(s) for s in shown if not s.startswith("(")}
    requested: Dict[str, str] = {}
    others = set()
    for t in targets:
        asked = None
        if t.build is not None:
            asked = {canonicalize_name(d.name) for d in t.build.distributions if d.requested}
        for d in (t.static.distributions if t.static else ()):
            key = canonicalize_name(d.name)
            if key in taken:
                continue
            if asked is None or key in asked:
                requested.setdefault(key, d.name)
            else:
                others.add(key)
    others -= set(requested)
    return [requested[k] for k in sorted(requested)], len(others)


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
    paint = Style(colour)
    what = report.input_path or "layers only"
    if report.layers:
        what += f" + {len(report.layers)} layer{'s' if len(report.layers) > 1 else ''}"
    out: List[str] = [paint(f"lambda-compat check: {what} ({report.input_kind})", "bold"), ""]
    out += _grid(report.targets, paint, colour)
    out += _findings(report.targets, paint)
    out += _summary(report, paint)
    return "\n".join(out)


def _grid(targets: Sequence[TargetResult], paint: Style, colour: bool) -> List[str]:
    """Distribution x target cells, the verdict and proof rows, and their legend."""
    out: List[str] = []
    rows = _problem_rows(targets)
    ok_rows, more = _ok_rows(targets, rows)
    rows += ok_rows
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
    if more:
        out.append(paint(f"(and {more} more dependenc{'ies' if more != 1 else 'y'}, ok "
                         f"wherever present)", "dim"))
    if not rows and not more:
        out.append("(no distribution to check)")
    line = "verdict".ljust(first)
    for t, w in zip(targets, widths):
        line += _pad(t.verdict, w, paint(t.verdict, _COLOUR[t.verdict]))
    out.append(paint(line.rstrip(), "bold") if not colour else line.rstrip())
    line = "proof".ljust(first)
    standins = False
    for t, w in zip(targets, widths):
        text = _PROOF_TEXT.get(t.proof, t.proof)
        if t.proof != "static" and getattr(t.dynamic, "standin", None):
            text += "*"
            standins = True
        line += text.ljust(w)
    out.append(line.rstrip())
    legend = ("ok: passes every check on that target; FAIL: does not import there (see "
              "Findings); warn: a warning; -: not in that target's bundle (a marker left it "
              "out, or its resolution failed); proof: what the verdict rests on "
              "(static < host < rootfs < image)")
    if standins:
        legend += "; *: in a stand-in root/image, not the runtime's own image"
    out.append(paint(legend, "dim"))
    return out


def _findings(targets: Sequence[TargetResult], paint: Style) -> List[str]:
    """Findings grouped by distribution and code, then disagreements and notes."""
    out: List[str] = []
    names = [t.target.name for t in targets]
    groups = _group_findings(targets)
    if groups:
        out.append("")
        out.append(paint("Findings", "bold"))
    for (dist, code, severity), messages in groups:
        mark = "FAIL" if severity == "error" else "warn"
        where = sorted({n for tn, _fix in messages.values() for n in tn},
                       key=names.index)
        out.append(f"{paint(mark, _COLOUR['error' if severity == 'error' else 'warning'])} "
                   f"{paint(dist, 'bold')}: {code} on {_targets_text(where, names)}")
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
        out.append(paint("Static and dynamic proof disagree", "bold"))
        for name, d in dis:
            out.append(f"  {name}: {d.detail}")
    notes: Dict[str, List[str]] = {}
    for t in targets:
        for n in t.notes:
            notes.setdefault(n, []).append(t.target.name)
    if notes:
        out.append("")
        for n, tnames in notes.items():
            out.append(paint(f"note: {_targets_text(tnames, names)}: {n}", "dim"))
    return out


def _summary(report: CheckReport, paint: Style) -> List[str]:
    """The closing line (how many targets are compatible, on what proof) and what was skipped."""
    targets = report.targets
    names = [t.target.name for t in targets]
    out: List[str] = [""]
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
    out.append(paint(summary, "green" if report.ok else "red"))
    for skipped in report.skipped:
        out.append(paint(f"not checked: {skipped.message}", "dim"))
    return out


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
