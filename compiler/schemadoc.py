"""docs/config-reference.md, generated from the JSON Schema (`sglangc schema --format markdown`)."""

from __future__ import annotations

import json
import typing as t

HEADER = """\
<!-- Generated from schema/sglang-config.schema.json by `sglangc schema --format markdown`; do not edit. -->
# Config reference (TOML format version 1)

Every key sglangc reads, with its type, default and meaning. Unknown keys are errors (with a did-you-mean).
Why the rules are what they are: [config-toml.md](config-toml.md). Check a file with `sglangc check FILE`.
"""


def markdown(schema_text: str) -> str:
    schema = json.loads(schema_text)
    out = [HEADER, "## Top level", "", schema["description"], ""]
    top = {k: v for k, v in schema["properties"].items() if v.get("type") != "object"}
    out += _table(top, schema.get("required", []), "")
    for section, sub in schema["properties"].items():
        if sub.get("type") != "object":
            continue
        if section == "instances":
            item = sub["additionalProperties"]
            out += ["## [instances.<name>]", "", sub["description"], ""]
            out += _table(item["properties"], item.get("required", []), "")
        else:
            out += [f"## [{section}]", "", sub["description"], ""]
            out += _table(sub["properties"], sub.get("required", []), "")
    return "\n".join(out).rstrip() + "\n"


def _table(props: dict[str, t.Any], required: list[str], prefix: str) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, spec in props.items():
        default = "required" if key in required else _default(spec.get("default"))
        rows.append(f"| `{prefix}{key}` | {_type(spec)} | {default} | {_cell(spec.get('description', ''))} |")
    return [*rows, ""]


def _type(spec: dict[str, t.Any]) -> str:
    if "anyOf" in spec:
        return " or ".join(_type(s) for s in spec["anyOf"])
    if "const" in spec:
        return f"`{json.dumps(spec['const'])}`"
    kind = spec.get("type", "any")
    kinds: list[str] = kind if isinstance(kind, list) else [kind]
    words: dict[str, str] = {"array": "list", "object": "table", "number": "float", "boolean": "bool"}
    text = " / ".join(words.get(k, k) for k in kinds)
    if kind == "array" and "items" in spec:
        text = f"list of {_type(spec['items'])}"
    limits = [
        f"≥ {spec['minimum']}" if "minimum" in spec else "",
        f"> {spec['exclusiveMinimum']}" if "exclusiveMinimum" in spec else "",
        f"≤ {spec['maximum']}" if "maximum" in spec else "",
    ]
    limits = [x for x in limits if x]
    return text + (f" ({', '.join(limits)})" if limits else "")


def _default(value: t.Any) -> str:
    if value is None:
        return "unset"
    if value == {} or value == []:
        return f"`{json.dumps(value)}`"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
