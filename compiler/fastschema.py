"""A yes/no check against a JSON Schema (draft 2020-12), for the keywords the shipped schema uses.

It gives the same answer as jsonschema with sglangc's type rules (see `TYPES`), in a fraction of the time and
without importing jsonschema; `validate` asks jsonschema only when this check says no, for the findings.
A schema that uses any other keyword is refused when it is compiled (`UnsupportedSchema`).
"""

from __future__ import annotations

import itertools
import numbers
import re
import typing as t
from collections.abc import Mapping, Sequence

Check = t.Callable[[t.Any], bool]

# Keywords without effect on validity.
ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "default"})


class UnsupportedSchema(ValueError):
    """The schema uses a keyword, or a form of one, that this checker does not implement."""


# JSON Schema's types as Python classes; a bool is only a "boolean". An "integer" is an int and not 1.0, unlike
# in JSON Schema: sglangc.validate redefines jsonschema's "integer" the same way (TOML keeps 2.0 apart from 2).
TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "number": numbers.Number,
    "boolean": bool,
    "array": list,
    "object": dict,
    "null": type(None),
}


def _is_number(value: t.Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def compile_schema(schema: t.Any) -> Check:
    """A function telling whether a value is valid under `schema`."""
    if not isinstance(schema, dict):
        raise UnsupportedSchema(f"a schema must be an object here, not {schema!r}")
    unknown = sorted(set(schema) - ANNOTATIONS - set(KEYWORDS))
    if unknown:
        raise UnsupportedSchema(f"keywords not implemented: {', '.join(unknown)}")
    checks = tuple(KEYWORDS[k](v, schema) for k, v in schema.items() if k in KEYWORDS)

    def check(value: t.Any) -> bool:
        for one in checks:  # noqa: SIM110 - quicker than all() over a generator, and this runs for every value
            if not one(value):
                return False
        return True

    return checks[0] if len(checks) == 1 else check


def _type(names: t.Any, schema: dict[str, t.Any]) -> Check:
    names = [names] if isinstance(names, str) else names
    if not isinstance(names, list) or not names or any(n not in TYPES for n in names):
        raise UnsupportedSchema(f"type {names!r}")
    classes, booleans = tuple(TYPES[n] for n in names), "boolean" in names
    return lambda v: booleans if isinstance(v, bool) else isinstance(v, classes)


def _properties(properties: dict[str, t.Any], schema: dict[str, t.Any]) -> Check:
    subs = {key: compile_schema(sub) for key, sub in properties.items()}

    def check(value: t.Any) -> bool:
        if isinstance(value, dict):
            for key, item in value.items():
                sub = subs.get(key)
                if sub is not None and not sub(item):
                    return False
        return True

    return check


def _additional_properties(additional: t.Any, schema: dict[str, t.Any]) -> Check:
    known = frozenset(schema.get("properties", ()))
    if additional is False:
        return lambda v: not isinstance(v, dict) or v.keys() <= known
    sub = compile_schema(additional)
    return lambda v: not isinstance(v, dict) or all(sub(item) for key, item in v.items() if key not in known)


def _property_names(names: t.Any, schema: dict[str, t.Any]) -> Check:
    sub = compile_schema(names)
    return lambda v: not isinstance(v, dict) or all(map(sub, v))


def _required(required: list[str], schema: dict[str, t.Any]) -> Check:
    keys = frozenset(required)
    return lambda v: not isinstance(v, dict) or v.keys() >= keys


def _min_properties(least: int, schema: dict[str, t.Any]) -> Check:
    return lambda v: not isinstance(v, dict) or not len(v) < least


def _max_properties(most: int, schema: dict[str, t.Any]) -> Check:
    return lambda v: not isinstance(v, dict) or not len(v) > most


def _max_items(most: int, schema: dict[str, t.Any]) -> Check:
    return lambda v: not isinstance(v, list) or not len(v) > most


def _items(items: t.Any, schema: dict[str, t.Any]) -> Check:
    sub = compile_schema(items)
    return lambda v: not isinstance(v, list) or all(map(sub, v))


def _min_items(least: int, schema: dict[str, t.Any]) -> Check:
    return lambda v: not isinstance(v, list) or not len(v) < least


def _unique_items(unique: bool, schema: dict[str, t.Any]) -> Check:
    return lambda v: not unique or not isinstance(v, list) or _uniq(v)


def _min_length(least: int, schema: dict[str, t.Any]) -> Check:
    return lambda v: not isinstance(v, str) or not len(v) < least


def _max_length(most: int, schema: dict[str, t.Any]) -> Check:
    return lambda v: not isinstance(v, str) or not len(v) > most


def _pattern(pattern: str, schema: dict[str, t.Any]) -> Check:
    search = re.compile(pattern).search  # jsonschema uses re.search too: `$` also matches before a final newline
    return lambda v: not isinstance(v, str) or search(v) is not None


# Written as `not (a < b)`, like jsonschema's `if a < b: error`, so that nan passes here exactly as it does there.
def _minimum(least: t.Any, schema: dict[str, t.Any]) -> Check:
    return lambda v: not _is_number(v) or not v < least


def _maximum(most: t.Any, schema: dict[str, t.Any]) -> Check:
    return lambda v: not _is_number(v) or not v > most


def _exclusive_minimum(least: t.Any, schema: dict[str, t.Any]) -> Check:
    return lambda v: not _is_number(v) or not v <= least


def _const(const: t.Any, schema: dict[str, t.Any]) -> Check:
    return lambda v: _equal(v, const)


def _enum(choices: list[t.Any], schema: dict[str, t.Any]) -> Check:
    return lambda v: any(_equal(v, choice) for choice in choices)


def _any_of(branches: list[t.Any], schema: dict[str, t.Any]) -> Check:
    subs = [compile_schema(branch) for branch in branches]
    return lambda v: any(sub(v) for sub in subs)


KEYWORDS: dict[str, t.Callable[[t.Any, dict[str, t.Any]], Check]] = {
    "type": _type,
    "properties": _properties,
    "additionalProperties": _additional_properties,
    "propertyNames": _property_names,
    "required": _required,
    "minProperties": _min_properties,
    "maxProperties": _max_properties,
    "items": _items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "uniqueItems": _unique_items,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "minimum": _minimum,
    "maximum": _maximum,
    "exclusiveMinimum": _exclusive_minimum,
    "const": _const,
    "enum": _enum,
    "anyOf": _any_of,
}


# jsonschema's equality (jsonschema/_utils.py): true and 1 differ, lists and tables compare item by item.
_TRUE, _FALSE = object(), object()


def _unbool(value: t.Any) -> t.Any:
    return _TRUE if value is True else _FALSE if value is False else value


def _equal(one: t.Any, two: t.Any) -> bool:
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, Sequence) and isinstance(two, Sequence):
        return len(one) == len(two) and all(_equal(i, j) for i, j in zip(one, two))
    if isinstance(one, Mapping) and isinstance(two, Mapping):
        return len(one) == len(two) and all(key in two and _equal(value, two[key]) for key, value in one.items())
    return bool(_unbool(one) == _unbool(two))


def _uniq(items: list[t.Any]) -> bool:
    """jsonschema's `uniq`, quirks included: sorted neighbours when the items sort, else every pair."""
    try:
        ordered = sorted(_unbool(i) for i in items)
        return not any(_equal(i, j) for i, j in zip(ordered, itertools.islice(ordered, 1, None)))
    except (NotImplementedError, TypeError):
        seen: list[t.Any] = []
        for item in map(_unbool, items):
            if any(_equal(i, item) for i in seen):
                return False
            seen.append(item)
        return True
