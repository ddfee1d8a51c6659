"""The shipped SGLang flag catalogs (compiler/catalogs/sglang-<V>.json) and the tool that makes them.

* Regeneration: for each shipped catalog, if SGLANGC_SGLANG_PYTHON_<V> (V with every non-alphanumeric
  character as "_", e.g. SGLANGC_SGLANG_PYTHON_0_5_23) names the python of a venv made by
  tools/install-sglang-parser.sh, tools/dump_sglang_catalog.py is run with it (support.real_sglang: in the
  process test_real_parser.py uses too) and its output must equal the shipped file byte for byte.  Without the variable the test is skipped, except under CI=true,
  where it fails: CI must check the catalogs against the real parser.
* Shape: every shipped catalog has the documented format and the facts the compiler relies on.
* The dump tool's classification helpers, on a synthetic argparse parser (no sglang needed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from support import ROOT, load_module
from support.real_sglang import real_sglang

CATALOG_DIR = ROOT / "compiler" / "catalogs"
DUMP_TOOL = ROOT / "tools" / "dump_sglang_catalog.py"
CATALOGS = sorted(CATALOG_DIR.glob("sglang-*.json"))

KINDS = {"flag", "bool_optional", "list", "optional_value", "value"}
OPTION_KEYS = {
    "flags", "dest", "action", "kind", "type", "choices", "nargs",
    "default", "required", "deprecated", "help", "yaml_ok", "json",
}  # fmt: skip
TOP_KEYS = {"format", "sglang_version", "reasoning_parsers", "tool_call_parsers", "options"}


def _version(path: Path) -> str:
    return path.name[len("sglang-") : -len(".json")]


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _option(catalog: dict, flag: str) -> dict:
    found = [o for o in catalog["options"] if flag in o["flags"]]
    assert len(found) == 1, f"{flag}: {len(found)} options carry it"
    return found[0]


def test_catalogs_are_shipped() -> None:
    versions = {_version(p) for p in CATALOGS}
    assert "0.5.23" in versions, versions
    assert len(versions) >= 2, versions


# --- regeneration against the real parser -------------------------------------------------------


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: _version(p))
def test_catalog_matches_real_parser(path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    version = _version(path)
    sglang = real_sglang(tmp_path_factory, version)
    assert sglang.exit == 0 and sglang.catalog_exit == 0, sglang.stderr
    produced = json.loads(sglang.catalog)
    assert produced["sglang_version"] == version, (
        f"{sglang.python} has sglang {produced['sglang_version']}, not {version}"
    )
    assert sglang.catalog.encode() == path.read_bytes(), (
        f"{path.name} differs from what tools/dump_sglang_catalog.py makes with {sglang.python}; regenerate it:\n"
        f"  {sglang.python} tools/dump_sglang_catalog.py -o {path.relative_to(ROOT)}"
    )


# --- shape of the shipped catalogs ----------------------------------------------------------------


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: _version(p))
def test_catalog_shape(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    catalog = json.loads(text)
    # Canonical rendering, as the tool writes it.
    assert text == json.dumps(catalog, indent=1, sort_keys=True) + "\n"
    assert set(catalog) == TOP_KEYS
    assert catalog["format"] == 1
    assert catalog["sglang_version"] == _version(path)
    for key in ("reasoning_parsers", "tool_call_parsers"):
        names = catalog[key]
        assert names and all(isinstance(n, str) for n in names), key
        assert names == sorted(names), key

    options = catalog["options"]
    assert len(options) > 100
    firsts = [o["flags"][0] for o in options]
    assert firsts == sorted(firsts), "options not sorted by flags[0]"
    seen_flags: set[str] = set()
    for o in options:
        where = o.get("flags")
        assert set(o) == OPTION_KEYS, where
        assert isinstance(o["flags"], list) and o["flags"], where
        assert all(isinstance(f, str) and f.startswith("-") for f in o["flags"]), where
        assert not seen_flags & set(o["flags"]), f"flag listed twice: {where}"
        seen_flags |= set(o["flags"])
        assert "-h" not in o["flags"] and "--help" not in o["flags"]
        assert isinstance(o["dest"], str) and o["dest"], where
        assert isinstance(o["action"], str) and o["action"], where
        assert o["kind"] in KINDS, where
        assert o["type"] is None or isinstance(o["type"], str), where
        assert o["choices"] is None or isinstance(o["choices"], list), where
        nargs = o["nargs"]
        assert nargs is None or nargs in ("+", "*", "?") or isinstance(nargs, int), where
        for key in ("required", "deprecated", "yaml_ok", "json"):
            assert isinstance(o[key], bool), (where, key)
        assert isinstance(o["help"], str) and "\n" not in o["help"], where
        assert o["help"] == " ".join(o["help"].split()), where

        # Classification is consistent with argparse's own fields.
        if o["kind"] == "flag":
            assert nargs == 0 and o["type"] is None, where
        if nargs == 0:
            assert o["kind"] in ("flag", "bool_optional"), where
        if nargs in ("+", "*") or (isinstance(nargs, int) and nargs > 1):
            assert o["kind"] == "list", where
        if nargs == "?":
            assert o["kind"] == "optional_value", where
        if o["kind"] in ("value", "list", "optional_value"):
            assert o["type"] is not None, where
        if o["action"] == "store_true":
            # default None on a few ("auto": --enable-lora, --enable-multimodal, ...)
            assert o["kind"] == "flag" and o["default"] in (False, None), where
        if o["action"] == "boolean_optional":
            assert o["kind"] == "bool_optional" and not o["yaml_ok"], where
            assert any(f.startswith("--no-") for f in o["flags"]), where
        if o["action"] == "LoRAPathAction":
            assert o["kind"] == "list" and not o["yaml_ok"], where
        if o["action"].startswith("Deprecated"):
            assert o["deprecated"], where

    assert [o["flags"] for o in options if o["required"]] == [["--model-path", "--model"]]


@pytest.mark.parametrize("path", CATALOGS, ids=lambda p: _version(p))
def test_catalog_facts_the_compiler_uses(path: Path) -> None:
    catalog = _load(path)

    model = _option(catalog, "--model-path")
    assert model["kind"] == "value" and model["type"] == "str" and model["yaml_ok"]

    tp = _option(catalog, "--tp-size")
    assert "--tensor-parallel-size" in tp["flags"]
    # The primary spelling and dest moved: 0.5.10.post1 has --tensor-parallel-size first and
    # dest tensor_parallel_size, 0.5.23 has --tp-size first and dest tp_size.
    assert tp["dest"] in ("tp_size", "tensor_parallel_size")
    assert tp["type"] == "int" and tp["kind"] == "value" and tp["default"] == 1

    trust = _option(catalog, "--trust-remote-code")
    assert trust["kind"] == "flag" and trust["action"] == "store_true" and trust["yaml_ok"]

    reasoning = _option(catalog, "--reasoning-parser")
    assert "glm45" in reasoning["choices"] and "glm47" not in reasoning["choices"]
    assert "glm45" in catalog["reasoning_parsers"] and "glm47" not in catalog["reasoning_parsers"]
    assert sorted(reasoning["choices"]) == catalog["reasoning_parsers"]

    tool = _option(catalog, "--tool-call-parser")
    assert "glm47" in tool["choices"] and "glm45" in tool["choices"]
    assert "glm47" in catalog["tool_call_parsers"]
    assert sorted(tool["choices"]) == catalog["tool_call_parsers"]

    lora = _option(catalog, "--lora-paths")
    assert lora["action"] == "LoRAPathAction" and lora["kind"] == "list" and not lora["yaml_ok"]
    assert lora["json"]  # its action reads an entry that looks like JSON as a table

    # Flags SGLang reads as JSON although argparse types them as plain strings (the help or the default says so),
    # and flags whose value is only the path of a JSON file.
    for flag in ("--json-model-override-args", "--model-loader-extra-config", "--hisparse-config"):
        assert _option(catalog, flag)["json"] and _option(catalog, flag)["type"] == "str", flag
    for flag in ("--quantization-param-path", "--constrained-json-whitespace-pattern", "--model-path"):
        assert not _option(catalog, flag)["json"], flag
    assert all(o["json"] for o in catalog["options"] if o["type"] in ("json", "json_list"))


def test_0_5_23_custom_actions() -> None:
    path = CATALOG_DIR / "sglang-0.5.23.json"
    catalog = _load(path)
    for flag in ("--disable-cuda-graph", "--enable-dp-attention"):
        o = _option(catalog, flag)
        assert o["action"] == "DeprecatedStoreTrueAction" and o["kind"] == "flag", flag
        assert o["deprecated"] and not o["yaml_ok"], flag
    mono = _option(catalog, "--monokernel-backend")
    # A DeprecatedStoreConstAction registered with nargs=None: it takes a value (`amd`).
    assert mono["action"] == "DeprecatedStoreConstAction" and mono["kind"] == "value"
    assert mono["choices"] == ["amd"] and mono["deprecated"]
    assert _option(catalog, "--context-length")["type"] == "human_int"
    assert _option(catalog, "--enable-tf32-matmul")["kind"] == "bool_optional"
    assert _option(catalog, "--cuda-graph-config")["json"]  # its converter parses JSON into a table
    assert not _option(catalog, "--speculative-adaptive-config")["json"]  # "Path to a JSON config file"


# --- the dump tool's helpers, without sglang -------------------------------------------------------


@pytest.fixture(scope="module")
def dump_tool():
    return load_module("dump_sglang_catalog", DUMP_TOOL)


def human_readable_int(text: str) -> int:  # named like SGLang's converter
    return int(text)


class DeprecatedStoreTrueAction(argparse.Action):
    def __init__(self, option_strings, dest, nargs=0, default=False, **kwargs):
        super().__init__(option_strings, dest, nargs=nargs, default=default, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, True)


def _synthetic_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--tp-size", "--tensor-parallel-size", type=int, default=1, help="TP.\n\nMore.")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction)
    p.add_argument("--bs", type=int, nargs="+")
    p.add_argument("--ckpt", nargs="?", const="x")
    p.add_argument("--kwargs", type=json.loads, default="{}")
    p.add_argument("--ctx", type=human_readable_int)
    p.add_argument("--choice", choices={"b", "a"})
    p.add_argument("--old", action=DeprecatedStoreTrueAction, help="Old thing.")
    p.add_argument("--older", action="store_true", help="(Deprecated, use --new) Old.")
    p.add_argument("--fine", action="store_true", help="Replaces the deprecated --older.")
    p.add_argument("--note", action="store_true", help="Note: --note is deprecated now.")
    p.add_argument("--tag", action="append")
    p.add_argument("--raw")
    return p


def test_dump_tool_json_detection(dump_tool) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kwargs", type=json.loads)
    p.add_argument("--override", default="{}")
    p.add_argument("--extra", help="A dictionary in JSON string format for the loader.")
    p.add_argument("--events", help="Config in json format for publishing.")
    p.add_argument("--file", help="Path to a JSON config file.")
    p.add_argument("--pattern", help="Regex allowed in JSON constrained output.")
    p.add_argument("--ctx", type=human_readable_int)
    p.add_argument("--flag", action="store_true", help="Enforce JSON string format.")
    found = {a.option_strings[0]: dump_tool._takes_json(a, dump_tool._kind(a)) for a in p._actions[1:]}
    assert found == {
        "--kwargs": True,
        "--override": True,
        "--extra": True,
        "--events": True,
        "--file": False,
        "--pattern": False,
        "--ctx": False,
        "--flag": False,
    }


def test_dump_tool_classification(dump_tool) -> None:
    actions = {a.option_strings[0]: a for a in _synthetic_parser()._actions}
    kind = {f: dump_tool._kind(a) for f, a in actions.items()}
    assert kind["--tp-size"] == "value"
    assert kind["--trust-remote-code"] == "flag"
    assert kind["--tf32"] == "bool_optional"
    assert kind["--bs"] == "list"
    assert kind["--ckpt"] == "optional_value"
    assert kind["--old"] == "flag"
    assert kind["--tag"] == "list"

    def type_of(flag: str):
        return dump_tool._type_name(actions[flag], kind[flag])

    assert type_of("--tp-size") == "int"
    assert type_of("--trust-remote-code") is None
    assert type_of("--kwargs") == "json"
    assert type_of("--ctx") == "human_int"
    assert type_of("--raw") == "str"  # no converter, but it takes a value

    assert dump_tool._action_name(actions["--tp-size"]) == "store"
    assert dump_tool._action_name(actions["--tf32"]) == "boolean_optional"
    assert dump_tool._action_name(actions["--old"]) == "DeprecatedStoreTrueAction"
    assert dump_tool._action_name(actions["--tag"]) == "append"

    deprecated = {f for f, a in actions.items() if dump_tool._deprecated(a)}
    assert deprecated == {"--old", "--older", "--note"}

    assert dump_tool._help_first_line(actions["--tp-size"]) == "TP."
    assert dump_tool._help_first_line(actions["--raw"]) == ""
    assert dump_tool._jsonable(actions["--choice"].choices) == ["a", "b"]
    assert dump_tool._jsonable((1, float("inf"), object)) == [1, "inf", str(object)]


class _FakeMerger:
    """Mimics SGLang's ConfigArgumentMerger._convert_config_to_args for two kinds of refusal."""

    def __init__(self, unsupported: set[str], store_true: set[str]) -> None:
        self.unsupported = unsupported
        self.store_true = store_true

    def _convert_config_to_args(self, config: dict) -> list[str]:
        args: list[str] = []
        for key, value in config.items():
            norm = key.replace("-", "_")
            if norm in self.unsupported:
                raise ValueError(f"Unsupported config option '{norm}' with action 'X'")
            if isinstance(value, bool):
                if norm in self.store_true:
                    args += [f"--{key}"] if value else []
                else:
                    args += [f"--{key}", str(value).lower()]
            elif isinstance(value, list):
                args += [f"--{key}", *map(str, value)]
            else:
                args += [f"--{key}", str(value)]
        return args


