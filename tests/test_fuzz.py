"""Property tests: whatever the input, `sglangc check` ends in exit 0 or 1 with one finding per line — never a traceback.

(a) random bytes, random text and random TOML-ish token soup;
(b) random configs from a strategy that mostly follows the schema (hostile names, random numbers, real and junk
    SGLang flags, random depends_on, random types in random places). When such a config passes, `plan --format json`
    works and every argv survives `shlex.join` → `shlex.split`.

150 examples per test under CI=true, 50 elsewhere; set SGLANGC_FUZZ_EXAMPLES for a longer run.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import typing as t
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sglangc.catalog import load_catalog
from support import IN_CI
from support.cli import run_cli

EXAMPLES = int(os.environ.get("SGLANGC_FUZZ_EXAMPLES") or (150 if IN_CI else 50))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
CATALOG = load_catalog("0.5.23")
assert CATALOG is not None
FLAGS = sorted(CATALOG.options)
PARSERS = sorted({*CATALOG.reasoning_parsers, *CATALOG.tool_call_parsers})
NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "fuzz config.toml"


def check_file(path: Path) -> t.Any:
    result = run_cli("check", str(path))
    assert result.exit_code in (0, 1), (result.exit_code, result.stdout, result.stderr)
    for line in result.stderr.splitlines():
        assert line.startswith(f"{path}:"), line
    assert "Traceback" not in result.stderr
    as_json = run_cli("check", "--format", "json", str(path))  # the same findings, located, as one document
    assert as_json.exit_code == result.exit_code and as_json.stderr == ""
    document = json.loads(as_json.stdout)
    assert len(document["findings"]) == len(result.stderr.splitlines())
    assert all(f["line"] is None or f["line"] >= 1 for f in document["findings"])
    return result


# --------------------------------------------------------------------------- a tiny TOML writer


class Raw(str):
    """TOML text written as it is: dates and times, which Python values here do not model."""


def toml_string(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v: t.Any) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def dumps(doc: dict[str, t.Any]) -> str:
    """Top-level keys as `key = value` lines; tables inline (one line each)."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


def test_writer_round_trips() -> None:
    from sglangc.load import tomllib

    doc = {"a": 'x"\\\n\u0085\u2028é', "b": [1, 2.5, True, "s"], "c": {"": {"d": -0.0}}, "e": float("inf")}
    assert tomllib.loads(dumps(doc)) == doc


# --------------------------------------------------------------------------- strategies

INT64 = st.integers(-(2**63), 2**63 - 1)
SCALARS = st.one_of(
    st.booleans(),
    INT64,
    st.integers(-3, 40),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from([Raw("1979-05-27"), Raw("07:32:00"), Raw("1979-05-27T07:32:00Z"), Raw("1979-05-27T07:32:00")]),
)
ANY = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
HOSTILE = st.sampled_from(
    ["", " ", "a b", "a:b", "a/b", "A", "-a", "ä", "$(id)", "a\nb", "a\u0085", "a\u2028", "x" * 41]
)
NAMES = st.one_of(
    st.sampled_from(["a", "b", "c", "glm47", "x-1", "m_2", "0"]),
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True),
    HOSTILE,
    st.text(max_size=8),
)


