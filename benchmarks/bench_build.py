#!/usr/bin/env python3
"""Build benchmark: lambda-compat against uv, pip and aws-lambda-builders (alb).

Every tool builds one requirements file (default fixtures/bench/requirements.txt)
for python3.11/x86_64 and python3.12/arm64, in the same run and interleaved.
Every (arch, tool) pair gets:

* a cold run: fresh, empty caches (a fresh PIP_CACHE_DIR, and for
  lambda-compat/uv also a fresh --cache-dir) and a fresh output dir;
* a warm run: the same caches again, a fresh output dir.

uv runs as `uv pip install --target OUT --python-platform ARCH-manylinux_2_X
--python-version X.Y`; pip as `pip install --target OUT --only-binary=:all:
--platform ...`. Both judge less than lambda-compat does (no verification, no
sdists); they are the speed bar, not the correctness one.

Each run is timed by wall clock (time.perf_counter around the subprocess).
The bundle is then measured: file count, size, and the ELF e_machine of every
shared object in it, so a bundle built for arm64 that holds x86_64 .so files
(or the other way round) is counted, not silently accepted.

Run it with the project venv:  .venv/bin/python benchmarks/bench_build.py
See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _doc import write_section  # noqa: E402
REQUIREMENTS = ROOT / "fixtures" / "bench" / "requirements.txt"
# The runtime each architecture is built for, and that runtime's glibc
# (python3.11 runs on Amazon Linux 2, python3.12 on Amazon Linux 2023).
RUNTIME_FOR = {"x86_64": "python3.11", "arm64": "python3.12"}
GLIBC_OF = {"python3.11": (2, 26), "python3.12": (2, 34)}
# uv's --python-platform has no manylinux_2_26; 2_17 is the newest at or below AL2's 2.26.
UV_PLATFORM = {"x86_64": "x86_64-manylinux_2_17", "arm64": "aarch64-manylinux_2_34"}

ARCHES = ("x86_64", "arm64")
TOOLS = ("alb", "pip", "uv", "lambda-compat", "lc-baseline")
TOOL_LABEL = {"alb": "aws-lambda-builders", "pip": "pip --target", "uv": "uv pip --target",
              "lambda-compat": "lambda-compat", "lc-baseline": "lambda-compat (baseline)"}

# ELF e_machine values.
EM_X86_64 = 62
EM_AARCH64 = 183
EXPECTED_MACHINE = {"x86_64": EM_X86_64, "arm64": EM_AARCH64}
MACHINE_NAME = {EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}

# Run by the alb venv's interpreter: drives aws_lambda_builders' python_pip
# workflow the way SAM CLI does (LambdaBuilder -> PythonPipWorkflow), for one
# source dir holding only requirements.txt. Arguments come as one JSON object.
ALB_DRIVER = r'''
import json, logging, sys, traceback

args = json.loads(sys.argv[1])
logging.basicConfig(level=logging.DEBUG if args["verbose"] else logging.WARNING,
                    stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
try:
    from aws_lambda_builders.builder import LambdaBuilder

    builder = LambdaBuilder(language="python", dependency_manager="pip", application_framework=None)
    builder.build(
        args["source_dir"],
        args["artifacts_dir"],
        args["scratch_dir"],
        args["manifest_path"],
        runtime=args["runtime"],
        architecture=args["architecture"],
        executable_search_paths=args["executable_search_paths"],
    )
except BaseException as exc:  # report one line first, then the details
    msg = (str(exc).strip().splitlines() or [""])[0]
    sys.stderr.write("ERROR: %s: %s\n" % (type(exc).__name__, msg))
    traceback.print_exc()
    sys.exit(1)
'''


# --------------------------------------------------------------------------
# Results


@dataclass
class BundleStats:
    files: int = 0
    bytes: int = 0
    so_total: int = 0  # shared objects that are ELF files
    so_wrong_arch: int = 0
    so_not_elf: int = 0
    wrong_examples: list[str] = field(default_factory=list)
    # Highest GLIBC_2.x symbol version any .so references, and how many .so
    # reference one newer than the runtime's glibc (they fail to load there).
    max_glibc: str = ""
    so_glibc_too_new: int = 0


@dataclass
class RunResult:
    arch: str
    tool: str
    phase: str  # "cold" | "warm"
    repeat: int
    ok: bool
    seconds: float
    returncode: int | None
    error: str = ""
    bundle: BundleStats | None = None
    log: str = ""
    cache_bytes: dict[str, int] = field(default_factory=dict)  # after the run
    load: float = 0.0  # 1-min load average when the run started


# --------------------------------------------------------------------------
# Bundle inspection

_SO_RE = re.compile(r"\.so(\.\d+)*$")
_GLIBC_RE = re.compile(rb"GLIBC_2\.(\d+)\x00")


def elf_machine(path: Path) -> int | None:
    """e_machine of an ELF file, or None if it is not ELF.

    e_machine is the 16-bit field at offset 18, in the byte order given by
    e_ident[EI_DATA] (offset 5: 1 = little endian, 2 = big endian)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "big" if head[5] == 2 else "little"
    return int.from_bytes(head[18:20], order)


