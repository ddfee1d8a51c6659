"""SGLang flag catalogs (packaged JSON per version, dumped from SGLang's own parser) and the checks on them."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import os
import re
import typing as t

from sglangc import catalogs
from sglangc.errors import MAX_FINDINGS, Finding, key_path, show
from sglangc.model import Instance

_CATALOGS = os.path.dirname(catalogs.__file__)  # plain files beside __init__.py: importlib.resources is slow to import

# Flags that a typed field writes; `server_args` may not set them. Keyed by flag name, because the parser's
# dest differs between versions (0.5.10 stores --tp-size as `tensor_parallel_size`); aliases share an option.
OWNED = {
    "model-path": "model_path",
    "served-model-name": "served_model_name",
    "host": "host",
    "port": "port",
    "tp-size": "tp_size",
    "dp-size": "dp_size",
    "reasoning-parser": "reasoning_parser",
    "tool-call-parser": "tool_call_parser",
    "trust-remote-code": "trust_remote_code",
    "mem-fraction-static": "mem_fraction_static",
    "api-key": "api_key_env",
    "config": "api_key_env",
    "base-gpu-id": "gpu_ids",
    "gpu-id-step": "gpu_ids",
    "nnodes": "nnodes",
    "node-rank": "nnodes",  # each node's part: sglangc compile --node-rank K
    "dist-init-addr": "dist_init_addr",
}
SECRET_WORDS = frozenset({"key", "password", "passwd", "secret", "token", "credential", "credentials"})
# SGLang's human_readable_int (srt/utils/common.py, the same in every shipped version): after strip(), a number
# with a case-sensitive SI suffix (decimals allowed) or IEC suffix (whole numbers only), else what int() reads.
_HUMAN_INT = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)")
_SIZE_RULE = (
    "write an integer, or a number with a case-sensitive suffix: k, M, G, T (powers of 1000, decimals "
    'allowed: "128k" is 128000) or Ki, Mi, Gi, Ti (powers of 1024, whole numbers only: "128Ki" is 131072)'
)
_NEGATIVE_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")  # what argparse takes for a value, not a flag


@dataclasses.dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    dest: str
    kind: str  # flag | bool_optional | list | optional_value | value
    type: str | None
    choices: tuple[t.Any, ...] | None
    nargs: t.Any
    deprecated: bool
    help: str
    yaml_ok: bool = True  # SGLang's --config YAML can set it
    json: bool = False  # SGLang reads its value (each value, for a list) as JSON text: TOML tables/arrays fit

    @property
    def name(self) -> str:
        return self.flags[0][2:]

    @functools.cached_property  # asked for every flag of every instance
    def names(self) -> tuple[str, ...]:
        return tuple(f[2:] for f in self.flags)

    @functools.cached_property
    def owner(self) -> str | None:
        """The typed field that writes this flag, if one does."""
        return next((OWNED[n] for n in self.names if n in OWNED), None)

    def is_(self, name: str) -> bool:
        return name in self.names

    @functools.cached_property
    def secret(self) -> bool:
        """Whether it takes a secret: one string value, named for a key, password, token or secret
        (`api-key`, `admin-api-key`, `ssl-keyfile-password`; not `ssl-keyfile`, a path)."""
        return (
            self.kind == "value"
            and self.type in (None, "str")
            and any(n.rsplit("-", 1)[-1] in SECRET_WORDS for n in self.names)
        )


@dataclasses.dataclass(frozen=True)
class Catalog:
    version: str
    options: dict[str, Option]  # every option string, aliases included, without the leading "--"
    reasoning_parsers: tuple[str, ...]
    tool_call_parsers: tuple[str, ...]
    program: str = "SGLang"  # whose flags: SGLang's, or smg's (the model gateway)
    why: str = ""  # why a config is checked against this version: `sglang_version = "…"` or the environment's pin


def chosen_catalog(data: dict[str, t.Any]) -> Catalog | None:
    """The catalog a decoded config is checked against (None when its version has none), saying why."""
    version, master = data.get("sglang_version"), data.get("master")
    environment = master.get("pixi_environment", "default") if isinstance(master, dict) else "default"
    if isinstance(version, str):
        why = f"sglang_version = {show(version)}"
    else:
        environment = environment if isinstance(environment, str) else "default"
        version, why = default_version(environment), f"master.pixi_environment = {show(environment)}"
    catalog = load_catalog(version)
    return dataclasses.replace(catalog, why=why) if catalog is not None else None


@dataclasses.dataclass(frozen=True)
class FlagCheck:
    """What one instance's flags turned into: argv words for `server_args`, findings, and the parallel layout they
    give as SGLang resolves it (`replicas`: data-parallel copies, each tp × pp GPUs; `attention_dp`: the attention
    data-parallel ranks inside one TP group). `layout_known` is false when a flag of the layout was refused: the
    GPU count of the instance is then not checked (its finding says what to fix)."""

    argv: tuple[str, ...]
    findings: tuple[Finding, ...]
    pp_size: int = 1
    replicas: int = 1
    attention_dp: int = 1
    layout_known: bool = True

    @property
    def dp_attention(self) -> bool:
        return self.attention_dp > 1


@functools.lru_cache(maxsize=1)
def template_versions() -> dict[str, str]:
    """The SGLang version each environment of the shipped Pixi template pins (`sglang = "==X"`)."""
    from sglangc.pixitemplate import Template

    template = Template.load(None)
    versions = {}
    for name in template.environments():
        pin = template.environment(name).pypi.get("sglang")
        pin = pin.get("version") if isinstance(pin, dict) else pin
        if isinstance(pin, str) and pin.startswith("=="):
            versions[name] = pin[2:]
    return versions


def template_has(environment: str, package: str) -> bool | None:
    """Whether the shipped Pixi template's environment installs a PyPI package; None for an environment the
    template does not have (a bundle made otherwise)."""
    from sglangc.pixitemplate import Template

    template = Template.load(None)
    if environment not in template.environments():
        return None
    return package in template.environment(environment).pypi


@functools.lru_cache(maxsize=1)
def template_environments() -> tuple[str, ...]:
    """The environments of the shipped Pixi template (what `sglangc bundle -e` takes)."""
    from sglangc.pixitemplate import Template

    return tuple(Template.load(None).environments())


def default_version(environment: str) -> str:
    """`sglang_version` when a config sets none: what the template pins for its environment, else for `default`."""
    versions = template_versions()
    return versions.get(environment) or versions["default"]


def shipped_versions() -> list[str]:
    names = os.listdir(_CATALOGS)
    found = [n[len("sglang-") : -len(".json")] for n in names if n.startswith("sglang-") and n.endswith(".json")]
    return sorted(found, key=_version_key)


@functools.cache
def load_catalog(version: str) -> Catalog | None:
    """The catalog of one SGLang version, or None when none is shipped for it."""
    if version not in shipped_versions():
        return None
    return _read_catalog(f"sglang-{version}.json")


SMG_VERSION = "1.13.0"  # the smg whose `smg launch` flags are shipped (compiler/catalogs/smg-<version>.json)


@functools.cache
def load_smg_catalog() -> Catalog:
    """The flags of `smg launch`, SGLang's model gateway, dumped from smg's own parser."""
    return _read_catalog(f"smg-{SMG_VERSION}.json")


def _read_catalog(filename: str) -> Catalog:
    with open(os.path.join(_CATALOGS, filename), encoding="utf-8") as f:
        raw = json.load(f)
    options: dict[str, Option] = {}
    for entry in raw["options"]:
        option = Option(
            flags=tuple(f for f in entry["flags"] if f.startswith("--")),
            dest=entry["dest"],
            kind=entry["kind"],
            type=entry["type"],
            choices=tuple(entry["choices"]) if entry["choices"] is not None else None,
            nargs=entry["nargs"],
            deprecated=entry["deprecated"],
            help=entry["help"],
            yaml_ok=entry.get("yaml_ok", True),
            json=entry.get("json", False),
        )
        for flag in option.flags:
            options[flag[2:]] = option
    if "smg_version" in raw:
        return Catalog(
            version=raw["smg_version"], options=options, reasoning_parsers=(), tool_call_parsers=(), program="smg"
        )
    return Catalog(
        version=raw["sglang_version"],
        options=options,
        reasoning_parsers=tuple(raw["reasoning_parsers"]),
        tool_call_parsers=tuple(raw["tool_call_parsers"]),
    )


def check_parsers(inst: Instance, catalog: Catalog, config: str) -> list[Finding]:
    findings = []
    for field, choices, other, other_kind in (
        ("reasoning_parser", catalog.reasoning_parsers, catalog.tool_call_parsers, "tool-call"),
        ("tool_call_parser", catalog.tool_call_parsers, catalog.reasoning_parsers, "reasoning"),
    ):
        value = getattr(inst, field)
        if value is None or value in choices:
            continue
        kind = field.replace("_parser", "").replace("_", "-")
        msg = f"{show(value)} is not a {kind} parser of SGLang {catalog.version}"
        if value in other:
            msg += f" (it is a {other_kind} parser)"
        close = difflib.get_close_matches(value, choices, n=1)
        msg += f"; did you mean {show(close[0])}?" if close else "."
        findings.append(
            Finding(config, key_path("instances", inst.name, field), f"{msg} Choices: {', '.join(choices)}")
        )
    return findings


def check_server_args(inst: Instance, catalog: Catalog, config: str) -> FlagCheck:
    """Check every `server_args` entry (and every entry of its `sglang_config` YAML) against the catalog and build
    their argv words."""
    argv: list[str] = []
    findings: list[Finding] = []
    layout: dict[str, t.Any] = {}  # the layout flags SGLang will get, by their name in _LAYOUT_FLAGS
    given: dict[tuple[str, ...], tuple[str, str]] = {}  # option → the first (source, key) that set it
    entries = [("server_args", k, v) for k, v in inst.server_args]
    entries += [("sglang_config", k, v) for k, v in inst.sglang_config_args]
    for source, key, value in entries:
        if len(findings) > MAX_FINDINGS:
            break  # checked no further: each unknown flag costs a did-you-mean search
        where = key_path("instances", inst.name, source, key)

        def add(message: str, severity: t.Literal["error", "warning"] = "error") -> None:
            findings.append(Finding(config, where, message, severity))  # noqa: B023 - used at once

        option = catalog.options.get(key)
        if option is None:
            add(_not_found(key, catalog))
            continue
        shapes = _layout_name(option)
        if option.is_("config"):
            add(
                '--config is SGLang\'s own YAML config: name it in sglang_config = "FILE.yaml" (read at compile '
                "time, its keys checked and passed as flags); the API key reaches SGLang through the field api_key_env"
            )
            continue
        if option.owner:
            add(f"--{key} is set by the field `{option.owner}`; use that instead")
            continue
        first = given.setdefault(option.flags, (source, key))
        if first != (source, key):
            named = (
                f"{show(first[1])} and {show(key)}"
                if first[0] == source
                else f"{first[0]}.{first[1]} and {source}.{key}"
            )
            add(f"{named} both set --{option.name} (SGLang would keep whichever comes last, silently): give it once")
            continue
        if option.secret:
            add(
                f"--{key} takes a secret, which would sit in the launch script, `plan` and the server's command "
                f"line: name the environment variable that holds it instead, server_args_env = "
                f'{{ {key} = "{_env_name(key)}" }}'
            )
            continue
        words, problem = _words(option, key, value)
        if problem:
            add(problem)
            continue
        if (option.is_("pp-size") or option.is_("attn-dp-size")) and value < 1:
            add(f"must be at least 1, not {value}")
            continue
        if option.deprecated:
            add(f"--{key} is deprecated in SGLang {catalog.version}: {option.help or 'see its docs'}", "warning")
        argv.extend(words)
        if shapes:
            layout[shapes] = value
    if len(layout) < sum(1 for _, k, _ in entries if (o := catalog.options.get(k)) and _layout_name(o)):
        return FlagCheck(tuple(argv), tuple(findings), layout_known=False)  # a refused value: its finding says it
    return _layout(inst, catalog, config, tuple(argv), findings, layout)


# The flags of server_args that shape the parallel layout (primary names; aliases share their option).
_LAYOUT_FLAGS = frozenset({"pp-size", "attn-dp-size", "enable-dp-attention"})


def _layout_name(option: Option) -> str | None:
    return next((n for n in option.names if n in _LAYOUT_FLAGS), None)


def _layout(
    inst: Instance,
    catalog: Catalog,
    config: str,
    argv: tuple[str, ...],
    findings: list[Finding],
    flags: dict[str, t.Any],
) -> FlagCheck:
    """The parallel layout as SGLang `catalog.version` resolves it at start-up, and the layouts it refuses there.

    With `attn-dp-size` (0.5.2x): the deprecated `enable-dp-attention` turns dp_size N into attention-DP size N
    and one replica; attention DP beside data-parallel replicas is refused; tp_size must be divisible by the
    attention-DP size (srt/arg_groups/parallel_hook.py). Without it (0.5.10): `enable-dp-attention` with
    dp_size 1 is off; with dp_size N the N ranks live inside the TP group, and tp_size % N must be 0
    (ServerArgs._handle_data_parallelism). Expert parallelism adds no GPUs and no check at start-up."""
    pp = int(flags.get("pp-size", 1))
    tp, dp = inst.tp_size, inst.dp_size
    enabled = flags.get("enable-dp-attention") is True
    version = catalog.version
    prefix = key_path("instances", inst.name)
    problems = []
    if "attn-dp-size" in catalog.options:
        attn = int(flags.get("attn-dp-size", 1))
        where = f"{prefix}.server_args.attn-dp-size"
        named = f"attn-dp-size {attn}"
        if enabled and attn == 1:
            attn, dp = dp, 1
            where, named = f"{prefix}.dp_size", f"dp_size {attn} with enable-dp-attention (attention-DP size {attn})"
        if attn > 1 and dp > 1:
            problems.append(
                (
                    where,
                    f"dp_size {dp} with attn-dp-size {attn}: SGLang {version} refuses data-parallel replicas "
                    "combined with attention data parallelism at start-up; use one of them",
                )
            )
    else:
        attn = dp if enabled and dp > 1 else 1
        dp = 1 if attn > 1 else dp
        where, named = f"{prefix}.dp_size", f"dp_size {attn} with enable-dp-attention"
    if attn > 1 and tp % attn:
        problems.append(
            (
                where,
                f"{named} needs tp_size divisible by {attn}, not {tp}: SGLang {version} runs the {attn} attention "
                f"data-parallel ranks inside the TP group of tp_size GPUs and refuses this layout at start-up",
            )
        )
    findings += [Finding(config, k, m) for k, m in problems]
    return FlagCheck(argv, tuple(findings), pp, dp, attn, layout_known=not problems)


# `smg launch` flags that a [gateway] field (or sglangc itself) writes, and those sglangc cannot run with.
GATEWAY_OWNED = {
    "host": "gateway.host",
    "port": "gateway.port",
    "policy": "gateway.policy",
    "api-key": "gateway.api_key_env",
    "control-plane-api-keys": "gateway.control_plane_api_key_env",
    "worker-startup-timeout-secs": "master.ready_timeout",
}
GATEWAY_REFUSED = {
    "worker-urls": "sglangc gives smg every enabled instance and replica as a worker",
    "enable-igw": "in IGW mode smg ignores the worker list sglangc gives it",
    "service-discovery": "sglangc gives smg its workers; service discovery would replace them",
    "pd-disaggregation": "prefill/decode disaggregation is not supported by sglangc",
    "epd-disaggregation": "encode/prefill/decode disaggregation is not supported by sglangc",
    "prefill": "prefill/decode disaggregation is not supported by sglangc",
    "decode": "prefill/decode disaggregation is not supported by sglangc",
    "encode": "encode/prefill/decode disaggregation is not supported by sglangc",
    "tenant-api-key": "it takes secrets, which would sit on the gateway's command line",
}


def check_gateway_args(args: tuple[tuple[str, t.Any], ...], catalog: Catalog, config: str) -> FlagCheck:
    """Check `gateway.server_args` against smg's catalog (like `check_server_args`) and build its argv words."""
    argv: list[str] = []
    findings: list[Finding] = []
    for key, value in args:
        if len(findings) > MAX_FINDINGS:
            break
        where = key_path("gateway", "server_args", key)
        option = catalog.options.get(key)
        owner = next((GATEWAY_OWNED[n] for n in option.names if n in GATEWAY_OWNED), None) if option else None
        refused = next((GATEWAY_REFUSED[n] for n in option.names if n in GATEWAY_REFUSED), None) if option else None
        words, problem = _words(option, key, value) if option else ([], _not_found(key, catalog))
        if option and owner:
            problem = f"--{key} is set by `{owner}`; use that instead"
        elif option and (refused or option.secret):
            problem = f"--{key} cannot be used: {refused or 'it takes a secret, which would sit on a command line'}"
        if problem:
            findings.append(Finding(config, where, problem))
            continue
        if option and option.deprecated:
            findings.append(Finding(config, where, f"--{key} is deprecated in smg {catalog.version}", "warning"))
        argv.extend(words)
    return FlagCheck(tuple(argv), tuple(findings))


