"""Re-prove registry entries against newly released versions and propose range extensions.

A registry entry claims no more than its evidence: its range ends at the newest version its
compat test proved (``<=X``). When the project releases a newer version, the weekly
``.github/workflows/registry-reprove.yml`` tries to extend the claim by one release:

``python -m compat_tests.reprove plan``
    prints ``matrix=<json>`` and ``count=<n>`` for ``$GITHUB_OUTPUT``: per allowlist entry, the
    next final release on PyPI above its newest evidence version (none when there is none).
``python -m compat_tests.reprove extend NAME VERSION --date YYYY-MM-DD``
    rewrites ``registry/packages/NAME.yaml``: the range ends at ``<=VERSION`` and a new
    evidence record names VERSION on the targets of the entry's newest record. The workflow
    then runs that entry's compat test for VERSION (``-k "[NAME-VERSION-"``); only an entry
    whose test passed is kept (uploaded).
``python -m compat_tests.reprove finish --date YYYY-MM-DD NAME...``
    bumps ``registry/VERSION`` and adds the ``registry/CHANGELOG.md`` section naming the
    extended entries (``registry validate`` then passes), for the pull request.

One release at a time keeps the range contiguous: a release whose test fails (msgpack 1.0.7
needs a compiler) stops the extension there, and the failure is in the run's log.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = ROOT / "registry"
TEST_ID = "compat_tests/test_registry_entries.py::test_registry_entry"


def _load():
    from lambda_compat.registry.package_entry import ALLOWLIST_KINDS
    from lambda_compat.registry.packages import load_packages
    return [e for e in load_packages(REGISTRY).entries if e.kind in ALLOWLIST_KINDS]


def newest_evidence(entry) -> Version:
    return max(Version(v) for ev in entry.evidence for v in ev.versions)


def next_release(entry, available: Iterable[str]) -> Optional[str]:
    """The smallest final release above the entry's newest evidence version, if any."""
    newest = newest_evidence(entry)
    candidates = []
    for text in available:
        try:
            v = Version(text)
        except InvalidVersion:
            continue
        if v > newest and not v.is_prerelease and not v.is_devrelease:
            candidates.append((v, text))
    return min(candidates)[1] if candidates else None


def available_versions(name: str) -> List[str]:
    """Versions PyPI offers for ``name`` (pip's index command)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "index", "versions", name,
                           "--index-url", "https://pypi.org/simple",
                           "--disable-pip-version-check"],
                          capture_output=True, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("Available versions:"):
            return [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    raise SystemExit(f"pip index versions {name} failed: {proc.stderr.strip()[-500:]}")


def plan(available=available_versions) -> List[Dict[str, str]]:
    out = []
    for entry in _load():
        version = next_release(entry, available(entry.name))
        if version is not None:
            out.append({"entry": entry.name, "version": version,
                        "after": str(newest_evidence(entry))})
    return out


def extend_text(text: str, newest: str, version: str, targets: Sequence[str],
                date: str) -> str:
    """The entry's YAML with its range ending at ``<=version`` and an evidence record for it."""
    m = re.search(r'(?m)^versions: "([^"]*)"$', text)
    if m is None or f"<={newest}" not in m.group(1):
        raise SystemExit(f"the entry's versions line does not end at <={newest}")
    text = text.replace(m.group(0), f'versions: "{m.group(1).replace(f"<={newest}", f"<={version}")}"')
    record = (f'  - versions: ["{version}"]\n'
              f"    targets: [{', '.join(targets)}]\n"
              f"    test: {TEST_ID}\n"
              f'    date: "{date}"\n')
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("evidence:"))
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].strip() and not lines[i].startswith(" ")), len(lines))
    return "".join(lines[:end] + [record] + lines[end:])


def extend(name: str, version: str, date: str, root: Path = REGISTRY) -> Path:
    from lambda_compat.registry.packages import load_packages
    entry = load_packages(root).get(name)
    if entry is None:
        raise SystemExit(f"no registry entry {name!r}")
    newest = str(newest_evidence(entry))
    newest_text = next(v for ev in entry.evidence for v in ev.versions if Version(v) == Version(newest))
    record = next(ev for ev in reversed(entry.evidence) if newest_text in ev.versions)
    path = Path(entry.path)
    path.write_text(extend_text(path.read_text(encoding="utf-8"), newest_text, version,
                                record.targets, date), encoding="utf-8")
    return path


def finish(names: Sequence[str], date: str, root: Path = REGISTRY) -> str:
    """Bump VERSION (the date, next counter) and add the changelog section; the new VERSION."""
    from lambda_compat.registry.packages import load_packages
    registry = load_packages(root)
    old = (root / "VERSION").read_text(encoding="utf-8").strip()
    day = date.replace("-", ".")
    counter = int(old.rsplit(".", 1)[1]) + 1 if old.startswith(day + ".") else 0
    new = f"{day}.{counter}"
    (root / "VERSION").write_text(new + "\n", encoding="utf-8")
    lines = [f"## {new}", "", "Ranges extended by the weekly re-prove job "
             "(`.github/workflows/registry-reprove.yml`), each proven by its compat test on "
             "the date in its evidence:", ""]
    for name in sorted(names):
        entry = registry.get(name)
        if entry is None:
            raise SystemExit(f"no registry entry {name!r}")
        ev = entry.evidence[-1]
        lines.append(f"- `{entry.name} {entry.versions}` ({entry.kind}): {', '.join(ev.versions)} "
                     f"on {', '.join(ev.targets)}.")
    changelog = root / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    first = re.search(r"(?m)^## ", text)
    at = first.start() if first else len(text)
    changelog.write_text(text[:at] + "\n".join(lines) + "\n\n" + text[at:], encoding="utf-8")
    return new


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compat_tests.reprove")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("plan")
    e = sub.add_parser("extend")
    e.add_argument("name")
    e.add_argument("version")
    e.add_argument("--date", required=True)
    f = sub.add_parser("finish")
    f.add_argument("names", nargs="+")
    f.add_argument("--date", required=True)
    args = p.parse_args(argv)
    if args.cmd == "plan":
        jobs = plan()
        print("matrix=" + json.dumps({"include": jobs}, separators=(",", ":")))
        print(f"count={len(jobs)}")
    elif args.cmd == "extend":
        datetime.date.fromisoformat(args.date)
        print(extend(args.name, args.version, args.date))
    else:
        datetime.date.fromisoformat(args.date)
        print(finish(args.names, args.date))
    return 0


if __name__ == "__main__":
    sys.exit(main())
