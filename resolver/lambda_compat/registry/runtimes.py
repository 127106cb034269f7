"""The runtime registry: what each Lambda Python runtime looks like, per architecture.

``registry/runtimes.yaml`` holds one entry per (runtime, architecture): the interpreter
(version, SOABI, extension suffixes), the OS (glibc, toolchain), libstdc++/libgcc symbol
ceilings, the image (name, env, entrypoint), ``sys.path`` at handler import, the shared
libraries known to be present or absent, lifecycle dates and preinstalled distributions.
Every group cites source keys and marks its inferred / derived / unverified keys.

The file is validated against ``registry/schema/runtimes.schema.json`` and then checked for
cross-field invariants at load time. Any problem raises :class:`RegistryError` naming the
file and the YAML line of the offending entry; bad data never produces a traceback.
"""

from __future__ import annotations

import datetime
import fnmatch
import functools
import importlib.resources
import json
import os
import pathlib
import re
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

if TYPE_CHECKING:
    import jsonschema

from . import validation_memo
from ..errors import RegistryError
from ..targets.arch import ARCHITECTURES, LOADER, TRIPLET_CPU
from ..targets.facts import CAPABILITIES, Capability, RuntimeFacts, RuntimeRegistry
from ..targets.target import Target
from .yamlfile import LineMap, LineSeq, dotted, line_of, read_yaml

__all__ = [
    "get_target",
    "load_runtimes",
    "registry_dir",
]

_OS_NAMES = {"al2": "Amazon Linux 2", "al2023": "Amazon Linux 2023"}

#: Groups of a target, in file order. Each is a mapping with ``src`` and optional marks.
_GROUPS = ("python", "os", "libstdcxx", "image", "sys_path", "shared_libraries",
           "capabilities", "lifecycle", "preinstalled")
#: Groups a target may leave out.
_OPTIONAL_GROUPS = frozenset({"capabilities"})
#: Library lists of ``shared_libraries`` and the status each gives a soname.
_LIBRARY_LISTS = (("sonames", "present"), ("inferred_sonames", "present"),
                  ("unverified_sonames", "unverified"), ("absent", "absent"))
_MARKS = ("inferred", "derived", "unverified")
_META_KEYS = frozenset(("src", "note", "cite") + _MARKS)
_LIFECYCLE_ORDER = ("released", "deprecation", "block_function_create", "block_function_update")

SCHEMA_FILENAME = "runtimes.schema.json"
RUNTIMES_FILENAME = "runtimes.yaml"


# --------------------------------------------------------------------------- locating data

def registry_dir() -> pathlib.Path:
    """Where registry data lives.

    In a wheel the repository's ``registry/`` is force-included as ``lambda_compat/_registry``;
    in a source checkout / editable install it is ``<repo>/registry`` next to ``resolver/``.
    """
    try:
        packaged = importlib.resources.files("lambda_compat") / "_registry"
        if packaged.is_dir():
            return pathlib.Path(str(packaged))
    except (ModuleNotFoundError, TypeError, NotADirectoryError, OSError):
        pass
    return pathlib.Path(__file__).resolve().parents[3] / "registry"


@functools.lru_cache(maxsize=None)
def _schema(schema_path: str) -> "jsonschema.protocols.Validator":
    import jsonschema

    try:
        with open(schema_path, encoding="utf-8") as f:
            schema = json.load(f)
    except OSError as e:
        raise RegistryError(f"cannot read the registry schema: {e.strerror or e}", path=schema_path,
                            hint="Reinstall lambda-compat; the wheel ships registry/schema.") from None
    except ValueError as e:
        raise RegistryError(f"the registry schema is not valid JSON: {e}", path=schema_path) from None
    # The schema ships with the code; its own validity is a test (tests/test_runtimes.py), not a
    # per-run cost (checking it against the meta-schema took longer than loading the data).
    return jsonschema.Draft202012Validator(schema)


