"""A container image standing in for ``public.ecr.aws/sam/build-pythonX.Y`` in the tests.

The SAM build images cannot be pulled here (no access to that registry). This helper builds a
Debian bookworm root (CPython 3.11) with what a SAM build image has for building wheels --
python3, pip, setuptools, wheel, gcc and the Python headers -- by ``debootstrap`` (native
architecture only: the second stage configures the packages) and imports it into podman as
``localhost/lc-test-buildenv:<suite>-<arch>``, labelled with the recipe's hash so a changed
recipe rebuilds it. Built once per machine under a file lock in the lambda-compat cache.

Kept apart from prove/standin on purpose: stand-in roots are for running imports (what the
runtime has, nothing more); this image exists only for the container build environment's
tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from filelock import FileLock

from lambda_compat.host.engines import podman_global_args
from lambda_compat.host.paths import default_cache_dir
from lambda_compat.prove.standin.info import DEBIAN_MIRROR

SUITE = "bookworm"                 # CPython 3.11, glibc 2.36
PYTHON_VERSION = (3, 11)
PACKAGES = ("python3", "python3-pip", "python3-setuptools", "python3-wheel", "gcc",
            "libc6-dev", "python3-dev")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL = "io.lambda-compat.test-buildenv"


def recipe_id(arch: str = "amd64") -> str:
    text = "|".join((SUITE, arch, ",".join(PACKAGES), PATH, "1"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _current(exe: str, tag: str) -> str:
    proc = subprocess.run([exe] + podman_global_args(exe) +
                          ["image", "inspect", "--format",
                           f'{{{{ index .Config.Labels "{LABEL}" }}}}', tag],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def ensure_build_image(engine: str = "podman", arch: str = "amd64") -> str:
    """The tag of the test build image, built on first use (minutes: debootstrap)."""
    exe = shutil.which(engine) or engine
    tag = f"localhost/lc-test-buildenv:{SUITE}-{arch}"
    want = recipe_id(arch)
    if _current(exe, tag) == want:
        return tag
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise RuntimeError("building the test build image needs debootstrap and root")
    base = default_cache_dir() / "test-images"
    base.mkdir(parents=True, exist_ok=True)
    with FileLock(str(base / f"buildenv-{SUITE}-{arch}.lock")):
        if _current(exe, tag) == want:
            return tag
        mirror = os.environ.get("LAMBDA_COMPAT_DEBIAN_MIRROR") or DEBIAN_MIRROR
        with tempfile.TemporaryDirectory(prefix="buildenv-", dir=base) as tmp:
            root = Path(tmp) / "root"
            proc = subprocess.run(["debootstrap", "--variant=minbase",
                                   "--include=" + ",".join(PACKAGES), f"--arch={arch}", SUITE,
                                   str(root), mirror],
                                  capture_output=True, text=True, timeout=3600,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                raise RuntimeError(f"debootstrap failed: {proc.stderr[-1500:]}")
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (root / leftover).glob("*"):
                    if path.is_file():
                        path.unlink()
            tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner",
                                    "--exclude=./proc/*", "--exclude=./sys/*",
                                    "--exclude=./dev/*", "-c", "."], stdout=subprocess.PIPE)
            argv = [exe] + podman_global_args(exe) + [
                "import", "--arch", arch, "--change", f"LABEL {LABEL}={want}",
                "--change", f"ENV PATH={PATH}", "-", tag]
            imported = subprocess.run(argv, stdin=tar.stdout, capture_output=True, text=True,
                                      timeout=1800)
            tar.stdout.close()  # type: ignore[union-attr]
            tar.wait()
            if imported.returncode != 0 or tar.returncode != 0:
                raise RuntimeError(f"podman import failed: {imported.stderr[-600:]}")
    return tag


if __name__ == "__main__":
    print(ensure_build_image())
