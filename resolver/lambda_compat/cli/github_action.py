"""The GitHub Action's step (``action.yml``): run ``check``, then tell GitHub about it.

* the grid (distributions x targets) and the findings go to the job summary
  (``$GITHUB_STEP_SUMMARY``);
* each failing distribution gets an ``::error file=...,line=N::`` annotation on the line of
  the requirements file that names it (transitive ones on the file itself);
* ``verdict`` and ``report`` go to the step's outputs (``$GITHUB_OUTPUT``).

``python -m lambda_compat.cli.github_action --requirements requirements.txt --runtimes
"python3.12 python3.13" --architectures "x86_64 arm64" --fail-on incompatible [check
options...]``; options it does not know are passed to ``lambda-compat check``. Exit status:
check's own, except that ``--fail-on never`` turns "incompatible" (1) into 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, TextIO

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .. import errors
from ..resolve.reqfile import logical_lines


@dataclass
class _Problem:
    """What is wrong with one distribution, per target label."""

    name: str
    by_target: Dict[str, List[str]] = field(default_factory=dict)


def _split(values: Sequence[str]) -> List[str]:
    """Inputs arrive as one string ("python3.12, python3.13" or one per line)."""
    return [v for value in values for v in re.split(r"[\s,]+", value) if v]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lambda_compat.cli.github_action",
                                description="lambda-compat check for a GitHub Actions step.")
    p.add_argument("--requirements", default="requirements.txt")
    p.add_argument("--runtimes", action="append", default=[],
                   help="runtimes, separated by spaces, commas or lines (default: check's)")
    p.add_argument("--architectures", action="append", default=[],
                   help="x86_64 and/or arm64 (default: both)")
    p.add_argument("--fail-on", choices=["incompatible", "never"], default="incompatible")
    return p


def requirement_lines(path: Path) -> Dict[str, int]:
    """Canonical project name -> the line of ``path`` that names it (first one wins)."""
    out: Dict[str, int] = {}
    for line in logical_lines(path):
        if line.text.startswith("-"):
            continue
        try:
            name = canonicalize_name(Requirement(line.text.split(" --hash", 1)[0]).name)
        except InvalidRequirement:
            continue
        out.setdefault(name, line.number)
    return out


def _escape(text: str) -> str:
    """A workflow command's message: %, CR and LF escaped (GitHub's rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")


def _label(t: Mapping) -> str:
    return f"{t['runtime']}/{t['arch']}"


def problems(report: Mapping) -> Dict[str, _Problem]:
    """Blocking findings and missing distributions of every target, per distribution."""
    out: Dict[str, _Problem] = {}
    for t in report["targets"]:
        seen = set()
        missing = (t.get("build") or {}).get("missing") or []
        for m in missing:
            text = f"{m.get('reason_code') or 'missing'}: {m.get('reason') or ''}".strip()
            if m.get("suggestion"):
                text += f" Fix: {m['suggestion']}"
            key = canonicalize_name(m["name"])
            out.setdefault(key, _Problem(m["name"])).by_target.setdefault(
                _label(t), []).append(text)
            seen.add((key, m.get("reason_code")))
        for f in t["findings"]:
            key = canonicalize_name(f["distribution"] or "?")
            if f["severity"] != "error" or (key, f["code"]) in seen:
                continue
            text = f"{f['code']}: {f['message']}" + (f" Fix: {f['fix']}" if f["fix"] else "")
            out.setdefault(key, _Problem(f["distribution"])).by_target.setdefault(
                _label(t), []).append(text)
    return out


def annotation_lines(report: Mapping, requirements: Path, shown_path: str) -> List[str]:
    """``::error`` workflow commands, one per failing distribution."""
    lines = requirement_lines(requirements)
    out = []
    for key, problem in sorted(problems(report).items()):
        targets = ", ".join(sorted(problem.by_target))
        first = next(iter(sorted(problem.by_target.items())))[1][0]
        where = f"file={_escape_property(shown_path)}"
        if key in lines:
            where += f",line={lines[key]}"
            what = f"{problem.name} does not import on {targets}: {first}"
        else:
            what = (f"{problem.name} (a dependency of these requirements) does not import on "
                    f"{targets}: {first}")
        title = _escape_property(f"lambda-compat: {problem.name}")
        out.append(f"::error {where},title={title}::{_escape(what)}")
    return out


