"""The yes/no schema check (sglangc.fastschema) answers exactly as jsonschema does, and spares `check` the import of
jsonschema when a config is valid."""

from __future__ import annotations

import copy
import datetime
import json
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sglangc import fastschema, validate
from sglangc.errors import ConfigError, is_forbidden_char
from sglangc.load import parse

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "cases"
SCHEMA = json.loads(validate.schema_text())
FAST = fastschema.compile_schema(SCHEMA)
FULL = validate._validator()
SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


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


@pytest.mark.parametrize("schema", [
    {"oneOf": [{"type": "string"}]},
    {"type": "object", "properties": {"a": {"type": "integer", "multipleOf": 2}}},
    {"type": "object", "patternProperties": {"^a": {}}},
    {"type": "array", "items": {"type": "string", "format": "email"}},
    {"type": "float"},
    {"type": "object", "additionalProperties": True},
    {"anyOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {}}},
])
def test_a_keyword_not_implemented_is_refused(schema: dict[str, t.Any]) -> None:
    with pytest.raises(fastschema.UnsupportedSchema):
        fastschema.compile_schema(schema)


def test_forbidden_characters_are_those_of_errors() -> None:
    every = "".join(map(chr, range(0x110000)))
    assert validate._FORBIDDEN.findall(every) == [c for c in every if is_forbidden_char(c)]


# --------------------------------------------------------------------------- the cases


def _documents() -> list[Path]:
    return sorted([*CASES.glob("*/*/config.toml"), *(ROOT / "model-configs").glob("*.toml")])


def _load(path: Path) -> t.Any:
    try:
        return parse(path.read_bytes(), path.name)
    except ConfigError:
        return None


VALID_DOCS = [d for d in map(_load, _documents()) if d is not None and FULL.is_valid(d)]


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_case_gets_the_same_answer(path: Path) -> None:
    data = _load(path)
    if data is None:
        pytest.skip("not TOML")
    agree(data)


def test_there_are_valid_documents_to_mutate() -> None:
    assert len(VALID_DOCS) >= 10


# --------------------------------------------------------------------------- random values near the schema

INT64 = st.integers(-(2**63), 2**63 - 1)
SCALARS = st.one_of(
    st.booleans(), INT64, st.integers(-3, 70_000), st.floats(), st.text(max_size=8), st.none(),
    st.sampled_from([datetime.date(1979, 5, 27), datetime.time(7, 32), datetime.datetime(1979, 5, 27, 7, 32)]),
)
ANY = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
TRICKY = st.sampled_from([
    "", "a", "A", "0", "/", "/x", "x/", "a\n", "/\n", "\n/", "-a", "_a", "1A", "a-b", "a_b", "a b", "ä", "auto",
    "Auto", "auto\n", "a" * 40, "a" * 41, "/" + "a" * 63, "/" + "a" * 64, "0" * 64, "f" * 64 + "\n", "g" * 64, "0" * 63,
])
EXTRA_KEYS = st.sampled_from(["extra", "tp_szie", "gpu-ids", "Version", "", "instance", "a"])


def _strings(schema: dict[str, t.Any]) -> st.SearchStrategy[str]:
    pattern = schema.get("pattern")
    if pattern is None:
        return st.one_of(TRICKY, st.text(max_size=8))
    fitting = st.from_regex(pattern, fullmatch=True)
    return st.one_of(TRICKY, fitting, fitting.map(lambda s: s + "\n"), fitting.map(lambda s: "-" + s),
                     fitting.map(str.upper), st.text(max_size=8))


def _numbers(schema: dict[str, t.Any]) -> st.SearchStrategy[t.Any]:
    bounds = [schema[k] for k in ("minimum", "maximum", "exclusiveMinimum") if k in schema]
    near = [b + d for b in bounds for d in (-1, -0.5, -1e-9, 0, 1e-9, 0.5, 1)] + [float(b) for b in bounds]
    inside = [st.integers(min(bounds), max(bounds)), st.floats(min(bounds), max(bounds))] if len(bounds) == 2 else []
    return st.one_of(st.sampled_from(near or [0]), *inside, INT64, st.floats(), st.booleans())


def _objects(schema: dict[str, t.Any]) -> st.SearchStrategy[dict[str, t.Any]]:
    properties = schema.get("properties")
    if properties is None:  # a map keyed by user names
        names = _strings(schema.get("propertyNames", {}))
        return st.dictionaries(names, near(schema.get("additionalProperties", {})), max_size=3)
    required = schema.get("required", [])
    fields = st.fixed_dictionaries({k: near(properties[k]) for k in required},
                                   optional={k: near(s) for k, s in properties.items() if k not in required})
    extras = st.one_of(st.just({}), st.just({}), st.just({}), st.dictionaries(EXTRA_KEYS, ANY, min_size=1, max_size=1))
    dropped = st.one_of(st.just(None), st.just(None), st.just(None), st.sampled_from(required or [None]))
    return st.tuples(fields, extras, dropped).map(
        lambda fed: {k: v for k, v in {**fed[0], **fed[1]}.items() if k != fed[2]})


def _shaped(schema: dict[str, t.Any]) -> st.SearchStrategy[t.Any]:
    if "anyOf" in schema:
        return st.one_of([near(branch) for branch in schema["anyOf"]])
    if "const" in schema:
        const = schema["const"]
        return st.sampled_from([const, 1, 1.0, True, "1", "auto", "Auto", "auto\n", [const], {"a": const}])
    types = schema.get("type", [])
    shapes = []
    for kind in [types] if isinstance(types, str) else types:
        if kind == "object":
            shapes.append(_objects(schema))
        elif kind == "array":
            items = st.lists(near(schema.get("items", {})), max_size=4)
            shapes += [items, items.map(lambda xs: xs + xs[:1])]
        elif kind == "string":
            shapes.append(_strings(schema))
        elif kind in ("integer", "number"):
            shapes.append(_numbers(schema))
        elif kind == "boolean":
            shapes.append(st.booleans())
    return st.one_of(shapes) if shapes else ANY


def near(schema: dict[str, t.Any]) -> st.SearchStrategy[t.Any]:
    """Values for `schema`: mostly of its shape and close to its bounds, sometimes anything at all."""
    shaped = _shaped(schema)
    return st.one_of(shaped, shaped, shaped, shaped, shaped, ANY)


@SETTINGS
@given(_objects(SCHEMA))
def test_random_configs_get_the_same_answer(data: dict[str, t.Any]) -> None:
    agree(data)


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


REPLACEMENTS = st.one_of(ANY, TRICKY, _numbers({"minimum": 0, "maximum": 1024}), _numbers({"exclusiveMinimum": 0}),
                         st.sampled_from([{}, [], [0, 0], ["a", "a"], [True], [1.0], "auto", 1, 1.0, True]),
                         ).map(copy.deepcopy)  # values are mutated further: never share one between examples


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
                target[key] = data.draw(st.one_of(REPLACEMENTS, st.sampled_from(VALID_DOCS).map(copy.deepcopy)), label="value")
            else:
                target.append(data.draw(REPLACEMENTS, label="item"))
    agree(doc)


# --------------------------------------------------------------------------- the command

PROBE = "import sys\nfrom sglangc.cli import main\ntry:\n    main()\nfinally:\n    print('jsonschema' in sys.modules)\n"


def _check(config: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, "check", "-q", config], cwd=cwd, capture_output=True,
                          text=True, check=False)


def test_a_valid_config_is_checked_without_jsonschema() -> None:
    result = _check("sglang-glm-4.7-tp8.toml", ROOT / "model-configs")
    assert (result.returncode, result.stdout, result.stderr) == (0, "False\n", "")


def test_an_invalid_config_gets_the_findings_of_jsonschema() -> None:
    case = CASES / "invalid" / "base-port-zero"
    result = _check("config.toml", case)
    expected = (case / "expected.txt").read_text(encoding="utf-8")
    assert (result.returncode, result.stdout, result.stderr) == (1, "True\n", expected)