def inspect_bundle(root: Path, arch: str) -> BundleStats:
    runtime_glibc = GLIBC_OF[RUNTIME_FOR[arch]]
    stats = BundleStats()
    expected = EXPECTED_MACHINE[arch]
    if not root.is_dir():
        return stats
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            p = Path(dirpath, name)
            try:
                st = p.lstat()
            except OSError:
                continue
            stats.files += 1
            if not p.is_symlink():
                stats.bytes += st.st_size
            if not _SO_RE.search(name) or p.is_symlink():
                continue
            machine = elf_machine(p)
            if machine is None:
                stats.so_not_elf += 1
                continue
            stats.so_total += 1
            try:
                minors = {int(m) for m in _GLIBC_RE.findall(p.read_bytes())}
            except OSError:
                minors = set()
            if minors:
                top = (2, max(minors))
                if not stats.max_glibc or top > tuple(map(int, stats.max_glibc.split("."))):
                    stats.max_glibc = "%d.%d" % top
                if top > runtime_glibc:
                    stats.so_glibc_too_new += 1
            if machine != expected:
                stats.so_wrong_arch += 1
                if len(stats.wrong_examples) < 5:
                    got = MACHINE_NAME.get(machine, f"e_machine={machine}")
                    stats.wrong_examples.append(f"{p.relative_to(root)} ({got})")
    return stats


# --------------------------------------------------------------------------
# Running the tools


def first_error_line(stderr: str, stdout: str = "") -> str:
    """One line that says what went wrong."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:  # our alb driver, and any tool that says "error: ..."
        if re.match(r"(?i)^(ERROR|error)\b[:\s]", ln):
            return ln
    if any(ln.startswith("Traceback") for ln in lines):
        return lines[-1]  # the exception line
    if lines:
        return lines[0]
    out = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    return out[-1] if out else "no output"


def base_env(args: argparse.Namespace) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PIP_NO_CACHE_DIR", None)
    env.pop("VIRTUAL_ENV", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    # Installed tools run from byte-compiled modules; a shell that forbids .pyc would make
    # every Python tool compile its sources on every start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["UV_NO_CONFIG"] = "1"
    for key in ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_CACHE_DIR"):
        env.pop(key, None)
    if not args.inherit_pip_config:
        # Only PyPI: no pip.conf, no local find-links / extra indexes. Local
        # file:// indexes make alb's pip print "Processing /path/x.whl", which
        # alb takes for a local package and runs `pip wheel` on: extra work
        # no real user pays for.
        env["PIP_CONFIG_FILE"] = os.devnull
        for key in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
            env.pop(key, None)
    return env


def run_timed(cmd: list[str], env: dict[str, str], cwd: Path, log: Path, timeout: float):
    """Run cmd, return (seconds, returncode, stdout, stderr). Never raises for tool failures."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        # Own process group, so a timeout also ends the pip processes the tool started.
        proc = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True,
        )
    except OSError as exc:  # executable missing, not executable, ...
        seconds = time.perf_counter() - t0
        rc, out, err = None, "", f"error: cannot run {cmd[0]}: {exc}\n"
    else:
        try:
            out, err = proc.communicate(timeout=timeout)
            seconds = time.perf_counter() - t0
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            seconds = time.perf_counter() - t0
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            out, err = proc.communicate()
            rc, err = None, f"error: timed out after {timeout:.0f}s\n" + (err or "")
    shown = ["<ALB_DRIVER>" if c == ALB_DRIVER else c for c in cmd]
    log.write_text(
        "$ " + " ".join(shown) + f"\n# rc={rc} seconds={seconds:.3f}\n"
        + "# --- stdout\n" + out + "\n# --- stderr\n" + err,
        encoding="utf-8",
    )
    return seconds, rc, out, err


def tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def fresh_dir(p: Path) -> Path:
    if p.exists():
        shutil.rmtree(p)
    p.mkdir(parents=True)
    return p


def run_alb(args, arch: str, phase: str, rep: int, pair_dir: Path, pip_cache: Path) -> RunResult:
    run_dir = fresh_dir(pair_dir / phase)
    src = fresh_dir(run_dir / "src")
    shutil.copy2(args.requirements, src / "requirements.txt")
    out = run_dir / "out"
    scratch = run_dir / "scratch"
    driver_args = {
        "source_dir": str(src),
        "artifacts_dir": str(out),
        "scratch_dir": str(scratch),
        "manifest_path": str(src / "requirements.txt"),
        "runtime": RUNTIME_FOR[arch],
        "architecture": arch,
        # alb looks for python3.11 / python / python3 with pip on these dirs, then PATH.
        "executable_search_paths": [str(Path(args.alb_interpreter).parent)] + [
            str(d) for d in args.alb_search_path],
        "verbose": args.verbose,
    }
    env = base_env(args)
    env["PIP_CACHE_DIR"] = str(pip_cache)
    cmd = [args.alb_python, "-c", ALB_DRIVER, json.dumps(driver_args)]
    log = args.work_dir / "logs" / f"r{rep}-{arch}-alb-{phase}.log"
    seconds, rc, so, se = run_timed(cmd, env, run_dir, log, args.timeout)
    res = finish(arch, "alb", phase, rep, seconds, rc, so, se, out, log, args)
    res.cache_bytes = {"pip cache": tree_bytes(pip_cache)}
    return res


def run_lambda_compat(args, arch: str, phase: str, rep: int, pair_dir: Path,
                      pip_cache: Path, lc_cache: Path, tool: str = "lambda-compat") -> RunResult:
    run_dir = fresh_dir(pair_dir / phase)
    out = run_dir / "out"
    req = os.path.relpath(args.requirements, ROOT)
    env = base_env(args)
    if tool == "lc-baseline":
        # The same venv, with an older checkout of the package first on sys.path.
        lc = [str(Path(args.lambda_compat).parent / "python"), "-m", "lambda_compat.cli.main"]
        env["PYTHONPATH"] = str(args.lc_baseline / "resolver")
    else:
        lc = [args.lambda_compat]
    cmd = lc + ["build", "-r", req, "--runtime", RUNTIME_FOR[arch],
                "--arch", arch, "-o", str(out), "--cache-dir", str(lc_cache)]
    env["PIP_CACHE_DIR"] = str(pip_cache)
    env["LAMBDA_COMPAT_CACHE_DIR"] = str(lc_cache)  # also what --cache-dir does not cover
    log = args.work_dir / "logs" / f"r{rep}-{arch}-{tool}-{phase}.log"
    seconds, rc, so, se = run_timed(cmd, env, ROOT, log, args.timeout)
    res = finish(arch, tool, phase, rep, seconds, rc, so, se, out, log, args)
    res.cache_bytes = {"pip cache": tree_bytes(pip_cache), "--cache-dir": tree_bytes(lc_cache)}
    return res


def _py_version(arch: str) -> str:
    return RUNTIME_FOR[arch].removeprefix("python")