def load_runtimes(path: "str | os.PathLike[str] | None" = None) -> RuntimeRegistry:
    """Load, validate and check the runtime registry (the shipped one when ``path`` is None).

    The shipped registry is loaded once per process (``load_runtimes.cache_clear()`` resets).
    """
    if path is None:
        return _load_default()
    return _load(os.fspath(path))


@functools.lru_cache(maxsize=1)
def _load_default() -> RuntimeRegistry:
    return _load(str(registry_dir() / RUNTIMES_FILENAME))


load_runtimes.cache_clear = _load_default.cache_clear  # type: ignore[attr-defined]


def get_target(runtime: str, architecture: str = "x86_64",
               runtimes_file: "str | os.PathLike[str] | None" = None) -> Target:
    """The :class:`Target` ``runtime``/``architecture`` of the runtime registry (the shipped one
    when ``runtimes_file`` is None). Raises UnknownTarget with a suggestion."""
    facts = load_runtimes(runtimes_file).get(runtime, architecture)
    return Target.from_facts(facts)


# --------------------------------------------------------------------------- loading

def shipped_files() -> List[pathlib.Path]:
    """The shipped runtimes data and its schema (what the shipped stamp covers)."""
    return [registry_dir() / "schema" / SCHEMA_FILENAME, registry_dir() / RUNTIMES_FILENAME]


def _load(path: str, *, validate: bool = False) -> RuntimeRegistry:
    """``validate``: against the schema even when the data is stamped as valid."""
    schema_path = str(registry_dir() / "schema" / SCHEMA_FILENAME)
    data = read_yaml(path)
    shipped = os.path.abspath(path) == os.path.abspath(registry_dir() / RUNTIMES_FILENAME)
    stamped = (shipped and not validate
               and validation_memo.shipped_valid(registry_dir(), shipped_files()))
    if not stamped:
        stamp = validation_memo.stamp_key(path, schema_path) if shipped else None
        if validate or not validation_memo.known_valid(stamp):
            _validate_schema(_schema(schema_path), data, path)
            validation_memo.remember(stamp)
    return _Checker(data, path).build()


def validate_shipped() -> RuntimeRegistry:
    """Load the shipped runtimes data with every check, the schema included."""
    return _load(str(registry_dir() / RUNTIMES_FILENAME), validate=True)


def _validate_schema(validator: Any, data: Any, path: str) -> None:
    import jsonschema

    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    parts = list(error.absolute_path)
    line = line_of(data, parts)
    instance = error.instance
    # Point at the offending key, not at the mapping, for unknown keys.
    if error.validator == "additionalProperties" and isinstance(instance, LineMap):
        allowed = set(error.schema.get("properties", {}))
        extra = [k for k in instance if k not in allowed]
        if extra:
            line = instance.key_lines.get(extra[0], line)
    where = dotted(parts) or "top level"
    target = _target_label(data, parts)
    message = error.message
    if isinstance(instance, (datetime.date, datetime.datetime)):
        message += " (quote dates: \"YYYY-MM-DD\")"
    elif isinstance(instance, float):
        message += " (quote version numbers: \"3.10\" is not 3.1)"
    raise RegistryError(f"{target}{where}: {message}", path=path, line=line)


def _target_label(data: Any, parts: List[Any]) -> str:
    if len(parts) >= 2 and parts[0] == "targets" and isinstance(parts[1], int):
        try:
            t = data["targets"][parts[1]]
            return f"target {t.get('runtime', '?')}/{t.get('arch', '?')}: "
        except (KeyError, IndexError, TypeError, AttributeError):
            pass
    return ""


def _version_tuple(text: str) -> Tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def _source_order(key: str) -> Tuple[int, str]:
    m = re.fullmatch(r"S(\d+)", key)
    return (int(m.group(1)) if m else 1 << 30, key)


