"""The JSON Schema of the TOML format: strict, documented, and the source of docs/config-reference.md."""

from __future__ import annotations

import json
import typing as t

import pytest

from support import ROOT
from support.cli import run_cli

SCHEMA = json.loads((ROOT / "schema" / "sglang-config.schema.json").read_text())


def _objects(node: t.Any, path: str = "$") -> t.Iterator[tuple[str, dict[str, t.Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}[{i}]")


def _fields(node: t.Any, path: str = "$") -> t.Iterator[tuple[str, dict[str, t.Any]]]:
    for key, spec in node.get("properties", {}).items():
        yield f"{path}.{key}", spec
        yield from _fields(spec, f"{path}.{key}")
        if isinstance(spec.get("additionalProperties"), dict):
            yield from _fields(spec["additionalProperties"], f"{path}.{key}.*")


def test_every_object_is_closed_or_a_map() -> None:
    for path, node in _objects(SCHEMA):
        if "properties" in node:
            assert node.get("additionalProperties") is False, path
        else:  # a map keyed by user names: its keys are constrained instead
            assert isinstance(node.get("additionalProperties"), dict) or "propertyNames" in node, path


def test_every_field_has_description_and_default() -> None:
    fields = list(_fields(SCHEMA))
    assert len(fields) > 25
    for path, spec in fields:
        assert spec.get("description"), path
        assert "default" in spec, path


def test_schema_command_prints_the_packaged_schema() -> None:
    result = run_cli("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == SCHEMA


def test_config_reference_is_up_to_date() -> None:
    result = run_cli("schema", "--format", "markdown")
    doc = (ROOT / "docs" / "config-reference.md").read_text()
    assert result.stdout == doc, (
        "docs/config-reference.md is stale: sglangc schema --format markdown > docs/config-reference.md"
    )


@pytest.mark.parametrize("example", sorted((ROOT / "model-configs").glob("*.toml")), ids=lambda p: p.name)
def test_examples_point_editors_at_the_schema(example) -> None:
    first = example.read_text().splitlines()[0]
    assert first == "#:schema ../schema/sglang-config.schema.json"
    assert (example.parent / first.split()[1]).resolve() == (ROOT / "schema" / "sglang-config.schema.json")
