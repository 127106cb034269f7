#!/usr/bin/env python3
"""Benchmark the static check of `lambda-compat check` on a heavy bundle, next to auditwheel.

The bundle: numpy, pandas, scipy and pyarrow (and their dependencies) for CPython 3.12 on
x86_64, downloaded as wheels from PyPI once (kept in the work dir) and installed flat with
lambda-compat's own installer (no .pyc), i.e. what `lambda-compat build` would produce.

Measured, each --repeat times (median, min-max):
* in-process: read the bundle (files, dist-info, ELF facts) + check one target; the same for
  all 14 targets (one read, 14 checks); file cache warm (a first untimed run reads it);
* the CLI, as a user runs it (`lambda-compat check DIR --backend static`, interpreter start
  and registry load included), one target and all 14 (`--include-deprecated`);
* `auditwheel show` on the same wheels, one process per wheel (what it takes to get
  comparable ELF facts with auditwheel; it judges one wheel against manylinux policies, not a
  bundle against a Lambda runtime).

Writes or replaces its own section of docs/benchmarks.md with --output.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "resolver"))

SECTION_TITLE = "## check: static proof of a heavy bundle (numpy, pandas, scipy, pyarrow)"
PACKAGES = ("numpy", "pandas", "scipy", "pyarrow")
PLATFORMS = ("manylinux_2_34_x86_64", "manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def timed(fn, repeat, warm=True):
    if warm:
        fn()  # warm the page cache and imports
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def fmt(samples):
    med = statistics.median(samples)
    if len(samples) == 1:
        return f"{med:.2f}"
    return f"{med:.2f} ({min(samples):.2f}-{max(samples):.2f})"


def prepare(work: Path) -> tuple[Path, list[Path]]:
    wheels = work / "wheels"
    if not list(wheels.glob("*.whl")):
        wheels.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--isolated",
               "--disable-pip-version-check", "-i", "https://pypi.org/simple",
               "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
               "-d", str(wheels)]
        for p in PLATFORMS:
            cmd += ["--platform", p]
        run(cmd + list(PACKAGES))
    bundle = work / "bundle"
    if not bundle.is_dir():
        from lambda_compat.install import install_all
        install_all(sorted(wheels.glob("*.whl")), bundle, 2)
    return bundle, sorted(wheels.glob("*.whl"))


def size_of(bundle: Path) -> tuple[int, int, int]:
    files = size = so = 0
    for dirpath, _d, names in os.walk(bundle):
        for n in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, n)).st_size
            if re.search(r"\.so(\.\d+)*$", n):
                so += 1
    return files, size, so


def replace_section(doc: str, section: str) -> str:
    lines = doc.splitlines(keepends=True)
    start = end = None
    fence = False
    for i, line in enumerate(lines):
        s = line.rstrip("\n")
        if s.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        if start is None:
            if s.rstrip() == SECTION_TITLE:
                start = i
        elif re.match(r"^#{1,2} ", s):
            end = i
            break
    body = section if section.endswith("\n") else section + "\n"
    if start is None:
        sep = "" if doc.endswith("\n\n") else ("\n" if doc.endswith("\n") else "\n\n")
        return doc + sep + body
    tail = "".join(lines[end if end is not None else len(lines):])
    if tail and not body.endswith("\n\n"):
        body += "\n"
    return "".join(lines[:start]) + body + tail


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--work-dir", type=Path, default=ROOT / ".bench" / "check")
    p.add_argument("--auditwheel", help="auditwheel executable (default: on PATH, else skip)")
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)

    from lambda_compat import bundle as B, __version__
    from lambda_compat.builder import get_target
    from lambda_compat.runtimes import load_runtimes
    from lambda_compat.static_check import StaticChecker
    from lambda_compat.targets import Target

    load_before = os.getloadavg()[0]
    bundle, wheels = prepare(args.work_dir)
    files, size, so = size_of(bundle)
    one = get_target("python3.12", "x86_64")
    every = [Target.from_facts(f) for f in load_runtimes().targets]

    def check(targets):
        view = B.load(bundle)
        checker = StaticChecker(view)
        return [checker.check(t) for t in targets]

    one_s = timed(lambda: check([one]), args.repeat)
    all_s = timed(lambda: check(every), args.repeat)
    verdicts = {t.name: r.ok for t, r in zip(every, check(every))}

    cli = [str(ROOT / ".venv" / "bin" / "lambda-compat"), "check", str(bundle),
           "--backend", "static", "--format", "json", "-o", os.devnull]
    sub = lambda extra: (lambda: subprocess.run(cli + extra, stdout=subprocess.DEVNULL))
    cli_one = timed(sub(["--runtime", "python3.12", "--arch", "x86_64"]), args.repeat)
    cli_all = timed(sub(["--include-deprecated"]), args.repeat)

    aw = args.auditwheel or shutil.which("auditwheel")
    aw_s = aw_version = None
    if aw:
        aw_version = " ".join(subprocess.run([aw, "--version"], capture_output=True,
                                             text=True).stdout.split()[:2])
        # minutes per run: once, after the check runs warmed the page cache for the wheels'
        # content only partly (the check reads the installed files, not the zips)
        aw_s = timed(lambda: [subprocess.run([aw, "show", str(w)], capture_output=True)
                              for w in wheels], 1, warm=False)
    load_after = os.getloadavg()[0]

    lines = [SECTION_TITLE, "",
             f"Generated by `benchmarks/bench_check.py` — do not edit by hand; rerun it. "
             f"Bundle: {', '.join(w.name for w in wheels)} installed flat "
             f"({files} files, {size / 2**20:.1f} MiB, {so} shared objects). Seconds, median "
             f"of {args.repeat} (min-max), page cache warm.", "",
             "| what | targets | seconds |", "|---|---:|---:|",
             f"| static check in-process (read bundle + ELF facts, check) | 1 | {fmt(one_s)} |",
             f"| static check in-process (one read, 14 checks) | 14 | {fmt(all_s)} |",
             f"| `lambda-compat check DIR --backend static` (CLI, startup included) | 1 | "
             f"{fmt(cli_one)} |",
             f"| `lambda-compat check DIR --backend static --include-deprecated` (CLI) | 14 | "
             f"{fmt(cli_all)} |"]
    if aw_s:
        lines.append(f"| `auditwheel show` on each of the {len(wheels)} wheels "
                     f"({aw_version}; one run) | - | {fmt(aw_s)} |")
    else:
        lines.append("| `auditwheel show` | - | not run (auditwheel not found) |")
    ok = [n for n, v in verdicts.items() if v]
    lines += ["", f"Verdicts: compatible on {', '.join(ok) or 'no target'}; the bundle is over "
                  f"Lambda's 250 MiB limit, so every target also gets size-limit."
              if size > 262144000 else
              f"Verdicts: compatible on {', '.join(ok) or 'no target'}.",
              "",
              f"Machine: nproc {os.cpu_count()}, {platform.system()} {platform.machine()}, "
              f"glibc {platform.libc_ver()[1]}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
              f"1-min load average {load_before:.2f} at start, {load_after:.2f} at end (above "
              f"nproc means other work competed for the CPUs). lambda-compat {__version__}, "
              f"Python {platform.python_version()}.",
              f"Command: `.venv/bin/python benchmarks/bench_check.py --repeat {args.repeat}"
              f"{' --auditwheel ' + args.auditwheel if args.auditwheel else ''}"
              f"{' --output ' + str(args.output) if args.output else ''}`", ""]
    section = "\n".join(lines)
    print(section)
    if args.output:
        out = args.output if args.output.is_absolute() else Path.cwd() / args.output
        old = out.read_text(encoding="utf-8") if out.exists() else "# Benchmarks\n\n"
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(replace_section(old, section), encoding="utf-8")
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