class _Checker:
    """Cross-field invariants; builds the registry once they hold."""

    def __init__(self, data: LineMap, path: str) -> None:
        self.data = data
        self.path = path
        self.sources = data["sources"]

    def fail(self, message: str, line: Optional[int], target: Optional[LineMap] = None) -> None:
        if target is not None:
            message = f"target {target['runtime']}/{target['arch']}: {message}"
        raise RegistryError(message, path=self.path, line=line)

    def build(self) -> RuntimeRegistry:
        targets = self.data["targets"]
        seen: Dict[Tuple[str, str], int] = {}
        glibc_by_os: Dict[str, Tuple[str, str, int]] = {}
        facts: List[RuntimeFacts] = []
        for index, t in enumerate(targets):
            line = targets.item_lines[index]
            key = (t["runtime"], t["arch"])
            if key in seen:
                self.fail(f"duplicate target {key[0]}/{key[1]} (first defined on line {seen[key]})", line)
            seen[key] = line
            self.check_groups(t)
            self.check_python(t)
            self.check_os(t, glibc_by_os)
            self.check_image(t)
            self.check_sys_path(t)
            self.check_shared_libraries(t)
            self.check_lifecycle(t)
            facts.append(self.facts(t))
        facts.sort(key=lambda f: (f.python_version, ARCHITECTURES.index(f.arch)))
        return RuntimeRegistry(
            schema_version=int(self.data["schema_version"]),
            data_version=str(self.data["data_version"]),
            path=self.path,
            targets=tuple(facts),
            sources=tuple(sorted(((str(k), str(v)) for k, v in self.sources.items()),
                                 key=lambda kv: _source_order(kv[0]))),
        )

    # -- provenance and citations
    def check_groups(self, t: LineMap) -> None:
        for name in _GROUPS:
            if name not in t and name in _OPTIONAL_GROUPS:
                continue
            group = t[name]
            for i, key in enumerate(group["src"]):
                if key not in self.sources:
                    known = ", ".join(sorted(self.sources, key=_source_order))
                    self.fail(f"{name}.src cites unknown source {key!r} (known: {known})",
                              group["src"].item_lines[i], t)
            marked: Dict[str, str] = {}
            for mark in _MARKS:
                for i, key in enumerate(group.get(mark, ())):
                    item_line = group[mark].item_lines[i]
                    if key in _META_KEYS or key not in group:
                        self.fail(f"{name}.{mark} names {key!r}, which is not a key of {name}",
                                  item_line, t)
                    if key in marked:
                        self.fail(f"{name}.{key} is marked both {marked[key]} and {mark}; "
                                  "use one mark per key", item_line, t)
                    marked[key] = mark

    # -- python
    def check_python(self, t: LineMap) -> None:
        py = t["python"]
        line = lambda k: py.key_lines.get(k, py.line)  # noqa: E731
        version = py["version"]
        if t["runtime"] != f"python{version}":
            self.fail(f"python.version {version!r} does not match runtime {t['runtime']!r}",
                      line("version"), t)
        if not py["full_version"].startswith(version + "."):
            self.fail(f"python.full_version {py['full_version']!r} is not a {version} release",
                      line("full_version"), t)
        major, minor = _version_tuple(version)
        free_threaded = bool(py["free_threaded"])
        if free_threaded and (major, minor) < (3, 13):
            self.fail(f"python.free_threaded is true but Python {version} has no free-threaded build",
                      line("free_threaded"), t)
        cpu = TRIPLET_CPU[t["arch"]]
        soabi = f"cpython-{major}{minor}{'t' if free_threaded else ''}-{cpu}-linux-gnu"
        if py["soabi"] != soabi:
            self.fail(f"python.soabi {py['soabi']!r} does not fit Python {version} on {t['arch']} "
                      f"(expected {soabi!r})", line("soabi"), t)
        suffixes = [f".{soabi}.so"] + ([] if free_threaded else [".abi3.so"]) + [".so"]
        if list(py["ext_suffixes"]) != suffixes:
            self.fail(f"python.ext_suffixes {list(py['ext_suffixes'])} do not fit soabi {soabi!r} "
                      f"(expected {suffixes})", line("ext_suffixes"), t)
        platform = py.get("sysconfig_platform")
        if platform is not None and platform != f"linux-{cpu}":
            self.fail(f"python.sysconfig_platform {platform!r} does not fit {t['arch']} "
                      f"(expected 'linux-{cpu}')", line("sysconfig_platform"), t)
        if not py["executable"].endswith(f"/python{version}"):
            self.fail(f"python.executable {py['executable']!r} is not a python{version} binary",
                      line("executable"), t)

    # -- os
    def check_os(self, t: LineMap, glibc_by_os: Dict[str, Tuple[str, str, int]]) -> None:
        o = t["os"]
        if _OS_NAMES[o["id"]] != o["name"]:
            self.fail(f"os.id {o['id']!r} does not match os.name {o['name']!r}",
                      o.key_lines.get("id", o.line), t)
        previous = glibc_by_os.get(o["id"])
        glibc_line = o.key_lines.get("glibc", o.line)
        if previous is not None and previous[0] != o["glibc"]:
            self.fail(f"os.glibc {o['glibc']!r} differs from {previous[0]!r} given for the same OS "
                      f"({previous[1]}, line {previous[2]})", glibc_line, t)
        glibc_by_os.setdefault(o["id"], (o["glibc"], f"{t['runtime']}/{t['arch']}", glibc_line))

    # -- image
    def check_image(self, t: LineMap) -> None:
        im = t["image"]
        version = t["python"]["version"]
        tag = im["name"].rsplit(":", 1)[-1]
        if tag != f"{version}-{t['arch']}":
            self.fail(f"image.name {im['name']!r} is not the {version}-{t['arch']} image",
                      im.key_lines.get("name", im.line), t)
        env = im["env"]
        exec_env = env.get("AWS_EXECUTION_ENV")
        if exec_env is not None and exec_env != f"AWS_Lambda_{t['runtime']}":
            self.fail(f"image.env.AWS_EXECUTION_ENV {exec_env!r} does not match {t['runtime']!r}",
                      env.key_lines.get("AWS_EXECUTION_ENV", env.line), t)

    # -- sys.path
    def check_sys_path(self, t: LineMap) -> None:
        order = t["sys_path"]["order"]
        want = _version_tuple(t["python"]["version"])
        for i, entry in enumerate(order):
            for m in re.finditer(r"python(\d)\.?(\d+)", entry):
                if (int(m.group(1)), int(m.group(2))) != want:
                    self.fail(f"sys_path.order entry {entry!r} belongs to another Python version",
                              order.item_lines[i], t)

    # -- shared libraries
    def check_shared_libraries(self, t: LineMap) -> None:
        sl = t["shared_libraries"]
        present = list(sl["sonames"]) + list(sl.get("inferred_sonames", ()))
        other = [a for a in ARCHITECTURES if a != t["arch"]]
        for key in ("sonames", "inferred_sonames"):
            items = sl.get(key)
            if items is None:
                continue
            for i, soname in enumerate(items):
                for a in other:
                    if soname == LOADER[a]:
                        self.fail(f"shared_libraries.{key} lists {soname}, the {a} loader, on "
                                  f"{t['arch']} (expected {LOADER[t['arch']]})", items.item_lines[i], t)
        seen_twice = set(sl["sonames"]) & set(sl.get("inferred_sonames", ()))
        if seen_twice:
            self.fail(f"shared_libraries lists {sorted(seen_twice)} both as seen and as inferred",
                      sl.key_lines.get("inferred_sonames", sl.line), t)
        absent = sl["absent"]
        unverified: LineSeq = sl.get("unverified_sonames") or LineSeq()
        if not hasattr(unverified, "item_lines"):
            unverified.item_lines = []
        for key, items in (("absent", absent), ("unverified_sonames", unverified)):
            others = [("present", present)] + ([("unverified", list(unverified))]
                                               if key == "absent" else [])
            for i, pattern in enumerate(items):
                for status, names in others:
                    clash = [s for s in names if s == pattern or fnmatch.fnmatchcase(s, pattern)]
                    if clash:
                        self.fail(f"shared_libraries.{key} entry {pattern!r} matches {status} "
                                  f"soname(s) {clash}; a soname has one status",
                                  items.item_lines[i], t)
        cite: LineMap = sl.get("cite") or LineMap()
        listed = set(present) | set(absent) | set(unverified)
        for name, keys in cite.items():
            line = cite.key_lines.get(name, sl.line)
            if name not in listed:
                self.fail(f"shared_libraries.cite names {name!r}, which no library list of "
                          f"this target has", line, t)
            for key in keys:
                if key not in self.sources:
                    self.fail(f"shared_libraries.cite.{name} cites unknown source {key!r}", line, t)

    # -- lifecycle
    def check_lifecycle(self, t: LineMap) -> None:
        lc = t["lifecycle"]
        dates: List[Tuple[str, datetime.date]] = []
        for key in _LIFECYCLE_ORDER:
            value = lc[key]
            if value is None:
                continue
            try:
                day = datetime.date.fromisoformat(value)
            except ValueError as e:
                self.fail(f"lifecycle.{key} {value!r} is not a date ({e})", lc.key_lines.get(key, lc.line), t)
            if dates and day < dates[-1][1]:
                self.fail(f"lifecycle.{key} {value} is before {dates[-1][0]} {dates[-1][1].isoformat()}",
                          lc.key_lines.get(key, lc.line), t)
            dates.append((key, day))

    # -- result
    def facts(self, t: LineMap) -> RuntimeFacts:
        py, o, cxx, im = t["python"], t["os"], t["libstdcxx"], t["image"]
        sl, lc = t["shared_libraries"], t["lifecycle"]
        provenance: List[Tuple[str, str]] = []
        cited: set = set()
        for name in _GROUPS:
            if name not in t and name in _OPTIONAL_GROUPS:
                continue
            group = t[name]
            cited.update(group["src"])
            status = {key: mark for mark in _MARKS for key in group.get(mark, ())}
            for key in group:
                if key not in _META_KEYS:
                    provenance.append((f"{name}.{key}", status.get(key, "sourced")))

        def day(value: Optional[str]) -> Optional[datetime.date]:
            return None if value is None else datetime.date.fromisoformat(value)

        inferred = frozenset(sl.get("inferred_sonames", ()))
        return RuntimeFacts(
            runtime=t["runtime"],
            arch=t["arch"],
            python_version=_version_tuple(py["version"]),  # type: ignore[arg-type]
            python_full_version=py["full_version"],
            soabi=py["soabi"],
            ext_suffixes=tuple(py["ext_suffixes"]),
            os_name=o["name"],
            os_id=o["id"],
            glibc=_version_tuple(o["glibc"]),  # type: ignore[arg-type]
            glibcxx_max=_version_tuple(cxx["GLIBCXX"]),
            cxxabi_max=_version_tuple(cxx["CXXABI"]),
            gcc_max=_version_tuple(cxx["GCC"]),
            sonames=frozenset(sl["sonames"]) | inferred,
            absent_sonames=frozenset(sl["absent"]),
            sys_path=tuple(t["sys_path"]["order"]),
            image=im["name"],
            image_digest=im["digest"],
            env=tuple((str(k), str(v)) for k, v in im["env"].items()),
            released=day(lc["released"]),
            deprecation=day(lc["deprecation"]),
            provenance=tuple(provenance),
            sources=tuple(sorted(cited, key=_source_order)),
            inferred_sonames=inferred,
            unverified_sonames=frozenset(sl.get("unverified_sonames") or ()),
            library_cite=tuple((str(k), tuple(v)) for k, v in (sl.get("cite") or {}).items()),
            library_src=tuple(sl["src"]),
            capabilities=_capabilities(t.get("capabilities")),
            block_function_create=day(lc["block_function_create"]),
            block_function_update=day(lc["block_function_update"]),
            lifecycle_read=day(lc.get("read")),
        )


def _capabilities(group: Optional[Dict[str, Any]]) -> Tuple[Capability, ...]:
    if not group:
        return ()
    status = {key: mark for mark in _MARKS for key in group.get(mark, ())}
    return tuple(Capability(name, None if group.get(name) is None else str(group[name]),
                            status.get(name, "sourced"), tuple(group["src"]))
                 for name in CAPABILITIES if name in group)