def _cell(name: str, label: str, bundled: Mapping[str, set], found: Dict[str, _Problem]) -> str:
    problem = found.get(name)
    if problem and label in problem.by_target:
        codes = sorted({p.split(":", 1)[0] for p in problem.by_target[label]})
        return "❌ " + ", ".join(f"`{c}`" for c in codes)
    return "✅" if name in bundled.get(label, set()) else "·"


def summary(report: Mapping, requirements: str) -> str:
    """The job summary: verdict, the grid with every distribution, then the findings."""
    targets = report["targets"]
    labels = [_label(t) for t in targets]
    found = problems(report)
    bundled: Dict[str, set] = {
        _label(t): {canonicalize_name(d["name"]) for d in t["distributions"]} for t in targets}
    names: Dict[str, str] = {}
    for t in targets:
        for d in t["distributions"]:
            names.setdefault(canonicalize_name(d["name"]), d["name"])
    for key, problem in found.items():
        names.setdefault(key, problem.name)
    icon = "✅" if report["verdict"] == "compatible" else "❌"
    out = [f"## {icon} lambda-compat: `{requirements}` is {report['verdict']}", "",
           "| distribution | " + " | ".join(labels) + " |",
           "|---|" + "---|" * len(labels)]
    for key in sorted(names):
        out.append(f"| {names[key]} | "
                   + " | ".join(_cell(key, label, bundled, found) for label in labels) + " |")
    out.append("| *proof* | " + " | ".join(t["proof"] for t in targets) + " |")
    out += ["", "✅ imports on the target · ❌ does not (reason codes: docs/check.md) · "
                "`·` not in that target's bundle (an environment marker left it out, or the "
                "resolution stopped at a failing requirement)"]
    for key, problem in sorted(found.items()):
        out.append("")
        out.append(f"**{problem.name}**")
        for label, texts in sorted(problem.by_target.items()):
            for text in texts:
                out.append(f"- {label}: {text}")
    return "\n".join(out) + "\n"


def _append(path: Optional[str], text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


def main(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None,
         stdout: Optional[TextIO] = None) -> int:
    from .main import main as cli_main
    env = os.environ if environ is None else environ
    out = stdout or sys.stdout
    args, extra = _parser().parse_known_args(argv)
    requirements = Path(args.requirements)
    with tempfile.TemporaryDirectory(prefix="lambda-compat-action-") as tmp:
        report_path = Path(env.get("RUNNER_TEMP") or tmp) / "lambda-compat-report.json"
        argv_check = ["check", str(requirements), "--format", "json", "-o", str(report_path)]
        argv_check += [a for r in _split(args.runtimes) for a in ("--runtime", r)]
        argv_check += [a for r in _split(args.architectures) for a in ("--arch", r)]
        code = cli_main(argv_check + list(extra))
        if code not in (0, 1) or not report_path.is_file():
            why = (f"lambda-compat check could not judge {args.requirements} (exit {code}); "
                   f"the log above says why.")
            print(f"::error file={_escape_property(args.requirements)},"
                  f"title=lambda-compat::{_escape(why)}", file=out)
            return code or errors.EnvironmentProblem.exit_code
        report = json.loads(report_path.read_text(encoding="utf-8"))
        for line in annotation_lines(report, requirements, args.requirements):
            print(line, file=out)
        _append(env.get("GITHUB_STEP_SUMMARY"), summary(report, args.requirements))
        kept = f"report={report_path}\n" if env.get("RUNNER_TEMP") else ""
        _append(env.get("GITHUB_OUTPUT"), f"verdict={report['verdict']}\n{kept}")
    if code == 1 and args.fail_on == "never":
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