def check_server_args_env(inst: Instance, catalog: Catalog, config: str) -> list[Finding]:
    """`server_args_env`: each a known flag that takes one value SGLang's --config file can carry, not also in
    `server_args`, not owned by a field."""
    findings = []
    flags = (*inst.server_args, *inst.sglang_config_args)
    given = {name for key, _ in flags if (o := catalog.options.get(key)) for name in o.names}
    for key, _variable in inst.server_args_env:
        where = key_path("instances", inst.name, "server_args_env", key)
        option = catalog.options.get(key)
        if option is None:
            message = _not_found(key, catalog)
        elif option.owner:
            message = f"--{key} is set by the field `{option.owner}`; use that instead"
        elif option.kind != "value" or not option.yaml_ok:
            message = f"--{key} is not a flag with one value that SGLang's --config file can carry"
        elif key in given or any(n in given for n in option.names):
            message = f"--{key} is also given in server_args: give it once"
        else:
            continue
        findings.append(Finding(config, where, message))
    return findings


def _env_name(flag: str) -> str:
    return "SGLANG_" + flag.upper().replace("-", "_")


def _not_found(key: str, catalog: Catalog) -> str:
    if not key:
        return "empty flag name"
    if key.startswith("-"):
        return f"write flags without the leading dashes: {show(key.lstrip('-'))}"
    if "_" in key and key.replace("_", "-") in catalog.options:
        return f"SGLang flags use dashes: write {show(key.replace('_', '-'))}"
    elsewhere = _in_other_versions(key, catalog)
    matches = sorted(name for name in catalog.options if name.startswith(key))
    distinct = {catalog.options[name].flags for name in matches}
    prefixed = matches if len(distinct) > 1 else matches[:1]
    if elsewhere:  # the exact name of another version: that, not a look-alike, is what the config means
        return f"{elsewhere}; write one of: {', '.join(prefixed[:8])}" if prefixed else elsewhere
    if len(prefixed) == 1:
        owner = catalog.options[prefixed[0]].owner
        if owner:
            return f"abbreviated flag for --{prefixed[0]}, which is set by the field `{owner}`; use that instead"
        return f"abbreviated flag: write the full name {show(prefixed[0])}"
    if prefixed:
        return f"abbreviated flag; write one of the full names: {', '.join(prefixed[:8])}"
    close = difflib.get_close_matches(key, list(catalog.options), n=1, cutoff=0.7)
    hint = f"; did you mean {show(close[0])}?" if close else ""
    return f"unknown flag for {catalog.program} {catalog.version}{hint}"


