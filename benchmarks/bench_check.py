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

With ``--requirements FILE`` it measures something else: ``lambda-compat check FILE``
across the default targets (every target, static proof plus the strongest import proof this
machine has), warm (a cache filled by an untimed run first; medians of --repeat) and, with
``--cold``, from an empty cache (once: for a set with no wheels for some target this includes
building from source). Reported per run: wall-clock seconds, peak memory of the whole process
tree (RSS summed over lambda-compat and its children, sampled every 50 ms) and of the largest
single process, and the verdict per target. Its own section: "## check: FILE across the
default targets".

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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc import write_section  # noqa: E402
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
        from lambda_compat.build.install import install_all
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


def _tree_rss(sid: int) -> int:
    """Bytes of RSS summed over every process in session ``sid``."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[3]) != sid:  # field 6 (session), after pid and (comm)
                continue
            total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24 (rss pages)
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_measured(cmd, env):
    """(seconds, returncode, peak tree RSS bytes, peak single-process RSS bytes)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - t
    single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return seconds, proc.returncode, peak, (single if single > before else 0) * 1024


def requirements_main(args) -> int:
    import json
    import tempfile

    req = args.requirements.resolve()
    title = f"## check: {os.path.relpath(req, ROOT)} across the default targets"
    if args.check_arg:
        title = f"## check: {os.path.relpath(req, ROOT)} ({' '.join(args.check_arg)})"
    lc = str(ROOT / ".venv" / "bin" / "lambda-compat")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PIP_CONFIG_FILE"] = os.devnull
    load_before = os.getloadavg()[0]
    rows = []

    def once(cache: Path, label: str):
        out = Path(tempfile.mkdtemp(prefix="bench-check-")) / "report.json"
        cmd = [lc, "check", str(req), "--format", "json", "-o", str(out),
               "--cache-dir", str(cache)] + list(args.check_arg)
        load = os.getloadavg()[0]
        seconds, rc, tree, single = run_measured(cmd, dict(env, LAMBDA_COMPAT_CACHE_DIR=str(cache)))
        try:
            report = json.loads(out.read_text(encoding="utf-8"))
            verdicts = {f"{t['runtime']}/{t['arch']}": f"{t['verdict']} ({t['proof']})"
                        for t in report["targets"]}
            dynamic = [t["dynamic"] for t in report["targets"] if t.get("dynamic")]
            reused = f"{sum(1 for d in dynamic if d.get('cached_from'))} of {len(dynamic)}"
        except (OSError, ValueError, KeyError):
            verdicts, reused = {}, "?"
        shutil.rmtree(out.parent, ignore_errors=True)
        print(f"  {label}: {seconds:.1f}s rc={rc} tree RSS {tree / 2**20:.0f} MiB "
              f"largest process {single / 2**20:.0f} MiB load {load:.1f} proofs reused "
              f"{reused}", flush=True)
        rows.append((label, seconds, rc, tree, single, load, verdicts, reused))

    if args.cold:
        cold_cache = args.work_dir / "cold-cache"
        shutil.rmtree(cold_cache, ignore_errors=True)
        once(cold_cache, "cold")
    warm_cache = args.check_cache or (args.work_dir / "warm-cache")
    if not args.cold:
        once(warm_cache, "warm-up (untimed in the median)")
    for i in range(args.repeat):
        once(args.work_dir / "cold-cache" if args.cold else warm_cache, f"warm {i + 1}")
    warm = [r for r in rows if r[0].startswith("warm ")]
    lines = [title, "",
             "Generated by `benchmarks/bench_check.py --requirements` — do not edit by hand; "
             f"rerun it. `lambda-compat check {os.path.relpath(req, ROOT)}` "
             + (f"with {' '.join(args.check_arg)}" if args.check_arg else
                "with no target options: every default target")
             + ", static proof plus the strongest import proof "
             "this machine offers per target. Peak memory = RSS summed over the process tree "
             "(sampled every 50 ms); largest = the largest single process (the kernel keeps one "
             "maximum over all of the benchmark's children, so a run whose largest process "
             "stayed below an earlier run's shows '≤ earlier'). Proofs reused = targets whose "
             "import proof was taken from the proof cache (`dynamic.cached_from`: same bundle "
             "content, target, backend, interpreter or root and probe), of those with one.", "",
             "| run | seconds | exit | peak tree RSS MiB | largest process MiB | load | "
             "proofs reused |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for label, seconds, rc, tree, single, load, _, reused in rows:
        largest = f"{single / 2**20:.0f}" if single else "≤ earlier"
        lines.append(f"| {label} | {seconds:.1f} | {rc} | {tree / 2**20:.0f} | "
                     f"{largest} | {load:.1f} | {reused} |")
    if warm:
        lines += ["", f"Warm median: {statistics.median(r[1] for r in warm):.1f} s "
                      f"(goal of issue 15: under 10 s)."]
    verdicts = rows[-1][6] if rows else {}
    if verdicts:
        lines += ["", "Verdicts (last run): " + "; ".join(f"{k} {v}" for k, v in verdicts.items())
                  + "."]
    lines += ["", f"Machine: nproc {os.cpu_count()}, {platform.system()} {platform.machine()}; "
                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1-min load average "
                  f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end.",
              "Command: `.venv/bin/python benchmarks/bench_check.py " + " ".join(args.argv) + "`",
              ""]
    section = "\n".join(lines)
    print(section)
    if args.output:
        write_section(Path(args.output), section)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--requirements", type=Path,
                   help="measure `lambda-compat check FILE` across the default targets instead")
    p.add_argument("--cold", action="store_true",
                   help="with --requirements: start from an empty cache (may build from source)")
    p.add_argument("--check-cache", type=Path,
                   help="with --requirements: the warm cache to use (default WORK_DIR/warm-cache)")
    p.add_argument("--check-arg", action="append", default=[], metavar="ARG",
                   help="with --requirements: pass ARG to every `lambda-compat check` "
                        "(repeatable; e.g. --check-arg=--runtime=python3.12)")
    p.add_argument("--work-dir", type=Path, default=ROOT / ".bench" / "check")
    p.add_argument("--auditwheel", help="auditwheel executable (default: on PATH, else skip)")
    p.add_argument("--output", type=Path)
    args = p.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    if args.requirements:
        args.work_dir.mkdir(parents=True, exist_ok=True)
        return requirements_main(args)

    from lambda_compat.verify import bundle as B

    from lambda_compat import __version__
    from lambda_compat.registry.runtimes import get_target
    from lambda_compat.registry.runtimes import load_runtimes
    from lambda_compat.verify.static_check import StaticChecker
    from lambda_compat.targets.target import Target

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
        write_section(Path(args.output), section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
