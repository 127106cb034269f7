"""The matrix: every case (fixtures/cases/*.yaml, registry entries) on every target it names.

Each cell builds the case with lambda-compat for the target, runs the static check, imports
the bundle with the strongest backend available and asserts that (a) the verdict equals the
case's expectation (the whole set of reason codes) and (b) the verdict agrees with the import
wherever an import ran.

Only a cell whose prediction an import confirmed passes (``proven``). A refuted cell fails.
An unproven cell (no import possible here, nothing built, or the case's ``unproven_here``
rule applied) and a not-refutable one (the import cannot contradict the predicted reason)
are reported as skipped with the reason, counted in the grid, and fail under
``--require-proof``.
"""

from __future__ import annotations

import pytest

from compat_tests.runner import Cell, failure_message, run_cell


def test_cell(compat_cell, compat_cache_dir, compat_host, backend_choice, record_cell,
              tmp_path):
    case, target = compat_cell
    rule = case.expectation(target)
    here = case.here(target, compat_host)
    missing = case.missing_paths()
    if missing:
        record_cell(Cell(case=case.name, target=target.name, runtime=target.runtime,
                         arch=target.arch, expected=rule.describe(),
                         expected_verdict=rule.verdict, evidence="unproven",
                         evidence_note=f"not run: needs {', '.join(missing)}",
                         backend_note=f"needs {', '.join(missing)}"))
        pytest.skip(f"{case.name}: needs {', '.join(missing)}, absent on this machine")
    cell = run_cell(case, target, rule, work=tmp_path, cache_dir=compat_cache_dir,
                    lock_dir=compat_cache_dir / "locks", choice=backend_choice, here=here)
    record_cell(cell)
    if cell.problems:
        pytest.fail(failure_message(case, cell), pytrace=False)
    if cell.evidence != "proven":
        pytest.skip(f"{cell.evidence}: {cell.evidence_note}")
