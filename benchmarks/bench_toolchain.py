#!/usr/bin/env python3
"""Building within the runtime's glibc: C extensions built with the host's gcc and with zig.

Each project is built with CPython 3.11 (`setup.py build_ext`, what setuptools' bdist_wheel
runs) from a fresh copy of its source, either with the host's compiler (the interpreter's own
CC/LDSHARED) or with :func:`lambda_compat.host.toolchain.compiler_env` for
x86_64-linux-gnu.2.26 (Amazon Linux 2, python3.8-3.11). Rounds are interleaved (gcc, zig,
...) so load changes hit both; zig's cache of compiled libc stubs is warm (it lives in
lambda-compat's cache and is filled once per target: the first-use cost is measured
separately, from an empty zig cache). For every build, the highest GLIBC_ symbol version its
.so files need (lambda_compat.verify.elf).

Projects: fixtures/sdists/glibc-probe, and psycopg2 (default 2.9.10; C against libpq, needs
libpq-dev's pg_config; `--psycopg2 ''` skips it). Needs PyPI once (psycopg2's sdist, and
ziglang when no zig is found). Writes or replaces its own section of docs/benchmarks.md with
--output.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "resolver"))

from lambda_compat.build.builder import default_cache_dir  # noqa: E402
from _doc import fmt, write_section  # noqa: E402
from lambda_compat.host import toolchain  # noqa: E402
from lambda_compat.host.interpreters import Interpreter, find_interpreter  # noqa: E402
from lambda_compat.ui import RecordingUI  # noqa: E402
from lambda_compat.verify.elf import read_elf  # noqa: E402

SECTION_TITLE = "## Building within the runtime's glibc"
FIXTURE = ROOT / "fixtures" / "sdists" / "glibc-probe"
TARGET = ("x86_64", (2, 26))


def psycopg2_source(work: Path, version: str) -> Path:
    src = work / "psycopg2"
    if not list(src.glob(f"psycopg2-{version}/setup.py")):
        src.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--disable-pip-version-check", "--no-binary", ":all:", "-d", str(src),
                        f"psycopg2=={version}"], check=True)
        with tarfile.open(src / f"psycopg2-{version}.tar.gz") as tar:
            tar.extractall(src)
    return src / f"psycopg2-{version}"


def build(python: Interpreter, source: Path, env: Dict[str, str],
          work: Path) -> Tuple[float, Optional[Tuple[int, ...]]]:
    """Seconds of `setup.py build_ext` on a fresh copy, and the highest GLIBC_ needed."""
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=work))
    try:
        src = tmp / "src"
        shutil.copytree(source, src)
        base = {k: v for k, v in os.environ.items()
                if k not in ("CC", "CXX", "LDSHARED", "LDCXXSHARED", "AR", "CFLAGS")}
        started = time.perf_counter()
        proc = subprocess.run([python.path, "setup.py", "build_ext", "-b", "out", "-t", "obj"],
                              cwd=src, env={**base, **env}, capture_output=True, text=True)
        took = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"build of {source.name} failed:\n{proc.stdout[-3000:]}"
                             f"{proc.stderr[-3000:]}")
        versions = [read_elf(so).max_version("GLIBC_") for so in (src / "out").rglob("*.so")]
        found = [v for v in versions if v is not None]
        return took, (max(found) if found else None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)



def dotted(version: Optional[Tuple[int, ...]]) -> str:
    return "GLIBC_" + ".".join(map(str, version)) if version else "none"




def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="builds per mode (default 3)")
    p.add_argument("--psycopg2", default="2.9.10", help="psycopg2 version ('' to skip)")
    p.add_argument("--work", type=Path, default=ROOT / ".bench" / "toolchain")
    p.add_argument("--output", type=Path, help="write the section into this markdown file")
    args = p.parse_args(argv)
    python = find_interpreter((3, 11), platform.machine())
    if python is None:
        raise SystemExit("no CPython 3.11 on this machine")
    args.work.mkdir(parents=True, exist_ok=True)
    ui = RecordingUI()
    zig = toolchain.ensure_zig(default_cache_dir(), ui)
    installs = [d for n, d in ui.events if n == "toolchain-install-done"]
    zig_version = toolchain.zig_version(zig)
    machine, glibc = TARGET
    env_zig = toolchain.compiler_env(zig, machine, glibc, args.work / "cc",
                                     zig_cache=toolchain.zig_cache_dir(default_cache_dir()))
    projects = {"glibc-probe (fixture)": FIXTURE}
    if args.psycopg2:
        projects[f"psycopg2 {args.psycopg2}"] = psycopg2_source(args.work, args.psycopg2)
    load_start = os.getloadavg()[0]
    # First use of a target: zig compiles that glibc's stubs and compiler-rt into its cache.
    cold_cache = Path(tempfile.mkdtemp(prefix="zig-cache-", dir=args.work))
    env_cold = toolchain.compiler_env(zig, machine, glibc, args.work / "cc-cold",
                                      zig_cache=cold_cache)
    cold, _ = build(python, FIXTURE, env_cold, args.work)
    shutil.rmtree(cold_cache, ignore_errors=True)
    print(f"zig, empty cache: {cold:.1f} s", file=sys.stderr)
    build(python, FIXTURE, env_zig, args.work)       # fills the lasting cache if needed
    rows = []
    for label, source in projects.items():
        times: Dict[str, List[float]] = {"gcc": [], "zig": []}
        ceilings: Dict[str, set] = {"gcc": set(), "zig": set()}
        for _ in range(args.repeat):
            for mode, env in (("gcc", {}), ("zig", env_zig)):
                took, ceiling = build(python, source, env, args.work)
                times[mode].append(took)
                ceilings[mode].add(ceiling)
                print(f"{label} {mode}: {took:.1f} s, {dotted(ceiling)}", file=sys.stderr)
        ratio = statistics.median(times["zig"]) / statistics.median(times["gcc"])
        for mode in ("gcc", "zig"):
            compiler = "host gcc" if mode == "gcc" else f"zig, {toolchain.zig_target(*TARGET)}"
            rows.append(f"| {label} | {compiler} | {fmt(times[mode])} | "
                        f"{ratio if mode == 'zig' else 1.0:.2f}× | "
                        f"{', '.join(sorted(dotted(c) for c in ceilings[mode]))} |")
    load_end = os.getloadavg()[0]
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout
    section = "\n".join([
        SECTION_TITLE, "",
        "Generated by `benchmarks/bench_toolchain.py` — do not edit by hand; rerun it. "
        f"Each project built with {python.describe()} (`setup.py build_ext` on a fresh copy "
        "of its source), with the host's compiler (the interpreter's own CC and LDSHARED) or "
        "with zig through `lambda_compat.host.toolchain.compiler_env` for "
        f"{machine}-linux-gnu.{glibc[0]}.{glibc[1]} (Amazon Linux 2's glibc). Wall-clock "
        f"seconds, median (min–max) of {args.repeat} interleaved rounds; zig's cache of the "
        "target's compiled libc stubs warm. GLIBC = the highest GLIBC_ symbol version the "
        "built .so files need (AL2 runtimes allow up to 2.26, AL2023 up to 2.34).", "",
        "| project | compiler | s | ratio | GLIBC needed |", "|---|---|---:|---:|---|",
        *rows, "",
        f"- First build for a target with an empty zig cache (zig compiles that glibc's stubs "
        f"and compiler-rt, once per target and zig version, kept in lambda-compat's cache): "
        f"{cold:.1f} s for the fixture.",
        (f"- zig was installed by this run (ziglang=={toolchain.ZIGLANG_VERSION}, "
         f"{installs[0]['seconds']:.0f} s, ~100 MB download)." if installs else
         f"- zig {zig_version} was already present ({zig})."),
        *([f"- **The machine was busy with other work** (load average above its "
           f"{os.cpu_count()} CPUs): absolute times are inflated; rounds are interleaved, so "
           f"the ratios are the figures to read."]
          if max(load_start, load_end) > (os.cpu_count() or 1) else []),
        "",
        f"Machine: nproc {os.cpu_count()}, {platform.system()} {platform.machine()}, "
        f"{os.confstr('CS_GNU_LIBC_VERSION')}, gcc {gcc.strip()}, zig {zig_version}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; 1-min load average "
        f"{load_start:.2f} at start, {load_end:.2f} at end.",
        f"Command: `benchmarks/bench_toolchain.py --repeat {args.repeat}"
        f"{' --output ' + str(args.output) if args.output else ''}`", ""])
    print(section)
    if args.output:
        write_section(args.output, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
