"""``--check-handler``: the handler imported in a backend for the target."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Optional

from .. import errors
from ..ui import UI
from ..verify.wheels import Finding
from .model import HandlerCheck, State


def validate_handler(handler: str) -> None:
    """BadInput unless ``handler`` has the form module.function."""
    if not re.match(r"^[A-Za-z_]\w*(?:[./][A-Za-z_]\w*)*\.[A-Za-z_]\w*$", handler):
        raise errors.BadInput(
            f"--check-handler {handler!r} is not of the form module.function.",
            hint="Use the handler setting of the function, e.g. app.handler or "
                 "chalicelib/api.handler.")


def check_handler(state: State, task: Path, layer_root: Optional[Path], ui: UI) -> None:
    """Import the handler in a backend for the target; a failure goes into ``state``."""
    handler = state.options.check_handler
    if handler is None:
        return
    o = state.options
    try:
        from ..prove.backends import selection as backends
    except ModuleNotFoundError as exc:  # pragma: no cover - installation without backends
        raise errors.EnvironmentProblem(
            "--check-handler needs the dynamic backends, which this installation lacks.",
            hint="Reinstall lambda-compat.") from exc
    backend = backends.select_backend(state.target, o.backend, image=o.image, rootfs=o.rootfs,
                                      python=o.python)
    if backend is None:
        raise errors.BackendUnavailable(
            f"--check-handler: nothing here can import code for {state.target.name} (no "
            f"container image, unpacked root or local CPython "
            f"{state.target.python_version[0]}.{state.target.python_version[1]} for "
            f"{state.target.machine}).",
            hint="Pass --python PATH (a local interpreter of that version), --rootfs DIR or "
                 "--image IMAGE, or leave --check-handler out.")
    ui.event("package-handler-start", handler=handler, backend=backend.describe())
    result = backend.import_modules(task, [layer_root] if layer_root else [], [],
                                    handler=handler, timeout=o.handler_timeout)
    if result.error:
        raise errors.BackendUnavailable(
            f"--check-handler: the {backend.proof} backend ({backend.describe()}) could not "
            f"run: {result.error}", hint="Try another --backend, or leave --check-handler out.")
    h = result.handler
    check = HandlerCheck(handler=handler, ok=bool(h and h.ok), backend=result.backend,
                         proof=result.proof, error=h.error if h else "no result",
                         reason=h.reason if h else None, detail=h.detail if h else None)
    if check.ok:
        check = replace(check, error=None)
    state.handler = check
    ui.event("package-handler-done", ok=check.ok, error=check.error)
    if not check.ok:
        state.failure = "handler-import-failed"
        state.findings.append(Finding(
            "handler-import-failed", "(handler)", handler.rsplit(".", 1)[0].replace(".", "/")
            + ".py",
            f"the handler {handler} does not import on {state.target.name} "
            f"({result.proof} proof): {check.error}",
            "The traceback shows where the import failed. Code that must not run while the "
            "handler is checked can test os.environ.get('LAMBDA_COMPAT_CLI_MODE') == '1'."))
