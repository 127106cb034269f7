"""``lambda-compat registry validate [PATH] | list | show NAME``: the package registry.

``validate`` is what a registry pull request's CI runs: it checks every entry and reports
*every* problem as ``file:line: message`` (exit 2 when there is one). ``list`` and ``show``
read the registry the builder uses (or ``--registry DIR``); ``--format json`` prints a
document described by ``schemas/registry-entries.schema.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from .. import errors
from .options import subcommand

if TYPE_CHECKING:
    from ..registry.package_entry import PackageEntry, PackageRegistry, RegistryProblem

#: Version of the ``--format json`` documents of list/show/validate.
OUTPUT_VERSION = 1


def add_parser(subparsers: Any) -> None:
    p = subcommand(
        subparsers, "registry", help="the package registry: validate, list, show",
        exit_codes={0: "done (validate: the registry is valid)",
                    2: "bad input: an invalid registry (every problem as file:line), an "
                       "unknown entry or a missing action"},
        description="The registry of packages whose wheels carry a platform tag they do not "
                    "need (pure-Python fallbacks), each entry proven by a compat test.")
    sub = p.add_subparsers(dest="registry_command", metavar="ACTION")
    v = sub.add_parser("validate", help="check a registry; every problem with file:line",
                       description="Check a registry directory (VERSION, CHANGELOG.md, "
                                   "packages/*.yaml), its packages/ directory, or one entry "
                                   "file. Exit 0 if valid, 2 with every problem listed.")
    v.add_argument("path", nargs="?", help="registry directory, its packages/ directory or "
                                           "one entry file (default: the shipped registry)")
    v.add_argument("--format", choices=["text", "json", "github"], default="text",
                   help="github: workflow-command annotations (::error file=...,line=...)")
    v.add_argument("--stamp", action="store_true",
                   help="after validating the shipped registry (and runtimes.yaml) against "
                        "their schemas, record their digests in schema/validated.json, so "
                        "that runs on a fresh cache need not validate the same bytes again")
    v.set_defaults(func=_validate)
    ls = sub.add_parser("list", help="the entries: name, versions, kind, targets, evidence")
    ls.add_argument("--registry", metavar="DIR", help="registry directory (default: shipped)")
    ls.add_argument("--format", choices=["text", "json"], default="text")
    ls.set_defaults(func=_list)
    sh = sub.add_parser("show", help="one entry in full")
    sh.add_argument("name", help="project name (any spelling: PyYAML, pyyaml)")
    sh.add_argument("--registry", metavar="DIR", help="registry directory (default: shipped)")
    sh.add_argument("--format", choices=["text", "json"], default="text")
    sh.set_defaults(func=_show)

    def usage(args: argparse.Namespace) -> int:
        p.print_help(sys.stderr)
        return errors.BadInput.exit_code

    p.set_defaults(func=usage)


# --------------------------------------------------------------------------- helpers

def _rel(path: str) -> str:
    """``path`` relative to the working directory when it lies below it (for CI output)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def _problem(p: RegistryProblem) -> RegistryProblem:
    from ..registry.package_entry import RegistryProblem
    return RegistryProblem(_rel(p.path), p.line, p.message)


def _load(directory: Optional[str]) -> PackageRegistry:
    from ..registry.packages import load_packages
    if directory is None:
        return load_packages()
    root = Path(directory)
    if not root.exists():
        raise errors.BadInput(f"{directory}: no such registry directory.",
                              hint="Pass the directory that holds VERSION and packages/.")
    try:
        return load_packages(root)
    except errors.RegistryProblems as exc:
        raise errors.RegistryProblems([_problem(p) for p in exc.problems]) from None


def entry_json(entry: PackageEntry) -> Dict[str, Any]:
    data = entry.to_data()
    data["path"] = _rel(entry.path)
    data["cases"] = [{"version": v, "runtime": r, "arch": a, "test": e.test}
                     for e in entry.evidence for v, r, a in e.cases()]
    return data


def _document(registry: PackageRegistry, entries: Sequence[PackageEntry]) -> Dict[str, Any]:
    return {"version": OUTPUT_VERSION, "registry_version": registry.version,
            "registry": _rel(registry.root), "entries": [entry_json(e) for e in entries]}


# --------------------------------------------------------------------------- validate

