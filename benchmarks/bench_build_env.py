#!/usr/bin/env python3
"""Building sdists for a target in each kind of build environment (issue 14).

Runs ``lambda-compat build`` (the CLI, as a user would) for a requirement, a target and a
``--build-env`` kind, in three states of a cache directory of its own:

first use
    an empty --cache-dir: everything is made, the Debian target root (debootstrap of the
    target's suite, plus python3-dev) and zig included; run once;
environment ready
    the same cache with the built wheels, remembered failures and resolutions removed, so the
    build itself runs again in the existing environment (median of --repeat);
warm
    the same cache as left by a build: the wheel comes from the cache (median of --repeat).

Cases (default): netifaces 0.11.0 (sdist only, required C extension) for python3.11/arm64 in a
target root (qemu-user, zig for glibc 2.26); psycopg2 2.9.10 (C against libpq, pg_config
needed) for python3.11/x86_64 in every kind (local, target-root, container). An environment
kind this machine does not offer is listed as such, with the reason lambda-compat gives.
For every built bundle: the ELF machine and the highest GLIBC_ version its .so files need.
Needs PyPI and the Debian mirror. Writes or replaces its own section of docs/benchmarks.md
with --output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "resolver"))

from _doc import fmt, write_section  # noqa: E402
from lambda_compat.verify.elf import read_elf  # noqa: E402

SECTION_TITLE = "## Build environments: building sdists for any target (issue 14)"
CASES = (("netifaces==0.11.0", "python3.11", "arm64", "target-root"),
         ("psycopg2==2.9.10", "python3.11", "x86_64", "local"),
         ("psycopg2==2.9.10", "python3.11", "x86_64", "target-root"),
         ("psycopg2==2.9.10", "python3.11", "x86_64", "container"))
#: What a build leaves in the cache that makes the next one instant (roots, zig, downloads
#: and the unpacked wheels stay: they are the environment, not the build).
_BUILD_STATE = ("built", "failed-builds", "resolutions")


@dataclass
class Run:
    seconds: float
    exit_code: int
    phase: str = ""
    built_in: str = ""
    reason: str = ""
    elf: str = ""


@dataclass
class Case:
    requirement: str
    runtime: str
    arch: str
    env: str
    first: Optional[Run] = None
    ready: List[Run] = field(default_factory=list)
    warm: List[Run] = field(default_factory=list)


def lambda_compat() -> List[str]:
    exe = Path(sys.executable).with_name("lambda-compat")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "lambda_compat"]


def one_build(case: Case, cache: Path, work: Path) -> Run:
    req = work / "requirements.txt"
    req.write_text(case.requirement + "\n", encoding="utf-8")
    out = work / "out"
    report = work / "report.json"
    argv = lambda_compat() + ["build", str(req), "--runtime", case.runtime, "--arch", case.arch,
                              "--build-env", case.env, "--cache-dir", str(cache),
                              "-o", str(out), "--force", "--format", "json",
                              "--jobs", "2"]
    started = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    run = Run(took, proc.returncode)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        run.reason = (proc.stderr.strip().splitlines() or ["no report"])[-1][:200]
        return run
    report.write_text(proc.stdout, encoding="utf-8")
    name = case.requirement.split("==")[0].lower()
    for d in data.get("distributions", ()):
        if d.get("name", "").lower() == name:
            run.phase = d.get("phase") or ""
            run.built_in = d.get("build_environment") or ""
            if run.phase == "missing":
                run.reason = f"{d.get('reason_code')}: " + _gist(d.get("reason") or "")
    run.elf = elf_summary(out) if proc.returncode == 0 else ""
    return run


def _gist(reason: str) -> str:
    """The reason's first line and, for a failed build, the error its log ends with."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    if not lines:
        return ""
    errors = [line for line in lines[1:] if "rror" in line and not line.startswith(("(", "$"))]
    return lines[0] + (f" … {errors[-1]}" if errors else "")


def elf_summary(out: Path) -> str:
    machines, glibc = set(), []
    for so in out.rglob("*.so"):
        info = read_elf(so)
        machines.add(info.machine)
        version = info.max_version("GLIBC_")
        if version:
            glibc.append(version)
    if not machines:
        return "no .so"
    high = "GLIBC_" + ".".join(map(str, max(glibc))) if glibc else "no GLIBC_ needs"
    return f"{', '.join(sorted(machines))}; {high}"


