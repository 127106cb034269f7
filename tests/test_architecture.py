"""The layout's rules (docs/architecture.md), checked so that a wrong-way import, an import
cycle, an oversized module or a print in the library fails CI."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "resolver" / "lambda_compat"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 100
#: Modules run as their own process inside other interpreters or pip: their output is the
#: channel to the parent process, so they may write to stdout/stderr.
PAYLOADS = ("prove/_payload/", "resolve/pip_sandbox.py")


def _modules():
    return sorted(SRC.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def test_the_package_has_its_parts():
    subpackages = {p.parent.relative_to(SRC).as_posix() for p in SRC.glob("*/__init__.py")}
    assert subpackages >= {"targets", "registry", "host", "resolve", "verify", "build",
                           "prove", "check", "package", "cli"}


def test_no_module_over_the_limit():
    too_long = {_rel(p): n for p in _modules()
                if (n := p.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES}
    assert too_long == {}


def test_no_function_over_the_limit():
    too_long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long[f"{_rel(path)}:{node.lineno} {node.name}"] = n
    assert too_long == {}


def _cycles(graph) -> list:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(
                        graph.find_modules_directly_imported_by(child)))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        component.append(m)
                        if m == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(m)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.a")
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b"]]


def test_no_import_cycles_deferred_imports_included():
    # grimp reads every import statement, function-local ones too; only imports under
    # `if TYPE_CHECKING:` are left out (they never run).
    graph = grimp.build_graph("lambda_compat", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_no_import_by_name():
    # A module imported through importlib by a computed name hides a dependency from the
    # contracts; the payloads (which import the user's modules) are the exception.
    offenders = [f"{_rel(p)}:{n}" for p in _modules() if not _rel(p).startswith(PAYLOADS)
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if "import_module(f" in line or "__import__(" in line]
    assert offenders == []


def _writes_output(source: str) -> list:
    found = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in {"print", "breakpoint"}:
                found.append(node.lineno)
            elif (isinstance(f, ast.Attribute) and f.attr in {"write", "print_exc"}
                  and isinstance(f.value, ast.Attribute) and f.value.attr in {"stdout", "stderr"}
                  and isinstance(f.value.value, ast.Name) and f.value.value.id == "sys"):
                found.append(node.lineno)
    return found


def test_print_detector_detects():
    assert _writes_output("print('x')\n") == [1]
    assert _writes_output("import sys\nsys.stderr.write('x')\n") == [2]
    assert _writes_output("x = 'print(1)'\n") == []  # in a string: not a call


def test_nothing_prints_outside_the_cli_and_the_payloads():
    offenders = []
    for path in _modules():
        rel = _rel(path)
        if rel.startswith(("cli/",) + PAYLOADS) or rel == "__main__.py":
            continue
        offenders += [f"{rel}:{n}" for n in _writes_output(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_layer_contracts_hold():
    # import-linter reads the contracts from pyproject.toml ([tool.importlinter]).
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.fail("lint-imports is missing: install the test extra (pip install -e '.[test]')")
    proc = subprocess.run([str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_layer_contract_is_not_vacuous():
    # The contract names every subpackage, so a new part cannot escape it unnoticed.
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for part in ("cli", "check", "package", "build", "prove", "resolve", "verify",
                 "registry", "targets", "host"):
        assert f'"lambda_compat.{part}' in text, part
    subpackages = {p.parent.name for p in SRC.glob("*/__init__.py")}
    for part in subpackages:
        assert f"lambda_compat.{part}" in text, f"{part} is in no layer of the contract"


def test_public_api_resolves_every_name():
    import lambda_compat
    for name in lambda_compat.__all__:
        assert getattr(lambda_compat, name) is not None, name
    with pytest.raises(AttributeError):
        lambda_compat.no_such_name  # noqa: B018


def test_import_lambda_compat_stays_cheap():
    # The CLI's start-up: importing the package loads none of its parts (only the version).
    code = ("import sys, lambda_compat; "
            "print(sorted(m for m in sys.modules if m.startswith('lambda_compat.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip() == "['lambda_compat._version']"