def run_uv(args, arch: str, phase: str, rep: int, pair_dir: Path, uv_cache: Path) -> RunResult:
    run_dir = fresh_dir(pair_dir / phase)
    out = run_dir / "out"
    cmd = [args.uv, "pip", "install", "--quiet", "--no-config", "--target", str(out),
           "--python-platform", UV_PLATFORM[arch], "--python-version", _py_version(arch),
           "--cache-dir", str(uv_cache), "-r", str(args.requirements)]
    log = args.work_dir / "logs" / f"r{rep}-{arch}-uv-{phase}.log"
    seconds, rc, so, se = run_timed(cmd, base_env(args), ROOT, log, args.timeout)
    res = finish(arch, "uv", phase, rep, seconds, rc, so, se, out, log, args)
    res.cache_bytes = {"uv cache": tree_bytes(uv_cache)}
    return res


def pip_platforms(arch: str) -> list[str]:
    """Every manylinux tag the target's glibc accepts, for pip's --platform."""
    machine = "x86_64" if arch == "x86_64" else "aarch64"
    top = GLIBC_OF[RUNTIME_FOR[arch]][1]
    tags = [f"manylinux_2_{m}_{machine}" for m in range(top, 16, -1)]
    tags.append(f"manylinux2014_{machine}")
    if machine == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


def run_pip(args, arch: str, phase: str, rep: int, pair_dir: Path, pip_cache: Path) -> RunResult:
    run_dir = fresh_dir(pair_dir / phase)
    out = run_dir / "out"
    python = str(Path(args.lambda_compat).parent / "python")
    cmd = [python, "-m", "pip", "install", "--quiet", "--target", str(out),
           "--only-binary=:all:", "--implementation", "cp",
           "--python-version", _py_version(arch)]
    for tag in pip_platforms(arch):
        cmd += ["--platform", tag]
    cmd += ["-r", str(args.requirements)]
    env = base_env(args)
    env["PIP_CACHE_DIR"] = str(pip_cache)
    log = args.work_dir / "logs" / f"r{rep}-{arch}-pip-{phase}.log"
    seconds, rc, so, se = run_timed(cmd, env, ROOT, log, args.timeout)
    res = finish(arch, "pip", phase, rep, seconds, rc, so, se, out, log, args)
    res.cache_bytes = {"pip cache": tree_bytes(pip_cache)}
    return res


def finish(arch, tool, phase, rep, seconds, rc, stdout, stderr, out: Path, log: Path, args) -> RunResult:
    ok = rc == 0
    bundle = inspect_bundle(out, arch) if out.is_dir() else None
    error = ""
    if not ok:
        error = first_error_line(stderr, stdout)
    elif bundle is None or bundle.files == 0:
        ok, error = False, "exit 0 but the output dir is missing or empty"
    res = RunResult(arch, tool, phase, rep, ok, seconds, rc, error, bundle, str(log))
    status = "ok" if ok else f"FAIL: {error}"
    extra = ""
    if bundle is not None:
        extra = (f" files={bundle.files} MiB={bundle.bytes / 2**20:.1f}"
                 f" so={bundle.so_total} wrong-arch={bundle.so_wrong_arch}"
                 f" max-GLIBC={bundle.max_glibc or '-'}")
    print(f"  [{rep}] {arch:6} {TOOL_LABEL[tool]:24} {phase}: {seconds:8.2f}s {status}{extra}",
          flush=True)
    return res


# --------------------------------------------------------------------------
# Report


