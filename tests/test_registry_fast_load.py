"""The registry's stamped files are read by libyaml: the same entries, lines and data as the
pure-Python parser gives, and whatever libyaml refuses is read (and reported) by the latter."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lambda_compat.registry import packages, yamlfile
from lambda_compat.registry.runtimes import registry_dir

SHIPPED = sorted((registry_dir() / "packages").glob("*.yaml"))


def _lines(node):
    """Every node's kind, start line and column, depth first."""
    out = [(type(node).__name__, node.start_mark.line, node.start_mark.column)]
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out += _lines(key) + _lines(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out += _lines(item)
    return out


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML without libyaml")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_a_shipped_entry_reads_the_same_with_libyaml(path):
    text = path.read_text(encoding="utf-8")
    slow_node, slow_data, slow_problems = yamlfile.compose_yaml(text)
    fast_node, fast_data, fast_problems = yamlfile.compose_yaml(text, known_valid=True)
    assert fast_data == slow_data
    assert fast_problems == slow_problems == []
    assert _lines(fast_node) == _lines(slow_node)
    slow_entry, _ = packages.parse_entry(text, str(path))
    fast_entry, _ = packages.parse_entry(text, str(path),
                                         validator=packages._NoSchemaErrors())
    assert fast_entry == slow_entry and fast_entry is not None


def test_dates_stay_strings_and_duplicate_keys_are_found_on_the_fast_path():
    text = "name: p\ndate: 2026-11-21\nname: q\n"
    node, data, problems = yamlfile.compose_yaml(text, known_valid=True)
    assert data["date"] == "2026-11-21"
    assert problems == [(3, "duplicate key 'name' (first given on line 1)")]


def test_what_libyaml_refuses_is_reported_by_the_careful_parser():
    text = "name: p\nversions: [1,\n"
    assert yamlfile.compose_yaml(text, known_valid=True) == yamlfile.compose_yaml(text)
    node, data, problems = yamlfile.compose_yaml(text, known_valid=True)
    assert node is None and data is None
    assert problems and problems[0][1].startswith("not valid YAML")


def test_the_shipped_registry_loads_the_same_through_its_stamp(monkeypatch):
    """load_packages (stamped bytes: libyaml) gives the registry check_registry gives with
    every check run (pure-Python parser, schema)."""
    packages.load_packages.cache_clear()
    try:
        fast = packages.load_packages()
    finally:
        packages.load_packages.cache_clear()
    careful, problems = packages.check_registry(Path(registry_dir()))
    assert problems == ()
    assert fast == careful
