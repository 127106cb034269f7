"""Stand-in images: a stand-in root imported into podman (or docker), labelled as a stand-in."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Optional

from ... import errors
from ...host.engines import podman_global_args
from .info import StandinRoot


IMAGE_REPO = "localhost/lc-standin"
LABEL = "io.lambda-compat.standin"


def image_tag(root: StandinRoot) -> str:
    return f"{IMAGE_REPO}:{root.info.name}"


def _root_id(root: StandinRoot) -> str:
    return hashlib.sha256(root.info.to_json().encode()).hexdigest()[:16]


def ensure_standin_image(root: StandinRoot, *, engine: str = "podman") -> str:
    """A container image made from ``root`` (``podman import``), cached by tag and root id.

    Returns the tag (``localhost/lc-standin:<root name>``). The image is labelled as a
    stand-in so results made with it say so.
    """
    exe = shutil.which(engine) or engine
    tag = image_tag(root)
    want = _root_id(root)

    def current() -> Optional[str]:
        proc = subprocess.run([exe] + podman_global_args(exe) +
                              ["image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}', tag],
                              capture_output=True, text=True, timeout=60)
        return proc.stdout.strip() if proc.returncode == 0 else None

    if current() == want:
        return tag
    from filelock import FileLock  # here, not at start-up: ~30 ms
    with FileLock(str(root.path.parent / f"{root.info.name}.image.lock")):
        if current() == want:
            return tag
        arch = "arm64" if root.info.arch == "arm64" else "amd64"
        tar = subprocess.Popen(["tar", "-C", str(root.path), "--numeric-owner",
                                "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*",
                                "-c", "."], stdout=subprocess.PIPE)
        changes = [f"LABEL {LABEL}={want}",
                   f"LABEL {LABEL}.describe={json.dumps(root.info.describe())}",
                   "WORKDIR /var/task",
                   f"ENTRYPOINT {json.dumps([root.info.python_executable])}"]
        argv = [exe] + podman_global_args(exe) + ["import", "--arch", arch]
        if Path(exe).name.startswith("docker"):
            argv = [exe, "import", "--platform", f"linux/{arch}"]
        for change in changes:
            argv += ["--change", change]
        proc = subprocess.run(argv + ["-", tag], stdin=tar.stdout, capture_output=True,
                              text=True, timeout=1800)
        tar.stdout.close()  # type: ignore[union-attr]
        tar.wait()
        if proc.returncode != 0 or tar.returncode != 0:
            raise errors.EnvironmentProblem(
                f"Importing {root.path} as {tag} failed: {proc.stderr.strip()[-600:]}")
    return tag
