"""The yes/no schema check (sglangc.fastschema) answers exactly as jsonschema does, and spares `check` the import of
jsonschema when a config is valid."""

from __future__ import annotations

import copy
import datetime
import json
import math
import re
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, _utils

from sglangc import fastschema, validate
from sglangc.errors import ConfigError, is_forbidden_char
from sglangc.load import parse

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "cases"
SCHEMA = json.loads(validate.schema_text())
FAST = fastschema.compile_schema(SCHEMA)
FULL = validate._validator()
SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def agree(value: t.Any) -> bool:
    fast, full = FAST(value), FULL.is_valid(value)
    assert fast == full, (fast, [e.message for e in FULL.iter_errors(value)], value)
    return fast


# --------------------------------------------------------------------------- the keywords


def _keywords(schema: dict[str, t.Any]) -> set[str]:
    found = set(schema)
    for key, value in schema.items():
        subs = value.values() if key == "properties" else value if key == "anyOf" else [value]
        if key in ("properties", "anyOf", "additionalProperties", "propertyNames", "items"):
            for sub in subs:
                if isinstance(sub, dict):
                    found |= _keywords(sub)
    return found


def test_the_keywords_implemented_are_those_the_schema_uses() -> None:
    used = _keywords(SCHEMA)
    assert used - fastschema.ANNOTATIONS == set(fastschema.KEYWORDS), "teach sglangc/fastschema.py the new keyword"
    assert set(fastschema.KEYWORDS) <= set(Draft202012Validator.VALIDATORS)
    assert not fastschema.ANNOTATIONS & set(Draft202012Validator.VALIDATORS)


