"""Static detection of shared libraries a bundle's Python code loads at import time.

A pure-Python wheel can need a system library as surely as an extension's ``DT_NEEDED``
does: ``ctypes.CDLL("libmagic.so.1")``, ``ctypes.util.find_library("magic")``,
``ffi.dlopen(...)`` (cffi's ABI mode). The bundle's ``.py`` files are parsed with :mod:`ast`
(never imported) and every such load that runs at import time is reported with the library
names it uses and how sure that is:

``literal``
    the name is written in the call (or in a module constant it names):
    ``CDLL("libmagic.so.1")``;
``find_library``
    ``find_library("magic")``: any ``libmagic.so.*`` of the runtime satisfies it (bundled
    libraries are not in the loader cache it reads, but a fallback may load them by path);
``inferred``
    the call's argument is computed, and shared-library names are written in the import-time
    code of the same module: ``cairo = dlopen(ffi, ..., ("libcairo.so.2", ...))`` where the
    helper calls ``ffi.dlopen(filename)``;
``computed``
    the name is computed and no library name is written nearby: it cannot be determined.

*At import time* is approximated: the modules reachable from a distribution's top-level
modules through imports outside functions (relative and absolute, within its own
directory), and in them the module-level code, class bodies and the plain functions whose
name is called from import-time code (matched by name, so a little more than the truth;
methods never count). Code under a ``sys.platform``/``os.name`` test for Windows or macOS is
skipped; a load reached only through a module-level condition (an ``if`` other than a
platform test, an ``except`` handler) is marked ``conditional``.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

#: Calls that load a library by name (attribute or plain name).
_LOADERS = {"CDLL", "PyDLL", "LoadLibrary", "dlopen"}
_FIND = "find_library"
#: A Linux shared library's file name, optionally behind a directory.
_SONAME = re.compile(r"^(?:.*/)?(lib[A-Za-z0-9_+.-]*?\.so(?:\.[0-9]+)*)$")
#: Any name containing ``.so`` (a direct argument need not start with ``lib``).
_ANY_SO = re.compile(r"^(?:.*/)?([A-Za-z0-9_+.-]+\.so(?:\.[0-9]+)*)$")
_NOT_LINUX = ("win", "darwin", "nt", "cygwin", "msys", "mac", "ios", "aix", "freebsd",
              "openbsd", "sunos", "emscripten", "wasi")
_MAX_BYTES = 2_000_000



@dataclass(frozen=True)
class LibraryLoad:
    """One library a distribution's code loads at import (or a load it cannot name)."""

    file: str                  # Lambda path of the .py file
    line: int
    call: str                  # e.g. "ctypes.CDLL", "ffi.dlopen", "find_library"
    name: Optional[str]        # soname (literal/inferred), "libX" stem (find_library), None
    kind: str                  # literal | find_library | inferred | computed
    #: reached only through a condition at import (``if``/``except`` at module level)
    conditional: bool = False

    def describe(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.kind == "literal":
            return f"{where} loads it by name ({self.call}({self.name!r}))"
        if self.kind == "find_library":
            return (f"{where} looks it up with {self.call}({(self.name or '')[3:]!r}) "
                    f"(which finds nothing where no {self.name}.so.* is installed)")
        if self.kind == "inferred":
            return (f"{where} names it in import-time code that loads libraries by a computed "
                    f"name ({self.call}(...)); inferred")
        return f"{where} loads a library through {self.call}(...) with a computed name"


@dataclass
class _Module:
    calls_at_import: Set[str] = field(default_factory=set)
    calls_at_import_cond: Set[str] = field(default_factory=set)
    calls_in: Dict[str, Set[str]] = field(default_factory=dict)
    sites: List[Tuple[Optional[str], LibraryLoad]] = field(default_factory=list)
    literals: List[Tuple[Optional[str], int, str, bool]] = field(default_factory=list)
    constants: Dict[str, str] = field(default_factory=dict)


def _call_name(func: ast.AST) -> Optional[str]:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _dotted(func: ast.AST) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _strings(node: ast.AST) -> Iterable[str]:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.value


def _about_platform_test(test: ast.AST) -> bool:
    """A test on sys.platform / os.name / platform.system() (maybe negated or combined)."""
    return any(_dotted(n.func if isinstance(n, ast.Call) else n).endswith(
        ("sys.platform", "os.name", "platform.system"))
        for n in ast.walk(test) if isinstance(n, (ast.Attribute, ast.Call)))


def _not_linux_test(test: ast.AST) -> bool:
    """``sys.platform == "win32"``, ``os.name == "nt"``, ``sys.platform in (...)``,
    ``sys.platform.startswith("win")``: a branch Lambda never takes."""
    def about_platform(node: ast.AST) -> bool:
        text = _dotted(node.func if isinstance(node, ast.Call) else node)
        return text.endswith(("sys.platform", "os.name", "platform.system")) or text in (
            "platform", "system")

    if isinstance(test, ast.Compare) and len(test.ops) == 1 and about_platform(test.left):
        values = [v for v in _strings(test.comparators[0])]
        if values and isinstance(test.ops[0], (ast.Eq, ast.In)):
            return all(not v.lower().startswith("linux") and v.lower().startswith(_NOT_LINUX)
                       for v in values)
    if (isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute)
            and test.func.attr == "startswith" and about_platform(test.func.value)):
        values = list(_strings(ast.Tuple(elts=list(test.args), ctx=ast.Load())))
        return bool(values) and all(v.lower().startswith(_NOT_LINUX) for v in values)
    return False