def test_dump_tool_yaml_ok(dump_tool) -> None:
    actions = {a.option_strings[0]: a for a in _synthetic_parser()._actions}
    merger = _FakeMerger(unsupported={"tf32"}, store_true={"trust_remote_code"})

    def ok(flag: str) -> bool:
        return dump_tool._yaml_ok(merger, actions[flag], dump_tool._kind(actions[flag]))

    assert ok("--tp-size") and ok("--bs") and ok("--trust-remote-code")
    assert not ok("--tf32")  # refused outright
    assert not ok("--old")  # a flag the merger turns into "--old true"


# --- smg, SGLang's model gateway ---------------------------------------------------------------


def test_smg_catalog_matches_real_parser(tmp_path: Path) -> None:
    """compiler/catalogs/smg-<V>.json is what the dump tool makes from the real smg (the `test` extra installs
    it, at the version catalog.SMG_VERSION names)."""
    import importlib.metadata
    import subprocess
    import sys

    from sglangc.catalog import SMG_VERSION

    assert importlib.metadata.version("smg") == SMG_VERSION
    out = tmp_path / "smg.json"
    subprocess.run([sys.executable, str(DUMP_TOOL), "--smg", "-o", str(out)], check=True, timeout=120)
    shipped = CATALOG_DIR / f"smg-{SMG_VERSION}.json"
    assert out.read_bytes() == shipped.read_bytes()
    catalog = _load(shipped)
    assert set(catalog) == {"format", "smg_version", "options"}
    assert "cache_aware" in _option(catalog, "--policy")["choices"]
    assert _option(catalog, "--api-key")["kind"] == "value"
