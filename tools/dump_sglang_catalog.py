#!/usr/bin/env python3
"""Dump the real SGLang server CLI as a deterministic JSON catalog.

Run it with the python of a venv made by `tools/install-sglang-parser.sh VENV VERSION`:

    VENV/bin/python tools/dump_sglang_catalog.py \
        -o compiler/catalogs/sglang-0.5.23.json

It builds ``argparse.ArgumentParser()``, calls
``sglang.srt.server_args.ServerArgs.add_cli_args(parser)`` and walks
``parser._actions`` (skipping -h/--help).  Output (``format`` 1)::

    {"format": 1, "sglang_version": str,
     "reasoning_parsers": [sorted str], "tool_call_parsers": [sorted str],
     "options": [ {flags, dest, action, kind, type, choices, nargs, default,
                   required, deprecated, help, yaml_ok, json}, ... sorted by flags[0] ]}

``json`` is true when SGLang reads the option's value (each value, for a list)
as JSON text: its converter turns JSON into a table or a list (json.loads,
json_list_type, parse_cuda_graph_config_arg), its action does
(LoRAPathAction), its default is JSON text of a table or a list, or its help
says the value is JSON ("A dictionary in JSON string format", "Config in
json format", "inline JSON object"; a JSON *file* does not count).

serialised with ``json.dumps(..., indent=1, sort_keys=True)`` plus a newline.

With ``--smg`` it dumps the `smg launch` flags of SGLang's model gateway instead
(``RouterArgs.add_cli_args`` of the installed ``smg``, without the router
prefix), in the same format with ``smg_version`` in place of the SGLang keys:

    VENV/bin/python tools/dump_sglang_catalog.py --smg \
        -o compiler/catalogs/smg-1.13.0.json

Stdlib only, besides sglang (or smg) itself (and PyYAML, which SGLang's own --config
merger imports; the install script puts it in the venv).

The catalog must not depend on the machine it is made on, so before sglang is
imported every SGLANG_* / SGL_* environment variable is dropped (some
defaults and choice lists read them, e.g. --sampling-backend gains
"token_oracle" under SGLANG_KV_CANARY_ENABLE_TOKEN_ORACLE).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import io
import json
import math
import os
import re
import sys
import warnings
from typing import Any

FORMAT = 1

# argparse's own action classes -> the names used in the catalog.  Matched on
# the exact class: a subclass (custom action) is reported by its class name.
_ACTION_NAMES = {
    argparse._StoreAction: "store",
    argparse._StoreTrueAction: "store_true",
    argparse._StoreFalseAction: "store_false",
    argparse._StoreConstAction: "store_const",
    argparse.BooleanOptionalAction: "boolean_optional",
    argparse._AppendAction: "append",
    argparse._AppendConstAction: "append_const",
    argparse._CountAction: "count",
    argparse._ExtendAction: "extend",
}

# Converter functions recognised by name (their module moved between releases).
_NAMED_TYPES = {
    "human_readable_int": "human_int",  # "128k" -> 128000
    "json_list_type": "json_list",
}
_BOOL_TYPE_NAMES = {"str2bool", "str_to_bool", "strtobool", "parse_bool", "to_bool"}

# Help text that marks an option as deprecated: it starts with the word
# ("Deprecated. Use ...", "[Deprecated] ...", "(Deprecated: ...") or says
# "<one of its own flags> is deprecated" ("Note: --x is deprecated now.").
# Mentions of something else being deprecated ("Replaces the deprecated
# --grpc-mode", "The fallback to that flag ... is deprecated") do not count.
_DEPRECATED_HELP_START = re.compile(r"^\W*deprecated\b", re.IGNORECASE)


def _scrub_environment() -> None:
    for name in list(os.environ):
        if name.startswith(("SGLANG_", "SGL_")):
            del os.environ[name]


def _jsonable(value: Any) -> Any:
    """A JSON value for ``value``; str(value) for what JSON cannot hold."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=_sort_key)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _jsonable(v) for k, v in value.items()}
    return str(value)


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, json.dumps(value, sort_keys=True))


def _action_name(action: argparse.Action) -> str:
    return _ACTION_NAMES.get(type(action), type(action).__name__)