def _in_other_versions(key: str, catalog: Catalog) -> str:
    """For a flag this version lacks: the shipped version that added it, or the last that had it; else ""."""
    current = _version_key(catalog.version)
    having = [v for v in shipped_versions() if v != catalog.version and key in (load_catalog(v) or catalog).options]
    later = [v for v in having if _version_key(v) > current]
    if later:
        when = f"added in SGLang {later[0]}"
    elif having:
        when = f"removed after SGLang {having[-1]}"
    else:
        return ""
    because = f" because {catalog.why}" if catalog.why else ""
    return f"unknown flag for SGLang {catalog.version}: {when} (this config checks against {catalog.version}{because})"


def _words(option: Option, key: str, value: t.Any) -> tuple[list[str], str]:
    """The argv words for one flag value, or an explanation of why the value does not fit."""
    flag = f"--{key}"
    if option.kind == "flag":
        if not isinstance(value, bool):
            return [], f"is an on/off flag: write true or false, not {_kind(value)}"
        return ([flag] if value else []), ""
    if option.kind == "bool_optional":
        if not isinstance(value, bool):
            return [], f"is an on/off flag: write true or false, not {_kind(value)}"
        negative = key == f"no-{option.name}"  # `no-x = false` turns x on
        return [f"--{option.name}" if value != negative else f"--no-{option.name}"], ""
    if option.kind == "optional_value" and value is True:
        return [flag], ""
    if option.json and option.kind != "list" and isinstance(value, (dict, list)):
        if option.type == "json_list" and not isinstance(value, list):
            return [], "expected a list (SGLang reads a JSON list here)"
        word, problem = _json_word(value)
        return ([flag, word], "") if not problem else ([], problem)
    if option.kind == "list":
        items = value if isinstance(value, list) else [value]
        if not items and option.nargs == "+":
            return [], "needs at least one value"
        words = []
        for item in items:
            word, problem = _json_word(item) if option.json and isinstance(item, dict) else _word(option, item)
            if problem:
                return [], problem
            words.append(word)
        return [flag, *words], ""
    if isinstance(value, (list, dict)):
        return [], f"takes one value, not {_kind(value)}"
    word, problem = _word(option, value)
    return ([flag, word], "") if not problem else ([], problem)