WHOLE_FLOATS = st.integers(0, 8).map(float)  # 2.0 is a float in TOML, whatever JSON Schema thinks
PORTS = st.one_of(st.integers(29998, 30004), st.integers(-1, 65536), INT64, st.integers(30000, 30002).map(float))
GPU_IDS = st.one_of(
    st.just("auto"),
    st.lists(st.integers(-1, 9), max_size=9),
    st.lists(st.integers(0, 3), max_size=4),
    st.lists(st.one_of(st.integers(0, 8), WHOLE_FLOATS), min_size=1, max_size=2),
)
SIZES = st.one_of(st.integers(1, 4), st.integers(-1, 2000), WHOLE_FLOATS)
FRACTIONS = st.one_of(st.floats(0.05, 0.6), st.floats(-0.5, 1.5), st.floats(allow_nan=True, allow_infinity=True))
HOSTS = st.one_of(st.sampled_from(["127.0.0.1", "0.0.0.0", "localhost", "10.0.0.1", "::", ""]), st.text(max_size=10))
PARSER = st.one_of(st.sampled_from(PARSERS), st.text(max_size=8))
ENV_KEYS = st.one_of(
    st.sampled_from(["HF_HOME", "HF_TOKEN", "CUDA_VISIBLE_DEVICES", "A", "_x", "1A", "A-B"]), st.text(max_size=8)
)
ENV_VALUES = st.one_of(st.text(max_size=12), st.integers(), st.floats(), st.booleans())
FLAG_KEYS = st.one_of(
    st.sampled_from(FLAGS),
    st.sampled_from(["tp", "--port", "context_length", "", "-x", "enable-metric", "no-such-flag"]),
    st.text(max_size=10),
)
FLAG_VALUES = st.one_of(
    st.booleans(),
    st.integers(-2, 9),
    st.floats(-1, 2),
    st.sampled_from(["auto", "128k", "{}", "[]", '{"a": 1}', "x"]),
    st.lists(st.one_of(st.integers(0, 8), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.booleans(), st.text(max_size=4)), max_size=2),
    ANY,
)


LEGAL_TEXT = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\u2028\u2029"), min_size=1, max_size=16
)
SKIP_DESTS = {"pp_size", "attn_dp_size", "enable_dp_attention"}  # change the GPU count; covered by the case folders


def _flag_values(option: t.Any) -> st.SearchStrategy[t.Any] | None:
    """Values the catalog accepts for one option, or None to leave the option out of the clean configs."""
    from sglangc.catalog import OWNED

    if option.dest in OWNED or option.dest in SKIP_DESTS:
        return None
    choices = [c for c in option.choices or () if isinstance(c, (str, int)) and not isinstance(c, bool)]
    if option.kind in ("flag", "bool_optional"):
        return st.booleans()
    one = {
        "int": st.integers(1, 100_000),
        "float": st.floats(0, 1),
        "human_int": st.one_of(st.integers(1, 1 << 20), st.just("128k")),
        "str": st.sampled_from(choices) if choices else LEGAL_TEXT,
        "json": st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.booleans(), LEGAL_TEXT), max_size=2),
        "json_list": st.lists(st.integers(0, 9), max_size=3),
    }.get(option.type or "")
    if one is None:
        return None
    if option.kind == "list":
        return st.lists(one, min_size=1, max_size=3)
    return one if option.kind == "value" else None


FLAG_STRATEGIES = {name: v for name, o in sorted(CATALOG.options.items()) if (v := _flag_values(o)) is not None}
CLEAN_SERVER_ARGS = st.lists(st.sampled_from(sorted(FLAG_STRATEGIES)), unique=True, max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: FLAG_STRATEGIES[k] for k in keys})
)
VALID_NAMES = st.one_of(
    st.sampled_from(["a", "b", "c", "glm47", "x-1", "m_2", "0"]),
    st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True),
)

# Field by field: what a mutation may put there (right type or not).
INSTANCE_FIELDS: dict[str, st.SearchStrategy[t.Any]] = {
    "model_path": st.one_of(LEGAL_TEXT, st.text(max_size=16), ANY),
    "enable": st.one_of(st.booleans(), ANY),
    "served_model_name": st.one_of(st.text(max_size=12), ANY),
    "host": HOSTS,
    "port": PORTS,
    "gpu_ids": GPU_IDS,
    "tp_size": SIZES,
    "dp_size": SIZES,
    "reasoning_parser": PARSER,
    "tool_call_parser": PARSER,
    "trust_remote_code": st.one_of(st.booleans(), ANY),
    "mem_fraction_static": FRACTIONS,
    "api_key_env": st.one_of(st.sampled_from(["SGLANG_API_KEY", "K", "1X"]), st.text(max_size=6)),
    "depends_on": st.lists(NAMES, max_size=3),
    "env": st.dictionaries(ENV_KEYS, ENV_VALUES, max_size=3),
    "server_args": st.dictionaries(FLAG_KEYS, FLAG_VALUES, max_size=4),
    "tp_szie": st.integers(1, 2),
}
MASTER_FIELDS: dict[str, st.SearchStrategy[t.Any]] = {
    "gpu_count": st.one_of(st.integers(1, 8), st.integers(-1, 2000), WHOLE_FLOATS, ANY),
    "base_port": PORTS,
    "enable": st.one_of(st.booleans(), ANY),
    "log_dir": st.one_of(st.just("/tmp/logs"), st.text(max_size=8)),
    "gpu_cont": st.integers(1, 8),
}