class _Visitor(ast.NodeVisitor):
    def __init__(self, path: str, mod: _Module) -> None:
        self.path, self.mod = path, mod
        self.function: Optional[str] = None
        self.in_class = False
        self.cond = 0   # depth of module-level conditions around the current node

    # -- scopes ----------------------------------------------------------------------------
    def _function(self, node) -> None:
        for d in node.decorator_list:
            self.visit(d)
        # a method runs when something calls it on an instance, which cannot be told by
        # name (every class has its "build" or "load"): it never counts as import time
        name = self.function or ("<method>" if self.in_class else node.name)
        outer, outer_class = self.function, self.in_class
        self.function, self.in_class = name, False
        self.mod.calls_in.setdefault(self.function, set())
        for stmt in node.body:
            self.visit(stmt)
        self.function, self.in_class = outer, outer_class

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in list(node.decorator_list) + list(node.bases) + [k.value for k in node.keywords]:
            self.visit(expr)
        outer, self.in_class = self.in_class, True
        for stmt in node.body:
            self.visit(stmt)
        self.in_class = outer

    def visit_Lambda(self, node: ast.Lambda) -> None:
        outer, self.function = self.function, self.function or "<lambda>"
        self.generic_visit(node)
        self.function = outer

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        # a platform test is decided on Lambda (Linux): its branches are not conditions
        platform = _about_platform_test(node.test)
        step = 0 if platform or self.function is not None else 1
        self.cond += step
        if not _not_linux_test(node.test):
            for stmt in node.body:
                self.visit(stmt)
        for stmt in node.orelse:
            self.visit(stmt)
        self.cond -= step

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        step = 1 if self.function is None else 0
        self.cond += step
        self.generic_visit(node)
        self.cond -= step

    # -- facts -----------------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        if (self.function is None and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.mod.constants[t.id] = node.value.value
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _SONAME.match(node.value):
            self.mod.literals.append((self.function, node.lineno, node.value, self.cond > 0))

    def visit_Call(self, node: ast.Call) -> None:
        name = _call_name(node.func)
        if name:
            if self.function is None:
                (self.mod.calls_at_import_cond if self.cond else self.mod.calls_at_import
                 ).add(name)
            else:
                self.mod.calls_in.setdefault(self.function, set()).add(name)
        if name in _LOADERS or name == _FIND:
            site = self._site(node, name)
            if site is not None:
                if self.cond:
                    site = replace(site, conditional=True)
                self.mod.sites.append((self.function, site))
        self.generic_visit(node)

    def _site(self, node: ast.Call, name: str) -> Optional[LibraryLoad]:
        arg = node.args[0] if node.args else next(
            (k.value for k in node.keywords if k.arg in ("name", "libname", "path")), None)
        call = _dotted(node.func) or name
        if arg is None or (isinstance(arg, ast.Constant) and arg.value is None):
            return None  # the process itself (CDLL(None), ffi.dlopen(None))
        if isinstance(arg, ast.Call) and _call_name(arg.func) == _FIND:
            return None  # CDLL(find_library("x")): the inner call is the site
        value = arg.value if isinstance(arg, ast.Constant) else (
            self.mod.constants.get(arg.id) if isinstance(arg, ast.Name) else None)
        line = node.lineno
        if isinstance(value, str):
            if name == _FIND:
                return LibraryLoad(self.path, line, call, "lib" + value, "find_library")
            m = _ANY_SO.match(value)
            return LibraryLoad(self.path, line, call, m.group(1), "literal") if m else None
        for text in _strings(arg):  # os.path.join(HERE, "libfoo.so"): loaded by path
            m = _ANY_SO.match(text)
            if m and name != _FIND:
                return LibraryLoad(self.path, line, call, m.group(1), "literal")
        return LibraryLoad(self.path, line, call, None, "computed")