def _json_word(value: t.Any) -> tuple[str, str]:
    """A TOML table or array as SGLang reads it: compact JSON with sorted keys."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")), ""
    except (TypeError, ValueError):
        return "", "cannot be written as JSON: TOML dates, times, inf and nan have no JSON form"


def _word(option: Option, value: t.Any) -> tuple[str, str]:
    kind = option.type
    if isinstance(value, (list, dict)):
        return "", f"expected a single value, not {_kind(value)}"
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "", f"expected an integer, not {_kind(value)}"
        word = str(value)
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "", f"expected a number, not {_kind(value)}"
        word = str(value)
        if "e" in word and word[-1].isdigit():  # -1e-05 would look like a flag to argparse: write it out
            from decimal import Decimal

            word = format(Decimal(word), "f")
    elif kind == "human_int":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return "", f'expected an integer such as 131072 or "128k", not {_kind(value)}'
        if isinstance(value, str) and (problem := _size_problem(value)):
            return "", problem
        word = str(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            return "", f"expected true or false, not {_kind(value)}"
        word = "true" if value else "false"
    elif kind in ("json", "json_list"):
        if not isinstance(value, str):
            return "", f"expected JSON (a table, a list or a JSON string), not {_kind(value)}"
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as e:
            return "", f"is not valid JSON: {e.msg} at character {e.pos}"
        if kind == "json_list" and not isinstance(parsed, list):
            return "", "expected a JSON list"
        word = value
    else:
        if isinstance(value, bool):
            return "", f"expected a value, not {_kind(value)}; on/off flags are written `flag = true`"
        word = str(value)
        if option.json and word.strip()[:1] in ("{", "["):  # JSON text (not a file path): SGLang will parse it
            try:
                json.loads(word)
            except json.JSONDecodeError as e:
                return "", f"is not valid JSON: {e.msg} at character {e.pos} (or write it as a TOML table)"
    if word.startswith("-") and not _NEGATIVE_NUMBER.match(word):
        return "", f"{show(word)} starts with '-': SGLang's argument parser would take it for a flag"
    if option.choices is not None and word not in {str(c) for c in option.choices}:
        return "", f"invalid choice {show(word)}; choose from: {', '.join(map(str, option.choices))}"
    return word, ""


def _size_problem(text: str) -> str:
    """Why SGLang's human_readable_int refuses `text`, or "" when it reads it."""
    match = _HUMAN_INT.fullmatch(text.strip())
    if match:
        number, suffix = match.groups()
        if "i" in suffix and "." in number:
            return f"{show(text)}: IEC suffixes ({suffix}) take whole numbers only; {_SIZE_RULE}"
        return ""
    try:
        int(text)
    except ValueError:
        return f"{show(text)} is not a size SGLang reads; {_SIZE_RULE}"
    return ""


def _kind(value: t.Any) -> str:
    if isinstance(value, bool):
        return f"a boolean ({show(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({show(value)})"
    return "a list" if isinstance(value, list) else "a table"


def _version_key(version: str) -> tuple[t.Any, ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+]", version))
