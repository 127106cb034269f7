"""YAML with line numbers, for the registries' error messages.

``read_yaml`` loads a file into :class:`LineMap` / :class:`LineSeq` (a dict / list that remember
the 1-based line of their node and of each key / item), refusing duplicate keys; ``line_of``
finds the line of the value at a path. Any problem raises :class:`RegistryError` naming the
file and the line. ``compose_yaml`` / ``node_line`` are the same for the package registry,
which reports every problem of an entry instead of the first.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from ..errors import RegistryError

__all__ = ["LineMap", "LineSeq", "read_yaml", "line_of", "dotted", "compose_yaml", "duplicate_keys",
           "node_line"]


class LineMap(dict):
    """A mapping that remembers the line of its node and of each key (1-based)."""

    __slots__ = ("line", "key_lines")
    line: int
    key_lines: Dict[Any, int]


class LineSeq(list):
    """A sequence that remembers the line of its node and of each item (1-based)."""

    __slots__ = ("line", "item_lines")
    line: int
    item_lines: List[int]


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(key)
        self.key = key
        self.line = line
        self.first_line = first_line


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster


class _LineLoader(_BaseLoader):
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode):
    data = LineMap()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    yield data
    explicit: Dict[Any, int] = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in explicit:
                raise _DuplicateKey(key, line, explicit[key])
            explicit[key] = line
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found an unhashable key", key_node.start_mark) from None
        data[key] = loader.construct_object(value_node)
        data.key_lines[key] = key_node.start_mark.line + 1


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode):
    data = LineSeq()
    data.line = node.start_mark.line + 1
    data.item_lines = [child.start_mark.line + 1 for child in node.value]
    yield data
    data.extend(loader.construct_object(child) for child in node.value)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise RegistryError(f"cannot read the runtime registry: {e.strerror or e}", path=path) from None
    except UnicodeDecodeError as e:
        raise RegistryError(f"the runtime registry is not UTF-8 text: {e.reason}", path=path) from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except _DuplicateKey as e:
        raise RegistryError(f"duplicate key {e.key!r} (first given on line {e.first_line})",
                            path=path, line=e.line) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = " ".join(str(x) for x in (e.context, e.problem) if x)
        raise RegistryError(f"invalid YAML: {problem or e}", path=path,
                            line=mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as e:
        raise RegistryError(f"invalid YAML: {e}", path=path) from None


def line_of(data: Any, parts: Iterable[Any]) -> Optional[int]:
    """Line of the value at ``parts`` (the key's line for mapping values)."""
    node = data
    line = getattr(data, "line", None)
    for part in parts:
        if isinstance(node, LineMap) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def dotted(parts: Iterable[Any]) -> str:
    """``targets[3].python.version``: a path as messages name it."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


# --------------------------------------------------------------------------- composed nodes
# The package registry reports *every* problem of an entry rather than the first: it composes
# the YAML to nodes (kept to place each problem at its line), and duplicate keys are found on
# the nodes instead of stopping the load.

class _DatelessLoader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: ``date: 2026-11-21`` stays a string."""


_DatelessLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _FastDatelessLoader(_BaseLoader):
    """libyaml's parser with the same resolvers (no timestamps): the same nodes, lines and
    data (tests/test_registry_fast_load.py) in a tenth of the time."""


_FastDatelessLoader.yaml_implicit_resolvers = _DatelessLoader.yaml_implicit_resolvers


def compose_yaml(text: str, known_valid: bool = False
                 ) -> Tuple[Optional[yaml.Node], Any, List[Tuple[Optional[int], str]]]:
    """``(root node, data, problems)`` of one YAML document; a problem is ``(line, message)``.

    Dates stay strings. Invalid YAML gives ``(None, None, [its problem])``; duplicate keys are
    problems next to the data. ``known_valid``: the text is known to pass every check (the
    shipped registry's stamp), so libyaml reads it; anything it refuses is read again by the
    pure-Python parser, whose messages the registry's errors are made of.
    """
    if known_valid:
        fast = _FastDatelessLoader(text)
        try:
            node = fast.get_single_node()
            data = fast.construct_document(node) if node is not None else None
            return node, data, duplicate_keys(node)
        except yaml.YAMLError:
            pass
        finally:
            fast.dispose()
    loader = _DatelessLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        context = e.context or ""
        if e.context_mark is not None and e.problem_mark is not None \
                and e.context_mark.line != e.problem_mark.line:
            context += f" started on line {e.context_mark.line + 1}"
        problem = ": ".join(str(x) for x in (context, e.problem) if x)
        return None, None, [(mark.line + 1 if mark else None, f"not valid YAML: {problem or e}")]
    except yaml.YAMLError as e:
        return None, None, [(None, f"not valid YAML: {e}")]
    finally:
        loader.dispose()
    return node, data, duplicate_keys(node)


def duplicate_keys(node: Optional[yaml.Node]) -> List[Tuple[Optional[int], str]]:
    """``(line, message)`` for every key given twice in a mapping under ``node``."""
    out: List[Tuple[Optional[int], str]] = []
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: Dict[Any, int] = {}
            for k, v in n.value:
                if isinstance(k, yaml.ScalarNode):
                    line = k.start_mark.line + 1
                    if k.value in seen:
                        out.append((line, f"duplicate key {k.value!r} (first given "
                                          f"on line {seen[k.value]})"))
                    else:
                        seen[k.value] = line
                stack.append(v)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    return out


def node_line(root: Optional[yaml.Node], parts: Sequence[Any]) -> Optional[int]:
    """1-based line of the value at ``parts``; a mapping value is located by its key.

    The composed-node twin of :func:`line_of`."""
    if root is None:
        return None
    node = root
    line = root.start_mark.line + 1
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