def scan_module(text: str, path: str) -> Optional[_Module]:
    """What one module imports, calls and loads; None when it does not parse here."""
    try:
        tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError):
        return None
    mod = _Module()
    # module-level constants first, so that CDLL(_LIBNAME) resolves wherever it is
    for stmt in tree.body:
        if (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)):
            for t in stmt.targets:
                if isinstance(t, ast.Name):
                    mod.constants[t.id] = stmt.value.value
    _Visitor(path, mod).visit(tree)
    return mod


# --------------------------------------------------------------------------- a distribution

#: Words without which a module loads no library by name (a cheap first filter).
_TRIGGERS = ("CDLL", "PyDLL", "LoadLibrary", "dlopen", "find_library")


def _mentions_loader(text: str) -> bool:
    return any(word in text for word in _TRIGGERS)
#: Import statements, read from the text (any indentation; cheaper than parsing every file).
_IMPORT_TEXT = re.compile(
    r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^#\n;]*)"
    r"|import[ \t]+([^#\n;]+))", re.M)


_DEF_LINE = re.compile(r"^([ \t]*)(?:async[ \t]+)?def[ \t]")


def _outside_functions(text: str) -> str:
    """``text`` without the lines inside function bodies (by indentation; a line of a
    multi-line string that starts further left ends the function early: a little more)."""
    out = []
    inside: Optional[int] = None   # indentation of the enclosing def, if any
    for line in text.splitlines():
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(stripped)
        if inside is not None and indent <= inside:
            inside = None
        if inside is not None:
            continue
        m = _DEF_LINE.match(line)
        if m:
            inside = indent
            continue
        out.append(line)
    return "\n".join(out)


_Import = Tuple[int, str, Tuple[str, ...]]
#: The import statements of a text, by its content's digest: the same file is read for every
#: target of a run (a pure-Python wheel's files are in each target's bundle).
_IMPORTS_MEMO: Dict[bytes, Tuple[_Import, ...]] = {}
_IMPORTS_LOCK = threading.Lock()


def _import_statements(text: str) -> Iterable[_Import]:
    text = _outside_functions(text)
    for m in _IMPORT_TEXT.finditer(text):
        if m.group(4) is not None:
            for part in m.group(4).split(","):
                name = part.strip().split(" ")[0].strip("\\ ")
                if re.fullmatch(r"[\w.]+", name):
                    yield 0, name, ()
            continue
        names = tuple(n.strip().split(" ")[0] for n in
                      m.group(3).strip("()\\ \n").replace("\n", ",").split(",")
                      if n.strip())
        yield len(m.group(1)), m.group(2), names


class _Tree:
    """The .py files of one distribution (Lambda paths -> host paths) under ``site``."""

    def __init__(self, site: str, files: Dict[str, str]) -> None:
        self.site, self.files = site, files
        self.texts: Dict[str, str] = {}
        self.digests: Dict[str, bytes] = {}
        self.cache: Dict[str, Optional[_Module]] = {}

    def module_file(self, dotted: str) -> Optional[str]:
        base = self.site + "/" + dotted.replace(".", "/")
        for candidate in (base + "/__init__.py", base + ".py"):
            if candidate in self.files:
                return candidate
        return None

    def text(self, path: str) -> str:
        if path not in self.texts:
            real = self.files[path]
            try:
                if os.path.getsize(real) > _MAX_BYTES:
                    raise OSError("too big")
                with open(real, "rb") as f:
                    data = f.read()
                self.texts[path] = data.decode("utf-8", "replace")
                self.digests[path] = hashlib.blake2b(data, digest_size=20).digest()
            except OSError:
                self.texts[path] = ""
        return self.texts[path]

    def parse(self, path: str) -> Optional[_Module]:
        if path not in self.cache:
            self.cache[path] = scan_module(self.text(path), path)
        return self.cache[path]

    def package_of(self, path: str) -> str:
        parts = path[len(self.site) + 1:-3].split("/")
        return ".".join(parts[:-1])

    def imports(self, path: str) -> Iterable[_Import]:
        """The module's imports outside functions, read from its text (remembered by the
        text's digest for the rest of the process)."""
        text = self.text(path)
        digest = self.digests.get(path)
        if digest is None:
            return tuple(_import_statements(text))
        with _IMPORTS_LOCK:
            found = _IMPORTS_MEMO.get(digest)
        if found is None:
            found = tuple(_import_statements(text))
            with _IMPORTS_LOCK:
                if len(_IMPORTS_MEMO) > 100_000:
                    _IMPORTS_MEMO.clear()
                _IMPORTS_MEMO[digest] = found
        return found

    def imported(self, path: str) -> Iterable[str]:
        """Module files that ``path``'s imports execute."""
        for level, name, names in self.imports(path):
            if level:
                pkg = self.package_of(path).split(".") if self.package_of(path) else []
                if level > 1:
                    pkg = pkg[:len(pkg) - (level - 1)]
                full = ".".join(pkg + ([name] if name else []))
            else:
                full = name
            parts = full.split(".") if full else []
            for i in range(1, len(parts) + 1):
                f = self.module_file(".".join(parts[:i]))
                if f:
                    yield f
            for n in names:
                f = self.module_file(".".join(parts + [n])) if n != "*" else None
                if f:
                    yield f