def _kind(action: argparse.Action) -> str:
    nargs = action.nargs
    if isinstance(action, argparse.BooleanOptionalAction):
        return "bool_optional"
    if nargs == 0:
        return "flag"
    if isinstance(action, (argparse._AppendAction, argparse._ExtendAction)):
        return "list"
    if nargs in ("+", "*", argparse.REMAINDER) or (isinstance(nargs, int) and nargs > 1):
        return "list"
    if nargs == "?":
        return "optional_value"
    return "value"


def _type_name(action: argparse.Action, kind: str) -> str | None:
    conv = action.type
    if conv is None:
        # argparse hands the raw string to an action that takes a value.
        return None if kind in ("flag", "bool_optional") else "str"
    if conv is int:
        return "int"
    if conv is float:
        return "float"
    if conv is str:
        return "str"
    if conv is bool:
        return "bool"
    if conv is json.loads:
        return "json"
    name = getattr(conv, "__name__", None) or type(conv).__name__
    if name in _NAMED_TYPES:
        return _NAMED_TYPES[name]
    if name in _BOOL_TYPE_NAMES:
        return "bool"
    return name


# Help that says the value itself is JSON text, not the path of a JSON file.
_JSON_HELP = re.compile(
    r"\bjson[ -](?:string|format|content|object|mapping|array|dict)"
    r"|\bjson config(?:uration)?\b(?! file)"
    r"|\bin json format\b|\bas (?:a )?json\b(?! file)"
    r"|\binline json\b"
    r"|\bjson may include\b",
    re.IGNORECASE,
)
_JSON_SAMPLES = ("{}", "[]")
_JSON_ITEM = '{"lora_name": "a", "lora_path": "b"}'  # an item an action may read as JSON (LoRAPathAction's schema)


