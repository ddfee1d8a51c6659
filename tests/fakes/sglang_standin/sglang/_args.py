"""SGLang's argument parsing, rebuilt from the packaged flag catalog.

Mirrors ``prepare_server_args`` in sglang/srt/server_args.py: an
``argparse.ArgumentParser(prog="sglang serve")`` with argparse's default
``allow_abbrev=True``, and the ``--config FILE.yaml`` merge of
sglang/srt/utils/server_args_config_parser.py (YAML tokens first, then the
command line, so the command line wins).
"""

from __future__ import annotations

import argparse
import json
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path


def human_readable_int(value: str) -> int:
    """'128k' -> 128000, '1Ki' -> 1024, '42' -> 42 (SGLang's human_readable_int)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)", value.strip())
    if not match:
        try:
            return int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"Invalid integer value: '{value}'.")
    number, suffix = match.groups()
    if suffix.endswith("i"):
        if "." in number:
            raise argparse.ArgumentTypeError(f"Decimals are not allowed with '{suffix}'.")
        return int(number) * 2 ** (10 * "KMGT".index(suffix[0]) + 10)
    return int(Decimal(number) * 10 ** (3 * "kMGT".index(suffix) + 3))


def json_list(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"Invalid JSON list: {value}.")


def str_to_bool(value: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"Invalid boolean value: '{value}'.")


# Catalog type names -> converters; anything else (custom parsers) stays a string.
TYPES = {
    "int": int,
    "float": float,
    "str": str,
    "json": json.loads,
    "human_int": human_readable_int,
    "json_list": json_list,
    "bool": str_to_bool,
}


def load_catalog() -> dict:
    text = resources.files("sglang").joinpath("_catalog.json").read_text("utf-8")
    return json.loads(text)


def build_parser(catalog: dict) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sglang serve")
    for option in catalog["options"]:
        flags = option.get("flags") or option.get("option_strings")
        if "-h" in flags or "--help" in flags:
            continue  # argparse adds its own
        kind = option.get("kind", "value")
        kwargs = {"dest": option["dest"], "default": option.get("default")}
        if option.get("required") or option["dest"] == "model_path":
            kwargs["required"] = True
        if kind == "flag":
            kwargs["action"] = "store_true"
        elif kind == "bool_optional":
            kwargs["action"] = argparse.BooleanOptionalAction
            # a dump of the real parser lists the generated --no-x spellings too
            flags = [f for f in flags if not (f.startswith("--no-") and "--" + f[5:] in flags)]
        else:
            kwargs["type"] = TYPES.get(option.get("type"), str)
            if option.get("choices") is not None:
                kwargs["choices"] = option["choices"]
            if kind == "list":
                kwargs["nargs"] = option.get("nargs") or "+"
            elif kind == "optional_value":
                kwargs["nargs"] = "?"
                kwargs["const"] = option.get("const")
        parser.add_argument(*flags, **kwargs)
    if "config" not in {a.dest for a in parser._actions}:
        parser.add_argument("--config", type=str, default=None)
    return parser


def merge_config(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Expand the two-token ``--config FILE`` into CLI tokens placed first."""
    positions = [i for i, arg in enumerate(argv) if arg == "--config"]
    if not positions:
        return argv
    if len(positions) > 1:
        raise ValueError("Multiple config files specified! Only one allowed.")
    index = positions[0]
    if index == len(argv) - 1:
        raise ValueError("No config file specified after --config flag!")
    path = Path(argv[index + 1])
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise ValueError(f"Config file must be YAML format, got: {path.suffix}")
    if not path.exists():
        raise ValueError(f"Config file not found: {path}")

    import yaml  # like SGLang: only needed when --config is used

    data = yaml.safe_load(path.read_text("utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError("Config file must contain a dictionary at root level")

    store_true = {
        key
        for action in parser._actions
        if isinstance(action, argparse._StoreTrueAction)
        for key in [action.dest] + [s[2:].replace("-", "_") for s in action.option_strings]
    }
    tokens: list[str] = []
    for key, value in data.items():
        if isinstance(value, bool):
            if key.replace("-", "_") not in store_true:
                tokens += [f"--{key}", str(value).lower()]
            elif value:
                tokens.append(f"--{key}")
        elif isinstance(value, list):
            if value:
                tokens += [f"--{key}", *map(str, value)]
        elif isinstance(value, dict):
            tokens += [f"--{key}", json.dumps(value)]
        else:
            tokens += [f"--{key}", str(value)]
    return tokens + argv[:index] + argv[index + 2 :]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse like SGLang: argparse errors exit 2; config errors raise."""
    parser = build_parser(load_catalog())
    if "--config" in argv:
        argv = merge_config(parser, argv)
    return parser.parse_args(argv)
