"""What a dynamic proof reports: one outcome per import, the run's result, the backend protocol."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Protocol, Sequence, Tuple


#: What a dynamic result proved, weakest first ("static" means no dynamic proof at all).
PROOFS = ("static", "host", "rootfs", "image")


@dataclass(frozen=True)
class ImportOutcome:
    distribution: str      # e.g. "psycopg2"
    module: str            # e.g. "psycopg2"
    ok: bool
    #: ``Type: message`` (the message's last line), e.g.
    #: "ImportError: libpq.so.5: cannot open shared object file: No such file or directory".
    error: Optional[str]
    #: import-error | crash | timeout | exit | handler-not-found | handler-not-callable | None
    reason: Optional[str] = None
    #: the traceback (or the crash output) when it failed
    detail: Optional[str] = None
    #: what the import printed (tail)
    output: Optional[str] = None
    seconds: Optional[float] = None
    #: modules imported first because this one failed alone (``after``), and that failure
    after: Tuple[str, ...] = ()
    alone_error: Optional[str] = None


@dataclass(frozen=True)
class DynamicResult:
    target: str            # Target.name, e.g. "python3.12/arm64"
    proof: str             # "image" | "rootfs" | "host"
    backend: str           # human description of what ran the imports
    outcomes: Tuple[ImportOutcome, ...]
    python: Optional[str]  # the interpreter's full version, as it reported itself
    error: Optional[str]   # backend-level failure (could not start), None if it ran
    #: the handler check (``handler=``): distribution "<handler>", module = the handler string
    handler: Optional[ImportOutcome] = None
    #: sys.path the imports ran with, as the interpreter saw it
    sys_path: Tuple[str, ...] = ()
    machine: Optional[str] = None   # platform.machine() inside
    libc: Optional[str] = None      # e.g. "glibc 2.36"
    seconds: Optional[float] = None
    #: set when the root or image is a lambda-compat stand-in, not the runtime's image
    standin: Optional[str] = None
    #: set when this is a reused proof (:mod:`lambda_compat.prove.proof_cache`): when it ran
    #: (ISO 8601, UTC); the same backend, interpreter or root, probe, bundle and layers
    cached_from: Optional[str] = None

    @property
    def ok(self) -> bool:
        """It ran, every module imported and the handler (if any) resolved."""
        return (self.error is None and all(o.ok for o in self.outcomes)
                and (self.handler is None or self.handler.ok))

    @property
    def failures(self) -> Tuple[ImportOutcome, ...]:
        out = tuple(o for o in self.outcomes if not o.ok)
        if self.handler is not None and not self.handler.ok:
            out += (self.handler,)
        return out

    def outcome(self, module: str) -> ImportOutcome:
        for o in self.outcomes:
            if o.module == module:
                return o
        raise KeyError(module)

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


class Backend(Protocol):
    proof: str

    def describe(self) -> str: ...

    def prepare(self) -> None: ...

    def import_modules(self, task_dir: Path, layer_dirs: Sequence[Path],
                       modules: Sequence[Tuple[str, str]], *, handler: Optional[str] = None,
                       env: Optional[Mapping[str, str]] = None,
                       timeout: float = 120,
                       after: Optional[Mapping[str, Sequence[str]]] = None) -> DynamicResult: ...