@st.composite
def clean_config(draw: st.DrawFn) -> dict[str, t.Any]:
    """A config that mostly passes: GPUs, ports, dependencies and flags consistent, strings hostile but legal."""
    names = draw(st.lists(VALID_NAMES, min_size=1, max_size=4, unique=True))
    explicit = draw(st.booleans())  # explicit GPU ids (one each, maybe shared) or "auto" on 8 GPUs
    doc: dict[str, t.Any] = {"version": 1, "sglang_version": "0.5.23", "master": {"pixi_environment": "latest"}}
    if not explicit:
        doc["master"]["gpu_count"] = 8
    if draw(st.booleans()):
        doc["master"]["base_port"] = draw(st.integers(1024, 60000))
    doc["instances"] = {}
    for index, name in enumerate(names):
        inst: dict[str, t.Any] = {"model_path": draw(st.one_of(st.just(f"/llm-models/{name}"), LEGAL_TEXT))}
        if explicit:
            gpu = index if draw(st.integers(0, 3)) != 0 else 0
            inst["gpu_ids"] = [gpu]
            inst["mem_fraction_static"] = draw(st.sampled_from([0.2, 0.3, 0.45]))
        else:
            inst["tp_size"] = draw(st.integers(1, 2))
            if draw(st.booleans()):
                inst["gpu_ids"] = "auto"
        if draw(st.integers(0, 3)) == 0:
            inst["port"] = 40000 + index
        if draw(st.integers(0, 4)) == 0:
            inst["enable"] = draw(st.booleans())
        earlier = names[:index]
        if earlier and bool(draw(st.booleans())):
            inst["depends_on"] = draw(st.lists(st.sampled_from(earlier), unique=True, max_size=2))
        if draw(st.booleans()):
            inst["served_model_name"] = draw(LEGAL_TEXT)
        if draw(st.integers(0, 3)) == 0:
            inst["host"] = draw(st.sampled_from(["0.0.0.0", "localhost", f"10.0.0.{index}"]))
        if draw(st.integers(0, 3)) == 0:
            inst["reasoning_parser"] = draw(st.sampled_from(CATALOG.reasoning_parsers))
        if draw(st.integers(0, 3)) == 0:
            inst["tool_call_parser"] = draw(st.sampled_from(CATALOG.tool_call_parsers))
        if draw(st.integers(0, 3)) == 0:
            inst["api_key_env"] = "SGLANG_API_KEY"
        if draw(st.booleans()):
            inst["env"] = draw(
                st.dictionaries(
                    st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True).filter(
                        lambda k: k != "CUDA_VISIBLE_DEVICES"
                    ),
                    st.one_of(LEGAL_TEXT, st.integers(), st.booleans()),
                    max_size=3,
                )
            )
        inst["server_args"] = draw(CLEAN_SERVER_ARGS)
        doc["instances"][name] = inst
    return doc


@st.composite
def configs(draw: st.DrawFn) -> dict[str, t.Any]:
    """A clean config with 0 to 3 mutations: a field set to anything, a key dropped or added, a name made hostile."""
    doc = draw(clean_config())
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        where = draw(st.sampled_from(["instance", "instance", "instance", "master", "top", "name"]))
        names = sorted(doc["instances"])
        if where == "instance":
            inst = doc["instances"][draw(st.sampled_from(names))]
            if not isinstance(inst, dict):
                continue
            key = draw(st.sampled_from(sorted(INSTANCE_FIELDS)))
            if key in inst and draw(st.integers(0, 3)) == 0:
                del inst[key]
            elif key == "depends_on":
                inst[key] = draw(st.lists(st.one_of(st.sampled_from(names), NAMES), max_size=3))
            else:
                inst[key] = draw(INSTANCE_FIELDS[key])
        elif where == "master":
            key = draw(st.sampled_from(sorted(MASTER_FIELDS)))
            doc["master"][key] = draw(MASTER_FIELDS[key])
        elif where == "top":
            key = draw(st.sampled_from(["version", "sglang_version", "master", "instances", "bundle", "verison"]))
            if key in doc and draw(st.booleans()):
                del doc[key]
            else:
                doc[key] = draw(st.one_of(st.sampled_from([1, 2, "0.5.23", "0.5.10.post1", "9.9"]), ANY))
            if not isinstance(doc.get("master"), dict):
                doc["master"] = {}
            if not isinstance(doc.get("instances"), dict) or not doc["instances"]:
                break  # nothing left to mutate by name
        else:
            old = draw(st.sampled_from(names))
            doc["instances"][draw(NAMES)] = doc["instances"].pop(old)
    return doc