def _takes_json(action: argparse.Action, kind: str) -> bool:
    """Whether SGLang reads this option's value (each value, for a list) as JSON text (see the module doc)."""
    if kind in ("flag", "bool_optional"):
        return False
    conv = action.type
    if callable(conv) and conv is not str:
        for sample in _JSON_SAMPLES:
            with contextlib.suppress(Exception):
                if isinstance(conv(sample), (dict, list)):
                    return True
    if type(action) not in _ACTION_NAMES:  # a custom action: ask it what it stores for a JSON item
        namespace = argparse.Namespace()
        with contextlib.suppress(Exception), contextlib.redirect_stdout(io.StringIO()):
            action(argparse.ArgumentParser(), namespace, [_JSON_ITEM] if kind == "list" else _JSON_ITEM)
            stored = getattr(namespace, action.dest, None)
            if isinstance(stored, dict) or (isinstance(stored, list) and any(isinstance(v, dict) for v in stored)):
                return True
    if isinstance(action.default, str) and action.default.strip()[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            if isinstance(json.loads(action.default), (dict, list)):
                return True
    return kind == "value" and bool(_JSON_HELP.search(action.help or ""))


def _help_first_line(action: argparse.Action) -> str:
    text = action.help
    if not text or text == argparse.SUPPRESS:
        return ""
    return " ".join(text.split("\n", 1)[0].split())


def _deprecated(action: argparse.Action) -> bool:
    if type(action).__name__.startswith("Deprecated"):
        return True
    text = action.help or ""
    if _DEPRECATED_HELP_START.search(text):
        return True
    return any(
        re.search(re.escape(flag) + r"\s+is\s+deprecated\b", text, re.IGNORECASE) for flag in action.option_strings
    )


def _import_first(candidates: list[str]) -> Any:
    errors = []
    for name in candidates:
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise ImportError("; ".join(errors))


def _config_merger(parser: argparse.ArgumentParser) -> Any:
    # The module moved: sglang.srt.server_args_config_parser (<= 0.5.1x),
    # sglang.srt.utils.server_args_config_parser (0.5.2x).
    module = _import_first(
        [
            "sglang.srt.utils.server_args_config_parser",
            "sglang.srt.server_args_config_parser",
        ]
    )
    return module.ConfigArgumentMerger(parser)


def _yaml_ok(merger: Any, action: argparse.Action, kind: str) -> bool:
    """Ask SGLang's own --config merger whether it takes this option.

    The YAML key is the primary flag without "--" (dashes kept, as SGLang's
    docs write it).  The merger refuses a key by raising ValueError
    "Unsupported config option ..." (BooleanOptionalAction, LoRAPathAction,
    most Deprecated* actions).  For an option that takes no value, the tokens
    it makes from `key: true` must also be exactly the bare flag: otherwise
    (a flag that the merger does not know as store_true) it emits
    "--flag true", which argparse rejects.
    """
    if "--config" in action.option_strings:
        return False  # the merger expands one --config only; nested is ignored
    flag = action.option_strings[0]
    key = flag.lstrip("-")
    if kind in ("flag", "bool_optional"):
        sample: Any = True
    elif kind == "list":
        sample = ["x"]
    else:
        sample = "x"
    try:
        tokens = merger._convert_config_to_args({key: sample})
    except ValueError as exc:
        if "Unsupported config option" in str(exc):
            return False
        raise
    if kind in ("flag", "bool_optional"):
        return list(tokens) == [flag]
    return True


def _parser_choices(action: argparse.Action | None, fallback_modules: list[str], attr: str) -> list[str]:
    """Sorted choices of --reasoning-parser / --tool-call-parser.

    Every release we ship declares them as argparse choices.  Should one not,
    the names are the keys of the registry the server validates against at
    start-up (ReasoningParser.DetectorMap in sglang.srt.parser.reasoning_parser
    or sglang.srt.reasoning_parser; FunctionCallParser.ToolCallParserEnum in
    sglang.srt.function_call.function_call_parser), read from there instead.
    """
    if action is not None and action.choices is not None:
        return sorted(str(c) for c in action.choices)
    module = _import_first(fallback_modules)
    owner, mapping = attr.split(".")
    return sorted(str(c) for c in getattr(getattr(module, owner), mapping))


def build_catalog() -> dict[str, Any]:
    _scrub_environment()
    # sglang logs and warns while importing (triton/CUDA probes): keep stdout clean.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sglang.srt.server_args import ServerArgs

        parser = argparse.ArgumentParser()
        ServerArgs.add_cli_args(parser)
        merger = _config_merger(parser)

    options = []
    by_dest: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        by_dest.setdefault(action.dest, action)
        kind = _kind(action)
        options.append(
            {**_option(action, kind), "yaml_ok": _yaml_ok(merger, action, kind), "json": _takes_json(action, kind)}
        )
    options.sort(key=lambda o: (o["flags"][0], o["dest"]))

    return {
        "format": FORMAT,
        "sglang_version": importlib.metadata.version("sglang"),
        "reasoning_parsers": _parser_choices(
            by_dest.get("reasoning_parser"),
            ["sglang.srt.parser.reasoning_parser", "sglang.srt.reasoning_parser"],
            "ReasoningParser.DetectorMap",
        ),
        "tool_call_parsers": _parser_choices(
            by_dest.get("tool_call_parser"),
            ["sglang.srt.function_call.function_call_parser"],
            "FunctionCallParser.ToolCallParserEnum",
        ),
        "options": options,
    }


def build_smg_catalog() -> dict[str, Any]:
    """The flag catalog of `smg launch` (what smg's own `parse_router_args` builds)."""
    from smg.router_args import RouterArgs

    parser = argparse.ArgumentParser()
    RouterArgs.add_cli_args(parser, use_router_prefix=False)
    options = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        options.append(_option(action, _kind(action)))
    options.sort(key=lambda o: (o["flags"][0], o["dest"]))
    return {"format": FORMAT, "smg_version": importlib.metadata.version("smg"), "options": options}


def _option(action: argparse.Action, kind: str) -> dict[str, Any]:
    """What every catalog records of one flag (SGLang's adds whether YAML and JSON values reach it intact)."""
    return {
        "flags": list(action.option_strings),
        "dest": action.dest,
        "action": _action_name(action),
        "kind": kind,
        "type": _type_name(action, kind),
        "choices": None if action.choices is None else _jsonable(action.choices),
        "nargs": action.nargs,
        "default": _jsonable(action.default),
        "required": bool(action.required),
        "deprecated": _deprecated(action),
        "help": _help_first_line(action),
    }


def render(catalog: dict[str, Any]) -> str:
    return json.dumps(catalog, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("-o", "--output", help="write here instead of stdout")
    ap.add_argument("--smg", action="store_true", help="dump the flags of `smg launch` (the model gateway)")
    args = ap.parse_args(argv)
    text = render(build_smg_catalog() if args.smg else build_catalog())
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
