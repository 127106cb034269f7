#!/usr/bin/env python3
"""What the build sandbox costs: a real sdist (psycopg2, C code against libpq) built with and
without it.

Both modes run lambda-compat's own build step (:func:`lambda_compat.resolve.sdist_build.build_wheel`,
what `lambda-compat build` runs for an sdist) with CPython 3.11: pip outside, every build hook
inside bubblewrap (`sandbox=True`) or unconfined (`sandbox=False`, i.e. --no-build-sandbox).
Every build starts from an empty lambda-compat cache (no reuse of a built wheel); the build
dependencies (setuptools, wheel) come from a local find-links directory downloaded once, so
that neither mode waits on the network. Rounds are interleaved (sandbox, no sandbox, ...), so
a busy machine slows both alike; the figure to read is the ratio of the medians.

Needs: network once (PyPI, for the sdist and the build dependencies), libpq-dev (pg_config),
a C compiler, bwrap. Writes or replaces its own section of docs/benchmarks.md with --output.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "resolver"))

from _doc import fmt, write_section  # noqa: E402
from lambda_compat.host import sandbox  # noqa: E402
from lambda_compat.host.interpreters import find_interpreter  # noqa: E402
from lambda_compat.resolve.engine import PipOptions  # noqa: E402
from lambda_compat.resolve.sdist_build import build_wheel, file_sha256  # noqa: E402

SECTION_TITLE = "## build sandbox: cost on a real sdist build (psycopg2)"


def prepare(work: Path, version: str) -> tuple:
    src, links = work / "src", work / "links"
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
           "--isolated"]
    if not list(src.glob("psycopg2-*.tar.gz")):
        subprocess.run(pip + ["--no-binary", ":all:", "--no-deps", "-d", str(src),
                              f"psycopg2=={version}" if version else "psycopg2"], check=True)
    if not list(links.glob("setuptools-*.whl")):
        subprocess.run(pip + ["--only-binary", ":all:", "--python-version", "3.11", "-d",
                              str(links), "setuptools", "wheel"], check=True)
    return sorted(src.glob("psycopg2-*.tar.gz"))[-1], links


def one_build(sdist: Path, links: Path, interp, work: Path, use_sandbox: bool) -> float:
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=work))
    try:
        started = time.perf_counter()
        result = build_wheel(sdist, file_sha256(sdist), interp, cache_dir=cache,
                             pip=PipOptions(no_index=True, find_links=(str(links),),
                                            isolated=True),
                             no_compiler=False, timeout=1800, cwd=work, sandbox=use_sandbox)
        took = time.perf_counter() - started
        if not result.ok:
            raise SystemExit(f"build failed (sandbox={use_sandbox}):\n{result.error_tail}")
        return took
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def per_hook(work: Path, reps: int = 20) -> dict:
    """Milliseconds to start a trivial hook (``python -c pass``) each way: bare, with the
    timeout wrapper only (--no-build-sandbox), and in the build sandbox."""
    from lambda_compat.resolve import pip_sandbox
    tmp = Path(tempfile.mkdtemp(prefix="hook-", dir=work))
    cmd = [sys.executable, "-c", "pass"]
    out = {}
    try:
        for label, enabled in (("bare", None), ("unconfined", False), ("sandbox", True)):
            if enabled is None:
                argv = cmd
            else:
                pip_sandbox.install(sandbox.build_sandbox_config(enabled=enabled, timeout=60,
                                                                 writable=[tmp]))
                argv = pip_sandbox.wrap(cmd, cwd=str(tmp))
            samples = []
            for _ in range(reps):
                t = time.perf_counter()
                subprocess.run(argv, check=True, cwd=tmp)
                samples.append((time.perf_counter() - t) * 1000)
            out[label] = statistics.median(samples)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out





def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="builds per mode (default 3)")
    p.add_argument("--version", default="2.9.10", help="psycopg2 version (default 2.9.10)")
    p.add_argument("--work", type=Path, default=ROOT / ".bench" / "sandbox")
    p.add_argument("--output", type=Path, help="write the section into this markdown file")
    args = p.parse_args(argv)
    if not sandbox.bwrap_works():
        raise SystemExit("bwrap does not work here: " + sandbox.BUILD_SANDBOX_HINT)
    interp = find_interpreter((3, 11), platform.machine())
    if interp is None:
        raise SystemExit("no CPython 3.11 on this machine")
    args.work.mkdir(parents=True, exist_ok=True)
    sdist, links = prepare(args.work, args.version)
    load_start = os.getloadavg()[0]
    times = {True: [], False: []}
    for _ in range(args.repeat):
        for mode in (True, False):
            times[mode].append(one_build(sdist, links, interp, args.work, mode))
            print(f"sandbox={mode}: {times[mode][-1]:.1f} s", file=sys.stderr)
    hooks = per_hook(args.work)
    load_end = os.getloadavg()[0]
    ratio = statistics.median(times[True]) / statistics.median(times[False])
    # Each round builds both ways back to back: the per-round ratio cancels load that
    # changes between rounds, which the ratio of the medians does not.
    paired = statistics.median(a / b for a, b in zip(times[True], times[False]))
    section = "\n".join([
        SECTION_TITLE, "",
        f"Generated by `benchmarks/bench_sandbox.py` — do not edit by hand; rerun it. "
        f"`{sdist.name}` (C extension against libpq) built into a wheel by lambda-compat's "
        f"build step with {interp.describe()}, from an empty lambda-compat cache each time, "
        f"build dependencies (setuptools, wheel) from a local directory. With the sandbox, "
        f"each PEP 517 hook runs under bubblewrap (no network, read-only system, no HOME, "
        f"environment allow-list, uid 65534); without it (`--no-build-sandbox`), unconfined. "
        f"Wall-clock seconds, median (min–max) of {args.repeat} interleaved rounds.", "",
        "| mode | s | ratio |", "|---|---:|---:|",
        f"| build sandbox (default) | {fmt(times[True])} | {ratio:.2f}× |",
        f"| `--no-build-sandbox` | {fmt(times[False])} | 1.00× |", "",
        f"- Median of the per-round ratios (sandbox / unconfined, each round built back to "
        f"back): {paired:.2f}× (rounds: "
        f"{', '.join(f'{a / b:.2f}' for a, b in zip(times[True], times[False]))}).",
        f"- Goal (issue 12): the sandbox costs at most 10%, judged on the per-round ratio: "
        f"{'met' if paired <= 1.10 else 'NOT met'} ({(paired - 1) * 100:+.1f}%; ratio of the "
        f"medians {(ratio - 1) * 100:+.1f}%).",
        "- What the sandbox adds per hook: one bwrap start (namespaces, bind mounts) and a "
        "small Python wrapper that bounds the hook in time; pip calls three hooks for this "
        "build (get_requires_for_build_wheel, prepare_metadata_for_build_wheel, build_wheel).",
        f"- Starting a trivial hook (`python -c pass`, median of 20): {hooks['bare']:.0f} ms "
        f"bare, {hooks['unconfined']:.0f} ms with the timeout wrapper alone "
        f"(`--no-build-sandbox`), {hooks['sandbox']:.0f} ms in the sandbox. So the sandbox "
        f"itself adds about {3 * (hooks['sandbox'] - hooks['unconfined']) / 1000:.2f} s to a "
        f"build of three hooks, and the wrapper (timeout, process-group kill; both modes) "
        f"{3 * (hooks['unconfined'] - hooks['bare']) / 1000:.2f} s; any larger difference "
        f"between the rows above is the machine's noise.",
        *([f"- **The machine was busy with other work** (load average above its "
           f"{os.cpu_count()} CPUs, see below): absolute times are inflated and noisy; the "
           f"rounds are interleaved, so the ratio and the per-hook figures are the ones to "
           f"read."] if max(load_start, load_end) > (os.cpu_count() or 1) else []),
        "",
        f"Machine: nproc {os.cpu_count()}, {platform.system()} {platform.machine()}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1-min load average "
        f"{load_start:.2f} at start, {load_end:.2f} at end (above nproc means other work "
        f"competed for the CPUs).",
        f"Command: `benchmarks/bench_sandbox.py --repeat {args.repeat}"
        f"{' --output ' + str(args.output) if args.output else ''}`", ""])
    print(section)
    if args.output:
        write_section(args.output, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