def scan_distribution(site: str, modules: Sequence[str], files: Dict[str, str]
                      ) -> List[LibraryLoad]:
    """Library loads at import of a distribution whose top-level ``modules`` live in
    ``site``; ``files`` maps the Lambda paths of its .py files to host paths.

    Only modules reachable through imports are considered; only those that mention a loader
    and those that call the functions holding the loads are parsed (libscan_memo: per process).
    """
    tree = _Tree(site, files)
    if not any(_mentions_loader(tree.text(p)) for p in files):
        return []  # most distributions: nothing mentions a loader
    reached: List[str] = []
    seen: Set[str] = set()
    todo = [f for f in (tree.module_file(m) for m in modules) if f]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        reached.append(path)
        todo.extend(f for f in tree.imported(path) if f not in seen)
    candidates = [p for p in reached if _mentions_loader(tree.text(p))]
    parsed = {p: m for p in candidates for m in [tree.parse(p)] if m is not None and m.sites}
    if not parsed:
        return []
    _parse_callers(tree, reached, parsed)
    certain, live = _import_time_functions(list(parsed.values()))
    return _loads(parsed, certain, live)


def _parse_callers(tree: _Tree, reached: Sequence[str], parsed: Dict[str, _Module]) -> None:
    """Parse, too, the reachable modules that call a function leading to a load (by name),
    until no new such function turns up."""
    wanted: Set[str] = set()
    searched: Set[str] = set()
    while True:
        for mod in parsed.values():
            wanted |= {fn for fn, _ in mod.sites if fn}
            for fn, calls in mod.calls_in.items():
                if calls & wanted:
                    wanted.add(fn)
        new = wanted - searched
        if not new:
            return
        searched |= new
        pattern = re.compile(r"\b(?:%s)\s*\(" % "|".join(map(re.escape, sorted(new))))
        for path in reached:
            text = tree.text(path)
            if (path not in parsed and any(n in text for n in new)
                    and pattern.search(text)):
                found = tree.parse(path)
                if found is not None:
                    parsed[path] = found


def _loads(parsed: Dict[str, _Module], certain: Set[str], live: Set[str]
           ) -> List[LibraryLoad]:
    out: List[LibraryLoad] = []
    for path, mod in parsed.items():
        sites = [s if fn is None or fn in certain else replace(s, conditional=True)
                 for fn, s in mod.sites if fn is None or fn in live]
        if not sites:
            continue
        named = [s for s in sites if s.kind != "computed"]
        computed = [s for s in sites if s.kind == "computed"]
        inferred = []
        if computed:
            loaders = [c for c in computed if not c.call.endswith(_FIND)]
            call = (loaders or computed)[0].call
            only_if = all(c.conditional for c in computed)
            inferred = [LibraryLoad(path, line, call, m.group(1), "inferred",
                                    conditional=only_if or cond or (
                                        fn is not None and fn not in certain))
                        for fn, line, v, cond in mod.literals
                        if (fn is None or fn in live) and (m := _SONAME.match(v)) is not None]
        out += named + inferred
        if computed and not inferred and not named:
            out.append(computed[0])
    return out


def _import_time_functions(mods: Sequence[_Module]) -> Tuple[Set[str], Set[str]]:
    """Names of functions called (transitively, matched by name) from import-time code:
    (from unconditional code only, from any)."""
    def closure(start: Set[str]) -> Set[str]:
        live = set(start)
        changed = True
        while changed:
            changed = False
            for m in mods:
                for fn, calls in m.calls_in.items():
                    if fn in live and not calls <= live:
                        live |= calls
                        changed = True
        return live

    certain = closure({n for m in mods for n in m.calls_at_import})
    return certain, closure(certain | {n for m in mods for n in m.calls_at_import_cond})
