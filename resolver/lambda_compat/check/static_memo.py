"""A target's static proof of a requirements file's bundle, remembered by what decides it.

``check FILE`` builds a bundle per target, reads it back and judges it. The bundle is a
function of the wheels installed (their names and sha256, in order) and of lambda-compat's
installer; the judgement a function of the bundle, the target's facts, the package registry
and lambda-compat's checks. When all of those are the same as in an earlier check, so is the
static report, and so is the bundle's content fingerprint (what the import-proof cache is
keyed by): both are kept under ``<cache>/static-proofs/`` and the next check of the same
thing neither installs the bundle nor reads it (unless an import proof must run, which
installs it then).

The key holds: the format, lambda-compat's code fingerprint (every module: a change anywhere
judges afresh), the wheels, the target's facts (every field, canonical JSON), the package
registry's files (bytes). Checks with layers are not remembered (their content would be
part of the key). A report is never remembered when it names the temporary bundle directory.
``--refresh`` checks again. The reused report says so (a note naming when it was made).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from .._version import code_fingerprint
from ..targets.target import Target
from ..verify.static_check import DistSummary, SizeInfo, StaticReport
from ..verify.wheels import Finding

FORMAT = 1


def _canonical(value: Any) -> Any:
    """JSON-able, the same in every process (sets sorted, dates as ISO text)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return sorted((_canonical(v) for v in value), key=lambda v: json.dumps(v,
                                                                               sort_keys=True))
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (datetime.date, datetime.datetime, Path)):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def _registry_files(registry_dir: Optional[Path]) -> Sequence[Path]:
    from ..registry.packages import shipped_files
    from ..registry.runtimes import registry_dir as shipped
    return shipped_files(Path(registry_dir) if registry_dir is not None else shipped())


def memo_key(wheels: Sequence[Tuple[str, str]], target: Target,
             registry_dir: Optional[Path]) -> Optional[str]:
    """The key of ``target``'s static proof of the bundle of ``wheels`` ((file name, sha256)
    in install order); None when an input cannot be read (then nothing is remembered)."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT, "code": code_fingerprint(),
                         "wheels": [list(w) for w in wheels],
                         "target": _canonical(target)}, sort_keys=True).encode())
    try:
        for path in _registry_files(registry_dir):
            h.update(b"\0" + path.name.encode() + b"\0" + path.read_bytes())
    except OSError:
        return None
    return h.hexdigest()


def _report_json(report: StaticReport) -> Dict[str, Any]:
    return {"findings": [f.to_json() for f in report.findings],
            "size": dataclasses.asdict(report.size),
            "distributions": [dataclasses.asdict(d) for d in report.distributions]}


def _report_from_json(data: Dict[str, Any], target: Target) -> StaticReport:
    size = dict(data["size"])
    size["layer_zip_bytes"] = tuple(size["layer_zip_bytes"])
    size["largest"] = tuple(tuple(x) for x in size["largest"])
    dists = []
    for d in data["distributions"]:
        d = dict(d)
        d["modules"], d["dependents"] = tuple(d["modules"]), tuple(d["dependents"])
        dists.append(DistSummary(**d))
    return StaticReport(target=target, findings=tuple(Finding(**f) for f in data["findings"]),
                        size=SizeInfo(**size), distributions=tuple(dists))


@dataclasses.dataclass(frozen=True)
class Remembered:
    report: StaticReport
    fingerprint: Optional[str]    # the bundle's tree fingerprint (prove.proof_cache)
    created: str                  # when the proof was made (UTC, ISO 8601)


class StaticMemo:
    """``<cache>/static-proofs/``: one JSON file per key."""

    def __init__(self, directory: Path, *, reuse: bool = True) -> None:
        self.directory = directory
        self.reuse = reuse

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def load(self, key: Optional[str], target: Target) -> Optional[Remembered]:
        if key is None or not self.reuse:
            return None
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
            if data.get("format") != FORMAT or data.get("key") != key:
                return None
            return Remembered(_report_from_json(data["report"], target),
                              data.get("fingerprint"), data["created"])
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def store(self, key: Optional[str], report: StaticReport, fingerprint: Optional[str],
              bundle_dir: Path) -> None:
        """Keep ``report`` (made from the bundle in ``bundle_dir``) unless it names that
        temporary directory."""
        if key is None:
            return
        body = _report_json(report)
        if str(bundle_dir) in json.dumps(body):
            return
        created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            tmp.write_text(json.dumps({"format": FORMAT, "key": key, "created": created,
                                       "fingerprint": fingerprint, "report": body}),
                           encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # not remembered: the next check judges again