@pytest.mark.parametrize(
    "schema",
    [
        {"oneOf": [{"type": "string"}]},
        {"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 2}}},
        {"type": "object", "patternProperties": {"^a": {}}},
        {"type": "array", "items": {"type": "string", "format": "email"}},
        {"type": "float"},
        {"type": "object", "additionalProperties": True},
        {"anyOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {}}},
    ],
)
def test_a_keyword_not_implemented_is_refused(schema: dict[str, t.Any]) -> None:
    with pytest.raises(fastschema.UnsupportedSchema):
        fastschema.compile_schema(schema)


def test_forbidden_characters_are_those_of_errors() -> None:
    every = "".join(map(chr, range(0x110000)))
    assert validate._FORBIDDEN.findall(every) == [c for c in every if is_forbidden_char(c)]


# --------------------------------------------------------------------------- every keyword, in random schemas

SMALL = st.recursive(  # few values, so that they meet: 0 and False, 1 and 1.0, "a" and "a"
    st.one_of(
        st.sampled_from(
            [
                False,
                0,
                True,
                1,
                0.0,
                1.0,
                0.5,
                math.nan,
                math.inf,
                None,
                "",
                "a",
                "b",
                "ab",
                "/a",
                "a\n",
                "A",
                datetime.date(1979, 5, 27),
            ]
        ),
        st.integers(-2, 3),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=2).map(tuple),
        st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    ),
    max_leaves=6,
)
BOUNDS = st.one_of(st.integers(-2, 3), st.sampled_from([0.5, -0.5, 1.0]))
COUNTS = st.integers(0, 3)
LEAF_KEYWORDS = {
    "type": st.one_of(
        st.sampled_from(sorted(fastschema.TYPES)),
        st.lists(st.sampled_from(sorted(fastschema.TYPES)), min_size=1, max_size=3, unique=True),
    ),
    "minimum": BOUNDS,
    "maximum": BOUNDS,
    "exclusiveMinimum": BOUNDS,
    "minLength": COUNTS,
    "maxLength": COUNTS,
    "minItems": COUNTS,
    "minProperties": COUNTS,
    "maxItems": COUNTS,
    "maxProperties": COUNTS,
    "pattern": st.sampled_from(["^a", "^[a-z]*$", "b", "^$", "^/"]),
    "const": SMALL,
    "enum": st.lists(SMALL, min_size=1, max_size=3),
    "uniqueItems": st.booleans(),
    "description": st.text(max_size=3),
    "required": st.lists(st.sampled_from("abc"), max_size=2, unique=True),
}


def _some(keywords: dict[str, st.SearchStrategy[t.Any]], most: int) -> st.SearchStrategy[dict[str, t.Any]]:
    """Schemas of a few of `keywords` (few, so that values pass them often enough to matter)."""
    names = st.lists(st.sampled_from(sorted(keywords)), max_size=most, unique=True)
    return names.flatmap(lambda chosen: st.fixed_dictionaries({k: keywords[k] for k in chosen}))


LEAVES = _some(LEAF_KEYWORDS, 3)


def _nesting(inner: st.SearchStrategy[dict[str, t.Any]]) -> dict[str, st.SearchStrategy[t.Any]]:
    return {
        "properties": st.dictionaries(st.sampled_from("abc"), inner, max_size=2),
        "additionalProperties": st.one_of(st.just(False), inner),
        "propertyNames": inner,
        "items": inner,
        "anyOf": st.lists(inner, min_size=1, max_size=2),
    }


FOCUSED = [  # meetings of keywords that random schemas seldom bring about
    {"uniqueItems": True},
    {"type": "array", "uniqueItems": True, "items": {"type": ["integer", "number", "boolean"]}},
    {"properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "integer"}},
    {"anyOf": [{"type": "integer", "minimum": 1}, {"const": "a"}]},
    {"const": [0, {"a": False}]},
]
SCHEMAS = st.one_of(
    st.sampled_from(FOCUSED),
    st.recursive(
        LEAVES,
        lambda inner: st.tuples(LEAVES, _some(_nesting(inner), 2)).map(lambda pair: {**pair[0], **pair[1]}),
        max_leaves=4,
    ),
)


def test_random_schemas_use_every_keyword_implemented() -> None:
    assert {*LEAF_KEYWORDS, *_nesting(LEAVES)} - fastschema.ANNOTATIONS == set(fastschema.KEYWORDS)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMAS, SMALL)
@example({"uniqueItems": True}, [1, 1.0])
@example({"uniqueItems": True}, [0, False])
@example({"uniqueItems": True}, [[1], [1.0]])
@example({"uniqueItems": True}, [1, math.nan, 1])  # jsonschema sorts first: nan hides the pair
@example({"const": 1}, True)
@example({"const": 1}, 1.0)
@example({"enum": ["a", 1]}, True)
@example({"type": "integer"}, 1.0)
@example({"type": "number"}, True)
@example({"pattern": "^a$"}, "a\n")
@example({"maximum": 1, "exclusiveMinimum": 0}, math.nan)
def test_every_keyword_answers_as_jsonschema_does(schema: dict[str, t.Any], value: t.Any) -> None:
    assert fastschema.compile_schema(schema)(value) == type(FULL)(schema).is_valid(value)


@settings(max_examples=500, deadline=None)
@given(SMALL, SMALL, st.lists(SMALL, max_size=5))
def test_equality_and_uniqueness_are_those_of_jsonschema(one: t.Any, two: t.Any, items: list[t.Any]) -> None:
    assert fastschema._equal(one, two) == _utils.equal(one, two)
    assert fastschema._uniq(items) == _utils.uniq(items)
    assert fastschema._uniq([one, two]) == _utils.uniq([one, two])


# --------------------------------------------------------------------------- the cases


def _documents() -> dict[str, t.Any]:
    """The decoded TOML of every case and example (leaving out those that are not TOML)."""
    found = {}
    for path in sorted([*CASES.glob("*/*/config.toml"), *(ROOT / "model-configs").glob("*.toml")]):
        try:
            found[str(path.relative_to(ROOT))] = parse(path.read_bytes(), path.name)
        except ConfigError:
            pass
    return found


DOCUMENTS = _documents()
VALID_DOCS = [doc for doc in DOCUMENTS.values() if FULL.is_valid(doc)]


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_case_gets_the_same_answer(name: str) -> None:
    agree(DOCUMENTS[name])


def test_there_are_valid_documents_to_mutate() -> None:
    assert len(VALID_DOCS) >= 10


# --------------------------------------------------------------------------- random configs from the schema

INT64 = st.integers(-(2**63), 2**63 - 1)
SCALARS = st.one_of(
    st.booleans(),
    INT64,
    st.integers(-3, 70_000),
    st.floats(),
    st.text(max_size=8),
    st.none(),
    st.sampled_from([datetime.date(1979, 5, 27), datetime.time(7, 32), datetime.datetime(1979, 5, 27, 7, 32)]),
)
ANY = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
TRICKY = st.sampled_from(
    [
        "",
        "a",
        "A",
        "0",
        "/",
        "/x",
        "x/",
        "a\n",
        "/\n",
        "\n/",
        "-a",
        "_a",
        "1A",
        "a-b",
        "a_b",
        "a b",
        "ä",
        "auto",
        "Auto",
        "auto\n",
        "a" * 40,
        "a" * 41,
        "/" + "a" * 63,
        "/" + "a" * 64,
        "0" * 64,
        "f" * 64 + "\n",
        "g" * 64,
        "0" * 63,
    ]
)
ALMOST = st.sampled_from([{}, [], [0, 0], ["a", "a"], [True], [1.0], "auto", 1, 1.0, True, 0, -1, 0.0, 1024, 1025])
EXTRA_KEYS = st.sampled_from(["extra", "tp_szie", "gpu-ids", "Version", "", "instance", "a"])


def _bounds(schema: dict[str, t.Any]) -> tuple[t.Any, t.Any]:
    return schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum")


def _numbers(schema: dict[str, t.Any]) -> st.SearchStrategy[t.Any]:
    """Numbers on and around the bounds of `schema`, and any number at all."""
    bounds = [b for b in _bounds(schema) if b is not None]
    near = [b + d for b in bounds for d in (-1, -0.5, -1e-9, 0, 1e-9, 0.5, 1)] + [float(b) for b in bounds]
    return st.one_of(st.sampled_from(near or [0]), INT64, st.floats(), st.booleans())


def _strings(schema: dict[str, t.Any]) -> st.SearchStrategy[str]:
    """Strings that nearly fit `schema`'s pattern and lengths."""
    pattern = schema.get("pattern")
    if pattern is None:
        return st.one_of(TRICKY, st.text(max_size=8))
    fitting = st.from_regex(pattern, fullmatch=True)
    return st.one_of(
        TRICKY,
        fitting,
        fitting.map(lambda s: s + "\n"),
        fitting.map(lambda s: "-" + s),
        fitting.map(str.upper),
        st.text(max_size=8),
    )


MISTYPED: dict[str, list[t.Any]] = {
    "string": [1, True, ["a"]],
    "integer": [True, False, 1.0, 2.0, "1"],
    "number": [True, "0.5"],
    "boolean": [1, 0, "true"],
    "array": ["a", {}, (0,)],
    "object": [[], "a"],
}


def _astray(schema: dict[str, t.Any]) -> st.SearchStrategy[t.Any]:
    """Values that nearly fit `schema`: of a type next to its own, on its bounds, almost its pattern; or anything."""
    types = schema.get("type", [])
    mistyped = [v for kind in ([types] if isinstance(types, str) else types) for v in MISTYPED[kind]]
    return st.one_of(st.sampled_from(mistyped or [None]), _numbers(schema), _strings(schema), ALMOST, TRICKY, ANY)


def _fit(draw: t.Any, schema: dict[str, t.Any], deviate: t.Callable[[], bool]) -> t.Any:
    """A value valid under `schema`, but for the places where `deviate()` says to put something else."""
    if deviate():
        return draw(_astray(schema))
    if "anyOf" in schema:
        return _fit(draw, draw(st.sampled_from(schema["anyOf"])), deviate)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    types = schema.get("type", [])
    if not types:
        return draw(ANY)
    kind = draw(st.sampled_from([types] if isinstance(types, str) else types))
    if kind == "object" and "properties" in schema:
        properties, required = schema["properties"], schema.get("required", [])
        keys = required + draw(st.lists(st.sampled_from(sorted(set(properties) - set(required))), unique=True))
        value = {key: _fit(draw, properties[key], deviate) for key in keys}
        if deviate():
            value[draw(EXTRA_KEYS)] = draw(ANY)
        if required and deviate():
            del value[draw(st.sampled_from(required))]
        return value
    if kind == "object":  # a map keyed by user names
        names = _fit_strings(schema.get("propertyNames", {}))
        keys = draw(st.lists(names, min_size=schema.get("minProperties", 0), max_size=3, unique=True))
        if deviate():
            keys.append(draw(_strings(schema.get("propertyNames", {}))))
        return {key: _fit(draw, schema.get("additionalProperties", {}), deviate) for key in keys}
    if kind == "array":
        count = draw(st.integers(schema.get("minItems", 0), 4))
        items = [_fit(draw, schema.get("items", {}), deviate) for _ in range(count)]
        if schema.get("uniqueItems") and not deviate():
            items = [item for i, item in enumerate(items) if item not in items[:i]]  # all of one type here
        return items
    if kind == "string":
        return draw(_fit_strings(schema))
    if kind in ("integer", "number"):
        low, high = _bounds(schema)
        whole = st.integers(low + 1 if "exclusiveMinimum" in schema else low, high)
        if kind == "integer":
            return draw(whole)
        return draw(st.one_of(whole, st.floats(low, high, exclude_min="exclusiveMinimum" in schema)))
    assert kind == "boolean", kind
    return draw(st.booleans())


def _fit_strings(schema: dict[str, t.Any]) -> st.SearchStrategy[str]:
    least, most = schema.get("minLength", 0), schema.get("maxLength")
    if "pattern" not in schema:
        return st.text(min_size=least, max_size=most if most is not None else 12)
    found = st.from_regex(schema["pattern"])  # like jsonschema, a match anywhere (re.search)
    if most is not None:  # right at the limit, too
        found = st.one_of(found, found.map(lambda s: s.ljust(most, "a")[:most]))
    return found.filter(lambda s: least <= len(s) <= (most or len(s)) and re.search(schema["pattern"], s))


@st.composite
def configs(draw: t.Any) -> tuple[float, t.Any]:
    """A config from the schema, and how often it was made to stray from it (0: never)."""
    rate = draw(st.sampled_from([0, 0.02, 0.05, 0.15, 0.4]))
    chance = draw(st.randoms(use_true_random=False))
    return rate, _fit(draw, SCHEMA, lambda: chance.random() < rate)


@SETTINGS
@given(configs())
def test_random_configs_get_the_same_answer(config: tuple[float, t.Any]) -> None:
    rate, data = config
    assert agree(data) or rate > 0


# --------------------------------------------------------------------------- valid documents, mutated


def _slots(node: t.Any) -> list[tuple[t.Any, t.Any]]:
    """(container, key or index) of every value in a document."""
    out = []
    stack = [node]
    while stack:
        container = stack.pop()
        entries = container.items() if isinstance(container, dict) else enumerate(container)
        for key, value in entries:
            out.append((container, key))
            if isinstance(value, (dict, list)):
                stack.append(value)
    return out


def _containers(node: t.Any) -> list[t.Any]:
    return [node, *(c[k] for c, k in _slots(node) if isinstance(c[k], (dict, list)))]


REPLACEMENTS = st.one_of(
    ANY, TRICKY, ALMOST, _numbers({"minimum": 0, "maximum": 1024}), _numbers({"exclusiveMinimum": 0})
).map(copy.deepcopy)  # mutated further: never shared


@SETTINGS
@given(st.sampled_from(VALID_DOCS), st.data())
def test_mutated_valid_documents_get_the_same_answer(doc: dict[str, t.Any], data: st.DataObject) -> None:
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        slots = _slots(doc)
        op = data.draw(st.sampled_from(["replace", "delete", "add", "duplicate", "empty"]), label="op")
        if op in ("replace", "delete", "empty") and slots:
            container, key = data.draw(st.sampled_from(slots), label="where")
            if op == "replace":
                container[key] = data.draw(REPLACEMENTS, label="value")
            elif op == "delete":
                del container[key]
            else:
                container[key] = type(container[key])() if isinstance(container[key], (dict, list)) else ""
        else:
            target = data.draw(st.sampled_from(_containers(doc)), label="container")
            if op == "duplicate" and isinstance(target, list) and target:
                target.append(copy.deepcopy(target[0]))
            elif isinstance(target, dict):
                key = data.draw(st.one_of(EXTRA_KEYS, _strings({"pattern": "^[a-z0-9][a-z0-9_-]*$"})), label="key")
                target[key] = data.draw(st.one_of(REPLACEMENTS, st.sampled_from(VALID_DOCS).map(copy.deepcopy)))
            else:
                target.append(data.draw(REPLACEMENTS, label="item"))
    agree(doc)


# --------------------------------------------------------------------------- the command

PROBE = "import sys\nfrom sglangc.cli import main\ntry:\n    main()\nfinally:\n    print('jsonschema' in sys.modules)\n"


def _check(config: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, "check", "-q", config], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_a_valid_config_is_checked_without_jsonschema() -> None:
    result = _check("sglang-glm-4.7-tp8.toml", ROOT / "model-configs")
    assert (result.returncode, result.stdout, result.stderr) == (0, "False\n", "")


def test_an_invalid_config_gets_the_findings_of_jsonschema() -> None:
    case = CASES / "invalid" / "base-port-zero"
    result = _check("config.toml", case)
    expected = (case / "expected.txt").read_text(encoding="utf-8")
    assert (result.returncode, result.stdout, result.stderr) == (1, "True\n", expected)
