"""What a registry pull request changed, for ``.github/workflows/registry.yml``.

``python -m compat_tests.registry_changes selection --base SHA``
    prints ``selection=<pytest -k expression>`` (for ``$GITHUB_OUTPUT``): the compat tests of
    the entries the pull request adds or changes (``[pyyaml- or [wrapt-``), every entry's
    (``test_registry_entry``) when the schema, the loader, the builder or the test itself
    changed, nothing (empty) when no entry needs proving (e.g. only an entry removed).
``python -m compat_tests.registry_changes check-version --base SHA``
    exits 1, saying ``registry/VERSION:1: ...``, when registry data changed since ``SHA`` but
    ``registry/VERSION`` was not bumped above the base's.
``python -m compat_tests.registry_changes paths``
    prints the ``on.pull_request.paths`` filter of ``.github/workflows/registry.yml``: every
    path below (``WATCHED``), so that no change that can change a proof skips the workflow
    (tests/test_registry.py checks the workflow's filter is exactly this list).

Changed files are ``git diff --name-only BASE...HEAD`` (what the pull request itself changed).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
ENTRY = re.compile(r"^registry/packages/([a-z0-9]+(?:-[a-z0-9]+)*)\.yaml$")
#: Changes that can change the outcome of every entry's compat test.
PROVE_ALL = ("registry/schema/", "registry/runtimes.yaml", "resolver/lambda_compat/registry/packages.py",
             "resolver/lambda_compat/registry/package_entry.py",
             "resolver/lambda_compat/build/builder.py", "resolver/lambda_compat/build/phases.py",
             "resolver/lambda_compat/build/resolution.py",
             "resolver/lambda_compat/resolve/sdist_build.py",
             "resolver/lambda_compat/verify/wheels.py", "resolver/lambda_compat/verify/static_check.py",
             "resolver/lambda_compat/verify/native_check.py",
             "resolver/lambda_compat/verify/capabilities.py", "compat_tests/test_registry_entries.py",
             "compat_tests/test_runtime_capabilities.py")
#: Changes that are registry data: they need a VERSION bump.
DATA = ("registry/packages/", "registry/schema/package.schema.json")
#: The compat test files that prove entries (allowlist kinds; runtime-capability).
PROOF_TESTS = ("compat_tests/test_registry_entries.py", "compat_tests/test_runtime_capabilities.py")
ALL = "test_registry_entry or test_runtime_capability_entry"
#: Everything the registry workflow must run for: the data, what proves it, what validates
#: it, and the workflow's own machinery.
WATCHED = tuple(dict.fromkeys(("registry/",) + PROVE_ALL + DATA + (
    "resolver/lambda_compat/cli/registry.py", "resolver/lambda_compat/registry/claims.py",
    "resolver/lambda_compat/registry/package_checks.py", "resolver/lambda_compat/registry/yamlfile.py",
    "compat_tests/registry_changes.py",
    ".github/workflows/registry.yml")))


def workflow_paths(watched: Sequence[str] = WATCHED) -> List[str]:
    """``on.pull_request.paths`` globs for ``watched`` (a directory prefix becomes ``dir/**``),
    minus the ones another glob already covers."""
    globs = [p + "**" if p.endswith("/") else p for p in watched]
    dirs = [p for p in watched if p.endswith("/")]
    return [g for g in globs
            if not any(g != d + "**" and g.startswith(d) for d in dirs)]


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def changed_files(base: str, root: Path = ROOT) -> List[str]:
    return [line for line in _git(root, "diff", "--name-only", f"{base}...HEAD").splitlines()
            if line]


def selection(changed: Sequence[str], root: Path = ROOT) -> str:
    """The -k expression selecting the compat tests the change needs ('' for none)."""
    if any(path.startswith(PROVE_ALL) for path in changed):
        return ALL
    names = []
    for path in changed:
        m = ENTRY.match(path)
        if m and (root / path).is_file():      # a removed entry has nothing to prove
            names.append(m.group(1))
    # "[name-" matches the start of a test id: test_registry_entry[name-version-...]
    return " or ".join(f"[{name}-" for name in sorted(set(names)))


def _version_key(text: str) -> Optional[Tuple[int, ...]]:
    m = re.fullmatch(r"(\d{4})\.(\d{2})\.(\d{2})\.(\d+)", text.strip())
    return tuple(int(g) for g in m.groups()) if m else None


def version_problems(base: str, changed: Sequence[str], root: Path = ROOT) -> List[str]:
    data = [p for p in changed if p.startswith(DATA)]
    if not data:
        return []
    now = (root / "registry" / "VERSION").read_text(encoding="utf-8").strip()
    proc = subprocess.run(["git", "show", f"{base}:registry/VERSION"], cwd=root,
                          capture_output=True, text=True)
    before = proc.stdout.strip() if proc.returncode == 0 else None
    fix = ("bump it to today's date and the next counter (YYYY.MM.DD.N) and add a "
           "'## <version>' section to registry/CHANGELOG.md saying what changed")
    if before is not None and now == before:
        return [f"registry/VERSION:1: registry data changed ({', '.join(data[:5])}) but "
                f"VERSION is still {now}; {fix}"]
    if before is not None and _version_key(now) and _version_key(before) \
            and _version_key(now) <= _version_key(before):
        return [f"registry/VERSION:1: {now} is not above the base's {before}; {fix}"]
    return []


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compat_tests.registry_changes")
    p.add_argument("action", choices=["selection", "check-version", "paths"])
    p.add_argument("--base", help="the pull request's base commit")
    args = p.parse_args(argv)
    if args.action == "paths":
        for path in workflow_paths():
            print(f'      - "{path}"')
        return 0
    if not args.base:
        p.error("--base is required for selection and check-version")
    changed = changed_files(args.base)
    if args.action == "selection":
        print(f"selection={selection(changed)}")
        return 0
    problems = version_problems(args.base, changed)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