def _validate(args: argparse.Namespace) -> int:
    from ..registry.packages import (PACKAGES_DIR, check_registry, default_validator,
                                     known_targets, parse_entry_file)
    from ..registry.runtimes import registry_dir
    target = Path(args.path) if args.path else registry_dir()
    if getattr(args, "stamp", False) and args.format != "text":
        raise errors.BadInput("--stamp writes a file and reports in text only.",
                              hint="Drop --format, or run --stamp separately.")
    if not target.exists():
        raise errors.BadInput(f"{args.path}: no such file or directory.",
                              hint="Pass a registry directory, its packages/ directory or an "
                                   "entry file.")
    what: str
    count = 0
    version: Optional[str] = None
    if target.is_file():
        entry, found = parse_entry_file(target, validator=default_validator(),
                                        known=known_targets())
        problems = tuple(found)
        what = f"entry {_rel(str(target))}"
        count = 1 if entry is not None and not problems else 0
    else:
        root = target
        if not (root / PACKAGES_DIR).is_dir() and target.name == PACKAGES_DIR:
            root = target.parent
        registry, problems = check_registry(root, changelog=True)
        what = f"registry {_rel(str(root))}"
        if registry is not None:
            count, version = len(registry.entries), registry.version
    problems = tuple(_problem(p) for p in problems)
    if args.format == "json":
        print(json.dumps({"version": OUTPUT_VERSION, "ok": not problems, "checked": what,
                          "registry_version": version, "entries": count,
                          "problems": [p.to_json() for p in problems]}, indent=2))
        return errors.BadInput.exit_code if problems else 0
    if args.format == "github":
        for p in problems:
            loc = f"file={p.path}" + (f",line={p.line}" if p.line else "")
            print(f"::error {loc}::{_escape(p.message)}")
    if problems:
        raise errors.RegistryProblems(problems)
    suffix = f", registry version {version}" if version else ""
    print(f"ok: {what}: {count} entr{'y' if count == 1 else 'ies'} valid{suffix}")
    if getattr(args, "stamp", False):
        print(f"stamped: {_rel(str(_stamp(target)))}")
    return 0


def _stamp(target: Path) -> Path:
    """Validate the shipped runtimes data too, then write the shipped stamp."""
    from ..registry import packages, runtimes, validation_memo
    root = runtimes.registry_dir()
    if target.resolve() != root.resolve():
        raise errors.BadInput(f"--stamp records the shipped registry's digests; {target} is "
                              f"not it ({root}).", hint="Run it without a path.")
    runtimes.validate_shipped()  # raises with file:line when runtimes.yaml is not valid
    digests = {"runtimes": validation_memo.content_digest(root, runtimes.shipped_files()),
               "packages": validation_memo.content_digest(root, packages.shipped_files(root))}
    if None in digests.values():
        raise errors.EnvironmentProblem("the shipped registry files could not be read.",
                                        hint="Check the checkout.")
    return validation_memo.write_shipped_stamp(root, {k: v for k, v in digests.items() if v})


def _escape(message: str) -> str:
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


# --------------------------------------------------------------------------- list / show

def _list(args: argparse.Namespace) -> int:
    from .style import table
    registry = _load(args.registry)
    if args.format == "json":
        print(json.dumps(_document(registry, registry.entries), indent=2))
        return 0
    print(f"registry {registry.version} ({_rel(registry.root)}): "
          f"{len(registry.entries)} entr{'y' if len(registry.entries) == 1 else 'ies'}")
    if not registry.entries:
        return 0
    rows: List[List[str]] = [["NAME", "VERSIONS", "KIND", "TARGETS", "PROVEN"]]
    for e in registry.entries:
        cases = [c for ev in e.evidence for c in ev.cases()]
        versions = sorted({v for v, _, _ in cases}, key=_vkey)
        rows.append([e.name, str(e.versions), e.kind, e.targets_text(),
                     f"{len(cases)} cases ({', '.join(versions)})"])
    print("\n" + table(rows))
    return 0


def _vkey(v: str):
    from packaging.version import Version
    return Version(v)


def _show(args: argparse.Namespace) -> int:
    registry = _load(args.registry)
    entry = registry.get(args.name)
    if entry is None:
        close = registry.closest(args.name)
        hint = f"Did you mean {close!r}? " if close else ""
        hint += (f"Entries: {', '.join(registry.names)}." if registry.names
                 else "The registry has no entries.")
        raise errors.BadInput(f"No registry entry for {args.name!r} "
                              f"(registry {registry.version}).", hint=hint)
    if args.format == "json":
        print(json.dumps(_document(registry, [entry]), indent=2))
        return 0
    from ..registry.package_entry import KINDS
    out = [f"{entry.name} {entry.versions}   ({_rel(entry.path)}, registry {registry.version})",
           f"  kind:        {entry.kind}",
           f"               {KINDS[entry.kind]}",
           f"  targets:     {entry.targets_text()}",
           f"  explanation: {entry.explanation}",
           f"  imports:     {', '.join(entry.imports)}"]
    if entry.smoke:
        out.append(f"  smoke:       {entry.smoke}")
    for name, spec in entry.needs:
        out.append(f"  needs:       {name} {spec}")
    if entry.fix_distribution:
        out.append(f"  fix:         {entry.fix_distribution}: {entry.fix_text}")
    out.append("  evidence:")
    for ev in entry.evidence:
        out.append(f"    {ev.date}  {', '.join(ev.versions)} on {', '.join(ev.targets)}")
        out.append(f"               by {ev.test}")
    if entry.references:
        out.append("  references:")
        out.extend(f"    {r}" for r in entry.references)
    print("\n".join(out))
    return 0