def tool_version_info(args) -> dict[str, str]:
    def ask(python: str, code: str) -> str:
        try:
            r = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
            return r.stdout.strip() or (r.stderr.strip().splitlines() or ["?"])[-1]
        except OSError as exc:
            return f"unavailable ({exc})"

    info = {
        "bench python": sys.version.split()[0],
        "bench pip": ask(sys.executable, "import pip; print(pip.__version__)"),
    }
    if "alb" in args.tools:
        info["alb python"] = ask(args.alb_interpreter, "import sys; print(sys.version.split()[0])")
        info["alb pip"] = ask(args.alb_interpreter, "import pip; print(pip.__version__)")
        info["aws-lambda-builders"] = ask(
            args.alb_python, "import aws_lambda_builders as a; print(a.__version__)")
    if "uv" in args.tools:
        try:
            r = subprocess.run([args.uv, "--version"], capture_output=True, text=True, timeout=60)
            info["uv"] = r.stdout.strip().removeprefix("uv ") or "?"
        except OSError as exc:
            info["uv"] = f"unavailable ({exc})"
    if "lambda-compat" in args.tools:
        lc_python = Path(args.lambda_compat).parent / "python"
        info["lambda-compat"] = ask(
            str(lc_python), "import importlib.metadata as m; print(m.version('lambda-compat'))")
        info["lambda-compat pip"] = ask(str(lc_python), "import pip; print(pip.__version__)")
    return info