def measure(case: Case, base: Path, repeat: int, first_use: bool) -> None:
    cache = base / f"cache-{case.arch}-{case.env}"
    work = base / f"work-{case.arch}-{case.env}-{case.requirement.split('==')[0]}"
    work.mkdir(parents=True, exist_ok=True)
    if first_use:
        shutil.rmtree(cache, ignore_errors=True)
    case.first = one_build(case, cache, work) if first_use else None
    print(f"{case.requirement} {case.runtime}/{case.arch} {case.env}: first "
          f"{case.first.seconds if case.first else '-'}", flush=True)
    for _ in range(repeat):
        for sub in _BUILD_STATE:
            shutil.rmtree(cache / sub, ignore_errors=True)
        case.ready.append(one_build(case, cache, work))
        case.warm.append(one_build(case, cache, work))


def cell(runs: List[Run]) -> str:
    if not runs:
        return "—"
    return fmt([r.seconds for r in runs])


def outcome(case: Case) -> Tuple[str, str, str]:
    runs = [r for r in [case.first, *case.ready] if r is not None]
    last = runs[-1]
    if last.phase in ("built", "built-no-compiler", "registry"):
        return f"{last.phase} (exit {last.exit_code})", last.built_in, last.elf
    why = last.reason or f"exit {last.exit_code}"
    if len(why) > 320:
        why = why[:160].rsplit(" ", 1)[0] + " … " + why[-150:].split(" ", 1)[-1]
    return f"not built: {why}", last.built_in or "—", "—"


def render(cases: List[Case], args: argparse.Namespace, loads: Tuple[float, float]) -> str:
    rows = ["| requirement | target | --build-env | first use s | environment ready s | "
            "warm s | outcome | built in | .so machine; highest GLIBC_ |",
            "|---|---|---|---:|---:|---:|---|---|---|"]
    for c in cases:
        first = f"{c.first.seconds:.1f}" if c.first else "—"
        result, built_in, elf = outcome(c)
        rows.append(f"| `{c.requirement}` | {c.runtime}/{c.arch} | {c.env} | {first} | "
                    f"{cell(c.ready)} | {cell(c.warm)} | {result} | {built_in} | {elf} |")
    busy = max(loads) > (os.cpu_count() or 1)
    return "\n".join([
        SECTION_TITLE, "",
        "Generated by `benchmarks/bench_build_env.py` — do not edit by hand; rerun it. "
        "`lambda-compat build` (the CLI) of one requirement for one target with "
        "`--build-env KIND`, each case with a --cache-dir of its own. First use = from an "
        "empty cache: the build environment is made (for a target root: the Debian suite's "
        "root with the target's CPython and headers, downloaded and unpacked; zig from the "
        "index, and its glibc stubs compiled), then the build. Environment ready = the same "
        "cache without the built wheels and resolutions, so the build runs again in the "
        "existing environment. Warm = the wheel taken from the cache (keyed by the sdist's "
        "sha256, the target and the environment). Seconds: median (min–max) of "
        f"{args.repeat} runs; first use once.", "", *rows, "",
        *(["- **The machine was busy** (load average above its CPUs): absolute times are "
           "inflated.", ""] if busy else []),
        f"Machine: nproc {os.cpu_count()}, Linux {platform.machine()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1-min load average "
        f"{loads[0]:.2f} at start, {loads[1]:.2f} at end.",
        f"Command: `benchmarks/bench_build_env.py --repeat {args.repeat}"
        f"{'' if args.first_use else ' --no-first-use'}"
        f"{''.join(' --case ' + c for c in args.case or [])}"
        f"{' --output ' + str(args.output) if args.output else ''}`", ""])


def parse_case(text: str) -> Tuple[str, str, str, str]:
    parts = text.split(":")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("a case is REQUIREMENT:RUNTIME:ARCH:ENV, e.g. "
                                         "netifaces==0.11.0:python3.11:arm64:target-root")
    return parts[0], parts[1], parts[2], parts[3]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--case", action="append", metavar="REQ:RUNTIME:ARCH:ENV",
                        help="instead of the default cases (repeatable)")
    parser.add_argument("--no-first-use", dest="first_use", action="store_false",
                        help="keep the cache directories of an earlier run (no root creation)")
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where the caches live (default: a new temporary directory, "
                             "removed at the end)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    cases = [Case(*parse_case(c)) for c in args.case] if args.case else \
        [Case(*c) for c in CASES]
    load_start = os.getloadavg()[0]
    base = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-build-env-"))
    try:
        for case in cases:
            measure(case, base, args.repeat, args.first_use)
    finally:
        if args.work_dir is None:
            shutil.rmtree(base, ignore_errors=True)
    section = render(cases, args, (load_start, os.getloadavg()[0]))
    print(section)
    if args.output:
        write_section(args.output, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
