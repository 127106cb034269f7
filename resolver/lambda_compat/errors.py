"""Every error lambda-compat raises, each with the exit code the CLI returns for it.

Messages are one paragraph: what went wrong, where (file:line when there is one) and what to
do next. The CLI prints ``str(error)``; it never shows a traceback for these.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Optional


class LambdaCompatError(Exception):
    """Base class. ``exit_code`` is what ``lambda-compat`` exits with."""

    exit_code = 3

    def __init__(self, message: str, *, hint: Optional[str] = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n{hint}")


class DependenciesMissing(LambdaCompatError):
    """At least one distribution has no file that works on the target."""

    exit_code = 1


class BadInput(LambdaCompatError):
    """The user's input is wrong: a file, a requirement line, a runtime name, a hash."""

    exit_code = 2


class RequirementsFileError(BadInput):
    """A requirements file cannot be read or holds an invalid line."""

    def __init__(self, message: str, *, path: str, line: Optional[int] = None,
                 text: Optional[str] = None, hint: Optional[str] = None) -> None:
        self.path = path
        self.line = line
        self.text = text
        where = f"{path}:{line}" if line is not None else path
        full = f"{where}: {message}"
        if text is not None:
            full += f"\n    {text}"
        super().__init__(full, hint=hint)


class UnknownTarget(BadInput):
    """Unknown runtime or architecture; lists the valid ones and suggests the closest."""

    def __init__(self, kind: str, value: str, valid: Iterable[str]) -> None:
        valid = sorted(valid)
        close = difflib.get_close_matches(value, valid, n=1, cutoff=0.5)
        hint = f"Did you mean {close[0]!r}? " if close else ""
        hint += f"Valid {kind}s: {', '.join(valid)}."
        super().__init__(f"Unknown {kind} {value!r}.", hint=hint)
        self.value = value
        self.suggestion = close[0] if close else None


class HashMismatch(BadInput):
    """``--hash``/``--require-hashes`` do not cover the file chosen for the target.

    ``mismatches`` holds one :class:`HashProblem` per file pip refused; ``check`` turns them
    into that target's ``hash-mismatch`` findings (a verdict, not a crash), ``build`` exits
    with :attr:`exit_code` (the requirements file is wrong for this target).
    """

    reason_code = "hash-mismatch"

    def __init__(self, message: str, *, hint: Optional[str] = None,
                 mismatches: Iterable["HashProblem"] = ()) -> None:
        super().__init__(message, hint=hint)
        self.mismatches = tuple(mismatches)


class HashProblem:
    """One file whose hash the requirements do not list: which, what was expected, what it is."""

    def __init__(self, name: Optional[str], filename: Optional[str],
                 expected: Iterable[str], actual: Optional[str],
                 comes_from: Optional[str] = None) -> None:
        self.name = name
        self.filename = filename
        self.expected = tuple(expected)      # "sha256:<hex>" each
        self.actual = actual                 # "sha256:<hex>" or None
        self.comes_from = comes_from

    def describe(self) -> str:
        expected = ", ".join(self.expected) if self.expected else "no hash at all"
        return (f"{self.filename or self.name}: expected {expected}; actual "
                f"{self.actual or 'unknown'}"
                + (f" (hashes from {self.comes_from})" if self.comes_from else ""))


class UnknownPackage(BadInput):
    """No index knows the project at all."""


class EnvironmentProblem(LambdaCompatError):
    """The machine cannot do what was asked: index unreachable, no interpreter, no disk."""

    exit_code = 3


class IndexUnreachable(EnvironmentProblem):
    pass


class InterpreterNotFound(EnvironmentProblem):
    pass


class BuildSandboxUnavailable(EnvironmentProblem):
    """Third-party build code would have to run, and no build sandbox works here."""


class BackendUnavailable(EnvironmentProblem):
    """A requested dynamic-proof backend (container, rootfs, host) cannot run here."""


class BuildEnvironmentUnavailable(EnvironmentProblem):
    """A requested build environment (e.g. a container engine or build image) cannot run here."""


class RegistryError(BadInput):
    """Registry data (runtimes.yaml, packages/*.yaml) violates its schema or invariants."""

    def __init__(self, message: str, *, path: str, line: Optional[int] = None,
                 hint: Optional[str] = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {message}", hint=hint)


class RegistryProblems(BadInput):
    """Every problem found in the package registry at once, each as ``file:line: message``.

    ``problems`` holds objects with ``path``, ``line`` and ``message``
    (:class:`lambda_compat.registry.package_entry.RegistryProblem`).
    """

    def __init__(self, problems, *, hint: Optional[str] = None) -> None:
        self.problems = tuple(problems)
        n = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the package registry has {n} problem{'s' if n != 1 else ''}:\n{lines}",
                         hint=hint or "Fix each one; `lambda-compat registry validate` re-checks "
                                      "them all (see CONTRIBUTING.md, 'Adding a registry entry').")


# -- Errors about one file, which the caller turns into a finding -----------------------------
#
# These are not LambdaCompatError and carry no exit code: the verify layer and its callers catch
# them and report the file (``not-elf``, ``not-loadable``, ``bad-wheel``), so they never reach
# the CLI on their own. ``except LambdaCompatError`` does not catch them.


class ELFError(Exception):
    """The file is not an ELF file, is truncated, or is corrupt. The message names the path."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class WheelError(Exception):
    """A wheel cannot be read: bad file name, not a zip archive, no (or several) .dist-info."""