def machine_info() -> dict[str, str]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    libc = " ".join(platform.libc_ver()) or "?"
    try:
        load = "%.2f" % os.getloadavg()[0]
    except (AttributeError, OSError):
        load = "?"
    return {
        "nproc": str(affinity),
        "load": load,
        "machine": f"{platform.system()} {platform.machine()}, {libc}",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _fmt_s(values: list[float], n_total: int) -> str:
    if not values:
        return "—"
    med = statistics.median(values)
    s = f"{med:.1f}"
    if len(values) > 1:
        s += f" ({min(values):.1f}–{max(values):.1f})"
    if len(values) < n_total:
        s += f" [{len(values)}/{n_total} ok]"
    return s


def _fmt_paired(p: dict[str, list[float]]) -> str:
    if not p["cold"] and not p["warm"]:
        return "—"
    return " / ".join(f"{statistics.median(v):.2f}×" if v else "—" for v in (p["cold"], p["warm"]))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summarize(results: list[RunResult], args) -> list[dict]:
    rows = []
    for arch in args.arches:
        for tool in args.tools:
            rs = [r for r in results if r.arch == arch and r.tool == tool]
            if not rs:
                continue
            row = {"arch": arch, "tool": tool}
            for phase in ("cold", "warm"):
                ph = [r for r in rs if r.phase == phase]
                okv = [r.seconds for r in ph if r.ok]
                row[phase] = okv
                row[phase + "_n"] = len(ph)
                row[phase + "_median"] = statistics.median(okv) if okv else None
            # bundle facts: from the last successful run
            good = [r for r in rs if r.ok and r.bundle]
            b = good[-1].bundle if good else None
            row["bundle"] = b
            sizes = {(r.bundle.files, r.bundle.so_total) for r in good}
            row["bundle_varies"] = len(sizes) > 1
            wrong = {r.bundle.so_wrong_arch for r in good}
            row["wrong_max"] = max(wrong) if wrong else None
            by_error: dict[str, list[str]] = {}
            for r in rs:
                if not r.ok:
                    phases = by_error.setdefault(r.error, [])
                    if r.phase not in phases:
                        phases.append(r.phase)
            row["errors"] = ["+".join(ph) + ": " + e for e, ph in by_error.items()]
            rows.append(row)
        for row in rows:
            if row["arch"] != arch:
                continue
            ref = {t: next((r for r in rows if r["arch"] == arch and r["tool"] == t), None)
                   for t in ("uv", "alb")}
            for t, other in ref.items():
                ratios = []
                for phase in ("cold", "warm"):
                    a = other[phase + "_median"] if other else None
                    m = row[phase + "_median"]
                    ratios.append(f"{m / a:.2f}×" if a and m else "—")
                row["ratio_" + t] = " / ".join(ratios)
            row["paired_uv"] = paired_ratios(results, arch, row["tool"], "uv")
    return rows


def paired_ratios(results: list[RunResult], arch: str, tool: str, ref: str) -> dict[str, list[float]]:
    """Per repeat: tool's time / ref's time in the same round (cold, warm)."""
    out: dict[str, list[float]] = {"cold": [], "warm": []}
    for phase in out:
        mine = {r.repeat: r.seconds for r in results
                if r.arch == arch and r.tool == tool and r.phase == phase and r.ok}
        theirs = {r.repeat: r.seconds for r in results
                  if r.arch == arch and r.tool == ref and r.phase == phase and r.ok}
        out[phase] = [mine[k] / theirs[k] for k in sorted(mine) if k in theirs and theirs[k]]
    return out


def section_title(args) -> str:
    req = os.path.relpath(args.requirements, ROOT)
    targets = ", ".join(f"{RUNTIME_FOR[a]}/{a}" for a in args.arches)
    return f"## build: {req} ({targets})"


def render_section(rows: list[dict], results: list[RunResult], args, info: dict[str, str]) -> str:
    n = args.repeat
    lines = [section_title(args), ""]
    lines.append(
        "Generated by `benchmarks/bench_build.py` — do not edit by hand; rerun it. "
        f"Requirements `{os.path.relpath(args.requirements, ROOT)}`; "
        + ", ".join(f"{RUNTIME_FOR[a]} on {a}" for a in args.arches) + ". "
        "Cold = fresh empty caches (PIP_CACHE_DIR, uv's and lambda-compat's --cache-dir); "
        "warm = the same caches again with a fresh output dir; no run's files are deleted "
        "before every run is over (ext4 without a journal creates files slowly for one to "
        "six minutes after mass deletions, which would fall on the next tool). "
        + (f"Times are medians of {n} runs (min–max). " if n > 1 else "One run per cell. ")
        + "Ratios = ratio of the median times (tool / uv, tool / aws-lambda-builders), "
        "cold / warm (below 1 = faster); paired = median of the per-round ratios to uv "
        "(each round runs the tools back to back, so load changes cancel). "
        "lambda-compat verifies every wheel (tags, ELF machine, glibc and library needs) as "
        "always; uv and pip do not. "
        "MB = MiB of file contents (2^20 bytes, the unit of Lambda's 250 MB unzipped limit). "
        "Wrong-arch .so = shared objects whose ELF e_machine is not the target's "
        "(x86_64 = 62, aarch64 = 183), out of all ELF .so files in the bundle."
    )
    lines.append("")
    lines.append("| arch | tool | cold s | warm s | ratio vs uv | paired vs uv | ratio vs alb "
                 "| files | MB | wrong-arch .so | status |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in rows:
        b: BundleStats | None = row["bundle"]
        files = str(b.files) if b else "—"
        mb = f"{b.bytes / 2**20:.1f}" if b else "—"
        if b:
            wrong = f"{row['wrong_max']} of {b.so_total}"
            if row["wrong_max"]:
                wrong = f"**{wrong}**"
        else:
            wrong = "—"
        if row["errors"]:
            status = "FAIL " + "; ".join(row["errors"])
        else:
            status = "ok"
        if row["bundle_varies"]:
            status += " (bundle differs between runs)"
        if b and b.so_wrong_arch:
            status += " — WRONG-ARCH BUNDLE, e.g. " + ", ".join(b.wrong_examples[:2])
        if len(status) > 220:
            status = status[:217] + "..."
        lines.append(
            "| " + " | ".join(_cell(c) for c in (
                row["arch"], TOOL_LABEL[row["tool"]],
                _fmt_s(row["cold"], row["cold_n"]), _fmt_s(row["warm"], row["warm_n"]),
                row["ratio_uv"], _fmt_paired(row["paired_uv"]), row["ratio_alb"],
                files, mb, wrong, status,
            )) + " |"
        )
    lines.append("")
    notes = []
    for row in rows:
        rs = [r for r in results if r.arch == row["arch"] and r.tool == row["tool"]]
        cold = [r for r in rs if r.phase == "cold" and r.cache_bytes]
        parts = []
        if cold:
            c = cold[-1].cache_bytes
            parts.append("caches after the cold run: " + ", ".join(
                f"{k} {v / 2**20:.1f} MiB" for k, v in c.items()))
        b = row["bundle"]
        if b:
            g = f"highest GLIBC symbol version referenced by its .so files: {b.max_glibc or 'none'}"
            if b.so_glibc_too_new:
                g += (f" (**{b.so_glibc_too_new} .so need glibc newer than "
                      "%d.%d**)" % GLIBC_OF[RUNTIME_FOR[row["arch"]]])
            parts.append(g)
        if parts:
            notes.append(f"- {row['arch']} / {TOOL_LABEL[row['tool']]}: " + "; ".join(parts) + ".")
    empty_pip = sorted({TOOL_LABEL[r.tool] for r in results
                        if r.phase == "cold" and r.ok and r.cache_bytes.get("pip cache", 1) < 2**20})
    if empty_pip:
        notes.append(
            "- **Warm runs here are not really warm for pip's cache:** PIP_CACHE_DIR was still "
            f"(nearly) empty after the cold run of {', '.join(empty_pip)}. pip's HTTP cache "
            "stores only responses that carry caching headers, and the index/file server this "
            "machine reached sent none, so pip downloaded everything again. Against pypi.org "
            "directly, warm pip runs would reuse cached wheels.")
    if notes:
        lines.extend(notes)
        lines.append("")
    mi = machine_info()
    lines.append(
        f"Machine: nproc {mi['nproc']}, {mi['machine']}; date {mi['date']}; "
        f"1-min load average {args.load_at_start} at start, {mi['load']} at end, "
        + "%.1f–%.1f at the starts of the runs " % (min(r.load for r in results),
                                                    max(r.load for r in results))
        + "(above nproc means something else competed for the CPUs)."
    )
    lines.append(
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info.items()) + "."
    )
    pip_cfg = ("inherited from the environment (pip.conf, PIP_FIND_LINKS, PIP_EXTRA_INDEX_URL)"
               if args.inherit_pip_config else
               "isolated: PyPI only (PIP_CONFIG_FILE=/dev/null, PIP_FIND_LINKS and PIP_EXTRA_INDEX_URL unset)")
    lines.append(f"pip configuration: {pip_cfg}.")
    lines.append(
        "Command: `" + " ".join(["benchmarks/bench_build.py"] + args.argv) + "`"
    )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=1, help="cold+warm pairs per (arch, tool) (default 1)")
    p.add_argument("--tools", default="alb,pip,uv,lambda-compat",
                   help="comma list of: " + ", ".join(TOOLS) + " (default all but lc-baseline)")
    p.add_argument("--arches", default=",".join(ARCHES), help="comma list of: x86_64, arm64 (default both)")
    p.add_argument("--output", type=Path, default=None,
                   help="markdown file whose '%s' section is written/replaced "
                        "(e.g. docs/benchmarks.md); without it the section is only printed"
                        % "## build: REQUIREMENTS (TARGETS)")
    p.add_argument("-r", "--requirements", type=Path, default=REQUIREMENTS,
                   help="requirements file to build (default fixtures/bench/requirements.txt)")
    p.add_argument("--uv", default=str(ROOT / ".bench" / "uv-venv" / "bin" / "uv"),
                   help="uv executable (default .bench/uv-venv/bin/uv)")
    p.add_argument("--lc-baseline", type=Path, default=None,
                   help="a checkout (with resolver/) of an older lambda-compat, run as the extra "
                        "tool lc-baseline from the same venv, for before/after in one run")
    p.add_argument("--json", type=Path, default=None, help="also write raw per-run results here")
    p.add_argument("--work-dir", type=Path, default=ROOT / ".bench" / "build",
                   help="scratch space for caches, outputs and logs (default .bench/build)")
    p.add_argument("--keep", action="store_true", help="keep bundles and caches (default: delete them all once every run is over)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per single build (default 1800)")
    p.add_argument("--alb-python", default=str(ROOT / ".bench" / "alb-venv" / "bin" / "python"),
                   help="python of the venv that has aws-lambda-builders installed")
    p.add_argument("--alb-interpreter", default=None,
                   help="python3.11 (with pip) alb should use for pip; its directory is passed as "
                        "executable_search_paths (default: the alb venv's python3.11)")
    p.add_argument("--alb-search-path", type=Path, action="append",
                   default=[ROOT / ".bench" / "alb312-venv" / "bin"],
                   help="more directories where alb looks for pythonX.Y with pip (default: "
                        ".bench/alb312-venv/bin, a python3.12 venv for the arm64 target)")
    p.add_argument("--lambda-compat", default=str(ROOT / ".venv" / "bin" / "lambda-compat"),
                   help="lambda-compat executable")
    p.add_argument("--inherit-pip-config", action="store_true",
                   help="let both tools use pip.conf and PIP_FIND_LINKS/PIP_EXTRA_INDEX_URL from the "
                        "environment (default: ignore them, so both tools see PyPI only)")
    p.add_argument("-v", "--verbose", action="store_true", help="alb driver logs at DEBUG (into the logs)")
    args = p.parse_args(argv)
    args.argv = argv
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    args.arches = [a.strip() for a in args.arches.split(",") if a.strip()]
    aliases = {"aws-lambda-builders": "alb", "lc": "lambda-compat"}
    if args.lc_baseline is not None and "lc-baseline" not in args.tools:
        args.tools.append("lc-baseline")
    args.requirements = args.requirements.resolve()
    args.tools = [aliases.get(t, t) for t in args.tools]
    for t in args.tools:
        if t not in TOOLS:
            p.error(f"unknown tool {t!r}; choose from {', '.join(TOOLS)}")
    for a in args.arches:
        if a not in ARCHES:
            p.error(f"unknown arch {a!r}; choose from {', '.join(ARCHES)}")
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.alb_interpreter is None:
        args.alb_interpreter = str(Path(args.alb_python).parent / "python3.11")
    args.work_dir = args.work_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not args.requirements.is_file():
        print(f"missing requirements file {args.requirements}", file=sys.stderr)
        return 2
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.load_at_start = machine_info()["load"]
    info = tool_version_info(args)
    print(f"work dir: {args.work_dir}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)

    results: list[RunResult] = []
    for rep in range(1, args.repeat + 1):
        for arch in args.arches:
            for tool in args.tools:
                pair_dir = fresh_dir(args.work_dir / f"r{rep}" / arch / tool)
                pip_cache = fresh_dir(pair_dir / "pip-cache")
                lc_cache = fresh_dir(pair_dir / "lc-cache")
                for phase in ("cold", "warm"):
                    load = os.getloadavg()[0]
                    if tool == "alb":
                        r = run_alb(args, arch, phase, rep, pair_dir, pip_cache)
                    elif tool == "uv":
                        r = run_uv(args, arch, phase, rep, pair_dir, lc_cache)
                    elif tool == "pip":
                        r = run_pip(args, arch, phase, rep, pair_dir, pip_cache)
                    else:
                        r = run_lambda_compat(args, arch, phase, rep, pair_dir, pip_cache,
                                              lc_cache, tool)
                    r.load = load
                    results.append(r)
    # Nothing is deleted until every run is over: on ext4 without a journal (this machine's
    # root file system), creating a file within one to six minutes of mass deletions costs
    # up to 1 ms of kernel time (ext4 skips the recently freed inodes one by one), so deleting a
    # pair's ~6,000 files here slowed whichever tool ran next.
    if not args.keep:
        for rep in range(1, args.repeat + 1):
            shutil.rmtree(args.work_dir / f"r{rep}", ignore_errors=True)
        # The kernel skips an inode freed less than 60 s ago, or 360 s while its inode-table
        # block is dirty (ext4's recently_deleted()): written out now, the next run here (or
        # anything else) pays for these deletions one minute, not six.
        os.sync()

    rows = summarize(results, args)
    section = render_section(rows, results, args, info)
    # Files first, so a closed stdout (e.g. piped into head) cannot lose them.
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(
            {"info": info, "machine": machine_info(), "results": [asdict(r) for r in results]},
            indent=2) + "\n", encoding="utf-8")
    if args.output:
        write_section(Path(args.output), section)
    print()
    print(section)
    if args.output:
        print(f"updated section {section_title(args)!r} in {args.output}")
    print(f"logs: {args.work_dir / 'logs'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
