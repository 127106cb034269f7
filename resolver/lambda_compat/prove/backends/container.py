"""The container backend: docker or podman running the runtime's image (or a stand-in image)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from ... import errors
from ...errors import BackendUnavailable
from ...host.engines import podman_global_args, ulimit_args
from ...targets.target import Target
from . import base
from .base import (LAMBDA_NOFILE, PROBE_MARK, ProbeBackend, probe_source, probe_spec,
                   run_command, tail, target_facts)


class ContainerBackend(ProbeBackend):
    """docker or podman running the runtime's image (or an override, e.g. a stand-in)."""

    proof = "image"

    def __init__(self, target: Target, engine: str, image: Optional[str] = None, *,
                 pull: bool = True, pull_timeout: float = 900) -> None:
        super().__init__(target)
        self.engine = engine
        self.kind = "podman" if Path(engine).name.startswith("podman") else "docker"
        self.image = image or target_facts(target).image
        self.pull = pull
        self.pull_timeout = pull_timeout
        self._labels: Optional[Dict[str, str]] = None
        self._python: Optional[str] = None
        #: names of the containers started by the last import_modules (all removed afterwards)
        self.last_containers: List[str] = []

    @property
    def platform(self) -> str:
        return f"linux/{'arm64' if self.target.arch == 'arm64' else 'amd64'}"

    def _engine(self, *args: str) -> List[str]:
        return [self.engine] + podman_global_args(self.engine) + list(args)

    def _inspect(self) -> Optional[Dict[str, str]]:
        proc = subprocess.run(self._engine("image", "inspect", "--format",
                                           "{{json .Config.Labels}}", self.image),
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            return None
        try:
            return json.loads(proc.stdout.strip() or "null") or {}
        except ValueError:
            return {}

    def prepare(self) -> None:
        if self._labels is not None:
            return
        labels = self._inspect()
        if labels is None:
            if not self.pull:
                raise BackendUnavailable(f"The image {self.image} is not present locally.",
                                         hint=f"{self.kind} pull --platform {self.platform} {self.image}")
            try:
                proc = subprocess.run(self._engine("pull", "--platform", self.platform, self.image),
                                      capture_output=True, text=True, timeout=self.pull_timeout,
                                      stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired:
                raise BackendUnavailable(
                    f"Pulling {self.image} took longer than {self.pull_timeout:.0f} s.",
                    hint=f"Pull it beforehand: {self.kind} pull --platform {self.platform} "
                         f"{self.image}") from None
            if proc.returncode != 0:
                raise BackendUnavailable(
                    f"The image {self.image} is not present and pulling it failed: "
                    f"{tail(proc.stderr or proc.stdout, 400)}",
                    hint="Check the network/registry, or pass a local image (a stand-in: "
                         "python -m lambda_compat.cli.standin image).")
            labels = self._inspect() or {}
        self._labels = labels

    @property
    def standin(self) -> Optional[str]:
        if self._labels and self._labels.get("io.lambda-compat.standin"):
            return self._labels.get("io.lambda-compat.standin.describe") or "stand-in image"
        return None

    def describe(self) -> str:
        text = f"{Path(self.engine).name} {self.image}"
        if self.standin:
            text += f" [stand-in: {self.standin}]"
        return text

    def _run_argv(self, name: str, task: Path, opt: Path, env: Mapping[str, str],
                  python: str, args: Sequence[str]) -> List[str]:
        argv = self._engine("run", "--rm", "--name", name, "--pull=never",
                            "--platform", self.platform, "--network", "none", "--read-only",
                            "-v", f"{task}:/var/task:ro", "-v", f"{opt}:/opt:ro",
                            "-w", "/var/task", "--entrypoint", python)
        if self.kind == "docker":
            argv += ["--tmpfs", "/tmp"]
        argv += ulimit_args(nofile=LAMBDA_NOFILE)  # Lambda's nofile
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        return argv + [self.image] + list(args)

    @contextlib.contextmanager
    def _container(self) -> Iterator[Dict[str, Any]]:
        """A container name; whatever happens, no container of that name is left behind.

        ``run --rm`` removes the container when the run ends normally (the caller then sets
        ``finished``); after a timeout, an error or an interrupt it is removed here.
        """
        state: Dict[str, Any] = {"name": f"lambda-compat-{uuid.uuid4().hex[:12]}",
                                 "finished": False}
        try:
            yield state
        finally:
            if not state["finished"]:
                name = state["name"]
                subprocess.run(self._engine("rm", "-f", "--time", "0", "--ignore", name)
                               if self.kind == "podman" else self._engine("rm", "-f", name),
                               capture_output=True, timeout=120, stdin=subprocess.DEVNULL)

    def _execute(self, task, opt, modules, handler, env, timeout):
        for path in (task, opt):
            if ":" in str(path):
                raise errors.BadInput(f"{path}: a path with ':' cannot be mounted into a "
                                      "container (-v SRC:DEST:ro).",
                                      hint="Move or copy it to a path without ':'.")
        facts = target_facts(self.target)
        spec = probe_spec(self.target, facts.sys_path, modules, handler, timeout,
                     remap="if-missing", keep_site=True, after=self._after)
        version = "%d.%d" % tuple(self.target.python_version)
        candidates = [self._python] if self._python else [
            f"/var/lang/bin/python{version}", f"/usr/bin/python{version}",
            f"/usr/local/bin/python{version}"]
        overall = base.overall_timeout(timeout, len(modules))
        result: Tuple[Optional[int], str, str] = (1, "", "")
        self.last_containers = []
        for python in candidates:
            with self._container() as container:
                self.last_containers.append(container["name"])
                argv = self._run_argv(container["name"], task, opt, env, python,
                                      ["-I", "-B", "-c", probe_source(), spec])
                result = run_command(argv, env=os.environ, cwd=None, timeout=overall)
                container["finished"] = result[0] is not None
            rc, out, err = result
            if (rc == 127 and PROBE_MARK not in out and len(candidates) > 1
                    and re.search(r"not found|no such file", err, re.I)):
                continue  # no such interpreter in this image: try the next place
            self._python = python
            break
        return result
