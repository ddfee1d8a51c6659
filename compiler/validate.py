"""Shape checks: the packaged JSON Schema, every error rewritten in plain words with its key path."""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import pkgutil
import re
import typing as t

from sglangc import fastschema
from sglangc.errors import MAX_FINDINGS, Finding, key_path, show

SCHEMA_FILE = "sglang-config.schema.json"
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # what errors.is_forbidden_char rejects

_PATTERN_HINTS = {
    "^/": "must be an absolute path (start with /)",
    "^[a-z0-9][a-z0-9_-]*$": "must use lowercase letters, digits, '_' and '-', starting with a letter or digit",
    "^[A-Za-z_][A-Za-z0-9_]*$": "must be an environment variable name (letters, digits and '_', not starting with a digit)",
    "^([0-9a-fA-F]{64})?$": "must be 64 hexadecimal digits (a SHA-256), or empty",
    "^(huggingface|modelscope)$": 'must be "huggingface" or "modelscope"',
    "^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$": "must be a hub repository: <owner>/<name>",
    "^[A-Za-z0-9][A-Za-z0-9._/-]*$": "must be a branch, tag or commit (letters, digits, '.', '_', '-' and '/')",
}
_NAME_HINTS = {
    "^[a-z0-9][a-z0-9_-]*$": "use lowercase letters, digits, '_' and '-', starting with a letter or digit",
    "^[A-Za-z_][A-Za-z0-9_]*$": "use letters, digits and '_', not starting with a digit",
}
_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a table",
}


@functools.lru_cache(maxsize=1)
def schema_text() -> str:
    # pkgutil, not importlib.resources: that one takes longer to import than a whole check of a valid config
    data = pkgutil.get_data("sglangc.schema", SCHEMA_FILE)
    assert data is not None, "sglangc.schema cannot read its own files"
    return data.decode("utf-8")


@functools.lru_cache(maxsize=1)
def _is_valid() -> fastschema.Check:
    return fastschema.compile_schema(json.loads(schema_text()))


@functools.lru_cache(maxsize=1)
def _validator() -> t.Any:
    from jsonschema import Draft202012Validator, validators

    # JSON Schema counts 1.0 as an integer; TOML keeps floats apart, and `tp_size = 2.0` must not pass.
    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    )
    return validators.extend(Draft202012Validator, type_checker=checker)(json.loads(schema_text()))


def validate(data: dict[str, t.Any], config: str) -> list[Finding]:
    """All shape findings of one decoded config (empty when it is schema-clean).

    A quick yes/no check comes first; jsonschema, slow to import, runs only on a config that fails it."""
    findings = _forbidden_characters(data, config) + _model_sources(data, config)
    if _is_valid()(data):
        return findings
    errors = list(itertools.islice(_validator().iter_errors(data), MAX_FINDINGS + 1))
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    for error in errors:
        if error.validator in ("const", "enum") and tuple(error.absolute_path) in mistyped:
            continue  # `version = "1"`: the wrong type says it all
        findings.extend(itertools.islice(_rewrite(error, config), MAX_FINDINGS + 1 - len(findings)))
        if len(findings) > MAX_FINDINGS:
            break  # enough to stop; sort_findings says so
    return findings


def _model_sources(data: dict[str, t.Any], config: str) -> list[Finding]:
    """Each instance needs a model: `model_path`, or a `download` table (which gives it a default path)."""
    instances = data.get("instances")
    if not isinstance(instances, dict):
        return []
    return [
        Finding(
            config,
            key_path("instances", name, "model_path"),
            "required key is missing",
        )
        for name, raw in instances.items()
        if isinstance(raw, dict) and "model_path" not in raw and "download" not in raw
    ]


def _rewrite(error: t.Any, config: str) -> t.Iterator[Finding]:
    path = tuple(error.absolute_path)
    where = key_path(*path)
    kind, expected, value = error.validator, error.validator_value, error.instance

    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        for key in sorted(set(value) - set(known)):
            yield Finding(config, key_path(*path, key), _unknown_key(key, known))
    elif kind == "required":
        for key in expected:
            if key not in value:
                yield Finding(config, key_path(*path, key), "required key is missing")
    elif "propertyNames" in error.relative_schema_path:
        yield _property_name(error, path, config)
    elif kind in ("anyOf", "oneOf"):
        branch = _branch_for(error)
        if branch:
            for sub in branch:
                yield from _rewrite(sub, config)
        else:
            choices = " or ".join(s.get("description", "?") for s in expected)
            yield Finding(config, where, f"must be {choices}, not {_describe(value)}")
    elif kind == "uniqueItems":
        seen: set[str] = set()
        dupes: dict[str, t.Any] = {}
        for item in value:
            marker = json.dumps(item, sort_keys=True, default=repr)  # items may be lists or tables
            if marker in seen:
                dupes.setdefault(marker, item)
            seen.add(marker)
        for item in dupes.values():
            yield Finding(
                config,
                where,
                f"{show(item) if isinstance(item, (str, int, float)) else _describe(item)} is listed more than once",
            )
        if not dupes:
            yield Finding(config, where, "lists the same item more than once")
    else:
        yield Finding(config, where, _plain(kind, expected, value, error.schema))