TOKENS = st.sampled_from(
    [
        "[",
        "]",
        "[[",
        "]]",
        "{",
        "}",
        "=",
        ",",
        ".",
        '"',
        "'",
        '"""',
        "\n",
        " ",
        "#",
        "\\",
        "instances",
        "master",
        "a",
        "model_path",
        "gpu_ids",
        "port",
        "version",
        "1",
        "-1",
        "1.5",
        "true",
        "nan",
        "inf",
        '"auto"',
        '"x"',
        "1979-05-27",
        "server_args",
        "depends_on",
        "\t",
        "\u0085",
        "\u2028",
        "\x00",
    ]
)


# --------------------------------------------------------------------------- (a) junk input


@FUZZ
@given(data=st.binary(max_size=3000))
def test_random_bytes(config_path: Path, data: bytes) -> None:
    config_path.write_bytes(data)
    check_file(config_path)


def with_hostile_shapes(test: t.Callable[..., None]) -> t.Callable[..., None]:
    """The configs under the size limit that once took minutes or gigabytes (tests/security/hostile_configs.py),
    as explicit examples: they end, with a finding, like any other text."""
    from security.hostile_configs import SHAPES

    for text, _words in SHAPES.values():
        test = example(text=text)(test)
    return test


@FUZZ
@given(text=st.text(max_size=2000))
@with_hostile_shapes
def test_random_text(config_path: Path, text: str) -> None:
    config_path.write_bytes(text.encode("utf-8", "surrogatepass"))
    check_file(config_path)


@FUZZ
@given(tokens=st.lists(TOKENS, max_size=80))
def test_toml_token_soup(config_path: Path, tokens: list[str]) -> None:
    config_path.write_text("".join(tokens), encoding="utf-8")
    check_file(config_path)


# --------------------------------------------------------------------------- (b) near-valid configs


@FUZZ
@given(doc=configs())
def test_random_configs(config_path: Path, doc: dict[str, t.Any]) -> None:
    config_path.write_text(dumps(doc), encoding="utf-8")
    result = check_file(config_path)
    if result.exit_code != 0:
        assert result.stderr, "exit 1 without a finding"
        return
    plan = run_cli("plan", "--format", "json", str(config_path))
    assert plan.exit_code == 0, plan.stderr
    planned = json.loads(plan.stdout)
    options = load_catalog(planned["sglang_version"]).options
    instances = planned["instances"]
    assert [i["name"] for i in instances] == sorted(doc["instances"])
    for inst in instances:
        assert {"name", "enabled", "gpu_ids", "host", "port", "wave", "depends_on", "argv"} <= set(inst)
        argv = inst["argv"]
        assert all(isinstance(word, str) for word in argv)
        assert shlex.split(shlex.join(argv)) == argv
        for word in argv:  # argparse reads a word that starts with '-' as a flag unless it is a negative number
            assert not word.startswith("-") or word[2:] in options or NEGATIVE_NUMBER.match(word), word
        assert argv[:2] == ["--model-path", doc["instances"][inst["name"]]["model_path"]]
        if inst["enabled"]:
            assert inst["wave"] >= 1
            assert len(set(inst["gpu_ids"])) == len(inst["gpu_ids"]) > 0


@FUZZ
@given(doc=configs())
def test_check_is_deterministic(config_path: Path, doc: dict[str, t.Any]) -> None:
    config_path.write_text(dumps(doc), encoding="utf-8")
    first = run_cli("check", str(config_path))
    second = run_cli("check", str(config_path))
    assert (first.exit_code, first.stdout, first.stderr) == (second.exit_code, second.stdout, second.stderr)