def _plain(kind: str, expected: t.Any, value: t.Any, schema: dict[str, t.Any]) -> str:
    if kind == "type":
        wants = [expected] if isinstance(expected, str) else expected
        wants = [w for w in wants if not (w == "integer" and "number" in wants)]
        words = [_TYPE_WORDS.get(w, w) if len(wants) == 1 or w != "boolean" else "a boolean" for w in wants]
        listed = " or ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} or {words[-1]}"
        return f"expected {listed}, not {_describe(value)}"
    if kind == "const":
        return f"must be {json.dumps(expected)}, not {_describe(value)}"
    if kind == "enum":
        return f"must be one of {', '.join(map(json.dumps, expected))}"
    if kind == "minimum":
        return f"must be at least {expected}, not {value}"
    if kind == "maximum":
        return f"must be at most {expected}, not {value}"
    if kind == "exclusiveMinimum":
        return f"must be greater than {expected}, not {value}"
    if kind == "exclusiveMaximum":
        return f"must be less than {expected}, not {value}"
    if kind in ("minLength", "minItems"):
        return "must not be empty"
    if kind == "maxLength":
        return f"is longer than {expected} characters"
    if kind == "minProperties":
        return "needs at least one entry"
    if kind == "maxProperties":
        return f"has {len(value)} entries; at most {expected} are allowed"
    if kind == "maxItems":
        return f"lists {len(value)} items; at most {expected} are allowed"
    if kind == "pattern":
        return f"{show(value)}: {_PATTERN_HINTS.get(expected, f'must match {expected}')}"
    return f"invalid value {_describe(value)} ({kind})"


def _property_name(error: t.Any, path: tuple[t.Any, ...], config: str) -> Finding:
    parent = path[-1] if path else ""
    what = {"instances": "instance name", "env": "environment variable name"}.get(str(parent), "key")
    if error.validator == "pattern":
        reason = _NAME_HINTS.get(error.validator_value, f"must match {error.validator_value}")
    elif error.validator == "maxLength":
        reason = f"at most {error.validator_value} characters"
    else:
        reason = error.message
    return Finding(config, key_path(*path, error.instance), f"not a valid {what}: {reason}")


def _branch_for(error: t.Any) -> list[t.Any]:
    """For an anyOf/oneOf error, the sub-errors of the branch whose type fits the value, if one does."""
    for index, branch in enumerate(error.validator_value):
        if branch.get("type") and _is_type(error.instance, branch["type"]):
            subs = [e for e in error.context if e.schema_path and e.schema_path[0] == index]
            if subs and not (len(subs) == 1 and subs[0].validator == "const"):
                return subs
    return []


def _is_type(value: t.Any, wanted: str) -> bool:
    return {
        "string": isinstance(value, str),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }.get(wanted, False)


def _unknown_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {show(close[0])}?"
    return f"unknown key; known keys: {', '.join(known)}"


def _describe(value: t.Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({show(value)})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({show(value)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a TOML {type(value).__name__}"


def _forbidden_characters(data: dict[str, t.Any], config: str) -> list[Finding]:
    """Strings and keys holding characters a shell, supervisord or SGLang cannot carry (iterative walk)."""
    findings = []
    stack: list[tuple[tuple[t.Any, ...], t.Any]] = [((), data)]
    while stack:
        path, container = stack.pop()
        for k, value in container.items() if isinstance(container, dict) else enumerate(container):
            if isinstance(k, str) and (bad := _FORBIDDEN.search(k)):
                findings.append(Finding(config, key_path(*path, k), _forbidden(bad[0], "key")))
            if isinstance(value, (dict, list)):
                stack.append(((*path, k), value))
            elif isinstance(value, str) and (bad := _FORBIDDEN.search(value)):
                findings.append(Finding(config, key_path(*path, k), _forbidden(bad[0], "value")))
            elif isinstance(value, float) and value != value:  # nan slips through every minimum and maximum
                findings.append(Finding(config, key_path(*path, k), "nan is not a usable number; give a real value"))
    return findings


def _forbidden(c: str, what: str) -> str:
    return (
        f"{what} contains the control character U+{ord(c):04X}; control characters (newline, tab, NUL, …) "
        "and U+2028/U+2029 cannot reach SGLang intact, remove it"
    )
